// Device truth: QEMU's own view of the virtio-net queues (QMP `x-query-virtio-queue-status`),
// polled on a thread of its own so a slow or absent QMP never stalls the caller, and the rule
// that compares it with the driver's view (the kernel's telemetry).
//
// What the QMP fields mean on QEMU 7.2 (checked against the kernel in TelemetryTests'
// device-truth test): `last-avail-idx` counts the buffers the device has taken from the avail
// ring, `used-idx` the ones it has put in the used ring, `inuse` the ones taken and not yet
// returned, `vring-num` the queue size. `shadow-avail-idx` is QEMU's last read of the guest's
// avail->idx and can lag the guest, so it is shown but never compared.

import Foundation

/// The device's view of one queue, as QMP reported it.
public struct DeviceQueueView: Equatable, Sendable {
    /// The device's queue number (virtio-net: 0 = rx, 1 = tx).
    public var queue: Int
    public var lastAvailIdx: UInt16
    public var usedIdx: UInt16
    public var inuse: Int
    public var vringNum: Int
    public var shadowAvailIdx: UInt16
    /// Monotonic seconds (CLOCK_MONOTONIC) when QEMU's answer was in.
    public var time: Double
    /// Monotonic seconds when the query was sent: QEMU read these values between
    /// `requestTime` and `time`.
    public var requestTime: Double

    public init(queue: Int, lastAvailIdx: UInt16, usedIdx: UInt16, inuse: Int, vringNum: Int, shadowAvailIdx: UInt16,
                time: Double = 0, requestTime: Double? = nil) {
        self.time = time
        self.requestTime = requestTime ?? time
        self.queue = queue
        self.lastAvailIdx = lastAvailIdx
        self.usedIdx = usedIdx
        self.inuse = inuse
        self.vringNum = vringNum
        self.shadowAvailIdx = shadowAvailIdx
    }

    /// Parses a `x-query-virtio-queue-status` reply.
    public init?(queue: Int, qmp reply: [String: Any], time: Double = monotonicSeconds(), requestTime: Double? = nil) {
        func int(_ key: String) -> Int? { (reply[key] as? NSNumber)?.intValue }
        guard let lastAvail = int("last-avail-idx"), let used = int("used-idx"),
              let inuse = int("inuse"), let num = int("vring-num") else { return nil }
        self.init(queue: queue, lastAvailIdx: UInt16(truncatingIfNeeded: lastAvail), usedIdx: UInt16(truncatingIfNeeded: used),
                  inuse: inuse, vringNum: num, shadowAvailIdx: UInt16(truncatingIfNeeded: int("shadow-avail-idx") ?? lastAvail),
                  time: time, requestTime: requestTime)
    }
}

/// One poll of every queue.
public struct DeviceTruthSample: Equatable, Sendable {
    /// Monotonic seconds (CLOCK_MONOTONIC) when the answers were in.
    public var time: Double
    /// Counts up by one per successful poll.
    public var number: Int
    public var queues: [DeviceQueueView]

    public init(time: Double, number: Int, queues: [DeviceQueueView]) {
        self.time = time
        self.number = number
        self.queues = queues
    }

    public func queue(_ q: Int) -> DeviceQueueView? { queues.first { $0.queue == q } }
}

/// The answer to one HMP command (`human-monitor-command`).
public struct HMPResult: Equatable, Sendable {
    public var command: String
    /// QEMU's text (may be empty: many HMP commands print nothing on success).
    public var output: String
    /// Why there is no answer (no QMP, QEMU refused the command line...).
    public var error: String?

    public init(command: String, output: String, error: String?) {
        self.command = command
        self.output = output
        self.error = error
    }
}

/// What the poller has to say right now.
public enum DeviceTruthState: Equatable, Sendable {
    /// Not polled yet.
    case starting
    /// QMP is absent or failing; the reason. (A previous sample is no longer trusted.)
    case unavailable(String)
    case sample(DeviceTruthSample)
}

