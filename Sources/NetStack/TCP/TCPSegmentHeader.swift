// The TCP header (RFC 9293 §3.1) and the one option this TCP uses, MSS (§3.2): decoded
// and checked on the way in, written on the way out. Every segment the stack sends, data
// or reset, is written by `write(to:at:source:destination:options:)`.
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

    /// Writes this header and `options` at `offset` (the data offset counts the options),
    /// with the checksum computed over the header and `payloadLength` bytes after it, which
    /// must already be in place.
    func write(to frame: inout [UInt8], at offset: Int, source: IPv4Address, destination: IPv4Address,
               options: TCPOptions = TCPOptions()) {
        let headerLength = TCPSegmentHeader.minimumLength + options.length
        frame.netStoreUInt16(sourcePort, at: offset)
        frame.netStoreUInt16(destinationPort, at: offset + 2)
        frame.netStoreUInt32(sequenceNumber, at: offset + 4)
        frame.netStoreUInt32(acknowledgmentNumber, at: offset + 8)
        frame[offset + 12] = UInt8(truncatingIfNeeded: headerLength / 4) << 4
        frame[offset + 13] = flags
        frame.netStoreUInt16(window, at: offset + 14)
        frame.netStoreUInt16(0, at: offset + 16)
        frame.netStoreUInt16(0, at: offset + 18)
        options.write(to: &frame, at: offset + TCPSegmentHeader.minimumLength)
        let length = headerLength + payloadLength
        let checksum = frame.netChecksum(
            offset..<(offset + length),
            startingWith: InternetChecksum.pseudoHeader(
                source: source, destination: destination, protocolNumber: IPProtocolNumber.tcp,
                length: length))
        frame.netStoreUInt16(checksum, at: offset + 16)
    }
}

/// The options this TCP reads and writes: MSS (kind 2, length 4; RFC 9293 §3.2), which it
/// sends only on its SYN-ACK. Others are skipped on the way in and never sent.
public struct TCPOptions: Equatable, Sendable {
    public static let kindEnd: UInt8 = 0
    public static let kindNoOperation: UInt8 = 1
    public static let kindMSS: UInt8 = 2
    static let mssLength = 4

    /// The maximum segment size the sender can receive.
    public var mss: UInt16?

    public init(mss: UInt16? = nil) {
        self.mss = mss
    }

    /// Bytes the options take in a header (a multiple of 4).
    public var length: Int { mss == nil ? 0 : TCPOptions.mssLength }

    /// The options of `segment`, whose header is `headerLength` bytes. An MSS option is
    /// taken when well formed and not 0; a malformed option ends the search; nothing here
    /// reads past the header.
    public static func parse(_ segment: UnsafeRawBufferPointer, headerLength: Int) -> TCPOptions {
        var offset = TCPSegmentHeader.minimumLength
        let end = Swift.min(headerLength, segment.count)
        while offset < end {
            let kind = segment[offset]
            if kind == kindEnd { break }
            if kind == kindNoOperation {
                offset += 1
                continue
            }
            guard offset + 1 < end else { break }
            let length = Int(segment[offset + 1])
            guard length >= 2, offset + length <= end else { break }
            if kind == kindMSS, length == mssLength {
                let mss = segment.netUInt16(at: offset + 2)
                return TCPOptions(mss: mss > 0 ? mss : nil)
            }
            offset += length
        }
        return TCPOptions()
    }

    func write(to frame: inout [UInt8], at offset: Int) {
        guard let mss else { return }
        frame[offset] = TCPOptions.kindMSS
        frame[offset + 1] = UInt8(TCPOptions.mssLength)
        frame.netStoreUInt16(mss, at: offset + 2)
    }
}
