import ArgumentParser
import Foundation
import RingsideKit
import RingsideTUI

extension Accelerator: ExpressibleByArgument {}
extension Machine: ExpressibleByArgument {}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot the Ringside kernel in QEMU.",
        discussion: """
        QEMU runs with user-mode networking: host UDP 127.0.0.1:<udp-port> reaches the guest's UDP echo \
        service (port 7) and host TCP 127.0.0.1:<http-port> its HTTP status page (port 80). Each run gets \
        a private directory (under $TMPDIR or /tmp) with serial.log, console.sock, telemetry.sock, qmp.sock (held \
        by ringside) and qmp-user.sock (a QMP socket for you; press i in the TUI for all paths), removed \
        when QEMU stops.

        With --headless the guest's serial output streams to standard output until Ctrl-C, --timeout, or \
        QEMU ending. Ctrl-C stops QEMU cleanly (QMP quit, then SIGTERM, then SIGKILL). The exit status is 0 \
        after Ctrl-C, --timeout, or the guest exiting through isa-debug-exit with code 0; it is non-zero \
        when QEMU fails or ends by itself.
        """
    )

    @Flag(help: "Stream the serial console to standard output instead of opening the TUI.")
    var headless = false

    @OptionGroup var boot: KernelQEMUOptions

    @Option(help: "Firmware (pc only): qboot (fast; the default when installed), seabios (QEMU's default), or a path to an image for -bios.")
    var firmware: String?

    @Flag(help: "Share guest RAM with the host (a memory-backend-file in /dev/shm, removed at the end) and show each queue three ways in the TUI: the driver's telemetry, the rings in memory, the device's QMP view.")
    var sharedMemory = false

    @Option(help: "virtio-net RX queue size: a power of two from 256 to 1024 (QEMU's default: 256).")
    var rxQueueSize: Int?

    @Option(help: "virtio-net TX queue size: a power of two from 256 to 1024. QEMU 7.2 caps it at 256 unless the netdev is vhost-user.")
    var txQueueSize: Int?

    @Flag(help: "Offer packed virtqueues (virtio 1.2, 2.8): packed=on on the virtio-net and virtio-serial devices. The kernel takes them unless its command line says virtio.packed=off.")
    var packed = false

    @Option(help: "Kernel command line, e.g. \"ip=10.0.2.15/24 gw=10.0.2.2\".")
    var append: String = ""

    @Option(help: "Stop QEMU after this many seconds.")
    var timeout: Double?

    @Option(help: "Write every frame crossing the network device to this pcap file.")
    var pcap: String?

    @Option(help: ArgumentHelp("Record the telemetry channel to this file while the run lasts (the TUI, --headless, watch and ctl alike; every command and reply included), for `ringside replay`.", valueName: "FILE"))
    var record: String?

    @OptionGroup var pcapDirectory: PcapDirectoryOption

    @Flag(help: "Keep the run directory after QEMU stops.")
    var keepRunDirectory = false

    @Argument(parsing: .postTerminator, help: "Extra raw QEMU arguments, after `--`.")
    var qemuExtra: [String] = []

    func validate() throws {
        if let rxQueueSize, let p = QueueSizeLimits.problem(with: rxQueueSize, name: "--rx-queue-size") { throw ValidationError(p) }
        if let txQueueSize, let p = QueueSizeLimits.problem(with: txQueueSize, name: "--tx-queue-size") { throw ValidationError(p) }
        if let timeout, !(timeout > 0) { throw ValidationError("--timeout must be a positive number of seconds") }
        if append.contains("\"") || append.contains("\n") { throw ValidationError("--append must not contain quotes or newlines") }
    }

    func run() throws {
        installStopSignalHandlers()
        let openTUI = !headless
        if openTUI && (isatty(STDIN_FILENO) == 0 || isatty(STDOUT_FILENO) == 0) {
            warn("the TUI needs a terminal on standard input and output; use --headless to stream the serial console instead")
            throw ExitCode(2)
        }
        let kernelPath = try boot.kernelPath()
        if let txQueueSize, txQueueSize > QueueSizeLimits.txMaximumWithoutVhostUser {
            warn("note: QEMU caps the TX queue at \(QueueSizeLimits.txMaximumWithoutVhostUser) entries with user-mode networking; --tx-queue-size \(txQueueSize) will give 256")
        }

        var config = QEMUConfiguration()
        boot.configure(&config, kernelPath: kernelPath)
        config.append = append
        let exists: (String) -> Bool = { FileManager.default.isReadableFile(atPath: $0) }
        switch Firmware.resolve(firmware ?? (exists(Firmware.qbootPath) ? "qboot" : "seabios"), fileExists: exists) {
        case .success(let path): config.firmware = path
        case .failure(let error):
            warn("\(error)")
            throw ExitCode(2)
        }
        config.rxQueueSize = rxQueueSize
        config.txQueueSize = txQueueSize
        config.packedRings = packed
        config.pcapFile = pcap
        config.extraArguments = qemuExtra
        config.userQMP = true
        let sharedMemoryPath = sharedMemory ? "/dev/shm/ringside-run-\(getpid()).ram" : nil
        config.sharedMemoryPath = sharedMemoryPath
        defer { if let sharedMemoryPath { unlink(sharedMemoryPath) } }

        let qemu: QEMUInstance
        do {
            qemu = try QEMUInstance(configuration: config)
        } catch {
            warn("\(error)")
            throw ExitCode.failure
        }
        qemu.keepRunDirectory = keepRunDirectory
        warn("QEMU pid \(qemu.process.pid), accel \(boot.accel.resolved().rawValue), run directory \(qemu.run.path)")
        warn("UDP echo: 127.0.0.1:\(boot.udpPort) -> guest :7, HTTP: 127.0.0.1:\(boot.httpPort) -> guest :80, QMP (yours): \(qemu.run.userQMPSocket), QMP (ringside): \(qemu.run.qmpSocket), console: \(qemu.run.consoleSocket)")
        if ProcessInfo.processInfo.environment["RINGSIDE_SHOW_COMMAND"] != nil {
            warn("command: \(shellQuoted(qemu.commandLine))")
        }
        // QEMU serves one client on console.sock: hold it and re-serve telemetry to any number.
        var hub: TelemetryHub?
        var recorder: TelemetryRecorder?
        if let record {
            do {
                recorder = try TelemetryRecorder(path: record, info: recordingInfo(source: qemu.run.consoleSocket, recorder: "ringside run --record"))
            } catch {
                warn("\(error)")
                qemu.stop()
                throw ExitCode.failure
            }
        }
        defer {
            if let recorder {
                recorder.close()
                warn("recorded \(recorder.records) records (\(recorder.payloadBytes) bytes of telemetry) to \(recorder.path), \(recorder.fileBytes) bytes" + (recorder.error.map { ": " + $0 } ?? ""))
            }
        }
        do {
            hub = try TelemetryHub(consolePath: qemu.run.consoleSocket, listenPath: qemu.run.telemetrySocket)
            hub?.recorder = recorder
            hub?.start()
            warn("telemetry for watch/ctl at \(qemu.run.telemetrySocket)")
        } catch {
            warn("telemetry hub not started: \(error)" + (recorder != nil ? " (so nothing is recorded)" : ""))
        }
        let code: Int32
        if openTUI {
            // The TUI is one more client of the hub, so `watch`/`ctl` keep working beside it.
            let socket = hub != nil ? qemu.run.telemetrySocket : qemu.run.consoleSocket
            var options = TUIOptions(title: "Ringside", accel: boot.accel.resolved().rawValue)
            options.qmpSocketPath = qemu.run.qmpSocket
            if let sharedMemoryPath {
                options.memoryPath = sharedMemoryPath
                options.memoryQMPSocketPath = qemu.run.memoryQMPSocket
            }
            var info = RunInfo(telemetrySocket: socket, telemetryIsHub: hub != nil)
            info.runDirectory = qemu.run.path
            info.qmpSocket = qemu.run.qmpSocket
            info.userQMPSocket = qemu.run.userQMPSocket
            info.guestMemory = sharedMemoryPath
            if sharedMemoryPath != nil { info.memoryQMPSocket = qemu.run.memoryQMPSocket }
            info.serialLog = qemu.run.serialLog
            info.qemuLog = qemu.run.qemuLog
            info.udpPort = UInt16(boot.udpPort)
            info.httpPort = UInt16(boot.httpPort)
            info.qemuPID = qemu.process.pid
            info.recording = record
            options.runInfo = info
            // Polled by the TUI's loop: reaps QEMU as soon as it ends (no zombie until `q`) and
            // tells the screen why, in QEMU's own words.
            options.processEnded = { [qemu] in
                guard let status = qemu.process.poll() else { return nil }
                return Run.endedLines(qemu, status)
            }
            if let pcapDir = pcapDirectory.pcapDir { options.pcapDirectory = pcapDir }
            let status = runTUI(socketPath: socket, options: options)
            // The hub lives in the run directory: stop it before QEMU's stop removes the directory.
            hub?.stop()
            hub = nil
            if let ended = qemu.process.poll() {
                let message = qemu.explain(ended)
                switch qemu.outcome(of: ended) {
                case .guestExit(0):
                    warn(message)
                    code = 0
                case let .guestExit(guestCode):
                    warn(message)
                    code = min(max(guestCode, 1), 125)
                default:
                    warn(message)
                    code = 1
                }
                _ = qemu.stop()   // removes the run directory
            } else {
                _ = qemu.stop()
                code = (status == 0 || status >= 128) ? 0 : status
            }
        } else {
            code = stream(qemu)
        }
        hub?.stop()
        if code != 0 { throw ExitCode(code) }
    }

    /// What the TUI shows when QEMU has ended: a summary, then QEMU's last lines of output.
    static func endedLines(_ qemu: QEMUInstance, _ status: ExitStatus) -> [String] {
        let summary: String
        switch qemu.outcome(of: status) {
        case let .guestExit(code): summary = "the guest ended QEMU (isa-debug-exit code \(code))"
        case .stoppedByUs: summary = "QEMU stopped (\(status))"
        case .qemuEnded: summary = "QEMU exited (\(status))"
        }
        let said = qemu.qemuOutput.split(separator: "\n").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return [summary] + said.suffix(6) + (said.isEmpty ? ["(QEMU printed nothing)"] : [])
    }

    /// Copies serial output to stdout until a signal, the timeout, or QEMU's end. Returns the exit code.
    /// The guest's output is text with its terminal controls escaped (`TerminalSafeStream`).
    private func stream(_ qemu: QEMUInstance) -> Int32 {
        let follower = FileFollower(path: qemu.run.serialLog)
        let deadline = timeout.map { qemu.startTime + $0 }
        var stdoutOK = true
        var escaper = TerminalSafeStream()
        func drain() {
            let bytes = escaper.escape(follower.readNew())
            if !bytes.isEmpty && stdoutOK { stdoutOK = writeStandardOutput(bytes) }
        }
        while true {
            drain()
            if !stdoutOK {
                warn("standard output closed: stopping QEMU")
                qemu.stop()
                return 1
            }
            let sig = receivedStopSignal.load(ordering: .relaxed)
            if sig != 0 {
                warn("\(sig == SIGINT ? "interrupted" : sig == SIGHUP ? "hung up" : "terminated"): stopping QEMU")
                let status = qemu.stop()
                drain()
                warn("QEMU stopped (\(status))")
                return 0
            }
            if let deadline, monotonicSeconds() >= deadline {
                warn("timeout after \(timeout!) s: stopping QEMU")
                qemu.stop()
                return 0
            }
            if let status = qemu.process.poll() {
                drain()
                let message = qemu.explain(status)
                let outcome = qemu.outcome(of: status)
                qemu.stop()
                switch outcome {
                case .guestExit(0):
                    warn(message)
                    return 0
                case let .guestExit(code):
                    warn(message)
                    return code == 0 ? 1 : min(max(code, 1), 125)
                default:
                    warn(message)
                    return 1
                }
            }
            usleep(20_000)
        }
    }
}
