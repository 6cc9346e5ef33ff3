// The driver side of a packed virtqueue (virtio 1.2, 2.8). Over 400 lines on purpose: adding,
// publishing and reclaiming share the wrap-counter state and its invariants, kept in one file so
// they are read together (notifications and views are already in their own files).
//
// One descriptor ring carries both directions (2.8.13): the driver writes descriptors in ring
// order and marks them available with the AVAIL/USED flag bits set from its wrap counter; the
// device overwrites them in place, again in ring order, with used descriptors (buffer id, len,
// AVAIL = USED = its wrap counter). The device may complete buffers out of order: a used
// descriptor names a buffer id, not a ring position, and the device then skips as many ring
// positions as that buffer's chain had descriptors (2.8.20–2.8.22). So the driver keeps:
//
//   * a free list of buffer ids, and the number of free ring positions; a chain needs one id
//     and one position per buffer;
//   * per buffer id, what it made available (chain length, first buffer, byte counts, state),
//     so nothing it uses again is read back from the ring the device writes;
//   * `nextAvail`/`availWrap` (where the next descriptor goes, 2.8.21.1), `publishedAvail`
//     (where the last published chain ends: a chain is added with its head's flags withheld and
//     published by writing them, last, after a write barrier, 2.8.21.2), and
//     `nextUsed`/`usedWrap` (where the next used descriptor will appear, 2.8.22).
//
// Every access to ring memory goes through RingAtomics, as in SplitVirtqueue. Indirect
// descriptors (2.8.7) are not supported yet.
//
// The call pattern is SplitVirtqueue's (both conform to `Virtqueue`): add, publish,
// `needsNotify()`, `popUsed()` → `release(head:)` where the "head" is the buffer id.

import CHeap
import RingAtomics

public final class PackedVirtqueue {
    // MARK: Layout (2.8)

    /// Bytes of the descriptor ring for `size` descriptors (2.8.13).
    public static func descRingBytes(size: UInt16) -> Int { virtqPackedDescRingBytes(size: size) }
    /// Bytes of each event suppression structure (2.8.14).
    public static let eventBytes = VIRTQ_PACKED_EVENT_SIZE
    /// Alignment of the descriptor ring (2.8.10.1).
    public static let descRingAlignment = VIRTQ_PACKED_DESC_ALIGN
    /// Alignment of each event suppression structure (2.8.10.1).
    public static let eventAlignment = VIRTQ_PACKED_EVENT_ALIGN

    // MARK: Configuration

    /// Ring positions, and buffer ids (0 ..< size).
    public let size: UInt16
    /// Whether VIRTIO_F_RING_EVENT_IDX was negotiated: the DESC event flag may be used.
    public let eventIdx: Bool
    /// The descriptor ring (the transport's queue_desc).
    public let descRing: UnsafeMutableRawPointer
    /// The driver event suppression structure (queue_driver): the driver writes it.
    public let driverEvent: UnsafeMutableRawPointer
    /// The device event suppression structure (queue_device): the device writes it.
    public let deviceEvent: UnsafeMutableRawPointer

    // MARK: Driver state

    /// Ring position of the next descriptor the driver will write.
    public private(set) var nextAvail: UInt16 = 0
    /// The driver's wrap counter (2.8.1): starts at 1, flips each time `nextAvail` wraps.
    public private(set) var availWrap = true
    /// Ring position after the last published chain, and the wrap counter there.
    public private(set) var publishedAvail: UInt16 = 0
    public private(set) var publishedWrap = true
    /// Ring position where the next used descriptor will appear.
    public private(set) var nextUsed: UInt16 = 0
    /// The driver's copy of the device's wrap counter (2.8.1): flips each time `nextUsed` wraps.
    public private(set) var usedWrap = true
    /// Ring positions not occupied by a chain the device may still use.
    public private(set) var freeSlots: UInt16
    /// Buffer ids on the free list (not available, not held).
    public private(set) var freeIDs: UInt16
    /// Chains added but not yet published.
    public private(set) var unpublishedCount: UInt16 = 0
    /// Ring positions published and not yet returned: where used descriptors may appear.
    public private(set) var slotsOwnedByDevice: UInt16 = 0
    /// Whether the driver currently asks for used-buffer notifications.
    public internal(set) var interruptsEnabled = true
    public internal(set) var counters = VirtqueueCounters()

