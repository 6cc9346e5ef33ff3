// The screen model: `render(state, size)` draws everything into a ScreenGrid. Pure: no
// terminal, no clock (the state carries `now`), so every screen is unit-testable.

import RingsideKit
import Wire

/// Characters for ring cells and descriptor states. Distinct shapes, so the ring reads the
/// same without colour (NO_COLOR, monochrome terminals).
public enum RingGlyph {
    public static let free: Unicode.Scalar = "·"
    public static let avail: Unicode.Scalar = "▒"
    public static let used: Unicode.Scalar = "█"
    public static let held: Unicode.Scalar = "▓"
    /// The device's own position (QMP last-avail-idx) on a ring.
    public static let devicePointer: Unicode.Scalar = "D"

    static func slot(_ s: RingSlotState) -> (Unicode.Scalar, CellRole) {
        switch s {
        case .free: return (free, .descFree)
        case .avail: return (avail, .descAvail)
        case .used: return (used, .descUsed)
        }
    }

    static func descriptor(_ s: WireDescriptorState) -> (Unicode.Scalar, CellRole) {
        switch s {
        case .free: return (free, .descFree)
        case .avail: return (avail, .descAvail)
        case .used: return (used, .descUsed)
        case .held: return (held, .descHeld)
        }
    }
}

public let tooSmallMessage = "terminal too small (need 80x24)"

/// Draws the whole screen.
public func render(_ state: TUIState, size: ScreenSize) -> ScreenGrid {
    var grid = ScreenGrid(size: size)
    guard size.width >= ScreenSize.minimum.width, size.height >= ScreenSize.minimum.height else {
        let lines = [tooSmallMessage, "(now \(size.width)x\(size.height))"]
        let top = max(0, size.height / 2 - 1)
        for (i, line) in lines.enumerated() {
            grid.text(line, y: top + i, x: max(0, (size.width - line.columns) / 2), style: CellStyle(.alarm, bold: true))
        }
        return grid
    }
    let view = state.view
    let queues = view.model.queues
    let layout = Layout.compute(size: size, queueCount: queues.count, maxQueueSize: Int(queues.map { $0.info.size }.max() ?? 256))
    drawHeader(&grid, state, layout.header)
    if let pane = state.panes.expanded {
        // One pane over the whole body; header and status line stay.
        drawPane(&grid, state, pane, Layout.expandedPane(size: size), expanded: true)
        drawStatus(&grid, state, layout.status)
        drawOverlays(&grid, state, size: size)
        return grid
    }
    if queues.isEmpty {
        let r = layout.queues[0]
        let text: String
        switch state.link {
        case _ where state.processEnded != nil: text = state.processEnded?.first ?? "QEMU is not running"
        case .connected: text = "connected; waiting for the kernel's hello…"
        case .connecting: text = "connecting to the telemetry socket…"
        case .reconnecting(let reason): text = "disconnected (\(reason)); retrying…"
        }
        grid.text(" " + text, y: r.y, x: 0, style: CellStyle(.warning))
    } else {
        for (i, q) in queues.enumerated() where i < layout.queues.count {
            drawQueue(&grid, state, q, position: i, rect: layout.queues[i], ringRows: layout.ringRows)
        }
    }
    drawPane(&grid, state, .descriptors, layout.descriptors, expanded: false)
    drawRingPane(&grid, state, layout.rings)
    if let pane = state.hmp { drawHMPPane(&grid, pane, rect: layout.dump) } else { drawPane(&grid, state, .dump, layout.dump, expanded: false) }
    drawPane(&grid, state, .log, layout.log, expanded: false)
    drawStatus(&grid, state, layout.status)
    drawOverlays(&grid, state, size: size)
    return grid
}

