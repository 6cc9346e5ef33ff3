import ArgumentParser
import Foundation
import RingsideKit
import RingsideTUI
import Wire

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Save the raw telemetry stream, with host timestamps, to a file for `ringside replay`.",
        discussion: """
        SOCKET is the telemetry socket a `ringside run` prints (a hub: record beside the TUI, watch and \
        ctl) or QEMU's console socket (QEMU serves one client there: nothing else can watch meanwhile). \
        Records until Ctrl-C, --duration, or --timeout seconds without telemetry. On connect the recorder \
        asks the kernel for a hello, so the recording starts with the kernel's identity and full tables. \
        The file is uncompressed (about 3.5 KB a second at 10 idle snapshots a second, plus ~14 KB per full snapshot); it compresses \
        well: `xz -9 FILE` before attaching it to a bug report. Format: docs/recording.md.
        """
    )

    @Argument(help: "The telemetry socket of a `ringside run`, or QEMU's console socket.")
    var socket: String

    @Option(name: [.short, .customLong("output")], help: "The recording file (created or truncated).")
    var output: String

    @Option(help: "Stop after this many seconds.")
    var duration: Double?

    @OptionGroup var silence: TelemetryTimeoutOption
    var timeout: Double? { silence.timeout }

    func validate() throws {
        if let duration, !(duration > 0) { throw ValidationError("--duration must be a positive number of seconds") }
        if socket.utf8.count > 107 { throw ValidationError("socket path too long for a unix socket (max 107 bytes): \(socket)") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        installStopSignalHandlers()
        let recorder: TelemetryRecorder
        do {
            recorder = try TelemetryRecorder(path: output, info: recordingInfo(source: socket, recorder: "ringside record"))
        } catch {
            warn("\(error)")
            throw ExitCode.failure
        }
        let start = monotonicSeconds()
        var lastData = start
        var lastBytes: UInt64 = 0
        let link = ReconnectingTelemetry(path: socket, retryInterval: 0.2, tap: { recorder.record($0, $1) })
        var saidWaiting = false
        var saidSilent = false
        var outcome: Int32 = 0
        warn("recording \(socket) to \(output) (Ctrl-C to stop)")
        loop: while true {
            let sig = receivedStopSignal.load(ordering: .relaxed)
            if sig != 0 { break }
            if let duration, monotonicSeconds() - start >= duration { break }
            if let timeout, monotonicSeconds() - lastData > timeout {
                warn("no telemetry for \(formatTimeout(timeout)) s: stopping" + (saidSilent ? "" : silentHint))
                outcome = 1
                break
            }
            if let e = recorder.error {
                warn(e)
                outcome = 1
                break
            }
            for event in link.service(now: monotonicSeconds(), timeout: 0.25) {
                switch event {
                case .connected:
                    if saidWaiting { warn("connected to \(socket)") }
                    saidWaiting = false
                case .unreachable(let error):
                    if !saidWaiting {
                        warn("\(error); waiting for the guest")
                        saidWaiting = true
                    }
                case .incoming(.disconnected):
                    warn("the guest went away (\(socket) closed); waiting for it to come back")
                    saidWaiting = true
                    continue loop
                case .incoming:
                    break
                }
            }
            guard link.isConnected else { continue }
            if link.bytesReceived != lastBytes {
                lastBytes = link.bytesReceived
                lastData = monotonicSeconds()
            } else if !saidSilent && monotonicSeconds() - lastData > 5 {
                warn("nothing from \(socket) for 5 s" + silentHint)
                saidSilent = true
            }
        }
        link.close()
        recorder.close()
        let seconds = monotonicSeconds() - start
        warn("recorded \(recorder.records) records (\(recorder.payloadBytes) bytes of telemetry) in \(String(format: "%.1f", seconds)) s: \(output), \(recorder.fileBytes) bytes")
        if let e = recorder.error { warn(e); outcome = 1 }
        if outcome != 0 { throw ExitCode(outcome) }
    }

    var silentHint: String {
        ": if this is QEMU's console socket, QEMU serves one client at a time and another one (ringside run, attach, watch) may hold it; record from the telemetry socket `ringside run` prints (it serves many), or use `ringside run --record FILE`"
    }
}

