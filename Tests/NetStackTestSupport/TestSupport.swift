// Test fixtures built independently of the stack's own builders: a naive RFC 1071
// reference checksum and byte-by-byte frame construction, so the stack is checked against
// code that shares nothing with it.

import NetStack
// SplitMix64: shared by every host test target.
@_exported import RingsideTestSupport

public let ourMAC = MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)
public let ourIP = IPv4Address(10, 0, 2, 15)
/// QEMU user networking's gateway, as slirp presents it.
public let peerMAC = MACAddress(0x52, 0x55, 0x0A, 0x00, 0x02, 0x02)
public let peerIP = IPv4Address(10, 0, 2, 2)

public func makeStack(queueCapacity: Int = 64) -> NetStack {
    NetStack(config: NetConfig(mac: ourMAC), transmitQueueCapacity: queueCapacity)
}

extension NetStack {
    public func receive(_ frame: [UInt8], nowMs: UInt64 = 0) {
        frame.withUnsafeBytes { receive(frame: $0, nowMs: nowMs) }
    }

    public func drain() -> [[UInt8]] {
        var frames: [[UInt8]] = []
        while let frame = nextTransmitFrame() { frames.append(frame) }
        return frames
    }

    /// Teaches the stack `mac` for `ip` the only way it learns: it asks (an ARP request,
    /// thrown away with anything else it sent) and `ip` answers.
    public func learn(_ ip: IPv4Address, _ mac: MACAddress, nowMs: UInt64 = 0) {
        resolve(ip)
        receive(Ref.arpFrame(operation: 2, ethernetDestination: config.mac, senderMAC: mac, senderIP: ip,
                             targetMAC: config.mac, targetIP: config.ip), nowMs: nowMs)
        _ = drain()
    }
}

public func be16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
    UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
}

public func be32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
    UInt32(be16(bytes, offset)) << 16 | UInt32(be16(bytes, offset + 2))
}

public func macBytes(_ mac: MACAddress) -> [UInt8] {
    (0..<6).map { UInt8(truncatingIfNeeded: mac.rawValue >> UInt64(40 - 8 * $0)) }
}

public func ipBytes(_ ip: IPv4Address) -> [UInt8] {
    [UInt8(ip.value >> 24), UInt8((ip.value >> 16) & 0xFF), UInt8((ip.value >> 8) & 0xFF), UInt8(ip.value & 0xFF)]
}

/// Reference implementations.
public enum Ref {
    /// RFC 1071 the slow way: 16-bit words, 32-bit accumulator, fold, complement.
    public static func checksum<C: Collection>(_ bytes: C) -> UInt16 where C.Element == UInt8 {
        let array = Array(bytes)
        var sum: UInt32 = 0
        var index = 0
        while index < array.count {
            let high = UInt32(array[index])
            let low = index + 1 < array.count ? UInt32(array[index + 1]) : 0
            sum += high << 8 | low
            while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
            index += 2
        }
        return ~UInt16(sum)
    }

    public static func pseudoHeader(_ source: IPv4Address, _ destination: IPv4Address, _ proto: UInt8, _ length: Int) -> [UInt8] {
        ipBytes(source) + ipBytes(destination) + [0, proto, UInt8(length >> 8), UInt8(length & 0xFF)]
    }

    public static func ethernet(destination: MACAddress = ourMAC, source: MACAddress = peerMAC, etherType: UInt16,
                         payload: [UInt8], pad: Bool = true) -> [UInt8] {
        var frame = macBytes(destination) + macBytes(source) + [UInt8(etherType >> 8), UInt8(etherType & 0xFF)] + payload
        if pad, frame.count < 60 { frame += [UInt8](repeating: 0, count: 60 - frame.count) }
        return frame
    }

    public static func ipv4(source: IPv4Address = peerIP, destination: IPv4Address = ourIP, proto: UInt8,
                     payload: [UInt8], identification: UInt16 = 0x1234, flagsAndOffset: UInt16 = 0x4000,
                     ttl: UInt8 = 64, options: [UInt8] = []) -> [UInt8] {
        precondition(options.count % 4 == 0)
        let headerLength = 20 + options.count
        let total = headerLength + payload.count
        var header: [UInt8] = [
            0x40 | UInt8(headerLength / 4), 0, UInt8(total >> 8), UInt8(total & 0xFF),
            UInt8(identification >> 8), UInt8(identification & 0xFF),
            UInt8(flagsAndOffset >> 8), UInt8(flagsAndOffset & 0xFF), ttl, proto, 0, 0,
        ] + ipBytes(source) + ipBytes(destination) + options
        let sum = checksum(header)
        header[10] = UInt8(sum >> 8)
        header[11] = UInt8(sum & 0xFF)
        return header + payload
    }

