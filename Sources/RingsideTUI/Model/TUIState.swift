// Everything the screen shows, as a value: the telemetry model, what the host derived from it
// over time, the user's selection, dumps, the event log and the input mode. The renderer is a
// pure function of this; the app mutates it from keys (App/Actions), telemetry
// (TUIState+Telemetry) and the device's view (TUIState+DeviceTruth). Dumps: DumpRecord.

import RingsideKit
import Wire

/// One line of the event log.
public struct LogEntry: Equatable, Sendable {
    public enum Kind: Equatable, Sendable { case info, command, reply, event, error }
    /// Host seconds since the TUI started.
    public var time: Double
    public var kind: Kind
    public var text: String
    /// Identical consecutive lines are counted rather than repeated.
    public var repeats: Int = 1

    public init(time: Double, kind: Kind, text: String) {
        self.time = time
        self.kind = kind
        self.text = text
    }
}

/// What keys currently do.
public enum InputMode: Equatable, Sendable {
    case normal
    case help
    /// `i`: where things are (run directory, sockets, ports, commands to paste).
    case info
    /// `F`: the features and device status panel.
    case features
    /// A one-line prompt on the status line.
    case prompt(PromptKind, text: String)
}

public enum PromptKind: Equatable, Sendable {
    /// `S`: how many packets to step.
    case stepCount
    /// `/`: event log filter.
    case logFilter
    /// `:`: a `ringside ctl` command.
    case command
    /// `g` in a replay: the time to go to.
    case seekTime

    var label: String {
        switch self {
        case .stepCount: return "step how many? "
        case .logFilter: return "/"
        case .command: return ":"
        case .seekTime: return "go to (seconds): "
        }
    }
}

/// The telemetry-derived part of the state: what `f` freezes.
public struct LiveView: Equatable, Sendable {
    public var model = TelemetryModel()
    public var activity: [UInt8: QueueActivity] = [:]
    /// Host time of the last snapshot.
    public var lastSnapshotAt: Double?
    public var decoderErrors: UInt64 = 0
    /// From the latest `link` event (nil: none seen; the kernel announces changes only).
    public var linkUp: Bool?
    /// QEMU's own view of the net queues (QMP); nil when the TUI has no QMP socket.
    public var device: DeviceTruthState?
    /// Per device queue number (0 = net0.rx, 1 = net0.tx): whether the two views disagree.
    public var deviceTrackers: [Int: DisagreementTracker] = [:]
    /// Kernel uptime → host wall clock, from the latest hello.
    public var kernelClock: KernelClock?
    /// Which driver queue each device queue number of `device` is: our kernel's net0 (the
    /// default), or every queue of a guest Ringside did not build (GuestPoller numbers them as
    /// its hello does).
    public var deviceQueueNames: [Int: String] = RingsideTUI.deviceQueueNames
    /// Set for a guest Ringside did not build: what the header can say about it.
    public var guest: GuestFacts?
    /// Our kernel with its RAM shared (`ringside run --shared-memory`): per telemetry queue name,
    /// the latest read of its rings in memory, the device's view from the memory view's QMP, and
    /// the three-way comparison (driver ↔ memory ↔ device). Empty without the memory view.
    public var memoryViews: [String: DeviceQueueView] = [:]
    public var memoryDeviceViews: [String: DeviceQueueView] = [:]
    public var threeWay: [String: ThreeWayTracker] = [:]
    /// Why the memory view has no sample (nil: fine, or not asked for).
    public var memoryViewError: String?

    public init() {}
}

/// What is known about a guest Ringside did not build, beyond its rings: the header says
/// "n/a" for the rest rather than show a made-up value.
public struct GuestFacts: Equatable, Sendable {
    /// The first virtio-net device's MAC address from QMP (QOM `mac`); nil when QEMU did not say.
    public var mac: String?

    public init(mac: String?) { self.mac = mac }
}

/// A consistent snapshot of a guest (`z`): read while QEMU had the guest stopped.
public struct ConsistentSnapshot: Equatable, Sendable {
    /// The hello (when the queues changed) and snapshot messages of the sample.
    public var events: [LinkEvent]
    /// The device's view of every queue (numbers → names), read while stopped.
    public var deviceNames: [Int: String]
    public var device: DeviceTruthSample?
    /// How long the guest was stopped, seconds (0 when it was paused already).
    public var stoppedSeconds: Double
    public var wasRunning: Bool
    /// Why there is no snapshot.
    public var error: String?

    public init(events: [LinkEvent], deviceNames: [Int: String], device: DeviceTruthSample?, stoppedSeconds: Double,
                wasRunning: Bool, error: String? = nil) {
        self.events = events
        self.deviceNames = deviceNames
        self.device = device
        self.stoppedSeconds = stoppedSeconds
        self.wasRunning = wasRunning
        self.error = error
    }
}

extension LiveView {
    /// The driver's side of queue `name` for the device comparison, from the model. For a guest
    /// Ringside did not build the descriptor count is left out (a buffer may be a chain).
    func driverView(ofQueueNamed name: String, time: Double, uptimeNs: UInt64) -> DriverQueueView? {
        guard let p = model.position(ofQueueNamed: name), let status = model.queues[p].status else { return nil }
        let q = model.queues[p]
        return DriverQueueView(availIdx: status.availIdx, usedIdx: status.usedIdx, size: Int(q.info.size),
                               availDescriptors: guest != nil || q.isStale || q.descriptors.isEmpty ? nil : q.count(of: .avail),
                               time: time, uptime: Double(uptimeNs) / 1e9, format: q.info.format)
    }
}

