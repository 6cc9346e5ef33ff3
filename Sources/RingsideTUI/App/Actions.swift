// Keys and typed commands turned into state changes and effects. Pure: the app performs the
// effects (sending, writing files, quitting), so key handling is testable without a terminal.

import RingsideKit
import Wire

/// Something the app must do after a key.
public enum AppEffect: Equatable, Sendable {
    /// Send a command; `label` names it in the log when its reply arrives.
    case send(WireCommand, label: String)
    case writePcap
    /// Run an HMP command through QMP `human-monitor-command` (`:hmp CMD`).
    case hmp(String)
    /// `z`: a consistent snapshot of a guest (QMP stop, read every queue, cont), shown frozen.
    case consistentSnapshot
    /// A replay control (`ringside replay`: p, < >, n, g, 0).
    case replay(ReplayControl)
    case quit
}

/// Snapshot rates `+` and `-` step through.
public let snapshotRateSteps: [UInt16] = [1, 2, 5, 10, 20, 30, 60, 100]

extension TUIState {
    /// Rows of the descriptor table on screen (set by the app from the layout; 1 … ).
    public var tableViewportRows: Int {
        get { max(1, _tableRows) }
        set { _tableRows = newValue }
    }

    public mutating func handle(_ key: Key) -> [AppEffect] {
        switch mode {
        case .help:
            handleHelp(key)
            return []
        case .info, .features:
            if key != .resize { mode = .normal }
            return []
        case .prompt(let kind, let text):
            return handlePrompt(key, kind: kind, text: text)
        case .normal:
            return handleNormal(key)
        }
    }

    /// The normal mode's keys (and a replay's), as KeyMap binds them.
    mutating func handleNormal(_ key: Key) -> [AppEffect] {
        if handleHMPPaneKey(key) { return [] }
        guard let action = KeyMap.action(for: key, replaying: replay != nil) else { return [] }
        let count = view.model.queues.count
        switch action {
        case .replay(let control):
            return [.replay(control)]
        case .seekPrompt:
            mode = .prompt(.seekTime, text: "")
        case .cycleQueue(let step) where count > 0:
            select((selectedQueue + count + step) % count)
        case .selectQueue(let n):
            if n < count { select(n) }
        case .move(let key):
            moveInFocusedPane(key)
        case .cycleFocus(let step): panes.cycleFocus(by: step)
        case .toggleExpand:
            panes.expanded = panes.expanded == nil ? panes.focus : nil
        case .back:
            if panes.expanded != nil { panes.expanded = nil } else { cursor = nil }
        case .pauseResume:
            guard let q = selectedQueueModel else { return [] }
            if q.status?.paused == true {
                return [.send(.resume(queue: q.info.queue), label: "resume \(q.info.name)")]
            }
            return [.send(.pause(queue: q.info.queue), label: "pause \(q.info.name)")]
        case .step:
            guard let q = selectedQueueModel else { return [] }
            return [.send(.step(queue: q.info.queue, count: 1), label: "step \(q.info.name)")]
        case .stepCount:
            mode = .prompt(.stepCount, text: "")
        case .dump:
            guard let q = selectedQueueModel else { return [] }
            if let id = cursor {
                return [.send(.dump(queue: q.info.queue, selector: .descriptor(UInt16(id))), label: "dump \(q.info.name) desc \(id)")]
            }
            return [.send(.dump(queue: q.info.queue, selector: .next), label: "dump \(q.info.name) next")]
        case .browseDumps(let step):
            if let i = shownDump, i + step >= 0, i + step < dumps.count { shownDump = i + step; panes.top[.dump] = nil }
        case .writePcap:
            return [.writePcap]
        case .freeze:
            if frozen == nil {
                frozen = live
                addLog(.info, "display frozen (the guest runs on; f to thaw)")
            } else {
                frozen = nil
                frozenNote = nil
                addLog(.info, "display live")
            }
        case .consistentSnapshot:
            return [.consistentSnapshot]
        case .rate(let up):
            // From the rate last asked for, so quick presses add up before a snapshot confirms.
            let current = pendingRateHz ?? live.model.rateHz
            let next = up ? snapshotRateSteps.first(where: { $0 > current }) ?? snapshotRateSteps.last!
                : snapshotRateSteps.last(where: { $0 < current }) ?? snapshotRateSteps.first!
            return [.send(.setSnapshotRate(hz: next), label: "rate \(next) Hz")]
        case .logFilter:
            mode = .prompt(.logFilter, text: logFilter)
        case .commandLine:
            mode = .prompt(.command, text: "")
        case .help:
            mode = .help
        case .info:
            mode = .info
        case .features:
            mode = .features
        case .quit:
            return [.quit]
        case .cycleQueue:
            break
        }
        return []
    }

