// Where things are (the `i` overlay), what happened to the process the TUI watches over, and
// the HMP answer pane (`:hmp CMD`).

/// The paths and ports of the run the TUI shows; what is not known stays nil and is shown as
/// unknown (e.g. under `ringside attach`, which did not start QEMU).
public struct RunInfo: Equatable, Sendable {
    public var runDirectory: String?
    /// The socket the TUI reads telemetry from (console.sock, or telemetry.sock under `run`).
    public var telemetrySocket: String
    /// Whether `telemetrySocket` is a ringside hub (any number of clients) or QEMU's console
    /// socket (one client: this TUI).
    public var telemetryIsHub: Bool
    /// The QMP socket the TUI holds (device view, `:hmp`).
    public var qmpSocket: String?
    /// A QMP socket left free for the user (`ringside run` only).
    public var userQMPSocket: String?
    /// The guest RAM file the memory view reads the rings from (`run --shared-memory`, `wrap`,
    /// `attach --qmp --memory`).
    public var guestMemory: String?
    /// The QMP socket the memory view asks for ring addresses and device indices, when it is not
    /// `qmpSocket` (`run --shared-memory`).
    public var memoryQMPSocket: String?
    public var serialLog: String?
    public var qemuLog: String?
    public var udpPort: UInt16?
    public var httpPort: UInt16?
    public var qemuPID: Int32?
    /// The recording being replayed (`ringside replay`), or written (`ringside run --record`).
    public var recording: String?

    public init(telemetrySocket: String, telemetryIsHub: Bool) {
        self.telemetrySocket = telemetrySocket
        self.telemetryIsHub = telemetryIsHub
    }

    /// The overlay's lines: (label, value); an empty label starts the paste-ready commands.
    public var lines: [(String, String)] {
        var l: [(String, String)] = []
        if let recording { l.append(("recording", recording)) }
        l.append(("run directory", runDirectory ?? "unknown (attached: QEMU was started elsewhere)"))
        if telemetrySocket.isEmpty {
            l.append(("telemetry", "none (any guest: the rings are read from its memory)"))
        } else {
            l.append(("telemetry", telemetrySocket + (telemetryIsHub ? "  (hub: watch/ctl welcome)" : "  (QEMU's console: one client, this TUI)")))
        }
        l.append(("QMP for you", userQMPSocket ?? "none (QEMU serves one client per QMP socket)"))
        l.append(("QMP (TUI)", (qmpSocket ?? "none") + (qmpSocket != nil ? "  (held by this TUI: use :hmp CMD)" : "")))
        if let guestMemory { l.append(("guest memory", guestMemory + "  (mapped read-only: the rings as the device sees them)")) }
        if let memoryQMPSocket { l.append(("QMP (memory)", memoryQMPSocket + "  (ring addresses, device indices)")) }
        if let serialLog { l.append(("serial log", serialLog)) }
        if let qemuLog { l.append(("QEMU log", qemuLog)) }
        l.append(("UDP echo", udpPort.map { "127.0.0.1:\($0) → guest :7" } ?? "unknown"))
        l.append(("HTTP", httpPort.map { "127.0.0.1:\($0) → guest :80" } ?? "unknown"))
        if let qemuPID { l.append(("QEMU pid", String(qemuPID))) }
        l.append(("", ""))
        for c in pasteLines { l.append(("$", c)) }
        return l
    }

    /// Ready-to-paste shell lines.
    public var pasteLines: [String] {
        var c: [String] = []
        if telemetryIsHub {
            c.append("ringside ctl \(telemetrySocket) stats")
            c.append("ringside watch \(telemetrySocket) --json")
        }
        if let guestMemory, let userQMPSocket {
            c.append("ringside watch --qmp \(userQMPSocket) --memory \(guestMemory) --json")
        }
        if let httpPort { c.append("curl http://127.0.0.1:\(httpPort)/") }
        if let udpPort { c.append("echo hello | nc -u -w1 127.0.0.1 \(udpPort)") }
        if let userQMPSocket { c.append("socat - UNIX-CONNECT:\(userQMPSocket)") }
        return c
    }
}

/// The answer to `:hmp CMD`, shown in place of the dump pane, or over the whole screen when
/// expanded (`e`).
public struct HMPPane: Equatable, Sendable {
    public var command: String
    public var lines: [String]
    public var error: String?
    public var expanded = false
    /// First line shown.
    public var top = 0

    public init(command: String, output: String, error: String?) {
        self.command = command
        var l = output.replacingTabs().split(separator: "\n", omittingEmptySubsequences: false).map { String($0) }
        l = l.map { String($0.unicodeScalars.filter { $0.value >= 0x20 || $0 == "\t" }.map(Character.init)) }
        while l.last?.isEmpty == true { l.removeLast() }
        lines = l
        self.error = error
    }
}

extension String {
    /// Tabs as spaces, CR LF and CR as LF (HMP answers end lines with CR LF, which Swift
    /// counts as one Character, not "\n").
    func replacingTabs() -> String {
        var out = String.UnicodeScalarView()
        var previousCR = false
        for u in unicodeScalars {
            defer { previousCR = u == "\r" }
            switch u {
            case "\t": out.append(contentsOf: "    ".unicodeScalars)
            case "\r": out.append("\n")
            case "\n" where previousCR: continue
            default: out.append(u)
            }
        }
        return String(out)
    }
}
