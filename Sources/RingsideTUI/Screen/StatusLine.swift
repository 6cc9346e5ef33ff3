// The status line: the key hints, or the prompt being typed.

import RingsideKit

/// The key hints on the status line, most important first (cut at the right edge).
let statusHints: [(String, String)] = hints(KeyMap.statusLine)

/// The key hints in a replay (`ringside replay`).
let replayStatusHints: [(String, String)] = hints(KeyMap.replayStatusLine)

/// The key hints while a pane is expanded; the arrows move the table's cursor, else scroll.
func expandedStatusHints(_ pane: Pane) -> [(String, String)] {
    KeyMap.expandedStatusLine.flatMap { binding in
        binding.hints.map { hint in
            (hint.keys, pane == .descriptors && binding.helpKeys == KeyMap.move.helpKeys ? "cursor" : hint.label)
        }
    }
}

func hints(_ bindings: [KeyBinding]) -> [(String, String)] {
    bindings.flatMap { $0.hints.map { ($0.keys, $0.label) } }
}

func drawStatus(_ g: inout ScreenGrid, _ state: TUIState, _ r: Rect) {
    g.fill(y: r.y, x: 0, height: 1, width: r.width, with: Cell(" ", CellStyle(.header)))
    switch state.mode {
    case .prompt(let kind, let text):
        var x = g.text(kind.label, y: r.y, x: 0, style: CellStyle(.key, bold: true))
        x = g.text(text, y: r.y, x: x, style: CellStyle(.header))
        g.put(Cell("█", CellStyle(.header)), y: r.y, x: x)
        let hint = kind == .command ? "  stats · pause Q · resume Q · step Q [N] · dump Q --next|--last|--desc ID · rate HZ · reset · inject Q FAULT · kick Q · poll Q · hmp CMD   Enter run · Esc cancel"
            : "  Enter ok · Esc cancel"
        g.text(hint, y: r.y, x: x + 1, style: CellStyle(.header))
    default:
        // Full hints when they fit, else the compact form ("?help Tab queue"); q quit always.
        let statusHints = state.panes.expanded != nil ? expandedStatusHints(state.panes.expanded!)
            : state.replay != nil ? replayStatusHints : statusHints
        let full = statusHints.reduce(0) { $0 + $1.0.columns + $1.1.columns + 3 }
        let compact = full <= r.width ? 0 : 1   // narrow: no space after each hint
        var x = 0
        for (i, (key, what)) in statusHints.enumerated() {
            let width = key.columns + what.columns + 3 - compact
            let roomForQuit = i == statusHints.count - 1 ? 0 : 8
            if x + width + roomForQuit > r.width && i != statusHints.count - 1 { continue }
            x = g.text(" " + key, y: r.y, x: x, style: CellStyle(.key, bold: true))
            x = g.text(" " + what + (compact == 1 ? "" : " "), y: r.y, x: x, style: CellStyle(.header))
        }
    }
}