    /// ↑ ↓ PgUp PgDn Home End: the descriptor table moves its cursor; the dump and the log scroll.
    mutating func moveInFocusedPane(_ key: Key) {
        let pane = panes.expanded ?? panes.focus
        if pane == .descriptors {
            switch key {
            case .up: moveCursor(by: -1)
            case .down: moveCursor(by: 1)
            case .pageUp: moveCursor(by: -tableViewportRows)
            case .pageDown: moveCursor(by: tableViewportRows)
            case .home: moveCursor(to: 0)
            case .end: moveCursor(to: Int.max)
            default: break
            }
            return
        }
        let rows = panes.rows(pane)
        let count = paneLineCount(pane)
        let last = max(0, count - rows)
        // The log follows its newest entries (top nil) until scrolled up, and again at its end.
        let current = clampedTop(panes.top[pane] ?? (pane == .log ? nil : 0), count: count, rows: rows)
        var top: Int
        switch key {
        case .up: top = current - 1
        case .down: top = current + 1
        case .pageUp: top = current - max(1, rows - 1)
        case .pageDown: top = current + max(1, rows - 1)
        case .home: top = 0
        case .end: top = last
        default: return
        }
        top = max(0, min(top, last))
        panes.top[pane] = pane == .log && top == last ? nil : top
    }

    /// Lines the dump or log pane has at its current width (as drawn).
    func paneLineCount(_ pane: Pane) -> Int {
        let width = panes.width(pane), expanded = panes.expanded == pane
        switch pane {
        case .descriptors: return selectedQueueModel?.descriptors.count ?? 0
        case .dump:
            guard let i = shownDump, dumps.indices.contains(i) else { return 0 }
            let sideBySide = !expanded && width >= 129
            return dumpPaneLines(self, dumps[i], width: sideBySide ? 79 : width, rows: panes.rows(.dump), full: expanded,
                                 decode: !sideBySide).count
        case .log: return logPaneLines(self, width: width, wrapAll: expanded).count
        }
    }

    /// In help: ↑ ↓ PgUp PgDn Home End scroll it (it can be longer than the screen); any other
    /// key closes it.
    mutating func handleHelp(_ key: Key) {
        let count = helpOverlayLines().count
        let rows = max(1, helpRows)
        let last = max(0, count - rows)
        switch key {
        case .resize: return
        case .up: helpTop = max(0, helpTop - 1)
        case .down: helpTop = min(last, helpTop + 1)
        case .pageUp: helpTop = max(0, helpTop - rows)
        case .pageDown: helpTop = min(last, helpTop + rows)
        case .home: helpTop = 0
        case .end: helpTop = last
        default:
            mode = .normal
            helpTop = 0
        }
    }

    mutating func select(_ position: Int) {
        guard position != selectedQueue else { return }
        selectedQueue = position
        cursor = nil
        tableTop = 0
    }

    mutating func moveCursor(by delta: Int) {
        if cursor == nil { tableTop = displayedTableTop }
        let start = cursor ?? (delta > 0 ? tableTop - 1 : tableTop + tableViewportRows)
        moveCursor(to: start + delta)
    }

    mutating func moveCursor(to target: Int) {
        guard let q = selectedQueueModel, !q.descriptors.isEmpty else { return }
        if cursor == nil { tableTop = displayedTableTop }
        let id = min(max(0, target), q.descriptors.count - 1)
        cursor = id
        let rows = tableViewportRows
        if id < tableTop { tableTop = id }
        if id >= tableTop + rows { tableTop = id - rows + 1 }
        tableTop = max(0, min(tableTop, q.descriptors.count - rows))
    }

    /// The descriptor `d` dumps while the table has no cursor: the oldest pending used element,
    /// the used ring's entry at last_used_idx when the snapshot's ring window holds it. Without
    /// it (a sender that does not read the rings), the first `used` descriptor in ring order
    /// from last_used_idx: ids taken cyclically from last_used_idx's slot, right only while
    /// buffers come back in id order. Nil when nothing is pending or the table is stale.
    public var nextPendingDescriptor: Int? {
        guard let q = selectedQueueModel, !q.isStale, let status = q.status else { return nil }
        let n = q.descriptors.count
        guard n > 0, RingIndices(size: UInt16(truncatingIfNeeded: n), status: status, format: q.info.format).pending > 0
        else { return nil }
        if let ring = q.ring {
            // Packed: the window starts at a ring slot; the driver's used position is a slot and a wrap bit.
            let offset = ring.packed ? (Int(status.lastUsedIdx & 0x7FFF) - Int(ring.usedStart) + n) % n
                                     : Int(status.lastUsedIdx &- ring.usedStart)
            if offset < ring.usedEntries.count {
                let id = Int(ring.usedEntries[offset].id)
                if id < n { return id }
            }
        }
        let start = Int(status.lastUsedIdx) % n
        for k in 0..<n {
            let id = (start + k) % n
            if q.descriptors[id].state == .used { return id }
        }
        return nil
    }

