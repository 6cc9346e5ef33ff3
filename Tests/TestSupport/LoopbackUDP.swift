import Foundation
import RingsideKit

/// A UDP socket on 127.0.0.1 with poll-based receive timeouts.
public final class UDPSocket {
    public let fd: Int32
    public let port: UInt16

    /// Binds 127.0.0.1:`port` (0: any free port).
    public init(port: UInt16 = 0) throws {
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard s >= 0 else { throw RingsideError("socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_in.loopback(port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno; close(s)
            throw RingsideError("bind 127.0.0.1:\(port): \(String(cString: strerror(e)))")
        }
        var bufSize: Int32 = 1 << 20
        setsockopt(s, SOL_SOCKET, SO_RCVBUF, &bufSize, socklen_t(MemoryLayout<Int32>.size))
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) }
        }
        fd = s
        self.port = UInt16(bigEndian: bound.sin_port)
    }

    deinit { close(fd) }

    public func send(_ bytes: [UInt8], toPort: UInt16) throws {
        var addr = sockaddr_in.loopback(port: toPort)
        let n = bytes.withUnsafeBytes { buf in
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buf.baseAddress, buf.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard n == bytes.count else { throw RingsideError("sendto port \(toPort): \(String(cString: strerror(errno)))") }
    }

    /// One datagram, or nil after `timeout` seconds.
    public func receive(timeout: Double) -> [UInt8]? {
        let deadline = monotonicSeconds() + timeout
        while true {
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { return nil }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let pr = poll(&pfd, 1, Int32(max(1, remaining * 1000)))
            if pr <= 0 { continue }
            var buf = [UInt8](repeating: 0, count: 65536)
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n >= 0 { return Array(buf[0..<n]) }
        }
    }

    /// Throws away anything already queued.
    public func drain() { while receive(timeout: 0.001) != nil {} }

    /// Sends `payload` to an echo server until the same bytes come back, at most `tries` times,
    /// waiting `timeout` seconds each: whether it was echoed.
    public func echoes(_ payload: [UInt8], toPort: UInt16, tries: Int, timeout: Double) throws -> Bool {
        for _ in 0..<tries {
            try send(payload, toPort: toPort)
            if receive(timeout: timeout) == payload { return true }
        }
        return false
    }
}

extension sockaddr_in {
    public static func loopback(port: UInt16) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return a
    }
}

/// A port that was free a moment ago (bind to 0, read it, close). Good enough for handing to QEMU.
public func freePort(udp: Bool) throws -> UInt16 {
    let fd = socket(AF_INET, Int32((udp ? SOCK_DGRAM : SOCK_STREAM).rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in.loopback(port: 0)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { throw RingsideError("bind: \(String(cString: strerror(errno)))") }
    var bound = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &bound) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return UInt16(bigEndian: bound.sin_port)
}
