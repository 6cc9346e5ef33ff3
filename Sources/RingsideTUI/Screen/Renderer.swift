// The screen model: `render(state, size)` draws everything into a ScreenGrid. Pure: no
// terminal, no clock (the state carries `now`), so every screen is unit-testable. Each pane
// draws in its own file: HeaderLine, QueuePanels, DescriptorTable, RingContentsPane, DumpPane,
// LogPane, StatusLine; the overlays in HelpOverlay, Overlays and FeaturesPanel.

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