/// Polls QMP `x-query-virtio-queue-status` for a few queues of one device, at most every
/// `interval` seconds, on its own thread. `latest` never blocks for long (a lock around a value).
///
/// QEMU's QMP socket serves one client at a time: while someone else holds it, connecting
/// succeeds but no greeting comes, and the poller reports "unavailable" and retries.
public final class DeviceTruthPoller: @unchecked Sendable {
    public static let netBackendPath = "/machine/peripheral/net0/virtio-backend"

    public let socketPath: String
    public let devicePath: String
    public let queues: [Int]
    public let interval: Double
    private let lock = NSLock()
    private var state: DeviceTruthState = .starting
    private var stopping = false
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)
    private var hmpRequests: [String] = []
    private var hmpResults: [HMPResult] = []

    /// `interval` is clamped to at least 0.25 s (4 Hz: two queries per poll, about 8 queries/s;
    /// QMP polling at 100 queries/s costs the guest 2-3% of its echo rate, so this is well under 1%).
    /// Four samples a second let a persistent disagreement be flagged within a second.
    public init(socketPath: String, devicePath: String = DeviceTruthPoller.netBackendPath,
                queues: [Int] = [0, 1], interval: Double = 0.25) {
        self.socketPath = socketPath
        self.devicePath = devicePath
        self.queues = queues
        self.interval = max(0.25, interval)
    }

    deinit { stop() }

    /// The latest result.
    public var latest: DeviceTruthState {
        lock.lock(); defer { lock.unlock() }
        return state
    }

    /// Queues an HMP command (`info pci`), run through QMP `human-monitor-command` on this
    /// poller's connection (QEMU serves one client per QMP socket, and this poller holds it).
    /// Its answer comes back through `takeHMPResults`. At most 16 wait; more are refused at once.
    public func submitHMP(_ command: String) {
        lock.lock(); defer { lock.unlock() }
        if hmpRequests.count >= 16 {
            hmpResults.append(HMPResult(command: command, output: "", error: "too many HMP commands waiting"))
            return
        }
        hmpRequests.append(command)
    }

    /// HMP answers that came in since the last call, oldest first.
    public func takeHMPResults() -> [HMPResult] {
        lock.lock(); defer { lock.unlock() }
        let r = hmpResults
        hmpResults.removeAll()
        return r
    }

    private func nextHMPRequest() -> String? {
        lock.lock(); defer { lock.unlock() }
        return hmpRequests.isEmpty ? nil : hmpRequests.removeFirst()
    }

    private func deliver(_ r: HMPResult) {
        lock.lock(); hmpResults.append(r); lock.unlock()
    }

    public func start() {
        lock.lock()
        guard thread == nil else { lock.unlock(); return }
        let t = Thread { [self] in self.loop() }
        t.name = "ringside-device-truth"
        thread = t
        lock.unlock()
        t.start()
    }

    /// Stops the thread and closes the QMP connection (waits at most about 2 s).
    public func stop() {
        lock.lock()
        let running = thread != nil && !stopping
        stopping = true
        lock.unlock()
        if running { _ = finished.wait(timeout: .now() + 2.5) }
    }

    private var shouldStop: Bool {
        lock.lock(); defer { lock.unlock() }
        return stopping
    }

    private func publish(_ s: DeviceTruthState) {
        lock.lock(); state = s; lock.unlock()
    }

    /// Sleeps up to `seconds`, waking early when stopped (or when an HMP command waits).
    private func nap(_ seconds: Double, wakeForHMP: Bool = false) {
        let until = monotonicSeconds() + seconds
        while !shouldStop {
            if wakeForHMP {
                lock.lock(); let waiting = !hmpRequests.isEmpty; lock.unlock()
                if waiting { return }
            }
            let left = until - monotonicSeconds()
            if left <= 0 { return }
            usleep(UInt32(min(left, 0.05) * 1e6))
        }
    }

    private func loop() {
        var client: QMPClient?
        var number = 0
        while !shouldStop {
            let started = monotonicSeconds()
            while let command = nextHMPRequest() {
                do {
                    if client == nil { client = try QMPClient(path: socketPath, timeout: 0.5) }
                    let out = try client!.execute("human-monitor-command", arguments: ["command-line": command], timeout: 5)
                    deliver(HMPResult(command: command, output: out as? String ?? "\(out)", error: nil))
                } catch {
                    client?.close()
                    client = nil
                    deliver(HMPResult(command: command, output: "", error: "\(error)"))
                }
            }
            do {
                if client == nil { client = try QMPClient(path: socketPath, timeout: 0.5) }
                var views: [DeviceQueueView] = []
                for q in queues {
                    let sent = monotonicSeconds()
                    let reply = try client!.execute("x-query-virtio-queue-status",
                                                    arguments: ["path": devicePath, "queue": q], timeout: 1)
                    guard let obj = reply as? [String: Any], let view = DeviceQueueView(queue: q, qmp: obj, requestTime: sent) else {
                        throw RingsideError("unexpected x-query-virtio-queue-status reply for queue \(q)")
                    }
                    views.append(view)
                }
                number += 1
                publish(.sample(DeviceTruthSample(time: monotonicSeconds(), number: number, queues: views)))
            } catch {
                var reason = "\(error)"
                if reason.contains("is not a VirtIODevice") || reason.contains("not found") {
                    // Say what QEMU does have, while the connection is still up.
                    let devices = ((try? client?.execute("x-query-virtio", timeout: 1)) as? [[String: Any]] ?? [])
                        .compactMap { d -> (name: String, path: String)? in
                            guard let name = d["name"] as? String, let path = d["path"] as? String else { return nil }
                            return (name, path)
                        }
                    reason = missingDeviceMessage(devicePath: devicePath, virtioDevices: devices)
                }
                client?.close()
                client = nil
                publish(.unavailable(reason))
            }
            nap(interval - (monotonicSeconds() - started), wakeForHMP: true)
        }
        client?.close()
        finished.signal()
    }
}

