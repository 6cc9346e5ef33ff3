// What the lost-notification detector (NotificationDetector.swift, where the rules are written
// out) reads and says: what a queue's device does with its buffers (its role), the three alarms
// and the numbers behind each, the sample of one queue it judges, and where a queue's next
// notification fires.

// Host only: the kernel never judges its own telemetry.
#if !hasFeature(Embedded)
#if canImport(Virtio)
import Virtio   // SwiftPM; scripts/fuzz-wire.sh compiles the spec files into the same module
#endif

/// What a queue's device does with the buffers it is given: decides which rules apply.
public enum NotificationQueueRole: Equatable, Sendable {
    /// Driver → device data the device drains at once (virtio-net tx and ctrl, console tx).
    case transmit
    /// Buffers the device fills when data arrives (virtio-net rx, console rx).
    case receive
    /// Anything else: only the interrupt rule applies.
    case other

    /// The role by queue name (`net0.tx`, `net0.rx1`, `con0.rx`, `net0.ctrl`, `disk0.q0`).
    public init(queueName: String) {
        // ASCII names (all that QEMU's devices have) on bytes: the host's watcher asks for every
        // queue at every sample.
        var ascii = true
        var dot = -1
        var i = 0
        for u in queueName.utf8 {
            if u >= 0x80 { ascii = false; break }
            if u == 0x2E { dot = i }
            i += 1
        }
        if ascii {
            var base: [UInt8] = []
            var k = 0
            for u in queueName.utf8 {
                if k > dot {
                    if u >= 0x30 && u <= 0x39 { break }
                    base.append(u)
                    if base.count > 4 { break }
                }
                k += 1
            }
            switch base {
            case [0x74, 0x78], [0x63, 0x74, 0x72, 0x6C]: self = .transmit   // tx, ctrl
            case [0x72, 0x78]: self = .receive                              // rx
            default: self = .other
            }
            return
        }
        var last = Substring(queueName)
        if let dot = queueName.lastIndex(of: ".") { last = queueName[queueName.index(after: dot)...] }
        let base = last.prefix { !$0.isNumber }
        switch base {
        case "tx", "ctrl": self = .transmit
        case "rx": self = .receive
        default: self = .other
        }
    }
}

/// The three alarms.
public enum NotificationAlarmKind: Equatable, Sendable, CaseIterable {
    case kickLost
    case interruptLost
    case starved

    /// The flag shown on the queue.
    public var label: String {
        switch self {
        case .kickLost: return "KICK LOST?"
        case .interruptLost: return "IRQ LOST?"
        case .starved: return "STARVED"
        }
    }

    /// The name in JSON.
    public var key: String {
        switch self {
        case .kickLost: return "kick_lost"
        case .interruptLost: return "irq_lost"
        case .starved: return "starved"
        }
    }
}

/// One raised alarm with the numbers behind it.
public struct NotificationAlarm: Equatable, Sendable {
    public var kind: NotificationAlarmKind
    /// Position of the queue in the model.
    public var queue: Int
    /// Sample time (seconds) when the condition began (the alarm rose `threshold` later).
    public var since: Double
    /// Sample time of the latest evaluation.
    public var now: Double
    /// avail.idx, and how far the device has consumed (kick, starve) or the driver (interrupt).
    public var availIdx: UInt16
    public var usedIdx: UInt16
    /// Kick / starve: the device's consumed position; interrupt: the driver's last-seen used idx.
    public var consumed: UInt16
    /// The event word the rule used (avail_event / used_event), nil without EVENT_IDX.
    public var eventWord: UInt16?
    /// Where `consumed` came from: "used.idx", "QMP last-avail-idx", "last_used_idx".
    public var consumedSource: String
    /// The queue's ring format, and its size (packed positions count over two laps).
    public var format: WireRingFormat = .split
    public var size: UInt16 = 0

    /// How long the condition has held.
    public var age: Double { max(0, now - since) }

    /// Entries waiting (kick: avail − consumed; interrupt: used − driver's position).
    public var waiting: Int {
        switch kind {
        case .kickLost, .starved: return wireRingDistance(from: consumed, to: availIdx, size: size, format: format)
        case .interruptLost: return wireRingDistance(from: consumed, to: usedIdx, size: size, format: format)
        }
    }

    /// A position as the queue writes it: a split index, or a packed "offset/wrap counter".
    func position(_ x: UInt16) -> String {
        format == .packed ? "\(x & 0x7FFF)/w\(x >> 15)" : "\(x)"
    }

