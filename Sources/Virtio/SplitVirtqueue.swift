// The driver side of a split virtqueue (virtio 1.2, 2.7).
//
// The ring memory belongs to the caller (the kernel hands in DMA memory, host tests use
// posix_memalign); this class only keeps the driver's bookkeeping next to it:
//
//   * a free list of descriptors, so a chain is handed out only when every descriptor in it
//     is really free (no round-robin reuse of descriptors the device may still own);
//   * the driver's shadow of avail.idx (`availIdx`) and how far it has consumed the used
//     ring (`lastUsedIdx`), both free-running 16-bit counters as in the spec (2.7.6, 2.7.8);
//   * a state per descriptor (free / available / used / held) that a monitor can display;
//   * what the driver wrote into each descriptor (as Linux keeps `desc_extra`): the table is
//     memory the device can write, so every buffer address and length the driver uses again
//     comes from this private copy, never from the table.
//
// Every access to memory the device reads or writes goes through RingAtomics, so ordering
// holds in the kernel and in host tests where the "device" is other code on the same memory.
// The rings are little endian (virtio 1.x); the conversions are free on x86.
//
// A driver that receives:              A driver that transmits:
//   addBuffer(writable) × n; publish()   addChain([hdr, frame]); publish()
//   if needsNotify() { kick; noteKick }  if needsNotify() { kick; noteKick }
//   on interrupt: disableInterrupts()    on completion: popUsed() → release(head:)
//   while popUsed() → process → release(head:) → addBuffer again
//   if enableInterrupts() { poll again }  // work arrived while interrupts were off

import RingAtomics

/// Counters a monitor reads to see the queue's traffic and health.
public struct VirtqueueCounters: Equatable, Sendable {
    /// Available-buffer notifications the driver sent (see `noteKick()`).
    public var kicks: UInt64 = 0
    /// Publications after which the device did not want a notification (VIRTQ_USED_F_NO_NOTIFY,
    /// or `avail_event` not crossed with VIRTIO_F_RING_EVENT_IDX): kicks saved.
    public var kicksSuppressed: UInt64 = 0
    /// Used-buffer notifications the driver received (see `noteInterrupt()`).
    public var interrupts: UInt64 = 0
    /// Used elements the device published that the driver had not asked to be interrupted
    /// for (see `observeUsed()`): with VIRTIO_F_RING_EVENT_IDX every element but the one at
    /// `used_event` (the device interrupts once per batch that crosses it, 2.7.7.2), without it
    /// every element published while avail.flags had VIRTQ_AVAIL_F_NO_INTERRUPT (2.7.7.1).
    public var interruptsSuppressed: UInt64 = 0
    /// Chains the driver popped from the used ring.
    public var packets: UInt64 = 0
    /// Bytes moved: the `len` the device reported for chains with device-writable buffers
    /// (RX), the bytes of the device-readable buffers for chains it only read (TX).
    public var bytes: UInt64 = 0
    /// Used elements whose id is out of range or names a descriptor in the middle of a chain.
    /// Consumed and skipped.
    public var usedBadID: UInt64 = 0
    /// Used elements for a chain the device does not own: a free descriptor, one already
    /// returned (a duplicate), or one not yet published. Consumed and skipped.
    public var usedNotOwned: UInt64 = 0
    /// Used elements whose len is longer than the chain's device-writable buffers. The len is
    /// clamped to them (2.7.8.2).
    public var usedBadLength: UInt64 = 0
    /// Descriptors that, when their chain came back, no longer held what the driver wrote
    /// (the device must not write the table, 2.7.5). The chain is returned with len 0: the
    /// device may have written somewhere else, so none of its bytes is trusted.
    public var descriptorsRewritten: UInt64 = 0

    /// Every protocol violation above.
    public var deviceErrors: UInt64 { usedBadID &+ usedNotOwned &+ usedBadLength &+ descriptorsRewritten }

    public init() {}
}

public final class SplitVirtqueue {
    // MARK: Layout (2.7)

