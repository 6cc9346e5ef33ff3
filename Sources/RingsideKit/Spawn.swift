import Foundation

/// How a child process ended.
public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    init(waitStatus s: Int32) {
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import.
        if s & 0x7f == 0 { self = .exited((s >> 8) & 0xff) } else { self = .signaled(s & 0x7f) }
    }

    public var description: String {
        switch self {
        case let .exited(code): return "exit status \(code)"
        case let .signaled(sig): return "killed by signal \(sig)"
        }
    }
}

/// A child process started with `posix_spawn`.
///
/// The child gets an empty signal mask and default signal dispositions (POSIX_SPAWN_SETSIGMASK +
/// POSIX_SPAWN_SETSIGDEF): test runners and our own signal handling block or catch signals, and a
/// child would otherwise inherit that and ignore SIGTERM. The child gets its own process group, so a
/// Ctrl-C at the terminal reaches only `ringside`, which then stops QEMU cleanly.
/// Standard output and error go to a file, never a pipe (a long-lived child holding a pipe open is
/// how Foundation `Process` + `Pipe` hang).
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    public let argv: [String]
    private let lock = NSLock()
    private var _status: ExitStatus?

    /// Starts `argv[0]` (looked up in PATH) with stdin from /dev/null and stdout+stderr appended to `outputFile`.
    public init(argv: [String], outputFile: String?, newProcessGroup: Bool = true) throws(RingsideError) {
        precondition(!argv.isEmpty)
        self.argv = argv
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attr, &all)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newProcessGroup {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attr, 0)
        }
        posix_spawnattr_setflags(&attr, Int16(flags))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let out = outputFile ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cargs.append(nil)
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, &attr, cargs, environ)
        if rc != 0 {
            throw RingsideError("cannot start \(argv[0]): \(Errno(rawValue: rc))")
        }
        self.pid = pid
    }

    /// The exit status if the child has ended (reaps it), nil while it runs.
    public func poll() -> ExitStatus? {
        lock.lock(); defer { lock.unlock() }
        if let _status { return _status }
        var s: Int32 = 0
        let r = waitpid(pid, &s, WNOHANG)
        if r == pid {
            _status = ExitStatus(waitStatus: s)
        } else if r < 0 && Errno.current == .noChildProcess {
            _status = .exited(-1) // reaped elsewhere; should not happen
        }
        return _status
    }

    public var isRunning: Bool { poll() == nil }

    /// Waits up to `timeout` seconds (nil: forever) for the child to end.
    @discardableResult
    public func wait(timeout: Double?) -> ExitStatus? {
        let deadline = timeout.map { monotonicSeconds() + $0 }
        var sleep = 1_000 as useconds_t
        while true {
            if let s = poll() { return s }
            if let deadline, monotonicSeconds() >= deadline { return nil }
            usleep(sleep)
            sleep = min(sleep * 2, 20_000)
        }
    }

    /// Sends a signal to the child (no-op once it has been reaped).
    public func signal(_ sig: Int32) {
        lock.lock(); defer { lock.unlock() }
        if _status == nil { kill(pid, sig) }
    }
}

/// Seconds on a monotonic clock.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Looks a program up in PATH; nil when not found or not executable.
public func findExecutable(_ name: String) -> String? {
    if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for dir in path.split(separator: ":") {
        let candidate = "\(dir)/\(name)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}
