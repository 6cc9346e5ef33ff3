// Little-endian field reader over a decoded frame body, in the manner of swift-nio's
// `ByteBuffer`: an explicit reader index, and every read checks the bytes are there first.
// A short or bad body is a typed error, never a trap.

/// Why a frame's payload did not parse.
public enum WireMalformedReason: Error, Equatable, Sendable {
    /// The payload ended inside a field.
    case truncated
    /// Bytes left over after the last field.
    case trailingBytes(count: Int)
    /// An enumeration byte (event kind, state, selector...) with no meaning in this version.
    case invalidValue(UInt8)
    /// A count larger than the protocol allows (e.g. a dump over `maxDumpBytes`).
    case countTooLarge(Int)
    /// A varint longer than 10 bytes or above 2^64 - 1.
    case varintOverflow
    /// A string field that is not well-formed UTF-8.
    case invalidUTF8
}

public struct WireReader: Sendable {
    public let bytes: [UInt8]
    /// Next byte to read.
    public private(set) var readerIndex: Int
    /// One past the last readable byte (the CRC trailer is outside it).
    public let endIndex: Int

    public init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.readerIndex = start
        self.endIndex = min(end ?? bytes.count, bytes.count)
    }

    public var readableBytes: Int { endIndex - readerIndex }

    @inline(__always)
    mutating func need(_ count: Int) throws(WireMalformedReason) {
        if count < 0 || endIndex - readerIndex < count { throw .truncated }
    }

    @inline(__always)
    public mutating func readU8() throws(WireMalformedReason) -> UInt8 {
        try need(1)
        let v = bytes[readerIndex]
        readerIndex += 1
        return v
    }

    public mutating func readBool() throws(WireMalformedReason) -> Bool {
        let v = try readU8()
        if v > 1 { throw .invalidValue(v) }
        return v == 1
    }

    @inline(__always)
    public mutating func readU16() throws(WireMalformedReason) -> UInt16 {
        try need(2)
        let v = UInt16(bytes[readerIndex]) | UInt16(bytes[readerIndex + 1]) << 8
        readerIndex += 2
        return v
    }

    @inline(__always)
    public mutating func readU32() throws(WireMalformedReason) -> UInt32 {
        try need(4)
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(bytes[readerIndex + i]) << (8 * UInt32(i)) }
        readerIndex += 4
        return v
    }

    @inline(__always)
    public mutating func readU64() throws(WireMalformedReason) -> UInt64 {
        try need(8)
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[readerIndex + i]) << (8 * UInt64(i)) }
        readerIndex += 8
        return v
    }

    /// Unsigned LEB128, at most 10 bytes, value ≤ 2^64 - 1.
    public mutating func readVarint() throws(WireMalformedReason) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readU8()
            let group = UInt64(byte & 0x7F)
            if shift == 63 && group > 1 { throw .varintOverflow }
            value |= group << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
            if shift > 63 { throw .varintOverflow }
        }
    }

    /// Length u8 + UTF-8. Ill-formed UTF-8 is malformed: a decoded string re-encodes to the
    /// same bytes, so a message survives decode → encode → decode unchanged.
    public mutating func readString() throws(WireMalformedReason) -> String {
        let length = Int(try readU8())
        try need(length)
        let range = readerIndex..<(readerIndex + length)
        if !WireReader.isWellFormedUTF8(bytes[range]) { throw .invalidUTF8 }
        let s = String(decoding: bytes[range], as: UTF8.self)
        readerIndex += length
        return s
    }

    public mutating func readBytes(_ count: Int) throws(WireMalformedReason) -> [UInt8] {
        try need(count)
        let v = Array(bytes[readerIndex..<(readerIndex + count)])
        readerIndex += count
        return v
    }

    /// Throws if anything is left: every message has an exact length.
    public func expectEnd() throws(WireMalformedReason) {
        if readerIndex != endIndex { throw .trailingBytes(count: endIndex - readerIndex) }
    }

    /// Well-formed UTF-8 per the Unicode Standard, Table 3-7 (no overlongs, no surrogates,
    /// nothing above U+10FFFF). Written out because Embedded Swift has no validating initialiser
    /// we can rely on.
    static func isWellFormedUTF8(_ s: ArraySlice<UInt8>) -> Bool {
        var i = s.startIndex
        let end = s.endIndex
        while i < end {
            let b0 = s[i]
            if b0 < 0x80 { i += 1; continue }
            let count: Int
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF   // range of the second byte
            switch b0 {
            case 0xC2...0xDF: count = 2
            case 0xE0: count = 3; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: count = 3
            case 0xED: count = 3; hi = 0x9F
            case 0xF0: count = 4; lo = 0x90
            case 0xF1...0xF3: count = 4
            case 0xF4: count = 4; hi = 0x8F
            default: return false
            }
            if end - i < count { return false }
            let b1 = s[i + 1]
            if b1 < lo || b1 > hi { return false }
            var k = 2
            while k < count {
                if s[i + k] & 0xC0 != 0x80 { return false }
                k += 1
            }
            i += count
        }
        return true
    }
}
