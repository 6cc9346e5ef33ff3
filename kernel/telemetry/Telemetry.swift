import Arch

/// Delivers (RX) or releases (TX) up to `count` packets on a paused queue and returns how
/// many: stepping moves packets, which only the main loop may do.
typealias TelemetryStepper = (MonitoredQueue, Int) -> Int

/// Services a queue once as if its interrupt had arrived (`poll`) and returns how many used
/// elements it took: servicing moves packets, which only the main loop may do.
typealias TelemetryPoller = (MonitoredQueue) -> Int

/// Reads the kernel's memory for a snapshot (the heap and the network stack's budget; set up
/// in Kernel.swift, so telemetry needs to know neither).
typealias TelemetryMemoryReader = () -> WireMemory

/// The kernel end of the telemetry channel (docs/protocol.md): a hello, periodic snapshots
/// with descriptor deltas, events, and a reply to every command. Frames go out on the
/// virtio console; when the host does not read and every console buffer is in flight, a
/// frame is dropped and counted — never waited for.
final class Telemetry {
    static let defaultRateHz: UInt16 = 10
    /// How long a reply, a hello or a step report waits for a console buffer before it is
    /// dropped and counted (snapshots and other events never wait).
    static let reliableWaitNs: UInt64 = 250_000_000

    let console: VirtioConsoleDriver
    let queues: [MonitoredQueue]
    private(set) var hello: WireHello
    let memory: TelemetryMemoryReader
    /// The devices of the hello, in its order: their status byte goes into every snapshot.
    let transports: [VirtioTransport]
    private var deviceStatus: [UInt8]
    /// The used elements the current step took, in ring order from `stepFirstUsedIdx`.
    private var stepElements: [WireUsedElement] = []
    private var stepFirstUsedIdx: UInt16 = 0
    var encoder = WireFrameEncoder()
    // Commands are small: a tight limit keeps a garbage stream from buffering much.
    private var decoder = WireFrameDecoder(maxFrameBytes: 1024)
    private var tracker: TelemetryDescriptorTracker
    var out: [UInt8] = []
    private(set) var rateHz: UInt16 = Telemetry.defaultRateHz
    private var nextSnapshotNs: UInt64 = 0
    var droppedFrames: UInt64 = 0
    /// Capture mode (TelemetryCapture.swift): its batch is reserved here, at boot.
    let capture: TelemetryCapture
    /// The network link as the driver last read it; sent after every hello (which has no
    /// field for it) and whenever it changes.
    var linkUp = true {
        didSet { if linkUp != oldValue { event(.link(up: linkUp)) } }
    }
    private(set) var badCommandFrames: UInt64 = 0
    /// TEST ONLY (`ringside.test.misreport-used=N` on the kernel command line): the used_idx
    /// reported for the pausable (network) queues is off by N (mod 2^16), so tests can check
    /// that the host flags a driver that disagrees with the device. Never use it otherwise:
    /// the telemetry then lies on purpose.
    var misreportUsed: UInt16 = 0

    init(console: VirtioConsoleDriver, queues: [MonitoredQueue], hello: WireHello, transports: [VirtioTransport],
         memory: @escaping TelemetryMemoryReader) {
        self.console = console
        self.queues = queues
        var hello = hello
        hello.queues = []
        for (position, q) in queues.enumerated() {
            q.wireIndex = UInt8(truncatingIfNeeded: position)
            hello.queues.append(WireQueueInfo(queue: q.wireIndex, name: q.name, size: q.ring.size,
                                             format: q.ring.isPacked ? .packed : .split))
        }
        self.hello = hello
        self.memory = memory
        self.transports = transports
        deviceStatus = [UInt8](repeating: 0, count: transports.count)
        stepElements.reserveCapacity(256)
        capture = TelemetryCapture(queueCount: queues.count, limit: VirtioConsoleDriver.txBufferSize)
        tracker = TelemetryDescriptorTracker(queueSizes: queues.map { Int($0.ring.size) })
        out.reserveCapacity(40 * 1024)
    }

    /// The monitored view of `queue`, if telemetry watches it.
    func monitored(_ queue: DeviceQueue) -> MonitoredQueue? {
        queues.first { $0.queue === queue }
    }

