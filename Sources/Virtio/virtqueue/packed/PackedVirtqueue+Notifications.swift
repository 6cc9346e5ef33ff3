// Notification suppression in both directions for a packed virtqueue (virtio 1.2, 2.8.10,
// 2.8.14, 2.8.21.3): whether to kick after a publication (the device event suppression
// structure), and what the driver asks of the device (the driver event suppression structure);
// with the counters of both. An extension of PackedVirtqueue.

import RingAtomics

extension PackedVirtqueue {
    // MARK: Available-buffer notifications (2.8.21.3)

    /// Whether the driver must notify (kick) the device about the descriptors published since
    /// the previous call. Call after `publish()`; each call starts a new window, like Linux's
    /// virtqueue_kick_prepare_packed. The device's desc_event_flags decide: DISABLE no,
    /// ENABLE yes, DESC (only with VIRTIO_F_RING_EVENT_IDX) yes if the published window
    /// [old, new) covers desc_event_off_wrap (`virtqPackedNeedEvent`).
    public func needsNotify() -> Bool {
        // The head flags must be visible before we read what the device asked for, or we could
        // miss a device that just went to sleep (2.8.21.3).
        ring_mb()
        let window = publishedSinceNotifyCheck
        publishedSinceNotifyCheck = 0
        guard window > 0 else { return false }
        let flags = UInt16(littleEndian: ring_load16(deviceEvent + VIRTQ_PACKED_EVENT_FLAGS_OFFSET)) & 0x3
        if flags == VIRTQ_PACKED_EVENT_FLAG_DISABLE { return false }
        guard flags == VIRTQ_PACKED_EVENT_FLAG_DESC, eventIdx else { return true }
        // Offset + wrap counter name a position modulo 2 × size: exact for windows up to a
        // ring's length; a longer one (the driver did not ask for a lap or more) kicks.
        guard window <= Int(size) else { return true }
        let offWrap = UInt16(littleEndian: ring_load16(deviceEvent + VIRTQ_PACKED_EVENT_OFF_WRAP_OFFSET))
        return virtqPackedNeedEvent(
            offWrap: offWrap, size: size, wrap: publishedWrap, newIdx: publishedAvail,
            oldIdx: publishedAvail &- UInt16(truncatingIfNeeded: window))
    }

    // Counting notifications: `Virtqueue` documents these.
    @inline(__always) public func noteKick() { counters.kicks &+= 1 }
    @inline(__always) public func noteKickSuppressed() { counters.kicksSuppressed &+= 1 }
    @inline(__always) public func noteInterrupt() { counters.interrupts &+= 1 }

    // MARK: Used-buffer notification suppression (2.8.10)

    /// The driver event suppression structure as in memory: (desc_event_off_wrap, desc_event_flags).
    public var driverEventSuppression: (offWrap: UInt16, flags: UInt16) {
        (UInt16(littleEndian: ring_load16(driverEvent + VIRTQ_PACKED_EVENT_OFF_WRAP_OFFSET)),
         UInt16(littleEndian: ring_load16(driverEvent + VIRTQ_PACKED_EVENT_FLAGS_OFFSET)))
    }

    /// The device event suppression structure as in memory (written by the device).
    public var deviceEventSuppression: (offWrap: UInt16, flags: UInt16) {
        (UInt16(littleEndian: ring_load16(deviceEvent + VIRTQ_PACKED_EVENT_OFF_WRAP_OFFSET)),
         UInt16(littleEndian: ring_load16(deviceEvent + VIRTQ_PACKED_EVENT_FLAGS_OFFSET)))
    }

    /// Classifies the used descriptors the device wrote since the last call by what the
    /// driver asked for at the time (as `SplitVirtqueue.observeUsed()`): one the driver had not
    /// asked to be interrupted for counts in `interruptsSuppressed` — flags DISABLE, or DESC
    /// and it is not at desc_event_off_wrap. `popUsed()`, `disableInterrupts()` and
    /// `enableInterrupts()` call it before they change the request. O(new descriptors).
    public func observeUsed() {
        let (offWrap, flags) = driverEventSuppression
        while let used = usedDescriptor(ahead: observedAhead) {
            let asked: Bool
            switch flags & 0x3 {
            case VIRTQ_PACKED_EVENT_FLAG_DISABLE: asked = false
            case VIRTQ_PACKED_EVENT_FLAG_DESC: asked = offWrap == positionOffWrap(ahead: observedAhead)
            default: asked = true
            }
            if !asked { counters.interruptsSuppressed &+= 1 }
            observedAhead &+= used.skip
        }
    }

    /// desc_event_off_wrap naming the ring position `ahead` past `nextUsed`.
    func positionOffWrap(ahead: UInt16) -> UInt16 {
        var slot = Int(nextUsed) + Int(ahead)
        var wrap = usedWrap
        if slot >= Int(size) {
            slot -= Int(size)
            wrap.toggle()
        }
        return virtqPackedOffWrap(offset: UInt16(truncatingIfNeeded: slot), wrap: wrap)
    }

    /// Asks the device not to interrupt: desc_event_flags DISABLE (2.8.10). Only a hint.
    public func disableInterrupts() {
        guard interruptsEnabled else { return }
        observeUsed()
        interruptsEnabled = false
        ring_store16(driverEvent + VIRTQ_PACKED_EVENT_FLAGS_OFFSET, VIRTQ_PACKED_EVENT_FLAG_DISABLE.littleEndian)
    }

    /// Asks the device to interrupt again: with event idx, DESC at the next used position (its
    /// offset and wrap counter written first), else ENABLE. Returns true if a used descriptor
    /// is already pending: the device may have written it while interrupts were off without
    /// interrupting, so the caller must poll again rather than wait.
    @discardableResult
    public func enableInterrupts() -> Bool {
        observeUsed()
        interruptsEnabled = true
        if eventIdx {
            ring_store16(driverEvent + VIRTQ_PACKED_EVENT_OFF_WRAP_OFFSET,
                         virtqPackedOffWrap(offset: nextUsed, wrap: usedWrap).littleEndian)
            ring_wmb()
            ring_store16(driverEvent + VIRTQ_PACKED_EVENT_FLAGS_OFFSET, VIRTQ_PACKED_EVENT_FLAG_DESC.littleEndian)
        } else {
            ring_store16(driverEvent + VIRTQ_PACKED_EVENT_FLAGS_OFFSET, VIRTQ_PACKED_EVENT_FLAG_ENABLE.littleEndian)
        }
        // The store above must be visible before we look at the ring (the classic race).
        ring_mb()
        return hasPendingUsed
    }
}