/// Why the device view is unavailable when QEMU has no virtio device at `devicePath`: the
/// net device needs `id=net0` on its `-device`, and where QEMU's virtio devices are instead.
public func missingDeviceMessage(devicePath: String, virtioDevices: [(name: String, path: String)]) -> String {
    var text = "QEMU has no virtio device at \(devicePath)"
    if devicePath == DeviceTruthPoller.netBackendPath {
        text += ": add id=net0 to the virtio-net device (-device virtio-net-pci,netdev=…,id=net0; ringside qemu-args prints a complete line)"
    }
    let nets = virtioDevices.filter { $0.name == "virtio-net" }
    if !nets.isEmpty {
        text += "; QEMU's virtio-net is at " + nets.map(\.path).joined(separator: ", ")
    }
    return text
}

// MARK: - Comparison

/// `a − b` in 16-bit ring-index arithmetic, as a signed distance in −32768…32767: how far `a` is
/// ahead of `b` (negative: behind). Meaningful only when the true distance is under 32768,
/// which is why only samples close in time are compared.
@inline(__always)
public func indexDistance(_ a: UInt16, _ b: UInt16) -> Int { Int(Int16(bitPattern: a &- b)) }

/// The driver's view of one queue, from the kernel's telemetry.
public struct DriverQueueView: Equatable, Sendable {
    public var availIdx: UInt16
    public var usedIdx: UInt16
    public var size: Int
    /// Descriptors the driver's table shows as given to the device (state avail), when the table
    /// is known. With one descriptor per buffer (Ringside's virtio-net) this counts buffers.
    public var availDescriptors: Int?
    /// Monotonic seconds when the snapshot reached the host (the kernel took it no later).
    public var time: Double
    /// The kernel's uptime in the snapshot, in seconds (nil: unknown). Used to spot snapshots
    /// that arrived late (queued somewhere), whose arrival time says little about when they
    /// were taken.
    public var uptime: Double?

