// IPv4 address (RFC 791), held in host order so that masks and comparisons are plain
// integer operations; it is converted to network order only when read from or written to a
// packet.

public struct IPv4Address: Equatable, Sendable {
    /// 10.0.2.15 is 0x0A00_020F.
    public var value: UInt32

    public static let unspecified = IPv4Address(0)
    public static let broadcast = IPv4Address(0xFFFF_FFFF)

    public init(_ value: UInt32) {
        self.value = value
    }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Reads four bytes at `offset`; the caller has checked that they exist.
    init(bytes: UnsafeRawBufferPointer, at offset: Int) {
        value = bytes.netUInt32(at: offset)
    }

    func write(to frame: inout [UInt8], at offset: Int) {
        frame.netStoreUInt32(value, at: offset)
    }

    /// Parses dotted-quad text "A.B.C.D": exactly four decimal parts of 1 to 3 digits, each
    /// at most 255. Nothing else is accepted (no hex, no shortened forms).
    public init?(parsing text: ArraySlice<UInt8>) {
        var result: UInt32 = 0
        var parts = 0
        var partStart = text.startIndex
        var index = text.startIndex
        while true {
            let atEnd = index == text.endIndex
            if atEnd || text[index] == UInt8(ascii: ".") {
                guard let part = NetText.parseDecimal(text[partStart..<index], maxDigits: 3),
                      part <= 255, parts < 4 else { return nil }
                result = result << 8 | part
                parts += 1
                if atEnd { break }
                partStart = index + 1
            }
            index += 1
        }
        guard parts == 4 else { return nil }
        value = result
    }

    public init?(parsing text: [UInt8]) {
        self.init(parsing: text[...])
    }

    public var isUnspecified: Bool { value == 0 }
    public var isBroadcast: Bool { value == 0xFFFF_FFFF }
    /// 224.0.0.0/4 (RFC 5771).
    public var isMulticast: Bool { value & 0xF000_0000 == 0xE000_0000 }
    /// 240.0.0.0/4 reserved, which includes the limited broadcast address.
    public var isReserved: Bool { value & 0xF000_0000 == 0xF000_0000 }

    /// The network mask of a prefix length: 24 → 255.255.255.0. Lengths above 32 count as 32.
    public static func mask(prefixLength: Int) -> UInt32 {
        if prefixLength <= 0 { return 0 }
        if prefixLength >= 32 { return 0xFFFF_FFFF }
        return ~(UInt32(0xFFFF_FFFF) >> UInt32(prefixLength))
    }

    /// "10.0.2.15".
    public var description: String {
        var text: [UInt8] = []
        appendDottedQuad(to: &text)
        return NetText.string(text)
    }

    func appendDottedQuad(to text: inout [UInt8]) {
        for index in 0..<4 {
            if index > 0 { text.append(UInt8(ascii: ".")) }
            NetText.appendDecimal((value >> UInt32(24 - 8 * index)) & 0xFF, to: &text)
        }
    }
}
