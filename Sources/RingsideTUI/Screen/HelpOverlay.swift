// The `?` overlay: every key, the ring and table symbols, where pcapng files go.

import RingsideKit

/// Every key, as the help overlay lists it.
public let helpLines: [(String, String)] = KeyMap.all.map { ($0.helpKeys, $0.help) }

/// What the ring and table symbols mean: (symbol, its style, meaning).
public let symbolLegend: [(Unicode.Scalar, CellStyle, String)] = [
    (RingGlyph.free, CellStyle(.descFree), "free: the driver may fill it"),
    (RingGlyph.avail, CellStyle(.descAvail), "avail: posted, the device owns it"),
    (RingGlyph.used, CellStyle(.descUsed), "used: returned, the driver has not taken it"),
    (RingGlyph.held, CellStyle(.descHeld), "held: filled, kept from the device (paused TX)"),
    ("L", CellStyle(.marker, bold: true, reverse: true), "driver's last-seen used index"),
    ("U", CellStyle(.marker, bold: true, reverse: true), "used.idx: where the device returns next"),
    ("A", CellStyle(.marker, bold: true, reverse: true), "avail.idx: where the driver posts next"),
    (RingGlyph.devicePointer, CellStyle(.marker, bold: true, reverse: true), "device's last-avail-idx (QMP): its next take"),
]

/// The help overlay's lines: keys, the symbol legend, where pcap files go.
func helpOverlayLines(pcapDirectory: String = "") -> [PaneLine] {
    let keyWidth = helpLines.map { $0.0.columns }.max() ?? 10
    var lines = helpLines.map { key, what in
        PaneLine([PaneSegment(key.padded(to: keyWidth + 2), CellStyle(.key, bold: true)), PaneSegment(what, CellStyle(.overlay))])
    }
    lines.append(.blank)
    lines.append(PaneLine("Ring and table symbols", CellStyle(.overlay, bold: true)))
    for (symbol, style, what) in symbolLegend {
        lines.append(PaneLine([PaneSegment(String(symbol), style), PaneSegment("  " + what, CellStyle(.overlay))]))
    }
    for note in ["A pointer letter stands just before the ring cell holding", "the slot it points at; letters side by side share",
                 "that cell. Every pointer is always drawn. A cell covering",
                 "several slots shows the most important: █ over ▒ over ·."] {
        lines.append(PaneLine(note, CellStyle(.overlay)))
    }
    lines.append(.blank)
    lines.append(PaneLine("w writes " + (pcapDirectory.isEmpty ? "to the pcap directory" : pcapDirectory + "/") + "ringside-<time>.pcapng",
                          CellStyle(.overlay)))
    return lines
}

extension TUIState {
    func helpOverlayLines() -> [PaneLine] { RingsideTUI.helpOverlayLines(pcapDirectory: pcapDirectory) }
}

/// The help overlay's box for `size` and the number of its lines it shows.
func helpBox(_ state: TUIState, size: ScreenSize) -> (rect: Rect, rows: Int) {
    let lines = state.helpOverlayLines()
    let width = min(size.width - 4, (lines.map { $0.text.columns }.max() ?? 40) + 4)
    let height = min(size.height - 2, lines.count + 4)
    return (Rect(y: (size.height - height) / 2, x: (size.width - width) / 2, height: height, width: width), max(1, height - 4))
}

func drawHelp(_ g: inout ScreenGrid, _ state: TUIState, size: ScreenSize) {
    let (box, rows) = helpBox(state, size: size)
    let x0 = box.x, y0 = box.y, width = box.width, height = box.height
    let lines = state.helpOverlayLines()
    let top = clampedTop(state.helpTop, count: lines.count, rows: rows)
    let more = lines.count > rows ? " ↑↓ \(top + 1)–\(min(lines.count, top + rows)) of \(lines.count)" : ""
    drawBox(&g, y: y0, x: x0, height: height, width: width, title: "Ringside keys" + more, footer: "Esc or ? closes")
    drawPaneLines(&g, lines, top: top, in: Rect(y: y0 + 2, x: x0 + 2, height: rows, width: width - 4))
}