    /// Bytes of a descriptor table for `size` descriptors (2.7.5).
    public static func descTableBytes(size: UInt16) -> Int { VIRTQ_DESC_SIZE * Int(size) }
    /// Bytes of an available ring: flags, idx, ring[size], used_event (2.7.6).
    public static func availRingBytes(size: UInt16) -> Int { 2 + 2 + 2 * Int(size) + 2 }
    /// Bytes of a used ring: flags, idx, ring[size] of {id, len}, avail_event (2.7.8).
    public static func usedRingBytes(size: UInt16) -> Int { 2 + 2 + VIRTQ_USED_ELEM_SIZE * Int(size) + 2 }
    /// Alignment of the descriptor table (2.7).
    public static let descTableAlignment = VIRTQ_DESC_ALIGN
    /// Alignment of the available ring (2.7).
    public static let availRingAlignment = VIRTQ_AVAIL_ALIGN
    /// Alignment of the used ring (2.7).
    public static let usedRingAlignment = VIRTQ_USED_ALIGN

    // MARK: Configuration

    /// Number of descriptors, and of slots in each ring.
    public let size: UInt16
    /// Whether VIRTIO_F_RING_EVENT_IDX was negotiated: used_event/avail_event replace the flags.
    public let eventIdx: Bool
    public let descTable: UnsafeMutableRawPointer
    public let availRing: UnsafeMutableRawPointer
    public let usedRing: UnsafeMutableRawPointer

    // MARK: Driver state

    /// The driver's shadow of avail.idx: slots filled so far, including unpublished ones.
    public private(set) var availIdx: UInt16 = 0
    /// The avail.idx value last written to ring memory by `publish()`.
    public private(set) var publishedAvailIdx: UInt16 = 0
    /// How far the driver has consumed the used ring.
    public private(set) var lastUsedIdx: UInt16 = 0
    /// Descriptors on the free list.
    public private(set) var freeCount: UInt16
    /// Whether the driver currently asks for used-buffer notifications.
    public private(set) var interruptsEnabled = true
    public private(set) var counters = VirtqueueCounters()

    /// avail.idx at the previous `needsNotify()`: the start of the window to notify about.
    private var availIdxAtLastNotifyCheck: UInt16 = 0
    /// used.idx up to which `observeUsed()` has classified the used elements.
    private var observedUsedIdx: UInt16 = 0
    private var freeHead: UInt16 = 0
    private let mask: UInt16

    // Per-descriptor bookkeeping, private to the driver: the device never sees it, so a
    // misbehaving device cannot corrupt the free list by scribbling on the descriptor table.
    /// Free descriptor: next free one. Descriptor in a chain: next in the chain.
    private let link: UnsafeMutablePointer<UInt16>
    /// Head of the chain the descriptor belongs to (itself for a head).
    private let chainHead: UnsafeMutablePointer<UInt16>
    /// For a head: number of descriptors in its chain.
    private let chainLength: UnsafeMutablePointer<UInt16>
    /// For a head: total bytes of its device-writable buffers (bounds the used len).
    private let chainWritableBytes: UnsafeMutablePointer<UInt32>
    /// For a head: total bytes of its device-readable buffers (what a TX completion moved).
    private let chainReadableBytes: UnsafeMutablePointer<UInt32>
    /// free / available / held. `.used` is derived from the used ring when asked.
    private let storedState: UnsafeMutablePointer<VirtqDescriptorState>
    /// What the driver last wrote into each descriptor of the table: the buffer addresses and
    /// lengths it hands back (`buffer(_:)`), and what a returned chain is checked against.
    private let written: UnsafeMutablePointer<VirtqDescriptor>
    /// The head the driver put in each avail ring slot (the ring itself is device-writable).
    private let availHeads: UnsafeMutablePointer<UInt16>
    /// For a head: whether its chain has been published, so the device may return it.
    private let published: UnsafeMutablePointer<Bool>

