// Little-endian field writer over a caller-owned byte array.
//
// The encoder appends the whole frame body to one array that is reserved once and reused, so
// encoding a snapshot allocates nothing per field (the kernel's telemetry path depends on it).

public struct WireWriter: Sendable {
    /// The bytes written so far.
    public var bytes: [UInt8]

    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public var count: Int { bytes.count }

    public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    @inline(__always)
    public mutating func writeU8(_ value: UInt8) { bytes.append(value) }

    @inline(__always)
    public mutating func writeBool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    public mutating func writeU16(_ value: UInt16) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func writeU32(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func writeU64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Unsigned LEB128: 7 bits a byte, least significant group first, high bit = "more follows".
    /// Counters are mostly small, so this saves 5-7 bytes per u64 counter in a snapshot.
    public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    /// A string: length u8, then UTF-8 bytes. Longer strings are cut to 255 bytes at a scalar
    /// boundary (names and messages are short by design; a cut never produces invalid UTF-8).
    public mutating func writeString(_ value: String) {
        let utf8 = value.utf8
        var length = utf8.count
        if length > WireProtocol.maxStringBytes {
            length = WireProtocol.maxStringBytes
            // Step back over continuation bytes (10xxxxxx) so the cut falls between scalars.
            var cut = utf8.index(utf8.startIndex, offsetBy: length)
            while length > 0 && utf8[cut] & 0xC0 == 0x80 {
                length -= 1
                cut = utf8.index(before: cut)
            }
        }
        bytes.append(UInt8(truncatingIfNeeded: length))
        bytes.append(contentsOf: utf8.prefix(length))
    }

    public mutating func writeBytes(_ value: [UInt8]) { bytes.append(contentsOf: value) }

    public mutating func writeBytes(_ value: UnsafeRawBufferPointer) { bytes.append(contentsOf: value) }

    /// Overwrites a u16 written earlier (a count known only after its entries).
    public mutating func patchU16(at offset: Int, _ value: UInt16) {
        bytes[offset] = UInt8(truncatingIfNeeded: value)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
    }

    /// Overwrites a u8 written earlier.
    public mutating func patchU8(at offset: Int, _ value: UInt8) {
        bytes[offset] = value
    }
}