    public init(availIdx: UInt16, usedIdx: UInt16, size: Int, availDescriptors: Int?, time: Double, uptime: Double? = nil) {
        self.availIdx = availIdx
        self.usedIdx = usedIdx
        self.size = size
        self.availDescriptors = availDescriptors
        self.time = time
        self.uptime = uptime
    }
}

/// How one driver sample and one device sample of a queue relate, as if taken at one instant.
public enum QueueComparison: Equatable, Sendable {
    case agree
    /// Different; at one instant that would be a disagreement, but two samples taken at
    /// different instants of a queue that moves differ all the time.
    case differs([String])
    /// Cannot be true whatever the timing (sizes, not indices).
    case impossible([String])

    public var reasons: [String] {
        switch self {
        case .agree: return []
        case .differs(let r), .impossible(let r): return r
        }
    }
}

/// Compares one driver sample with one device sample as if both were taken at the same instant
/// (pure). Indices are compared in 16-bit arithmetic.
///
/// - used: the driver's used_idx (read from the used ring, which the device writes) must equal
///   the device's used-idx.
/// - avail: the driver's avail_idx must equal the device's last-avail-idx plus the buffers the
///   device has not fetched yet. The driver counts as "avail" every buffer it gave and did not get
///   back; the device holds `inuse` of those, so the unfetched ones are availDescriptors − inuse
///   (without a descriptor table: avail_idx − used_idx − inuse).
/// - impossible, whatever the timing: vring-num ≠ the driver's queue size; inuse > size. Index
///   differences are never "impossible" here: samples taken at different instants differ by
///   as much as traffic makes them (`DisagreementTracker` deals with time).
public func compareQueue(driver: DriverQueueView, device: DeviceQueueView) -> QueueComparison {
    var impossible: [String] = []
    var differs: [String] = []
    if device.vringNum != driver.size {
        impossible.append("size \(driver.size) ≠ device vring-num \(device.vringNum)")
    }
    if device.inuse > driver.size || device.inuse < 0 {
        impossible.append("device inuse \(device.inuse) > size \(driver.size)")
    }
    if driver.usedIdx != device.usedIdx {
        differs.append("used_idx \(driver.usedIdx) ≠ device used-idx \(device.usedIdx)")
    }
    let given = driver.availDescriptors ?? Int(driver.availIdx &- driver.usedIdx)
    let unfetched = given - device.inuse
    let expected = Int(device.lastAvailIdx) + unfetched
    if unfetched < 0 || UInt16(truncatingIfNeeded: expected) != driver.availIdx {
        differs.append("avail_idx \(driver.availIdx) ≠ device last-avail-idx \(device.lastAvailIdx) + unfetched \(unfetched)")
    }
    if !impossible.isEmpty { return .impossible(impossible + differs) }
    if !differs.isEmpty { return .differs(differs) }
    return .agree
}

extension DeviceQueueView {
    /// A read of a queue's rings in guest memory, in the form the trackers take: `lastAvailIdx`
    /// holds avail.idx (written by the driver), `usedIdx` used.idx (written by the device),
    /// `inuse` 0. `time`: when the read was done (before and after are the same instant).
    public static func memory(queue: Int, availIdx: UInt16, usedIdx: UInt16, size: Int, time: Double) -> DeviceQueueView {
        DeviceQueueView(queue: queue, lastAvailIdx: availIdx, usedIdx: usedIdx, inuse: 0, vringNum: size,
                        shadowAvailIdx: availIdx, time: time, requestTime: time)
    }
}

/// Compares the driver's view with the rings read from guest memory (`DeviceQueueView.memory`)
/// as if at one instant: both indices are the same variables, so they must be equal; a
/// different size cannot be true whatever the timing.
public func compareMemory(driver: DriverQueueView, memory: DeviceQueueView) -> QueueComparison {
    var differs: [String] = []
    if driver.availIdx != memory.lastAvailIdx { differs.append("avail_idx \(driver.availIdx) ≠ memory avail.idx \(memory.lastAvailIdx)") }
    if driver.usedIdx != memory.usedIdx { differs.append("used_idx \(driver.usedIdx) ≠ memory used.idx \(memory.usedIdx)") }
    if memory.vringNum != driver.size { return .impossible(["size \(driver.size) ≠ memory ring size \(memory.vringNum)"] + differs) }
    return differs.isEmpty ? .agree : .differs(differs)
}

