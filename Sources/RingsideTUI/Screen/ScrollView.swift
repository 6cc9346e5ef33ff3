// Scrollable panes: content as lines of styled segments, drawn from a top line into a rectangle,
// with the position shown in the pane's title. The dump and the event log build their lines
// here for both sizes of pane (in the layout, and expanded to the full screen with `e`).

import RingsideKit

public struct PaneSegment: Equatable, Sendable {
    public var text: String
    public var style: CellStyle
    public init(_ text: String, _ style: CellStyle = .plain) {
        self.text = text
        self.style = style
    }
}

/// One line of a pane, as segments drawn left to right (clipped at the pane's right edge).
public struct PaneLine: Equatable, Sendable {
    public var segments: [PaneSegment]
    public init(_ segments: [PaneSegment]) { self.segments = segments }
    public init(_ text: String, _ style: CellStyle = .plain) { segments = [PaneSegment(text, style)] }
    public static let blank = PaneLine([])

    public var text: String { segments.map(\.text).joined() }

    /// A `hexdump -C` line in its three styles: offset, bytes, ASCII.
    public static func hex(_ line: String) -> PaneLine {
        let s = Array(line.unicodeScalars)
        func part(_ from: Int, _ to: Int) -> String {
            let lower = min(from, s.count), upper = max(lower, min(to, s.count))
            return String(String.UnicodeScalarView(s[lower..<upper]))
        }
        return PaneLine([PaneSegment(part(0, 8), CellStyle(.hexOffset)), PaneSegment(part(8, 60), CellStyle(.hexBytes)),
                         PaneSegment(part(60, s.count), CellStyle(.hexASCII))])
    }
}

/// `text` broken into lines of at most `width` columns, at spaces where a line has one in its
/// second half, else hard; lines after the first start with `indent` spaces.
public func wrapText(_ text: String, width: Int, indent: Int = 0) -> [String] {
    let width = max(1, width)
    let indent = min(indent, width / 2)
    var lines: [String] = []
    var rest = Array(text.unicodeScalars)
    var room = width
    while rest.count > room {
        var cut = room
        if let space = rest[(room / 2)..<room].lastIndex(of: " ") { cut = space }
        lines.append(String(String.UnicodeScalarView(rest[0..<cut])))
        rest = Array(rest[cut...].drop { $0 == " " })
        room = width - indent
    }
    lines.append(String(String.UnicodeScalarView(rest)))
    return lines.enumerated().map { $0.offset == 0 ? $0.element : String(repeating: " ", count: indent) + $0.element }
}

/// Draws `lines[top...]` into `r`, one per row. Returns the top actually used (clamped).
@discardableResult
func drawPaneLines(_ g: inout ScreenGrid, _ lines: [PaneLine], top: Int?, in r: Rect) -> Int {
    let first = clampedTop(top, count: lines.count, rows: r.height)
    for row in 0..<r.height {
        let i = first + row
        guard i < lines.count else { break }
        var x = r.x
        for seg in lines[i].segments { x = g.text(seg.text, y: r.y + row, x: x, style: seg.style, maxX: r.maxX) }
    }
    return first
}

/// "12–31 of 90" for a pane that does not show everything, "" when it does.
func scrollPosition(top: Int, rows: Int, count: Int) -> String {
    guard count > rows else { return "" }
    return "\(top + 1)–\(min(count, top + rows)) of \(count)"
}

// MARK: - Dump lines

/// The dump pane's lines for `rec`: what the host knows of the buffer's owner, the decoded
/// headers (all of them with `full`, else the innermost only when all would not fit
/// `rows`), then the hex dump. With `decode: false` the decoded lines are left to the caller
/// (side by side).
func dumpPaneLines(_ state: TUIState, _ rec: DumpRecord, width: Int, rows: Int, full: Bool, decode: Bool = true) -> [PaneLine] {
    var lines: [PaneLine] = []
    if let label = rec.ownership.label {
        let style = rec.ownership.holdsFrame ? CellStyle(.warning) : CellStyle(.alarm, bold: true)
        lines += wrapText(label, width: width, indent: 2).map { PaneLine($0, style) }
    }
    let hex = hexDumpCLines(rec.dump.bytes).map(PaneLine.hex)
    if decode {
        let decoded = dumpDecodeLines(state, rec)
        var shown = decoded
        if !full && decoded.count + hex.count + lines.count > rows { shown = decoded.suffix(decoded.isEmpty ? 0 : 1) }
        lines += shown.flatMap { wrapText($0, width: width, indent: 2) }.map { PaneLine($0, CellStyle(.decoded)) }
        if full && !decoded.isEmpty { lines.append(.blank) }
    }
    return lines + hex
}

/// The decoded header lines of a dump: none for a buffer that is not a frame (stale, unknown
/// owner) or not a network queue's.
func dumpDecodeLines(_ state: TUIState, _ rec: DumpRecord) -> [String] {
    guard rec.ownership.holdsFrame, state.isNetworkQueue(rec.queueName) else { return [] }
    return FrameDecoder.describe(rec.dump.bytes, virtioHeaderBytes: state.virtioNetHeaderBytes).summaryLines
}

// MARK: - Log lines

/// The event log as lines: each entry's time, text and repeat count. With `wrapAll` every entry
/// wraps at `width`; otherwise errors wrap (their reasons matter) and other entries are cut,
/// with "…" where they were.
func logPaneLines(_ state: TUIState, width: Int, wrapAll: Bool) -> [PaneLine] {
    var lines: [PaneLine] = []
    for e in state.filteredLog {
        let role: CellRole
        switch e.kind {
        case .error: role = .alarm
        case .command: role = .key
        case .reply: role = .good
        case .event: role = .warning
        case .info: role = .plain
        }
        let time = fmt1(e.time).leftPadded(to: 7) + "s "
        let text = e.text + (e.repeats > 1 ? " ×\(e.repeats)" : "")
        let room = max(1, width - time.columns)
        var parts = wrapText(text, width: room)
        if !wrapAll && e.kind != .error && parts.count > 1 {
            parts = [String(String.UnicodeScalarView(text.unicodeScalars.prefix(room - 1))) + "…"]
        }
        for (i, part) in parts.enumerated() {
            lines.append(PaneLine([PaneSegment(i == 0 ? time : String(repeating: " ", count: time.columns), CellStyle(.dim)),
                                   PaneSegment(part, CellStyle(role))]))
        }
    }
    return lines
}