/// What is drawn over the panes: the expanded HMP answer, the QEMU-ended box, help, info.
func drawOverlays(_ grid: inout ScreenGrid, _ state: TUIState, size: ScreenSize) {
    if let pane = state.hmp, pane.expanded { drawHMPExpanded(&grid, pane, size: size) }
    if let ended = state.processEnded { drawProcessEnded(&grid, ended, size: size) }
    if state.mode == .help { drawHelp(&grid, state, size: size) }
    if state.mode == .info { drawInfo(&grid, state, size: size) }
    if state.mode == .features { drawFeaturesPanel(&grid, state, size: size) }
}

func drawPane(_ g: inout ScreenGrid, _ state: TUIState, _ pane: Pane, _ r: Rect, expanded: Bool) {
    switch pane {
    case .descriptors: drawDescriptorTable(&g, state, r, expanded: expanded)
    case .dump: drawDump(&g, state, r, expanded: expanded)
    case .log: drawLog(&g, state, r, expanded: expanded)
    }
}

/// A pane's title rule; the focused pane's title stands out (reverse), so the arrow keys'
/// target is visible without colour.
func paneRule(_ g: inout ScreenGrid, _ state: TUIState, _ pane: Pane, _ r: Rect, title: String, expanded: Bool) {
    let focused = !expanded && state.panes.focus == pane
    let text = title
    g.rule(y: r.y, x: r.x, width: r.width, title: text,
           titleStyle: focused ? CellStyle(.selected, bold: true, reverse: true) : CellStyle(.title, bold: true))
}

/// Each pane's rows and columns of content for `size` (what the keys page by).
public func paneViewports(_ state: TUIState, size: ScreenSize) -> [Pane: ScreenSize] {
    let queues = state.view.model.queues
    let layout = Layout.compute(size: size, queueCount: queues.count, maxQueueSize: Int(queues.map { $0.info.size }.max() ?? 256))
    var rects: [Pane: Rect] = [.descriptors: layout.descriptors, .dump: layout.dump, .log: layout.log]
    if let pane = state.panes.expanded { rects[pane] = Layout.expandedPane(size: size) }
    var out: [Pane: ScreenSize] = [:]
    for (pane, r) in rects {
        let rows = pane == .descriptors ? descriptorRowsVisible(paneHeight: r.height) : max(1, r.height - 1)
        out[pane] = ScreenSize(width: r.width, height: rows)
    }
    return out
}

// MARK: - Header

func formatUptime(_ ns: UInt64) -> String {
    let s = ns / 1_000_000_000
    let h = s / 3600, m = (s / 60) % 60, sec = s % 60
    return "\(h):\(m < 10 ? "0" : "")\(m):\(sec < 10 ? "0" : "")\(sec)"
}

/// Data older than this is shown as stale.
public let staleAfterSeconds = 2.0

/// Whether the newest snapshot is too old to pass for live (never while frozen: a frozen view
/// is old on purpose).
func snapshotIsStale(_ state: TUIState) -> Bool {
    guard let at = state.view.lastSnapshotAt, state.frozen == nil else { return false }
    return max(0, state.now - at) > staleAfterSeconds
}

/// The kernel heap in use of its size, in MiB ("1.7/30.5M") or, from 1000 MiB, GiB
/// ("0.4/2.0G"): at most 10 columns. Nil when the kernel reported no heap.
func formatHeap(_ memory: WireMemory) -> String? {
    guard memory.heapTotal > 0 else { return nil }
    let inGiB = memory.heapTotal >= 1000 << 20
    let unit = Double(inGiB ? 1 << 30 : 1 << 20)
    func amount(_ bytes: UInt64) -> String {
        let v = Double(bytes) / unit
        return v < 99.95 ? fmt1(v) : String(Int(v.rounded()))
    }
    return amount(memory.heapUsed) + "/" + amount(memory.heapTotal) + (inGiB ? "G" : "M")
}

func drawHeader(_ g: inout ScreenGrid, _ state: TUIState, _ r: Rect) {
    // The product name always; the kernel's version only where the line has room for it.
    var trial = g
    if drawHeaderFirstLine(&trial, state, r, kernelVersion: true) < r.width {
        g = trial
    } else {
        drawHeaderFirstLine(&g, state, r, kernelVersion: false)
    }
    drawHeaderSecondLine(&g, state, r)
}

