// The screen as data: a grid of cells, each a character and a style. The renderer draws into
// it; the ncurses backend blits it (only the cells that changed). Tests read it as text.

/// Terminal size in cells.
public struct ScreenSize: Equatable, Hashable, Sendable {
    public var width: Int
    public var height: Int
    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }
    /// The smallest size the full layout is drawn at.
    public static let minimum = ScreenSize(width: 80, height: 24)
}

/// What a cell means, not how it looks: the backend picks colours (or, without colours, bold
/// and reverse) per role, so the screen model is the same with and without `NO_COLOR`.
public enum CellRole: UInt8, CaseIterable, Hashable, Sendable {
    case plain
    case dim
    case title
    case header
    case key            // key names in hints and help
    case selected       // the selected queue / cursor row
    case good           // connected, link up
    case warning        // reconnecting, PAUSED, FROZEN
    case alarm          // disconnected, stale, FULL/STUCK/STARVED, errors
    case descFree
    case descAvail
    case descUsed
    case descHeld
    case marker         // avail/used/last-seen pointers on a ring
    case hexOffset
    case hexBytes
    case hexASCII
    case decoded
    case overlay
}

public struct CellStyle: Hashable, Sendable {
    public var role: CellRole
    public var bold: Bool
    public var reverse: Bool

    public init(_ role: CellRole = .plain, bold: Bool = false, reverse: Bool = false) {
        self.role = role
        self.bold = bold
        self.reverse = reverse
    }

    public static let plain = CellStyle()
}

public struct Cell: Hashable, Sendable {
    public var scalar: Unicode.Scalar
    public var style: CellStyle

    public init(_ scalar: Unicode.Scalar, _ style: CellStyle = .plain) {
        self.scalar = scalar
        self.style = style
    }

    public static let blank = Cell(" ")
}

/// A width × height grid of cells. Writes outside it are clipped, never trapped.
public struct ScreenGrid: Equatable, Sendable {
    public let size: ScreenSize
    public private(set) var cells: [Cell]

    public init(size: ScreenSize) {
        self.size = size
        cells = [Cell](repeating: .blank, count: max(0, size.width) * max(0, size.height))
    }

    public subscript(y: Int, x: Int) -> Cell {
        get { cells[y * size.width + x] }
        set { cells[y * size.width + x] = newValue }
    }

    @inline(__always)
    public mutating func put(_ cell: Cell, y: Int, x: Int) {
        guard y >= 0, y < size.height, x >= 0, x < size.width else { return }
        cells[y * size.width + x] = cell
    }

    /// Writes `text` from (y, x), clipped at `maxX` (exclusive, default: the right edge).
    /// Returns the column after the last character written.
    @discardableResult
    public mutating func text(_ text: String, y: Int, x: Int, style: CellStyle = .plain, maxX: Int? = nil) -> Int {
        let limit = min(maxX ?? size.width, size.width)
        var col = x
        for scalar in text.unicodeScalars {
            if col >= limit { break }
            put(Cell(scalar, style), y: y, x: col)
            col += 1
        }
        return col
    }

    /// Fills a rectangle with `cell`.
    public mutating func fill(y: Int, x: Int, height: Int, width: Int, with cell: Cell = .blank) {
        for row in y..<(y + max(0, height)) {
            for col in x..<(x + max(0, width)) { put(cell, y: row, x: col) }
        }
    }

    /// Restyles a row segment, keeping its characters.
    public mutating func style(y: Int, x: Int, width: Int, _ style: CellStyle) {
        guard y >= 0, y < size.height else { return }
        for col in max(0, x)..<min(size.width, x + width) { cells[y * size.width + col].style = style }
    }

    /// A horizontal rule with an optional title: `── title ─────`.
    public mutating func rule(y: Int, x: Int, width: Int, title: String = "", style: CellStyle = CellStyle(.dim),
                              titleStyle: CellStyle = CellStyle(.title, bold: true)) {
        for col in x..<(x + width) { put(Cell("─", style), y: y, x: col) }
        if !title.isEmpty {
            text(" " + title + " ", y: y, x: x + 1, style: titleStyle, maxX: x + width)
        }
    }

    /// Row `y` as a string (trailing spaces kept).
    public func line(_ y: Int) -> String {
        var s = String.UnicodeScalarView()
        for x in 0..<size.width { s.append(self[y, x].scalar) }
        return String(s)
    }

    /// The whole grid as text, one line per row, trailing spaces removed (as tmux captures).
    public var text: String {
        (0..<size.height).map { line($0).trimmingTrailingSpaces() }.joined(separator: "\n")
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }

    /// Left-aligned in `width` columns (cut or padded; one column per scalar).
    func padded(to width: Int) -> String {
        let n = unicodeScalars.count
        if n >= width { return String(String.UnicodeScalarView(unicodeScalars.prefix(width))) }
        return self + String(repeating: " ", count: width - n)
    }

    /// Right-aligned in `width` columns.
    func leftPadded(to width: Int) -> String {
        let n = unicodeScalars.count
        if n >= width { return self }
        return String(repeating: " ", count: width - n) + self
    }

    var columns: Int { unicodeScalars.count }
}
