import ArgumentParser
import Foundation
import RingsideKit
import Wire

/// `ringside ctl SOCKET ACTION ...`: one command, one reply, an exit status.
///
/// The socket comes before the action, so the action's arguments are captured and parsed by the
/// action's own type (`CtlStats`, `CtlPause`, ... below).
struct Ctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send one command to the kernel and print its reply.",
        usage: """
        ringside ctl SOCKET stats
        ringside ctl SOCKET pause Q | resume Q
        ringside ctl SOCKET step Q [N]
        ringside ctl SOCKET dump Q (--desc ID | --next | --last) [--raw | --pcap FILE]
        ringside ctl SOCKET rate HZ
        ringside ctl SOCKET reset
        ringside ctl SOCKET inject Q (drop N | corrupt N | nokick N | starve | unstarve | noirq | clear)
        ringside ctl SOCKET kick Q | poll Q
        ringside ctl --qmp QMP [--memory FILE] stats
        ringside ctl --qmp QMP --memory FILE dump Q (--desc ID | --next | --last) [--raw | --pcap FILE]
        """,
        discussion: """
        SOCKET is QEMU's console socket or the telemetry socket a `ringside run` prints. Q is a queue \
        name (net0.rx, net0.tx, con0.rx, con0.tx) or its index. `stats` prints one full snapshot as JSON; \
        `dump` prints a hexdump -C style dump and the decoded headers, or with --raw the bare Ethernet \
        frame (no virtio-net header) on stdout, or with --pcap a pcap file. Exit status 0 on success; \
        otherwise 1 with a one-line error on stderr.

        Fault injection (the driver misbehaves on purpose, per queue, until done or cleared): \
        `inject Q drop N` silently drops the next N frames; `corrupt N` flips a byte in each of the next \
        N frames (RX before the stack, TX before publishing); `starve` / `unstarve` stops / resumes \
        reposting RX buffers; `nokick N` publishes without notifying the device for the next N kicks it \
        wanted; `noirq` ignores the queue's interrupts and stops polling it; `clear` ends every fault. \
        `kick Q` notifies the device now; `poll Q` services the queue as if its interrupt had arrived. \
        The TUI's `:` command line takes the same words.

        With --qmp (any QEMU guest, no telemetry): Q is DEVICE.QUEUE as `ctl --qmp QMP stats` lists         them (net0.rx, net0.tx, net0.ctrl, …); stats and dump only; dump reads the buffer from the         guest memory file given with --memory (`ringside qemu-args --guest`).
        """
    )

    @OptionGroup var guest: GuestTarget

    @Argument(help: "The console socket or a ringside telemetry socket (not with --qmp).")
    var socket: String?

    @Argument(parsing: .captureForPassthrough, help: "The action and its arguments.")
    var action: [String] = []

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        // With --qmp there is no SOCKET: the first positional word is the action.
        let action = guest.qmp != nil ? (socket.map { [$0] } ?? []) + self.action : self.action
        guard let name = action.first else {
            warn("missing action: stats, pause, resume, step, dump, rate, reset, inject, kick, poll or capture")
            throw ExitCode(2)
        }
        let rest = Array(action.dropFirst())
        let type: any CtlAction.Type
        switch name {
        case "stats": type = CtlStats.self
        case "pause": type = CtlPause.self
        case "resume": type = CtlResume.self
        case "step": type = CtlStep.self
        case "dump": type = CtlDump.self
        case "rate": type = CtlRate.self
        case "reset": type = CtlReset.self
        case "inject", "kick", "poll", "capture": type = CtlLanguage.self
        default:
            warn("unknown action '\(name)': use stats, pause, resume, step, dump, rate, reset, inject, kick, poll or capture")
            throw ExitCode(2)
        }
        let parsed: any CtlAction
        do {
            parsed = try type.parse(type == CtlLanguage.self ? [name] + rest : rest)
        } catch {
            if rest.contains("--help") || rest.contains("-h") {
                writeLine(type.helpMessage())
                return
            }
            warn("\(name): " + type.message(for: error).split(separator: "\n").first.map(String.init)!)
            throw ExitCode(2)
        }
        if let qmp = guest.qmp {
            try runGuestAction(parsed, name: name, qmp: qmp, memory: guest.memory)
            return
        }
        guard let socket else {
            warn("give SOCKET or --qmp QMP")
            throw ExitCode(2)
        }
        let session: CtlSession
        do {
            session = try CtlSession(socket: socket, timeout: parsed.common.timeout)
        } catch {
            warn("\(error)")
            throw ExitCode.failure
        }
        do {
            try parsed.perform(session)
        } catch let e as RingsideError {
            warn(e.description)
            throw ExitCode.failure
        }
    }
}

struct CtlCommon: ParsableArguments {
    @Option(help: "Seconds to wait for the connection and the reply.")
    var timeout: Double = 5
}

protocol CtlAction: ParsableArguments {
    var common: CtlCommon { get }
    func perform(_ session: CtlSession) throws
}

/// A connection that has seen the hello (queue names) and sends one command.
final class CtlSession {
    let connection: TelemetryConnection
    let timeout: Double