/// The header's first line; returns the column after its last character.
@discardableResult
func drawHeaderFirstLine(_ g: inout ScreenGrid, _ state: TUIState, _ r: Rect, kernelVersion: Bool) -> Int {
    let view = state.view
    let bar = CellStyle(.header)
    g.fill(y: r.y, x: 0, height: 1, width: r.width, with: Cell(" ", bar))
    var x = g.text(" " + state.title + " ", y: r.y, x: 0, style: CellStyle(.header, bold: true))
    func sep() { x = g.text(x == 0 ? " " : "│ ", y: r.y, x: x, style: bar) }
    if kernelVersion, let hello = view.model.hello {
        sep(); x = g.text(hello.kernelVersion + " ", y: r.y, x: x, style: bar)
    }
    sep(); x = g.text("up " + formatUptime(view.model.uptimeNs) + " ", y: r.y, x: x, style: bar)
    sep()
    switch state.link {
    case _ where state.processEnded != nil: x = g.text("✖ QEMU exited", y: r.y, x: x, style: CellStyle(.alarm, bold: true))
    case .connected: x = g.text("● connected", y: r.y, x: x, style: CellStyle(.good, bold: true))
    case .connecting: x = g.text("○ connecting", y: r.y, x: x, style: CellStyle(.warning, bold: true))
    case .reconnecting: x = g.text("✖ disconnected", y: r.y, x: x, style: CellStyle(.alarm, bold: true))
    }
    x = g.text(" ", y: r.y, x: x, style: bar)
    sep()
    let stale = snapshotIsStale(state)
    if let at = view.lastSnapshotAt {
        let age = max(0, state.now - at)
        x = g.text("age \(fmt1(age))s", y: r.y, x: x, style: stale ? CellStyle(.alarm, bold: true) : bar)
        if stale { x = g.text(" STALE", y: r.y, x: x, style: CellStyle(.alarm, bold: true)) }
        x = g.text(" ", y: r.y, x: x, style: bar)
    } else {
        x = g.text("no data ", y: r.y, x: x, style: CellStyle(.warning, bold: true))
    }
    // The forwarded ports (ringside run), where the guest can be reached.
    if let info = state.runInfo, info.udpPort != nil || info.httpPort != nil {
        sep()
        let ports = [info.udpPort.map { "udp :\($0)" }, info.httpPort.map { "http :\($0)" }].compactMap { $0 }
        x = g.text(ports.joined(separator: " ") + " ", y: r.y, x: x, style: bar, maxX: r.width)
    }
    if state.frozen != nil {
        let badge = " FROZEN" + (state.frozenNote.map { ": " + $0 } ?? "") + " "
        x = g.text(badge, y: r.y, x: x + 1, style: CellStyle(.warning, bold: true, reverse: true), maxX: r.width)
    }
    if let replay = state.replay {
        x = g.text(" " + replay.headerText.escapingTerminalControls() + " ", y: r.y, x: x + 1,
                   style: CellStyle(.warning, bold: true, reverse: true), maxX: r.width)
    }
    return x
}