    /// One line with the numbers, e.g. "3 avail entries unconsumed for 0.6 s (avail.idx 1203,
    /// used.idx 1200); kick owed at avail_event 1200".
    public var detail: String {
        let seconds = formatTenths(age)
        if format == .packed {
            let at = eventWord.map(position)
            switch kind {
            case .kickLost:
                return "\(waiting) available descriptors not consumed for \(seconds) s (driver at \(position(availIdx)), \(consumedSource) \(position(consumed))); "
                    + (at.map { "the device asked for a kick at descriptor \($0)" } ?? "the device's event flags are ENABLE: every buffer needs a kick")
            case .interruptLost:
                return "\(waiting) used descriptors not consumed by the driver for \(seconds) s (device at \(position(usedIdx)), driver at \(position(consumed))); "
                    + (at.map { "the driver asked for an interrupt at descriptor \($0)" } ?? "the driver's event flags are ENABLE: every used buffer needs an interrupt")
            case .starved:
                return "no buffers for the device for \(seconds) s (driver at \(position(availIdx)) = \(consumedSource) \(position(consumed))): frames arriving now are dropped"
            }
        }
        switch kind {
        case .kickLost:
            let why = eventWord.map { "the device asked for a kick at avail_event \($0)" }
                ?? "used.flags lacks NO_NOTIFY: every publish needs a kick"
            return "\(waiting) avail entries not consumed for \(seconds) s (avail.idx \(availIdx), \(consumedSource) \(consumed)); \(why)"
        case .interruptLost:
            let why = eventWord.map { "the driver asked for an interrupt at used_event \($0)" }
                ?? "avail.flags lacks NO_INTERRUPT: every used entry needs an interrupt"
            return "\(waiting) used entries not consumed by the driver for \(seconds) s (used.idx \(usedIdx), driver at \(consumed)); \(why)"
        case .starved:
            return "no buffers for the device for \(seconds) s (avail.idx \(availIdx) = \(consumedSource) \(consumed)): frames arriving now are dropped"
        }
    }
}

/// A change the latest sample made.
public enum NotificationChange: Equatable, Sendable {
    case raised(NotificationAlarm)
    case cleared(NotificationAlarm)
}

/// Everything the detector needs of one queue in one sample.
public struct NotificationSample: Equatable, Sendable {
    public var role: NotificationQueueRole
    public var size: UInt16
    public var status: WireQueueStatus
    /// The rings' flags and event words; nil when the sample did not read the rings.
    public var ring: WireRingView?
    /// The device's own last-avail-idx (QMP) when a fresh one is known.
    public var deviceLastAvailIdx: UInt16?
    /// The ring format: packed queues are judged by §2.8.10 on positions.
    public var format: WireRingFormat

    public init(role: NotificationQueueRole, size: UInt16, status: WireQueueStatus, ring: WireRingView?,
                deviceLastAvailIdx: UInt16? = nil, format: WireRingFormat = .split) {
        self.format = format
        self.role = role
        self.size = size
        self.status = status
        self.ring = ring
        self.deviceLastAvailIdx = deviceLastAvailIdx
    }
}

/// Where a queue's next notification fires, from its rings' flags and event words.
public enum NextNotification: Equatable, Sendable {
    /// When the index passes this entry (written as entry `index`): EVENT_IDX's avail_event /
    /// used_event (virtio 1.2 §2.7.10), or without it the next entry while the flag allows.
    case at(UInt16)
    /// The flag (VIRTQ_USED_F_NO_NOTIFY / VIRTQ_AVAIL_F_NO_INTERRUPT) says none.
    case suppressed

    /// The next kick: the driver notifies when it publishes avail entry `avail_event`; without
    /// EVENT_IDX, on its next publish (entry avail.idx) unless the device set NO_NOTIFY.
    public static func kick(status: WireQueueStatus, ring: WireRingView) -> NextNotification {
        if ring.eventIdx { return .at(ring.availEvent) }
        return ring.usedFlags & VIRTQ_USED_F_NO_NOTIFY != 0 ? .suppressed : .at(status.availIdx)
    }

    /// The next interrupt: the device interrupts when it writes used entry `used_event`;
    /// without EVENT_IDX, with its next used entry (used.idx) unless the driver set NO_INTERRUPT.
    public static func interrupt(status: WireQueueStatus, ring: WireRingView) -> NextNotification {
        if ring.eventIdx { return .at(ring.usedEvent) }
        return ring.availFlags & VIRTQ_AVAIL_F_NO_INTERRUPT != 0 ? .suppressed : .at(status.usedIdx)
    }

    /// The entry index, if any.
    public var index: UInt16? {
        if case .at(let i) = self { return i }
        return nil
    }
}

/// "0.6" for 0.63 s.
public func formatTenths(_ seconds: Double) -> String {
    let tenths = Int((seconds * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}

#endif
