// The header's two lines: product, kernel version, uptime, link, data age, ports, the freeze
// and replay badges; then device facts, the kernel's heap and the symbol legend.

import RingsideKit
import Wire

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
