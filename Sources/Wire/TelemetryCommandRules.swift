// What the kernel's telemetry answers to a command before it touches a queue: which commands
// are refused and with what reply, how long a dump is, how a step's used elements are split
// into events. Hardware-independent, so it lives here (compiled into the kernel with the rest
// of Wire) and is unit-tested on the host; kernel/telemetry/Telemetry.swift does the acting.

/// A command refused: the reply's status and a message a person can act on.
public struct TelemetryRefusal: Equatable, Sendable {
    public var status: WireReplyStatus
    public var message: String

    public init(_ status: WireReplyStatus, _ message: String) {
        self.status = status
        self.message = message
    }
}

public enum TelemetryCommandRules {
    /// Snapshots a second: the highest rate `setSnapshotRate` accepts.
    public static let maxRateHz: UInt16 = 1000

    /// A command naming queue `index` when the kernel has `queueCount` queues.
    public static func checkQueue(_ index: UInt8, queueCount: Int) -> TelemetryRefusal? {
        Int(index) < queueCount ? nil : TelemetryRefusal(.unknownQueue, "no queue \(index); the kernel has \(queueCount)")
    }

    /// `pause`/`resume` (`stepping`: `step`) on queue `name`: only the network queues can be
    /// paused; pausing the telemetry channel would cut the host off from the command that resumes it.
    public static func checkPausable(name: String, pausable: Bool, stepping: Bool = false) -> TelemetryRefusal? {
        pausable ? nil : TelemetryRefusal(.unsupported, "\(name) carries telemetry and cannot be \(stepping ? "stepped" : "paused")")
    }

    /// `step count` on queue `name`.
    public static func checkStep(name: String, pausable: Bool, paused: Bool, count: UInt16) -> TelemetryRefusal? {
        if let refusal = checkPausable(name: name, pausable: pausable, stepping: true) { return refusal }
        guard paused else { return TelemetryRefusal(.badCommand, "\(name) is not paused") }
        guard count > 0 else { return TelemetryRefusal(.badCommand, "step count must be at least 1") }
        return nil
    }

    /// The reply's message after a step moved `done` of `requested` (done > 0).
    public static func stepMessage(done: Int, requested: UInt16) -> String {
        done < Int(requested) ? "stepped \(done) of \(requested): nothing more pending" : ""
    }

    /// How a step's `count` used elements, the first at used index `firstUsedIdx`, go out:
    /// `usedBatch` events of at most `WireEvent.maxBatchElements` each, in ring order.
    public static func stepBatches(count: Int, firstUsedIdx: UInt16) -> [(firstUsedIdx: UInt16, elements: Range<Int>)] {
        var batches: [(firstUsedIdx: UInt16, elements: Range<Int>)] = []
        var start = 0
        while start < count {
            let end = min(count, start + WireEvent.maxBatchElements)
            batches.append((firstUsedIdx &+ UInt16(truncatingIfNeeded: start), start..<end))
            start = end
        }
        return batches
    }

    /// `setSnapshotRate hz` (0 stops snapshots).
    public static func checkRate(_ hz: UInt16) -> TelemetryRefusal? {
        hz <= maxRateHz ? nil : TelemetryRefusal(.badCommand, "rate \(hz) Hz is above \(maxRateHz)")
    }

    /// `dump descriptor id` on a queue of `size` descriptors, where `isFree` says whether the
    /// driver holds descriptor `id` on its free list.
    public static func checkDumpDescriptor(_ id: UInt16, size: UInt16, isFree: Bool) -> TelemetryRefusal? {
        guard id < size else {
            return TelemetryRefusal(.descriptorOutOfRange, "descriptor \(id) is out of range (size \(size))")
        }
        return isFree ? TelemetryRefusal(.notOwned, "descriptor \(id) is free: no buffer to show") : nil
    }

    /// The dump of a buffer that is not one of queue `name`'s own.
    public static func notOwnedBuffer(_ id: UInt16, name: String) -> TelemetryRefusal {
        TelemetryRefusal(.notOwned, "descriptor \(id) holds none of \(name)'s buffers")
    }

    /// How many bytes of a buffer a dump covers (before the `WireProtocol.maxDumpBytes` cap).
    /// The used length counts what the device wrote: the frame's length for a buffer the device
    /// fills (RX; its full length while the device has not returned it), and 0 for one it only
    /// reads (TX, the console's output), whose bytes the driver wrote and its own record's
    /// length covers.
    public static func dumpLength(deviceWritable: Bool, bufferLength: UInt32, usedLength: UInt32?) -> Int {
        Int(deviceWritable ? (usedLength ?? bufferLength) : bufferLength)
    }
}
