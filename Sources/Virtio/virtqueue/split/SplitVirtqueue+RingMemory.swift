// Where each field of a split virtqueue's three areas is (virtio 1.2, 2.7), from the layout
// constants of SplitVirtqueueLayout.swift, and the ordered loads and stores (RingAtomics)
// through which the driver touches them. An extension of SplitVirtqueue.

import RingAtomics

extension SplitVirtqueue {
    @inline(__always)
    func descPointer(_ id: UInt16) -> UnsafeMutableRawPointer {
        descTable + virtqDescOffset(id)
    }

    @inline(__always)
    var availFlagsPointer: UnsafeMutableRawPointer { availRing + VIRTQ_RING_FLAGS_OFFSET }
    @inline(__always)
    var availIdxPointer: UnsafeMutableRawPointer { availRing + VIRTQ_RING_IDX_OFFSET }
    /// used_event lives after the last avail ring slot (2.7.6).
    @inline(__always)
    var usedEventPointer: UnsafeMutableRawPointer { availRing + virtqUsedEventOffset(size: size) }
    @inline(__always)
    var usedFlagsPointer: UnsafeMutableRawPointer { usedRing + VIRTQ_RING_FLAGS_OFFSET }
    @inline(__always)
    var usedIdxPointer: UnsafeMutableRawPointer { usedRing + VIRTQ_RING_IDX_OFFSET }
    /// avail_event lives after the last used ring element (2.7.8).
    @inline(__always)
    var availEventPointer: UnsafeMutableRawPointer { usedRing + virtqAvailEventOffset(size: size) }
    /// avail->ring[index mod size], for a free-running index (2.7.6).
    @inline(__always)
    func availEntryPointer(_ index: UInt16) -> UnsafeMutableRawPointer {
        availRing + virtqAvailEntryOffset(slot: index & mask)
    }

    /// Writes a descriptor into the table and keeps the driver's own copy of it.
    @inline(__always)
    func writeDescriptor(_ id: UInt16, addr: UInt64, len: UInt32, flags: UInt16, next: UInt16) {
        records[Int(id)].written = VirtqDescriptor(addr: addr, len: len, flags: flags, next: next)
        let p = descPointer(id)
        ring_store64(p + VIRTQ_DESC_ADDR_OFFSET, addr.littleEndian)
        ring_store32(p + VIRTQ_DESC_LEN_OFFSET, len.littleEndian)
        ring_store16(p + VIRTQ_DESC_FLAGS_OFFSET, flags.littleEndian)
        ring_store16(p + VIRTQ_DESC_NEXT_OFFSET, next.littleEndian)
    }

    /// The used ring entry at free-running index `index`.
    @inline(__always)
    func readUsedElement(at index: UInt16) -> VirtqUsedElement {
        let p = usedRing + virtqUsedElementOffset(slot: index & mask)
        return VirtqUsedElement(
            id: UInt32(littleEndian: ring_load32(p + VIRTQ_USED_ELEM_ID_OFFSET)),
            len: UInt32(littleEndian: ring_load32(p + VIRTQ_USED_ELEM_LEN_OFFSET)))
    }
}