    /// Sets up a queue of `size` descriptors over the three areas, zeroes them, and puts every
    /// descriptor on the free list. The areas must be at least `descTableBytes(size:)`,
    /// `availRingBytes(size:)`, `usedRingBytes(size:)` long, aligned 16/2/4.
    public init(
        size: UInt16, descTable: UnsafeMutableRawPointer, availRing: UnsafeMutableRawPointer,
        usedRing: UnsafeMutableRawPointer, eventIdx: Bool = false
    ) throws(VirtqueueSetupError) {
        guard size != 0, size <= VIRTQ_MAX_SIZE, size & (size &- 1) == 0 else {
            throw .invalidSize(size)
        }
        guard UInt(bitPattern: descTable) % UInt(VIRTQ_DESC_ALIGN) == 0 else {
            throw .misaligned(area: .descriptorTable, requiredAlignment: VIRTQ_DESC_ALIGN)
        }
        guard UInt(bitPattern: availRing) % UInt(VIRTQ_AVAIL_ALIGN) == 0 else {
            throw .misaligned(area: .availableRing, requiredAlignment: VIRTQ_AVAIL_ALIGN)
        }
        guard UInt(bitPattern: usedRing) % UInt(VIRTQ_USED_ALIGN) == 0 else {
            throw .misaligned(area: .usedRing, requiredAlignment: VIRTQ_USED_ALIGN)
        }
        self.size = size
        self.mask = size &- 1
        self.eventIdx = eventIdx
        self.descTable = descTable
        self.availRing = availRing
        self.usedRing = usedRing
        self.freeCount = size

        let count = Int(size)
        link = .allocate(capacity: count)
        chainHead = .allocate(capacity: count)
        chainLength = .allocate(capacity: count)
        chainWritableBytes = .allocate(capacity: count)
        chainReadableBytes = .allocate(capacity: count)
        storedState = .allocate(capacity: count)
        written = .allocate(capacity: count)
        availHeads = .allocate(capacity: count)
        published = .allocate(capacity: count)
        chainHead.initialize(repeating: 0, count: count)
        chainLength.initialize(repeating: 0, count: count)
        chainWritableBytes.initialize(repeating: 0, count: count)
        chainReadableBytes.initialize(repeating: 0, count: count)
        storedState.initialize(repeating: .free, count: count)
        written.initialize(repeating: VirtqDescriptor(addr: 0, len: 0, flags: 0, next: 0), count: count)
        availHeads.initialize(repeating: 0, count: count)
        published.initialize(repeating: false, count: count)
        // Free list 0 → 1 → … → size-1, mirrored into desc.next as Linux does.
        link.initialize(repeating: 0, count: count)
        for i in 0..<count { link[i] = UInt16(truncatingIfNeeded: i &+ 1) }

        descTable.initializeMemory(as: UInt8.self, repeating: 0, count: SplitVirtqueue.descTableBytes(size: size))
        availRing.initializeMemory(as: UInt8.self, repeating: 0, count: SplitVirtqueue.availRingBytes(size: size))
        usedRing.initializeMemory(as: UInt8.self, repeating: 0, count: SplitVirtqueue.usedRingBytes(size: size))
        for i in 0..<size &- 1 {
            ring_store16(descPointer(i) + VIRTQ_DESC_NEXT_OFFSET, (i &+ 1).littleEndian)
        }
        // Rings are in place before the driver tells the device where they are (queue_enable).
        ring_wmb()
    }

    deinit {
        link.deallocate()
        chainHead.deallocate()
        chainLength.deallocate()
        chainWritableBytes.deallocate()
        chainReadableBytes.deallocate()
        storedState.deallocate()
        written.deallocate()
        availHeads.deallocate()
        published.deallocate()
    }

    // MARK: Ring memory access

    @inline(__always)
    private func descPointer(_ id: UInt16) -> UnsafeMutableRawPointer {
        descTable + Int(id) &* VIRTQ_DESC_SIZE
    }

    @inline(__always)
    private var availFlagsPointer: UnsafeMutableRawPointer { availRing + VIRTQ_RING_FLAGS_OFFSET }
    @inline(__always)
    private var availIdxPointer: UnsafeMutableRawPointer { availRing + VIRTQ_RING_IDX_OFFSET }
    /// used_event lives after the last avail ring slot (2.7.6).
    @inline(__always)
    private var usedEventPointer: UnsafeMutableRawPointer { availRing + VIRTQ_RING_ENTRIES_OFFSET + 2 * Int(size) }
    @inline(__always)
    private var usedFlagsPointer: UnsafeMutableRawPointer { usedRing + VIRTQ_RING_FLAGS_OFFSET }
    @inline(__always)
    private var usedIdxPointer: UnsafeMutableRawPointer { usedRing + VIRTQ_RING_IDX_OFFSET }
    /// avail_event lives after the last used ring element (2.7.8).
    @inline(__always)
    private var availEventPointer: UnsafeMutableRawPointer {
        usedRing + VIRTQ_RING_ENTRIES_OFFSET + VIRTQ_USED_ELEM_SIZE * Int(size)
    }

