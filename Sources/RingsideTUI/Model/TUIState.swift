// Everything the screen shows, as a value: the telemetry model, what the host derived from it
// over time, the user's selection, dumps, the event log and the input mode. The renderer is a
// pure function of this; the app mutates it from keys and telemetry.

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

/// A buffer fetched with `dump`, and when.
public struct DumpRecord: Equatable, Sendable {
    public var dump: WireDump
    public var queueName: String
    /// How it was asked for: "next", "last", "desc 17".
    public var selector: String
    /// Host wall-clock seconds (for pcap timestamps).
    public var wallTime: Double
    /// Host wall-clock seconds when the frame arrived in the guest (the dump's stamp through
    /// the hello's clock mapping); nil when the kernel did not know (a buffer not yet filled).
    public var arrivalWallTime: Double? = nil
    /// Whose buffer it was when dumped: a device-owned receive buffer holds stale bytes.
    public var ownership: DumpOwnership = .driver
}

/// Who owned a dumped buffer, as far as the host knows (from the selector and the descriptor's
/// state in the latest snapshot; the dump reply itself does not say).
public enum DumpOwnership: Equatable, Sendable {
    /// The driver's: a used element the device returned, a buffer held back from the device, or
    /// the copy `dump --last` keeps. The bytes are a frame.
    case driver
    /// Given to the device to read (a posted TX buffer): the bytes are what the driver wrote.
    case deviceReads
    /// Given to the device to fill (a posted RX buffer): whatever it holds is old memory, and
    /// the device may overwrite it at any time. Not a frame.
    case deviceWrites
    /// The host could not tell (no descriptor table, or the id is not in it).
    case unknown

    /// Whether the bytes are a frame the driver or the device put there on purpose: decoded as
    /// one and written to pcap.
    public var holdsFrame: Bool { self == .driver || self == .deviceReads }

    /// What the dump pane says about it; nil for the driver's own buffers.
    public var label: String? {
        switch self {
        case .driver: return nil
        case .deviceReads: return "device-owned (posted for the device to read): the bytes the driver wrote"
        case .deviceWrites: return "device-owned: contents are stale (a posted receive buffer the device may overwrite at any time; not decoded, not written to pcap)"
        case .unknown: return "ownership unknown (no descriptor table): contents may be stale; not decoded, not written to pcap"
        }
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
                               time: time, uptime: Double(uptimeNs) / 1e9)
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

    // MARK: Device truth

    /// The device's numbers for the driver queue `name`, and what comparing them with the
    /// driver's says (from `view`).
    public func deviceView(forQueueNamed name: String) -> (view: DeviceQueueView, verdict: TruthVerdict)? {
        guard case .sample(let sample)? = view.device,
              let number = view.deviceQueueNames.first(where: { $0.value == name })?.key,
              let dq = sample.queue(number) else { return nil }
        let tracker = view.deviceTrackers[number] ?? DisagreementTracker()
        return (dq, tracker.verdict)
    }

    /// Records the driver's side of each net queue from the snapshot just applied (only while
    /// the device view is on).
    mutating func noteDriverViews(uptimeNs: UInt64) {
        for name in live.threeWay.keys {
            guard let driver = live.driverView(ofQueueNamed: name, time: now, uptimeNs: uptimeNs) else { continue }
            live.threeWay[name]?.noteDriver(driver)
        }
        guard live.device != nil else { return }
        for (number, name) in live.deviceQueueNames {
            guard let driver = live.driverView(ofQueueNamed: name, time: now, uptimeNs: uptimeNs) else { continue }
            live.deviceTrackers[number, default: DisagreementTracker()].noteDriver(driver)
        }
    }

