import Wire

// Text from the guest (queue names, reply messages, its serial console) or from QEMU goes through
// here before the CLI prints it, so a hostile guest cannot drive the user's terminal (set the
// window title, recolour, clear, answerback...). What counts as a control is
// `Unicode.Scalar.isTerminalControl` (Sources/Wire/WireText.swift); the JSON writer escapes the same set.

extension String {
    /// This text with every terminal control written out the way Python's `repr` shows it:
    /// `\x1b` for ESC, `\x07` for BEL, `\x9b` for the C1 CSI, `\x7f` for DEL, `\r`, `\u202e`.
    ///
    /// With `keepingLines`, newline and tab stay as they are (for multi-line output as a whole);
    /// without, they become `\n` and `\t`, so one field cannot forge a line of output. Backslashes
    /// are left alone, so JSON passes through unchanged.
    public func escapingTerminalControls(keepingLines: Bool = false) -> String {
        func unsafe(_ s: Unicode.Scalar) -> Bool {
            s.isTerminalControl && !(keepingLines && (s == "\n" || s == "\t"))
        }
        guard unicodeScalars.contains(where: unsafe) else { return self }
        var out = String.UnicodeScalarView()
        for s in unicodeScalars {
            guard unsafe(s) else { out.append(s); continue }
            let escape: String
            switch s {
            case "\n": escape = "\\n"
            case "\r": escape = "\\r"
            case "\t": escape = "\\t"
            default:
                let digits = String(s.value, radix: 16)
                escape = s.value <= 0xFF ? "\\x" + String(repeating: "0", count: 2 - digits.count) + digits
                                         : "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
            }
            out.append(contentsOf: escape.unicodeScalars)
        }
        return String(out)
    }
}

/// Escapes a byte stream (the guest's serial console) chunk by chunk, keeping lines and tabs:
/// a UTF-8 sequence split between chunks is held back until it completes; bytes that are not
/// UTF-8 become U+FFFD (so a lone 0x9B, CSI to an 8-bit terminal, never passes).
public struct TerminalSafeStream: Sendable {
    private var held: [UInt8] = []

    public init() {}

    /// The escaped text for `bytes` (less any incomplete UTF-8 sequence at the end, kept for the next call).
    public mutating func escape(_ bytes: [UInt8]) -> [UInt8] {
        var input = held + bytes
        held = []
        // Hold back a trailing lead byte whose sequence is not complete yet (at most 3 bytes).
        var start = input.count - 1
        while start >= 0 && start >= input.count - 3 && input[start] & 0xC0 == 0x80 { start -= 1 }
        if start >= 0 {
            let lead = input[start]
            let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
            if lead < 0xF8 && input.count - start < length {
                held = Array(input[start...])
                input.removeSubrange(start...)
            }
        }
        return Array(String(decoding: input, as: UTF8.self).escapingTerminalControls(keepingLines: true).utf8)
    }
}
