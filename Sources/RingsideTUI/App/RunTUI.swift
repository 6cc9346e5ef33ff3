// The event loop: poll stdin and the telemetry socket, apply what arrives, redraw at most
// `maxFramesPerSecond` times a second, never block on the socket.

import CNcurses
import Glibc
import RingsideKit
import Wire

/// How the TUI is opened.
public struct TUIOptions: Sendable {
    /// Shown at the left of the header.
    public var title: String = "Ringside"
    /// The accelerator QEMU runs with, for the header ("tcg", "kvm"); empty when unknown.
    public var accel: String = ""
    /// Snapshot rate to ask for once connected (nil: leave the kernel's).
    public var snapshotRate: UInt16?
    public var maxFramesPerSecond: Double = 30
    /// Called after the terminal is restored, when the user quits (or a signal ends the TUI):
    /// `ringside run` stops QEMU here.
    public var onQuit: (@Sendable () -> Void)?
    /// Directory `w` writes pcap files to (created when first needed).
    public var pcapDirectory: String = defaultPcapDirectory()
    /// QEMU's QMP socket: when set, the device's own view of the net queues is polled (4 Hz)
    /// and shown beside the driver's.
    public var qmpSocketPath: String?
    /// Our kernel's RAM as a shared file and a QMP socket for the memory view (`ringside run
    /// --shared-memory`): each queue is shown as the driver, memory and the device see it.
    public var memoryPath: String?
    public var memoryQMPSocketPath: String?
    /// Paths and ports for the `i` overlay and the header (nil: only the sockets given).
    public var runInfo: RunInfo?
    /// Polled every loop turn (cheap): nil while the process the TUI watches over (QEMU under
    /// `ringside run`) runs; once it has ended, a summary line and its last lines of output.
    public var processEnded: (@Sendable () -> [String]?)?
    /// A replay (`ringside replay`, link: ReplayLink): read-only, commands are refused.
    public var replay = false

    public init(title: String = "Ringside", accel: String = "", snapshotRate: UInt16? = nil,
                onQuit: (@Sendable () -> Void)? = nil) {
        self.title = title
        self.accel = accel
        self.snapshotRate = snapshotRate
        self.onQuit = onQuit
    }
}

/// Opens the TUI on the telemetry socket of a Ringside kernel (QEMU's virtio-console socket).
/// Returns the exit status: 0 after `q`, 128 + signal after SIGINT/SIGTERM/SIGHUP, 1 when the
/// terminal cannot be used.
public func runTUI(socketPath: String, options: TUIOptions) -> Int32 {
    runTUI(link: TelemetryPoller(path: socketPath), options: options)
}

/// What the TUI reads from: the kernel's telemetry (`TelemetryPoller`), or any guest's rings
/// turned into the same messages (`GuestPoller`).
public protocol TUILink: AnyObject {
    /// The socket it reads (shown in the run-info overlay).
    var path: String { get }
    /// A descriptor that becomes readable when there is something new (nil: poll with a timeout).
    var pollDescriptor: Int32? { get }
    /// Whatever arrived since the last call, in order; never blocks.
    func service(now: Double) -> [LinkEvent]
    /// Sends a command; returns its seq (the reply quotes it), nil when it cannot be sent.
    func send(_ command: WireCommand) -> UInt32?
    func close()
    /// For a guest Ringside did not build: what the header can say (nil: our kernel).
    var guestFacts: GuestFacts? { get }
    /// The device's view of the queues this link reads itself (a guest's QMP), with each device
    /// queue number's name; nil when the link has none (our kernel: DeviceTruthPoller).
    func deviceTruth() -> (names: [Int: String], state: DeviceTruthState)?
    /// Starts a consistent snapshot (`z`); returns why not, or nil when started.
    func requestConsistentSnapshot() -> String?
    /// The finished consistent snapshot, once.
    func takeConsistentSnapshot() -> ConsistentSnapshot?
}

extension TUILink {
    public var guestFacts: GuestFacts? { nil }
    public func deviceTruth() -> (names: [Int: String], state: DeviceTruthState)? { nil }
    public func requestConsistentSnapshot() -> String? {
        "a consistent snapshot needs QMP and the guest's memory (ringside wrap / attach --qmp --memory)"
    }
    public func takeConsistentSnapshot() -> ConsistentSnapshot? { nil }
}

extension TelemetryPoller: TUILink {}

