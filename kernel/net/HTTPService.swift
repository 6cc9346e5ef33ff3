import Arch

// The kernel's web face: TCP on the network stack, and an HTTP/1.1 server on port 80 with
//   GET /         an HTML status page (version, uptime, memory, per-queue indices and
//                 counters, TCP and HTTP counters), refreshing itself every 5 s;
//   GET /metrics  the same numbers in the Prometheus text exposition format;
//   GET /hello    a fixed 20-byte text: the microservice's smallest answer, what the HTTP
//                 figures of scripts/bench_vs_linux.py measure (the Linux reference guest
//                 answers every path with a body of the same kind).
// The protocol work is shared with the host: TCP in Sources/NetStack, parsing, keep-alive
// and limits in Sources/HTTP; this file only gathers the kernel's numbers and lays them out
// (the per-queue ones in HTTPQueueStatus.swift).

final class HTTPService {
    let stack: NetStack
    let tcp: TCPLayer
    let server: HTTPServer
    /// The kernel's queues, read fresh for every request.
    let statusProvider: () -> [HTTPQueueStatus]

    init?(stack: NetStack, statusProvider: @escaping () -> [HTTPQueueStatus]) {
        self.stack = stack
        self.statusProvider = statusProvider
        // The ISN hash key: the TSC at this moment is not predictable from outside.
        tcp = TCPLayer(stack: stack, isnSecret: rdtsc() ^ 0x5249_4E47_5349_4445)
        guard let server = HTTPServer(tcp: tcp, port: 80) else { return nil }
        self.server = server
        // The routes hold the service (and through it the server and TCP) for good.
        server.route("/") { _ in self.statusPage() }
        server.route("/metrics") { _ in self.metrics() }
        let hello = Array("hello from ringside\n".utf8)
        server.route("/hello") { _ in HTTPResponse(status: .ok, contentType: "text/plain; charset=utf-8", body: hello) }
    }

    /// Starts TCP and the server, reading queue state from the net (and console) driver.
    static func start(stack: NetStack, net: VirtioNetDriver, console: VirtioConsoleDriver?) -> HTTPService? {
        let service = HTTPService(stack: stack) {
            var queues = [
                HTTPService.status("net0.rx", net.rx, drops: stack.counters.totalDrops),
                HTTPService.status("net0.tx", net.tx, drops: net.txRingFullDrops),
            ]
            if let console {
                queues.append(HTTPService.status("con0.rx", console.rx, drops: 0))
                queues.append(HTTPService.status("con0.tx", console.tx, drops: 0))
            }
            return queues
        }
        if service != nil {
            log("http: listening on port 80")
        } else {
            log("http: port 80 taken; no HTTP server")
        }
        return service
    }

    /// Sizes what peers can make the network stack hold from the heap that is left once
    /// the drivers and telemetry have theirs (call it last, before the main loop): a budget
    /// of the free heap less a reserve for the runtime's own allocations (frames in flight,
    /// ARP queues, connection objects), and as many connections as the budget backs at
    /// their worst case. Allocations past the budget are refused, never attempted.
    func sizeMemory() {
        let free = Int(heap_bytes_free())
        let reserve = Swift.max(HTTPService.minimumReserveBytes, free / 8)
        let budget = Swift.max(0, free - reserve)
        stack.memory.limitBytes = budget
        // Whatever else the heap is asked for, half the reserve stays untouched.
        stack.memory.headroom = { Int(heap_bytes_free()) - reserve / 2 }
        tcp.maxConnections = Swift.max(1, budget / HTTPService.connectionWorstCaseBytes)
        let connections = tcp.maxConnections, perSource = tcp.maxConnectionsPerSource
        bootLog("memory: network budget \(budget / 1024) KiB (heap free \(free / 1024) KiB, reserve \(reserve / 1024) KiB); \(HTTPService.connectionWorstCaseBytes / 1024) KiB per connection at most: up to \(connections) connections, \(perSource) per address")
    }

    static let minimumReserveBytes = 1024 * 1024
    /// TCP's buffers and the HTTP session's inbox, as each reserves them.
    static let connectionWorstCaseBytes = TCPLayer.connectionMemoryBytes + HTTPServer.sessionMemoryBytes