/// The header's second line: device facts, the kernel's heap, and (when it fits) the legend.
func drawHeaderSecondLine(_ g: inout ScreenGrid, _ state: TUIState, _ r: Rect) {
    let view = state.view
    let stale = snapshotIsStale(state)
    var x = 0
    let y = r.y + 1
    var facts: [[(text: String, style: CellStyle)]] = []
    if let guest = view.guest {
        // A guest Ringside did not build: what QMP told, "n/a" for what nothing tells.
        facts.append([("MAC " + (guest.mac ?? "n/a"), guest.mac == nil ? CellStyle(.dim) : .plain)])
    } else {
        facts.append([("MAC " + (view.model.hello.map { macAddressText($0.mac) } ?? "?"), .plain)])
    }
    facts.append([("link " + (view.linkUp.map { $0 ? "up" : "down" } ?? "?"), .plain)])
    var accelFact: Int?
    if !state.accel.isEmpty {
        accelFact = facts.count
        facts.append([("accel " + state.accel, .plain)])
    }
    if let asked = state.pendingRateHz, asked != view.model.rateHz {
        facts.append([("snap \(view.model.rateHz)→\(asked) Hz", CellStyle(.warning))])
    } else {
        facts.append([("snap \(view.model.rateHz) Hz", .plain)])
    }
    facts.append([("tlm drops ", .plain),
                  (String(view.model.droppedFrames), view.model.droppedFrames > 0 ? CellStyle(.warning, bold: true) : .plain)])
    // Old data in red, as the age on the first line.
    if view.guest != nil {
        facts.append([("heap n/a (guest)", CellStyle(.dim))])
    } else {
        facts.append([("heap ", .plain), (formatHeap(view.model.memory) ?? "?", stale ? CellStyle(.alarm, bold: true) : .plain)])
    }
    // Two spaces between facts where they fit, one where not (80 columns); then, if they still
    // do not fit (huge rates and drop counts), the accelerator goes.
    func width(gap: Int) -> Int {
        facts.reduce(1 + gap * (facts.count - 1)) { sum, fact in fact.reduce(sum) { $0 + $1.text.columns } }
    }
    var gap = width(gap: 2) <= r.width ? 2 : 1
    if width(gap: gap) > r.width, let i = accelFact {
        facts.remove(at: i)
        gap = width(gap: 2) <= r.width ? 2 : 1
    }
    x = g.text(" ", y: y, x: 0)
    for (i, fact) in facts.enumerated() {
        if i > 0 { x = g.text(String(repeating: " ", count: gap), y: y, x: x) }
        for part in fact { x = g.text(part.text, y: y, x: x, style: part.style) }
    }
    if case .reconnecting(let reason) = state.link {
        x = g.text("  " + reason, y: y, x: x, style: CellStyle(.alarm), maxX: r.width)
    }
    // Legend, right-aligned when it fits.
    let legend: [(Unicode.Scalar, CellRole, String)] = [
        (RingGlyph.free, .descFree, "free"), (RingGlyph.avail, .descAvail, "avail"),
        (RingGlyph.used, .descUsed, "used"), (RingGlyph.held, .descHeld, "held"),
    ]
    let pointerLegend = [("L", " last-seen "), ("U", " used "), ("A", " avail "), ("D", " device")]
    let legendWidth = legend.reduce(0) { $0 + 2 + $1.2.columns + 1 } + pointerLegend.reduce(0) { $0 + $1.0.columns + $1.1.columns }
    var lx = r.width - legendWidth - 1
    if lx > x + 1 {
        for (glyph, role, name) in legend {
            g.put(Cell(glyph, CellStyle(role)), y: y, x: lx)
            lx = g.text(" " + name + " ", y: y, x: lx + 1, style: CellStyle(.dim))
        }
        for part in pointerLegend {
            lx = g.text(part.0, y: y, x: lx, style: CellStyle(.marker, bold: true, reverse: true))
            lx = g.text(part.1, y: y, x: lx, style: CellStyle(.dim))
        }
    }
}

// MARK: - Queue panels

