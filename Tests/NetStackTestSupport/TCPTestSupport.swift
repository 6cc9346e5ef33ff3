// A hand-driven TCP peer for the state-machine tests: builds segments byte by byte
// (sharing no code with the stack), feeds them in at a chosen time, and decodes what the
// stack sends back.

import NetStack

/// One TCP segment the stack sent, decoded independently.
public struct SentSegment {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var seq: UInt32
    public var ack: UInt32
    public var flags: UInt8
    public var window: UInt16
    public var mss: Int?
    public var payload: [UInt8]
    public var checksumValid: Bool

    public var syn: Bool { flags & 0x02 != 0 }
    public var fin: Bool { flags & 0x01 != 0 }
    public var rst: Bool { flags & 0x04 != 0 }
    public var hasAck: Bool { flags & 0x10 != 0 }

    public init?(_ frame: [UInt8]) {
        guard let ip = SentIPv4(frame), ip.proto == 6, ip.transport.count >= 20 else { return nil }
        let t = ip.transport
        sourcePort = be16(t, 0)
        destinationPort = be16(t, 2)
        seq = be32(t, 4)
        ack = be32(t, 8)
        let headerLength = Int(t[12] >> 4) * 4
        flags = t[13]
        window = be16(t, 14)
        mss = nil
        if headerLength >= 24, t[20] == 2, t[21] == 4 { mss = Int(be16(t, 22)) }
        payload = Array(t[headerLength...])
        checksumValid = Ref.checksum(Ref.pseudoHeader(ip.source, ip.destination, 6, t.count) + t) == 0
    }
}

public enum TCPFlag {
    public static let fin: UInt8 = 0x01
    public static let syn: UInt8 = 0x02
    public static let rst: UInt8 = 0x04
    public static let psh: UInt8 = 0x08
    public static let ack: UInt8 = 0x10
}

extension Ref {
    public static func tcp(sourcePort: UInt16, destinationPort: UInt16 = 80, seq: UInt32, ack: UInt32, flags: UInt8,
                    window: UInt16 = 65535, mss: UInt16? = nil, payload: [UInt8] = [],
                    source: IPv4Address = peerIP, destination: IPv4Address = ourIP) -> [UInt8] {
        var options: [UInt8] = []
        if let mss { options = [2, 4, UInt8(mss >> 8), UInt8(mss & 0xFF)] }
        var bytes: [UInt8] = [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF),
                              UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF)]
        for value in [seq, ack] {
            bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
        }
        bytes += [UInt8((20 + options.count) / 4) << 4, flags, UInt8(window >> 8), UInt8(window & 0xFF), 0, 0, 0, 0]
        bytes += options + payload
        let sum = checksum(pseudoHeader(source, destination, 6, bytes.count) + bytes)
        bytes[16] = UInt8(sum >> 8)
        bytes[17] = UInt8(sum & 0xFF)
        return bytes
    }
}

/// Records what the application side of each connection saw.
public final class TestApp {
    public var accepted: [TCPConnection] = []
    public var received: [ObjectIdentifier: [UInt8]] = [:]
    public var closed: [ObjectIdentifier: TCPCloseReason] = [:]
    /// Read incoming data automatically (else it stays in the receive buffer).
    public var autoRead = true
    /// Echo every byte read.
    public var echo = false

    public func attach(_ connection: TCPConnection) {
        accepted.append(connection)
        connection.onReadable = { [unowned self] connection in
            guard self.autoRead else { return }
            var bytes: [UInt8] = []
            connection.read(into: &bytes, maxLength: Int.max)
            self.received[ObjectIdentifier(connection), default: []] += bytes
            if self.echo { connection.send(bytes) }
        }
        connection.onClosed = { [unowned self] connection, reason in
            self.closed[ObjectIdentifier(connection)] = reason
        }
    }

    public func data(_ connection: TCPConnection) -> [UInt8] { received[ObjectIdentifier(connection)] ?? [] }
    public func closeReason(_ connection: TCPConnection) -> TCPCloseReason? { closed[ObjectIdentifier(connection)] }
}

/// A stack with a TCP layer listening on port 80, a peer whose MAC is known, and a clock
/// the test moves.
public final class TCPHarness {
    public let stack: NetStack
    public let tcp: TCPLayer
    public let app = TestApp()
    public var now: UInt64 = 0

    public init(isn: UInt32 = 1000, backlog: Int = 64, listen: Bool = true) {
        stack = makeStack(queueCapacity: 512)
        stack.learn(peerIP, peerMAC)
        tcp = TCPLayer(stack: stack, isnSecret: 42)
        tcp.initialSequenceNumber = { _, _, _ in isn }
        if listen {
            tcp.listen(port: 80, backlog: backlog) { [unowned app] connection in app.attach(connection) }
        }
    }

    /// Delivers one segment at `now` and returns what the stack sent in answer.
    @discardableResult
    public func send(_ segment: [UInt8], at time: UInt64? = nil, from source: IPv4Address = peerIP) -> [SentSegment] {
        if let time { now = time }
        stack.receive(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(source: source, proto: 6, payload: segment)), nowMs: now)
        return drain()
    }

    /// Runs the timers at `time`.
    @discardableResult
    public func poll(at time: UInt64) -> [SentSegment] {
        now = time
        stack.poll(nowMs: time)
        return drain()
    }

    public func drain() -> [SentSegment] {
        stack.drain().compactMap { SentSegment($0) }
    }

    /// A full handshake from `port` with peer ISN `peerISN`. Returns the connection and
    /// our ISN.
    /// `source` must be one the stack knows (`stack.learn`), or its answers wait for ARP.
    public func connect(port: UInt16 = 50000, peerISN: UInt32 = 5000, mss: UInt16 = 1460, window: UInt16 = 65535,
                 rttMs: UInt64 = 10, source: IPv4Address = peerIP) -> TCPConnection? {
        let synAck = send(Ref.tcp(sourcePort: port, seq: peerISN, ack: 0, flags: TCPFlag.syn, window: window, mss: mss,
                                  source: source), from: source)
        guard synAck.count == 1, synAck[0].syn, synAck[0].hasAck else { return nil }
        send(Ref.tcp(sourcePort: port, seq: peerISN &+ 1, ack: synAck[0].seq &+ 1, flags: TCPFlag.ack, window: window,
                     source: source), at: now + rttMs, from: source)
        return tcp.connections.first {
            $0.remotePort == port && $0.remoteAddress == source && $0.state == .established
        }
    }

    /// Addresses 10.0.2.(100+n), each known to the stack (so answers go out at once).
    public func knownSources(_ count: Int) -> [IPv4Address] {
        (0..<count).map { index in
            let ip = IPv4Address(10, 0, 2, UInt8(100 + index))
            stack.learn(ip, MACAddress(0x02, 0, 0, 0, 0, UInt8(index)), nowMs: now)
            return ip
        }
    }
}