/// Three views of one queue: what the driver says (telemetry), what guest memory holds, what
/// the device says (QMP). Each pair is compared by the rule of `DisagreementTracker`: ordered,
/// close-in-time pairs only; a real disagreement is flagged, a lag never.
///
/// - driver ↔ memory: each driver snapshot against the newest memory read done before the kernel
///   took it (`DriverAfterTracker`). Not the other order: a snapshot reaches the host only
///   through buffers it posts itself (con0.tx), so memory read after its arrival is always ahead
///   of it on that queue.
/// - memory ↔ device: each QMP answer against the newest memory read before the query was sent
///   (`compareQueue`, memory as the driver: avail.idx = last-avail-idx + unfetched buffers).
/// - driver ↔ device: each driver snapshot against the newest QMP answer before the kernel took
///   it (`DriverAfterTracker(rule: .device)`, the same reason).
public struct ThreeWayTracker: Equatable, Sendable {
    public var driverMemory = DriverAfterTracker()
    public var memoryDevice = DisagreementTracker()
    public var driverDevice = DriverAfterTracker(rule: .device)

    public init() {}

    public mutating func noteDriver(_ d: DriverQueueView) {
        driverMemory.noteDriver(d)
        driverDevice.noteDriver(d)
    }

    public mutating func noteMemory(_ m: DeviceQueueView) {
        driverMemory.noteMemory(m)
        memoryDevice.noteDriver(DriverQueueView(availIdx: m.lastAvailIdx, usedIdx: m.usedIdx, size: m.vringNum,
                                                availDescriptors: nil, time: m.time))
    }

    public mutating func noteDevice(_ v: DeviceQueueView) {
        memoryDevice.noteDevice(v)
        driverDevice.noteMemory(v)
    }

    /// The three verdicts, labelled.
    public var pairs: [(name: String, verdict: TruthVerdict)] {
        [("drv/mem", driverMemory.verdict), ("mem/dev", memoryDevice.verdict), ("drv/dev", driverDevice.verdict)]
    }

    /// All three pairs compared and agreeing.
    public var allAgree: Bool { pairs.allSatisfy { $0.verdict == .agree } }
}

/// Driver snapshots (telemetry) against samples of the rings in guest memory (`.memory`) or of
/// the device's QMP view (`.device`) taken *before* them — the rule of `DisagreementTracker`
/// with the order reversed. Needed because a snapshot reaches the host only through buffers it
/// posts itself (con0.tx): memory read, or QMP asked, after its arrival always sees those, so
/// on that queue the forward order would never find the views at rest.
///
/// Each driver snapshot is compared with the newest sample done at least `margin` before the
/// kernel took the snapshot (its uptime on the host clock through the quickest recent flight,
/// which can only make it later than the truth) and at most `DisagreementTracker.maxSpan` before.
/// - Equal (memory: the same indices; device: `compareQueue`): agree.
/// - The sample ahead of the later driver in avail or used: a contradiction, flagged at once
///   (avail.idx is the driver's to write and used.idx only grows).
/// - Otherwise different: in flight, unless the same difference shows twice in a row with
///   nothing moving on either side (then flagged).
public struct DriverAfterTracker: Equatable, Sendable {
    public enum Rule: Equatable, Sendable { case memory, device }
    public let rule: Rule
    /// How long before the snapshot the memory read must be: covers the error of the take-time
    /// estimate (the quickest flight seen).
    public static let margin = 0.05
    public private(set) var verdict: TruthVerdict = .unknown("no memory read yet")
    public private(set) var comparisons = 0
    private var reads: [DeviceQueueView] = []
    private var quickestOffset: Double?
    private var idleDiffering = 0
    private var previous: (driver: DriverQueueView, memory: DeviceQueueView)?