func drawQueue(_ g: inout ScreenGrid, _ state: TUIState, _ q: TelemetryQueueModel, position: Int, rect r: Rect, ringRows: Int) {
    let selected = position == state.selectedQueue
    let view = state.view
    let isReceive = q.info.name.hasSuffix(".rx")
    var title = (selected ? "▶" : " ") + (position < 9 ? "\(position + 1)" : " ") + " " + q.info.name
    title = title.padded(to: 12) + String(q.info.size).leftPadded(to: 4) + " "
    let titleStyle = selected ? CellStyle(.selected, bold: true) : CellStyle(.title, bold: true)
    g.text(title, y: r.y, x: 0, style: titleStyle)
    let stripX = title.columns
    // Flags at the right of the title line.
    var flags: [(String, CellStyle)] = []
    if let status = q.status {
        let activity = view.activity[status.queue] ?? QueueActivity()
        let health = activity.health(status, size: q.info.size, isReceive: isReceive, now: state.now)
        let alarms = view.model.alarms(queue: position)
        if status.paused { flags.append((" PAUSED ", CellStyle(.warning, bold: true, reverse: true))) }
        for badge in faultBadges(status.faults) { flags.append((" \(badge) ", CellStyle(.warning, bold: true, reverse: true))) }
        // The detector's alarms (a notification owed and never came, no buffers); STUCK only
        // when no interrupt was owed for the waiting entries (the driver suppressed it).
        for a in alarms { flags.append((" \(a.kind.label) ", CellStyle(.alarm, bold: true, reverse: true))) }
        if health.stuck && !alarms.contains(where: { $0.kind == .interruptLost }) {
            flags.append((" STUCK ", CellStyle(.alarm, bold: true, reverse: true)))
        }
        if health.full { flags.append((" FULL ", CellStyle(.alarm, bold: true, reverse: true))) }
    }
    if q.isStale { flags.append((" table stale ", CellStyle(.warning))) }
    if let three = view.threeWay[q.info.name] {
        // Three views side by side: the driver's (telemetry), memory's, the device's (QMP).
        let name = q.info.name
        var text = q.status.map { "drv A \($0.availIdx) U \($0.usedIdx)" } ?? "drv ?"
        text += " │ mem " + (view.memoryViews[name].map { "A \($0.lastAvailIdx) U \($0.usedIdx)" } ?? "?")
        text += " │ dev " + (view.memoryDeviceViews[name].map { "A \($0.lastAvailIdx) U \($0.usedIdx) inuse \($0.inuse)" } ?? "?")
        let flagged = three.pairs.filter { if case .disagree = $0.verdict { return true } else { return false } }
        flags.append((text, CellStyle(flagged.isEmpty ? .dim : .alarm, bold: !flagged.isEmpty)))
        if !flagged.isEmpty {
            flags.append(("≠ " + flagged.map(\.name).joined(separator: " "), CellStyle(.alarm, bold: true)))
        } else if three.allAgree {
            flags.append(("= 3-way", CellStyle(.good, bold: true)))
        } else {
            // Which pairs are not (yet) known to agree, and why: "? drv/mem" not compared,
            // "~ mem/dev" in flight.
            let open = three.pairs.compactMap { p -> String? in
                switch p.verdict {
                case .unknown: return "?" + p.name
                case .inFlight: return "~" + p.name
                default: return nil
                }
            }
            flags.append((open.joined(separator: " "), CellStyle(.warning)))
        }
    } else if let dev = state.deviceView(forQueueNamed: q.info.name) {
        let d = dev.view
        var disagrees = false
        if case .disagree = dev.verdict { disagrees = true }
        flags.append(("dev: A \(d.lastAvailIdx) U \(d.usedIdx) inuse \(d.inuse)", CellStyle(disagrees ? .alarm : .dim, bold: disagrees)))
        switch dev.verdict {
        case .disagree: flags.append(("≠ device", CellStyle(.alarm, bold: true)))
        // Samples that could not be compared: say so rather than imply agreement.
        case .unknown: flags.append(("? not compared", CellStyle(.warning)))
        case .agree, .inFlight: break
        }
    } else if case .unavailable? = view.device, view.deviceQueueNames.values.contains(q.info.name) {
        flags.append(("device view unavailable", CellStyle(.warning)))
    }
    let flagsWidth = flags.reduce(0) { $0 + $1.0.columns + 1 }
    var fx = r.width - flagsWidth
    for (text, style) in flags {
        fx = g.text(text, y: r.y, x: fx, style: style) + 1
    }
    // The ring: on the title line (compact) or on its own rows.
    let ringY = ringRows == 1 && r.height == 2 ? r.y : r.y + 1
    let ringX = ringRows == 1 && r.height == 2 ? stripX : 4
    let ringWidth = (ringRows == 1 && r.height == 2 ? r.width - flagsWidth - 1 - stripX : r.width - 5)
    if let status = q.status, ringWidth > 4 {
        let ring = RingIndices(size: q.info.size, status: status)
        drawRingStrip(&g, ring.strip(columns: ringWidth * ringRows, pointers: ringPointers(state, q, ring)),
                      y: ringY, x: ringX, rows: ringRows)
    } else if q.status == nil {
        g.text("no snapshot yet", y: ringY, x: ringX, style: CellStyle(.dim))
    }
    // Stats line: indices, counts, rates, sparkline, counters.
    let y = r.maxY - 1
    guard let status = q.status else { return }
    let activity = view.activity[status.queue] ?? QueueActivity()
    let ring = RingIndices(size: q.info.size, status: status)
    var x = 4
    func seg(_ label: String, _ value: String, _ style: CellStyle = .plain) {
        guard x + label.columns + value.columns + 1 < r.width else { x = r.width; return }
        x = g.text(label, y: y, x: x, style: CellStyle(.dim))
        x = g.text(value, y: y, x: x, style: style) + 1
    }
    seg("A ", String(status.availIdx))
    seg("U ", String(status.usedIdx))
    seg("L ", String(status.lastUsedIdx))
    seg("free ", String(status.freeCount), status.freeCount == 0 && !isReceive ? CellStyle(.alarm, bold: true) : .plain)
    seg("pend ", String(ring.pending), ring.pending > 0 ? CellStyle(.warning, bold: true) : .plain)
    x = g.text("│ ", y: y, x: x, style: CellStyle(.dim))
    seg("", compactNumber(activity.packetsPerSecond) + " pkt/s", CellStyle(.plain, bold: true))
    seg("", byteRate(activity.bytesPerSecond))
    let sparkWidth = min(16, max(0, r.width - x - 34))
    if sparkWidth >= 4 {
        x = g.text(sparkline(activity.packetHistory, width: sparkWidth), y: y, x: x, style: CellStyle(.good)) + 1
    }
    // The selected queue's counters exact (a step visibly moves them), the others compact.
    func count(_ n: UInt64) -> String { selected ? String(n) : compactNumber(Double(n)) }
    seg("pkts ", count(status.counters.packets))
    seg("drop ", count(status.counters.drops), status.counters.drops > 0 ? CellStyle(.alarm, bold: true) : .plain)
    seg("kick ", count(status.counters.kicks))
    seg("irq ", count(status.counters.interrupts))
    injectionSegments(status.counters, count).forEach { seg($0.0, $0.1) }
}

