import Foundation

/// A minimal QMP client: one unix socket, JSON objects one per line.
///
/// `connect` reads the greeting and negotiates capabilities; `execute` sends a command and returns
/// its `return` value, collecting asynchronous events on the way.
public final class QMPClient {
    /// nil once closed.
    private var fd: FileDescriptor?
    private var buffer: [UInt8] = []
    /// The latest events (`{"event": ..., "data": ..., "timestamp": ...}`), oldest first: at most
    /// `eventLimit`; older ones are dropped and counted in `droppedEvents`.
    public private(set) var events: [[String: Any]] = []
    /// Events dropped because `eventLimit` newer ones arrived after them.
    public private(set) var droppedEvents: UInt64 = 0
    /// How many events are kept (QEMU sends them unasked; nobody may be reading them).
    public static let eventLimit = 1024
    /// The longest line QEMU may send (its replies are a few KiB); longer is a protocol error.
    public static let lineLimit = 1 << 20
    /// The greeting's `QMP.version.qemu` object.
    public private(set) var version: [String: Any] = [:]

    /// Connects to `path`, retrying until `timeout` seconds have passed (QEMU creates the socket a
    /// moment after it starts), then does the `qmp_capabilities` handshake.
    public init(path: String, timeout: Double = 10) throws(RingsideError) {
        let deadline = monotonicSeconds() + timeout
        var lastError = RingsideError("QMP socket \(path) did not appear")
        var connected: FileDescriptor?
        while connected == nil {
            do {
                connected = try connectUnixSocket(path)
            } catch {
                lastError = error
                if monotonicSeconds() >= deadline { throw lastError }
                usleep(20_000)
            }
        }
        fd = connected
        let greeting = try readMessage(timeout: max(1, deadline - monotonicSeconds()))
        guard let qmp = greeting["QMP"] as? [String: Any] else {
            close()
            throw RingsideError("unexpected QMP greeting: \(greeting)")
        }
        version = (qmp["version"] as? [String: Any])?["qemu"] as? [String: Any] ?? [:]
        _ = try execute("qmp_capabilities", timeout: max(1, deadline - monotonicSeconds()))
    }

    deinit { close() }

    public func close() {
        fd?.close()
        fd = nil
    }

    /// Sends a command and waits for its reply. Returns the `return` value (often an empty object).
    /// An `error` reply throws with QEMU's class and description.
    @discardableResult
    public func execute(_ command: String, arguments: [String: Any]? = nil, timeout: Double = 10) throws(RingsideError) -> Any {
        var message: [String: Any] = ["execute": command]
        if let arguments { message["arguments"] = arguments }
        var bytes: [UInt8] = []
        if !Self.encode(message, into: &bytes) {
            do { bytes = Array(try JSONSerialization.data(withJSONObject: message)) } catch {
                throw RingsideError("cannot encode QMP command \(command): \(error)")
            }
        }
        bytes.append(0x0a)
        try send(bytes)
        let deadline = monotonicSeconds() + timeout
        while true {
            let reply = try readMessage(timeout: max(0.001, deadline - monotonicSeconds()))
            if reply["event"] != nil {
                if events.count >= QMPClient.eventLimit {
                    events.removeFirst()
                    droppedEvents &+= 1
                }
                events.append(reply)
                continue
            }
            if let ret = reply["return"] { return ret }
            if let err = reply["error"] as? [String: Any] {
                throw RingsideError("QMP \(command) failed: \(err["class"] ?? "?"): \(err["desc"] ?? "?")")
            }
            // Anything else (there should be nothing else) is skipped.
        }
    }

    /// A command as JSON without Foundation (the watcher sends a dozen a second): objects of
    /// strings, integers, booleans and objects; false (nothing usable written) for anything
    /// else, which JSONSerialization then encodes.
    static func encode(_ value: Any, into out: inout [UInt8]) -> Bool {
        switch value {
        case let b as Bool:
            out += Array((b ? "true" : "false").utf8)
        case let i as Int:
            out += Array(String(i).utf8)
        case let text as String:
            out.append(0x22)
            for u in text.utf8 {
                switch u {
                case 0x22, 0x5C: out.append(0x5C); out.append(u)
                case 0..<0x20:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    out += [0x5C, 0x75, 0x30, 0x30, hex[Int(u >> 4)], hex[Int(u & 0xF)]]
                default: out.append(u)
                }
            }
            out.append(0x22)
        case let object as [String: Any]:
            out.append(0x7B)
            var first = true
            for (k, v) in object {
                if !first { out.append(0x2C) }
                first = false
                _ = encode(k, into: &out)
                out.append(0x3A)
                guard encode(v, into: &out) else { return false }
            }
            out.append(0x7D)
        default:
            return false
        }
        return true
    }

    /// Asks QEMU to quit. QEMU may close the socket before or after replying; both count as success.
    public func quit(timeout: Double = 2) {
        _ = try? execute("quit", timeout: timeout)
    }

    private func send(_ bytes: [UInt8]) throws(RingsideError) {
        guard let fd else { throw RingsideError("QMP connection is closed") }
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                let e = Errno.current
                if e == .interrupted { continue }
                throw RingsideError("QMP send: \(e)")
            }
            sent += n
        }
    }

    /// Reads one JSON object (one line).
    private func readMessage(timeout: Double) throws(RingsideError) -> [String: Any] {
        let deadline = monotonicSeconds() + timeout
        while true {
            if let nl = buffer.firstIndex(of: 0x0a) {
                let line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x0d }) { continue }
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    throw RingsideError("QMP sent something that is not a JSON object: \(String(decoding: line.prefix(200), as: UTF8.self))")
                }
                return obj
            }
            if buffer.count > QMPClient.lineLimit {
                close()
                throw RingsideError("QMP sent a line longer than \(QMPClient.lineLimit) bytes")
            }
            guard let fd else { throw RingsideError("QMP connection is closed") }
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { throw RingsideError("QMP: no reply within \(timeout) s") }
            var pfd = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
            let pr = Glibc.poll(&pfd, 1, Int32(min(remaining * 1000 + 1, 60_000)))
            if pr < 0 {
                let e = Errno.current
                if e != .interrupted { throw RingsideError("QMP poll: \(e)") }
            }
            if pr <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd.rawValue, $0.baseAddress, $0.count, 0) }
            if n == 0 { throw RingsideError("QMP connection closed by QEMU") }
            if n < 0 {
                let e = Errno.current
                if e == .interrupted || e == .resourceTemporarilyUnavailable { continue }
                throw RingsideError("QMP recv: \(e)")
            }
            buffer += chunk[0..<n]
        }
    }
}
