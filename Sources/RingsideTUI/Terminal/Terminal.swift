// A thin, typed layer over ncursesw, in the manner of swift-system: each type wraps one C
// concept, names say what it is, and nothing is hidden behind the wrapper. Everything here
// touches process-wide terminal state, so it is used from the main thread only.

import CNcurses
import Glibc

/// Text attributes, an option set over ncurses' `attr_t`.
public struct TextAttributes: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static var normal: TextAttributes { TextAttributes(rawValue: rs_a_normal()) }
    public static var bold: TextAttributes { TextAttributes(rawValue: rs_a_bold()) }
    public static var reverse: TextAttributes { TextAttributes(rawValue: rs_a_reverse()) }
    public static var underline: TextAttributes { TextAttributes(rawValue: rs_a_underline()) }
    public static var dim: TextAttributes { TextAttributes(rawValue: rs_a_dim()) }
}

/// One of the eight standard terminal colours (`COLOR_*`), or the terminal's default (-1,
/// with `use_default_colors`).
public struct TerminalColor: RawRepresentable, Hashable, Sendable {
    public var rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }

    public static let `default` = TerminalColor(rawValue: -1)
    public static let black = TerminalColor(rawValue: Int16(COLOR_BLACK))
    public static let red = TerminalColor(rawValue: Int16(COLOR_RED))
    public static let green = TerminalColor(rawValue: Int16(COLOR_GREEN))
    public static let yellow = TerminalColor(rawValue: Int16(COLOR_YELLOW))
    public static let blue = TerminalColor(rawValue: Int16(COLOR_BLUE))
    public static let magenta = TerminalColor(rawValue: Int16(COLOR_MAGENTA))
    public static let cyan = TerminalColor(rawValue: Int16(COLOR_CYAN))
    public static let white = TerminalColor(rawValue: Int16(COLOR_WHITE))
}

/// A colour pair number as registered with `init_pair` (0 is the terminal default).
public struct ColorPair: RawRepresentable, Hashable, Sendable {
    public var rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }
    public static let terminalDefault = ColorPair(rawValue: 0)
}

/// A key as `getch`/`get_wch` report it.
public enum Key: Equatable, Sendable {
    case character(Character)
    case up, down, left, right
    case pageUp, pageDown, home, end
    case tab, backTab
    case enter, backspace, delete, escape
    case function(Int)
    /// The terminal changed size (ncurses turns SIGWINCH into this key).
    case resize
    case other(Int32)

    /// Maps a `wget_wch` result: `isKeyCode` is true for KEY_CODE_YES.
    public init(code: UInt32, isKeyCode: Bool) {
        if isKeyCode {
            switch Int32(bitPattern: code) {
            case KEY_UP: self = .up
            case KEY_DOWN: self = .down
            case KEY_LEFT: self = .left
            case KEY_RIGHT: self = .right
            case KEY_PPAGE: self = .pageUp
            case KEY_NPAGE: self = .pageDown
            case KEY_HOME: self = .home
            case KEY_END: self = .end
            case KEY_BTAB: self = .backTab
            case KEY_ENTER: self = .enter
            case KEY_BACKSPACE: self = .backspace
            case KEY_DC: self = .delete
            case KEY_RESIZE: self = .resize
            default:
                let c = Int32(bitPattern: code)
                if c >= rs_key_f(0) && c <= rs_key_f(63) {
                    self = .function(Int(c - rs_key_f(0)))
                } else {
                    self = .other(c)
                }
            }
            return
        }
        switch code {
        case 9: self = .tab
        case 10, 13: self = .enter
        case 27: self = .escape
        case 8, 127: self = .backspace
        default:
            if let scalar = Unicode.Scalar(code) { self = .character(Character(scalar)) } else { self = .other(Int32(bitPattern: code)) }
        }
    }
}

/// An ncurses window (only `stdscr` is used: the screen model does the layout).
public struct Window {
    public let pointer: UnsafeMutablePointer<WINDOW>