    public init(rule: Rule = .memory) { self.rule = rule }

    public static func == (a: Self, b: Self) -> Bool {
        a.rule == b.rule && a.verdict == b.verdict && a.comparisons == b.comparisons && a.reads == b.reads && a.idleDiffering == b.idleDiffering
    }

    public var flagged: Bool { if case .disagree = verdict { return true } else { return false } }

    /// A memory read (`DeviceQueueView.memory`) or a device sample, by the rule.
    public mutating func noteMemory(_ m: DeviceQueueView) {
        reads.append(m)
        let cutoff = m.time - DisagreementTracker.historySeconds
        if let keep = reads.firstIndex(where: { $0.time >= cutoff }), keep > 0 { reads.removeFirst(keep) }
        if reads.count > 1024 { reads.removeFirst(reads.count - 1024) }
    }

    @discardableResult
    public mutating func noteDriver(_ d: DriverQueueView) -> Bool {
        if let u = d.uptime { quickestOffset = min(quickestOffset ?? .infinity, d.time - u) }
        let taken = d.uptime.flatMap { u in quickestOffset.map { u + $0 } } ?? d.time
        let side = rule == .memory ? "memory" : "device"
        guard let m = reads.last(where: { $0.time <= taken - Self.margin }), taken - m.time <= DisagreementTracker.maxSpan else {
            if !flagged { verdict = .unknown("no \(side) sample close before the driver's snapshot") }
            previous = nil
            idleDiffering = 0
            return flagged
        }
        comparisons += 1
        var contradictions: [String] = []
        let availAhead = indexDistance(m.lastAvailIdx, d.availIdx)
        let availName = rule == .memory ? "memory avail.idx" : "device last-avail-idx"
        if availAhead > 0 { contradictions.append("\(availName) \(m.lastAvailIdx) is \(availAhead) ahead of the driver's avail_idx \(d.availIdx) taken after it") }
        let usedAhead = indexDistance(m.usedIdx, d.usedIdx)
        if usedAhead > 0 { contradictions.append("\(side) used.idx \(m.usedIdx) is \(usedAhead) ahead of the driver's used_idx \(d.usedIdx) taken after it") }
        let c = rule == .memory ? compareMemory(driver: d, memory: m) : compareQueue(driver: d, device: m)
        if case .impossible(let r) = c { contradictions += r }
        let idle = previous.map { p in
            p.driver.availIdx == d.availIdx && p.driver.usedIdx == d.usedIdx
                && p.memory.lastAvailIdx == m.lastAvailIdx && p.memory.usedIdx == m.usedIdx && p.memory.inuse == m.inuse
                && m.time > p.driver.time
        } ?? false
        previous = (d, m)
        if !contradictions.isEmpty {
            idleDiffering = 0
            verdict = .disagree(contradictions)
            return true
        }
        switch c {
        case .agree, .impossible:
            idleDiffering = 0
            verdict = .agree
        case .differs(let r):
            idleDiffering = idle && idleDiffering > 0 ? idleDiffering + 1 : 1
            verdict = idleDiffering >= DisagreementTracker.samplesToFlag ? .disagree(r) : .inFlight
        }
        return flagged
    }
}

/// What the comparison of the two views says about one queue right now.
public enum TruthVerdict: Equatable, Sendable {
    /// Nothing could be compared (why): no device sample yet, or no driver snapshot close
    /// enough in time to the latest one.
    case unknown(String)
    /// The latest comparable pair agrees.
    case agree
    /// The latest comparable pair differs in a way the time between the samples explains
    /// (traffic flowed): neither agreement nor disagreement is known.
    case inFlight
    /// The views contradict each other (why).
    case disagree([String])
}

