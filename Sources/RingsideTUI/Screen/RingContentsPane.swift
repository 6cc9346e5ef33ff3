// The ring-contents pane, beside the descriptor table: the selected queue's avail ring
// (slot → descriptor id) and used ring (slot → id, len) around their indices, the rings' flags
// words and, when VIRTIO_F_RING_EVENT_IDX is in use, used_event / avail_event. Everything comes
// from the latest snapshot's ring section (a window of the rings, not all of them: the title
// says how much), so stale data is labelled stale and a missing section says so. K (avail) and I
// (used) mark the entries whose publication fires the next kick and the next interrupt.

import RingsideKit
import Wire

/// Columns the pane takes beside the descriptor table (its rule included).
public let ringPaneWidth = 34

extension Layout {
    /// Carves the ring-contents pane out of the descriptor area's right side: beside the
    /// table at every width (the table keeps at least its narrow form, 45 columns).
    mutating func carveRingPane() {
        let d = descriptors
        rings = .empty
        guard d.height >= 2 else { return }
        let shift = ringPaneWidth + 1
        if dump.x > d.x || log.x > d.x {
            // Wide screens (table beside dump and log): the table keeps its width; the pane sits
            // right of it and the right-hand column gives up the room, if it keeps enough.
            guard dump.width - shift >= 40 else { return }
            rings = Rect(y: d.y, x: d.maxX + 1, height: d.height, width: ringPaneWidth)
            dump.x += shift; dump.width -= shift
            log.x += shift; log.width -= shift
        } else {
            // Stacked panes: the pane takes the table's right side; the table keeps at least its
            // narrow form (45 columns).
            guard d.width >= 45 + shift else { return }
            descriptors.width = d.width - shift
            rings = Rect(y: d.y, x: descriptors.maxX + 1, height: d.height, width: ringPaneWidth)
        }
    }
}

/// One row of a ring column.
struct RingRow: Equatable {
    /// Free-running ring index.
    var index: UInt16
    var text: String
    var style: CellStyle
}

/// The avail column: `rows` entries of the window, ending a little after avail.idx (the slot
/// the driver writes next, marked A; from there on the entries are last lap's: dim). K marks
/// the entry whose publication fires the next kick.
func availRows(_ ring: WireRingView, status: WireQueueStatus, size: UInt16, rows: Int) -> [RingRow] {
    let kick = NextNotification.kick(status: status, ring: ring).index
    let n = ring.availEntries.count
    guard n > 0, rows > 0 else { return [] }
    let aOffset = Int(status.availIdx &- ring.availStart)
    // A near the bottom: the newest entries above it, one of last lap's below when there is room.
    let first = max(0, min(n - rows, aOffset - max(1, rows - 2)))
    return (first..<min(n, first + rows)).map { k in
        let index = ring.availStart &+ UInt16(truncatingIfNeeded: k)
        let slot = size == 0 ? 0 : Int(index) % Int(size)
        // A, and K where the next kick fires (NextNotification.kick): neither hides the other.
        let mark = (index == status.availIdx ? "A" : "") + (index == kick ? "K" : "")
        let written = k < aOffset
        let text = (mark.isEmpty ? " " : mark) + String(slot).leftPadded(to: 6 - max(1, mark.count)) + "→" + String(ring.availEntries[k]).padded(to: 5)
        return RingRow(index: index, text: text, style: written ? CellStyle(.descAvail) : CellStyle(.dim))
    }
}

/// The used column: entries from just before the driver's last-seen index (L) on: consumed
/// (plain), pending up to used.idx (U; bold), then last lap's (dim). I marks the entry whose
/// writing fires the next interrupt.
func usedRows(_ ring: WireRingView, status: WireQueueStatus, size: UInt16, rows: Int) -> [RingRow] {
    let irq = NextNotification.interrupt(status: status, ring: ring).index
    let n = ring.usedEntries.count
    guard n > 0, rows > 0 else { return [] }
    let lOffset = Int(status.lastUsedIdx &- ring.usedStart)
    let uOffset = Int(status.usedIdx &- ring.usedStart)
    let first = max(0, min(n - rows, lOffset - 1))
    return (first..<min(n, first + rows)).map { k in
        let index = ring.usedStart &+ UInt16(truncatingIfNeeded: k)
        let slot = size == 0 ? 0 : Int(index) % Int(size)
        let e = ring.usedEntries[k]
        // L and U on the same entry (nothing pending) both show: neither pointer is ever hidden.
        let mark = (index == status.lastUsedIdx ? "L" : "") + (index == status.usedIdx ? "U" : "") + (index == irq ? "I" : "")
        let text = (mark.isEmpty ? " " : mark) + String(slot).leftPadded(to: 6 - max(1, mark.count)) + "→" + String(e.id).padded(to: 5) + String(e.len).leftPadded(to: 5)
        let style: CellStyle
        if k >= lOffset && k < uOffset {
            style = CellStyle(.descUsed, bold: true)   // pending: the next step takes these
        } else if k >= uOffset {
            style = CellStyle(.dim)                      // not written this lap
        } else {
            style = .plain                               // consumed
        }
        return RingRow(index: index, text: text, style: style)
    }
}

