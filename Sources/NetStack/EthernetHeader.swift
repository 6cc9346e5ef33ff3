// Ethernet II framing (IEEE 802.3 with an EtherType instead of a length). The device
// strips the preamble and FCS on receive and adds them on send, so a frame here is
// destination, source, EtherType, payload.

/// EtherType values the stack knows (IEEE registry).
public enum EtherTypeNumber {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
}

public struct EthernetHeader: Equatable {
    /// Destination (6) + source (6) + EtherType (2).
    public static let length = 14
    /// 64-byte minimum frame less the 4-byte FCS the device appends: shorter frames are
    /// padded with zeros when built.
    public static let minimumFrameLength = 60
    /// Largest payload: a 1500-byte MTU.
    public static let maximumPayloadLength = 1500

    public var destination: MACAddress
    public var source: MACAddress
    public var etherType: UInt16

    public init(destination: MACAddress, source: MACAddress, etherType: UInt16) {
        self.destination = destination
        self.source = source
        self.etherType = etherType
    }

    /// The header of `frame`, or nil when the frame is shorter than a header. EtherType
    /// values below 0x0600 (802.3 length fields) are returned as they are; the stack counts
    /// them as unsupported.
    public static func parse(_ frame: UnsafeRawBufferPointer) -> EthernetHeader? {
        guard frame.count >= length else { return nil }
        return EthernetHeader(
            destination: MACAddress(bytes: frame, at: 0),
            source: MACAddress(bytes: frame, at: 6),
            etherType: frame.netUInt16(at: 12))
    }

    func write(to frame: inout [UInt8]) {
        destination.write(to: &frame, at: 0)
        source.write(to: &frame, at: 6)
        frame.netStoreUInt16(etherType, at: 12)
    }

    /// A zero-filled frame for `payloadLength` bytes after this header, padded to the
    /// 60-byte minimum, with the header written.
    func makeFrame(payloadLength: Int) -> [UInt8] {
        let length = Swift.max(EthernetHeader.minimumFrameLength, EthernetHeader.length + payloadLength)
        var frame = [UInt8](repeating: 0, count: length)
        write(to: &frame)
        return frame
    }
}
