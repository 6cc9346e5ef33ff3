// TCP (RFC 9293 §3.1) — just enough to refuse connections politely until the TCP piece
// of work arrives: a fixed header is decoded and checked, and a segment to a port nobody
// listens on is answered with a reset (§3.10.7.1, "If the state is CLOSED").
//
//   0-1: source port | 2-3: destination port | 4-7: sequence | 8-11: acknowledgment
//   12: data offset(4) reserved(4) | 13: flags CWR ECE URG ACK PSH RST SYN FIN
//   14-15: window | 16-17: checksum | 18-19: urgent pointer | 20..: options

public struct TCPSegmentHeader {
    public static let minimumLength = 20
    public static let flagFIN: UInt8 = 0x01
    public static let flagSYN: UInt8 = 0x02
    public static let flagRST: UInt8 = 0x04
    public static let flagPSH: UInt8 = 0x08
    public static let flagACK: UInt8 = 0x10

    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequenceNumber: UInt32
    public var acknowledgmentNumber: UInt32
    public var headerLength: Int
    public var flags: UInt8
    public var window: UInt16
    /// Bytes of data after the header.
    public var payloadLength: Int

    /// SEG.LEN: data plus one for each of SYN and FIN.
    public var sequenceLength: UInt32 {
        var length = UInt32(truncatingIfNeeded: payloadLength)
        if flags & TCPSegmentHeader.flagSYN != 0 { length &+= 1 }
        if flags & TCPSegmentHeader.flagFIN != 0 { length &+= 1 }
        return length
    }

    /// Validates the whole IPv4 payload `segment`: a fixed header, 5 ≤ data offset with
    /// the options inside the segment (malformed), and the checksum (bad checksum).
    public static func parse(
        _ segment: UnsafeRawBufferPointer, source: IPv4Address, destination: IPv4Address
    ) throws(NetDropReason) -> TCPSegmentHeader {
        guard segment.count >= minimumLength else { throw .tcpMalformed }
        let headerLength = Int(segment[12] >> 4) * 4
        guard headerLength >= minimumLength, headerLength <= segment.count else { throw .tcpMalformed }
        var sum = InternetChecksum.pseudoHeader(
            source: source, destination: destination, protocolNumber: IPProtocolNumber.tcp,
            length: segment.count)
        sum.add(segment)
        guard sum.value == 0 else { throw .tcpBadChecksum }
        return TCPSegmentHeader(
            sourcePort: segment.netUInt16(at: 0),
            destinationPort: segment.netUInt16(at: 2),
            sequenceNumber: segment.netUInt32(at: 4),
            acknowledgmentNumber: segment.netUInt32(at: 8),
            headerLength: headerLength,
            flags: segment[13],
            window: segment.netUInt16(at: 14),
            payloadLength: segment.count - headerLength)
    }

    /// The reset RFC 9293 §3.10.7.1 prescribes for `incoming` at a CLOSED port, or nil when
    /// `incoming` is itself a reset (never answer a reset):
    /// - ACK set:   <SEQ=SEG.ACK><CTL=RST>
    /// - ACK clear: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    public static func reset(answering incoming: TCPSegmentHeader) -> TCPSegmentHeader? {
        guard incoming.flags & flagRST == 0 else { return nil }
        let ackSet = incoming.flags & flagACK != 0
        return TCPSegmentHeader(
            sourcePort: incoming.destinationPort,
            destinationPort: incoming.sourcePort,
            sequenceNumber: ackSet ? incoming.acknowledgmentNumber : 0,
            acknowledgmentNumber: ackSet ? 0 : incoming.sequenceNumber &+ incoming.sequenceLength,
            headerLength: minimumLength,
            flags: ackSet ? flagRST : flagRST | flagACK,
            window: 0,
            payloadLength: 0)
    }

    /// Writes this header (no options) at `offset` with the checksum computed over the
    /// header and `payloadLength` bytes after it, which must already be in place.
    func write(to frame: inout [UInt8], at offset: Int, source: IPv4Address, destination: IPv4Address) {
        frame.netStoreUInt16(sourcePort, at: offset)
        frame.netStoreUInt16(destinationPort, at: offset + 2)
        frame.netStoreUInt32(sequenceNumber, at: offset + 4)
        frame.netStoreUInt32(acknowledgmentNumber, at: offset + 8)
        frame[offset + 12] = UInt8(truncatingIfNeeded: TCPSegmentHeader.minimumLength / 4) << 4
        frame[offset + 13] = flags
        frame.netStoreUInt16(window, at: offset + 14)
        frame.netStoreUInt16(0, at: offset + 16)
        frame.netStoreUInt16(0, at: offset + 18)
        let length = TCPSegmentHeader.minimumLength + payloadLength
        let checksum = frame.netChecksum(
            offset..<(offset + length),
            startingWith: InternetChecksum.pseudoHeader(
                source: source, destination: destination, protocolNumber: IPProtocolNumber.tcp,
                length: length))
        frame.netStoreUInt16(checksum, at: offset + 16)
    }
}