    /// Descriptors published since the last `needsNotify()`: the window to notify about.
    var publishedSinceNotifyCheck: Int = 0
    /// Ring positions past `nextUsed` already classified by `observeUsed()`.
    var observedAhead: UInt16 = 0
    private var freeIDHead: UInt16 = 0
    /// Oldest and newest chains added but not published (linked by `nextUnpublished`).
    /// (Internal, not private: `oldestUnpublished` in +Monitoring reads the head.)
    var unpublishedHead: UInt16 = 0
    private var unpublishedTail: UInt16 = 0

    /// The driver's record of each buffer id (as Linux keeps `desc_state`/`desc_extra`).
    let records: UnsafeMutablePointer<PackedBufferRecord>

    /// Sets up a queue of `size` positions over the three areas, zeroes them (every flag 0:
    /// nothing available under wrap counter 1; driver event flags ENABLE, or DESC at position 0
    /// with event idx), and frees every buffer id.
    /// The ring must be `descRingBytes(size:)` long and 16-aligned; each event structure 4
    /// bytes, 4-aligned (2.8.10.1). Throws, never traps, if the bookkeeping cannot be allocated.
    public init(
        size: UInt16, descRing: UnsafeMutableRawPointer, driverEvent: UnsafeMutableRawPointer,
        deviceEvent: UnsafeMutableRawPointer, eventIdx: Bool = false
    ) throws(PackedVirtqueueSetupError) {
        guard size != 0, size <= VIRTQ_PACKED_MAX_SIZE else { throw .invalidSize(size) }
        guard UInt(bitPattern: descRing) % UInt(VIRTQ_PACKED_DESC_ALIGN) == 0 else {
            throw .misaligned(area: .descriptorRing, requiredAlignment: VIRTQ_PACKED_DESC_ALIGN)
        }
        guard UInt(bitPattern: driverEvent) % UInt(VIRTQ_PACKED_EVENT_ALIGN) == 0 else {
            throw .misaligned(area: .driverEvent, requiredAlignment: VIRTQ_PACKED_EVENT_ALIGN)
        }
        guard UInt(bitPattern: deviceEvent) % UInt(VIRTQ_PACKED_EVENT_ALIGN) == 0 else {
            throw .misaligned(area: .deviceEvent, requiredAlignment: VIRTQ_PACKED_EVENT_ALIGN)
        }
        let bytes = MemoryLayout<PackedBufferRecord>.stride * Int(size)
        guard let raw = heap_try_alloc(bytes) else { throw .outOfMemory(bytes: bytes) }
        let count = Int(size)
        records = raw.bindMemory(to: PackedBufferRecord.self, capacity: count)
        records.initialize(repeating: PackedBufferRecord(), count: count)
        // Free id list 0 → 1 → … → size-1.
        for i in 0..<count { records[i].nextFree = UInt16(truncatingIfNeeded: i &+ 1) }
        self.size = size
        self.eventIdx = eventIdx
        self.descRing = descRing
        self.driverEvent = driverEvent
        self.deviceEvent = deviceEvent
        self.freeSlots = size
        self.freeIDs = size

        descRing.initializeMemory(as: UInt8.self, repeating: 0, count: PackedVirtqueue.descRingBytes(size: size))
        driverEvent.initializeMemory(as: UInt8.self, repeating: 0, count: VIRTQ_PACKED_EVENT_SIZE)
        deviceEvent.initializeMemory(as: UInt8.self, repeating: 0, count: VIRTQ_PACKED_EVENT_SIZE)
        if eventIdx {
            // Interrupt for the first used descriptor: position 0 under wrap counter 1 (2.8.10).
            ring_store16(driverEvent + VIRTQ_PACKED_EVENT_OFF_WRAP_OFFSET, virtqPackedOffWrap(offset: 0, wrap: true).littleEndian)
            ring_store16(driverEvent + VIRTQ_PACKED_EVENT_FLAGS_OFFSET, VIRTQ_PACKED_EVENT_FLAG_DESC.littleEndian)
        }
        // Rings are in place before the driver tells the device where they are (queue_enable).
        ring_wmb()
    }

