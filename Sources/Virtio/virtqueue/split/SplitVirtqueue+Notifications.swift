// Notification suppression in both directions (virtio 1.2, 2.7.7, 2.7.10): whether to kick
// after a publication, and whether the device should interrupt; with the counters of both.
//
// An extension of SplitVirtqueue (SplitVirtqueue.swift), kept apart so the driver's data
// path reads on its own.

import RingAtomics

extension SplitVirtqueue {
    // MARK: Available-buffer notifications (2.7.10, 2.7.13.4)

    /// Whether the driver must notify (kick) the device about the chains published since the
    /// previous call (2.7.13.4, 2.7.10). Call after `publish()`; each call starts a new window,
    /// like Linux's virtqueue_kick_prepare. Without event idx the device's
    /// VIRTQ_USED_F_NO_NOTIFY flag decides; with it, avail_event and `virtqNeedEvent`.
    public func needsNotify() -> Bool {
        // avail.idx must be visible before we read what the device asked for, or we could
        // miss a device that just went to sleep (2.7.13.4).
        ring_mb()
        let oldIdx = availIdxAtLastNotifyCheck
        let newIdx = publishedAvailIdx
        availIdxAtLastNotifyCheck = newIdx
        guard newIdx != oldIdx else { return false }
        if eventIdx {
            let availEvent = UInt16(littleEndian: ring_load16(availEventPointer))
            return virtqNeedEvent(eventIdx: availEvent, newIdx: newIdx, oldIdx: oldIdx)
        }
        return UInt16(littleEndian: ring_load16(usedFlagsPointer)) & VIRTQ_USED_F_NO_NOTIFY == 0
    }

    // Counting notifications: `Virtqueue` documents these.
    @inline(__always) public func noteKick() { counters.kicks &+= 1 }
    @inline(__always) public func noteKickSuppressed() { counters.kicksSuppressed &+= 1 }
    @inline(__always) public func noteInterrupt() { counters.interrupts &+= 1 }

    // MARK: Used-buffer notification suppression (2.7.7)

    /// Classifies the used elements the device added since the last call by what the driver
    /// asked for at the time: an element the driver had not asked to be interrupted for counts
    /// in `interruptsSuppressed` (with event idx: its index is not `used_event`; without: the
    /// NO_INTERRUPT flag is set). The driver changes its request only in `popUsed()`,
    /// `disableInterrupts()` and `enableInterrupts()`, which call this first, so the request
    /// read here is the one in force when the device published the element (but for an element
    /// published in the instant between this read and the driver's next store). Also call it
    /// before reading the counters, so they are current. O(new elements).
    public func observeUsed() { observeUsed(upTo: usedIdx) }

    func observeUsed(upTo deviceUsedIdx: UInt16) {
        var index = observedUsedIdx
        // A confused device can move used.idx anywhere: classify at most one ring's worth.
        if deviceUsedIdx &- index > size { index = deviceUsedIdx &- size }
        guard index != deviceUsedIdx else { return }
        let usedEvent = self.usedEvent
        let noInterrupt = availFlags & VIRTQ_AVAIL_F_NO_INTERRUPT != 0
        while index != deviceUsedIdx {
            if eventIdx ? index != usedEvent : noInterrupt { counters.interruptsSuppressed &+= 1 }
            index &+= 1
        }
        observedUsedIdx = deviceUsedIdx
    }

    /// Asks the device not to interrupt: avail.flags VIRTQ_AVAIL_F_NO_INTERRUPT, or with event
    /// idx a used_event far behind (the flag must stay 0 then, 2.7.7.1). Only a hint: the device
    /// may still interrupt.
    public func disableInterrupts() {
        guard interruptsEnabled else { return }
        observeUsed()
        interruptsEnabled = false
        if eventIdx {
            // used_event = lastUsedIdx - 0x8000: the device crosses it only after 32768 more
            // used entries, more than a queue can hold, so it never asks for an interrupt.
            ring_store16(usedEventPointer, (lastUsedIdx &- 0x8000).littleEndian)
        } else {
            ring_store16(availFlagsPointer, VIRTQ_AVAIL_F_NO_INTERRUPT.littleEndian)
        }
    }

    /// Asks the device to interrupt again for the next used entry. Returns true if used
    /// entries are already pending: the device may have added them while interrupts were off
    /// without interrupting, so the caller must poll again rather than wait (the classic race).
    @discardableResult
    public func enableInterrupts() -> Bool {
        observeUsed()
        interruptsEnabled = true
        if eventIdx {
            ring_store16(usedEventPointer, lastUsedIdx.littleEndian)
        } else {
            ring_store16(availFlagsPointer, 0)
        }
        // The store above must be visible before we look at used.idx, or a device that checked
        // the old value and a driver that sees no work would both go to sleep.
        ring_mb()
        return pendingUsed != 0
    }
}