/// The pointers drawn on a queue's ring: the driver's L, U, A, and, when QMP answers for this
/// queue, the device's D (last-avail-idx: the next avail entry the device will take).
func ringPointers(_ state: TUIState, _ q: TelemetryQueueModel, _ ring: RingIndices) -> [RingPointer] {
    var pointers = ring.driverPointers
    if let dev = state.deviceView(forQueueNamed: q.info.name) {
        pointers.append(RingPointer(RingGlyph.devicePointer, dev.view.lastAvailIdx))
    }
    return pointers
}

/// Flows a ring strip over `rows` rows (balanced), pointers as bold reversed letters.
func drawRingStrip(_ g: inout ScreenGrid, _ strip: [RingStripColumn], y: Int, x: Int, rows: Int) {
    let perRow = max(1, (strip.count + rows - 1) / max(1, rows))
    for (i, column) in strip.enumerated() {
        let cy = y + i / perRow, cx = x + i % perRow
        switch column {
        case .cell(let state):
            let (glyph, role) = RingGlyph.slot(state)
            g.put(Cell(glyph, CellStyle(role)), y: cy, x: cx)
        case .pointer(let letter):
            g.put(Cell(letter, CellStyle(.marker, bold: true, reverse: true)), y: cy, x: cx)
        }
    }
}

// MARK: - Descriptor table

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

// MARK: - Dump pane

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

// MARK: - Event log