    deinit {
        records.deinitialize(count: Int(size))
        heap_release(UnsafeMutableRawPointer(records))
    }

    /// How many single-buffer chains could be added now.
    public var freeCount: UInt16 { min(freeSlots, freeIDs) }

    // MARK: Supplying buffers (2.8.21)

    /// Makes one buffer available as a chain of one descriptor. Returns its buffer id, or nil
    /// if no position or id is free. Not visible to the device until `publish()`.
    public func addBuffer(addr: UInt64, len: UInt32, deviceWritable: Bool) -> UInt16? {
        addChain(CollectionOfOne(VirtqBuffer(addr: addr, len: len, deviceWritable: deviceWritable)))
    }

    /// Makes a chain of buffers available, one ring position each, linked by NEXT (2.8.6).
    /// Device-readable buffers must come before device-writable ones (2.8.17). Returns the
    /// chain's buffer id, or nil — taking nothing — if there are not enough free positions, no
    /// free id, the chain is empty, or a readable buffer follows a writable one. Every
    /// descriptor is written now but the head's flags, which `publish()` writes last.
    public func addChain<Buffers: Collection>(_ buffers: Buffers) -> UInt16? where Buffers.Element == VirtqBuffer {
        let count = buffers.count
        guard count > 0, count <= Int(freeSlots), freeIDs > 0, let first = buffers.first else { return nil }
        var sawWritable = false
        for buffer in buffers {
            if buffer.deviceWritable { sawWritable = true } else if sawWritable { return nil }
        }

        let id = freeIDHead
        freeIDHead = records[Int(id)].nextFree
        freeIDs -= 1
        let headSlot = nextAvail
        var headFlags: UInt16 = 0
        var writableBytes: UInt32 = 0
        var readableBytes: UInt32 = 0
        var remaining = count
        for buffer in buffers {
            remaining -= 1
            var flags: UInt16 = buffer.deviceWritable ? VIRTQ_PACKED_DESC_F_WRITE : 0
            if remaining > 0 { flags |= VIRTQ_PACKED_DESC_F_NEXT }
            // A chain may cross the ring's end: descriptors after it carry the flipped counter.
            flags |= virtqPackedAvailFlags(wrap: availWrap)
            let p = descPointer(nextAvail)
            ring_store64(p + VIRTQ_PACKED_DESC_ADDR_OFFSET, buffer.addr.littleEndian)
            ring_store32(p + VIRTQ_PACKED_DESC_LEN_OFFSET, buffer.len.littleEndian)
            // Linux writes the id in every descriptor; the device reads it from the last (2.8.13).
            ring_store16(p + VIRTQ_PACKED_DESC_ID_OFFSET, id.littleEndian)
            if nextAvail == headSlot {
                headFlags = flags
            } else {
                ring_store16(p + VIRTQ_PACKED_DESC_FLAGS_OFFSET, flags.littleEndian)
            }
            if buffer.deviceWritable {
                writableBytes = writableBytes &+ buffer.len
            } else {
                readableBytes = readableBytes &+ buffer.len
            }
            advanceAvail()
        }
        freeSlots -= UInt16(truncatingIfNeeded: count)
        records[Int(id)] = PackedBufferRecord(
            nextFree: 0, nextUnpublished: 0, state: .available, published: false,
            chainLength: UInt16(truncatingIfNeeded: count), headSlot: headSlot, headFlags: headFlags,
            writableBytes: writableBytes, readableBytes: readableBytes, first: first)
        // Unpublished chains wait in ring order, oldest first.
        if unpublishedCount == 0 {
            unpublishedHead = id
        } else {
            records[Int(unpublishedTail)].nextUnpublished = id
        }
        unpublishedTail = id
        unpublishedCount &+= 1
        return id
    }