    /// Tells the host a frame was dropped on `queue` (a `drop` event).
    func noteDrop(on queue: DeviceQueue, reason: WireDropReason) {
        guard let q = monitored(queue) else { return }
        event(.drop(queue: q.wireIndex, reason: reason))
    }

    /// The console's own queues count what telemetry lost: host frames that did not decode
    /// (receive) and telemetry frames the kernel could not queue (transmit).
    private func updateConsoleDrops() {
        monitored(console.rx)?.drops = badCommandFrames
        monitored(console.tx)?.drops = droppedFrames
    }

    /// When the next snapshot or capture batch is due (for the idle loop's timer).
    var nextDeadlineNs: UInt64 { min(rateHz == 0 ? UInt64.max : nextSnapshotNs, capture.flushDeadlineNs) }

    // MARK: Sending

    /// Sends `out`. `reliable`: wait for a console buffer (up to `reliableWaitNs`) rather than
    /// drop at once: replies, hellos and step reports, which the host must not miss.
    func send(reliable: Bool = false) {
        if !console.send(out, waitNs: reliable ? Telemetry.reliableWaitNs : 0) {
            droppedFrames &+= 1
            // The host missed this frame; if it was a delta, the next one must be full.
            tracker.requestFull()
        }
        out.removeAll(keepingCapacity: true)
    }

    private func send(_ message: WireMessage, reliable: Bool = false) {
        out.removeAll(keepingCapacity: true)
        do {
            try encoder.encode(message, into: &out)
        } catch {
            droppedFrames &+= 1
            return
        }
        send(reliable: reliable)
    }

    func sendHello() {
        hello.uptimeNs = Clock.nowNs
        readDeviceStatus()
        for i in hello.devices.indices where i < deviceStatus.count { hello.devices[i].status = deviceStatus[i] }
        send(.hello(hello), reliable: true)
        event(.link(up: linkUp))
        tracker.requestFull()
    }

    private func readDeviceStatus() {
        for i in transports.indices { deviceStatus[i] = transports[i].status }
    }

    func event(_ kind: WireEventKind, reliable: Bool = false) {
        send(.event(WireEvent(uptimeNs: Clock.nowNs, kind: kind)), reliable: reliable)
    }

    // MARK: Step reports

    /// Starts collecting the used elements a step takes; the first is at used index `firstUsedIdx`.
    func beginStepReport(firstUsedIdx: UInt16) {
        stepElements.removeAll(keepingCapacity: true)
        stepFirstUsedIdx = firstUsedIdx
    }

    /// One used element the step took, in ring order.
    func noteStepped(_ element: WireUsedElement) {
        stepElements.append(element)
    }

    /// Sends what the step took as `usedBatch` events of at most `WireEvent.maxBatchElements`
    /// elements each, waiting for console buffers rather than dropping them.
    private func sendStepReport(queue: UInt8) {
        for batch in TelemetryCommandRules.stepBatches(count: stepElements.count, firstUsedIdx: stepFirstUsedIdx) {
            event(.usedBatch(queue: queue, firstUsedIdx: batch.firstUsedIdx, elements: Array(stepElements[batch.elements])),
                  reliable: true)
        }
        stepElements.removeAll(keepingCapacity: true)
    }

    func status(of q: MonitoredQueue) -> WireQueueStatus {
        let ring = q.ring
        let positions = ring.positions
        // The test-only misreport shifts a split ring's used.idx, or a packed ring's device
        // position by as many slots (its wrap counter flipping past the end, 2.8.1).
        var usedIdx = positions.used
        if q.pausable && misreportUsed != 0 {
            if ring.isPacked {
                let size = Int(ring.size)
                let offset = Int(positions.used & 0x7FFF) + Int(misreportUsed) % size
                let wrap = (positions.used >> 15) ^ UInt16(offset / size)
                usedIdx = UInt16(offset % size) | (wrap & 1) << 15
            } else {
                usedIdx = positions.used &+ misreportUsed
            }
        }
        return WireQueueStatus(queue: q.wireIndex, availIdx: positions.avail, usedIdx: usedIdx,
                               lastUsedIdx: positions.lastUsed, freeCount: ring.freeCount, pendingUsed: ring.pendingUsed,
                               paused: q.paused, counters: q.counters, faults: q.wireFaults)
    }