    /// Writes a descriptor into the table and keeps the driver's own copy of it.
    @inline(__always)
    private func writeDescriptor(_ id: UInt16, addr: UInt64, len: UInt32, flags: UInt16, next: UInt16) {
        written[Int(id)] = VirtqDescriptor(addr: addr, len: len, flags: flags, next: next)
        let p = descPointer(id)
        ring_store64(p + VIRTQ_DESC_ADDR_OFFSET, addr.littleEndian)
        ring_store32(p + VIRTQ_DESC_LEN_OFFSET, len.littleEndian)
        ring_store16(p + VIRTQ_DESC_FLAGS_OFFSET, flags.littleEndian)
        ring_store16(p + VIRTQ_DESC_NEXT_OFFSET, next.littleEndian)
    }

    /// The used ring entry at free-running index `index`.
    @inline(__always)
    private func readUsedElement(at index: UInt16) -> VirtqUsedElement {
        let p = usedRing + VIRTQ_RING_ENTRIES_OFFSET + Int(index & mask) &* VIRTQ_USED_ELEM_SIZE
        return VirtqUsedElement(
            id: UInt32(littleEndian: ring_load32(p + VIRTQ_USED_ELEM_ID_OFFSET)),
            len: UInt32(littleEndian: ring_load32(p + VIRTQ_USED_ELEM_LEN_OFFSET)))
    }

    // MARK: Supplying buffers (2.7.13)

    /// Makes one buffer available as a chain of one descriptor. Returns its descriptor id
    /// (the head), or nil if no descriptor is free. Not visible to the device until `publish()`.
    @inline(__always)
    public func addBuffer(addr: UInt64, len: UInt32, deviceWritable: Bool) -> UInt16? {
        guard freeCount > 0 else { return nil }
        let id = takeFree()
        writeDescriptor(id, addr: addr, len: len, flags: deviceWritable ? VIRTQ_DESC_F_WRITE : 0, next: 0)
        chainHead[Int(id)] = id
        chainLength[Int(id)] = 1
        chainWritableBytes[Int(id)] = deviceWritable ? len : 0
        chainReadableBytes[Int(id)] = deviceWritable ? 0 : len
        storedState[Int(id)] = .available
        putInAvailRing(head: id)
        return id
    }

    /// Makes a chain of buffers available (2.7.13.1). Device-readable buffers must come before
    /// device-writable ones (2.7.4.2). Returns the head descriptor id, or nil —
    /// taking nothing — if there are not enough free descriptors, the chain is empty, or a
    /// readable buffer follows a writable one. Not visible to the device until `publish()`.
    public func addChain<Buffers: Collection>(_ buffers: Buffers) -> UInt16? where Buffers.Element == VirtqBuffer {
        let count = buffers.count
        guard count > 0, count <= Int(freeCount) else { return nil }
        var sawWritable = false
        for buffer in buffers {
            if buffer.deviceWritable { sawWritable = true } else if sawWritable { return nil }
        }

        let head = freeHead
        var writableBytes: UInt32 = 0
        var readableBytes: UInt32 = 0
        var id = head
        var remaining = count
        for buffer in buffers {
            remaining -= 1
            // The chain uses free-list order, so the next descriptor is the current one's link.
            let next = remaining > 0 ? link[Int(id)] : 0
            var flags: UInt16 = buffer.deviceWritable ? VIRTQ_DESC_F_WRITE : 0
            if remaining > 0 { flags |= VIRTQ_DESC_F_NEXT }
            writeDescriptor(id, addr: buffer.addr, len: buffer.len, flags: flags, next: next)
            if buffer.deviceWritable {
                writableBytes = writableBytes &+ buffer.len
            } else {
                readableBytes = readableBytes &+ buffer.len
            }
            chainHead[Int(id)] = head
            storedState[Int(id)] = .available
            if remaining > 0 { id = next }
        }
        // `id` is the tail; the free list continues after it. The chain keeps its links.
        freeHead = link[Int(id)]
        freeCount -= UInt16(truncatingIfNeeded: count)
        chainLength[Int(head)] = UInt16(truncatingIfNeeded: count)
        chainWritableBytes[Int(head)] = writableBytes
        chainReadableBytes[Int(head)] = readableBytes
        putInAvailRing(head: head)
        return head
    }

    @inline(__always)
    private func takeFree() -> UInt16 {
        let id = freeHead
        freeHead = link[Int(id)]
        freeCount -= 1
        return id
    }

