import ArgumentParser
import Foundation
import RingsideKit
import Wire

struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write every frame through the network queues to a pcapng file, with each frame's ring context.",
        discussion: """
        Turns the kernel's capture mode on (a copy of every frame through net0.rx and net0.tx goes over the \
        telemetry channel) and writes the frames to FILE as pcapng: one interface per queue (net0.rx, \
        net0.tx), guest timestamps in nanoseconds, the virtio-net header stripped (link type Ethernet) and \
        kept in each packet's comment with the descriptor and the ring indices, e.g. \
        `desc 202 avail 458 used 204 hdr flags=0 gso=0 … nr 17` (nr: the frame's number on its queue since \
        the capture began; a number missing is a frame missed). Runs until Ctrl-C or --count frames, then turns \
        capture off, writes each interface's statistics (isb_ifdrop: frames missed) and prints, per queue, \
        the frames written and missed. A frame is missed when the telemetry channel could not carry it \
        (the kernel counts what it could not send; the frame numbers show what was lost after). \
        SOCKET is the telemetry socket `ringside run` prints (capture beside the TUI) or QEMU's console \
        socket. Capture mode is the kernel's: while one capture runs, another joins it, and the first to \
        end turns it off for both.

        Any QEMU guest (Linux included): --qmp QMP --memory FILE instead of SOCKET. The rings of its \
        virtio-net queues are sampled in guest memory at --rate Hz; each frame that went through between \
        two samples (RX: a new used element; TX: a new avail entry) is copied out of guest memory, its \
        virtio-net header split off as the negotiated features size it. Best effort at the sampling rate: \
        a frame whose buffer was overwritten, or reused, before a sample saw it is counted as missed \
        (lapped, reused, invalid), in the summary and in each interface's statistics.
        """
    )

    @Argument(help: "The telemetry socket of a `ringside run`, or QEMU's console socket (not with --qmp).")
    var socket: String?

    @OptionGroup var guest: GuestTarget

    @Option(help: "With --qmp: samples of the rings per second (default 200).")
    var rate: Double = 200

    @Option(name: [.short, .customLong("output")], help: "The pcapng file (created or truncated).")
    var output: String

    @Option(name: .customLong("queue"), help: "A queue to capture (net0.rx, net0.tx; repeat for both). Default: every network queue.")
    var queues: [String] = []

    @Option(help: "Stop after writing this many frames.")
    var count: Int?

    @Option(help: "Write only frames that match: \(CaptureFilter.usage).")
    var filter: String?

    func validate() throws {
        if let count, count <= 0 { throw ValidationError("--count must be at least 1") }
        if let filter {
            do { _ = try CaptureFilter(parsing: filter) } catch { throw ValidationError(error.message) }
        }
        if let socket, socket.utf8.count > 107 { throw ValidationError("socket path too long for a unix socket (max 107 bytes): \(socket)") }
        if guest.qmp != nil {
            if socket != nil { throw ValidationError("give either SOCKET or --qmp, not both") }
            if guest.memory == nil { throw ValidationError("capture with --qmp reads the frames out of guest memory: give --memory FILE") }
        } else {
            try guest.validate(socket: socket)
            if socket == nil { throw ValidationError("give SOCKET, or --qmp QMP --memory FILE") }
        }
        if !(rate > 0 && rate <= 10_000) { throw ValidationError("--rate must be between 0 and 10000 Hz") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        installStopSignalHandlers()
        let frameFilter = try filter.map { text throws(CommandError) in try CaptureFilter(parsing: text) } ?? CaptureFilter()
        do {
            if let qmp = guest.qmp, let memory = guest.memory {
                try captureGuest(qmp: qmp, memory: memory, filter: frameFilter)
            } else if let socket {
                try capture(socket: socket, filter: frameFilter)
            }
        } catch let e as RingsideError {
            warn(e.description)
            throw ExitCode.failure
        }
    }

    private func capture(socket: String, filter frameFilter: CaptureFilter) throws {
        let connection = try TelemetryConnection(path: socket, timeout: 5)
        let hello = try waitForHello(connection, socket: socket)
        let network = hello.queues.filter { $0.name.hasPrefix("net") }
        var selected: [WireQueueInfo] = []
        for name in queues {
            guard let q = hello.queues.first(where: { $0.name == name || UInt8(name) == $0.queue }) else {
                throw RingsideError("no queue \"\(name)\" (network queues: \(network.map(\.name).joined(separator: ", ")))")
            }
            guard network.contains(q) else { throw RingsideError("\(q.name) is not a network queue: capture copies net0.rx and net0.tx") }
            if !selected.contains(q) { selected.append(q) }
        }
        if selected.isEmpty { selected = network }
        guard !selected.isEmpty else { throw RingsideError("the kernel has no network queue to capture") }

        let file = try PcapngFile(path: output)
        var interface: [UInt8: UInt32] = [:]
        for q in selected { interface[q.queue] = file.writer.addInterface(name: q.name) }
        let formats = Dictionary(uniqueKeysWithValues: hello.queues.map { ($0.queue, $0.format) })
        try file.flush()

        let on = try connection.request(.capture(on: true), timeout: 5, discardEarlier: true)
        guard on.status.isOK else { throw RingsideError("capture on: \(on.message) (\(on.status.name))") }
        // Guest uptimes become wall-clock nanoseconds through the clock as it stood at the start,
        // so the frames keep the guest's own spacing to the nanosecond.
        let bootNs = UInt64(max(0, (connection.kernelClock?.bootWallTime ?? wallClockSeconds()) * 1e9))
        let startNs = bootNs &+ connection.model.uptimeNs
        warn("capturing \(selected.map(\.name).joined(separator: ", ")) from \(socket) to \(output)"
             + (filter.map { " (filter: \($0))" } ?? "") + " (Ctrl-C to stop)")

        var accounts: [UInt8: CaptureAccounting] = [:]
        var written: [UInt8: UInt64] = [:]
        for q in network { accounts[q.queue] = CaptureAccounting() }
        var total = 0
        var lastUptimeNs: UInt64 = connection.model.uptimeNs
        var offSeq: UInt32?
        /// Set when the reply to `capture off` arrives: the counts after it are the kernel's last.
        var offReplied = false
        var finalCounts = Set<UInt8>()
        var disconnected = false

        func handle(_ item: TelemetryIncoming) {
            switch item {
            case .message(.capturedFrame(let f), _):
                guard accounts[f.queue] != nil else { return }
                accounts[f.queue]?.frame(number: f.number)
                lastUptimeNs = max(lastUptimeNs, f.uptimeNs)
                guard let id = interface[f.queue], count.map({ total < $0 }) ?? true, frameFilter.matches(f.frame) else { return }
                let original = max(Int(f.bufferLength) - Int(f.headerBytes), f.frame.count)
                file.writer.addPacket(interface: id, timestampNs: bootNs &+ f.uptimeNs, data: f.frame, originalLength: original,
                                      comment: pcapngFrameComment(descriptor: f.descriptor, availIdx: f.availIdx,
                                                                  usedIdx: f.usedIdx, header: f.header, number: f.number,
                                                                  format: formats[f.queue] ?? .split))
                written[f.queue, default: 0] += 1
                total += 1
            case .message(.event(let e), _):
                if case let .captureCounts(q, frames, missed) = e.kind {
                    accounts[q]?.counts(frames: frames, missed: missed)
                    if offReplied { finalCounts.insert(q) }
                }
            case .message(.reply(let r), _):
                if let offSeq, r.commandSeq == offSeq { offReplied = true }
            case .disconnected:
                disconnected = true
            default:
                break
            }
        }
        var stoppedByCount = false
        while receivedStopSignal.load(ordering: .relaxed) == 0 && !disconnected {
            for item in connection.receive(timeout: 0.2) { handle(item) }
            try file.flush()
            if let count, total >= count { stoppedByCount = true; break }
        }
        if !disconnected {
            do { offSeq = try connection.send(.capture(on: false)) } catch { disconnected = true }
        }
        // Everything sent before the off's reply still arrives; the counts after it are final.
        let deadline = monotonicSeconds() + 3
        while !disconnected && finalCounts.count < network.count && monotonicSeconds() < deadline {
            for item in connection.receive(timeout: 0.2) { handle(item) }
        }
        connection.close()
        let complete = finalCounts.count == network.count
        if !stoppedByCount && complete {
            for q in network { accounts[q.queue]?.finish() }
        }
        let endNs = bootNs &+ lastUptimeNs
        var lines: [String] = []
        for q in selected {
            guard let id = interface[q.queue], let a = accounts[q.queue] else { continue }
            let w = written[q.queue, default: 0]
            let kernel = a.kernelMissed.map { ", \($0) of them the kernel could not send" } ?? ""
            let line = "\(q.name): \(w) frames written, \(a.missed) missed\(kernel)"
                + (filter != nil ? " (\(a.received) received, \(a.received - w) filtered out)" : "")
            lines.append(line)
            file.writer.addStatistics(interface: id, timestampNs: endNs, startNs: startNs, received: a.kernelFrames,
                                      dropped: a.missed, filterAccepted: w, comment: "ringside capture: " + line)
        }
        try file.flush()
        for line in lines { writeLine(line) }
        if disconnected { throw RingsideError("the telemetry channel closed: \(output) holds what arrived before") }
        if !complete {
            warn("the kernel's final counts did not arrive: frames lost after the last one received are not counted")
        }
    }

    private func waitForHello(_ connection: TelemetryConnection, socket: String) throws(RingsideError) -> WireHello {
        let deadline = monotonicSeconds() + 5
        while monotonicSeconds() < deadline {
            for item in connection.receive(timeout: 0.2) {
                if case .disconnected = item { throw RingsideError("\(socket) closed before the kernel said hello") }
            }
            if let hello = connection.model.hello { return hello }
        }
        throw RingsideError("no hello from \(socket) within 5 s (is a Ringside kernel on the other end?)")
    }
}