    init(socket: String, timeout: Double) throws(RingsideError) {
        self.timeout = timeout
        do {
            connection = try TelemetryConnection(path: socket, timeout: 0)
        } catch {
            throw RingsideError("cannot connect to \(socket): \(error.description.replacingOccurrences(of: "cannot connect to \(socket): ", with: ""))")
        }
        // The hello we sent on connect brings the queue list back.
        _ = connection.wait(timeout: timeout) { _ in connection.model.hello != nil }
        if connection.model.hello == nil {
            throw RingsideError(connection.isConnected
                ? "no telemetry from the kernel on \(socket) within \(formatTimeout(timeout)) s (is another client holding QEMU's console socket?)"
                : "\(socket) closed the connection")
        }
    }

    func queue(_ text: String) throws(RingsideError) -> UInt8 {
        guard let q = connection.model.queueIndex(text) else {
            let names = connection.model.queues.map { $0.info.name.escapingTerminalControls() }.joined(separator: ", ")
            throw RingsideError("no queue '\(text)' (queues: \(names))")
        }
        return q
    }

    /// Queue `q`'s name from the kernel's hello, escaped for printing (`escapingTerminalControls`).
    func name(_ q: UInt8) -> String {
        connection.model.queueName(q).escapingTerminalControls()
    }

    /// Sends `command`; throws with the kernel's message on an error reply.
    @discardableResult
    func run(_ command: WireCommand) throws(RingsideError) -> WireReply {
        let reply = try connection.request(command, timeout: timeout)
        guard reply.status.isOK else {
            let text = reply.message.isEmpty ? "the kernel refused the command" : reply.message.escapingTerminalControls()
            throw RingsideError("\(text) (\(reply.status.name))")
        }
        return reply
    }

    /// Sends the command `make` builds for the queue named `queue` and prints "<queue> <done>".
    func runOnQueue(_ queue: String, _ make: (UInt8) -> WireCommand, done: String) throws {
        let q = try self.queue(queue)
        try run(make(q))
        writeLine("\(name(q)) \(done)")
    }
}

struct CtlStats: CtlAction {
    @OptionGroup var common: CtlCommon

    func perform(_ session: CtlSession) throws {
        let model = try session.connection.fullSnapshot(timeout: session.timeout)
        writeLine(model.snapshotJSON())
    }
}

struct CtlPause: CtlAction {
    @OptionGroup var common: CtlCommon
    @Argument(help: "Queue name or index.") var queue: String

    func perform(_ session: CtlSession) throws {
        try session.runOnQueue(queue, { .pause(queue: $0) }, done: "paused")
    }
}

struct CtlResume: CtlAction {
    @OptionGroup var common: CtlCommon
    @Argument(help: "Queue name or index.") var queue: String

    func perform(_ session: CtlSession) throws {
        try session.runOnQueue(queue, { .resume(queue: $0) }, done: "resumed")
    }
}

struct CtlStep: CtlAction {
    @OptionGroup var common: CtlCommon
    @Argument(help: "Queue name or index.") var queue: String
    @Argument(help: "How many elements to deliver (RX) or release (TX).") var count: Int = 1

    func validate() throws {
        guard (1...65535).contains(count) else { throw ValidationError("N must be between 1 and 65535") }
    }

    func perform(_ session: CtlSession) throws {
        let q = try session.queue(queue)
        let reply = try session.run(.step(queue: q, count: UInt16(count)))
        writeLine("\(session.name(q)) stepped" + (reply.message.isEmpty ? " \(count)" : ": \(reply.message.escapingTerminalControls())"))
    }
}

struct CtlRate: CtlAction {
    @OptionGroup var common: CtlCommon
    @Argument(help: "Snapshots per second (0 stops them).") var hz: Int

    func validate() throws {
        guard (0...65535).contains(hz) else { throw ValidationError("HZ must be between 0 and 65535") }
    }

    func perform(_ session: CtlSession) throws {
        try session.run(.setSnapshotRate(hz: UInt16(hz)))
        writeLine("snapshot rate \(hz) Hz")
    }
}

struct CtlReset: CtlAction {
    @OptionGroup var common: CtlCommon

    func perform(_ session: CtlSession) throws {
        try session.run(.resetCounters)
        writeLine("counters reset")
    }
}

/// `inject`, `kick`, `poll`: the words are parsed by the command language the TUI's `:` line
/// uses too (`parseControlCommand`, RingsideKit).
struct CtlLanguage: CtlAction {
    static let configuration = CommandConfiguration(
        commandName: "inject|kick|poll|capture",
        abstract: "inject Q (drop N | corrupt N | nokick N | starve | unstarve | noirq | clear), kick Q, poll Q, capture on|off")
    @OptionGroup var common: CtlCommon
    @Argument(help: "The command's words, e.g. inject net0.tx nokick 5.") var words: [String]