func drawLog(_ g: inout ScreenGrid, _ state: TUIState, _ r: Rect, expanded: Bool = false) {
    guard r.height >= 1 else { return }
    let filterNote = state.logFilter.isEmpty ? "" : " (filter: \(state.logFilter))"
    let body = Rect(y: r.y + 1, x: r.x, height: r.height - 1, width: r.width)
    let lines = logPaneLines(state, width: r.width, wrapAll: expanded)
    let first = drawPaneLines(&g, lines, top: state.panes.top[.log], in: body)
    var title = "events" + filterNote
    let position = scrollPosition(top: first, rows: body.height, count: lines.count)
    if !position.isEmpty { title += " · " + position + (state.panes.top[.log] == nil ? " (newest)" : "") }
    paneRule(&g, state, .log, r, title: title, expanded: expanded)
}

// MARK: - Status line and help

/// The key hints on the status line, most important first (cut at the right edge).
let statusHints: [(String, String)] = [
    ("?", "help"), ("Tab", "queue"), ("Space", "pause"), ("s", "step"), ("S", "step N"), ("d", "dump"),
    ("←→", "pane"), ("e", "expand"),
    ("w", "pcap"), ("f", "freeze"), ("+/-", "rate"), ("/", "filter"), (":", "cmd"), ("i", "info"), ("q", "quit"),
]

/// The key hints in a replay (`ringside replay`).
let replayStatusHints: [(String, String)] = [
    ("?", "help"), ("p", "play/pause"), ("< >", "speed"), ("n", "next event"), ("g", "go to"), ("0", "start"),
    ("Tab", "queue"), ("←→", "pane"), ("e", "expand"), ("f", "freeze"), ("/", "filter"), ("q", "quit"),
]

/// The key hints while a pane is expanded.
func expandedStatusHints(_ pane: Pane) -> [(String, String)] {
    [("?", "help"), ("↑↓ PgUp PgDn Home End", pane == .descriptors ? "cursor" : "scroll"), ("←→", "pane"),
     ("Esc/e", "back"), ("d", "dump"), ("[ ]", "dumps"), ("q", "quit")]
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

/// Every key, as the help overlay lists it.
public let helpLines: [(String, String)] = [
    ("Tab / Shift-Tab", "select the next / previous queue"),
    ("1 … 9", "select queue N"),
    ("← →", "focus the descriptors, dump or events pane"),
    ("↑ ↓ PgUp PgDn Home End", "move the table cursor / scroll the focused pane"),
    ("e", "expand the focused pane to the full screen"),
    ("Esc", "close overlay or expanded pane; drop the cursor"),
    ("Space", "pause / resume the selected queue"),
    ("s", "step one packet (queue paused)"),
    ("S", "step N packets (asks for N)"),
    ("d", "dump cursor's descriptor, else next pending"),
    ("[ ]", "previous / next dump"),
    ("w", "write dumped frames as pcap (see below)"),
    ("F", "features offered/accepted, device status"),
    ("f", "freeze the display (the guest runs on)"),
    ("z", "consistent snapshot of a guest: QMP stop, read all, cont; shown frozen"),
    ("+ / -", "raise / lower the snapshot rate"),
    ("/", "filter the event log (empty: all)"),
    (":", "command line, as ringside ctl (see guide)"),
    ("i", "where things are: sockets, ports, commands"),
    (":hmp CMD", "run a QEMU monitor command (e expands)"),
    (":inject Q F", "fault: drop|corrupt|nokick N, starve, unstarve, noirq, clear"),
    (":kick Q :poll Q", "notify the device now / service the queue as if interrupted"),
    ("p / Space", "replay: play / pause"),
    ("< >", "replay: slower / faster (¼× to 16×)"),
    ("n", "replay: go to the next event, reply or command"),
    ("g / 0", "replay: go to a time (seconds) / the start"),
    ("?", "this help"),
    ("q", "quit"),
]

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
    lines.append(PaneLine("w writes " + (pcapDirectory.isEmpty ? "to the pcap directory" : pcapDirectory + "/") + "ringside-<time>.pcap",
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
