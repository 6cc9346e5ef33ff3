// What a monitor reads from a split virtqueue: descriptors as the table holds them, ring
// slots, flags and event words, and each descriptor's state. Display and checks only: the
// driver's data path never depends on these views.
//
// An extension of SplitVirtqueue (SplitVirtqueue.swift), kept apart so the driver's data
// path reads on its own.

import RingAtomics

extension SplitVirtqueue {
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
        guard id < size, records[Int(id)].state != .free else { return nil }
        let d = records[Int(id)].written
        return VirtqBuffer(addr: d.addr, len: d.len, deviceWritable: d.isDeviceWritable)
    }

    /// The head of the chain `id` belongs to, or nil if `id` is free or out of range.
    public func headOfChain(containing id: UInt16) -> UInt16? {
        guard id < size, records[Int(id)].state != .free else { return nil }
        return records[Int(id)].chainHead
    }

    /// The descriptor ids of the chain starting at `head`, in order; empty if `head` is not a
    /// chain head in use. Follows the driver's own links, not the (device-visible) table.
    public func chain(head: UInt16) -> [UInt16] {
        guard head < size, records[Int(head)].state != .free, records[Int(head)].chainHead == head else { return [] }
        var ids: [UInt16] = []
        var id = head
        for _ in 0..<records[Int(head)].chainLength {
            ids.append(id)
            id = records[Int(id)].link
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
        UInt16(littleEndian: ring_load16(availEntryPointer(index)))
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
        let stored = records[Int(id)].state
        guard stored == .available else { return stored }
        let head = UInt32(records[Int(id)].chainHead)
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
        for i in 0..<Int(size) { result[i] = records[i].state }
        // At most `size` entries can legitimately be pending; more means a confused device.
        let pending = min(pendingUsed, size)
        var offset: UInt16 = 0
        while offset < pending {
            let element = readUsedElement(at: lastUsedIdx &+ offset)
            offset &+= 1
            guard rejection(of: element) == nil else { continue }
            var id = element.head
            for _ in 0..<records[Int(id)].chainLength {
                result[Int(id)] = .used
                id = records[Int(id)].link
            }
        }
        return result
    }

    /// How many descriptors are in each state.
    public func stateCounts() -> VirtqStateCounts {
        var counts = VirtqStateCounts()
        for state in states() { counts.count(state) }
        return counts
    }

    /// The head id the driver put in avail ring slot `index` (a free-running index, taken
    /// modulo size): with `publishedAvailIdx` it finds the oldest chain held back from the
    /// device. From the driver's own record, not the (device-writable) ring.
    public func availRingEntry(_ index: UInt16) -> UInt16 {
        availHeads[Int(index & mask)]
    }
}