    /// A sample of the memory view (our kernel's rings read from shared guest RAM, and the
    /// device's view from that view's QMP): fed to each queue's three-way comparison. `names`
    /// maps the sample's queue names to the telemetry's.
    public mutating func applyMemorySample(_ s: GuestSample, names: [String: String]) {
        live.memoryViewError = nil
        for q in s.queues {
            guard let name = names[q.name] else { continue }
            var t = live.threeWay[name] ?? ThreeWayTracker()
            let before = t.pairs.map { $0.verdict }
            if let r = q.ring, r.unreadable == nil, !r.moving {
                let m = DeviceQueueView.memory(queue: 0, availIdx: r.availIdx, usedIdx: r.usedIdx, size: r.addresses.size, time: s.time)
                live.memoryViews[name] = m
                t.noteMemory(m)
            }
            if let v = q.deviceView, v.time != live.memoryDeviceViews[name]?.time {
                let d = DeviceQueueView(queue: 0, lastAvailIdx: v.lastAvailIdx, usedIdx: v.usedIdx, inuse: v.inuse, vringNum: v.addresses.size,
                                        shadowAvailIdx: v.shadowAvailIdx, time: v.time, requestTime: v.requestTime)
                live.memoryDeviceViews[name] = d
                t.noteDevice(d)
            }
            for (pair, after) in zip(t.pairs, before) where pair.verdict != after {
                if case .disagree(let why) = pair.verdict {
                    addLog(.error, "\(name) \(pair.name) disagree: " + why.joined(separator: "; "))
                } else if case .disagree = after, pair.verdict == .agree {
                    addLog(.info, "\(name) \(pair.name) agree again")
                }
            }
            if live.threeWay[name] == nil { addLog(.info, "\(name): memory view on (driver ↔ memory ↔ device)") }
            live.threeWay[name] = t
        }
    }

    /// A consistent snapshot arrived (`z`): applied as the newest sample, then shown frozen, with
    /// each queue compared with the device at one instant (any difference is a disagreement).
    public mutating func applyConsistent(_ c: ConsistentSnapshot) {
        if let error = c.error {
            addLog(.error, "z: no consistent snapshot: \(error)")
            return
        }
        for e in c.events { apply(e) }
        var v = live
        if let d = c.device {
            v.deviceQueueNames = c.deviceNames
            v.device = .sample(d)
            v.deviceTrackers = [:]
            for dq in d.queues {
                guard let name = c.deviceNames[dq.queue],
                      let driver = v.driverView(ofQueueNamed: name, time: d.time, uptimeNs: v.model.uptimeNs) else { continue }
                var t = DisagreementTracker()
                t.noteInstant(driver: driver, device: dq)
                v.deviceTrackers[dq.queue] = t
            }
        }
        frozen = v
        let ms = String(format: "%.1f", c.stoppedSeconds * 1000)
        frozenNote = c.wasRunning ? "guest stopped for \(ms) ms" : "guest was paused already"
        let disagreeing = v.deviceTrackers.values.filter(\.flagged).count
        addLog(.info, "consistent snapshot (\(frozenNote!)): \(v.deviceTrackers.count) queue\(v.deviceTrackers.count == 1 ? "" : "s") compared, "
               + (disagreeing == 0 ? "all agree with the device" : "\(disagreeing) disagree") + " (f: live again)")
    }

    /// Applies the device-truth poller's latest result: compares each new sample with the
    /// driver's snapshots (DisagreementTracker: only snapshots close in time count).
    public mutating func applyDevice(_ state: DeviceTruthState) {
        let before = live.device
        guard state != before else { return }
        live.device = state
        switch state {
        case .starting:
            break
        case .unavailable(let reason):
            if case .unavailable? = before {} else { addLog(.error, "device view unavailable: \(reason)") }
            live.deviceTrackers = [:]
        case .sample(let sample):
            if case .sample? = before {} else { addLog(.info, "device view (QMP) connected") }
            for dq in sample.queues {
                guard let name = live.deviceQueueNames[dq.queue] else { continue }
                var tracker = live.deviceTrackers[dq.queue] ?? DisagreementTracker()
                let was = tracker.flagged
                tracker.noteDevice(dq)
                live.deviceTrackers[dq.queue] = tracker
                if tracker.flagged && !was {
                    addLog(.error, "\(name) ≠ device: " + tracker.reasons.joined(separator: "; "))
                } else if was && tracker.verdict == .agree {
                    addLog(.info, "\(name) agrees with the device again")
                } else if was && !tracker.flagged {
                    addLog(.info, "\(name) no longer contradicts the device (traffic: not comparable at one instant)")
                }
            }
        }
    }

    // MARK: Telemetry

    /// Applies one link event. The hello on connect, and the hello or full tables the model asks
    /// for when it falls out of step, are the connection's business (TelemetryConnection sends
    /// them), so nothing here is sent back.
    public mutating func apply(_ event: LinkEvent) {
        switch event {
        case .connected:
            link = .connected
            addLog(.info, "connected")
            awaiting.removeAll()
        case .disconnected(let reason):
            link = .reconnecting(reason: reason)
            addLog(.error, "disconnected: \(reason)")
            awaiting.removeAll()
            awaitingDumps.removeAll()
            pendingRateHz = nil
        case .decodeError(let message):
            live.decoderErrors += 1
            addLog(.error, "telemetry: \(message)")
        case .message(let message, let seq):
            apply(message, seq: seq)
        case .sentCommand(let command, let seq):
            let label = commandLabel(command)
            noteSent(command, seq: seq, label: label)
            addLog(.command, "→ \(label) (recorded)")
        }
    }

