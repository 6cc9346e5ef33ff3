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

    /// Decodes one COBS block sequence (without delimiters) into `out` (replacing its contents).
    /// Returns false if `encoded` is not valid COBS (a 0x00 inside, or a code that runs past the
    /// end) or would decode to more than `limit` bytes. Never traps.
    public static func decode(
        _ encoded: UnsafeRawBufferPointer, into out: inout [UInt8], limit: Int = Int.max
    ) -> Bool {
        out.removeAll(keepingCapacity: true)
        let count = encoded.count
        if count == 0 { return false }   // even an empty body encodes to one code byte
        var index = 0
        while index < count {
            let code = Int(encoded[index])
            if code == 0 { return false }
            let blockEnd = index + code   // exclusive end of this block's data
            if blockEnd > count { return false }
            if out.count + (code - 1) > limit { return false }
            if code > 1 {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: encoded[(index + 1)..<blockEnd]))
            }
            index = blockEnd
            if code != 0xFF && index < count {
                if out.count >= limit { return false }
                out.append(0)
            }
        }
        // A 0x00 inside a block's data is not rejected here: the frame decoder splits the stream
        // at zeros, so its input has none, and for other callers the frame CRC catches it.
        return true
    }

    /// Decodes `encoded` (no delimiters) into a new array; nil if it is not valid COBS.
    public static func decode(_ encoded: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(encoded.count)
        let ok = encoded.withUnsafeBytes { decode($0, into: &out) }
        return ok ? out : nil
    }

    /// The worst-case encoded size of `count` bytes (without delimiters).
    public static func maxEncodedCount(_ count: Int) -> Int {
        count + count / 254 + 1
    }
}
