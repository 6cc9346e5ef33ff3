import Foundation

public struct RingsideError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A private directory for one QEMU run: `<base>/ringside-<pid>-<random>/`, mode 0700, holding
/// `serial.log` (COM1), `console.sock` (virtio-console), `qmp.sock` (QMP) and `qemu.log`
/// (QEMU's own stdout/stderr).
public struct RunDirectory: Sendable {
    public let path: String

    public var serialLog: String { path + "/serial.log" }
    public var consoleSocket: String { path + "/console.sock" }
    public var qmpSocket: String { path + "/qmp.sock" }
    /// A second QMP socket for the user while ringside holds `qmp.sock` (`ringside run`).
    public var userQMPSocket: String { path + "/qmp-user.sock" }
    /// The QMP socket of the memory view (`ringside run --shared-memory`): QEMU serves one
    /// client per socket, and the device-truth poller holds qmp.sock.
    public var memoryQMPSocket: String { path + "/qmp-memory.sock" }
    public var qemuLog: String { path + "/qemu.log" }
    /// Where `ringside run` re-serves telemetry to `watch`/`ctl` (TelemetryHub).
    public var telemetrySocket: String { path + "/telemetry.sock" }

    /// Creates a fresh directory under `base` (default: $TMPDIR, else /tmp).
    /// Unix socket paths are limited to 107 bytes, so keep `base` short.
    public static func create(base: String? = nil) throws(RingsideError) -> RunDirectory {
        let env = ProcessInfo.processInfo.environment
        var root = base ?? env["TMPDIR"] ?? "/tmp"
        if root.isEmpty { root = "/tmp" }
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        let pid = getpid()
        for _ in 0..<16 {
            let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
            let dir = "\(root)/ringside-\(pid)-\(suffix)"
            if mkdir(dir, 0o700) == 0 {
                _ = chmod(dir, 0o700) // umask may have removed bits we asked for; never adds any
                let run = RunDirectory(path: dir)
                if run.qmpSocket.utf8.count > 107 {
                    run.remove()
                    throw RingsideError("run directory path \(dir) is too long for a unix socket; set TMPDIR to a shorter directory")
                }
                return run
            }
            let e = Errno.current
            if e != .fileExists {
                throw RingsideError("cannot create run directory \(dir): \(e)")
            }
        }
        throw RingsideError("cannot create a unique run directory under \(root)")
    }

    public init(path: String) { self.path = path }

    /// Deletes the directory and everything in it. A file that comes or goes while the tree is
    /// walked (a socket a process unlinks as it exits) can make one pass fail; a few more passes
    /// finish the job. Returns whether the directory is gone.
    @discardableResult
    public func remove() -> Bool {
        for attempt in 0..<5 {
            try? FileManager.default.removeItem(atPath: path)
            if access(path, F_OK) != 0 && Errno.current == .noSuchFileOrDirectory { return true }
            usleep(useconds_t(20_000 * (attempt + 1)))
        }
        return false
    }
}

/// Reads a file as it grows (`tail -f` by polling): each call returns the bytes appended since the last.
public final class FileFollower {
    public let path: String
    private var offset: UInt64 = 0

    public init(path: String) { self.path = path }

    /// New bytes since the previous call (empty if none, or if the file does not exist yet).
    public func readNew(maxBytes: Int = 1 << 20) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return [] }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0 && UInt64(st.st_size) < offset { offset = 0 } // truncated: start again
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < maxBytes {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            if n <= 0 { break }
            out += buf[0..<n]
            offset += UInt64(n)
        }
        return out
    }
}

/// Reads a whole file as UTF-8 (lossy); "" when it cannot be read.
public func readTextFile(_ path: String) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { return "" }
    return String(decoding: data, as: UTF8.self)
}