    func perform(_ session: CtlSession) throws {
        let queues = session.connection.model.queues.map { $0.info }
        let command: WireCommand
        switch parseControlCommand(words.joined(separator: " "), queues: queues) {
        case .success(let c): command = c
        case .failure(let e): throw RingsideError(e.message)
        }
        let reply = try session.run(command)
        let detail = reply.message.isEmpty ? "" : ": \(reply.message.escapingTerminalControls())"
        switch command {
        case .inject(let q, let fault):
            writeLine("\(session.name(q)): \(fault.text)" + (fault == .clear ? " (every fault ended)" : "") + detail)
        case .kick(let q): writeLine("\(session.name(q)) kicked" + detail)
        case .poll(let q): writeLine("\(session.name(q)) polled" + detail)
        case .capture(let on): writeLine("capture \(on ? "on" : "off")" + detail)
        default: writeLine("ok" + detail)
        }
    }
}

struct CtlDump: CtlAction {
    @OptionGroup var common: CtlCommon
    @Argument(help: "Queue name or index.") var queue: String
    @Option(name: .customLong("desc"), help: "Dump the buffer of this descriptor.") var descriptor: Int?
    @Flag(help: "Dump the oldest pending used element (what the next step delivers).") var next = false
    @Flag(help: "Dump the most recently delivered (RX) or sent (TX) frame.") var last = false
    @Flag(help: "Write the bare Ethernet frame (no virtio-net header) to stdout.") var raw = false
    @Option(help: "Write the Ethernet frame to this pcap file.") var pcap: String?
    @Option(help: ArgumentHelp("Memory view (--qmp --memory): keep sampling up to this many seconds until the buffer is known.",
                               discussion: "A packed ring's used slot names a buffer id, not its address: it is known once a sample has seen the driver offer that buffer."))
    var wait: Double?

    func validate() throws {
        let selectors = (descriptor != nil ? 1 : 0) + (next ? 1 : 0) + (last ? 1 : 0)
        guard selectors == 1 else { throw ValidationError("give exactly one of --desc ID, --next, --last") }
        if raw && pcap != nil { throw ValidationError("--raw and --pcap exclude each other") }
        if let descriptor, !(0...65535).contains(descriptor) { throw ValidationError("--desc must be between 0 and 65535") }
        if let wait, !(0...3600).contains(wait) { throw ValidationError("--wait must be between 0 and 3600 seconds") }
    }

    func perform(_ session: CtlSession) throws {
        let q = try session.queue(queue)
        let selector: WireDumpSelector = descriptor.map { .descriptor(UInt16($0)) } ?? (next ? .next : .last)
        let reply = try session.run(.dump(queue: q, selector: selector))
        guard case .dump(let dump) = reply.body else { throw RingsideError("the reply carried no dump") }
        let name = session.name(q)
        let isNet = session.connection.model.queueName(q).hasPrefix("net")
        let frame = isNet ? Array(dump.bytes.dropFirst(FrameDecoder.virtioNetHeaderBytes)) : dump.bytes
        if raw {
            // The frame's bytes are the guest's: never into a terminal, only into a file or pipe.
            if isatty(STDOUT_FILENO) != 0 { throw RingsideError("--raw writes binary: redirect standard output to a file or a pipe") }
            guard writeStandardOutput(frame) else { throw RingsideError("cannot write to standard output") }
            return
        }
        if let pcap {
            // The record's time is when the frame arrived in the guest (the dump's stamp, mapped
            // through the hello); a buffer with no stamp (not yet filled) gets the host's time now.
            let arrival = session.connection.kernelClock?.wallTime(uptimeNs: dump.stampNs)
            let file = PcapWriter.file(frames: [(time: arrival ?? wallClockSeconds(), bytes: frame)])
            guard FileManager.default.createFile(atPath: pcap, contents: Data(file)) else {
                throw RingsideError("cannot write \(pcap)")
            }
            let when = arrival.map { "arrived " + formatWallTime($0) } ?? "arrival time unknown: stamped now"
            writeLine("wrote \(pcap): 1 frame, \(frame.count) bytes (\(name) descriptor \(dump.descriptor), \(when))")
            return
        }
        var text = "\(name) descriptor \(dump.descriptor) at guest 0x\(String(dump.guestAddress, radix: 16)), \(dump.bufferLength) bytes"
        if dump.stampNs != 0 { text += ", arrived at uptime \(String(format: "%.6f", Double(dump.stampNs) / 1e9)) s" }
        if dump.bytes.count < Int(dump.bufferLength) { text += " (first \(dump.bytes.count) shown)" }
        text += "\n" + hexDumpC(dump.bytes)
        if isNet {
            text += "\n" + FrameDecoder.describe(dump.bytes, virtioHeader: true).text
        }
        guard writeText(text) else { throw RingsideError("cannot write to standard output") }
    }
}

/// Local time with microseconds: 2026-11-30 06:40:12.123456.
func formatWallTime(_ t: Double) -> String {
    var seconds = time_t(t.rounded(.down))
    var parts = tm()
    localtime_r(&seconds, &parts)
    var buf = [CChar](repeating: 0, count: 32)
    let n = strftime(&buf, buf.count, "%Y-%m-%d %H:%M:%S", &parts)
    let micros = Int(((t - t.rounded(.down)) * 1_000_000).rounded(.down))
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) + String(format: ".%06d", micros)
}
