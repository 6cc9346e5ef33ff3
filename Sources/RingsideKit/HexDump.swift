// Hex text for people: `hexdump -C` dumps (for `ringside ctl dump` and the TUI's dump pane),
// zero-padded hex numbers and MAC addresses. One implementation, so the CLI and the TUI print
// the same bytes the same way.

/// `hexdump -C` layout, byte for byte: an 8-digit offset, two spaces, 16 bytes as two groups of
/// 8 (`xx ` each, one extra space between the groups), `|ascii|` (0x20–0x7e shown, others `.`),
/// `*` for lines repeating the previous one, and a final line with the total length.
/// Empty input gives an empty string (as `hexdump -C` prints nothing).
public func hexDumpC(_ bytes: [UInt8], squeeze: Bool = true) -> String {
    hexDumpCLines(bytes, squeeze: squeeze).map { $0 + "\n" }.joined()
}

/// `hexDumpC` as lines without their newlines (the TUI draws them one per row).
/// `squeeze: false` is `hexdump -C -v`: repeated lines are printed, not folded into `*`.
public func hexDumpCLines(_ bytes: [UInt8], squeeze: Bool = true) -> [String] {
    if bytes.isEmpty { return [] }
    var lines: [String] = []
    var previous: ArraySlice<UInt8>? = nil
    var starred = false
    var i = 0
    while i < bytes.count {
        let line = bytes[i..<min(i + 16, bytes.count)]
        if squeeze, line.count == 16, let previous, previous.elementsEqual(line) {
            if !starred { lines.append("*"); starred = true }
            i += 16
            continue
        }
        starred = false
        previous = line
        var text = hexDigits(UInt64(i), width: 8) + "  "
        for k in 0..<16 {
            if k < line.count {
                text += hexDigits(UInt64(line[line.startIndex + k]), width: 2) + " "
            } else {
                text += "   "
            }
            if k == 7 { text += " " }
        }
        text += " |"
        for b in line { text.append((0x20...0x7e).contains(b) ? Character(UnicodeScalar(b)) : ".") }
        text += "|"
        lines.append(text)
        i += 16
    }
    lines.append(hexDigits(UInt64(bytes.count), width: 8))
    return lines
}

/// Lower-case hex of `value`, zero-padded to at least `width` digits (no `0x`).
public func hexDigits(_ value: UInt64, width: Int) -> String {
    let s = String(value, radix: 16)
    return s.count < width ? String(repeating: "0", count: width - s.count) + s : s
}

/// A MAC address as `52:54:00:12:34:56`.
public func macAddressText(_ bytes: some Collection<UInt8>) -> String {
    bytes.map { hexDigits(UInt64($0), width: 2) }.joined(separator: ":")
}
