import ArgumentParser
import Foundation
import RingsideKit
import RingsideTUI

/// `ringside wrap -- qemu-system-x86_64 …`: the user's own QEMU line, with guest RAM in a shared
/// file and QMP sockets added, and the TUI on it.
struct Wrap: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run your own QEMU command line and watch every virtio queue of its guest.",
        usage: "ringside wrap [--headless] [--keep-running] [--rate HZ] -- qemu-system-x86_64 ARGS...",
        discussion: """
        Adds `-object memory-backend-file,…,share=on` sized from your -m (QEMU's 128 MiB without one), \
        `memory-backend=` merged into your -machine (or a -machine of its own), and two QMP sockets \
        (one for the TUI, one for `ringside watch/ctl --qmp`), then opens the TUI on the guest's rings, \
        read from its memory. `q` stops QEMU (--keep-running leaves it running and prints how to \
        re-attach). --headless prints the paths and waits for QEMU to end (Ctrl-C stops it). QEMU's \
        own output goes to qemu.log in the run directory printed at start.
        """
    )

    @Flag(help: "No TUI: print where to attach and wait for QEMU to exit.")
    var headless = false

    @Flag(help: "Leave QEMU running when the TUI quits (or on Ctrl-C with --headless).")
    var keepRunning = false

    @Option(help: "Ring samples per second read from guest memory.")
    var rate: Double = 60

    @Option(help: "The guest RAM file (default: /dev/shm/ringside-wrap-PID.ram).")
    var memoryPath: String?

    @Argument(parsing: .postTerminator, help: "The QEMU command line.")
    var qemu: [String] = []

    func validate() throws {
        if qemu.isEmpty { throw ValidationError("give the QEMU command line after --") }
        if !(rate >= 1 && rate <= 1000) { throw ValidationError("--rate must be between 1 and 1000") }
    }

    func run() throws {
        var template = Array((NSTemporaryDirectory() + "ringside-wrap-XXXXXX").utf8CString)
        guard mkdtemp(&template) != nil else { warn("cannot create a run directory"); throw ExitCode.failure }
        let dir = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let memory = memoryPath ?? "/dev/shm/ringside-wrap-\(getpid()).ram"
        let qmp = dir + "/qmp.sock", qmpUser = dir + "/qmp-ctl.sock"
        let argv: [String]
        do {
            argv = try QEMUGuestArguments.wrap(qemu, memoryPath: memory, qmpPath: qmp).argv + QEMUConfiguration.qmpArguments(socket: qmpUser)
        } catch {
            warn("\(error)")
            throw ExitCode(2)
        }
        let child: ChildProcess
        do {
            child = try ChildProcess(argv: argv, outputFile: dir + "/qemu.log")
        } catch {
            warn("\(error)")
            throw ExitCode.failure
        }
        warn("QEMU pid \(child.pid), run directory \(dir)")
        warn("watch/ctl: ringside watch --qmp \(qmpUser) --memory \(memory) --json")
        if ProcessInfo.processInfo.environment["RINGSIDE_SHOW_COMMAND"] != nil { warn("command: \(shellQuoted(argv))") }
        func stopQEMU() {
            if let c = try? QMPClient(path: qmpUser, timeout: 1) { c.quit() }
            if child.wait(timeout: 3) == nil { child.signal(SIGKILL); child.wait(timeout: 3) }
            unlink(memory)
            try? FileManager.default.removeItem(atPath: dir)
        }
        // QEMU must have created the memory file and the sockets before anyone reads them.
        let deadline = monotonicSeconds() + 10
        while monotonicSeconds() < deadline, !(FileManager.default.fileExists(atPath: memory) && FileManager.default.fileExists(atPath: qmpUser)) {
            if let status = child.poll() {
                warn("QEMU ended at once (\(status)): \(readTextFile(dir + "/qemu.log").suffix(2000))")
                throw ExitCode.failure
            }
            usleep(20_000)
        }
        var code: Int32 = 0
        if headless {
            installStopSignalHandlers(alsoUnblock: [])
            writeLine("attach: ringside attach --qmp \(qmp) --memory \(memory)")
            while true {
                if let status = child.poll() { warn("QEMU ended (\(status))"); code = 0; break }
                if receivedStopSignal.load(ordering: .relaxed) != 0 { break }
                usleep(50_000)
            }
        } else {
            var options = TUIOptions(title: "Ringside wrap", accel: "")
            options.maxFramesPerSecond = 30
            var info = RunInfo(telemetrySocket: "", telemetryIsHub: false)
            info.guestMemory = memory
            info.runDirectory = dir
            info.qmpSocket = qmp
            info.userQMPSocket = qmpUser
            info.qemuLog = dir + "/qemu.log"
            info.qemuPID = child.pid
            options.runInfo = info
            let link = GuestPoller(qmpPath: qmp, memoryPath: memory, rate: rate)
            let status = runTUI(link: link, options: options)
            link.close()
            code = (status == 0 || status >= 128) ? 0 : status
        }
        if child.poll() == nil && keepRunning {
            warn("QEMU keeps running (pid \(child.pid)): ringside attach --qmp \(qmp) --memory \(memory)")
        } else {
            stopQEMU()
        }
        if code != 0 { throw ExitCode(code) }
    }
}
