// Where each part of the screen goes for a given size. Pure arithmetic, tested on its own.

/// A rectangle of cells.
public struct Rect: Equatable, Sendable {
    public var y: Int, x: Int, height: Int, width: Int
    public init(y: Int, x: Int, height: Int, width: Int) {
        self.y = y; self.x = x; self.height = height; self.width = width
    }
    public static let empty = Rect(y: 0, x: 0, height: 0, width: 0)
    public var maxY: Int { y + height }
    public var maxX: Int { x + width }
}

public struct Layout: Equatable, Sendable {
    public var header: Rect
    /// One rectangle per queue panel, in hello order.
    public var queues: [Rect]
    /// Ring rows per queue panel (1: the ring shares the title line).
    public var ringRows: Int
    public var descriptors: Rect
    /// The ring-contents pane beside the descriptor table (RingContentsPane.swift); empty when
    /// there is no room.
    public var rings: Rect = .empty
    public var dump: Rect
    public var log: Rect
    public var status: Rect

    /// Width of the left column (descriptor table) when the lower area is split in two.
    static let sideBySideMinWidth = 150
    static let tableColumnWidth = 64

    /// The layout for `size` with `queueCount` queues whose largest has `maxQueueSize` entries.
    public static func compute(size: ScreenSize, queueCount: Int, maxQueueSize: Int) -> Layout {
        let w = size.width, h = size.height
        let header = Rect(y: 0, x: 0, height: 2, width: w)
        let status = Rect(y: h - 1, x: 0, height: 1, width: w)
        let body = h - header.height - status.height
        let n = max(1, queueCount)
        // Compact panels (2 rows: title + ring, stats) until the lower panes (descriptor table,
        // dump, log) have `lowerFirst` rows; of the rows beyond that, the panels take half for
        // rings on rows of their own (up to one cell per slot), the lower panes the rest. So a
        // taller terminal gives the descriptor table more rows, not only the rings.
        let lowerFirst = 22
        var ringRows = 1
        var panelHeight = 2
        let stripWidth = max(16, w - 24)
        let rowsForAll = (maxQueueSize + stripWidth - 1) / max(1, stripWidth)
        let spare = body - 2 * n - lowerFirst
        if spare > 0, min(rowsForAll, spare / 2 / n) >= 1 {
            ringRows = min(rowsForAll, spare / 2 / n)
            panelHeight = 2 + ringRows
        }
        var queues: [Rect] = []
        var y = header.maxY
        for _ in 0..<n {
            queues.append(Rect(y: y, x: 0, height: panelHeight, width: w))
            y += panelHeight
        }
        let lower = h - status.height - y
        var descriptors: Rect, dump: Rect, log: Rect
        if w >= sideBySideMinWidth {
            descriptors = Rect(y: y, x: 0, height: lower, width: tableColumnWidth)
            let rx = tableColumnWidth + 1
            let rw = w - rx
            let logHeight = max(4, lower / 3)
            dump = Rect(y: y, x: rx, height: lower - logHeight, width: rw)
            log = Rect(y: dump.maxY, x: rx, height: logHeight, width: rw)
        } else {
            let logHeight = max(3, lower / 5)
            let descHeight = max(4, (lower - logHeight) * 2 / 5)
            descriptors = Rect(y: y, x: 0, height: descHeight, width: w)
            dump = Rect(y: descriptors.maxY, x: 0, height: lower - logHeight - descHeight, width: w)
            log = Rect(y: dump.maxY, x: 0, height: logHeight, width: w)
        }
        var layout = Layout(header: header, queues: queues, ringRows: ringRows, descriptors: descriptors, dump: dump, log: log, status: status)
        layout.carveRingPane()
        return layout
    }

    /// A pane expanded to the full screen: everything between the header and the status line.
    public static func expandedPane(size: ScreenSize) -> Rect {
        Rect(y: 2, x: 0, height: max(2, size.height - 3), width: size.width)
    }
}
