// A TelemetryLink over QEMU's virtio-console unix socket: non-blocking connect, read and
// write; reconnects every half second while the socket is gone.

import Glibc
import Wire

public final class UnixSocketLink: TelemetryLink {
    public let path: String
    public private(set) var state: LinkState = .connecting
    private var fd: Int32 = -1
    private var decoder = WireFrameDecoder()
    private var encoder = WireFrameEncoder(firstSeq: 1)
    private var outgoing: [UInt8] = []
    private var nextAttempt: Double = 0
    private var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
    public static let retryInterval = 0.5

    public init(path: String) { self.path = path }
    deinit { close() }

    public var pollDescriptor: Int32? { fd >= 0 ? fd : nil }
    public var wantsWrite: Bool { fd >= 0 && !outgoing.isEmpty }
    public var decoderStatistics: WireDecoderStatistics { decoder.statistics }

    public func service(now: Double) -> [LinkEvent] {
        var events: [LinkEvent] = []
        if fd < 0 {
            guard now >= nextAttempt else { return events }
            nextAttempt = now + Self.retryInterval
            switch connectSocket() {
            case .success(let s):
                fd = s
                decoder.reset()
                outgoing.removeAll()
                state = .connected
                events.append(.connected)
            case .failure(let reason):
                if case .connected = state { state = .reconnecting(reason: reason) }
                if case .reconnecting = state { state = .reconnecting(reason: reason) }
                return events
            }
        }
        flush(&events)
        guard fd >= 0 else { return events }
        // Read everything available, then decode.
        var readSomething = false
        while fd >= 0 {
            let n = readBuffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                readBuffer.withUnsafeBytes { decoder.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                readSomething = true
                if n < readBuffer.count { break }
            } else if n == 0 {
                drop(reason: "the guest closed the console socket", &events)
            } else {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                drop(reason: "read: \(String(cString: strerror(errno)))", &events)
            }
        }
        if readSomething || decoder.bufferedBytes > 0 {
            while let r = decoder.next() {
                switch r {
                case .message(let m, let seq): events.append(.message(m, seq: seq))
                case .error(let e): events.append(.decodeError(e.message))
                }
            }
        }
        return events
    }

    public func send(_ command: WireCommand) -> UInt32? {
        guard fd >= 0 else { return nil }
        let seq = encoder.nextSeq
        do {
            try encoder.encode(.command(command), into: &outgoing)
        } catch {
            return nil
        }
        var ignored: [LinkEvent] = []
        flush(&ignored)
        return seq
    }

    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    private func drop(reason: String, _ events: inout [LinkEvent]) {
        close()
        state = .reconnecting(reason: reason)
        events.append(.disconnected(reason: reason))
    }

    private func flush(_ events: inout [LinkEvent]) {
        while fd >= 0 && !outgoing.isEmpty {
            let n = outgoing.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if n > 0 {
                outgoing.removeFirst(n)
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return
            } else {
                drop(reason: "write: \(String(cString: strerror(errno)))", &events)
            }
        }
    }

    private enum ConnectResult { case success(Int32), failure(String) }

    private func connectSocket() -> ConnectResult {
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard s >= 0 else { return .failure("socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            Glibc.close(s)
            return .failure("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 && errno != EINPROGRESS {
            let reason = "\(path): \(String(cString: strerror(errno)))"
            Glibc.close(s)
            return .failure(reason)
        }
        return .success(s)
    }
}
