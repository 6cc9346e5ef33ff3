// What a monitor reads of a packed virtqueue (virtio 1.2, 2.8) beside what the driver does:
// each buffer id's first buffer and state (and how many ids are in each), a ring position as in
// memory, the used descriptors waiting at the driver's used position, the chain a paused queue
// would publish next. Mirrors SplitVirtqueue+Monitoring; read-only. An extension of
// PackedVirtqueue (PackedVirtqueue.swift), kept apart so the driver's data path reads on its own.

import RingAtomics

extension PackedVirtqueue {
    /// The first buffer of the chain with buffer id `id`, as the driver made it available
    /// (driver-private: the device overwrites the ring). nil if `id` is out of range or free.
    public func buffer(_ id: UInt16) -> VirtqBuffer? {
        guard id < size, records[Int(id)].state != .free else { return nil }
        return records[Int(id)].first
    }

    /// The state of buffer id `id` (`.used` if the device has returned it and it is not popped).
    public func state(of id: UInt16) -> VirtqDescriptorState {
        guard id < size else { return .free }
        let stored = records[Int(id)].state
        guard stored == .available, records[Int(id)].published else { return stored }
        var ahead: UInt16 = 0
        while let used = usedDescriptor(ahead: ahead) {
            if used.id == id { return .used }
            ahead &+= used.skip
        }
        return .available
    }

    /// How many buffer ids are in each state.
    public func stateCounts() -> VirtqStateCounts {
        var counts = VirtqStateCounts()
        for id in 0..<size { counts.count(state(of: id)) }
        return counts
    }

    /// Ring position `slot` as in memory now (display only: the device writes it).
    public func descriptor(_ slot: UInt16) -> PackedVirtqDescriptor {
        let p = descPointer(slot % size)
        return PackedVirtqDescriptor(
            addr: UInt64(littleEndian: ring_load64(p + VIRTQ_PACKED_DESC_ADDR_OFFSET)),
            len: UInt32(littleEndian: ring_load32(p + VIRTQ_PACKED_DESC_LEN_OFFSET)),
            id: UInt16(littleEndian: ring_load16(p + VIRTQ_PACKED_DESC_ID_OFFSET)),
            flags: UInt16(littleEndian: ring_load16(p + VIRTQ_PACKED_DESC_FLAGS_OFFSET)))
    }

    /// The state of every buffer id, index = id: the driver's records, with the ids the device
    /// has returned (valid used descriptors from `nextUsed` on) as `.used`. O(size + pending).
    public func states() -> [VirtqDescriptorState] {
        var result = [VirtqDescriptorState](repeating: .free, count: Int(size))
        for i in 0..<Int(size) { result[i] = records[i].state }
        var ahead: UInt16 = 0
        while let used = usedDescriptor(ahead: ahead) {
            if rejection(of: used.id) == nil { result[Int(used.id)] = .used }
            ahead &+= used.skip
        }
        return result
    }

    /// Used descriptors the device has written from `nextUsed` on (valid or not): what the
    /// next `popUsed()` calls will look at.
    public var pendingUsedCount: UInt16 {
        var count: UInt16 = 0
        var ahead: UInt16 = 0
        while let used = usedDescriptor(ahead: ahead) {
            count &+= 1
            ahead &+= used.skip
        }
        return count
    }

    /// The used descriptor `offset` descriptors past `nextUsed`, without consuming it; nil if
    /// there is none yet or it names a buffer the device does not own. The len is clamped to
    /// the chain's writable buffers, as `popUsed()` would.
    public func peekUsed(offset: UInt16 = 0) -> VirtqUsedElement? {
        var ahead: UInt16 = 0
        var seen: UInt16 = 0
        while let used = usedDescriptor(ahead: ahead) {
            if seen == offset {
                guard rejection(of: used.id) == nil else { return nil }
                return VirtqUsedElement(id: UInt32(used.id), len: min(used.len, records[Int(used.id)].writableBytes))
            }
            seen &+= 1
            ahead &+= used.skip
        }
        return nil
    }

    /// The buffer id of the oldest chain added but not published (what `publish(count: 1)`
    /// would hand the device), nil if none.
    public var oldestUnpublished: UInt16? {
        unpublishedCount > 0 ? unpublishedHead : nil
    }
}

extension PackedVirtqueue {
    /// Where the driver writes its next descriptor: `nextAvail` | `availWrap` << 15 (the
    /// desc_event_off_wrap encoding, 2.8.14).
    public var nextAvailOffWrap: UInt16 { virtqPackedOffWrap(offset: nextAvail, wrap: availWrap) }

    /// Where the driver looks for the next used descriptor: `nextUsed` | `usedWrap` << 15.
    public var nextUsedOffWrap: UInt16 { virtqPackedOffWrap(offset: nextUsed, wrap: usedWrap) }

    /// Where the device will write its next used descriptor, as far as the ring shows it: past
    /// the used descriptors it has written from `nextUsed` on (offset | wrap counter << 15).
    public var deviceUsedOffWrap: UInt16 {
        var ahead: UInt16 = 0
        while let used = usedDescriptor(ahead: ahead) { ahead &+= used.skip }
        return positionOffWrap(ahead: ahead)
    }
}

extension PackedVirtqueue {
    /// Calls `body` with each valid used descriptor the device has written from `nextUsed` on,
    /// oldest first: how many ring positions past `nextUsed` it sits, and its buffer id.
    public func forEachPendingUsed(_ body: (_ ahead: UInt16, _ id: UInt16) -> Void) {
        var ahead: UInt16 = 0
        while let used = usedDescriptor(ahead: ahead) {
            if rejection(of: used.id) == nil { body(ahead, used.id) }
            ahead &+= used.skip
        }
    }

    /// Ring positions published and not yet returned by the device.
    public var positionsOwnedByDevice: UInt16 { slotsOwnedByDevice }
}

/// One descriptor of a packed ring as read back from memory (2.8.13).
public struct PackedVirtqDescriptor: Equatable, Sendable {
    public var addr: UInt64
    public var len: UInt32
    public var id: UInt16
    public var flags: UInt16

    public init(addr: UInt64, len: UInt32, id: UInt16, flags: UInt16) {
        self.addr = addr
        self.len = len
        self.id = id
        self.flags = flags
    }
}