/// The driver queue each virtio-net device queue is (QEMU's queue numbers).
public let deviceQueueNames: [Int: String] = [0: "net0.rx", 1: "net0.tx"]

public struct TUIState: Equatable, Sendable {
    public var title: String
    public var accel: String
    public var link: LinkState = .connecting
    public var live = LiveView()
    /// Playback state when the TUI shows a recording (`ringside replay`): the header says so
    /// and the replay keys apply; nil live.
    public var replay: ReplayStatus?
    /// Set while frozen (`f`): the view drawn instead of `live`.
    public var frozen: LiveView?
    /// What the frozen view is, when it is more than a copy of the screen (`z`: "guest
    /// stopped for 12 ms").
    public var frozenNote: String?
    /// Host time now (monotonic seconds), set by the app before each render.
    public var now: Double = 0
    /// Host time the TUI started.
    public var startedAt: Double = 0

    /// Position in `view.model.queues` of the selected queue.
    public var selectedQueue = 0
    /// Descriptor id under the table cursor; nil until the user moves in the table (then `d`
    /// dumps that descriptor instead of the next pending frame).
    public var cursor: Int?
    /// First descriptor row shown in the table.
    public var tableTop = 0

    public var dumps: [DumpRecord] = []
    /// Index in `dumps` shown in the dump pane.
    public var shownDump: Int?
    public var log: [LogEntry] = []
    public var logFilter = ""
    public var mode: InputMode = .normal
    /// Commands sent, by frame seq, awaiting their reply: what to call them in the log.
    public var awaiting: [UInt32: String] = [:]
    public static let logLimit = 500
    /// Paths and ports for the `i` overlay and the header.
    public var runInfo: RunInfo?
    /// Set when the process the TUI watches over (QEMU under `ringside run`) has ended: a
    /// summary line, then its own last lines of output.
    public var processEnded: [String]?
    /// The latest `:hmp` answer (nil: the pane is closed).
    public var hmp: HMPPane?
    /// Descriptor rows the last layout showed (PgUp/PgDn move by this).
    var _tableRows = 8
    /// Dump commands awaiting their reply, by frame seq: which buffer was asked for.
    var awaitingDumps: [UInt32: WireDumpSelector] = [:]
    /// The snapshot rate last asked for and not yet seen in a snapshot (`+`/`-` step from it).
    public var pendingRateHz: UInt16?
    var pendingRateSeq: UInt32?
    /// Panes: focus, expansion, scroll positions (PaneState.swift).
    public var panes = PaneState()
    /// First line of the help overlay shown, and its rows when last drawn.
    public var helpTop = 0
    public var helpRows = 18
    /// Where `w` writes pcap files (shown in help).
    public var pcapDirectory = ""

    public init(title: String = "Ringside", accel: String = "") {
        self.title = title
        self.accel = accel
    }

    /// What the screen shows: the frozen copy while frozen.
    public var view: LiveView { frozen ?? live }

    public var selectedQueueModel: TelemetryQueueModel? {
        let qs = view.model.queues
        return qs.indices.contains(selectedQueue) ? qs[selectedQueue] : nil
    }

    /// virtio-net header length: 12 with VIRTIO_F_VERSION_1 (bit 32) or MRG_RXBUF (bit 15).
    public var virtioNetHeaderBytes: Int {
        guard let net = live.model.hello?.devices.first(where: { $0.deviceType == 1 }) else { return 12 }
        return (net.features >> 32) & 1 == 1 || (net.features >> 15) & 1 == 1 ? 12 : 10
    }

    /// Whether `queue` (a hello name) belongs to the network device: dumps of it carry a
    /// virtio-net header and go to pcap.
    public func isNetworkQueue(_ name: String) -> Bool {
        guard let device = name.split(separator: ".").first,
              let info = live.model.hello?.devices.first(where: { $0.name == device }) else {
            return name.hasPrefix("net")
        }
        return info.deviceType == 1
    }

    // MARK: Log

    public mutating func addLog(_ kind: LogEntry.Kind, _ text: String) {
        let t = now - startedAt
        if var last = log.last, last.text == text, last.kind == kind {
            last.repeats += 1
            last.time = t
            log[log.count - 1] = last
            return
        }
        log.append(LogEntry(time: t, kind: kind, text: text))
        if log.count > Self.logLimit { log.removeFirst(log.count - Self.logLimit) }
    }

    public var filteredLog: [LogEntry] {
        guard !logFilter.isEmpty else { return log }
        let needle = logFilter.lowercased()
        return log.filter { $0.text.lowercased().contains(needle) }
    }

    public func queueName(_ index: UInt8) -> String {
        if let p = live.model.position(ofQueue: index) { return live.model.queues[p].info.name }
        return "queue \(index)"
    }

    /// QEMU (or whatever `ringside run` started) has ended: say so everywhere it matters.
    public mutating func noteProcessEnded(_ lines: [String]) {
        guard processEnded == nil else { return }
        processEnded = lines
        for line in lines { addLog(.error, line) }
    }

    /// An `:hmp` answer arrived.
    public mutating func showHMP(_ result: HMPResult) {
        hmp = HMPPane(command: result.command, output: result.output, error: result.error)
        panes.focus = .dump  // the answer stands in the dump pane: e and Esc act on it
        if let error = result.error {
            addLog(.error, "hmp \(result.command): \(error)")
        } else {
            let n = hmp?.lines.count ?? 0
            addLog(.reply, "hmp \(result.command): \(n) line\(n == 1 ? "" : "s") (e expands, Esc closes)")
        }
    }
}
