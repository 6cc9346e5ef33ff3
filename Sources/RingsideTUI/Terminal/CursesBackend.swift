// Blits a ScreenGrid to the terminal: only the cells that differ from the previous frame are
// written, and roles become colours (or bold / reverse without colours or with NO_COLOR).

import CNcurses

final class CursesBackend {
    let terminal: Terminal
    private var previous: ScreenGrid?
    private var looks: [CellStyle: (TextAttributes, ColorPair)] = [:]
    private var roleLooks: [CellRole: (TextAttributes, ColorPair)] = [:]

    init(terminal: Terminal) {
        self.terminal = terminal
        defineRoles()
    }

    /// Forget the previous frame: the next draw repaints everything (after a resize).
    func invalidate() {
        previous = nil
        terminal.screen.clear()
    }

    func draw(_ grid: ScreenGrid) {
        let screen = terminal.screen
        if previous?.size != grid.size { invalidate() }
        let w = grid.size.width
        grid.cells.withUnsafeBufferPointer { cells in
            for y in 0..<grid.size.height {
                for x in 0..<w {
                    let cell = cells[y * w + x]
                    if let previous, previous.cells[y * w + x] == cell { continue }
                    let (attrs, pair) = look(cell.style)
                    screen.put(cell.scalar, y: y, x: x, attributes: attrs, pair: pair)
                }
            }
        }
        previous = grid
        screen.noutrefresh()
        terminal.update()
    }

    private func look(_ style: CellStyle) -> (TextAttributes, ColorPair) {
        if let l = looks[style] { return l }
        var (attrs, pair) = roleLooks[style.role] ?? (.normal, .terminalDefault)
        if style.bold { attrs.insert(.bold) }
        if style.reverse { attrs.insert(.reverse) }
        looks[style] = (attrs, pair)
        return (attrs, pair)
    }

    private func defineRoles() {
        if terminal.colorsEnabled {
            var next: Int16 = 1
            func pair(_ fg: TerminalColor, _ bg: TerminalColor, _ attrs: TextAttributes = []) -> (TextAttributes, ColorPair) {
                let p = ColorPair(rawValue: next)
                next += 1
                terminal.definePair(p, foreground: fg, background: bg)
                return (attrs, p)
            }
            roleLooks = [
                .plain: ([], .terminalDefault),
                .dim: ([.dim], .terminalDefault),
                .title: pair(.cyan, .default),
                .header: pair(.white, .blue),
                .key: pair(.yellow, .blue, [.bold]),
                .selected: pair(.black, .cyan),
                .good: pair(.green, .default),
                .warning: pair(.yellow, .default),
                .alarm: pair(.red, .default, [.bold]),
                .descFree: ([.dim], .terminalDefault),
                .descAvail: pair(.green, .default),
                .descUsed: pair(.yellow, .default, [.bold]),
                .descHeld: pair(.magenta, .default),
                .marker: pair(.white, .default, [.bold]),
                .hexOffset: pair(.cyan, .default),
                .hexBytes: ([], .terminalDefault),
                .hexASCII: pair(.green, .default),
                .decoded: pair(.magenta, .default),
                .overlay: pair(.white, .blue),
            ]
        } else {
            // Monochrome: shapes carry the ring states; attributes carry emphasis.
            roleLooks = [
                .plain: ([], .terminalDefault),
                .dim: ([.dim], .terminalDefault),
                .title: ([.bold], .terminalDefault),
                .header: ([.reverse], .terminalDefault),
                .key: ([.reverse, .bold], .terminalDefault),
                .selected: ([.reverse], .terminalDefault),
                .good: ([.bold], .terminalDefault),
                .warning: ([.bold], .terminalDefault),
                .alarm: ([.bold, .underline], .terminalDefault),
                .descFree: ([.dim], .terminalDefault),
                .descAvail: ([], .terminalDefault),
                .descUsed: ([.bold], .terminalDefault),
                .descHeld: ([], .terminalDefault),
                .marker: ([.bold], .terminalDefault),
                .hexOffset: ([.dim], .terminalDefault),
                .hexBytes: ([], .terminalDefault),
                .hexASCII: ([], .terminalDefault),
                .decoded: ([.bold], .terminalDefault),
                .overlay: ([.reverse], .terminalDefault),
            ]
        }
    }
}
