// Network byte order ("big endian", RFC 791 Appendix B) field access.
//
// The readers do no bounds checking of their own: every parser checks the length of its
// buffer once, up front, and only then reads fixed offsets. The writers work on frames the
// stack allocates itself, whose layout it controls.

extension UnsafeRawBufferPointer {
    @inline(__always)
    func netUInt16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) &<< 8 | UInt16(self[offset &+ 1])
    }

    @inline(__always)
    func netUInt32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) &<< 24 | UInt32(self[offset &+ 1]) &<< 16
            | UInt32(self[offset &+ 2]) &<< 8 | UInt32(self[offset &+ 3])
    }

    /// The bytes `range` of this buffer, without copying. `range` must lie inside `0..<count`.
    @inline(__always)
    public func netSlice(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[range])
    }
}

extension Array where Element == UInt8 {
    // One bounds check and one uniqueness check per field, not one per byte (each byte's
    // subscript store checks both): the transmit path writes some twenty fields a frame.
    @inline(__always)
    mutating func netStoreUInt16(_ value: UInt16, at offset: Int) {
        precondition(offset >= 0 && offset <= count &- 2)
        withUnsafeMutableBytes { $0.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self) }
    }

    @inline(__always)
    mutating func netStoreUInt32(_ value: UInt32, at offset: Int) {
        precondition(offset >= 0 && offset <= count &- 4)
        withUnsafeMutableBytes { $0.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self) }
    }

    /// Copies `bytes` into this array starting at `offset`; the array must be long enough.
    mutating func netCopy(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        guard bytes.count > 0 else { return }
        precondition(offset >= 0 && offset + bytes.count <= count)
        withUnsafeMutableBytes { destination in
            UnsafeMutableRawBufferPointer(rebasing: destination[offset..<(offset + bytes.count)])
                .copyMemory(from: bytes)
        }
    }

    /// The internet checksum of `range` of this array.
    func netChecksum(_ range: Range<Int>, startingWith initial: InternetChecksum = InternetChecksum()) -> UInt16 {
        var checksum = initial
        withUnsafeBytes { bytes in checksum.add(bytes.netSlice(range)) }
        return checksum.value
    }
}

/// Decimal and hexadecimal text without `String(_:radix:)` (which needs Unicode tables in
/// Embedded Swift): the stack formats addresses into UTF-8 bytes itself.
enum NetText {
    static let hexDigits: StaticString = "0123456789abcdef"

    static func appendDecimal(_ value: UInt32, to text: inout [UInt8]) {
        if value == 0 {
            text.append(UInt8(ascii: "0"))
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var remaining = value
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            while remaining > 0 {
                buffer[count] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: remaining % 10)
                remaining /= 10
                count += 1
            }
            while count > 0 {
                count -= 1
                text.append(buffer[count])
            }
        }
    }

    static func appendHexByte(_ byte: UInt8, to text: inout [UInt8]) {
        let digits = hexDigits.utf8Start
        text.append(digits[Int(byte &>> 4)])
        text.append(digits[Int(byte & 0x0F)])
    }

    static func string(_ bytes: [UInt8]) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    /// Parses a decimal number of at most `maxDigits` digits; nil for empty, non-digit or too long.
    static func parseDecimal(_ bytes: ArraySlice<UInt8>, maxDigits: Int) -> UInt32? {
        guard !bytes.isEmpty, bytes.count <= maxDigits else { return nil }
        var value: UInt32 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt32(byte - UInt8(ascii: "0"))
        }
        return value
    }
}
