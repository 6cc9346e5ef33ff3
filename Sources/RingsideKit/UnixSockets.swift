import Foundation

// Small helpers over the BSD socket calls, shared by the telemetry client and hub.

/// The address of the unix socket at `path`; nil when the path does not fit (107 bytes on Linux).
func unixSocketAddress(_ path: String) -> sockaddr_un? {
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return nil }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return addr
}

/// A new unix stream socket.
private func unixStreamSocket() throws(RingsideError) -> FileDescriptor {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    if fd < 0 { throw RingsideError("socket: \(Errno.current)") }
    return FileDescriptor(rawValue: fd)
}

/// Connects a stream socket to a unix socket path; returns its descriptor or throws.
func connectUnixSocket(_ path: String) throws(RingsideError) -> FileDescriptor {
    guard var addr = unixSocketAddress(path) else { throw RingsideError("socket path too long: \(path)") }
    let fd = try unixStreamSocket()
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    if rc != 0 {
        let e = Errno.current
        fd.close()
        throw RingsideError("cannot connect to \(path): \(e)")
    }
    return fd
}

/// Creates a listening unix stream socket at `path` with mode `mode` (an old socket file
/// at the path is replaced). Returns the non-blocking listening descriptor.
///
/// The socket is bound inside a fresh private directory beside `path` (`mkdtemp`: mode 0700),
/// given `mode` there, and renamed into place once it listens, so it is never reachable with a
/// wider mode. The process-wide umask is not touched: other threads may be creating files.
public func listenUnixSocket(_ path: String, mode: mode_t = 0o600) throws(RingsideError) -> FileDescriptor {
    let slash = path.lastIndex(of: "/")
    let parent = slash.map { String(path[..<$0]) } ?? "."
    var template = Array((parent + "/.sock-XXXXXX").utf8CString)
    guard mkdtemp(&template) != nil else {
        throw RingsideError("cannot create a private directory beside \(path): \(Errno.current)")
    }
    let privateDirectory = String(cString: template)
    let staging = privateDirectory + "/s"
    defer {
        unlink(staging)  // only still there on failure
        rmdir(privateDirectory)
    }
    guard var addr = unixSocketAddress(staging), unixSocketAddress(path) != nil else {
        throw RingsideError("socket path too long: \(path)")
    }
    let fd = try unixStreamSocket()
    func fail(_ what: String) -> RingsideError {
        let e = Errno.current
        fd.close()
        return RingsideError("\(what) \(path): \(e)")
    }
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    if rc != 0 { throw fail("cannot bind") }
    if chmod(staging, mode) != 0 { throw fail("cannot set the mode of") }
    if listen(fd.rawValue, 16) != 0 { throw fail("cannot listen on") }
    if rename(staging, path) != 0 { throw fail("cannot create") }
    fd.setNonBlocking()
    fd.setCloseOnExec()
    return fd
}

/// Reading and writing sockets the way the telemetry client, the hub and the QMP client do.
extension FileDescriptor {
    /// Writes as much of `buffer` as the non-blocking socket takes and removes it from the buffer.
    /// Returns false when the peer is gone.
    func flushNonBlocking(_ buffer: inout [UInt8]) -> Bool {
        var written = 0
        while written < buffer.count {
            let n = buffer[written...].withUnsafeBytes { send(rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                let e = Errno.current
                if e == .interrupted { continue }
                if e.isWouldBlock { break }
                buffer.removeAll()
                return false
            }
            written += n
        }
        if written > 0 { buffer.removeFirst(written) }
        return true
    }

    /// Writes all of `bytes` to the socket (blocking or not), waiting with poll up to `timeout` seconds.
    func writeAll(_ bytes: [UInt8], timeout: Double) throws(RingsideError) {
        var pending = bytes
        let deadline = monotonicSeconds() + timeout
        while !pending.isEmpty {
            guard flushNonBlocking(&pending) else { throw RingsideError("connection closed") }
            if pending.isEmpty { return }
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { throw RingsideError("write timed out after \(timeout) s") }
            var pfd = pollfd(fd: rawValue, events: Int16(POLLOUT), revents: 0)
            _ = poll(&pfd, 1, Int32(min(remaining * 1000 + 1, 1000)))
        }
    }

    /// Reads what is available on the non-blocking socket into `into` (up to `max` bytes).
    /// Returns the byte count, 0 when nothing was available, or nil when the peer closed or failed.
    func readAvailable(into: inout [UInt8], max: Int = 256 * 1024) -> Int? {
        var scratch = [UInt8](repeating: 0, count: 65536)
        var total = 0
        while total < max {
            let n = scratch.withUnsafeMutableBytes { recv(rawValue, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                into.append(contentsOf: scratch[0..<n])
                total += n
                continue
            }
            if n == 0 { return total > 0 ? total : nil }
            let e = Errno.current
            if e == .interrupted { continue }
            if e.isWouldBlock { return total }
            return total > 0 ? total : nil
        }
        return total
    }
}
