// Every key of the normal mode (and of a replay), written down once: which keys do what, how
// the help overlay lists them and what the status line calls them. Key handling (Actions), the status line
// (StatusLine) and the `?` overlay (HelpOverlay) all read this table.

/// What a key does in the normal mode (overlays and prompts have keys of their own).
enum KeyAction: Equatable, Sendable {
    case cycleQueue(by: Int)
    case selectQueue(Int)
    case cycleFocus(by: Int)
    /// ↑ ↓ PgUp PgDn Home End: the table cursor, or the focused pane's scroll.
    case move(Key)
    case toggleExpand
    case back
    case pauseResume
    case step
    case stepCount
    case dump
    case browseDumps(by: Int)
    case writePcap
    case features
    case freeze
    case consistentSnapshot
    case rate(up: Bool)
    case logFilter
    case commandLine
    case info
    case help
    case quit
    /// `ringside replay`'s controls, and `g`: ask for the time to go to.
    case replay(ReplayControl)
    case seekPrompt
}

/// One line of the help overlay: its keys and what each does, and its hints on the status line.
struct KeyBinding: Sendable {
    /// The keys and the action of each (none for a line that explains a typed command).
    let keys: [(key: Key, action: KeyAction)]
    /// The keys as the help overlay spells them, and what they do.
    let helpKeys: String
    let help: String
    /// The keys and their word on the status line, when it names them.
    let hints: [(keys: String, label: String)]
    /// Keys of `ringside replay`: they work only in a replay, and there before the others.
    let onlyInReplay: Bool

    init(_ keys: [(Key, KeyAction)], help helpKeys: String, _ help: String, hint: (String, String)? = nil,
         hints: [(String, String)] = [], onlyInReplay: Bool = false) {
        self.keys = keys.map { (key: $0.0, action: $0.1) }
        self.helpKeys = helpKeys
        self.help = help
        self.hints = (hint.map { [$0] } ?? hints).map { (keys: $0.0, label: $0.1) }
        self.onlyInReplay = onlyInReplay
    }

    init(_ key: Character, _ action: KeyAction, _ help: String, hint: String? = nil, onlyInReplay: Bool = false) {
        self.init([(.character(key), action)], help: String(key), help, hint: hint.map { (String(key), $0) },
                  onlyInReplay: onlyInReplay)
    }
}

enum KeyMap {
    static let queues = KeyBinding([(.tab, .cycleQueue(by: 1)), (.backTab, .cycleQueue(by: -1))],
                                   help: "Tab / Shift-Tab", "select the next / previous queue", hint: ("Tab", "queue"))
    static let queueNumbers = KeyBinding((1...9).map { (.character(Character(String($0))), .selectQueue($0 - 1)) },
                                         help: "1 … 9", "select queue N")
    static let focus = KeyBinding([(.left, .cycleFocus(by: -1)), (.right, .cycleFocus(by: 1))],
                                  help: "← →", "focus the descriptors, dump or events pane", hint: ("←→", "pane"))
    /// The status line shows this hint while a pane is expanded, saying "cursor" for the table.
    static let move = KeyBinding([Key.up, .down, .pageUp, .pageDown, .home, .end].map { ($0, .move($0)) },
                                 help: "↑ ↓ PgUp PgDn Home End", "move the table cursor / scroll the focused pane",
                                 hint: ("↑↓ PgUp PgDn Home End", "scroll"))
    static let expand = KeyBinding("e", .toggleExpand, "expand the focused pane to the full screen", hint: "expand")
    static let back = KeyBinding([(.escape, .back)], help: "Esc", "close overlay or expanded pane; drop the cursor",
                                 hint: ("Esc/e", "back"))
    static let pause = KeyBinding([(.character(" "), .pauseResume)], help: "Space", "pause / resume the selected queue",
                                  hint: ("Space", "pause"))
    static let step = KeyBinding("s", .step, "step one packet (queue paused)", hint: "step")
    static let stepCount = KeyBinding("S", .stepCount, "step N packets (asks for N)", hint: "step N")
    static let dump = KeyBinding("d", .dump, "dump cursor's descriptor, else next pending", hint: "dump")
    static let dumps = KeyBinding([(.character("["), .browseDumps(by: -1)), (.character("]"), .browseDumps(by: 1))],
                                  help: "[ ]", "previous / next dump", hint: ("[ ]", "dumps"))
    static let pcap = KeyBinding("w", .writePcap, "write dumped frames as pcapng (see below)", hint: "pcap")
    static let features = KeyBinding("F", .features, "features offered/accepted, device status")
    static let freeze = KeyBinding("f", .freeze, "freeze the display (the guest runs on)", hint: "freeze")
    static let consistentSnapshot = KeyBinding("z", .consistentSnapshot,
                                               "consistent snapshot of a guest: QMP stop, read all, cont; shown frozen")
    static let rate = KeyBinding([(.character("+"), .rate(up: true)), (.character("="), .rate(up: true)),
                                  (.character("-"), .rate(up: false))],
                                 help: "+ / -", "raise / lower the snapshot rate", hint: ("+/-", "rate"))
    static let logFilter = KeyBinding("/", .logFilter, "filter the event log (empty: all)", hint: "filter")
    static let commandLine = KeyBinding(":", .commandLine, "command line, as ringside ctl (see guide)", hint: "cmd")
    static let info = KeyBinding("i", .info, "where things are: sockets, ports, commands", hint: "info")
    static let help = KeyBinding("?", .help, "this help", hint: "help")
    static let quit = KeyBinding([(.character("q"), .quit), (.character("Q"), .quit)], help: "q", "quit", hint: ("q", "quit"))