    /// `drops`: what the driver dropped on the queue; the used elements the device got wrong
    /// are added, as in the telemetry counters.
    static func status(_ name: String, _ queue: DeviceQueue, drops: UInt64) -> HTTPQueueStatus {
        let ring = queue.ring
        ring.observeUsed()
        let counters = ring.counters
        let faults = queue.faults
        let positions = ring.positions
        var status = HTTPQueueStatus(
            name: name, size: ring.size, availIdx: positions.avail, usedIdx: positions.used,
            lastUsedIdx: positions.lastUsed, freeDescriptors: ring.freeCount, packets: counters.packets,
            bytes: counters.bytes, kicks: counters.kicks, interrupts: counters.interrupts,
            drops: drops &+ counters.deviceErrors, kicksSuppressed: counters.kicksSuppressed, eventIdx: ring.eventIdx)
        status.packed = ring.isPacked
        status.interruptsSuppressed = counters.interruptsSuppressed
        status.injectedDrops = faults.dropped
        status.injectedCorruptions = faults.corrupted
        status.kicksWithheld = faults.kicksWithheld
        status.interruptsIgnored = faults.interruptsIgnored
        status.faultDrop = faults.drop
        status.faultCorrupt = faults.corrupt
        status.faultNokick = faults.nokick
        status.starving = faults.starving
        status.noirq = faults.noirq
        return status
    }

    // MARK: Pages

    func metrics() -> HTTPResponse {
        var writer = HTTPMetricsWriter()
        writer.family("ringside_info", "gauge", "Kernel version (the value is always 1).")
        writer.sample("ringside_info", label: "version", kernelVersion, 1)
        writer.family("ringside_uptime_seconds", "gauge", "Seconds since boot.")
        writer.text.append("ringside_uptime_seconds ")
        appendSeconds(Clock.nowMs, to: &writer.text)
        writer.text.append("\n")
        // Busy = uptime - idle: the kernel's share of its virtual CPU (under TCG, of QEMU's vCPU thread).
        writer.family("ringside_cpu_idle_seconds_total", "counter", "Seconds the CPU spent halted, waiting for an interrupt.")
        writer.text.append("ringside_cpu_idle_seconds_total ")
        appendSeconds(Clock.idleNs / 1_000_000, to: &writer.text)
        writer.text.append("\n")
        // Polling before halting (MainLoop.pollForWork) is busy time, shown apart.
        writer.family("ringside_cpu_poll_seconds_total", "counter", "Seconds the CPU spent polling for work before halting (busy, not idle).")
        writer.text.append("ringside_cpu_poll_seconds_total ")
        appendSeconds(Clock.nanoseconds(ticks: Clock.pollTicks) / 1_000_000, to: &writer.text)
        writer.text.append("\n")
        writer.family("ringside_idle_polls_total", "counter", "Idle gaps polled: work found while polling (hit), or not and the CPU halted (miss).")
        writer.sample("ringside_idle_polls_total", label: "result", "hit", Clock.pollWindow.hits)
        writer.sample("ringside_idle_polls_total", label: "result", "miss", Clock.pollWindow.misses)
        writer.metric("ringside_idle_poll_window_us", "gauge", "How long the next idle gap is polled before halting.", Clock.pollWindow.windowNs / 1000)
        writer.metric("ringside_heap_bytes", "gauge", "Kernel heap size.", heap_bytes_total())
        writer.metric("ringside_heap_used_bytes", "gauge", "Kernel heap in use.", heap_bytes_used())
        writer.metric("ringside_heap_free_bytes", "gauge", "Kernel heap pages not handed out.", heap_bytes_free())
        writer.metric("ringside_heap_largest_free_bytes", "gauge", "The largest run one allocation can get.", heap_largest_free_bytes())
        writer.netMemory(stack.memory, maxConnections: tcp.maxConnections)
        writer.queues(statusProvider())
        writer.netCounters(stack.counters)
        writer.httpCounters(server)
        return HTTPResponse(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: writer.text.bytes)
    }

