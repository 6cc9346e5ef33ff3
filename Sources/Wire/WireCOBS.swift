// Consistent Overhead Byte Stuffing (Cheshire & Baker, IEEE/ACM ToN 1999).
//
// COBS rewrites a byte string so that it contains no 0x00, at a cost of at most one byte per
// 254 (plus one). 0x00 can then delimit frames: a receiver that starts mid-stream, or sees
// garbage, discards up to the next 0x00 and is back in step — the stream resynchronises by
// itself within one frame.
//
// Encoding splits the input at each zero into blocks; each block is written as a code byte
// (block length + 1) followed by the block's non-zero bytes, the zero itself being implied.
// A code of 0xFF means 254 non-zero bytes with *no* implied zero after them.

public enum WireCOBS: Sendable {
    /// Appends the COBS encoding of `bytes` (no delimiters) to `out`.
    public static func encode(_ bytes: UnsafeRawBufferPointer, appendingTo out: inout [UInt8]) {
        var codeIndex = out.count
        out.append(0)   // placeholder for the first block's code
        var code: UInt8 = 1
        for byte in bytes {
            if byte != 0 {
                out.append(byte)
                code &+= 1
                if code != 0xFF { continue }
            }
            // A zero, or a full block of 254 non-zero bytes: close the block.
            out[codeIndex] = code
            code = 1
            codeIndex = out.count
            out.append(0)
        }
        out[codeIndex] = code
    }

    /// Appends the COBS encoding of `bytes` (no delimiters) to `out`.
    public static func encode(_ bytes: [UInt8], appendingTo out: inout [UInt8]) {
        bytes.withUnsafeBytes { encode($0, appendingTo: &out) }
    }

    /// Decodes one COBS block sequence (without delimiters) into the start of `out`, which
    /// must have room for `encoded.count` bytes (decoding never grows data). Returns the
    /// decoded length, or nil if `encoded` is not valid COBS (a 0x00 code, or a code that runs
    /// past the end) or decodes to more than `limit` bytes. Never traps.
    public static func decode(
        _ encoded: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, limit: Int = Int.max
    ) -> Int? {
        let count = encoded.count
        if count == 0 || out.count < count { return nil }   // even an empty body is one code byte
        guard let source = encoded.baseAddress, let destination = out.baseAddress else { return nil }
        var index = 0
        var length = 0
        while index < count {
            let code = Int(source.load(fromByteOffset: index, as: UInt8.self))
            if code == 0 { return nil }
            let blockEnd = index + code   // exclusive end of this block's data
            if blockEnd > count { return nil }
            // Decoded length never exceeds the encoded length, so `out` has room.
            if code <= 16 {
                // Short blocks are the common case (zeros in integers): a call to memmove costs more.
                var k = 1
                while k < code {
                    destination.storeBytes(of: source.load(fromByteOffset: index + k, as: UInt8.self),
                                           toByteOffset: length + k - 1, as: UInt8.self)
                    k += 1
                }
            } else {
                (destination + length).copyMemory(from: source + index + 1, byteCount: code - 1)
            }
            length += code - 1
            index = blockEnd
            if code != 0xFF && index < count {
                destination.storeBytes(of: 0, toByteOffset: length, as: UInt8.self)
                length += 1
            }
            if length > limit { return nil }
        }
        // A 0x00 inside a block's data is not rejected here: the frame decoder splits the stream
        // at zeros, so its input has none, and for other callers the frame CRC catches it.
        return length
    }

    /// Decodes `encoded` (no delimiters) into a new array; nil if it is not valid COBS.
    public static func decode(_ encoded: [UInt8]) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: encoded.count)
        let length = encoded.withUnsafeBytes { e in out.withUnsafeMutableBytes { decode(e, into: $0) } }
        guard let length else { return nil }
        out.removeLast(out.count - length)
        return out
    }

    /// The worst-case encoded size of `count` bytes (without delimiters).
    public static func maxEncodedCount(_ count: Int) -> Int {
        count + count / 254 + 1
    }
}