    public static func udp(source: IPv4Address = peerIP, destination: IPv4Address = ourIP, sourcePort: UInt16,
                    destinationPort: UInt16, payload: [UInt8], withChecksum: Bool = true) -> [UInt8] {
        let length = 8 + payload.count
        var segment: [UInt8] = [
            UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF),
            UInt8(length >> 8), UInt8(length & 0xFF), 0, 0,
        ] + payload
        if withChecksum {
            var sum = checksum(pseudoHeader(source, destination, 17, length) + segment)
            if sum == 0 { sum = 0xFFFF }
            segment[6] = UInt8(sum >> 8)
            segment[7] = UInt8(sum & 0xFF)
        }
        return segment
    }

    public static func udpFrame(source: IPv4Address = peerIP, destination: IPv4Address = ourIP,
                         ethernetDestination: MACAddress = ourMAC, ethernetSource: MACAddress = peerMAC,
                         sourcePort: UInt16 = 40000, destinationPort: UInt16 = 7, payload: [UInt8],
                         withChecksum: Bool = true) -> [UInt8] {
        ethernet(destination: ethernetDestination, source: ethernetSource, etherType: 0x0800,
                 payload: ipv4(source: source, destination: destination, proto: 17,
                               payload: udp(source: source, destination: destination, sourcePort: sourcePort,
                                            destinationPort: destinationPort, payload: payload,
                                            withChecksum: withChecksum)))
    }

    public static func icmpEcho(type: UInt8 = 8, identifier: UInt16 = 0x4242, sequence: UInt16 = 1, data: [UInt8]) -> [UInt8] {
        var message: [UInt8] = [type, 0, 0, 0, UInt8(identifier >> 8), UInt8(identifier & 0xFF),
                                UInt8(sequence >> 8), UInt8(sequence & 0xFF)] + data
        let sum = checksum(message)
        message[2] = UInt8(sum >> 8)
        message[3] = UInt8(sum & 0xFF)
        return message
    }

    public static func icmpEchoFrame(source: IPv4Address = peerIP, destination: IPv4Address = ourIP,
                              ethernetDestination: MACAddress = ourMAC, ethernetSource: MACAddress = peerMAC,
                              sequence: UInt16 = 1, data: [UInt8] = Array(0..<32)) -> [UInt8] {
        ethernet(destination: ethernetDestination, source: ethernetSource, etherType: 0x0800,
                 payload: ipv4(source: source, destination: destination, proto: 1,
                               payload: icmpEcho(sequence: sequence, data: data)))
    }

    public static func arpFrame(operation: UInt16, ethernetDestination: MACAddress, senderMAC: MACAddress,
                         senderIP: IPv4Address, targetMAC: MACAddress, targetIP: IPv4Address) -> [UInt8] {
        let body: [UInt8] = [0x00, 0x01, 0x08, 0x00, 6, 4, UInt8(operation >> 8), UInt8(operation & 0xFF)]
            + macBytes(senderMAC) + ipBytes(senderIP) + macBytes(targetMAC) + ipBytes(targetIP)
        return ethernet(destination: ethernetDestination, source: senderMAC, etherType: 0x0806, payload: body)
    }
}

/// A decoded outgoing IPv4 frame, checked for sane framing on the way.
public struct SentIPv4 {
    public var ethernetDestination: MACAddress
    public var ethernetSource: MACAddress
    public var source: IPv4Address
    public var destination: IPv4Address
    public var proto: UInt8
    public var ttl: UInt8
    public var headerChecksumValid: Bool
    /// IPv4 payload, exactly total length - 20.
    public var transport: [UInt8]

    public init?(_ frame: [UInt8]) {
        guard frame.count >= 60, frame.count >= 34, be16(frame, 12) == 0x0800, frame[14] == 0x45 else { return nil }
        let total = Int(be16(frame, 16))
        guard total >= 20, 14 + total <= frame.count else { return nil }
        // Padding only when the frame would otherwise be short.
        guard frame.count == max(60, 14 + total) else { return nil }
        ethernetDestination = MACAddress(frame[0], frame[1], frame[2], frame[3], frame[4], frame[5])
        ethernetSource = MACAddress(frame[6], frame[7], frame[8], frame[9], frame[10], frame[11])
        source = IPv4Address(be32(frame, 26))
        destination = IPv4Address(be32(frame, 30))
        proto = frame[23]
        ttl = frame[22]
        headerChecksumValid = Ref.checksum(frame[14..<34]) == 0
        transport = Array(frame[34..<(14 + total)])
    }

    public var udpChecksumValid: Bool {
        Ref.checksum(Ref.pseudoHeader(source, destination, 17, transport.count) + transport) == 0
    }
}