    static let replayPlay = KeyBinding([(.character(" "), .replay(.togglePause)), (.character("p"), .replay(.togglePause))],
                                       help: "p / Space", "replay: play / pause", hint: ("p", "play/pause"), onlyInReplay: true)
    static let replaySpeed = KeyBinding([(.character(">"), .replay(.faster)), (.character("."), .replay(.faster)),
                                         (.character("<"), .replay(.slower)), (.character(","), .replay(.slower))],
                                        help: "< >", "replay: slower / faster (¼× to 16×)", hint: ("< >", "speed"), onlyInReplay: true)
    static let replayNext = KeyBinding("n", .replay(.nextEvent), "replay: go to the next event, reply or command",
                                       hint: "next event", onlyInReplay: true)
    static let replaySeek = KeyBinding([(.character("g"), .seekPrompt), (.character("0"), .replay(.seek(0)))],
                                       help: "g / 0", "replay: go to a time (seconds) / the start",
                                       hints: [("g", "go to"), ("0", "start")], onlyInReplay: true)

    /// Every line of the help overlay, in its order; the `:` lines explain typed commands.
    static let all: [KeyBinding] = [
        queues, queueNumbers, focus, move, expand, back, pause, step, stepCount, dump, dumps, pcap, features, freeze,
        consistentSnapshot, rate, logFilter, commandLine, info,
        KeyBinding([], help: ":hmp CMD", "run a QEMU monitor command (e expands)"),
        KeyBinding([], help: ":inject Q F", "fault: drop|corrupt|nokick N, starve, unstarve, noirq, clear"),
        KeyBinding([], help: ":kick Q :poll Q", "notify the device now / service the queue as if interrupted"),
        replayPlay, replaySpeed, replayNext, replaySeek,
        help, quit,
    ]

    /// The status line's hints, most important first (cut at the right edge).
    static let statusLine: [KeyBinding] = [
        help, queues, pause, step, stepCount, dump, focus, expand, pcap, freeze, rate, logFilter, commandLine, info, quit,
    ]

    /// The status line's hints in a replay (`ringside replay`).
    static let replayStatusLine: [KeyBinding] = [
        help, replayPlay, replaySpeed, replayNext, replaySeek, queues, focus, expand, freeze, logFilter, quit,
    ]

    /// The status line's hints while a pane is expanded.
    static let expandedStatusLine: [KeyBinding] = [help, move, focus, back, dump, dumps, quit]

    /// What `key` does in the normal mode, if anything; in a replay its keys come first.
    static func action(for key: Key, replaying: Bool) -> KeyAction? {
        let bindings = replaying ? all.filter(\.onlyInReplay) + all.filter { !$0.onlyInReplay } : all.filter { !$0.onlyInReplay }
        for binding in bindings {
            if let found = binding.keys.first(where: { $0.key == key }) { return found.action }
        }
        return nil
    }
}