    /// Puts a head in the next avail ring slot (2.7.13.2). A slot can never be overwritten
    /// while the device still needs it: each slot holds a chain, and chains ≤ descriptors = size.
    @inline(__always)
    private func putInAvailRing(head: UInt16) {
        availHeads[Int(availIdx & mask)] = head
        let slot = availRing + VIRTQ_RING_ENTRIES_OFFSET + 2 * Int(availIdx & mask)
        ring_store16(slot, head.littleEndian)
        availIdx &+= 1
    }

    /// Publishes the chains in avail slots [publishedAvailIdx, newIdx): the device owns them
    /// from here on and may return them.
    @inline(__always)
    private func publish(upTo newIdx: UInt16) {
        while publishedAvailIdx != newIdx {
            published[Int(availHeads[Int(publishedAvailIdx & mask)])] = true
            publishedAvailIdx &+= 1
        }
        ring_wmb()
        ring_store16(availIdxPointer, newIdx.littleEndian)
    }

    /// Chains added but not yet published.
    public var unpublishedCount: UInt16 { availIdx &- publishedAvailIdx }

    /// Makes everything added since the last publish visible to the device: a write barrier
    /// (descriptors and ring slots first), then avail.idx (2.7.13.3). One publish can cover
    /// many added chains.
    @inline(__always)
    public func publish() {
        guard availIdx != publishedAvailIdx else { return }
        publish(upTo: availIdx)
    }

    /// Publishes only the oldest `count` unpublished chains (fewer if there are fewer): how a
    /// paused queue is stepped. Returns how many were published.
    @discardableResult
    public func publish(count: UInt16) -> UInt16 {
        let n = min(count, unpublishedCount)
        guard n > 0 else { return 0 }
        publish(upTo: publishedAvailIdx &+ n)
        return n
    }

    /// The head id the driver put in avail ring slot `index` (a free-running index, taken
    /// modulo size): with `publishedAvailIdx` it finds the oldest chain held back from the
    /// device. From the driver's own record, not the (device-writable) ring.
    public func availRingEntry(_ index: UInt16) -> UInt16 {
        availHeads[Int(index & mask)]
    }

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

    /// Record that the driver notified the device.
    @inline(__always)
    public func noteKick() { counters.kicks &+= 1 }

    /// Record that a publication needed no notification (`needsNotify()` said no).
    @inline(__always)
    public func noteKickSuppressed() { counters.kicksSuppressed &+= 1 }

    /// Record that a used-buffer notification (interrupt) arrived for this queue.
    @inline(__always)
    public func noteInterrupt() { counters.interrupts &+= 1 }

    // MARK: Receiving used buffers (2.7.14)

    /// The device's used.idx (acquire load: used ring entries before it are then visible).
    @inline(__always)
    public var usedIdx: UInt16 { UInt16(littleEndian: ring_load16(usedIdxPointer)) }

    /// Used entries the driver has not popped yet (modulo 2^16).
    @inline(__always)
    public var pendingUsed: UInt16 { usedIdx &- lastUsedIdx }

    /// Why a used element cannot be a completion.
    private enum Rejection { case badID, notOwned }

    /// nil if the entry names a chain the device owns (in range, `.available`, a head,
    /// published: a chain held back by a paused queue is not the device's yet).
    @inline(__always)
    private func rejection(of element: VirtqUsedElement) -> Rejection? {
        guard element.id < UInt32(size) else { return .badID }
        let head = Int(element.id)
        guard storedState[head] == .available else { return .notOwned }
        guard chainHead[head] == UInt16(truncatingIfNeeded: head) else { return .badID }
        return published[head] ? nil : .notOwned
    }

    /// Descriptors of the chain at `head` whose table entry differs from what the driver wrote.
    private func rewrittenDescriptors(head: UInt16) -> UInt64 {
        var rewritten: UInt64 = 0
        var id = head
        for _ in 0..<chainLength[Int(head)] {
            if descriptor(id) != written[Int(id)] { rewritten &+= 1 }
            id = link[Int(id)]
        }
        return rewritten
    }

