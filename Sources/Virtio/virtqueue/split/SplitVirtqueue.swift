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

public final class SplitVirtqueue {
    // MARK: Layout (2.7)

    /// Bytes of a descriptor table for `size` descriptors (2.7.5).
    public static func descTableBytes(size: UInt16) -> Int { virtqDescTableBytes(size: size) }
    /// Bytes of an available ring: flags, idx, ring[size], used_event (2.7.6).
    public static func availRingBytes(size: UInt16) -> Int { virtqAvailRingBytes(size: size) }
    /// Bytes of a used ring: flags, idx, ring[size] of {id, len}, avail_event (2.7.8).
    public static func usedRingBytes(size: UInt16) -> Int { virtqUsedRingBytes(size: size) }
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
    public internal(set) var interruptsEnabled = true
    public internal(set) var counters = VirtqueueCounters()

    /// avail.idx at the previous `needsNotify()`: the start of the window to notify about.
    var availIdxAtLastNotifyCheck: UInt16 = 0
    /// used.idx up to which `observeUsed()` has classified the used elements.
    var observedUsedIdx: UInt16 = 0
    private var freeHead: UInt16 = 0
    let mask: UInt16

    /// The driver's own record of each descriptor, indexed by descriptor id (as Linux keeps
    /// `desc_state` and `desc_extra`). The device never sees it, so a misbehaving device cannot
    /// corrupt the free list or redirect a buffer by scribbling on the descriptor table.
    let records: UnsafeMutablePointer<DescriptorRecord>
    /// The head the driver put in each avail ring slot (the ring itself is device-writable).
    let availHeads: UnsafeMutablePointer<UInt16>

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
        records = .allocate(capacity: count)
        records.initialize(repeating: DescriptorRecord(), count: count)
        availHeads = .allocate(capacity: count)
        availHeads.initialize(repeating: 0, count: count)
        // Free list 0 → 1 → … → size-1, mirrored into desc.next as Linux does.
        for i in 0..<count { records[i].link = UInt16(truncatingIfNeeded: i &+ 1) }

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
        records.deallocate()
        availHeads.deallocate()
    }

    // MARK: Supplying buffers (2.7.13)

    /// Makes one buffer available as a chain of one descriptor. Returns its descriptor id
    /// (the head), or nil if no descriptor is free. Not visible to the device until `publish()`.
    @inline(__always)
    public func addBuffer(addr: UInt64, len: UInt32, deviceWritable: Bool) -> UInt16? {
        guard freeCount > 0 else { return nil }
        let id = takeFree()
        writeDescriptor(id, addr: addr, len: len, flags: deviceWritable ? VIRTQ_DESC_F_WRITE : 0, next: 0)
        records[Int(id)].chainHead = id
        records[Int(id)].chainLength = 1
        records[Int(id)].chainWritableBytes = deviceWritable ? len : 0
        records[Int(id)].chainReadableBytes = deviceWritable ? 0 : len
        records[Int(id)].state = .available
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
            let next = remaining > 0 ? records[Int(id)].link : 0
            var flags: UInt16 = buffer.deviceWritable ? VIRTQ_DESC_F_WRITE : 0
            if remaining > 0 { flags |= VIRTQ_DESC_F_NEXT }
            writeDescriptor(id, addr: buffer.addr, len: buffer.len, flags: flags, next: next)
            if buffer.deviceWritable {
                writableBytes = writableBytes &+ buffer.len
            } else {
                readableBytes = readableBytes &+ buffer.len
            }
            records[Int(id)].chainHead = head
            records[Int(id)].state = .available
            if remaining > 0 { id = next }
        }
        // `id` is the tail; the free list continues after it. The chain keeps its links.
        freeHead = records[Int(id)].link
        freeCount -= UInt16(truncatingIfNeeded: count)
        records[Int(head)].chainLength = UInt16(truncatingIfNeeded: count)
        records[Int(head)].chainWritableBytes = writableBytes
        records[Int(head)].chainReadableBytes = readableBytes
        putInAvailRing(head: head)
        return head
    }

    @inline(__always)
    private func takeFree() -> UInt16 {
        let id = freeHead
        freeHead = records[Int(id)].link
        freeCount -= 1
        return id
    }

    /// Puts a head in the next avail ring slot (2.7.13.2). A slot can never be overwritten
    /// while the device still needs it: each slot holds a chain, and chains ≤ descriptors = size.
    @inline(__always)
    private func putInAvailRing(head: UInt16) {
        availHeads[Int(availIdx & mask)] = head
        ring_store16(availEntryPointer(availIdx), head.littleEndian)
        availIdx &+= 1
    }

    /// Publishes the chains in avail slots [publishedAvailIdx, newIdx): the device owns them
    /// from here on and may return them.
    @inline(__always)
    private func publish(upTo newIdx: UInt16) {
        while publishedAvailIdx != newIdx {
            records[Int(availHeads[Int(publishedAvailIdx & mask)])].published = true
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

    // MARK: Receiving used buffers (2.7.14)

    /// The device's used.idx (acquire load: used ring entries before it are then visible).
    @inline(__always)
    public var usedIdx: UInt16 { UInt16(littleEndian: ring_load16(usedIdxPointer)) }

    /// Used entries the driver has not popped yet (modulo 2^16).
    @inline(__always)
    public var pendingUsed: UInt16 { usedIdx &- lastUsedIdx }

    /// Why a used element cannot be a completion.
    enum Rejection { case badID, notOwned }

    /// nil if the entry names a chain the device owns (in range, `.available`, a head,
    /// published: a chain held back by a paused queue is not the device's yet).
    @inline(__always)
    func rejection(of element: VirtqUsedElement) -> Rejection? {
        guard element.id < UInt32(size) else { return .badID }
        let head = Int(element.id)
        guard records[head].state == .available else { return .notOwned }
        guard records[head].chainHead == UInt16(truncatingIfNeeded: head) else { return .badID }
        return records[head].published ? nil : .notOwned
    }

    /// Descriptors of the chain at `head` whose table entry differs from what the driver wrote.
    private func rewrittenDescriptors(head: UInt16) -> UInt64 {
        var rewritten: UInt64 = 0
        var id = head
        for _ in 0..<records[Int(head)].chainLength {
            if descriptor(id) != records[Int(id)].written { rewritten &+= 1 }
            id = records[Int(id)].link
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
        element.len = min(element.len, records[Int(element.head)].chainWritableBytes)
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
            let capacity = records[Int(head)].chainWritableBytes
            var readable = records[Int(head)].chainReadableBytes
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
            records[Int(head)].published = false
            counters.packets &+= 1
            // A chain the device only read (TX) reports len 0 (2.7.8.1): count what it read.
            counters.bytes &+= UInt64(capacity > 0 ? element.len : readable)
            if eventIdx && interruptsEnabled {
                // Ask for the next interrupt after the entry we just took (2.7.7), as Linux does,
                // and make that visible before the next look at used.idx (Linux's
                // virtio_store_mb): a device that wrote an entry and then read the old
                // used_event does not interrupt, and a driver whose load passed its own store
                // would see no entry either, and sleep with one pending.
                ring_store16(usedEventPointer, lastUsedIdx.littleEndian)
                ring_mb()
            }
            return element
        }
        return nil
    }

    /// Returns a popped chain's descriptors to the free list. false (and nothing changes) if
    /// `head` is not the head of a chain the driver holds.
    @discardableResult
    public func release(head: UInt16) -> Bool {
        guard head < size, records[Int(head)].state == .held, records[Int(head)].chainHead == head else {
            return false
        }
        var id = head
        var remaining = records[Int(head)].chainLength
        while true {
            records[Int(id)].state = .free
            remaining -= 1
            if remaining == 0 { break }
            id = records[Int(id)].link
        }
        // Splice the whole chain in front of the free list: tail → old free head.
        records[Int(id)].link = freeHead
        freeHead = head
        freeCount &+= records[Int(head)].chainLength
        return true
    }

    @inline(__always)
    private func markChain(head: UInt16, as state: VirtqDescriptorState) {
        var id = head
        var remaining = records[Int(head)].chainLength
        while remaining > 0 {
            records[Int(id)].state = state
            id = records[Int(id)].link
            remaining -= 1
        }
    }
}

/// The driver's private record of one descriptor (see `SplitVirtqueue.records`). The fields
/// marked "head" mean something only for the first descriptor of a chain.
struct DescriptorRecord {
    /// Free descriptor: next free one. Descriptor in a chain: next in the chain.
    var link: UInt16 = 0
    /// Head of the chain the descriptor belongs to (itself for a head).
    var chainHead: UInt16 = 0
    /// Head: number of descriptors in its chain.
    var chainLength: UInt16 = 0
    /// free / available / held. `.used` is derived from the used ring when asked.
    var state: VirtqDescriptorState = .free
    /// Head: whether its chain has been published, so the device may return it.
    var published = false
    /// Head: total bytes of its device-writable buffers (bounds the used len).
    var chainWritableBytes: UInt32 = 0
    /// Head: total bytes of its device-readable buffers (what a TX completion moved).
    var chainReadableBytes: UInt32 = 0
    /// What the driver last wrote into the descriptor in the table: the buffer address and
    /// length it hands back (`buffer(_:)`), and what a returned chain is checked against.
    var written = VirtqDescriptor(addr: 0, len: 0, flags: 0, next: 0)
}
