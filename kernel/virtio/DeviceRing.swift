/// The ring of a device queue, in the format the device and driver agreed on: split (virtio
/// 1.2, 2.7) or packed (2.8, when VIRTIO_F_RING_PACKED is negotiated, 6). Embedded Swift has
/// no existentials, so the kernel holds the one it has in an enum and forwards the `Virtqueue`
/// calls the drivers make; what only one format has (split indices, packed positions and wrap
/// counters) the telemetry and status pages reach through the case itself.
enum DeviceRing {
    case split(SplitVirtqueue)
    case packed(PackedVirtqueue)

    var isPacked: Bool {
        if case .packed = self { return true }
        return false
    }

    var size: UInt16 {
        switch self { case .split(let r): return r.size; case .packed(let r): return r.size }
    }
    var freeCount: UInt16 {
        switch self { case .split(let r): return r.freeCount; case .packed(let r): return r.freeCount }
    }
    var unpublishedCount: UInt16 {
        switch self { case .split(let r): return r.unpublishedCount; case .packed(let r): return r.unpublishedCount }
    }
    var counters: VirtqueueCounters {
        switch self { case .split(let r): return r.counters; case .packed(let r): return r.counters }
    }
    var eventIdx: Bool {
        switch self { case .split(let r): return r.eventIdx; case .packed(let r): return r.eventIdx }
    }

    func addBuffer(addr: UInt64, len: UInt32, deviceWritable: Bool) -> UInt16? {
        switch self {
        case .split(let r): return r.addBuffer(addr: addr, len: len, deviceWritable: deviceWritable)
        case .packed(let r): return r.addBuffer(addr: addr, len: len, deviceWritable: deviceWritable)
        }
    }
    func publish() {
        switch self { case .split(let r): r.publish(); case .packed(let r): r.publish() }
    }
    @discardableResult
    func publish(count: UInt16) -> UInt16 {
        switch self { case .split(let r): return r.publish(count: count); case .packed(let r): return r.publish(count: count) }
    }
    func needsNotify() -> Bool {
        switch self { case .split(let r): return r.needsNotify(); case .packed(let r): return r.needsNotify() }
    }
    func noteKick() {
        switch self { case .split(let r): r.noteKick(); case .packed(let r): r.noteKick() }
    }
    func noteKickSuppressed() {
        switch self { case .split(let r): r.noteKickSuppressed(); case .packed(let r): r.noteKickSuppressed() }
    }
    func noteInterrupt() {
        switch self { case .split(let r): r.noteInterrupt(); case .packed(let r): r.noteInterrupt() }
    }
    /// Whether the driver currently asks the device for used-buffer notifications.
    var interruptsEnabled: Bool {
        switch self { case .split(let r): return r.interruptsEnabled; case .packed(let r): return r.interruptsEnabled }
    }
    /// Asks the device not to interrupt for used buffers (2.7.7, 2.8.10): a hint.
    func disableInterrupts() {
        switch self { case .split(let r): r.disableInterrupts(); case .packed(let r): r.disableInterrupts() }
    }
    /// Asks for an interrupt at the next used buffer; true if used buffers are already pending.
    @discardableResult
    func enableInterrupts() -> Bool {
        switch self { case .split(let r): return r.enableInterrupts(); case .packed(let r): return r.enableInterrupts() }
    }
    func popUsed() -> VirtqUsedElement? {
        switch self { case .split(let r): return r.popUsed(); case .packed(let r): return r.popUsed() }
    }
    @discardableResult
    func release(head: UInt16) -> Bool {
        switch self { case .split(let r): return r.release(head: head); case .packed(let r): return r.release(head: head) }
    }
    func buffer(_ head: UInt16) -> VirtqBuffer? {
        switch self { case .split(let r): return r.buffer(head); case .packed(let r): return r.buffer(head) }
    }
    func state(of head: UInt16) -> VirtqDescriptorState {
        switch self { case .split(let r): return r.state(of: head); case .packed(let r): return r.state(of: head) }
    }
    func observeUsed() {
        switch self { case .split(let r): r.observeUsed(); case .packed(let r): r.observeUsed() }
    }

    /// Every descriptor's (split) or buffer id's (packed) state, indexed by id.
    func states() -> [VirtqDescriptorState] {
        switch self {
        case .split(let r): return r.states()
        case .packed(let r): return r.states()
        }
    }

    /// The used element `offset` places after the next one the driver will pop, if the device
    /// has written it and it names a chain the device owns (what `popUsed()` would return).
    func peekUsed(offset: UInt16) -> VirtqUsedElement? {
        switch self {
        case .split(let r): return r.peekUsed(offset: offset)
        case .packed(let r): return r.peekUsed(offset: offset)
        }
    }

    /// Used elements waiting for the driver (split: used.idx − last_used_idx; packed: used
    /// descriptors written at and after the driver's used position).
    var pendingUsed: UInt16 {
        switch self {
        case .split(let r): return r.pendingUsed
        case .packed(let r): return r.pendingUsedCount
        }
    }

    /// Whether the device has used an element the driver has not taken: one load on a split
    /// ring, one descriptor's flags on a packed one (the main loop polls this).
    var hasPendingUsed: Bool {
        switch self {
        case .split(let r): return r.pendingUsed != 0
        case .packed(let r): return r.hasPendingUsed
        }
    }

    /// The chain the driver would publish next (a paused TX queue's oldest held-back frame).
    var oldestUnpublished: UInt16? {
        switch self {
        case .split(let r): return r.unpublishedCount > 0 ? r.availRingEntry(r.publishedAvailIdx) : nil
        case .packed(let r): return r.oldestUnpublished
        }
    }

    /// The three positions a monitor shows. Split: avail.idx, used.idx and last_used_idx
    /// (free-running, 2.7.6, 2.7.8). Packed: the driver's next available position, the device's
    /// next used position as the ring shows it, and the driver's next used position, each as
    /// offset | wrap counter << 15 (the desc_event_off_wrap encoding, 2.8.14).
    var positions: (avail: UInt16, used: UInt16, lastUsed: UInt16) {
        switch self {
        case .split(let r): return (r.availIdx, r.usedIdx, r.lastUsedIdx)
        case .packed(let r): return (r.nextAvailOffWrap, r.deviceUsedOffWrap, r.nextUsedOffWrap)
        }
    }

    /// Descriptor or buffer id `id` as a monitor shows it. Split: the table entry as in memory.
    /// Packed: the driver's record of the buffer id's first buffer (the ring slot it went out
    /// in is overwritten by the device), flags VIRTQ_PACKED_DESC_F_WRITE if device-writable.
    func monitoredDescriptor(_ id: UInt16) -> (addr: UInt64, len: UInt32, flags: UInt16, next: UInt16) {
        switch self {
        case .split(let r):
            let d = r.descriptor(id)
            return (d.addr, d.len, d.flags, d.next)
        case .packed(let r):
            guard let b = r.buffer(id) else { return (0, 0, 0, 0) }
            return (b.addr, b.len, b.deviceWritable ? VIRTQ_PACKED_DESC_F_WRITE : 0, 0)
        }
    }
}
