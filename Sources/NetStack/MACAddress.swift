// IEEE 802 MAC-48 address. Stored as a 48-bit number whose most significant byte is the
// first byte on the wire, so comparisons are one integer compare.

public struct MACAddress: Equatable, Sendable {
    /// The six octets as a number: 52:54:00:12:34:56 is 0x5254_0012_3456.
    public var rawValue: UInt64

    public static let broadcast = MACAddress(rawValue: 0xFFFF_FFFF_FFFF)
    public static let zero = MACAddress(rawValue: 0)

    public init(rawValue: UInt64) {
        self.rawValue = rawValue & 0xFFFF_FFFF_FFFF
    }

    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        rawValue = UInt64(b0) << 40 | UInt64(b1) << 32 | UInt64(b2) << 24
            | UInt64(b3) << 16 | UInt64(b4) << 8 | UInt64(b5)
    }

    /// Reads six bytes at `offset`; the caller has checked that they exist.
    init(bytes: UnsafeRawBufferPointer, at offset: Int) {
        rawValue = UInt64(bytes.netUInt16(at: offset)) << 32 | UInt64(bytes.netUInt32(at: offset + 2))
    }

    /// Six bytes from `bytes`, or nil unless there are exactly six.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 6 else { return nil }
        self.init(bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5])
    }

    public var bytes: [UInt8] {
        var result = [UInt8](repeating: 0, count: 6)
        write(to: &result, at: 0)
        return result
    }

    func write(to frame: inout [UInt8], at offset: Int) {
        frame.netStoreUInt16(UInt16(truncatingIfNeeded: rawValue >> 32), at: offset)
        frame.netStoreUInt32(UInt32(truncatingIfNeeded: rawValue), at: offset + 2)
    }

    public var isBroadcast: Bool { rawValue == 0xFFFF_FFFF_FFFF }

    /// Group bit (I/G) of the first octet: multicast and broadcast addresses.
    public var isMulticast: Bool { rawValue & 0x0100_0000_0000 != 0 }

    /// "52:54:00:12:34:56".
    public var description: String {
        var text: [UInt8] = []
        text.reserveCapacity(17)
        for index in 0..<6 {
            if index > 0 { text.append(UInt8(ascii: ":")) }
            NetText.appendHexByte(UInt8(truncatingIfNeeded: rawValue >> UInt64(40 - 8 * index)), to: &text)
        }
        return NetText.string(text)
    }
}
