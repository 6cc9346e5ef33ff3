// The rule that compares the device's view of a queue (QMP) with the driver's (telemetry) or
// with the rings read from guest memory, at one pair of samples. DeviceTruthTrackers applies it
// over time; DeviceTruth says what the QMP fields mean.

import Foundation
import Wire

/// `a − b` in 16-bit ring-index arithmetic, as a signed distance in −32768…32767: how far `a` is
/// ahead of `b` (negative: behind). Meaningful only when the true distance is under 32768,
/// which is why only samples close in time are compared.
@inline(__always)
public func indexDistance(_ a: UInt16, _ b: UInt16) -> Int { Int(Int16(bitPattern: a &- b)) }

/// How far position `a` is ahead of `b` (negative: behind) on a queue of `size` in `format`:
/// `indexDistance` for split indices; for packed positions (offset | wrap << 15) their distance
/// over two laps, read as behind when it is more than one lap.
public func positionAhead(_ a: UInt16, of b: UInt16, size: Int, format: WireRingFormat) -> Int {
    guard format == .packed, size > 0 else { return indexDistance(a, b) }
    let d = wireRingDistance(from: b, to: a, size: UInt16(clamping: size), format: .packed)
    return d > size ? d - 2 * size : d
}

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
    /// The ring format. Packed: `availIdx` and `usedIdx` are the driver's and the device's next
    /// positions as offset | wrap counter << 15 (docs/protocol.md §4 "Packed queues").
    public var format: WireRingFormat

    /// `format` has no default: a packed queue's positions compared as split indices disagree
    /// at every wrap (DeviceTruthFloodTests once forgot it).
    public init(availIdx: UInt16, usedIdx: UInt16, size: Int, availDescriptors: Int?, time: Double, uptime: Double? = nil,
                format: WireRingFormat) {
        self.format = format
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
    if driver.format == .packed {
        differs = comparePackedPositions(driver: driver, device: device)
        if !impossible.isEmpty { return .impossible(impossible + differs) }
        return differs.isEmpty ? .agree : .differs(differs)
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

/// The packed ring's rule (virtio 1.2 §2.8). QEMU 7.2 keeps a packed queue's wrap counters apart
/// from its indices and QMP reports the indices alone: `used-idx` and `last-avail-idx` are slot
/// offsets (0 ≤ offset < size, no wrap bit; seen on a Linux guest past one lap). So offsets are
/// compared, modulo the size:
/// - used: the device's next used position (as the ring shows it) at `used-idx`;
/// - avail: the driver's next available position at last-avail-idx plus the slots given and not
///   fetched (the slots from the device position to the driver's, less `inuse`: one slot per
///   buffer, as Linux with INDIRECT_DESC and our kernel make them).
func comparePackedPositions(driver: DriverQueueView, device: DeviceQueueView) -> [String] {
    var differs: [String] = []
    let n = max(1, driver.size)
    let deviceOffset = Int(driver.usedIdx & 0x7FFF), driverOffset = Int(driver.availIdx & 0x7FFF)
    if deviceOffset % n != Int(device.usedIdx) % n {
        differs.append("device position \(deviceOffset) ≠ device used-idx \(device.usedIdx)")
    }
    let given = wireRingDistance(from: driver.usedIdx, to: driver.availIdx, size: UInt16(clamping: n), format: .packed)
    let unfetched = given - device.inuse
    if unfetched < 0 || (Int(device.lastAvailIdx) + unfetched) % n != driverOffset % n {
        differs.append("driver position \(driverOffset) ≠ device last-avail-idx \(device.lastAvailIdx) + unfetched \(unfetched)")
    }
    return differs
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