/// Opens the TUI on any link.
public func runTUI(link: TUILink, options: TUIOptions) -> Int32 {
    guard isatty(0) == 1, isatty(1) == 1 else {
        let message = "ringside: the TUI needs a terminal (stdin and stdout); use `ringside watch --json` in scripts\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        return 1
    }
    // SIGINT/SIGTERM/SIGHUP end the loop cleanly (so the terminal is restored and QEMU stopped);
    // SIGWINCH must get through too, for resizes.
    installStopSignalHandlers(alsoUnblock: [SIGWINCH])
    let useColor = (getenv("NO_COLOR").map { String(cString: $0).isEmpty } ?? true)
    let terminal = Terminal(useColor: useColor)
    terminal.setNonBlocking(true)
    let deviceTruth = options.qmpSocketPath.map { DeviceTruthPoller(socketPath: $0) }
    deviceTruth?.start()
    var memoryView: MemoryViewPoller?
    if let memory = options.memoryPath, let qmp = options.memoryQMPSocketPath {
        memoryView = MemoryViewPoller(qmpPath: qmp, memoryPath: memory)
        memoryView?.start()
    }
    let app = TUIApp(link: link, terminal: terminal, options: options)
    app.deviceTruth = deviceTruth
    app.memoryView = memoryView
    let status = app.run()
    terminal.end()
    link.close()
    memoryView?.stop()
    // Before onQuit: QEMU serves one QMP client, and `ringside run` stops QEMU through QMP.
    deviceTruth?.stop()
    options.onQuit?()
    return status
}

final class TUIApp {
    let link: TUILink
    let terminal: Terminal
    let backend: CursesBackend
    let options: TUIOptions
    var state: TUIState
    var dirty = true
    var lastDraw = 0.0
    var size: ScreenSize
    var deviceTruth: DeviceTruthPoller?
    var memoryView: MemoryViewPoller?
    var memorySampleNumber = -1

    init(link: TUILink, terminal: Terminal, options: TUIOptions) {
        self.link = link
        self.terminal = terminal
        self.options = options
        backend = CursesBackend(terminal: terminal)
        state = TUIState(title: options.title, accel: options.accel)
        state.runInfo = options.runInfo ?? {
            var info = RunInfo(telemetrySocket: link.path, telemetryIsHub: false)
            info.qmpSocket = options.qmpSocketPath
            return info
        }()
        state.pcapDirectory = options.pcapDirectory
        state.startedAt = monotonicNow()
        state.now = state.startedAt
        size = terminal.size
    }

