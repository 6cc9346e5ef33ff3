// The lost-notification detector: on every sample, for each queue, the notification rule of
// virtio 1.2 §2.7.7 (driver → device, "kicks") and §2.7.10 (device → driver, interrupts) is
// evaluated against what is moving. A notification that the rule says was owed, with nothing
// moving for `threshold` seconds, raises an alarm; the alarm clears as soon as the queue moves.
//
//   KICK LOST?  a queue the device drains at once (tx, ctrl): avail entries the device has not
//               consumed (avail.idx − consumed > 0, consumed = used.idx, or the device's own
//               last-avail-idx from QMP when known) although the device asked to be kicked for
//               them — with EVENT_IDX avail_event lies among those entries, without it used.flags
//               lacks VIRTQ_USED_F_NO_NOTIFY — and `consumed` has not moved for `threshold`.
//   IRQ LOST?   any queue: used entries the driver has not consumed (used.idx − the driver's
//               last-seen used idx > 0) although the driver asked to be interrupted for them —
//               with EVENT_IDX used_event lies among those entries, without it avail.flags lacks
//               VIRTQ_AVAIL_F_NO_INTERRUPT — and the driver's position has not moved for
//               `threshold`. Not on a paused queue (the driver holds its entries on purpose).
//   STARVED     a receive queue that has had buffers: none left for the device (avail.idx ==
//               consumed) and neither index moving for `threshold`; a frame arriving now is
//               dropped by the device.
//
// Packed rings (virtio 1.2 §2.8.10, §2.8.14): the same three rules on positions (offset | wrap
// counter << 15, docs/protocol.md §4): avail.idx is the driver's next available position,
// used.idx the device's next used position, the driver's last-seen used idx its next used
// position. What asks for a notification is the other side's event suppression structure:
// ENABLE (every buffer), DISABLE (none) or DESC (when the position `desc_event_off_wrap` is
// made available / used; RING_EVENT_IDX). A kick is owed when the device's structure says
// ENABLE, or DESC at a position among the unconsumed ones; an interrupt likewise with the
// driver's structure. QMP's last-avail-idx of a packed queue is an offset without its wrap
// counter (QEMU 7.2), so `consumed` is the device's used position there.
//
// "Nothing moving" is the positions and the driver's count of used buffers taken (the queue's
// `packets` counter; 0 in samples without counters, e.g. a guest's memory): a packed position
// repeats every two laps, and a driver that takes the ring full twice between two samples is at
// the same position again (seen under a UDP flood, docs/architecture.md "Lost notifications").
//
// Conservative by construction: a queue whose role is unknown (a device type whose device may
// hold buffers for long, e.g. the balloon's stats queue, or a disk's slow requests) gets only
// the interrupt rule; a sample without the rings' flags and event words gets none of the
// notification rules; distances beyond the queue size (garbage, or a driver's parked event
// word such as Linux's used_event = 0) say "unknown", never "owed". Times are the samples'
// (the kernel's uptime, or the watcher's clock for a guest), so a test can replay them.

// Host only: the kernel never judges its own telemetry.
#if !hasFeature(Embedded)
#if canImport(Virtio)
import Virtio   // SwiftPM; scripts/fuzz-wire.sh compiles the spec files into the same module
#endif

/// The detector's memory of one queue: a fixed slot per kind (no dictionaries: this is read and
/// written for every kind of every queue at every sample, 60 times a second in a watcher).
struct NotificationQueueState: Equatable, Sendable {
    struct Slot: Equatable, Sendable {
        /// The condition holds since `since`, with progress key `key` (`NotificationDetector.progressKey`).
        var pending: (key: UInt64, since: Double)?
        var raised: NotificationAlarm?

        static func == (a: Slot, b: Slot) -> Bool {
            a.raised == b.raised && a.pending?.key == b.pending?.key && a.pending?.since == b.pending?.since
        }
    }

    var kick = Slot()
    var interrupt = Slot()
    var starve = Slot()
    /// The receive queue has had buffers for the device at some point.
    var hadBuffers = false