    /// The first descriptor row the table shows. While the user has not moved the cursor
    /// (`d` dumps the next pending frame), the table follows that frame's descriptor: it sits
    /// on the second row (the first with a row above it for context). With a cursor, or
    /// nothing pending, it is `tableTop`, clamped to the table.
    public var displayedTableTop: Int { tableTop(showingRows: tableViewportRows) }

    /// `displayedTableTop` for a table of `rows` rows.
    public func tableTop(showingRows rows: Int) -> Int {
        let count = selectedQueueModel?.descriptors.count ?? 0
        var top = tableTop
        if cursor == nil, let id = nextPendingDescriptor {
            top = rows > 2 ? id - 1 : id
        }
        return max(0, min(top, count - rows))
    }

    /// Keeps `tableTop` where the table is drawn while it follows the pending frames, so it
    /// stays there when they are gone (the app calls this before each draw).
    public mutating func followPending() {
        if cursor == nil { tableTop = displayedTableTop }
    }

    mutating func handlePrompt(_ key: Key, kind: PromptKind, text: String) -> [AppEffect] {
        switch key {
        case .escape:
            mode = .normal
        case .backspace, .delete:
            mode = .prompt(kind, text: String(text.dropLast()))
        case .enter:
            mode = .normal
            return submit(kind, text.trimmingSpaces())
        case .character(let c):
            if text.count < 200 { mode = .prompt(kind, text: text + String(c)) }
        default:
            break
        }
        return []
    }

    mutating func submit(_ kind: PromptKind, _ text: String) -> [AppEffect] {
        switch kind {
        case .logFilter:
            logFilter = text
            return []
        case .seekTime:
            if text.isEmpty { return [] }
            guard let t = Double(text.hasSuffix("s") ? String(text.dropLast()) : text), t >= 0, t.isFinite else {
                addLog(.error, "go to: \"\(text)\" is not a time in seconds")
                return []
            }
            return [.replay(.seek(t))]
        case .stepCount:
            guard let q = selectedQueueModel else { return [] }
            guard let n = UInt16(text), n > 0 else {
                addLog(.error, "step: \"\(text)\" is not a count from 1 to 65535")
                return []
            }
            return [.send(.step(queue: q.info.queue, count: n), label: "step \(q.info.name) \(n)")]
        case .command:
            if text.isEmpty { return [] }
            let words = text.split(separator: " ", maxSplits: 1).map(String.init)
            if words[0].lowercased() == "hmp" {
                guard words.count == 2, !words[1].trimmingSpaces().isEmpty else {
                    addLog(.error, ":\(text): usage: hmp COMMAND (e.g. hmp info pci)")
                    return []
                }
                return [.hmp(words[1].trimmingSpaces())]
            }
            switch parseControlCommand(text, queues: live.model.queues.map { $0.info }) {
            case .success(let command):
                return [.send(command, label: text)]
            case .failure(let error):
                addLog(.error, ":\(text): \(error.message)")
                return []
            }
        }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

extension TUIState {
    /// Keys for the HMP answer pane while it is open and has the focus (it stands in the dump
    /// pane, so the dump pane's focus is its focus; expanded, it always has it): `e`
    /// expands/collapses it, Esc closes it; expanded, the arrows and PgUp/PgDn/Home/End scroll
    /// it. With the focus on another pane, that pane's keys work as usual. Returns whether the
    /// key was used.
    mutating func handleHMPPaneKey(_ key: Key) -> Bool {
        guard var pane = hmp, pane.expanded || (panes.focus == .dump && panes.expanded == nil) else { return false }
        let page = max(1, pane.expanded ? 20 : 5)
        switch key {
        case .escape:
            if pane.expanded { pane.expanded = false; hmp = pane } else { hmp = nil }
            return true
        case .character("e"):
            pane.expanded.toggle()
        case .up where pane.expanded: pane.top -= 1
        case .down where pane.expanded: pane.top += 1
        case .pageUp where pane.expanded: pane.top -= page
        case .pageDown where pane.expanded: pane.top += page
        case .home where pane.expanded: pane.top = 0
        case .end where pane.expanded: pane.top = pane.lines.count
        default:
            return false
        }
        pane.top = max(0, min(pane.top, pane.lines.count - 1))
        hmp = pane
        return true
    }
}