    func sendSnapshot(nowNs: UInt64) {
        out.removeAll(keepingCapacity: true)
        readDeviceStatus()
        tracker.beginSnapshot(into: &encoder, uptimeNs: nowNs, rateHz: rateHz, droppedFrames: droppedFrames, memory: memory(),
                              deviceStatus: deviceStatus)
        do {
            for q in queues {
                let ring = q.ring
                let states = ring.states()
                q.readRing()
                try tracker.appendQueue(status(of: q), ring: q.ringView, into: &encoder) { id in
                    let d = ring.monitoredDescriptor(UInt16(truncatingIfNeeded: id))
                    return WireDescriptor(state: Telemetry.wireState(states[id]), addr: d.addr, len: d.len,
                                          flags: d.flags, next: d.next)
                }
            }
            try encoder.finish(into: &out)
        } catch {
            droppedFrames &+= 1
            tracker.requestFull()
            return
        }
        send()
    }

    static func wireState(_ state: VirtqDescriptorState) -> WireDescriptorState {
        switch state {
        case .free: return .free
        case .available: return .avail
        case .used: return .used
        case .held: return .held
        }
    }

    // MARK: The loop's entry point

    /// Reads commands, answers them, and sends a snapshot when one is due.
    func service(nowNs: UInt64, stepper: TelemetryStepper, poller: TelemetryPoller) {
        updateConsoleDrops()
        reportDeviceErrors(nowNs: nowNs)
        console.receive { bytes in decoder.feed(bytes) }
        while let result = decoder.next() {
            switch result {
            case .message(.command(let command), let seq):
                handle(command, seq: seq, stepper: stepper, poller: poller)
            case .message(_, let seq):
                reply(seq, .badCommand, "only commands are accepted by the kernel")
            case .error(let error):
                badCommandFrames &+= 1
                // A frame with a valid CRC still has a seq: answer it, so the host never waits.
                switch error {
                case .malformed(_, let seq, _, _), .unknownMessageType(_, let seq):
                    reply(seq, .badCommand, "malformed command")
                default:
                    break
                }
            }
        }
        if rateHz > 0 && nowNs >= nextSnapshotNs {
            sendSnapshot(nowNs: nowNs)
            if capture.on { sendCaptureCounts(reliable: false) }
            let period = 1_000_000_000 / UInt64(rateHz)
            nextSnapshotNs = nowNs &+ period
        }
        // Captured frames leave in batches, at most `TelemetryCapture.flushAfterNs` after the first.
        if Clock.nowNs >= capture.flushDeadlineNs { flushCapture() }
    }

    /// A device that breaks the ring protocol is reported like any drop: the queue's `drops`
    /// counter (see `MonitoredQueue.counters`), a `drop` event with reason deviceError, and a
    /// log line with the counts by kind at most once a second per queue.
    private func reportDeviceErrors(nowNs: UInt64) {
        for q in queues {
            let c = q.ring.counters
            guard c.deviceErrors != q.reportedDeviceErrors else { continue }
            q.reportedDeviceErrors = c.deviceErrors
            event(.drop(queue: q.wireIndex, reason: .deviceError))
            if let logged = q.deviceErrorsLoggedNs, nowNs &- logged < 1_000_000_000 { continue }
            q.deviceErrorsLoggedNs = nowNs
            log("virtio: \(q.name): device broke the ring protocol: \(c.usedBadID) bad used ids, \(c.usedNotOwned) used elements for chains it did not own, \(c.usedBadLength) used lengths too long, \(c.descriptorsRewritten) descriptors rewritten")
        }
    }

    func reply(_ seq: UInt32, _ status: WireReplyStatus, _ message: String = "") {
        send(.reply(WireReply(commandSeq: seq, status: status, message: message)), reliable: true)
    }

    func reply(_ seq: UInt32, _ refusal: TelemetryRefusal) {
        reply(seq, refusal.status, refusal.message)
    }