    func statusPage() -> HTTPResponse {
        var html = HTTPText()
        let c = stack.counters
        html.append("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">")
        html.append("<title>ringside</title><style>body{font-family:monospace;margin:2em}td,th{padding:2px 10px;text-align:right}th{background:#eee}</style></head><body>\n")
        html.append("<h1>ringside ")
        html.appendHTMLEscaped(kernelVersion)
        html.append("</h1>\n<p>uptime ")
        appendSeconds(Clock.nowMs, to: &html)
        html.append(" s &middot; heap ")
        html.append(heap_bytes_used() / 1024)
        html.append(" / ")
        html.append(heap_bytes_total() / 1024)
        html.append(" KiB &middot; ")
        html.appendHTMLEscaped(stack.config.summary)
        html.append("</p>\n<h2>Queues</h2>\n")
        // Split rings (2.7) by their indices; packed rings (2.8) have none: their own table gives
        // the driver's next available, the device's next used and the driver's next used
        // position, each as offset and wrap counter (2.8.1).
        let queues = statusProvider()
        for packed in [false, true] where queues.contains(where: { $0.packed == packed }) {
            if packed {
                html.append("<table><tr><th>packed queue</th><th>size</th><th>driver next avail</th><th>device next used</th><th>driver next used</th><th>free</th><th>packets</th><th>bytes</th><th>kicks</th><th>interrupts</th><th>drops</th></tr>\n")
            } else {
                html.append("<table><tr><th>queue</th><th>size</th><th>avail idx</th><th>used idx</th><th>last used</th><th>free</th><th>packets</th><th>bytes</th><th>kicks</th><th>interrupts</th><th>drops</th></tr>\n")
            }
            for queue in queues where queue.packed == packed {
                html.append("<tr><td>")
                html.appendHTMLEscaped(queue.name)
                html.append("</td><td>")
                html.append(UInt64(queue.size))
                for position in [queue.availIdx, queue.usedIdx, queue.lastUsedIdx] {
                    html.append("</td><td>")
                    if packed {
                        html.append(UInt64(position & 0x7FFF))
                        if position & 0x8000 != 0 { html.append(" w1") } else { html.append(" w0") }
                    } else {
                        html.append(UInt64(position))
                    }
                }
                for value in [UInt64(queue.freeDescriptors), queue.packets, queue.bytes, queue.kicks, queue.interrupts, queue.drops] {
                    html.append("</td><td>")
                    html.append(value)
                }
                html.append("</td></tr>\n")
            }
            html.append("</table>\n")
        }
        html.append("<h2>Network</h2>\n<table>\n")
        row(&html, "frames in / out", c.rxFrames, c.txFrames)
        row(&html, "bytes in / out", c.rxBytes, c.txBytes)
        row(&html, "drops", c.totalDrops)
        row(&html, "tcp segments in / out", c.tcpIn, c.tcpSegmentsOut)
        row(&html, "tcp retransmits / timeouts", c.tcpRetransmits, c.tcpTimeouts)
        row(&html, "tcp connections active / time-wait", c.tcpActiveConnections, c.tcpTimeWaitConnections)
        row(&html, "tcp accepted / timed out", c.tcpConnectionsAccepted, c.tcpConnectionsTimedOut)
        row(&html, "tcp resets in / out", c.tcpResetsIn, c.tcpResetsOut)
        row(&html, "http requests", server.requestsTotal)
        row(&html, "http 2xx / 4xx / 5xx", server.responses2xx, server.responses4xx, server.responses5xx)
        html.append("</table>\n<p><a href=\"/metrics\">/metrics</a></p>\n</body></html>\n")
        return HTTPResponse(status: .ok, contentType: "text/html; charset=utf-8", body: html.bytes)
    }

    func row(_ html: inout HTTPText, _ label: StaticString, _ values: UInt64...) {
        html.append("<tr><th>")
        html.append(label)
        html.append("</th><td>")
        for (index, value) in values.enumerated() {
            if index > 0 { html.append(" / ") }
            html.append(value)
        }
        html.append("</td></tr>\n")
    }

    /// "12.345" from milliseconds.
    func appendSeconds(_ ms: UInt64, to text: inout HTTPText) {
        text.append(ms / 1000)
        text.append(".")
        let fraction = ms % 1000
        if fraction < 100 { text.append("0") }
        if fraction < 10 { text.append("0") }
        text.append(fraction)
    }
}