    public init(_ pointer: UnsafeMutablePointer<WINDOW>) { self.pointer = pointer }

    public var height: Int { Int(rs_getmaxy(pointer)) }
    public var width: Int { Int(rs_getmaxx(pointer)) }

    /// Writes one character with attributes and colour pair; false when ncurses refused (the
    /// bottom-right cell, which scrolls, returns ERR but is drawn).
    @discardableResult
    public func put(_ scalar: Unicode.Scalar, y: Int, x: Int, attributes: TextAttributes, pair: ColorPair) -> Bool {
        rs_put_wch(pointer, Int32(y), Int32(x), wchar_t(bitPattern: scalar.value), attributes.rawValue, pair.rawValue) == OK
    }

    public func move(y: Int, x: Int) { wmove(pointer, Int32(y), Int32(x)) }
    public func erase() { werase(pointer) }
    public func clear() { wclear(pointer) }
    public func refresh() { wrefresh(pointer) }
    public func noutrefresh() { wnoutrefresh(pointer) }

    /// Non-blocking key read (after `Terminal.setNonBlocking`); nil when no key is waiting.
    public func readKey() -> Key? {
        var ch: wint_t = 0
        let rc = wget_wch(pointer, &ch)
        if rc == ERR { return nil }
        return Key(code: UInt32(ch), isKeyCode: rc == KEY_CODE_YES)
    }
}

/// The terminal in curses mode. Create once; `end()` (idempotent) gives the terminal back.
public final class Terminal {
    public let screen: Window
    /// Colours are used: the terminal has them and NO_COLOR is not set.
    public let colorsEnabled: Bool
    private var ended = false

    /// Enters curses mode: locale, cbreak, no echo, keypad, short Esc delay, hidden cursor.
    /// `useColor: false` (NO_COLOR) keeps to attributes.
    public init(useColor: Bool) {
        setlocale(LC_ALL, "")
        rs_install_crash_handlers()
        guard let std = initscr() else { fatalError("initscr failed: is TERM set?") }
        screen = Window(std)
        cbreak()
        noecho()
        nonl()
        keypad(std, true)
        // Home/End as tmux, screen, rxvt and the Linux console send them, in case TERM names a
        // terminal that sends others (TERM=xterm-256color inside tmux): else "\e[4~" would be
        // read as Esc [ 4 ~ and select queue 4.
        for (sequence, key) in [("\u{1b}[1~", KEY_HOME), ("\u{1b}[4~", KEY_END), ("\u{1b}[7~", KEY_HOME), ("\u{1b}[8~", KEY_END),
                                ("\u{1b}[H", KEY_HOME), ("\u{1b}[F", KEY_END), ("\u{1b}OH", KEY_HOME), ("\u{1b}OF", KEY_END)] {
            _ = define_key(sequence, key)
        }
        set_escdelay(25)
        curs_set(0)
        if useColor && has_colors() {
            start_color()
            use_default_colors()
            colorsEnabled = true
        } else {
            colorsEnabled = false
        }
    }

    deinit { end() }

    /// Leaves curses mode and restores the terminal. Safe to call more than once.
    public func end() {
        guard !ended else { return }
        ended = true
        curs_set(1)
        endwin()
    }

    /// `getch` returns ERR at once instead of waiting.
    public func setNonBlocking(_ on: Bool) { nodelay(screen.pointer, on) }

    /// Registers colour pair `pair` (1 …); returns false when the terminal cannot.
    @discardableResult
    public func definePair(_ pair: ColorPair, foreground: TerminalColor, background: TerminalColor) -> Bool {
        init_pair(pair.rawValue, foreground.rawValue, background.rawValue) == OK
    }

    public var maxColorPairs: Int { Int(rs_color_pairs()) }

    /// The current size (ncurses updates it on KEY_RESIZE).
    public var size: ScreenSize { ScreenSize(width: Int(rs_cols()), height: Int(rs_lines())) }

    /// Pushes all pending window updates to the terminal.
    public func update() { doupdate() }
}