/// "kick K@1203" (the mark and the entry index) or "kick off" (the flag suppresses it) for
/// where the next notification fires; without a name, "K@1203" / "K off".
func nextText(_ next: NextNotification, name: String = "", mark: String) -> String {
    let lead = name.isEmpty ? "" : name + " "
    switch next {
    case .at(let index): return lead + mark + "@" + String(index)
    case .suppressed: return (name.isEmpty ? mark : name) + " off"
    }
}

/// "NO_INTERRUPT" / "0" (plus unknown bits as hex) for a flags word.
func ringFlagsText(_ flags: UInt16, name: String) -> String {
    if flags == 0 { return "0" }
    var parts: [String] = []
    if flags & 1 != 0 { parts.append(name) }
    if flags & ~1 != 0 { parts.append("0x" + hexDigits(UInt64(flags & ~1), width: 1)) }
    return parts.joined(separator: "|")
}

func drawRingPane(_ g: inout ScreenGrid, _ state: TUIState, _ r: Rect) {
    guard r.width > 0, r.height >= 2 else { return }
    g.fill(y: r.y, x: r.x - 1, height: r.height, width: 1, with: Cell("│", CellStyle(.dim)))
    guard let q = state.selectedQueueModel else {
        g.rule(y: r.y, x: r.x, width: r.width, title: "rings")
        return
    }
    let stale = snapshotIsStale(state)
    var title = "rings \(q.info.name)"
    if stale {
        title += " · STALE"   // before anything else: the title is cut at the pane's width
    } else if let ring = q.ring {
        title += " · \(max(ring.availEntries.count, ring.usedEntries.count))/\(q.info.size) slots"
    }
    g.rule(y: r.y, x: r.x, width: r.width, title: title,
           style: stale ? CellStyle(.alarm, bold: true) : CellStyle(.dim))
    guard let status = q.status else {
        g.text(" no snapshot yet", y: r.y + 1, x: r.x, style: CellStyle(.dim), maxX: r.maxX)
        return
    }
    guard let ring = q.ring else {
        // A snapshot without a ring section's entries (a guest watched through QMP): nothing known.
        g.text(" ring contents not reported:", y: r.y + 1, x: r.x, style: CellStyle(.warning), maxX: r.maxX)
        if r.height > 2 { g.text(" flags and entries unknown", y: r.y + 2, x: r.x, style: CellStyle(.warning), maxX: r.maxX) }
        return
    }
    if ring.packed {
        return drawPackedRing(&g, ring, status: status, size: q.info.size, rect: r, stale: stale)
    }
    var y = r.y + 1
    let maxY = r.maxY
    let valueStyle = stale ? CellStyle(.alarm) : CellStyle.plain
    func line(_ parts: [(String, CellStyle)]) {
        guard y < maxY else { return }
        var x = r.x
        for (text, style) in parts { x = g.text(text, y: y, x: x, style: style, maxX: r.maxX) }
        y += 1
    }
    if maxY - y >= 9 {
        line([("avail.flags ", CellStyle(.dim)), (ringFlagsText(ring.availFlags, name: "NO_INTERRUPT"), valueStyle)])
        line([("used.flags  ", CellStyle(.dim)), (ringFlagsText(ring.usedFlags, name: "NO_NOTIFY"), valueStyle)])
        if ring.eventIdx {
            line([("used_event ", CellStyle(.dim)), (String(ring.usedEvent), valueStyle),
                  (" avail_event ", CellStyle(.dim)), (String(ring.availEvent), valueStyle)])
        } else {
            line([("no EVENT_IDX: no used/avail_event", CellStyle(.dim))])
        }
        line([("next ", CellStyle(.dim)), (nextText(NextNotification.kick(status: status, ring: ring), name: "kick", mark: "K"), valueStyle),
              (" · ", CellStyle(.dim)), (nextText(NextNotification.interrupt(status: status, ring: ring), name: "irq", mark: "I"), valueStyle)])
        line([(" avail ring".padded(to: 13) + "│ used ring", CellStyle(.dim))])
        line([("  slot→id".padded(to: 13) + "│" + "  slot→id".padded(to: 12) + "len".leftPadded(to: 5), CellStyle(.dim))])
    } else {
        // Small screens (80x24): flags and event words on one line, then the entries.
        var parts: [(String, CellStyle)] = [
            ("A:", CellStyle(.dim)), (ringFlagsText(ring.availFlags, name: "NO_INTR"), valueStyle),
            (" U:", CellStyle(.dim)), (ringFlagsText(ring.usedFlags, name: "NO_NOTIFY"), valueStyle),
        ]
        if ring.eventIdx {
            parts += [(" ue ", CellStyle(.dim)), (String(ring.usedEvent), valueStyle),
                      (" ae ", CellStyle(.dim)), (String(ring.availEvent), valueStyle)]
        } else {
            parts.append((" no EVENT_IDX", CellStyle(.dim)))
        }
        line(parts)
        if maxY - y >= 4 {
            line([(nextText(NextNotification.kick(status: status, ring: ring), mark: "K"), valueStyle), (" ", .plain),
                  (nextText(NextNotification.interrupt(status: status, ring: ring), mark: "I"), valueStyle)])
        }
    }
    guard y < maxY else { return }
    let rows = maxY - y
    let a = availRows(ring, status: status, size: q.info.size, rows: rows)
    let u = usedRows(ring, status: status, size: q.info.size, rows: rows)
    for k in 0..<rows {
        let rowY = y + k
        if k < a.count {
            let row = a[k]
            g.text(row.text, y: rowY, x: r.x, style: row.style, maxX: r.x + 12)
            for (i, mark) in row.text.unicodeScalars.prefix(2).enumerated() where mark == "A" || mark == "K" {
                g.put(Cell(mark, CellStyle(.marker, bold: true, reverse: true)), y: rowY, x: r.x + i)
            }
        }
        g.put(Cell("│", CellStyle(.dim)), y: rowY, x: r.x + 13)
        if k < u.count {
            let row = u[k]
            g.text(row.text, y: rowY, x: r.x + 14, style: row.style, maxX: r.maxX)
            for (i, mark) in row.text.unicodeScalars.prefix(3).enumerated() where mark == "L" || mark == "U" || mark == "I" {
                g.put(Cell(mark, CellStyle(.marker, bold: true, reverse: true)), y: rowY, x: r.x + 14 + i)
            }
        }
    }
}

