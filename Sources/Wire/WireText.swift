// Strings on the wire (queue names, the kernel version, reply messages) come from the guest, which
// the monitor does not trust. This is the one definition of what must never reach a terminal
// raw; the JSON writer and the CLI's escaping both use it.

// Host only: the kernel never prints what it receives.
#if !hasFeature(Embedded)

extension Unicode.Scalar {
    /// A scalar a terminal acts on instead of showing: C0 controls (ESC, BEL, CR, ...), DEL, the
    /// C1 controls U+0080–U+009F (U+009B is a one-character CSI), and the invisible characters
    /// that reorder or split a line (bidi marks, embeddings, overrides and isolates; U+2028/9).
    public var isTerminalControl: Bool {
        switch value {
        case 0..<0x20, 0x7F...0x9F, 0x200E, 0x200F, 0x2028...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }
}

#endif
