// The comparisons of DeviceTruthComparison applied over time: which pairs of samples are close
// enough to compare, when a difference is a disagreement and when only a lag, and the verdict
// each queue carries (driver ↔ device, and driver ↔ memory ↔ device for the memory view).

import Foundation
import Wire

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

    /// `format`: the ring format of the queue read (packed: positions, not indices).
    public mutating func noteMemory(_ m: DeviceQueueView, format: WireRingFormat) {
        driverMemory.noteMemory(m)
        memoryDevice.noteDriver(DriverQueueView(availIdx: m.lastAvailIdx, usedIdx: m.usedIdx, size: m.vringNum,
                                                availDescriptors: nil, time: m.time, format: format))
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
        // A packed queue's positions from QMP are offsets without wrap counters: whether one is
        // ahead of the driver's is not decidable from them (compareQueue compares offsets).
        if d.format == .split || rule == .memory {
            let availAhead = positionAhead(m.lastAvailIdx, of: d.availIdx, size: d.size, format: d.format)
            let availName = rule == .memory ? "memory avail.idx" : "device last-avail-idx"
            if availAhead > 0 { contradictions.append("\(availName) \(m.lastAvailIdx) is \(availAhead) ahead of the driver's avail_idx \(d.availIdx) taken after it") }
            let usedAhead = positionAhead(m.usedIdx, of: d.usedIdx, size: d.size, format: d.format)
            if usedAhead > 0 { contradictions.append("\(side) used.idx \(m.usedIdx) is \(usedAhead) ahead of the driver's used_idx \(d.usedIdx) taken after it") }
        }
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
            best = max(best, Double(max(0, positionAhead(b.usedIdx, of: a.usedIdx, size: b.size, format: b.format))) / dt)
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
        // Packed: QEMU 7.2's used-idx is an offset without its wrap counter, and the traffic
        // between two samples cannot be told from positions that repeat every two laps, so
        // whether the driver is ahead is not decidable here (compareQueue compares offsets).
        let ahead = driver.format == .packed ? 0 : indexDistance(driver.usedIdx, device.usedIdx)
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
        let ahead = driver.format == .packed ? 0 : indexDistance(driver.usedIdx, device.usedIdx)
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