    /// A command in the words of the `:` command line.
    func commandLabel(_ command: WireCommand) -> String {
        switch command {
        case .hello: return "hello"
        case .pause(let q): return "pause \(queueName(q))"
        case .resume(let q): return "resume \(queueName(q))"
        case .step(let q, let n): return "step \(queueName(q)) \(n)"
        case .dump(let q, .next): return "dump \(queueName(q)) next"
        case .dump(let q, .last): return "dump \(queueName(q)) last"
        case .dump(let q, .descriptor(let id)): return "dump \(queueName(q)) desc \(id)"
        case .setSnapshotRate(let hz): return "rate \(hz) Hz"
        case .resetCounters: return "reset"
        case .requestFull: return "full tables"
        case .stats: return "stats"
        case .inject(let q, let fault): return "inject \(queueName(q)) \(fault)"
        case .kick(let q): return "kick \(queueName(q))"
        case .poll(let q): return "poll \(queueName(q))"
        }
    }

    mutating func apply(_ message: WireMessage, seq: UInt32) {
        let hadHello = live.model.hello != nil
        _ = live.model.apply(message, seq: seq)
        switch message {
        case .hello(let h):
            if !hadHello {
                // net0.rx is selected at start.
                selectedQueue = live.model.position(ofQueueNamed: "net0.rx") ?? 0
            }
            live.activity = [:]
            live.kernelClock = KernelClock(hello: h, receivedAt: wallClock())
            addLog(.event, "hello: \(h.kernelVersion), \(h.queues.count) queues")
        case .snapshot(let s):
            live.lastSnapshotAt = now
            live.kernelClock?.observe(uptimeNs: s.uptimeNs, receivedAt: wallClock())
            noteDriverViews(uptimeNs: s.uptimeNs)
            if pendingRateHz == s.rateHz { pendingRateHz = nil }
            let uptime = Double(s.uptimeNs) / 1e9
            for q in s.queues {
                live.activity[q.status.queue, default: QueueActivity()].note(q.status, uptime: uptime, now: now)
            }
            logNotificationChanges()
        case .event(let e):
            logEvent(e)
        case .reply(let r):
            handleReply(r)
        case .command:
            break
        }
        if selectedQueue >= live.model.queues.count { selectedQueue = 0 }
    }

    /// The lost-notification detector's verdicts on this snapshot, with the numbers behind them.
    mutating func logNotificationChanges() {
        for change in live.model.notificationChanges {
            switch change {
            case .raised(let a):
                addLog(.error, "\(queueNameAt(a.queue)) \(a.kind.label) \(a.detail)")
            case .cleared(let a):
                addLog(.event, "\(queueNameAt(a.queue)) \(a.kind.label) cleared after \(formatTenths(a.age)) s: the queue moved")
            }
        }
    }

    func queueNameAt(_ position: Int) -> String {
        position < live.model.queues.count ? live.model.queues[position].info.name : "queue \(position)"
    }

    mutating func logEvent(_ e: WireEvent) {
        switch e.kind {
        case .paused(let q): addLog(.event, "\(queueName(q)) paused")
        case .resumed(let q): addLog(.event, "\(queueName(q)) resumed")
        case .stepped(let q, let n): addLog(.event, "\(queueName(q)) stepped \(n)")
        case .drop(let q, let reason): addLog(.event, "\(queueName(q)) drop: \(reason.name)")
        case .countersReset: addLog(.event, "counters reset")
        case .link(let up):
            live.linkUp = up
            addLog(.event, "link \(up ? "up" : "down")")
        case let .usedBatch(q, first, elements):
            addLog(.event, usedBatchLogText(queue: queueName(q), firstUsedIdx: first, elements: elements))
        case .usedConsumed, .kick, .interrupt:
            break   // many per packet: the counters and rates show them
        }
    }