    /// Moves `nextAvail` one position on, flipping the driver's wrap counter at the ring's end (2.8.1).
    @inline(__always)
    private func advanceAvail() {
        nextAvail &+= 1
        if nextAvail == size {
            nextAvail = 0
            availWrap.toggle()
        }
    }

    /// Publishes the oldest unpublished chain: a write barrier (its other descriptors, and its
    /// head's addr/len/id, first), then the head's flags (2.8.21.2). Returns false if none.
    private func publishOne() -> Bool {
        guard unpublishedCount > 0 else { return false }
        let id = Int(unpublishedHead)
        unpublishedHead = records[id].nextUnpublished
        let length = records[id].chainLength
        records[id].published = true
        ring_wmb()
        ring_store16(descPointer(records[id].headSlot) + VIRTQ_PACKED_DESC_FLAGS_OFFSET, records[id].headFlags.littleEndian)
        var next = Int(publishedAvail) + Int(length)
        if next >= Int(size) {
            next -= Int(size)
            publishedWrap.toggle()
        }
        publishedAvail = UInt16(truncatingIfNeeded: next)
        unpublishedCount -= 1
        slotsOwnedByDevice &+= length
        publishedSinceNotifyCheck &+= Int(length)
        return true
    }

    /// Makes every chain added since the last publish visible to the device, in ring order.
    public func publish() {
        while publishOne() {}
    }

    /// Publishes only the oldest `count` unpublished chains: how a paused queue is stepped.
    /// Returns how many were published.
    @discardableResult
    public func publish(count: UInt16) -> UInt16 {
        var n: UInt16 = 0
        while n < count, publishOne() { n += 1 }
        return n
    }

    // MARK: Receiving used buffers (2.8.22)

    /// Why a used descriptor cannot be a completion.
    enum Rejection { case badID, notOwned }

    /// nil if `id` names a buffer the device owns (in range, available, published).
    @inline(__always)
    func rejection(of id: UInt16) -> Rejection? {
        guard id < size else { return .badID }
        guard records[Int(id)].state == .available, records[Int(id)].published else { return .notOwned }
        return nil
    }

    /// The used descriptor `ahead` positions past `nextUsed`, if the device has written one
    /// there: (buffer id, len, positions to skip — the chain's length, or 1 for a bad id).
    func usedDescriptor(ahead: UInt16) -> (id: UInt16, len: UInt32, skip: UInt16)? {
        guard ahead < slotsOwnedByDevice else { return nil }
        var slot = Int(nextUsed) + Int(ahead)
        var wrap = usedWrap
        if slot >= Int(size) {
            slot -= Int(size)
            wrap.toggle()
        }
        let p = descPointer(UInt16(truncatingIfNeeded: slot))
        // Acquire: the id and len the device wrote before the flags are visible after them.
        let flags = UInt16(littleEndian: ring_load16(p + VIRTQ_PACKED_DESC_FLAGS_OFFSET))
        guard virtqPackedIsUsed(flags: flags, wrap: wrap) else { return nil }
        let id = UInt16(littleEndian: ring_load16(p + VIRTQ_PACKED_DESC_ID_OFFSET))
        let len = UInt32(littleEndian: ring_load32(p + VIRTQ_PACKED_DESC_LEN_OFFSET))
        let skip = rejection(of: id) == nil ? records[Int(id)].chainLength : 1
        return (id, len, min(skip, slotsOwnedByDevice &- ahead))
    }

    /// Moves `nextUsed` on by `count` positions, flipping the used wrap counter at the end (2.8.1).
    @inline(__always)
    private func advanceUsed(by count: UInt16) {
        var next = Int(nextUsed) + Int(count)
        if next >= Int(size) {
            next -= Int(size)
            usedWrap.toggle()
        }
        nextUsed = UInt16(truncatingIfNeeded: next)
        slotsOwnedByDevice -= count
        observedAhead = observedAhead > count ? observedAhead - count : 0
    }

