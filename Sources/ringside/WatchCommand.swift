import ArgumentParser
import Foundation
import RingsideKit
import Wire

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the kernel's virtqueue snapshots: JSON lines for scripts, or a line per queue per second.",
        discussion: """
        SOCKET is QEMU's console socket (console.sock in a run directory) or the telemetry socket a \
        `ringside run` prints. With --json every snapshot is one JSON object on its own line \
        (jq-friendly; stdout is flushed per line). When the guest goes away, watch says so on stderr \
        and waits for it to come back (up to --timeout seconds without telemetry, if given).

        SOCKET with --qmp QMP (QEMU's QMP socket, e.g. qmp-user.sock of a `ringside run`) and --json: \
        each network queue also gets a "device" object, QEMU's own indices for it (last_avail_idx, \
        used_idx, inuse, vring_num, shadow_avail_idx, from QMP x-query-virtio-queue-status, polled at \
        4 Hz) with age_ms and the comparison with the driver's numbers: "verdict" agree, in_flight, \
        unknown or disagree, and "reasons". QEMU serves one client per QMP socket.
        """
    )

    @Argument(help: "The console socket or a ringside telemetry socket (not with --qmp).")
    var socket: String?

    @OptionGroup var guest: GuestTarget

    @Option(help: "Samples per second with --qmp (default 10).")
    var rate: Double = 10

    @Flag(help: "One JSON object per snapshot per line.")
    var json = false

    @Option(help: "Exit after this many snapshots.")
    var count: Int?

    @OptionGroup var silence: TelemetryTimeoutOption
    var timeout: Double? { silence.timeout }

    func validate() throws {
        if socket != nil && guest.qmp != nil {
            if guest.memory != nil { throw ValidationError("--memory is for any guest (no SOCKET); with SOCKET, --qmp adds QEMU's view of the net queues") }
            if !json { throw ValidationError("SOCKET with --qmp needs --json (the device's view goes into each snapshot's JSON)") }
        } else {
            try guest.validate(socket: socket)
        }
        if !(rate > 0 && rate <= 1000) { throw ValidationError("--rate must be between 0 and 1000 Hz") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        if let qmp = guest.qmp, socket == nil {
            try watchGuest(qmp: qmp, memory: guest.memory, json: json, rate: rate, count: count, timeout: timeout)
            return
        }
        guard let socket else { throw ValidationError("give SOCKET or --qmp") }
        var printed = 0
        var lastData = monotonicSeconds()
        let link = ReconnectingTelemetry(path: socket, retryInterval: 0.2)
        var saidWaiting = false
        var human = HumanLines()
        // SOCKET with --qmp: QEMU's view of the net queues, compared with each snapshot.
        let devicePoller = guest.qmp.map { DeviceTruthPoller(socketPath: $0) }
        devicePoller?.start()
        defer { devicePoller?.stop() }
        var deviceTruth = WatchDeviceTruth()
        while true {
            for event in link.service(now: monotonicSeconds(), timeout: 0.25) {
                switch event {
                case .connected:
                    if saidWaiting { warn("connected to \(socket)") }
                    saidWaiting = false
                    lastData = monotonicSeconds()
                case .unreachable(let error):
                    if !saidWaiting {
                        warn("\(error); waiting for the guest")
                        saidWaiting = true
                    }
                case .incoming(.snapshot(_, let model, _)):
                    lastData = monotonicSeconds()
                    guard model.isComplete else { continue }
                    if json {
                        let line = devicePoller.map { deviceTruth.line(model: model, device: $0.latest, now: monotonicSeconds()) }
                            ?? model.snapshotJSON()
                        guard writeLine(line) else { throw ExitCode.failure }
                    } else {
                        if let lines = human.update(model) {
                            for l in lines { guard writeLine(l) else { throw ExitCode.failure } }
                        }
                        // The lost-notification detector's verdicts, as they happen.
                        for change in model.notificationChanges {
                            let line: String
                            switch change {
                            case .raised(let a):
                                line = "# \(a.kind.label) \(model.queues[a.queue].info.name.escapingTerminalControls()): \(a.detail)"
                            case .cleared(let a):
                                line = "# cleared \(a.kind.label) \(model.queues[a.queue].info.name.escapingTerminalControls()) after \(formatTenths(a.age)) s: the queue moved"
                            }
                            guard writeLine(line) else { throw ExitCode.failure }
                        }
                    }
                    printed += 1
                    if let count, printed >= count { return }
                case .incoming(.message(.hello(let h), _)):
                    lastData = monotonicSeconds()
                    if !json {
                        let queues = h.queues.map { "\($0.name.escapingTerminalControls())[\($0.size)]" }.joined(separator: " ")
                        guard writeLine("# \(h.kernelVersion.escapingTerminalControls()) protocol \(h.protocolVersion), mac \(macAddressText(h.mac)), queues \(queues)") else { throw ExitCode.failure }
                    }
                case .incoming(.message):
                    lastData = monotonicSeconds()
                case .incoming(.decodeError(let e)):
                    if case .unsupportedVersion = e { warn(e.message) }
                case .incoming(.disconnected):
                    warn("the guest went away (\(socket) closed); waiting for it to come back")
                    saidWaiting = true
                }
            }
            if let timeout, monotonicSeconds() - lastData > timeout {
                warn("no telemetry for \(formatTimeout(timeout)) s: giving up")
                throw ExitCode.failure
            }
        }
    }
}

/// The compact per-second view: a line per queue with indices, state and rates.
struct HumanLines {
    var last: (uptime: UInt64, counters: [WireQueueCounters])?
    var lastPrint = 0.0

    mutating func update(_ model: TelemetryModel) -> [String]? {
        let now = monotonicSeconds()
        guard now - lastPrint >= 1 else { return nil }
        lastPrint = now
        let counters = model.queues.map { $0.status?.counters ?? WireQueueCounters() }
        defer { last = (model.uptimeNs, counters) }
        var lines: [String] = []
        let dt = last.map { Double(model.uptimeNs &- $0.uptime) / 1e9 } ?? 0
        let m = model.memory
        lines.append(String(format: "t=%.1fs rate=%dHz dropped_frames=%llu heap_used=%llu heap_free=%llu heap_total=%llu net_reserved=%llu net_limit=%llu",
                            Double(model.uptimeNs) / 1e9, Int(model.rateHz), model.droppedFrames,
                            m.heapUsed, m.heapFree, m.heapTotal, m.netReserved, m.netLimit))
        for (i, q) in model.queues.enumerated() {
            guard let s = q.status else { continue }
            var pps = 0.0, bps = 0.0
            if let last, i < last.counters.count, dt > 0 {
                pps = Double(s.counters.packets &- last.counters[i].packets) / dt
                bps = Double(s.counters.bytes &- last.counters[i].bytes) / dt
            }
            let name = q.info.name.escapingTerminalControls().padding(toLength: 8, withPad: " ", startingAt: 0)
            lines.append("  " + name + String(format: " avail=%5u used=%5u last_used=%5u free=%4u pending=%4u ",
                                UInt32(s.availIdx), UInt32(s.usedIdx), UInt32(s.lastUsedIdx), UInt32(s.freeCount),
                                UInt32(s.pendingUsed)) + (s.paused ? "PAUSED " : "running")
                         + String(format: " pkts/s=%8.1f bytes/s=%10.0f drops=%llu", pps, bps, s.counters.drops))
        }
        return lines
    }
}

func formatTimeout(_ s: Double) -> String {
    s == s.rounded() ? String(Int(s)) : String(s)
}
