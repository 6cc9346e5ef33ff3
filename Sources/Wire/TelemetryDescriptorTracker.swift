// Kernel side of descriptor deltas.
//
// A 256-entry descriptor table is 4.3 KiB on the wire; at 60 Hz and four queues that is 1 MiB/s
// of telemetry, most of it unchanged. The tracker remembers, per queue, the table as last
// encoded, and writes only the descriptors that differ (a delta) unless a full table was asked
// for (first snapshot, `requestFull` command, or a snapshot the kernel had to drop).
//
// Snapshots are numbered; a delta in snapshot n applies to the table as of snapshot n - 1.
// The host (`TelemetryQueueModel`) checks that and asks for a full table when it has no base.
//
// Usage, once per snapshot tick (allocation-free after the first):
//
//     tracker.beginSnapshot(into: &encoder, uptimeNs: now, rateHz: rate, droppedFrames: dropped, memory: memory,
//                           deviceStatus: statuses)
//     for q in queues {
//         tracker.appendQueue(status(q), ring: ring(q), into: &encoder) { id in descriptor(q, id) }
//     }
//     do { try encoder.finish(into: &out) } catch { tracker.requestFull() }
//     if !console.send(out) { tracker.requestFull() }   // the host will not see this delta
//
public struct TelemetryDescriptorTracker: Sendable {
    /// Per queue (by position in the hello's queue list): the table as last encoded.
    var lastSent: [[WireDescriptor]]
    var fullRequested: [Bool]
    /// The number the next snapshot gets.
    public private(set) var nextSnapshotNumber: UInt32
    /// Queue position expected by the next `appendQueue`.
    var queueCursor = 0

    /// `queueSizes[i]` is the size of the i-th queue of the hello (and of every snapshot).
    public init(queueSizes: [Int], firstSnapshotNumber: UInt32 = 0) {
        lastSent = queueSizes.map { [WireDescriptor](repeating: .zero, count: $0) }
        fullRequested = [Bool](repeating: true, count: queueSizes.count)
        nextSnapshotNumber = firstSnapshotNumber
    }

    public var queueCount: Int { lastSent.count }

    /// Makes the next snapshot carry every queue's full table.
    public mutating func requestFull() {
        for i in 0..<fullRequested.count { fullRequested[i] = true }
    }

    /// Makes the next snapshot carry this queue's full table.
    public mutating func requestFull(queuePosition: Int) {
        if queuePosition >= 0 && queuePosition < fullRequested.count { fullRequested[queuePosition] = true }
    }

    /// Starts a snapshot frame in `encoder` covering every tracked queue; follow with one
    /// `appendQueue` per queue, in hello order, then `encoder.finish(into:)`.
    public mutating func beginSnapshot(
        into encoder: inout WireFrameEncoder, uptimeNs: UInt64, rateHz: UInt16, droppedFrames: UInt64, memory: WireMemory,
        deviceStatus: [UInt8] = []
    ) {
        encoder.beginSnapshot(WireSnapshotHeader(
            snapshotNumber: nextSnapshotNumber, uptimeNs: uptimeNs, rateHz: rateHz, droppedFrames: droppedFrames,
            memory: memory, deviceStatus: deviceStatus, queueCount: UInt8(truncatingIfNeeded: lastSent.count)))
        nextSnapshotNumber &+= 1
        queueCursor = 0
    }

    /// Writes the next queue: its status, then its descriptors as a delta against the last
    /// snapshot, or in full if one was requested. `descriptor(id)` reads descriptor `id` now.
    public mutating func appendQueue(
        _ status: WireQueueStatus, ring: WireRingView = .empty, into encoder: inout WireFrameEncoder,
        descriptor: (Int) -> WireDescriptor
    ) throws(WireEncodeError) {
        let position = queueCursor
        guard position < lastSent.count else { throw .misuse }
        queueCursor += 1
        encoder.appendQueueStatus(status)
        encoder.appendRing(ring)
        let size = lastSent[position].count
        if fullRequested[position] {
            fullRequested[position] = false
            encoder.beginDescriptors(.full)
            for id in 0..<size {
                let d = descriptor(id)
                lastSent[position][id] = d
                encoder.appendDescriptor(d)
            }
        } else {
            encoder.beginDescriptors(.delta)
            for id in 0..<size {
                let d = descriptor(id)
                if d != lastSent[position][id] {
                    lastSent[position][id] = d
                    encoder.appendDescriptorChange(id: UInt16(truncatingIfNeeded: id), d)
                }
            }
        }
        try encoder.endDescriptors()
    }

    /// The same, from a table the caller already has.
    public mutating func appendQueue(
        _ status: WireQueueStatus, ring: WireRingView = .empty, table: [WireDescriptor], into encoder: inout WireFrameEncoder
    ) throws(WireEncodeError) {
        try appendQueue(status, ring: ring, into: &encoder) { id in id < table.count ? table[id] : .zero }
    }
}