    /// The used element `offset` entries past `lastUsedIdx`, without consuming it; nil if
    /// there is none yet or the device wrote an invalid id there. The len is clamped to the
    /// chain's writable buffers, as `popUsed()` would.
    public func peekUsed(offset: UInt16 = 0) -> VirtqUsedElement? {
        guard offset < pendingUsed else { return nil }
        var element = readUsedElement(at: lastUsedIdx &+ offset)
        guard rejection(of: element) == nil else { return nil }
        element.len = min(element.len, chainWritableBytes[Int(element.head)])
        return element
    }

    /// Takes the next used element; its chain becomes `.held` until `release(head:)`.
    /// Entries that break the protocol are consumed, counted (`usedBadID`, `usedNotOwned`), and
    /// skipped, so one bad entry cannot stall the queue. A len longer than the chain's writable
    /// buffers is counted and clamped (2.7.8.2); a chain whose descriptors the device rewrote
    /// is counted and comes back with len 0. Returns nil when nothing (valid) is pending.
    /// The chain's buffers are `buffer(_:)` of its descriptors, never the table's entries.
    public func popUsed() -> VirtqUsedElement? {
        let deviceUsedIdx = usedIdx
        observeUsed(upTo: deviceUsedIdx)
        while lastUsedIdx != deviceUsedIdx {
            var element = readUsedElement(at: lastUsedIdx)
            lastUsedIdx &+= 1
            switch rejection(of: element) {
            case .badID?:
                counters.usedBadID &+= 1
                continue
            case .notOwned?:
                counters.usedNotOwned &+= 1
                continue
            case nil:
                break
            }
            let head = element.head
            let capacity = chainWritableBytes[Int(head)]
            var readable = chainReadableBytes[Int(head)]
            if element.len > capacity {
                counters.usedBadLength &+= 1
                element.len = capacity
            }
            let rewritten = rewrittenDescriptors(head: head)
            if rewritten > 0 {
                counters.descriptorsRewritten &+= rewritten
                element.len = 0
                readable = 0
            }
            markChain(head: head, as: .held)
            published[Int(head)] = false
            counters.packets &+= 1
            // A chain the device only read (TX) reports len 0 (2.7.8.1): count what it read.
            counters.bytes &+= UInt64(capacity > 0 ? element.len : readable)
            if eventIdx && interruptsEnabled {
                // Ask for the next interrupt after the entry we just took (2.7.7), as Linux does.
                ring_store16(usedEventPointer, lastUsedIdx.littleEndian)
            }
            return element
        }
        return nil
    }

    /// Returns a popped chain's descriptors to the free list. false (and nothing changes) if
    /// `head` is not the head of a chain the driver holds.
    @discardableResult
    public func release(head: UInt16) -> Bool {
        guard head < size, storedState[Int(head)] == .held, chainHead[Int(head)] == head else {
            return false
        }
        var id = head
        var remaining = chainLength[Int(head)]
        while true {
            storedState[Int(id)] = .free
            remaining -= 1
            if remaining == 0 { break }
            id = link[Int(id)]
        }
        // Splice the whole chain in front of the free list: tail → old free head.
        link[Int(id)] = freeHead
        freeHead = head
        freeCount &+= chainLength[Int(head)]
        return true
    }

    @inline(__always)
    private func markChain(head: UInt16, as state: VirtqDescriptorState) {
        var id = head
        var remaining = chainLength[Int(head)]
        while remaining > 0 {
            storedState[Int(id)] = state
            id = link[Int(id)]
            remaining -= 1
        }
    }

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