    /// The app sent `command` as frame `seq`: remember what to call its reply, and for a dump
    /// which buffer was asked for; for a rate, that it is pending.
    public mutating func noteSent(_ command: WireCommand, seq: UInt32, label: String) {
        awaiting[seq] = label
        switch command {
        case .dump(_, let selector): awaitingDumps[seq] = selector
        case .setSnapshotRate(let hz):
            pendingRateHz = hz
            pendingRateSeq = seq
        default: break
        }
    }

    /// Who owned the dumped buffer: `next` picks a used element or a held-back one, `last` is
    /// the kernel's copy; a descriptor by id is whatever the latest table says it is.
    func ownership(of d: WireDump, selector: WireDumpSelector?) -> DumpOwnership {
        switch selector {
        case .next?, .last?: return .driver
        case .descriptor?, nil: break
        }
        guard let p = live.model.position(ofQueue: d.queue) else { return .unknown }
        let q = live.model.queues[p]
        guard !q.isStale, q.descriptors.indices.contains(Int(d.descriptor)) else { return .unknown }
        let desc = q.descriptors[Int(d.descriptor)]
        switch desc.state {
        case .used, .held: return .driver
        case .avail: return desc.flags & 2 != 0 ? .deviceWrites : .deviceReads
        case .free: return .unknown
        }
    }

    mutating func handleReply(_ r: WireReply) {
        let what = awaiting.removeValue(forKey: r.commandSeq)
        let selector = awaitingDumps.removeValue(forKey: r.commandSeq)
        guard let what else { return }   // someone else's command (ringside ctl), or an automatic one
        if r.status.isOK {
            if case .dump(let d) = r.body {
                let name = queueName(d.queue)
                var record = DumpRecord(dump: d, queueName: name, selector: what, wallTime: wallClock())
                record.ownership = ownership(of: d, selector: selector)
                record.arrivalWallTime = live.kernelClock?.wallTime(uptimeNs: d.stampNs)
                dumps.append(record)
                if dumps.count > 256 { dumps.removeFirst() }
                shownDump = dumps.count - 1
                panes.top[.dump] = nil
                addLog(.reply, "\(what): \(d.bytes.count) bytes of \(name) desc \(d.descriptor) @0x\(hexDigits(d.guestAddress, width: 1))"
                       + (record.ownership == .deviceWrites ? " (device-owned: stale)" : record.ownership == .unknown ? " (owner unknown)" : ""))
            } else {
                addLog(.reply, "\(what): ok\(r.message.isEmpty ? "" : " (\(r.message))")")
            }
        } else {
            if r.commandSeq == pendingRateSeq { pendingRateHz = nil }
            addLog(.error, "\(what): " + (r.message.isEmpty ? replyStatusText(r.status) : r.message))
        }
    }
}

/// A failed reply's status in words, for when the kernel sent no message.
func replyStatusText(_ status: WireReplyStatus) -> String {
    switch status {
    case .unknownQueue: return "no such queue"
    case .descriptorOutOfRange: return "descriptor out of range"
    case .notOwned: return "not a buffer this queue can show"
    case .nothingPending: return "nothing pending"
    case .badCommand: return "refused (malformed command)"
    case .unsupported: return "not supported by this kernel"
    default: return "failed (status \(status.rawValue))"
    }
}

extension TUIState {
    /// The dumps `w` writes: network frames (without the virtio-net header) whose bytes are a
    /// frame; and how many dumps were left out because their buffer was the device's to fill or
    /// of unknown owner (stale memory is not a frame).
    public func pcapFrames() -> (frames: [(time: Double, bytes: [UInt8])], skipped: Int) {
        let header = virtioNetHeaderBytes
        let network = dumps.filter { isNetworkQueue($0.queueName) && $0.dump.bytes.count > header }
        let frames = network.filter { $0.ownership.holdsFrame }
        // Each record is stamped with when its frame arrived in the guest (the dump's stamp); a
        // frame whose arrival the kernel did not know gets the time it was dumped.
        return (frames.map { (time: $0.arrivalWallTime ?? $0.wallTime, bytes: Array($0.dump.bytes[header...])) },
                network.count - frames.count)
    }

    /// How many of `pcapFrames()`'s frames carry the dump time, not their arrival.
    public func pcapFramesWithoutArrival() -> Int {
        let header = virtioNetHeaderBytes
        return dumps.filter { isNetworkQueue($0.queueName) && $0.dump.bytes.count > header && $0.ownership.holdsFrame
                              && $0.arrivalWallTime == nil }.count
    }
}