/// A packed ring (virtio 1.2, 2.8; docs/protocol.md §4 "Packed queues"): the two event
/// suppression structures (2.8.14), then one row per ring slot of the window — slot, its
/// AVAIL/USED bits, buffer id, len, and what the flags say against the wrap counters (2.8.1):
/// `avail` (the device owns it), `used` (returned, at or after the driver's used position, L),
/// or `done` (a used descriptor the driver has already taken). A marks the driver's next
/// available position, U the device's next used one.
func drawPackedRing(_ g: inout ScreenGrid, _ ring: WireRingView, status: WireQueueStatus, size: UInt16, rect r: Rect,
                    stale: Bool) {
    var y = r.y + 1
    let valueStyle = stale ? CellStyle(.alarm) : CellStyle.plain
    func line(_ parts: [(String, CellStyle)]) {
        guard y < r.maxY else { return }
        var x = r.x
        for (text, style) in parts { x = g.text(text, y: y, x: x, style: style, maxX: r.maxX) }
        y += 1
    }
    line([("driver evt ", CellStyle(.dim)), (packedEventRequest(ring.driverEvent), valueStyle),
          (" (irq)", CellStyle(.dim))])
    line([("device evt ", CellStyle(.dim)), (packedEventRequest(ring.deviceEvent), valueStyle),
          (" (kick)", CellStyle(.dim))])
    line([("A ", CellStyle(.dim)), (packedPosition(status.availIdx), valueStyle), (" U ", CellStyle(.dim)),
          (packedPosition(status.usedIdx), valueStyle), (" L ", CellStyle(.dim)), (packedPosition(status.lastUsedIdx), valueStyle)])
    line([("  slot  A U    id   len state", CellStyle(.dim))])
    guard size > 0 else { return }
    let n = Int(size)
    let lastUsedSlot = Int(status.lastUsedIdx & 0x7FFF) % n
    let usedWrap = status.lastUsedIdx & 0x8000 != 0
    // Used descriptors are pending from L for as many positions as the device has moved past it.
    let pending = Int(RingIndices(size: size, status: status, format: .packed).pending)
    for k in 0..<min(ring.availEntries.count, ring.usedEntries.count) {
        guard y < r.maxY else { return }
        let slot = (Int(ring.availStart) + k) % n
        let flags = ring.availEntries[k]
        let avail = flags & (1 << 7) != 0, used = flags & (1 << 15) != 0
        let ahead = (slot - lastUsedSlot + n) % n
        let state: String, style: CellStyle
        if avail != used {
            state = "avail"; style = CellStyle(.descAvail)
        } else if ahead < pending && used == (slot >= lastUsedSlot ? usedWrap : !usedWrap) {
            state = "used"; style = CellStyle(.descUsed, bold: true)
        } else {
            state = "done"; style = CellStyle(.dim)
        }
        var mark = ""
        if slot == Int(status.lastUsedIdx & 0x7FFF) % n { mark += "L" }
        if slot == Int(status.usedIdx & 0x7FFF) % n { mark += "U" }
        if slot == Int(status.availIdx & 0x7FFF) % n { mark += "A" }
        let e = ring.usedEntries[k]
        let text = mark.padded(to: 2) + String(slot).leftPadded(to: 4) + "  " + (avail ? "1" : "0") + " " + (used ? "1" : "0")
            + String(e.id).leftPadded(to: 6) + String(e.len).leftPadded(to: 6) + " " + state
        g.text(text, y: y, x: r.x, style: style, maxX: r.maxX)
        for (i, m) in mark.unicodeScalars.enumerated() {
            g.put(Cell(m, CellStyle(.marker, bold: true, reverse: true)), y: y, x: r.x + i)
        }
        y += 1
    }
}
