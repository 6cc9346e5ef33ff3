// One panel per queue: its title and flags, its ring strip with the pointers, and its
// stats line (indices, rates, sparkline, counters).

import RingsideKit
import Wire

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
        let health = activity.health(status, size: q.info.size, format: q.info.format, isReceive: isReceive, now: state.now)
        let alarms = view.model.alarms(queue: position)
        if status.paused { flags.append((" PAUSED ", CellStyle(.warning, bold: true, reverse: true))) }
        for badge in faultBadges(status.faults) { flags.append((" \(badge) ", CellStyle(.warning, bold: true, reverse: true))) }
        // The detector's alarms (a notification owed and never came, no buffers); STUCK only
        // when no interrupt was owed for the waiting entries (the driver suppressed it). When
        // snapshots have stopped coming, an alarm is the last verdict, not a live one (said so),
        // and STUCK, which is judged against the clock, is not judged at all.
        let stale = snapshotIsStale(state)
        for a in alarms {
            flags.append(stale ? (" \(a.kind.label) (stale) ", CellStyle(.warning))
                               : (" \(a.kind.label) ", CellStyle(.alarm, bold: true, reverse: true)))
        }
        if health.stuck && !stale && !alarms.contains(where: { $0.kind == .interruptLost }) {
            flags.append((" STUCK ", CellStyle(.alarm, bold: true, reverse: true)))
        }
        if health.full { flags.append((" FULL ", CellStyle(.alarm, bold: true, reverse: true))) }
    }
    if q.isStale { flags.append((" table stale ", CellStyle(.warning))) }
    if q.info.format == .packed { flags.append((" packed ring ", CellStyle(.title, bold: true))) }
    if let three = view.threeWay[q.info.name] {
        // Three views side by side: the driver's (telemetry), memory's, the device's (QMP).
        let name = q.info.name
        // Packed: the driver's and memory's are positions with wrap counters (2.8.1); QEMU's
        // are offsets without them.
        let packed = q.info.format == .packed
        func position(_ index: UInt16) -> String { packed ? packedPosition(index) : String(index) }
        var text = q.status.map { "drv A \(position($0.availIdx)) U \(position($0.usedIdx))" } ?? "drv ?"
        text += " │ mem " + (view.memoryViews[name].map { "A \(position($0.lastAvailIdx)) U \(position($0.usedIdx))" } ?? "?")
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
        let ring = RingIndices(size: q.info.size, status: status, format: q.info.format)
        drawRingStrip(&g, ring.strip(columns: ringWidth * ringRows, pointers: ringPointers(state, q, ring)),
                      y: ringY, x: ringX, rows: ringRows)
    } else if q.status == nil {
        g.text("no snapshot yet", y: ringY, x: ringX, style: CellStyle(.dim))
    }
    // Stats line: indices, counts, rates, sparkline, counters.
    let y = r.maxY - 1
    guard let status = q.status else { return }
    let activity = view.activity[status.queue] ?? QueueActivity()
    let ring = RingIndices(size: q.info.size, status: status, format: q.info.format)
    var x = 4
    func seg(_ label: String, _ value: String, _ style: CellStyle = .plain) {
        guard x + label.columns + value.columns + 1 < r.width else { x = r.width; return }
        x = g.text(label, y: y, x: x, style: CellStyle(.dim))
        x = g.text(value, y: y, x: x, style: style) + 1
    }
    if q.info.format == .packed {
        // Positions with their wrap counters (2.8.1): the driver's next available, the device's
        // next used, the driver's next used; then what each side asked of the other (2.8.10).
        seg("A ", packedPosition(status.availIdx))
        seg("U ", packedPosition(status.usedIdx))
        seg("L ", packedPosition(status.lastUsedIdx))
    } else {
        seg("A ", String(status.availIdx))
        seg("U ", String(status.usedIdx))
        seg("L ", String(status.lastUsedIdx))
    }
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
    // What each side of a packed ring asked of the other (2.8.10), last: a narrow screen keeps
    // the counters (the selected queue's ring pane shows both structures too).
    if q.info.format == .packed, let r = q.ring, r.packed {
        seg("wants irq ", packedEventRequest(r.driverEvent))
        seg("wants kick ", packedEventRequest(r.deviceEvent))
    }
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

/// A packed ring position (offset | wrap counter << 15, 2.8.14) as "offset w0|w1".
func packedPosition(_ offWrap: UInt16) -> String {
    "\(offWrap & 0x7FFF)w\(offWrap >> 15)"
}

/// An event suppression structure (2.8.14) as what it asks for: "on", "off", or "@offset w".
func packedEventRequest(_ event: (offWrap: UInt16, flags: UInt16)) -> String {
    switch event.flags & 0x3 {
    case 0: return "on"
    case 1: return "off"
    case 2: return "@" + packedPosition(event.offWrap)
    default: return "?\(event.flags)"
    }
}
