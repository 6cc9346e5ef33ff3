// IPv4 header (RFC 791 §3.1):
//
//   0: version(4) IHL(4) | 1: TOS | 2-3: total length | 4-5: identification
//   6-7: flags(3) fragment offset(13) | 8: TTL | 9: protocol | 10-11: header checksum
//   12-15: source | 16-19: destination | 20..: options (IHL*4 - 20 bytes, skipped)

/// IP protocol numbers the stack knows (IANA registry).
public enum IPProtocolNumber {
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
}

public struct IPv4Header: Equatable {
    public static let minimumLength = 20
    /// TTL of the datagrams the stack originates (RFC 1700's recommended default).
    public static let defaultTTL: UInt8 = 64
    static let flagDontFragment: UInt16 = 0x4000
    static let flagMoreFragments: UInt16 = 0x2000
    static let fragmentOffsetMask: UInt16 = 0x1FFF

    /// IHL × 4: 20 to 60 bytes.
    public var headerLength: Int
    /// Header plus data; the Ethernet payload may be longer (padding), never shorter.
    public var totalLength: Int
    public var identification: UInt16
    public var flagsAndFragmentOffset: UInt16
    public var ttl: UInt8
    public var protocolNumber: UInt8
    public var source: IPv4Address
    public var destination: IPv4Address

    /// Any piece of a fragmented datagram: more-fragments set or a non-zero offset.
    public var isFragment: Bool {
        flagsAndFragmentOffset & (IPv4Header.flagMoreFragments | IPv4Header.fragmentOffsetMask) != 0
    }

    /// Validates and decodes the header at the start of `packet` (an Ethernet payload).
    /// Checks, in order: room for a minimal header (truncated), version 4 and IHL ≥ 5
    /// (bad header), room for the options (truncated), total length ≥ header length (bad
    /// header), total length ≤ buffer (truncated), header checksum (bad checksum).
    public static func parse(_ packet: UnsafeRawBufferPointer) throws(NetDropReason) -> IPv4Header {
        guard packet.count >= minimumLength else { throw .ipv4Truncated }
        let versionAndIHL = packet[0]
        guard versionAndIHL >> 4 == 4 else { throw .ipv4BadHeader }
        let headerLength = Int(versionAndIHL & 0x0F) * 4
        guard headerLength >= minimumLength else { throw .ipv4BadHeader }
        guard headerLength <= packet.count else { throw .ipv4Truncated }
        let totalLength = Int(packet.netUInt16(at: 2))
        guard totalLength >= headerLength else { throw .ipv4BadHeader }
        guard totalLength <= packet.count else { throw .ipv4Truncated }
        guard InternetChecksum.compute(packet.netSlice(0..<headerLength)) == 0 else {
            throw .ipv4BadChecksum
        }
        return IPv4Header(
            headerLength: headerLength,
            totalLength: totalLength,
            identification: packet.netUInt16(at: 4),
            flagsAndFragmentOffset: packet.netUInt16(at: 6),
            ttl: packet[8],
            protocolNumber: packet[9],
            source: IPv4Address(bytes: packet, at: 12),
            destination: IPv4Address(bytes: packet, at: 16))
    }

    /// Writes a 20-byte header without options at `offset`, with don't-fragment set (the
    /// stack never fragments) and its checksum computed.
    static func write(
        to frame: inout [UInt8], at offset: Int, totalLength: Int, identification: UInt16,
        protocolNumber: UInt8, source: IPv4Address, destination: IPv4Address, ttl: UInt8 = defaultTTL
    ) {
        // Version 4, IHL 5 (20 bytes), DSCP/ECN 0; then TTL and protocol as one 16-bit word.
        frame.netStoreUInt16(0x4500, at: offset)
        frame.netStoreUInt16(UInt16(truncatingIfNeeded: totalLength), at: offset + 2)
        frame.netStoreUInt16(identification, at: offset + 4)
        frame.netStoreUInt16(flagDontFragment, at: offset + 6)
        frame.netStoreUInt16(UInt16(ttl) &<< 8 | UInt16(protocolNumber), at: offset + 8)
        frame.netStoreUInt16(0, at: offset + 10)
        source.write(to: &frame, at: offset + 12)
        destination.write(to: &frame, at: offset + 16)
        frame.netStoreUInt16(frame.netChecksum(offset..<(offset + minimumLength)), at: offset + 10)
    }
}

/// What a transport handler learns about the datagram that carried its segment.
public struct IPv4PacketInfo: Equatable, Sendable {
    public var source: IPv4Address
    public var destination: IPv4Address
    public var protocolNumber: UInt8
    public var ttl: UInt8
    /// Sent to the limited or the subnet-directed broadcast address, not to us alone.
    public var isBroadcast: Bool
}