/// The header's info lines for a recording.
func recordingInfo(source: String, recorder: String) -> [(String, String)] {
    var name = [CChar](repeating: 0, count: 256)
    let host = gethostname(&name, name.count) == 0 ? String(cString: name) : "?"
    return [("source", source), ("recorder", recorder), ("host", host),
            ("protocol", String(WireProtocol.version))]
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Play a recording (`ringside record`, `run --record`) in the TUI, or print its snapshots as JSON.",
        discussion: """
        The TUI shows everything the live one does, read-only: commands are refused. Keys: p pause/play, \
        > and < speed (¼× to 16×), n jump to the next event (a reply, event or alarm), g go to a time \
        (seconds), 0 restart; ? lists the rest. With --json every snapshot is printed exactly as \
        `ringside watch --json` printed it live, as fast as the file is read. A damaged or truncated \
        recording plays up to the damage; replay then says where it stopped and exits 1.
        """
    )

    @Argument(help: "The recording.")
    var file: String

    @Flag(help: "Print the snapshots as JSON lines (as `ringside watch --json`), no TUI.")
    var json = false

    @Flag(help: "Print the recording's header and a summary, no TUI.")
    var info = false

    @Option(help: "Playback speed in the TUI: 0.25 to 16.")
    var speed: Double = 1

    @OptionGroup var frameRate: FrameRateOption

    func validate() throws {
        if !ReplayLink.speeds.contains(speed) {
            throw ValidationError("--speed must be one of " + ReplayLink.speeds.map { formatSpeed($0) }.joined(separator: ", "))
        }
        if json && info { throw ValidationError("--json or --info, not both") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let reader: RecordingReader
        do { reader = try RecordingReader(path: file) } catch {
            warn("\(error)")
            throw ExitCode.failure
        }
        guard let header = reader.header else {
            warn("\(file): \(reader.stopReason ?? "unreadable")")
            throw ExitCode.failure
        }
        if json { return try printJSON(reader, header) }
        if info { return try printInfo(reader, header) }
        if isatty(STDIN_FILENO) == 0 || isatty(STDOUT_FILENO) == 0 {
            warn("the replay TUI needs a terminal on standard input and output; use --json (or --info) in scripts")
            throw ExitCode(2)
        }
        let link = ReplayLink(reader: reader, name: file)
        link.speed = speed
        var options = TUIOptions(title: "Ringside", accel: "")
        options.maxFramesPerSecond = frameRate.fps
        options.replay = true
        var runInfo = RunInfo(telemetrySocket: file, telemetryIsHub: false)
        runInfo.recording = file
        options.runInfo = runInfo
        let status = runTUI(link: link, options: options)
        if let why = link.stopReason { warn("\(file): \(why)") }
        if status != 0 { throw ExitCode(status) }
    }

    func printJSON(_ reader: RecordingReader, _ header: RecordingHeader) throws {
        var reader = reader
        var stream = TelemetryStream()
        var lines: [String] = []
        while let e = reader.next() {
            switch e.direction {
            case .fromKernel:
                let wall = Double(header.startWallNs) / 1e9 + Double(e.timeNs) / 1e9
                stream.feed(e.bytes, at: wall) { item, _ in
                    if case .snapshot(_, let model, _) = item, model.isComplete { lines.append(model.snapshotJSON()) }
                }
                for l in lines { guard writeLine(l) else { throw ExitCode.failure } }
                lines.removeAll(keepingCapacity: true)
            case .note:
                // A reconnect: the live decoder started afresh there, so does this one.
                if e.bytes.starts(with: Array("connected".utf8)) { stream.decoder.reset() }
            case .toKernel:
                break
            }
        }
        if let why = reader.stopReason {
            warn("\(file): \(why)")
            throw ExitCode.failure
        }
    }

    func printInfo(_ reader: RecordingReader, _ header: RecordingHeader) throws {
        var reader = reader
        var counts: [RecordingDirection: Int] = [:]
        var bytes: [RecordingDirection: Int] = [:]
        var stream = TelemetryStream()
        var snapshots = 0, events = 0, replies = 0, hellos = 0, errors = 0
        while let e = reader.next() {
            counts[e.direction, default: 0] += 1
            bytes[e.direction, default: 0] += e.bytes.count
            if e.direction == .fromKernel {
                stream.feed(e.bytes, at: 0) { item, _ in
                    switch item {
                    case .snapshot: snapshots += 1
                    case .message(.event, _): events += 1
                    case .message(.reply, _): replies += 1
                    case .message(.hello, _): hellos += 1
                    case .decodeError: errors += 1
                    default: break
                    }
                }
            }
        }
        let start = Date(timeIntervalSince1970: Double(header.startWallNs) / 1e9)
        let formatter = ISO8601DateFormatter()
        _ = writeLine("recording format version \(header.version), started \(formatter.string(from: start))")
        for line in header.info.split(separator: "\n") { _ = writeLine("  \(line)") }
        if let h = header.hello {
            let queues = h.queues.map { "\($0.name)[\($0.size)]" }.joined(separator: " ")
            _ = writeLine("hello: \(h.kernelVersion) protocol \(h.protocolVersion), mac \(macAddressText(h.mac)), queues \(queues)")
        } else {
            _ = writeLine("hello: none in the header")
        }
        _ = writeLine(String(format: "duration %.3f s, ", Double(reader.timeNs) / 1e9)
                      + "\(counts[.fromKernel] ?? 0) reads (\(bytes[.fromKernel] ?? 0) bytes) from the kernel, "
                      + "\(counts[.toKernel] ?? 0) writes (\(bytes[.toKernel] ?? 0) bytes) to it, \(counts[.note] ?? 0) notes")
        _ = writeLine("\(hellos) hellos, \(snapshots) snapshots, \(events) events, \(replies) replies, \(errors) frames that did not decode")
        if let why = reader.stopReason {
            warn("\(file): \(why)")
            throw ExitCode.failure
        }
    }
}

func formatSpeed(_ s: Double) -> String {
    switch s {
    case 0.25: return "0.25"
    case 0.5: return "0.5"
    default: return String(Int(s))
    }
}
