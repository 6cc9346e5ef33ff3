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

    public init(queue: Int, lastAvailIdx: UInt16, usedIdx: UInt16, inuse: Int, vringNum: Int, shadowAvailIdx: UInt16, time: Double = 0) {
        self.time = time
        self.queue = queue
        self.lastAvailIdx = lastAvailIdx
        self.usedIdx = usedIdx
        self.inuse = inuse
        self.vringNum = vringNum
        self.shadowAvailIdx = shadowAvailIdx
    }

    /// Parses a `x-query-virtio-queue-status` reply.
    public init?(queue: Int, qmp reply: [String: Any], time: Double = monotonicSeconds()) {
        func int(_ key: String) -> Int? { (reply[key] as? NSNumber)?.intValue }
        guard let lastAvail = int("last-avail-idx"), let used = int("used-idx"),
              let inuse = int("inuse"), let num = int("vring-num") else { return nil }
        self.init(queue: queue, lastAvailIdx: UInt16(truncatingIfNeeded: lastAvail), usedIdx: UInt16(truncatingIfNeeded: used),
                  inuse: inuse, vringNum: num, shadowAvailIdx: UInt16(truncatingIfNeeded: int("shadow-avail-idx") ?? lastAvail), time: time)
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

    /// `interval` is clamped to at least 0.5 s (2 Hz: two queries per poll, about 4 queries/s).
    public init(socketPath: String, devicePath: String = DeviceTruthPoller.netBackendPath,
                queues: [Int] = [0, 1], interval: Double = 0.5) {
        self.socketPath = socketPath
        self.devicePath = devicePath
        self.queues = queues
        self.interval = max(0.5, interval)
    }

    deinit { stop() }

    /// The latest result.
    public var latest: DeviceTruthState {
        lock.lock(); defer { lock.unlock() }
        return state
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

    /// Sleeps up to `seconds`, waking early when stopped.
    private func nap(_ seconds: Double) {
        let until = monotonicSeconds() + seconds
        while !shouldStop {
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
            do {
                if client == nil { client = try QMPClient(path: socketPath, timeout: 0.5) }
                var views: [DeviceQueueView] = []
                for q in queues {
                    let reply = try client!.execute("x-query-virtio-queue-status",
                                                    arguments: ["path": devicePath, "queue": q], timeout: 1)
                    guard let obj = reply as? [String: Any], let view = DeviceQueueView(queue: q, qmp: obj) else {
                        throw RingsideError("unexpected x-query-virtio-queue-status reply for queue \(q)")
                    }
                    views.append(view)
                }
                number += 1
                publish(.sample(DeviceTruthSample(time: monotonicSeconds(), number: number, queues: views)))
            } catch {
                client?.close()
                client = nil
                publish(.unavailable("\(error)"))
            }
            nap(interval - (monotonicSeconds() - started))
        }
        client?.close()
        finished.signal()
    }
}

// MARK: - Comparison

/// The driver's view of one queue, from the kernel's telemetry.
public struct DriverQueueView: Equatable, Sendable {
    public var availIdx: UInt16
    public var usedIdx: UInt16
    public var size: Int
    /// Descriptors the driver's table shows as given to the device (state avail), when the table
    /// is known. With one descriptor per buffer (Ringside's virtio-net) this counts buffers.
    public var availDescriptors: Int?
    /// Monotonic seconds when the snapshot arrived.
    public var time: Double

    public init(availIdx: UInt16, usedIdx: UInt16, size: Int, availDescriptors: Int?, time: Double) {
        self.availIdx = availIdx
        self.usedIdx = usedIdx
        self.size = size
        self.availDescriptors = availDescriptors
        self.time = time
    }
}

/// How one driver sample and one device sample of a queue relate.
public enum QueueComparison: Equatable, Sendable {
    case agree
    /// Different, but explainable by the two being sampled at different instants.
    case differs([String])
    /// Cannot be true whatever the timing.
    case impossible([String])

    public var reasons: [String] {
        switch self {
        case .agree: return []
        case .differs(let r), .impossible(let r): return r
        }
    }
}

/// Seconds a snapshot may have spent between the kernel and the host: a driver snapshot counts as
/// newer than a device sample only when it arrived at least this much later.
public let snapshotInFlightAllowance = 0.05

/// Compares one driver sample with one device sample (pure).
///
/// - used: the driver's used_idx must equal the device's used-idx.
/// - avail: the driver's avail_idx must equal the device's last-avail-idx plus the buffers the
///   device has not fetched yet. The driver counts as "avail" every buffer it gave and did not get
///   back; the device holds `inuse` of those, so the unfetched ones are availDescriptors − inuse
///   (without a descriptor table: avail_idx − used_idx − inuse).
/// - impossible, whatever the timing: vring-num ≠ the driver's queue size; inuse > size; and,
///   when the driver's snapshot is newer than the device's sample (indices only grow, so an
///   older driver snapshot may legitimately be behind), the device's used-idx or last-avail-idx
///   ahead of the driver's avail_idx.
public func compareQueue(driver: DriverQueueView, device: DeviceQueueView) -> QueueComparison {
    var impossible: [String] = []
    var differs: [String] = []
    if device.vringNum != driver.size {
        impossible.append("size \(driver.size) ≠ device vring-num \(device.vringNum)")
    }
    if device.inuse > driver.size || device.inuse < 0 {
        impossible.append("device inuse \(device.inuse) > size \(driver.size)")
    }
    let availAheadOfUsed = Int(driver.availIdx &- device.usedIdx)
    let availAheadOfLast = Int(driver.availIdx &- device.lastAvailIdx)
    // The snapshot's arrival time stands for when the kernel took it; allow for the time it
    // spent in flight before trusting "newer".
    if driver.time - device.time >= snapshotInFlightAllowance {
        if availAheadOfUsed > driver.size {
            impossible.append("device used-idx \(device.usedIdx) ahead of avail_idx \(driver.availIdx)")
        }
        if availAheadOfLast > driver.size {
            impossible.append("device last-avail-idx \(device.lastAvailIdx) ahead of avail_idx \(driver.availIdx)")
        }
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

/// Turns a stream of comparisons into a verdict: a disagreement is flagged when the values are
/// impossible, or when they differ in 2 or more consecutive device samples while the guest is
/// idle (neither side's indices moved since the previous sample). Differences while traffic
/// flows are expected (the two views are sampled at different instants) and not flagged.
public struct DisagreementTracker: Equatable, Sendable {
    public static let samplesToFlag = 2
    /// Consecutive samples that differed with nothing moving in between (the first counts 1).
    public private(set) var idleDiffering = 0
    public private(set) var flagged = false
    /// Why, when flagged.
    public private(set) var reasons: [String] = []
    private var previous: (driverAvail: UInt16, driverUsed: UInt16, lastAvail: UInt16, used: UInt16)?

    public init() {}

    public static func == (a: DisagreementTracker, b: DisagreementTracker) -> Bool {
        a.idleDiffering == b.idleDiffering && a.flagged == b.flagged && a.reasons == b.reasons
            && a.previous?.driverAvail == b.previous?.driverAvail && a.previous?.driverUsed == b.previous?.driverUsed
            && a.previous?.lastAvail == b.previous?.lastAvail && a.previous?.used == b.previous?.used
    }

    /// Feeds one (driver, device) pair; call once per new device sample. Returns the verdict.
    @discardableResult
    public mutating func note(driver: DriverQueueView, device: DeviceQueueView) -> Bool {
        let now = (driver.availIdx, driver.usedIdx, device.lastAvailIdx, device.usedIdx)
        let idle = previous.map { $0 == now } ?? false
        previous = now
        switch compareQueue(driver: driver, device: device) {
        case .agree:
            idleDiffering = 0
            flagged = false
            reasons = []
        case .impossible(let r):
            flagged = true
            reasons = r
        case .differs(let r):
            // A run of differing samples, each equal to the one before it (nothing moved).
            idleDiffering = idle && idleDiffering > 0 ? idleDiffering + 1 : 1
            flagged = idleDiffering >= Self.samplesToFlag
            reasons = flagged ? r : []
        }
        return flagged
    }
}
