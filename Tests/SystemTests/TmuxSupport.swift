import Foundation
import XCTest
import RingsideKit
import RingsideTestSupport

/// A private tmux server (-S socket in a temp dir) running one command in a session "app".
/// tmux is started with posix_spawn, an empty signal mask and default dispositions
/// (ChildProcess), so SIGWINCH reaches the app even when the test runner blocks signals.
final class TmuxSession: @unchecked Sendable {   // the key-lag state: on lagQueue only
    let dir: String
    var socket: String { dir + "/tmux.sock" }
    var statusFile: String { dir + "/status" }
    var sttyFile: String { dir + "/stty" }

    init(command: String, width: Int, height: Int) throws {
        dir = NSTemporaryDirectory() + "rs-tmux-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // After the app: its status, the terminal modes (restored?), a marker, then wait.
        let shell = "\(command); echo $? > \(statusFile); stty -a > \(sttyFile) 2>&1; echo TERMINAL-RESTORED; sleep 600"
        try run(["new-session", "-d", "-s", "app", "-x", String(width), "-y", String(height), shell])
    }

    /// `ringside ARGUMENTS` (a shell line: redirections allowed) with the terminal type and locale
    /// every TUI test runs it under.
    convenience init(ringside arguments: String, width: Int, height: Int) throws {
        guard let binary = ringsideBinary() else { throw RingsideError("ringside binary not found (swift build, or set RINGSIDE_BIN)") }
        try self.init(command: "env TERM=xterm-256color LANG=C.UTF-8 \(binary) \(arguments)", width: width, height: height)
    }

    deinit {
        _ = try? run(["kill-server"])
        try? FileManager.default.removeItem(atPath: dir)
    }

    @discardableResult
    func run(_ args: [String]) throws -> String {
        let out = dir + "/tmux-\(UInt32.random(in: 0...UInt32.max)).out"
        defer { unlink(out) }
        let child = try ChildProcess(argv: ["tmux", "-S", socket] + args, outputFile: out)
        guard let status = child.wait(timeout: 10) else {
            child.signal(SIGKILL); child.wait(timeout: nil)
            throw RingsideError("tmux \(args.joined(separator: " ")) hung")
        }
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        guard status == .exited(0) else { throw RingsideError("tmux \(args.first ?? "") failed (\(status)): \(text)") }
        return text
    }

    func capture() -> String { (try? run(["capture-pane", "-p", "-t", "app"])) ?? "" }

    func send(_ keys: String...) throws {
        guard Self.keyLag > 0 else {
            try run(["send-keys", "-t", "app"] + keys)
            return
        }
        try sendLate(keys)
    }

    /// RINGSIDE_TMUX_KEY_LAG=SECONDS: the app reads each key that late, as on a loaded host.
    static let keyLag = Double(ProcessInfo.processInfo.environment["RINGSIDE_TMUX_KEY_LAG"] ?? "") ?? 0
    private let lagQueue = DispatchQueue(label: "tmux-key-lag")
    private var lagStopped: [pid_t] = []
    private var lagGeneration = 0

    /// The keys go in while the app is stopped; it runs again `keyLag` seconds later (or at the
    /// next send, for a moment, so it reads the earlier keys before these). A wait whose condition
    /// the screen from before the keys already meets returns that screen, and what follows fails.
    /// The app is stopped, not the pane's shell: tmux resumes a pane whose own process stops.
    private func sendLate(_ keys: [String]) throws {
        let shell = pid_t((try run(["display-message", "-p", "-t", "app", "#{pane_pid}"])).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        let children = ((try? String(contentsOfFile: "/proc/\(shell)/task/\(shell)/children", encoding: .utf8)) ?? "")
            .split(separator: " ").compactMap { pid_t($0) }
        let generation: Int = lagQueue.sync {
            if !lagStopped.isEmpty {
                for child in lagStopped { kill(child, SIGCONT) }
                usleep(50_000)   // the earlier keys are read and drawn
            }
            for child in children { kill(child, SIGSTOP) }
            lagStopped = children
            lagGeneration += 1
            return lagGeneration
        }
        try run(["send-keys", "-t", "app"] + keys)
        lagQueue.asyncAfter(deadline: .now() + Self.keyLag) { [self] in
            guard lagGeneration == generation else { return }
            for child in lagStopped { kill(child, SIGCONT) }
            lagStopped = []
        }
    }

    func resize(width: Int, height: Int) throws {
        try run(["resize-window", "-t", "app", "-x", String(width), "-y", String(height)])
    }

    /// Polls the pane every 20 ms until `condition` holds; returns the last capture.
    @discardableResult
    func waitFor(_ what: String, timeout: Double = 10, file: StaticString = #filePath, line: UInt = #line,
                 _ condition: (String) -> Bool) -> String {
        let deadline = monotonicSeconds() + timeout
        var screen = ""
        while monotonicSeconds() < deadline {
            screen = capture()
            if condition(screen) { return screen }
            usleep(20_000)
        }
        XCTFail("timed out after \(timeout) s waiting for \(what); screen:\n\(screen)", file: file, line: line)
        return screen
    }

    func exitStatus(timeout: Double = 10) -> Int32? {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            if let s = try? String(contentsOfFile: statusFile, encoding: .utf8),
               let v = Int32(s.trimmingCharacters(in: .whitespacesAndNewlines)) { return v }
            usleep(20_000)
        }
        return nil
    }
}


