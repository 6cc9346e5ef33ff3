// The `i` overlay (where things are), the box that says the watched process has ended, and
// the `:hmp` answer pane (in place of the dump pane, or expanded over the screen).

/// Draws a framed box with `title` and returns its inner rectangle.
@discardableResult
func drawBox(_ g: inout ScreenGrid, y y0: Int, x x0: Int, height: Int, width: Int, title: String,
             footer: String = "", style box: CellStyle = CellStyle(.overlay), titleStyle: CellStyle = CellStyle(.overlay, bold: true)) -> Rect {
    g.fill(y: y0, x: x0, height: height, width: width, with: Cell(" ", box))
    for x in x0..<(x0 + width) {
        g.put(Cell("─", box), y: y0, x: x)
        g.put(Cell("─", box), y: y0 + height - 1, x: x)
    }
    for y in y0..<(y0 + height) {
        g.put(Cell("│", box), y: y, x: x0)
        g.put(Cell("│", box), y: y, x: x0 + width - 1)
    }
    g.put(Cell("┌", box), y: y0, x: x0); g.put(Cell("┐", box), y: y0, x: x0 + width - 1)
    g.put(Cell("└", box), y: y0 + height - 1, x: x0); g.put(Cell("┘", box), y: y0 + height - 1, x: x0 + width - 1)
    g.text(" " + title + " ", y: y0, x: x0 + 2, style: titleStyle, maxX: x0 + width - 1)
    if !footer.isEmpty {
        g.text(" " + footer + " ", y: y0 + height - 1, x: max(x0 + 1, x0 + width - footer.columns - 4), style: titleStyle, maxX: x0 + width - 1)
    }
    return Rect(y: y0 + 1, x: x0 + 2, height: height - 2, width: width - 4)
}

// MARK: - `i`: where things are

func drawInfo(_ g: inout ScreenGrid, _ state: TUIState, size: ScreenSize) {
    let info = state.runInfo ?? RunInfo(telemetrySocket: "unknown", telemetryIsHub: false)
    let lines = info.lines
    let labelWidth = lines.map { $0.0.columns }.max() ?? 10
    let wanted = lines.map { $0.0.isEmpty || $0.0 == "$" ? $0.1.columns + 2 : labelWidth + 2 + $0.1.columns }.max() ?? 40
    let width = min(size.width - 2, max(40, wanted + 4))
    // Values longer than the box wrap onto lines of their own, indented under the value
    // (nothing is cut off at 80 columns); paste lines wrap at the box's edge.
    let valueWidth = max(8, width - 4 - labelWidth - 2)
    var rows: [(label: String, value: String, paste: Bool)] = []
    for (label, value) in lines {
        if label == "$" {
            for (k, part) in wrapped(value, width: max(8, width - 4)).enumerated() { rows.append((k == 0 ? "$" : "", part, true)) }
        } else if label.isEmpty {
            rows.append(("", "", false))
        } else {
            for (k, part) in wrapped(value, width: valueWidth).enumerated() { rows.append((k == 0 ? label : "", part, false)) }
        }
    }
    let height = min(size.height - 2, rows.count + 4)
    let x0 = (size.width - width) / 2, y0 = (size.height - height) / 2
    let inner = drawBox(&g, y: y0, x: x0, height: height, width: width, title: "Where things are", footer: "any key closes")
    for (i, row) in rows.enumerated() where i + 1 < inner.height {
        let y = inner.y + 1 + i
        if row.paste {
            // Paste-ready: the whole line, nothing else on it.
            g.text(row.value, y: y, x: inner.x, style: CellStyle(.key), maxX: inner.maxX)
        } else if !row.value.isEmpty {
            g.text(row.label, y: y, x: inner.x, style: CellStyle(.overlay, bold: true), maxX: inner.maxX)
            g.text(row.value, y: y, x: inner.x + labelWidth + 2, style: CellStyle(.overlay), maxX: inner.maxX)
        }
    }
}

// MARK: - The watched process ended

/// `text` cut into lines of at most `width` columns, at spaces where possible.
func wrapped(_ text: String, width: Int) -> [String] {
    guard width > 0 else { return [text] }
    var out: [String] = []
    var rest = Substring(text)
    while rest.count > width {
        let head = rest.prefix(width)
        if let space = head.lastIndex(of: " "), head.distance(from: head.startIndex, to: space) > width / 2 {
            out.append(String(rest[..<space]))
            rest = rest[rest.index(after: space)...]
        } else {
            out.append(String(head))
            rest = rest.dropFirst(width)
        }
    }
    out.append(String(rest))
    return out
}

func drawProcessEnded(_ g: inout ScreenGrid, _ lines: [String], size: ScreenSize) {
    let innerWidth = size.width - 6
    let shown = Array(lines.flatMap { wrapped($0, width: innerWidth) }.suffix(max(1, size.height / 2)))
    let width = min(size.width - 2, max(50, (shown.map { $0.columns }.max() ?? 40) + 4))
    let height = shown.count + 4
    let x0 = (size.width - width) / 2, y0 = max(2, (size.height - height) / 3)
    let alarm = CellStyle(.alarm, bold: true)
    let inner = drawBox(&g, y: y0, x: x0, height: height, width: width, title: "QEMU is not running",
                        footer: "q quits", style: CellStyle(.alarm), titleStyle: alarm)
    for (i, line) in shown.enumerated() {
        g.text(line, y: inner.y + 1 + i, x: inner.x, style: i == 0 ? alarm : CellStyle(.plain), maxX: inner.maxX)
    }
}

// MARK: - `:hmp` answers

func drawHMPPane(_ g: inout ScreenGrid, _ pane: HMPPane, rect r: Rect) {
    guard r.height >= 2 else { return }
    g.rule(y: r.y, x: r.x, width: r.width, title: "hmp \(pane.command) · \(pane.lines.count) lines · e expand · Esc close")
    var y = r.y + 1
    if let error = pane.error {
        g.text(error, y: y, x: r.x, style: CellStyle(.alarm), maxX: r.maxX)
        return
    }
    if pane.lines.isEmpty {
        g.text("(no output)", y: y, x: r.x, style: CellStyle(.dim), maxX: r.maxX)
        return
    }
    for line in pane.lines.prefix(r.height - 1) {
        g.text(line, y: y, x: r.x, maxX: r.maxX)
        y += 1
    }
    if pane.lines.count > r.height - 1 {
        g.text(" … \(pane.lines.count - (r.height - 1)) more: e ", y: r.maxY - 1, x: max(r.x, r.maxX - 20), style: CellStyle(.warning, bold: true), maxX: r.maxX)
    }
}

func drawHMPExpanded(_ g: inout ScreenGrid, _ pane: HMPPane, size: ScreenSize) {
    let inner = drawBox(&g, y: 1, x: 0, height: size.height - 2, width: size.width,
                        title: "hmp \(pane.command) · lines \(min(pane.top + 1, pane.lines.count))-\(min(pane.lines.count, pane.top + size.height - 4)) of \(pane.lines.count)",
                        footer: "↑↓ PgUp PgDn scroll · e or Esc: back")
    if let error = pane.error {
        g.text(error, y: inner.y, x: inner.x, style: CellStyle(.alarm), maxX: inner.maxX)
        return
    }
    for (i, line) in pane.lines.dropFirst(pane.top).prefix(inner.height).enumerated() {
        g.text(line, y: inner.y + i, x: inner.x, style: CellStyle(.overlay), maxX: inner.maxX)
    }
}