    func run() -> Int32 {
        let frameInterval = 1.0 / max(1, options.maxFramesPerSecond)
        // Age, stuck and reconnect checks move with time: redraw at least this often.
        let idleRedraw = 0.2
        while true {
            let sig = receivedStopSignal.load(ordering: .relaxed)
            if sig != 0 { return 128 + sig }
            let now = monotonicNow()
            state.now = now
            if let replay = link as? ReplayLink {
                if replay.takeReset() {
                    // Played backwards: from a fresh screen, as at the start of the recording.
                    let keep = state
                    state = TUIState(title: options.title, accel: options.accel)
                    state.runInfo = keep.runInfo
                    state.pcapDirectory = keep.pcapDirectory
                    state.startedAt = keep.startedAt
                    state.panes.focus = keep.panes.focus
                    state.panes.expanded = keep.panes.expanded
                }
                // Ages and rates on the screen follow the recording's clock.
                state.now = state.startedAt + replay.positionNs(now: now) / 1e9
            }
            for event in link.service(now: now) {
                dirty = true
                if event == .connected, let hz = options.snapshotRate {
                    perform(.send(.setSnapshotRate(hz: hz), label: "rate \(hz) Hz"))
                }
                state.apply(event)
            }
            if let replay = link as? ReplayLink {
                for note in replay.takeNotes() { state.addLog(.info, note); dirty = true }
                let status = replay.status(now: now)
                if status != state.replay { state.replay = status; dirty = true }
            }
            if let facts = link.guestFacts, facts != state.live.guest {
                state.live.guest = facts
                dirty = true
            }
            if let (names, device) = link.deviceTruth(), device != state.live.device {
                state.live.deviceQueueNames = names
                state.applyDevice(device)
                dirty = true
            }
            if let memoryView {
                let (sample, error) = memoryView.state
                if let sample, sample.number != memorySampleNumber {
                    memorySampleNumber = sample.number
                    state.applyMemorySample(sample, names: MemoryViewPoller.kernelQueueNames)
                    dirty = true
                } else if let error, error != state.live.memoryViewError {
                    state.live.memoryViewError = error
                    state.addLog(.error, "memory view: \(error)")
                    dirty = true
                }
            }
            if let c = link.takeConsistentSnapshot() {
                state.applyConsistent(c)
                dirty = true
            }
            if state.processEnded == nil, let ended = options.processEnded?() {
                state.noteProcessEnded(ended)
                dirty = true
            }
            if let deviceTruth {
                for result in deviceTruth.takeHMPResults() {
                    state.showHMP(result)
                    dirty = true
                }
                let latest = deviceTruth.latest
                if latest != state.live.device {
                    state.applyDevice(latest)
                    dirty = true
                }
            }
            while let key = terminal.screen.readKey() {
                dirty = true
                if key == .resize {
                    size = terminal.size
                    backend.invalidate()
                }
                for effect in state.handle(key) {
                    if effect == .quit { return 0 }
                    perform(effect)
                }
            }
            let sinceDraw = now - lastDraw
            if (dirty && sinceDraw >= frameInterval) || sinceDraw >= idleRedraw {
                draw(now: now)
            }
            // Sleep until input, the next frame or the next idle redraw.
            let untilFrame = dirty ? max(0, frameInterval - (monotonicNow() - lastDraw)) : idleRedraw - (monotonicNow() - lastDraw)
            let timeoutMs = Int32(max(0, min(idleRedraw, untilFrame)) * 1000) + 1
            var fds = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0)]
            if let fd = link.pollDescriptor {
                fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
            }
            _ = poll(&fds, nfds_t(fds.count), timeoutMs)
        }
    }

    func draw(now: Double) {
        if let replay = link as? ReplayLink {
            state.now = state.startedAt + replay.positionNs(now: now) / 1e9
        } else {
            state.now = now
        }
        let layout = Layout.compute(size: size, queueCount: state.view.model.queues.count,
                                    maxQueueSize: Int(state.view.model.queues.map { $0.info.size }.max() ?? 256))
        let viewports = paneViewports(state, size: size)
        state.panes.viewport = viewports
        state.tableViewportRows = viewports[.descriptors]?.height ?? descriptorRowsVisible(paneHeight: layout.descriptors.height)
        state.helpRows = helpBox(state, size: size).rows
        state.followPending()
        backend.draw(render(state, size: size))
        lastDraw = now
        dirty = false
    }

    func perform(_ effect: AppEffect) {
        switch effect {
        case .send(_, let label) where options.replay:
            state.addLog(.error, "\(label): refused: this is a replay of a recording (read-only)")
        case .replay(let control):
            if let replay = link as? ReplayLink {
                state.addLog(.info, replay.control(control, now: monotonicNow()))
            }
        case .send(let command, let label):
            if let seq = link.send(command) {
                state.noteSent(command, seq: seq, label: label)
                state.addLog(.command, "→ \(label)")
            } else {
                state.addLog(.error, "\(label): not connected")
            }
        case .writePcap:
            writePcap()
        case .hmp(let command):
            if let deviceTruth {
                deviceTruth.submitHMP(command)
                state.addLog(.command, "→ hmp \(command)")
            } else {
                state.addLog(.error, "hmp \(command): no QMP socket (attach with --qmp SOCKET)")
            }
        case .consistentSnapshot:
            if let why = link.requestConsistentSnapshot() {
                state.addLog(.error, "z: " + why)
            } else {
                state.addLog(.command, "→ consistent snapshot (QMP stop, read every queue, cont)")
            }
        case .quit:
            break
        }
        dirty = true
    }

    func writePcap() {
        let (file, frames, skipped) = state.pcapngFile()
        let skippedNote = skipped > 0 ? " (left out \(skipped) device-owned or unknown-owner dump\(skipped == 1 ? "" : "s"): not frames)" : ""
        let unknown = state.pcapFramesWithoutArrival()
        guard frames > 0 else {
            state.addLog(.error, "pcap: no network frames dumped yet (d dumps one)" + skippedNote)
            return
        }
        let path = options.pcapDirectory + "/ringside-" + timestampForFileName() + ".pcapng"
        do {
            try makeDirectories(options.pcapDirectory)
            try PcapWriter.write(file, to: path)
            state.addLog(.info, "wrote \(frames) frame\(frames == 1 ? "" : "s") to \(path)" + skippedNote
                         + (unknown > 0 ? " (\(unknown) with no arrival time: stamped when dumped)" : ""))
        } catch {
            state.addLog(.error, "pcap: \(error)")
        }
    }
}

/// Local time as 20240131-142501.
func timestampForFileName() -> String {
    var t = time(nil)
    var tmValue = tm()
    localtime_r(&t, &tmValue)
    var buf = [CChar](repeating: 0, count: 32)
    let n = strftime(&buf, buf.count, "%Y%m%d-%H%M%S", &tmValue)
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Where `w` writes pcap files unless told otherwise: $RINGSIDE_PCAP_DIR, else
/// $XDG_DATA_HOME/ringside/pcap, else ~/.local/share/ringside/pcap (else /tmp/ringside-pcap).
public func defaultPcapDirectory() -> String {
    func env(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        let s = String(cString: v)
        return s.isEmpty ? nil : s
    }
    if let dir = env("RINGSIDE_PCAP_DIR") { return dir }
    if let data = env("XDG_DATA_HOME") { return data + "/ringside/pcap" }
    if let home = env("HOME") { return home + "/.local/share/ringside/pcap" }
    return "/tmp/ringside-pcap"
}

/// `mkdir -p`.
func makeDirectories(_ path: String) throws(RingsideError) {
    var built = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        built += "/" + part
        if mkdir(built, 0o755) != 0 {
            let e = Errno.current
            if e != .fileExists { throw RingsideError("cannot create \(built): \(e)") }
        }
    }
}
