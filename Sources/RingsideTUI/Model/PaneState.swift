// The lower panes as the user steers them: which one has the focus (arrow keys act on it), which
// one is expanded to the full screen (`e`), and how far each is scrolled. The renderer reports
// each pane's viewport back (rows and width) so paging and End know where the end is.

/// A pane of the lower screen area.
public enum Pane: Int, CaseIterable, Equatable, Hashable, Sendable {
    case descriptors, dump, log

    public var name: String {
        switch self {
        case .descriptors: return "descriptors"
        case .dump: return "dump"
        case .log: return "events"
        }
    }
}

public struct PaneState: Equatable, Sendable {
    /// Where ↑ ↓ PgUp PgDn Home End act (and what `e` expands).
    public var focus: Pane = .descriptors
    /// The pane drawn over the whole body of the screen, if any.
    public var expanded: Pane?
    /// First line shown, per scrolled pane (the descriptor table scrolls with its cursor
    /// instead). For the log, nil follows the newest entries.
    public var top: [Pane: Int] = [:]
    /// Rows and columns each pane had when last drawn.
    public var viewport: [Pane: ScreenSize] = [:]

    public init() {}

    /// The panes ←/→ cycle through.
    public static let order: [Pane] = [.descriptors, .dump, .log]

    public mutating func cycleFocus(by delta: Int) {
        let order = Self.order
        let i = order.firstIndex(of: focus) ?? 0
        focus = order[(i + delta + order.count) % order.count]
        if expanded != nil { expanded = focus }
    }

    public func rows(_ pane: Pane) -> Int { max(1, viewport[pane]?.height ?? 8) }
    public func width(_ pane: Pane) -> Int { max(20, viewport[pane]?.width ?? 80) }
}

/// The first line to show of `count` lines in `rows` rows, for a wanted `top` (nil: the end).
public func clampedTop(_ top: Int?, count: Int, rows: Int) -> Int {
    let last = max(0, count - rows)
    guard let top else { return last }
    return max(0, min(top, last))
}
