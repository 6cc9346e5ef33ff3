// The descriptor table of the selected queue, with the table cursor.

import RingsideKit
import Wire

/// "NEXT|WRITE|INDIRECT" for the VIRTQ_DESC_F_* bits (virtio 1.x §2.7.5), "-" for none.
public func descriptorFlagsText(_ flags: UInt16) -> String {
    var parts: [String] = []
    if flags & 1 != 0 { parts.append("NEXT") }
    if flags & 2 != 0 { parts.append("WRITE") }
    if flags & 4 != 0 { parts.append("INDIRECT") }
    let unknown = flags & ~7
    if unknown != 0 { parts.append("0x" + hexDigits(UInt64(unknown), width: 1)) }
    return parts.isEmpty ? "-" : parts.joined(separator: "|")
}

/// Table rows that fit in a descriptor pane of `height` (title and column header excluded).
public func descriptorRowsVisible(paneHeight: Int) -> Int { max(1, paneHeight - 2) }

func drawDescriptorTable(_ g: inout ScreenGrid, _ state: TUIState, _ r: Rect, expanded: Bool = false) {
    guard r.height >= 2 else { return }
    guard let q = state.selectedQueueModel else {
        paneRule(&g, state, .descriptors, r, title: "descriptors", expanded: expanded)
        return
    }
    let hint = state.cursor.map { "d dumps desc \($0) · Esc: next" } ?? "d dumps next pending · ↑↓ pick"
    let rowsShown = descriptorRowsVisible(paneHeight: r.height)
    let position = scrollPosition(top: state.tableTop(showingRows: rowsShown), rows: rowsShown, count: q.descriptors.count)
    paneRule(&g, state, .descriptors, r, title: "descriptors \(q.info.name) · \(hint)" + (expanded && !position.isEmpty ? " · " + position : ""),
             expanded: expanded)
    let wide = r.width >= 60
    let header = wide ? "   id state addr                 len flags           next" : "   id state addr          len flags      next"
    g.text(header, y: r.y + 1, x: r.x, style: CellStyle(.dim), maxX: r.maxX)
    let rows = descriptorRowsVisible(paneHeight: r.height)
    let top = state.tableTop(showingRows: rows)
    for row in 0..<rows {
        let id = top + row
        guard id < q.descriptors.count else { break }
        let d = q.descriptors[id]
        let (glyph, role) = RingGlyph.descriptor(d.state)
        let y = r.y + 2 + row
        let addr = wide ? "0x" + hexDigits(d.addr, width: 16) : "0x" + hexDigits(d.addr, width: 10)
        let flags = descriptorFlagsText(d.flags).padded(to: wide ? 15 : 10)
        let line = String(id).leftPadded(to: 5) + " " + d.state.name.padded(to: 5) + " " + addr + " " + String(d.len).leftPadded(to: 5)
            + " " + flags + " " + String(d.next).leftPadded(to: 4)
        let isCursor = state.cursor == id
        let style = isCursor ? CellStyle(.selected, bold: true) : CellStyle.plain
        g.fill(y: y, x: r.x, height: 1, width: r.width, with: Cell(" ", style))
        g.text(line, y: y, x: r.x, style: style, maxX: r.maxX)
        g.put(Cell(glyph, isCursor ? style : CellStyle(role)), y: y, x: r.x)
    }
}
