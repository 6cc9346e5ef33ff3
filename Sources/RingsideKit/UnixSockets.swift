import Foundation

// Small helpers over the BSD socket calls, shared by the telemetry client and hub.

/// Puts `fd` in non-blocking mode.
func setNonBlocking(_ fd: Int32) {
    let flags = fcntl(fd, F_GETFL)
    _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
}

/// Marks `fd` close-on-exec (children such as QEMU must not inherit our sockets).
func setCloseOnExec(_ fd: Int32) {
    let flags = fcntl(fd, F_GETFD)
    _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC)
}

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

/// Connects a stream socket to a unix socket path; returns the fd or throws.
func connectUnixSocket(_ path: String) throws(RingsideError) -> Int32 {
    guard var addr = unixSocketAddress(path) else { throw RingsideError("socket path too long: \(path)") }
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    if fd < 0 { throw RingsideError("socket: \(String(cString: strerror(errno)))") }
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    if rc != 0 {
        let e = errno
        close(fd)
        throw RingsideError("cannot connect to \(path): \(String(cString: strerror(e)))")
    }
    return fd
}

/// Creates a listening unix stream socket at `path` with mode `mode` (an old socket file
/// at the path is replaced). Returns the non-blocking listening fd.
///
/// The socket is bound inside a fresh private directory beside `path` (`mkdtemp`: mode 0700),
/// given `mode` there, and renamed into place once it listens, so it is never reachable with a
/// wider mode. The process-wide umask is not touched: other threads may be creating files.
public func listenUnixSocket(_ path: String, mode: mode_t = 0o600) throws(RingsideError) -> Int32 {
    let slash = path.lastIndex(of: "/")
    let parent = slash.map { String(path[..<$0]) } ?? "."
    var template = Array((parent + "/.sock-XXXXXX").utf8CString)
    guard mkdtemp(&template) != nil else {
        throw RingsideError("cannot create a private directory beside \(path): \(String(cString: strerror(errno)))")
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
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    if fd < 0 { throw RingsideError("socket: \(String(cString: strerror(errno)))") }
    func fail(_ what: String) -> RingsideError {
        let e = errno
        close(fd)
        return RingsideError("\(what) \(path): \(String(cString: strerror(e)))")
    }
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    if rc != 0 { throw fail("cannot bind") }
    if chmod(staging, mode) != 0 { throw fail("cannot set the mode of") }
    if listen(fd, 16) != 0 { throw fail("cannot listen on") }
    if rename(staging, path) != 0 { throw fail("cannot create") }
    setNonBlocking(fd)
    setCloseOnExec(fd)
    return fd
}

/// Writes as much of `buffer` as the non-blocking `fd` takes and removes it from the buffer.
/// Returns false when the peer is gone.
func flushNonBlocking(_ fd: Int32, _ buffer: inout [UInt8]) -> Bool {
    var written = 0
    while written < buffer.count {
        let n = buffer[written...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 {
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { break }
            buffer.removeAll()
            return false
        }
        written += n
    }
    if written > 0 { buffer.removeFirst(written) }
    return true
}

/// Writes all of `bytes` to `fd` (blocking or not), waiting with poll up to `timeout` seconds.
func writeAll(_ fd: Int32, _ bytes: [UInt8], timeout: Double) throws(RingsideError) {
    var pending = bytes
    let deadline = monotonicSeconds() + timeout
    while !pending.isEmpty {
        guard flushNonBlocking(fd, &pending) else { throw RingsideError("connection closed") }
        if pending.isEmpty { return }
        let remaining = deadline - monotonicSeconds()
        if remaining <= 0 { throw RingsideError("write timed out after \(timeout) s") }
        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        _ = poll(&pfd, 1, Int32(min(remaining * 1000 + 1, 1000)))
    }
}

/// Reads what is available on a non-blocking fd into `into` (up to `max` bytes).
/// Returns the byte count, 0 when nothing was available, or nil when the peer closed or failed.
func readAvailable(_ fd: Int32, into: inout [UInt8], max: Int = 256 * 1024) -> Int? {
    var scratch = [UInt8](repeating: 0, count: 65536)
    var total = 0
    while total < max {
        let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            into.append(contentsOf: scratch[0..<n])
            total += n
            continue
        }
        if n == 0 { return total > 0 ? total : nil }
        if errno == EINTR { continue }
        if errno == EAGAIN || errno == EWOULDBLOCK { return total }
        return total > 0 ? total : nil
    }
    return total
}