    private func observeUsed(upTo deviceUsedIdx: UInt16) {
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

    // MARK: Monitoring

    /// The descriptor as it is in the table now (`id` is taken modulo the queue size). The
    /// device can write the table: this is for display and checks only. A buffer the driver
    /// uses comes from `buffer(_:)`.
    public func descriptor(_ id: UInt16) -> VirtqDescriptor {
        let p = descPointer(id & mask)
        return VirtqDescriptor(
            addr: UInt64(littleEndian: ring_load64(p + VIRTQ_DESC_ADDR_OFFSET)),
            len: UInt32(littleEndian: ring_load32(p + VIRTQ_DESC_LEN_OFFSET)),
            flags: UInt16(littleEndian: ring_load16(p + VIRTQ_DESC_FLAGS_OFFSET)),
            next: UInt16(littleEndian: ring_load16(p + VIRTQ_DESC_NEXT_OFFSET)))
    }

    /// The buffer descriptor `id` carries, as the driver made it available: driver-private, so a
    /// device that rewrites the table cannot change what the driver reads, writes or frees
    /// through it. nil if `id` is out of range or free.
    public func buffer(_ id: UInt16) -> VirtqBuffer? {
        guard id < size, storedState[Int(id)] != .free else { return nil }
        let d = written[Int(id)]
        return VirtqBuffer(addr: d.addr, len: d.len, deviceWritable: d.isDeviceWritable)
    }

    /// The head of the chain `id` belongs to, or nil if `id` is free or out of range.
    public func headOfChain(containing id: UInt16) -> UInt16? {
        guard id < size, storedState[Int(id)] != .free else { return nil }
        return chainHead[Int(id)]
    }

    /// The descriptor ids of the chain starting at `head`, in order; empty if `head` is not a
    /// chain head in use. Follows the driver's own links, not the (device-visible) table.
    public func chain(head: UInt16) -> [UInt16] {
        guard head < size, storedState[Int(head)] != .free, chainHead[Int(head)] == head else { return [] }
        var ids: [UInt16] = []
        var id = head
        for _ in 0..<chainLength[Int(head)] {
            ids.append(id)
            id = link[Int(id)]
        }
        return ids
    }

    /// avail->flags as in ring memory (VIRTQ_AVAIL_F_NO_INTERRUPT).
    public var availFlags: UInt16 { UInt16(littleEndian: ring_load16(availFlagsPointer)) }
    /// used->flags as in ring memory (VIRTQ_USED_F_NO_NOTIFY; written by the device).
    public var usedFlags: UInt16 { UInt16(littleEndian: ring_load16(usedFlagsPointer)) }
    /// used_event (after the avail ring's entries): meaningful only with VIRTIO_F_RING_EVENT_IDX.
    public var usedEvent: UInt16 { UInt16(littleEndian: ring_load16(usedEventPointer)) }
    /// avail_event (after the used ring's entries, written by the device): meaningful only with
    /// VIRTIO_F_RING_EVENT_IDX.
    public var availEvent: UInt16 { UInt16(littleEndian: ring_load16(availEventPointer)) }

    /// avail->ring[index mod size] as in ring memory (a free-running index). For display: the
    /// driver's own record of what it put there is `availRingEntry(_:)`.
    public func availRingSlot(_ index: UInt16) -> UInt16 {
        UInt16(littleEndian: ring_load16(availRing + VIRTQ_RING_ENTRIES_OFFSET + 2 * Int(index & mask)))
    }

    /// used->ring[index mod size] as the device wrote it (a free-running index), unchecked: for
    /// display and for noting when elements appeared, never for consuming them.
    public func usedRingSlot(_ index: UInt16) -> VirtqUsedElement {
        readUsedElement(at: index)
    }

    /// The state of one descriptor. `.used` is found by scanning the used entries not yet
    /// popped (O(pending)); the driver's hot path never pays for it.
    public func state(of id: UInt16) -> VirtqDescriptorState {
        guard id < size else { return .free }
        let stored = storedState[Int(id)]
        guard stored == .available else { return stored }
        let head = UInt32(chainHead[Int(id)])
        let pending = pendingUsed
        var offset: UInt16 = 0
        while offset < pending && offset < size {
            if readUsedElement(at: lastUsedIdx &+ offset).id == head { return .used }
            offset &+= 1
        }
        return .available
    }

    /// The state of every descriptor, index = descriptor id: O(size + pending × chain length).
    public func states() -> [VirtqDescriptorState] {
        var result = [VirtqDescriptorState](repeating: .free, count: Int(size))
        for i in 0..<Int(size) { result[i] = storedState[i] }
        // At most `size` entries can legitimately be pending; more means a confused device.
        let pending = min(pendingUsed, size)
        var offset: UInt16 = 0
        while offset < pending {
            let element = readUsedElement(at: lastUsedIdx &+ offset)
            offset &+= 1
            guard rejection(of: element) == nil else { continue }
            var id = element.head
            for _ in 0..<chainLength[Int(id)] {
                result[Int(id)] = .used
                id = link[Int(id)]
            }
        }
        return result
    }

    /// How many descriptors are in each state.
    public func stateCounts() -> VirtqStateCounts {
        var counts = VirtqStateCounts()
        for state in states() {
            switch state {
            case .free: counts.free += 1
            case .available: counts.available += 1
            case .used: counts.used += 1
            case .held: counts.held += 1
            }
        }
        return counts
    }
}