    /// The queue a command names by its wire index (`MonitoredQueue.wireIndex`, its position).
    private func queue(_ index: UInt8, seq: UInt32) -> MonitoredQueue? {
        if let refusal = TelemetryCommandRules.checkQueue(index, queueCount: queues.count) {
            reply(seq, refusal)
            return nil
        }
        return queues[Int(index)]
    }

    func handle(_ command: WireCommand, seq: UInt32, stepper: TelemetryStepper, poller: TelemetryPoller) {
        switch command {
        case .hello:
            reply(seq, .ok)
            sendHello()
            sendSnapshot(nowNs: Clock.nowNs)
        case .stats, .requestFull:
            reply(seq, .ok)
            tracker.requestFull()
            sendSnapshot(nowNs: Clock.nowNs)
        case .pause(let index):
            guard let q = queue(index, seq: seq) else { return }
            if let refusal = TelemetryCommandRules.checkPausable(name: q.name, pausable: q.pausable) { return reply(seq, refusal) }
            q.paused = true
            reply(seq, .ok)
            event(.paused(queue: index))
        case .resume(let index):
            guard let q = queue(index, seq: seq) else { return }
            if let refusal = TelemetryCommandRules.checkPausable(name: q.name, pausable: q.pausable) { return reply(seq, refusal) }
            q.paused = false
            reply(seq, .ok)
            event(.resumed(queue: index))
        case .step(let index, let count):
            guard let q = queue(index, seq: seq) else { return }
            if let refusal = TelemetryCommandRules.checkStep(name: q.name, pausable: q.pausable, paused: q.paused, count: count) {
                return reply(seq, refusal)
            }
            stepElements.removeAll(keepingCapacity: true)
            let done = stepper(q, Int(count))
            guard done > 0 else { return reply(seq, .nothingPending, "\(q.name) has nothing pending") }
            // Which used elements went up (RX), then the reply, then the total: none dropped.
            sendStepReport(queue: index)
            reply(seq, .ok, TelemetryCommandRules.stepMessage(done: done, requested: count))
            event(.stepped(queue: index, count: UInt16(done)), reliable: true)
        case .dump(let index, let selector):
            guard let q = queue(index, seq: seq) else { return }
            dump(q, index: index, selector: selector, seq: seq)
        case .setSnapshotRate(let hz):
            if let refusal = TelemetryCommandRules.checkRate(hz) { return reply(seq, refusal) }
            rateHz = hz
            nextSnapshotNs = Clock.nowNs
            reply(seq, .ok)
        case .resetCounters:
            for q in queues { q.resetCounters() }
            reply(seq, .ok)
            event(.countersReset)
        case .inject(let index, let fault):
            guard let q = queue(index, seq: seq) else { return }
            guard q.pausable else { return reply(seq, .unsupported, "\(q.name) carries telemetry: no faults are injected there") }
            let wasStarving = q.queue.faults.starving
            if let refusal = q.queue.faults.apply(fault, receive: q.queue.deviceWritable) {
                switch refusal {
                case .unsupported(let why): return reply(seq, .unsupported, "\(q.name): \(why)")
                case .invalid(let why): return reply(seq, .badCommand, "\(q.name): \(why)")
                }
            }
            if wasStarving && !q.queue.faults.starving {
                // Post every buffer that came back while starving, and tell the device.
                q.queue.refill()
                q.queue.publishAndNotify()
            }
            log("inject: \(q.name) \(fault.text)")
            reply(seq, .ok)
        case .kick(let index):
            guard let q = queue(index, seq: seq) else { return }
            q.queue.kick()
            reply(seq, .ok)
        case .poll(let index):
            guard let q = queue(index, seq: seq) else { return }
            guard q.pausable else { return reply(seq, .unsupported, "\(q.name) is serviced on every pass of the main loop") }
            let taken = poller(q)
            reply(seq, .ok, q.paused ? "\(q.name) is paused: nothing delivered (step delivers)" : "took \(taken) used elements")
        case .capture(let on):
            handleCapture(on: on, seq: seq)
        }
    }
}
