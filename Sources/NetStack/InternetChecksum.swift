// The internet checksum (RFC 1071): the 16-bit ones' complement of the ones' complement sum
// of the data taken as 16-bit big-endian words, the last odd byte padded with zero.
//
// Incremental: data may be added in pieces of any length (an odd piece leaves its last byte
// waiting for the next piece). The sum is accumulated 64 bits (four 16-bit words) at a
// time, with the carry out of bit 63 added back in ("end-around carry"), and folded to 16
// bits at the end; RFC 1071 §2 (C) "parallel summation" makes that equal to the 16-bit sum
// (2^16 - 1 divides 2^64 - 1).
//
// Checking a received header: the checksum of the data *including* its checksum field is 0.

public struct InternetChecksum {
    private var sum: UInt64 = 0
    /// A byte waiting for its low half when an odd-length piece was added.
    private var pendingHighByte: UInt8?

    public init() {}

    /// Adds a big-endian group of whole 16-bit words, read as one number, with end-around carry.
    @inline(__always)
    private mutating func addWords(_ value: UInt64) {
        let (total, overflow) = sum.addingReportingOverflow(value)
        sum = overflow ? total &+ 1 : total
    }

    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        let count = bytes.count
        guard count > 0 else { return }
        if let high = pendingHighByte {
            addWords(UInt64(high) << 8 | UInt64(bytes[0]))
            pendingHighByte = nil
            offset = 1
        }
        while offset + 8 <= count {
            addWords(UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
            offset += 8
        }
        if offset + 4 <= count {
            addWords(UInt64(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))))
            offset += 4
        }
        if offset + 2 <= count {
            addWords(UInt64(bytes.netUInt16(at: offset)))
            offset += 2
        }
        if offset < count {
            pendingHighByte = bytes[offset]
        }
    }

    public mutating func add(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { add($0) }
    }

    /// Adds one 16-bit word in host order, as if its two bytes (high first) were added.
    public mutating func add(_ word: UInt16) {
        if let high = pendingHighByte {
            // The word straddles the pending byte: feed it byte by byte.
            addWords(UInt64(high) << 8 | UInt64(word >> 8))
            pendingHighByte = UInt8(truncatingIfNeeded: word)
        } else {
            addWords(UInt64(word))
        }
    }

    public mutating func add(_ address: IPv4Address) {
        add(UInt16(truncatingIfNeeded: address.value >> 16))
        add(UInt16(truncatingIfNeeded: address.value))
    }

    /// The checksum to store in a header: ones' complement of the folded sum.
    public var value: UInt16 {
        var total = self
        if let high = total.pendingHighByte {
            total.addWords(UInt64(high) << 8)
        }
        return Self.fold(total.sum)
    }

    /// The ones' complement of a 64-bit end-around-carry sum folded to 16 bits.
    private static func fold(_ sum: UInt64) -> UInt16 {
        var total = sum
        while total >> 16 != 0 {
            total = (total & 0xFFFF) &+ (total >> 16)
        }
        return ~UInt16(truncatingIfNeeded: total)
    }

    /// The checksum of one buffer.
    public static func compute(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        var checksum = InternetChecksum()
        checksum.add(bytes)
        return checksum.value
    }

    public static func compute(_ bytes: [UInt8]) -> UInt16 {
        bytes.withUnsafeBytes { compute($0) }
    }

    /// A sum started with the IPv4 pseudo-header that UDP (RFC 768) and TCP (RFC 9293 §3.1)
    /// prepend for their checksums: source, destination, zero, protocol, transport length.
    public static func pseudoHeader(
        source: IPv4Address, destination: IPv4Address, protocolNumber: UInt8, length: Int
    ) -> InternetChecksum {
        var checksum = InternetChecksum()
        checksum.add(source)
        checksum.add(destination)
        checksum.add(UInt16(protocolNumber))
        checksum.add(UInt16(truncatingIfNeeded: length))
        return checksum
    }
}
