// Host side of snapshots: rebuilds each queue's state from full and delta snapshots.

// Host only: the kernel never models its own telemetry, so keep this out of its image.
#if !hasFeature(Embedded)

/// Why a queue's descriptor table cannot be trusted until a full table arrives.
public enum TelemetryStaleReason: Equatable, Sendable {
    /// A delta arrived and we never had a full table (connected mid-stream).
    case noBase
    /// A delta for snapshot `got` arrived but the table is as of `have` (snapshots were lost).
    case gap(have: UInt32, got: UInt32)
    /// A delta named a descriptor beyond the table.
    case descriptorOutOfRange(UInt16)
}

public enum TelemetryApplyOutcome: Equatable, Sendable {
    case applied
    /// The scalar state was applied; the table is stale: send `WireCommand.requestFull`.
    case needsFull(TelemetryStaleReason)
}

/// One queue as the host knows it.
public struct TelemetryQueueModel: Equatable, Sendable {
    public var info: WireQueueInfo
    /// Latest indices, counters and paused flag (nil before the first snapshot).
    public private(set) var status: WireQueueStatus?
    /// The rings' flags, event words and windows of entries as of the latest snapshot (nil
    /// before the first, and when the snapshot's ring section had no entries: a sender that did
    /// not read the rings, whose flags then mean nothing).
    public private(set) var ring: WireRingView?
    /// The descriptor table; valid when `baseSnapshot` is non-nil, last known otherwise.
    public private(set) var descriptors: [WireDescriptor]
    /// The snapshot number the table reflects; nil when it is stale.
    public private(set) var baseSnapshot: UInt32?

    /// What the lost-notification detector takes the queue for (by its name, fixed at hello).
    public let role: NotificationQueueRole

    public init(info: WireQueueInfo) {
        self.info = info
        role = NotificationQueueRole(queueName: info.name)
        descriptors = [WireDescriptor](repeating: .zero, count: Int(info.size))
    }

    public var isStale: Bool { baseSnapshot == nil }

    /// Applies this queue's part of snapshot `snapshotNumber`.
    public mutating func apply(_ snapshot: WireQueueSnapshot, snapshotNumber: UInt32) -> TelemetryApplyOutcome {
        status = snapshot.status
        ring = snapshot.ring.availEntries.isEmpty && snapshot.ring.usedEntries.isEmpty ? nil : snapshot.ring
        switch snapshot.descriptors {
        case .full(let table):
            descriptors = table
            if info.size != UInt16(truncatingIfNeeded: table.count) {
                info.size = UInt16(truncatingIfNeeded: table.count)
            }
            baseSnapshot = snapshotNumber
            return .applied
        case .delta(let changes):
            guard let base = baseSnapshot else { return .needsFull(.noBase) }
            if base &+ 1 != snapshotNumber {
                baseSnapshot = nil
                return .needsFull(.gap(have: base, got: snapshotNumber))
            }
            for change in changes {
                let id = Int(change.id)
                guard id < descriptors.count else {
                    baseSnapshot = nil
                    return .needsFull(.descriptorOutOfRange(change.id))
                }
                descriptors[id] = change.descriptor
            }
            baseSnapshot = snapshotNumber
            return .applied
        }
    }

    /// Descriptors in each state, for a summary line.
    public func count(of state: WireDescriptorState) -> Int {
        var n = 0
        for d in descriptors where d.state == state { n += 1 }
        return n
    }
}

/// What the host should send after applying a message.
public enum TelemetryModelAction: Equatable, Sendable {
    /// Snapshot for a queue the model does not know: send `WireCommand.hello`.
    case requestHello
    /// A table went stale: send `WireCommand.requestFull`.
    case requestFull
}

/// The whole kernel as the host knows it: the hello and every queue.
public struct TelemetryModel: Equatable, Sendable {
    public private(set) var hello: WireHello?
    public private(set) var queues: [TelemetryQueueModel] = []
    /// The frame seq of the last snapshot applied.
    public private(set) var snapshotSeq: UInt32?
    public private(set) var snapshotNumber: UInt32?
    public private(set) var uptimeNs: UInt64 = 0
    public private(set) var rateHz: UInt16 = 0
    public private(set) var droppedFrames: UInt64 = 0
    /// The kernel's heap and network memory budget as of the last snapshot (zero before one).
    public private(set) var memory: WireMemory = .zero
    /// Each hello device's status byte as of the last snapshot (the hello's until one arrives).
    public private(set) var deviceStatus: [UInt8] = []
    /// The lost-notification detector, run on every snapshot (NotificationDetector.swift).
    public private(set) var notifications = NotificationDetector()
    /// The alarms the latest snapshot raised and cleared.
    public private(set) var notificationChanges: [NotificationChange] = []

    public init() {}

    /// The alarms up on the queue at `position`.
    public func alarms(queue position: Int) -> [NotificationAlarm] { notifications.alarms(queue: position) }

    /// Position of queue `index` in `queues`.
    public func position(ofQueue index: UInt8) -> Int? {
        for (i, q) in queues.enumerated() where q.info.queue == index { return i }
        return nil
    }

    /// Position of the queue called `name` ("net0.rx").
    public func position(ofQueueNamed name: String) -> Int? {
        for (i, q) in queues.enumerated() where q.info.name == name { return i }
        return nil
    }

    /// Applies a decoded message; returns what to ask the kernel for, if anything.
    public mutating func apply(_ message: WireMessage, seq: UInt32) -> TelemetryModelAction? {
        switch message {
        case .hello(let h):
            hello = h
            queues = h.queues.map { TelemetryQueueModel(info: $0) }
            notifications.reset()
            notificationChanges = []
            deviceStatus = h.devices.map { $0.status }
            return nil
        case .snapshot(let s):
            snapshotSeq = seq
            snapshotNumber = s.snapshotNumber
            uptimeNs = s.uptimeNs
            rateHz = s.rateHz
            droppedFrames = s.droppedFrames
            memory = s.memory
            if !s.deviceStatus.isEmpty { deviceStatus = s.deviceStatus }
            var action: TelemetryModelAction? = nil
            for q in s.queues {
                guard let i = position(ofQueue: q.status.queue) else {
                    action = .requestHello
                    continue
                }
                if case .needsFull = queues[i].apply(q, snapshotNumber: s.snapshotNumber), action == nil {
                    action = .requestFull
                }
            }
            var inSnapshot = [Bool](repeating: false, count: queues.count)
            for q in s.queues { if let i = position(ofQueue: q.status.queue) { inSnapshot[i] = true } }
            let samples = queues.indices.map { i -> NotificationSample? in
                // Split queues by 2.7.7/2.7.10, packed ones by 2.8.10 (NotificationDetector.swift).
                guard inSnapshot[i], let status = queues[i].status else { return nil }
                return NotificationSample(role: queues[i].role, size: queues[i].info.size,
                                          status: status, ring: queues[i].ring, format: queues[i].info.format)
            }
            notificationChanges = notifications.observe(samples, time: Double(s.uptimeNs) / 1e9)
            return action
        case .event(let e):
            uptimeNs = max(uptimeNs, e.uptimeNs)
            return nil
        case .reply, .command, .capturedFrame:
            return nil
        }
    }
}

#endif
