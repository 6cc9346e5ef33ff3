// The dump pane: the shown dump's hex beside (wide) or under (narrow) its decoded layers.

import RingsideKit
import Wire

func drawDump(_ g: inout ScreenGrid, _ state: TUIState, _ r: Rect, expanded: Bool = false) {
    guard r.height >= 2 else { return }
    guard let i = state.shownDump, state.dumps.indices.contains(i) else {
        paneRule(&g, state, .dump, r, title: "dump", expanded: expanded)
        g.text(" d: dump the next pending frame of the selected queue (pause it first: Space)", y: r.y + 1, x: r.x, style: CellStyle(.dim), maxX: r.maxX)
        return
    }
    let rec = state.dumps[i]
    let d = rec.dump
    var title = "\(rec.selector) · \(i + 1)/\(state.dumps.count) · desc \(d.descriptor) · \(d.bytes.count)"
        + (d.bufferLength > UInt32(d.bytes.count) ? " of \(d.bufferLength)" : "") + " bytes @0x" + hexDigits(d.guestAddress, width: 1)
    let body = Rect(y: r.y + 1, x: r.x, height: r.height - 1, width: r.width)
    let hexWidth = 79
    let top = state.panes.top[.dump]
    if !expanded && r.width >= hexWidth + 50 {
        // Side by side: the hex (and what is known of the buffer) scrolls on the left, the
        // decoded layers stay on the right.
        let lines = dumpPaneLines(state, rec, width: hexWidth, rows: body.height, full: false, decode: false)
        let first = drawPaneLines(&g, lines, top: top ?? 0, in: Rect(y: body.y, x: body.x, height: body.height, width: hexWidth))
        for (k, line) in dumpDecodeLines(state, rec).prefix(body.height).enumerated() {
            g.text(line, y: body.y + k, x: r.x + hexWidth + 1, style: CellStyle(.decoded), maxX: r.maxX)
        }
        let position = scrollPosition(top: first, rows: body.height, count: lines.count)
        if !position.isEmpty { title += " · " + position }
    } else {
        // Stacked: what is known of the buffer, the decoded layers (all when expanded; in the
        // layout all when everything fits, else the innermost), then the hex.
        let lines = dumpPaneLines(state, rec, width: r.width, rows: body.height, full: expanded)
        let first = drawPaneLines(&g, lines, top: top ?? 0, in: body)
        let position = scrollPosition(top: first, rows: body.height, count: lines.count)
        if !position.isEmpty { title += " · " + position }
    }
    paneRule(&g, state, .dump, r, title: title, expanded: expanded)
}

func drawHexLine(_ g: inout ScreenGrid, _ line: String, y: Int, x: Int, maxX: Int) {
    // Offset, bytes and ASCII column in their own styles.
    let scalars = Array(line.unicodeScalars)
    for (i, s) in scalars.enumerated() where x + i < maxX {
        let role: CellRole = i < 8 ? .hexOffset : (i >= 60 ? .hexASCII : .hexBytes)
        g.put(Cell(s, CellStyle(role)), y: y, x: x + i)
    }
}