/// Turns driver snapshots and device samples of one queue into a verdict.
///
/// Feed every driver snapshot (`noteDriver`) and every new device sample (`noteDevice`). Each
/// device sample is compared with the newest driver snapshot that reached the host before the
/// query was sent — so the kernel took it before QEMU read its values — provided that
/// snapshot is close in time: taken (its kernel uptime on the host clock, offset by the
/// quickest recent flight; a snapshot that arrived late counts from when it was taken) at most
/// `maxSpan` before QEMU's answer, and the recent rate of used buffers times that span far
/// below 32768. Otherwise the sample is not compared: the verdict is `.unknown` (a
/// disagreement already flagged stays flagged until a comparison clears it).
///
/// A comparable pair is a disagreement when
/// - a size differs (vring-num, inuse beyond the size): timing cannot explain it;
/// - the driver's used_idx is ahead of the device's used-idx (16-bit signed distance > 0): the
///   device writes used.idx, the driver only reads it, and the driver read it before the device
///   was asked, so it cannot be ahead. Closeness in time keeps the true distance far below
///   32768 (that would take over 40,000 buffers a second), so the signed distance is exact;
/// - the pair differs in any other way twice in a row with nothing moving in between (both
///   sides' indices unchanged, and a fresh driver snapshot since the previous device sample).
///   While traffic flows, other differences are expected and give `.inFlight`.
public struct DisagreementTracker: Equatable, Sendable {
    public static let samplesToFlag = 2
    /// The longest time between the kernel taking a snapshot and QEMU answering for a pair to
    /// count as close in time: 1 s, which keeps a guest below 32,768 buffers/s (TCG here: about
    /// 16,000) inside the 16-bit range; the observed rate is checked too.
    public static let maxSpan = 1.0
    /// Driver snapshots kept (seconds of arrival time) for pairing and the flight-time estimate.
    public static let historySeconds = 3.0
    static let historyLimit = 4096

    public private(set) var verdict: TruthVerdict = .unknown("no device sample yet")
    /// Consecutive differing comparisons with nothing moving in between (the first counts 1).
    public private(set) var idleDiffering = 0
    /// Device samples compared so far.
    public private(set) var comparisons = 0
    /// Device samples that could not be compared.
    public private(set) var uncompared = 0
    private var history: [DriverQueueView] = []
    private var previous: (driver: DriverQueueView, device: DeviceQueueView)?

    public init() {}

    public var flagged: Bool {
        if case .disagree = verdict { return true }
        return false
    }

    /// Why, when flagged.
    public var reasons: [String] {
        if case .disagree(let r) = verdict { return r }
        return []
    }

    public static func == (a: DisagreementTracker, b: DisagreementTracker) -> Bool {
        a.verdict == b.verdict && a.idleDiffering == b.idleDiffering && a.comparisons == b.comparisons
            && a.uncompared == b.uncompared && a.history == b.history
            && a.previous?.driver == b.previous?.driver && a.previous?.device == b.previous?.device
    }

    /// Records one driver snapshot (in arrival order).
    public mutating func noteDriver(_ driver: DriverQueueView) {
        if let last = history.last, let u0 = last.uptime, let u1 = driver.uptime, u1 < u0 {
            history.removeAll()   // the kernel restarted: its uptime began again
            previous = nil
        }
        history.append(driver)
        let cutoff = driver.time - Self.historySeconds
        if let keep = history.firstIndex(where: { $0.time >= cutoff }), keep > 0 { history.removeFirst(keep) }
        if history.count > Self.historyLimit { history.removeFirst(history.count - Self.historyLimit) }
    }

    /// The driver snapshot to compare `device` with, or why there is none.
    func snapshot(before device: DeviceQueueView) -> Result<DriverQueueView, RingsideError> {
        guard let s = history.last(where: { $0.time <= device.requestTime }) else {
            return .failure(RingsideError("no driver snapshot before the device's sample"))
        }
        // When the kernel took it: its uptime on the host clock, using the quickest recent
        // flight (arrival − uptime) as the offset; without an uptime, its arrival (later).
        let quickest = history.compactMap { h in h.uptime.map { h.time - $0 } }.min()
        let taken = s.uptime.flatMap { u in quickest.map { u + $0 } } ?? s.time
        let span = device.time - taken
        if span > Self.maxSpan {
            let late = s.time - taken
            return .failure(RingsideError(late > 0.05
                ? "driver snapshot arrived \(seconds2(late)) s late, taken \(seconds2(span)) s before the device's answer"
                : "newest driver snapshot \(seconds2(span)) s older than the device's answer"))
        }
        // The traffic seen lately, over the span, must stay well inside the 16-bit range.
        if Double(s.size) + maxUsedRate() * span * 2 >= 32768 {
            return .failure(RingsideError("too much traffic between the samples to compare 16-bit indices"))
        }
        return .success(s)
    }