/// Hex of `bytes` as `hexdump -C` prints a run that starts at column `start` of a line
/// (two spaces between the eighth and ninth byte).
func hexdumpRun(_ bytes: [UInt8], startColumn start: Int) -> String {
    var s = ""
    for (i, b) in bytes.enumerated() {
        let col = start + i
        if i > 0 { s += col == 8 ? "  " : " " }
        s += String(format: "%02x", b)
    }
    return s
}

/// The number after `label` on the first line containing `marker` (e.g. "pkts" in net0.rx's stats).
func number(after label: String, inLineAfter marker: String, of screen: String) -> Int? {
    let lines = screen.components(separatedBy: "\n")
    guard let i = lines.firstIndex(where: { $0.contains(marker) }) else { return nil }
    for line in lines[i...].prefix(4) {
        guard let r = line.range(of: label + " ") else { continue }
        let digits = line[r.upperBound...].prefix { $0.isNumber || $0 == "." || $0 == "k" }
        if digits.hasSuffix("k") { return Int((Double(digits.dropLast()) ?? 0) * 1000) }
        return Int(digits)
    }
    return nil
}

/// A test case that boots a guest for the TUI to watch and always stops it afterwards.
class TmuxGuestTestCase: XCTestCase {
    var qemu: QEMUInstance?
    var udpPort: UInt16 = 0

    var kernelPath: String {
        kernelPathForTests()
    }

    /// Fails (never skips) when tmux, QEMU, any of `extraTools`, the kernel or the binary is
    /// missing: the XCTFail is the verdict, the throw only ends the test.
    func requireTools(_ extraTools: [String] = []) throws {
        for tool in ["tmux", "qemu-system-x86_64"] + extraTools where findExecutable(tool) == nil {
            XCTFail("\(tool) is not installed (scripts/ensure-deps.sh installs it)")
            throw XCTSkip("no \(tool)")
        }
        guard FileManager.default.isReadableFile(atPath: kernelPath) else {
            XCTFail("kernel not found at \(kernelPath): make -C kernel")
            throw XCTSkip("no kernel")
        }
        guard let binary = ringsideBinary(), FileManager.default.isExecutableFile(atPath: binary) else {
            XCTFail("ringside binary not found at \(ringsideBinary() ?? repositoryRoot + "/.build/debug/ringside") (swift build, or set RINGSIDE_BIN)")
            throw XCTSkip("no binary")
        }
    }

    /// Boots the kernel under user networking and waits for it to be ready.
    func startGuest(requiring extraTools: [String] = []) throws -> QEMUInstance {
        try requireTools(extraTools)
        var c = QEMUConfiguration()
        c.kernel = kernelPath
        c.accel = .tcg
        udpPort = try freePort(udp: true)
        c.network = .user(udpPort: udpPort, httpPort: try freePort(udp: false))
        let q = try QEMUInstance(configuration: c)
        qemu = q
        try q.waitForSerial("ringside: ready", timeout: 30)
        return q
    }

    /// Echoes datagrams until one comes back (the guest's network is up).
    func waitForEcho(_ client: UDPSocket) {
        for _ in 0..<50 {
            try? client.send(Array("warm-up".utf8), toPort: udpPort)
            if client.receive(timeout: 0.2) != nil { return }
        }
        XCTFail("no UDP echo from the guest")
    }

    override func tearDown() {
        qemu?.stop(grace: 2)
        if let q = qemu, q.process.isRunning { XCTFail("QEMU still running after stop") }
        qemu = nil
        super.tearDown()
    }
}
