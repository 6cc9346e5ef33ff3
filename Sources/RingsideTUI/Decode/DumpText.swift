// Text for the dump pane: the `hexdump -C` layout and a decoded header summary.
//
// Kept inside the TUI behind `DumpText` so the packet decoder RingsideKit grows can replace
// the minimal one here without touching the renderer.

/// Formats buffers as text lines.
public enum DumpText {
    /// `hexdump -C` exactly: `%08x`, two spaces, 16 bytes as `xx ` with an extra space after
    /// the eighth, ` |ASCII|` (printable 0x20–0x7e, else '.'); runs of identical full lines
    /// are squeezed into one `*`; the last line is the total length. `squeeze: false` is
    /// `hexdump -C -v`.
    public static func hexdumpLines(_ bytes: [UInt8], squeeze: Bool = true) -> [String] {
        var lines: [String] = []
        var previous: ArraySlice<UInt8>? = nil
        var starred = false
        var offset = 0
        while offset < bytes.count {
            let row = bytes[offset..<min(offset + 16, bytes.count)]
            if squeeze, row.count == 16, let previous, previous.elementsEqual(row) {
                if !starred { lines.append("*"); starred = true }
                offset += 16
                continue
            }
            starred = false
            previous = row
            lines.append(hexLine(offset: offset, row))
            offset += 16
        }
        if !bytes.isEmpty { lines.append(hex(bytes.count, width: 8)) }
        return lines
    }

    static func hexLine(offset: Int, _ row: ArraySlice<UInt8>) -> String {
        var s = hex(offset, width: 8) + "  "
        var ascii = ""
        var i = 0
        for b in row {
            s += hex(Int(b), width: 2) + " "
            if i == 7 { s += " " }
            ascii.unicodeScalars.append(b >= 0x20 && b < 0x7f ? Unicode.Scalar(b) : ".")
            i += 1
        }
        while i < 16 {
            s += "   "
            if i == 7 { s += " " }
            i += 1
        }
        return s + " |" + ascii + "|"
    }

    static let digits: [Character] = Array("0123456789abcdef")

    /// Lower-case hex, zero-padded to `width` digits.
    public static func hex(_ value: Int, width: Int) -> String {
        var chars: [Character] = []
        var v = UInt64(truncatingIfNeeded: value)
        repeat {
            chars.append(digits[Int(v & 0xf)])
            v >>= 4
        } while v != 0
        while chars.count < width { chars.append("0") }
        return String(chars.reversed())
    }

    public static func hex64(_ value: UInt64) -> String {
        hex(Int(truncatingIfNeeded: value), width: 16)
    }
}