    /// The fastest used_idx progress between consecutive recent snapshots, buffers per second
    /// (kernel uptime; arrival time without one).
    func maxUsedRate() -> Double {
        var best = 0.0
        for (a, b) in zip(history, history.dropFirst()) {
            let dt = (b.uptime ?? b.time) - (a.uptime ?? a.time)
            guard dt > 0.001 else { continue }
            best = max(best, Double(max(0, indexDistance(b.usedIdx, a.usedIdx))) / dt)
        }
        return best
    }

    /// Compares a new device sample; returns whether a disagreement is flagged.
    @discardableResult
    public mutating func noteDevice(_ device: DeviceQueueView) -> Bool {
        let driver: DriverQueueView
        switch snapshot(before: device) {
        case .failure(let why):
            uncompared += 1
            if !flagged { verdict = .unknown(why.description) }
            previous = nil
            idleDiffering = 0
            return flagged
        case .success(let s):
            driver = s
        }
        comparisons += 1
        let comparison = compareQueue(driver: driver, device: device)
        var contradictions: [String] = []
        let ahead = indexDistance(driver.usedIdx, device.usedIdx)
        if ahead > 0 {
            contradictions.append("used_idx \(driver.usedIdx) is \(ahead) ahead of device used-idx \(device.usedIdx) read after it")
        }
        if case .impossible(let r) = comparison { contradictions += r }
        // Nothing moved since the previous comparison: the same numbers on both sides, and the
        // driver's read again after the previous device answer.
        let idle = previous.map { p in
            p.driver.availIdx == driver.availIdx && p.driver.usedIdx == driver.usedIdx
                && p.driver.availDescriptors == driver.availDescriptors && driver.time > p.device.time
                && p.device.lastAvailIdx == device.lastAvailIdx && p.device.usedIdx == device.usedIdx
                && p.device.inuse == device.inuse
        } ?? false
        previous = (driver, device)
        if !contradictions.isEmpty {
            idleDiffering = 0
            verdict = .disagree(contradictions)
            return true
        }
        switch comparison {
        case .agree, .impossible:
            idleDiffering = 0
            verdict = .agree
        case .differs(let r):
            idleDiffering = idle && idleDiffering > 0 ? idleDiffering + 1 : 1
            verdict = idleDiffering >= Self.samplesToFlag ? .disagree(r) : .inFlight
        }
        return flagged
    }

    /// Compares a driver view and a device view read at one instant (the guest stopped by QMP
    /// `stop` while both were read): no timing explains a difference, so any is a disagreement.
    public mutating func noteInstant(driver: DriverQueueView, device: DeviceQueueView) {
        comparisons += 1
        previous = nil
        idleDiffering = 0
        let c = compareQueue(driver: driver, device: device)
        var contradictions = c.reasons
        let ahead = indexDistance(driver.usedIdx, device.usedIdx)
        if ahead > 0, contradictions.isEmpty {
            contradictions.append("used_idx \(driver.usedIdx) is \(ahead) ahead of device used-idx \(device.usedIdx)")
        }
        verdict = contradictions.isEmpty ? .agree : .disagree(contradictions)
    }

    /// `noteDriver` then `noteDevice`.
    @discardableResult
    public mutating func note(driver: DriverQueueView, device: DeviceQueueView) -> Bool {
        noteDriver(driver)
        return noteDevice(device)
    }
}

private func seconds2(_ s: Double) -> String { String(format: "%.2f", s) }