    subscript(kind: NotificationAlarmKind) -> Slot {
        get {
            switch kind {
            case .kickLost: return kick
            case .interruptLost: return interrupt
            case .starved: return starve
            }
        }
        set {
            switch kind {
            case .kickLost: kick = newValue
            case .interruptLost: interrupt = newValue
            case .starved: starve = newValue
            }
        }
    }
}

/// Evaluates the rules on each sample and remembers which alarms are up.
public struct NotificationDetector: Equatable, Sendable {
    /// Seconds a condition must hold, with nothing moving, before it is an alarm.
    public static let defaultThreshold = 0.5
    public var threshold: Double
    var queues: [NotificationQueueState] = []

    public init(threshold: Double = NotificationDetector.defaultThreshold) {
        self.threshold = threshold
    }

    /// Forget everything (a new hello: the queues may be others).
    public mutating func reset() { queues = [] }

    /// The alarms up on queue `position`, in kind order.
    public func alarms(queue position: Int) -> [NotificationAlarm] {
        guard position < queues.count else { return [] }
        return NotificationAlarmKind.allCases.compactMap { queues[position][$0].raised }
    }

    /// Every alarm up, by queue then kind.
    public var activeAlarms: [NotificationAlarm] {
        queues.indices.flatMap { alarms(queue: $0) }
    }

    /// Evaluates one sample of every queue (nil: the queue was not in this sample) at `time`
    /// seconds; returns the alarms raised and cleared.
    public mutating func observe(_ samples: [NotificationSample?], time: Double) -> [NotificationChange] {
        if queues.count != samples.count {
            queues = Array(queues.prefix(samples.count))
            while queues.count < samples.count { queues.append(NotificationQueueState()) }
        }
        var changes: [NotificationChange] = []
        for (position, sample) in samples.enumerated() {
            guard let sample else { continue }
            for kind in NotificationAlarmKind.allCases {
                let finding = evaluate(kind, sample, position: position, time: time)
                changes += update(kind, position: position, finding: finding, time: time)
            }
        }
        return changes
    }

