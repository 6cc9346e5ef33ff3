// UDP (RFC 768):
//
//   0-1: source port | 2-3: destination port | 4-5: length (header + data) | 6-7: checksum
//
// The checksum covers the pseudo-header, header and data. Zero on receive means the sender
// computed none; a computed zero is sent as 0xFFFF (its ones' complement twin).

public struct UDPHeader: Equatable {
    public static let length = 8
    /// Largest payload in one unfragmented datagram on a 1500-byte MTU: 1500 - 20 - 8.
    public static let maximumPayloadLength = EthernetHeader.maximumPayloadLength - IPv4Header.minimumLength - length

    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// Header plus data, as the length field says; the IP payload may be longer.
    public var length: Int
    public var checksum: UInt16

    /// Validates the datagram at the start of `segment` (the IPv4 payload): room for a
    /// header, 8 ≤ length ≤ segment (both "truncated"), checksum when non-zero.
    public static func parse(
        _ segment: UnsafeRawBufferPointer, source: IPv4Address, destination: IPv4Address
    ) throws(NetDropReason) -> UDPHeader {
        guard segment.count >= length else { throw .udpTruncated }
        let datagramLength = Int(segment.netUInt16(at: 4))
        guard datagramLength >= length, datagramLength <= segment.count else { throw .udpTruncated }
        let checksum = segment.netUInt16(at: 6)
        if checksum != 0 {
            var sum = InternetChecksum.pseudoHeader(
                source: source, destination: destination, protocolNumber: IPProtocolNumber.udp,
                length: datagramLength)
            sum.add(segment.netSlice(0..<datagramLength))
            guard sum.value == 0 else { throw .udpBadChecksum }
        }
        return UDPHeader(
            sourcePort: segment.netUInt16(at: 0),
            destinationPort: segment.netUInt16(at: 2),
            length: datagramLength,
            checksum: checksum)
    }
}

/// What a UDP port handler learns about a datagram besides its payload.
public struct UDPDatagramInfo: Equatable, Sendable {
    public var source: IPv4Address
    public var sourcePort: UInt16
    public var destination: IPv4Address
    public var destinationPort: UInt16
    /// Sent to the limited or the subnet-directed broadcast address.
    public var isBroadcast: Bool
}