    /// Whether a used descriptor is waiting at `nextUsed`.
    public var hasPendingUsed: Bool { usedDescriptor(ahead: 0) != nil }

    /// Takes the next used descriptor; its buffer id becomes `.held` until `release(head:)`
    /// and its ring positions are free again (the device has read them, 2.8.20). A descriptor
    /// naming an id out of range (`usedBadID`) or one the device does not own — free, held, a
    /// duplicate, or not published (`usedNotOwned`) — is counted and skipped as one position,
    /// so one bad element cannot stall the queue or free what the driver holds. A len longer than
    /// the chain's device-writable buffers is counted (`usedBadLength`) and clamped. Returns the
    /// buffer id as `id` and the len; nil when nothing (valid) is pending.
    public func popUsed() -> VirtqUsedElement? {
        observeUsed()
        while let used = usedDescriptor(ahead: 0) {
            switch rejection(of: used.id) {
            case .badID?:
                counters.usedBadID &+= 1
                advanceUsed(by: used.skip)
                continue
            case .notOwned?:
                counters.usedNotOwned &+= 1
                advanceUsed(by: used.skip)
                continue
            case nil:
                break
            }
            let id = Int(used.id)
            var len = used.len
            let capacity = records[id].writableBytes
            if len > capacity {
                counters.usedBadLength &+= 1
                len = capacity
            }
            advanceUsed(by: used.skip)
            freeSlots &+= records[id].chainLength
            records[id].state = .held
            records[id].published = false
            counters.packets &+= 1
            // A chain the device only read (TX) may report len 0: count what it read.
            counters.bytes &+= UInt64(capacity > 0 ? len : records[id].readableBytes)
            if eventIdx && interruptsEnabled {
                // Ask for the next interrupt at the next used position (2.8.10), as Linux does.
                ring_store16(driverEvent + VIRTQ_PACKED_EVENT_OFF_WRAP_OFFSET,
                             virtqPackedOffWrap(offset: nextUsed, wrap: usedWrap).littleEndian)
                // Visible before the next look at the ring (as on split rings, SplitVirtqueue.popUsed).
                ring_mb()
            }
            return VirtqUsedElement(id: UInt32(used.id), len: len)
        }
        return nil
    }

    /// Returns a popped buffer id to the free list. false (and nothing changes) if the driver
    /// does not hold `head`.
    @discardableResult
    public func release(head: UInt16) -> Bool {
        guard head < size, records[Int(head)].state == .held else { return false }
        records[Int(head)].state = .free
        records[Int(head)].nextFree = freeIDHead
        freeIDHead = head
        freeIDs += 1
        return true
    }

    @inline(__always)
    func descPointer(_ slot: UInt16) -> UnsafeMutableRawPointer {
        descRing + virtqPackedDescOffset(slot)
    }
}

/// The driver's private record of one buffer id (see `PackedVirtqueue.records`).
struct PackedBufferRecord {
    /// Free id: the next free one.
    var nextFree: UInt16 = 0
    /// Unpublished chain: the next one added after it.
    var nextUnpublished: UInt16 = 0
    /// free / available / held. `.used` is derived from the ring when asked.
    var state: VirtqDescriptorState = .free
    /// Whether its head's flags have been written, so the device may return it.
    var published = false
    /// Ring positions (descriptors) of its chain: how far the device skips when it uses it.
    var chainLength: UInt16 = 0
    /// Ring position of its head, and the flags `publish()` writes there.
    var headSlot: UInt16 = 0
    var headFlags: UInt16 = 0
    /// Total bytes of its device-writable buffers (bounds the used len).
    var writableBytes: UInt32 = 0
    /// Total bytes of its device-readable buffers (what a TX completion moved).
    var readableBytes: UInt32 = 0
    /// Its first buffer, as the driver wrote it.
    var first = VirtqBuffer(addr: 0, len: 0, deviceWritable: false)
}