    /// What the rule says now: nil (nothing owed) or the progress key and the alarm to raise.
    private mutating func evaluate(_ kind: NotificationAlarmKind, _ s: NotificationSample, position: Int, time: Double)
        -> (key: UInt64, alarm: NotificationAlarm)?
    {
        let st = s.status
        let size = Int(s.size)
        guard size > 0 else { return nil }
        let packed = s.format == .packed
        func distance(_ from: UInt16, _ to: UInt16) -> Int { wireRingDistance(from: from, to: to, size: s.size, format: s.format) }
        // How far the device has consumed avail entries: its own index when QMP gave one that
        // lies between used.idx and avail.idx, else used.idx.
        var consumed = st.usedIdx
        var source = packed ? "device position" : "used.idx"
        if !packed, let d = s.deviceLastAvailIdx, Int(d &- st.usedIdx) <= Int(st.availIdx &- st.usedIdx) {
            consumed = d
            source = "QMP last-avail-idx"
        }
        let unconsumed = distance(consumed, st.availIdx)
        /// What "nothing moved" compares: the positions, and the driver's count of used buffers
        /// taken. A packed position repeats every two laps (2 × size), so positions alone cannot
        /// tell a stuck queue from one that went round twice between two samples.
        func progress(_ positions: UInt32) -> UInt64 { UInt64(positions) << 32 | UInt64(UInt32(truncatingIfNeeded: st.counters.packets)) }
        func alarm(_ consumed: UInt16, _ event: UInt16?, _ source: String) -> NotificationAlarm {
            NotificationAlarm(kind: kind, queue: position, since: time, now: time, availIdx: st.availIdx, usedIdx: st.usedIdx,
                              consumed: consumed, eventWord: event, consumedSource: source, format: s.format, size: s.size)
        }
        /// A packed event suppression structure's verdict on the positions from `old` up to
        /// `new` (§2.8.10): nil when its flags or position make no sense (unknown, not owed).
        func packedOwed(flags: UInt16, offWrap: UInt16, old: UInt16, new: UInt16) -> (owed: Bool, event: UInt16?)? {
            switch flags & 3 {
            case 0: return (true, nil)                                      // RING_EVENT_FLAGS_ENABLE
            case 1: return (false, nil)                                     // RING_EVENT_FLAGS_DISABLE
            case 2:                                                         // RING_EVENT_FLAGS_DESC
                guard Int(offWrap & 0x7FFF) < size else { return nil }
                return (distance(old, offWrap) < distance(old, new), offWrap)
            default: return nil
            }
        }
        switch kind {
        case .kickLost:
            guard s.role == .transmit, let ring = s.ring, unconsumed > 0, unconsumed <= size else { return nil }
            if packed {
                let d = ring.deviceEvent
                guard let v = packedOwed(flags: d.flags, offWrap: d.offWrap, old: consumed, new: st.availIdx), v.owed else { return nil }
                return (progress(UInt32(consumed)), alarm(consumed, v.event, source))
            }
            let event: UInt16? = ring.eventIdx ? ring.availEvent : nil
            let owed: Bool
            if let event {
                owed = virtqNeedEvent(eventIdx: event, newIdx: st.availIdx, oldIdx: consumed)
            } else {
                owed = ring.usedFlags & VIRTQ_USED_F_NO_NOTIFY == 0
            }
            guard owed else { return nil }
            return (progress(UInt32(consumed)), alarm(consumed, event, source))
        case .interruptLost:
            guard !st.paused, let ring = s.ring else { return nil }
            let pending = distance(st.lastUsedIdx, st.usedIdx)
            guard pending > 0, pending <= size else { return nil }
            if packed {
                let d = ring.driverEvent
                guard let v = packedOwed(flags: d.flags, offWrap: d.offWrap, old: st.lastUsedIdx, new: st.usedIdx), v.owed else { return nil }
                return (progress(UInt32(st.lastUsedIdx)), alarm(st.lastUsedIdx, v.event, "last_used_idx"))
            }
            let event: UInt16? = ring.eventIdx ? ring.usedEvent : nil
            let owed: Bool
            if let event {
                owed = virtqNeedEvent(eventIdx: event, newIdx: st.usedIdx, oldIdx: st.lastUsedIdx)
            } else {
                owed = ring.availFlags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0
            }
            guard owed else { return nil }
            return (progress(UInt32(st.lastUsedIdx)), alarm(st.lastUsedIdx, event, "last_used_idx"))
        case .starved:
            guard s.role == .receive, unconsumed <= size else { return nil }
            if unconsumed > 0 {
                if position < queues.count { queues[position].hadBuffers = true }
                return nil
            }
            guard position < queues.count, queues[position].hadBuffers else { return nil }
            return (progress(UInt32(st.availIdx) << 16 | UInt32(st.usedIdx)), alarm(consumed, nil, source))
        }
    }

    private mutating func update(_ kind: NotificationAlarmKind, position: Int,
                                 finding: (key: UInt64, alarm: NotificationAlarm)?, time: Double) -> [NotificationChange] {
        // In place (a copy of the queue's state would copy its dictionaries at the first write:
        // this runs for every kind of every queue at every sample).
        Self.update(&queues[position], kind, finding: finding, time: time, threshold: threshold)
    }

    private static func update(_ q: inout NotificationQueueState, _ kind: NotificationAlarmKind,
                               finding: (key: UInt64, alarm: NotificationAlarm)?, time: Double, threshold: Double) -> [NotificationChange] {
        var slot = q[kind]
        defer { q[kind] = slot }
        guard let finding else {
            slot.pending = nil
            if let up = slot.raised {
                slot.raised = nil
                return [.cleared(up)]
            }
            return []
        }
        if let p = slot.pending, p.key == finding.key {
            // Still owed and nothing moved.
            var a = finding.alarm
            a.since = p.since
            if slot.raised != nil {
                slot.raised = a
                return []
            }
            if time - p.since >= threshold {
                slot.raised = a
                return [.raised(a)]
            }
            return []
        }
        // Owed, but the queue moved (or the condition is new): start the clock again.
        slot.pending = (finding.key, time)
        if let up = slot.raised {
            slot.raised = nil
            return [.cleared(up)]
        }
        return []
    }
}

#endif
