import Foundation

/// How a QEMU run ended, as the user should hear about it.
public enum RunOutcome: Equatable, Sendable {
    /// The guest wrote `code` to the isa-debug-exit port (0xf4); QEMU exited with `(code << 1) | 1`.
    case guestExit(code: Int32)
    /// We stopped QEMU (QMP quit or signal).
    case stoppedByUs
    /// QEMU ended by itself for another reason (error, crash, killed from outside, guest power-off).
    case qemuEnded(ExitStatus)
}

/// One running QEMU, its run directory and its QMP connection.
public final class QEMUInstance: @unchecked Sendable {
    public let configuration: QEMUConfiguration
    public let run: RunDirectory
    public let process: ChildProcess
    /// The full argv (wrapper, binary, arguments).
    public let commandLine: [String]
    /// Monotonic time just before QEMU was spawned.
    public let startTime: Double
    /// Keep the run directory when stopping (for debugging).
    public var keepRunDirectory = false
    private var qmp: QMPClient?
    private var stopRequested = false
    private var stopped = false
    private let lock = NSLock()

    /// Creates a run directory and starts QEMU. Throws if QEMU or the kernel cannot be found or QEMU
    /// cannot be spawned; a QEMU that starts and then rejects its arguments shows up as an early exit
    /// (see `waitUntilStarted`).
    public init(configuration: QEMUConfiguration, runBase: String? = nil) throws(RingsideError) {
        if findExecutable(configuration.wrapper.first ?? configuration.qemuBinary) == nil {
            throw RingsideError("\(configuration.wrapper.first ?? configuration.qemuBinary) not found in PATH (Debian: apt-get install qemu-system-x86)")
        }
        if configuration.wrapper.isEmpty == false, findExecutable(configuration.qemuBinary) == nil {
            throw RingsideError("\(configuration.qemuBinary) not found in PATH (Debian: apt-get install qemu-system-x86)")
        }
        if let kernel = configuration.kernel, access(kernel, R_OK) != 0 {
            throw RingsideError("kernel \(kernel) cannot be read: \(Errno.current)")
        }
        let problems = configuration.validationProblems()
        if !problems.isEmpty { throw RingsideError(problems.joined(separator: "; ")) }
        self.configuration = configuration
        run = try RunDirectory.create(base: runBase)
        // serial.log exists from the start so followers can open it at once.
        _ = FileManager.default.createFile(atPath: run.serialLog, contents: nil, attributes: [.posixPermissions: 0o600])
        commandLine = configuration.commandLine(in: run)
        startTime = monotonicSeconds()
        do {
            process = try ChildProcess(argv: commandLine, outputFile: run.qemuLog)
        } catch {
            run.remove()
            throw error
        }
    }

    deinit {
        if !stopped { _ = stop(grace: 1) }
    }

    /// QEMU's own output (stdout + stderr) so far.
    public var qemuOutput: String { readTextFile(run.qemuLog) }
    /// The guest's serial output so far.
    public var serialOutput: String { readTextFile(run.serialLog) }

    /// Connects to QMP (once; later calls return the same client).
    public func qmpClient(timeout: Double = 10) throws(RingsideError) -> QMPClient {
        lock.lock(); defer { lock.unlock() }
        if let qmp { return qmp }
        let deadline = monotonicSeconds() + timeout
        while true {
            do {
                let client = try QMPClient(path: run.qmpSocket, timeout: 0.2)
                qmp = client
                return client
            } catch {
                if let status = process.poll() {
                    throw RingsideError("QEMU ended (\(status)) before QMP answered. QEMU said: \(qemuOutput.trimmingCharacters(in: .whitespacesAndNewlines))")
                }
                if monotonicSeconds() >= deadline { throw error }
            }
        }
    }

    /// Waits until QMP answers, i.e. QEMU accepted its command line and is running.
    public func waitUntilStarted(timeout: Double = 10) throws(RingsideError) {
        _ = try qmpClient(timeout: timeout)
    }

    /// Waits until the serial log contains `text`. Throws with the log and QEMU's output if QEMU ends
    /// first or the time runs out.
    @discardableResult
    public func waitForSerial(_ text: String, timeout: Double) throws(RingsideError) -> String {
        let deadline = monotonicSeconds() + timeout
        while true {
            let log = serialOutput
            if log.contains(text) { return log }
            if let status = process.poll() {
                throw RingsideError("QEMU ended (\(status)) before the serial log showed \"\(text)\".\nQEMU said: \(qemuOutput)\nserial.log:\n\(log)")
            }
            if monotonicSeconds() >= deadline {
                throw RingsideError("serial log did not show \"\(text)\" within \(timeout) s.\nserial.log:\n\(log)\nQEMU said: \(qemuOutput)")
            }
            usleep(10_000)
        }
    }

    /// How the run ended, given QEMU's exit status.
    public func outcome(of status: ExitStatus) -> RunOutcome {
        if stopRequested { return .stoppedByUs }
        if configuration.debugExit, case let .exited(code) = status, code & 1 == 1 {
            // QEMU also exits 1 on its own errors, which it always explains on stderr.
            // Its warnings ("warning: host doesn't support requested feature ...") are not errors.
            let errorLines = qemuOutput.split(separator: "\n").filter {
                !$0.trimmingCharacters(in: .whitespaces).isEmpty && !$0.contains("warning:")
            }
            if code != 1 || errorLines.isEmpty {
                return .guestExit(code: code >> 1)
            }
        }
        return .qemuEnded(status)
    }

    /// A sentence about an unrequested end of QEMU, with what QEMU printed.
    public func explain(_ status: ExitStatus) -> String {
        let said = qemuOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        switch outcome(of: status) {
        case let .guestExit(code):
            return "the guest ended QEMU through isa-debug-exit with code \(code)" + (code == 0 ? " (success)" : " (failure)")
        case .stoppedByUs:
            return "QEMU stopped (\(status))"
        case .qemuEnded:
            return "QEMU ended unexpectedly (\(status))" + (said.isEmpty ? "" : ": \(said)")
        }
    }

    /// Stops QEMU: QMP `quit`, then SIGTERM after `grace` seconds, then SIGKILL; always reaps the
    /// process and removes the run directory (unless `keepRunDirectory`). Returns QEMU's exit status.
    @discardableResult
    public func stop(grace: Double = 3) -> ExitStatus {
        lock.lock()
        let alreadyEnded = process.poll()
        if alreadyEnded == nil { stopRequested = true }
        lock.unlock()
        var status = alreadyEnded
        if status == nil {
            // Only talk QMP if it is (or quickly becomes) reachable.
            if let client = try? qmpClient(timeout: 0.5) {
                client.quit(timeout: grace)
            }
            status = process.wait(timeout: grace)
        }
        if status == nil {
            process.signal(SIGTERM)
            status = process.wait(timeout: grace)
        }
        if status == nil {
            process.signal(SIGKILL)
            status = process.wait(timeout: nil)
        }
        lock.lock()
        qmp?.close()
        qmp = nil
        stopped = true
        lock.unlock()
        if !keepRunDirectory { run.remove() }
        return status ?? .signaled(SIGKILL)
    }
}
