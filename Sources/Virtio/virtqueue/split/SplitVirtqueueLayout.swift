// The split virtqueue as laid out in memory (2.7), in the manner of Linux's
// include/uapi/linux/virtio_ring.h. Three areas, each allocated by the driver:
//
//   descriptor table (2.7.5)   struct virtq_desc { le64 addr; le32 len; le16 flags; le16 next; } [N]
//   available ring   (2.7.6)   struct virtq_avail { le16 flags; le16 idx; le16 ring[N]; le16 used_event; }
//   used ring        (2.7.8)   struct virtq_used  { le16 flags; le16 idx; struct virtq_used_elem ring[N];
//                                                   le16 avail_event; }
//                              struct virtq_used_elem { le32 id; le32 len; }
//
// The driver writes the first two; the device writes the third. used_event and avail_event
// exist in memory even when VIRTIO_F_RING_EVENT_IDX is not negotiated (2.7).

// MARK: Descriptor flags (2.7.5)

/// The buffer continues in the descriptor named by `next` (2.7.5).
public let VIRTQ_DESC_F_NEXT: UInt16 = 1
/// The buffer is device write-only (otherwise device read-only) (2.7.5).
public let VIRTQ_DESC_F_WRITE: UInt16 = 2
/// The buffer holds a table of indirect descriptors (2.7.5.3).
public let VIRTQ_DESC_F_INDIRECT: UInt16 = 4

// MARK: Ring flags (2.7.6, 2.7.8)

/// avail.flags: the driver does not want used-buffer notifications (interrupts) (2.7.7).
public let VIRTQ_AVAIL_F_NO_INTERRUPT: UInt16 = 1
/// used.flags: the device does not want available-buffer notifications (kicks) (2.7.10).
public let VIRTQ_USED_F_NO_NOTIFY: UInt16 = 1

// MARK: Sizes and alignment (2.7)

/// Largest queue size a split virtqueue may have (2.7).
public let VIRTQ_MAX_SIZE: UInt16 = 32768
/// Required alignment of the descriptor table, in bytes (2.7).
public let VIRTQ_DESC_ALIGN = 16
/// Required alignment of the available ring, in bytes (2.7).
public let VIRTQ_AVAIL_ALIGN = 2
/// Required alignment of the used ring, in bytes (2.7).
public let VIRTQ_USED_ALIGN = 4

/// Size of one `struct virtq_desc` (2.7.5).
public let VIRTQ_DESC_SIZE = 16
/// Size of one `struct virtq_used_elem` (2.7.8).
public let VIRTQ_USED_ELEM_SIZE = 8
/// Size of one available ring entry, `le16 ring[i]`: a chain's head descriptor id (2.7.6).
public let VIRTQ_AVAIL_ELEM_SIZE = 2
/// Size of `used_event` and `avail_event` (le16), after the last ring entry (2.7.6, 2.7.8).
public let VIRTQ_EVENT_SIZE = 2

// Byte offsets inside the structures above.

/// virtq_desc.addr (le64): guest-physical address of the buffer (2.7.5).
public let VIRTQ_DESC_ADDR_OFFSET = 0
/// virtq_desc.len (le32): length of the buffer (2.7.5).
public let VIRTQ_DESC_LEN_OFFSET = 8
/// virtq_desc.flags (le16): VIRTQ_DESC_F_* (2.7.5).
public let VIRTQ_DESC_FLAGS_OFFSET = 12
/// virtq_desc.next (le16): next descriptor when VIRTQ_DESC_F_NEXT is set (2.7.5).
public let VIRTQ_DESC_NEXT_OFFSET = 14
/// virtq_avail.flags / virtq_used.flags (le16) (2.7.6, 2.7.8).
public let VIRTQ_RING_FLAGS_OFFSET = 0
/// virtq_avail.idx / virtq_used.idx (le16): next slot the writer will fill, free-running (2.7.6, 2.7.8).
public let VIRTQ_RING_IDX_OFFSET = 2
/// virtq_avail.ring[0] / virtq_used.ring[0] (2.7.6, 2.7.8).
public let VIRTQ_RING_ENTRIES_OFFSET = 4
/// virtq_used_elem.id (le32): head descriptor of the chain the device used (2.7.8).
public let VIRTQ_USED_ELEM_ID_OFFSET = 0
/// virtq_used_elem.len (le32): bytes the device wrote into the chain (2.7.8).
public let VIRTQ_USED_ELEM_LEN_OFFSET = 4

// MARK: Area sizes and derived offsets (2.7), as Linux's vring_size / vring_used_event

/// Bytes of a descriptor table of `size` descriptors (2.7.5).
@inline(__always)
public func virtqDescTableBytes(size: UInt16) -> Int { VIRTQ_DESC_SIZE * Int(size) }
/// Offset of descriptor `id` in the table (2.7.5).
@inline(__always)
public func virtqDescOffset(_ id: UInt16) -> Int { VIRTQ_DESC_SIZE * Int(id) }

/// Offset of available ring entry `slot` (0 ..< size) (2.7.6).
@inline(__always)
public func virtqAvailEntryOffset(slot: UInt16) -> Int { VIRTQ_RING_ENTRIES_OFFSET + VIRTQ_AVAIL_ELEM_SIZE * Int(slot) }
/// Offset of used_event in the available ring: just after its `size` entries (2.7.6).
@inline(__always)
public func virtqUsedEventOffset(size: UInt16) -> Int { virtqAvailEntryOffset(slot: size) }
/// Bytes of an available ring: flags, idx, ring[size], used_event (2.7.6).
@inline(__always)
public func virtqAvailRingBytes(size: UInt16) -> Int { virtqUsedEventOffset(size: size) + VIRTQ_EVENT_SIZE }

/// Offset of used ring element `slot` (0 ..< size) (2.7.8).
@inline(__always)
public func virtqUsedElementOffset(slot: UInt16) -> Int { VIRTQ_RING_ENTRIES_OFFSET + VIRTQ_USED_ELEM_SIZE * Int(slot) }
/// Offset of avail_event in the used ring: just after its `size` elements (2.7.8).
@inline(__always)
public func virtqAvailEventOffset(size: UInt16) -> Int { virtqUsedElementOffset(slot: size) }
/// Bytes of a used ring: flags, idx, ring[size] of {id, len}, avail_event (2.7.8).
@inline(__always)
public func virtqUsedRingBytes(size: UInt16) -> Int { virtqAvailEventOffset(size: size) + VIRTQ_EVENT_SIZE }

/// One descriptor as read back from the table (2.7.5).
public struct VirtqDescriptor: Equatable, Sendable {
    /// Guest-physical address of the buffer.
    public var addr: UInt64
    /// Length of the buffer in bytes.
    public var len: UInt32
    /// VIRTQ_DESC_F_* bits.
    public var flags: UInt16
    /// Next descriptor in the chain, meaningful only with VIRTQ_DESC_F_NEXT.
    public var next: UInt16

    public init(addr: UInt64, len: UInt32, flags: UInt16, next: UInt16) {
        self.addr = addr
        self.len = len
        self.flags = flags
        self.next = next
    }

    public var hasNext: Bool { flags & VIRTQ_DESC_F_NEXT != 0 }
    public var isDeviceWritable: Bool { flags & VIRTQ_DESC_F_WRITE != 0 }
}

/// One used-ring entry: the device is done with the chain starting at `id` (2.7.8).
public struct VirtqUsedElement: Equatable, Sendable {
    /// Head descriptor of the chain, as the device wrote it (le32 in the ring).
    public var id: UInt32
    /// Bytes the device wrote into the chain's device-writable buffers.
    public var len: UInt32

    public init(id: UInt32, len: UInt32) {
        self.id = id
        self.len = len
    }

    /// `id` as a descriptor index; exact for every element SplitVirtqueue hands out.
    public var head: UInt16 { UInt16(truncatingIfNeeded: id) }
}

/// Why a split virtqueue could not be set up over the memory given.
public enum VirtqueueSetupError: Error, Equatable {
    /// Size 0, not a power of 2, or above VIRTQ_MAX_SIZE (2.7).
    case invalidSize(UInt16)
    /// One of the three areas is not aligned as 2.7 requires.
    case misaligned(area: VirtqueueArea, requiredAlignment: Int)

    /// A message a person can act on.
    public var message: String {
        switch self {
        case .invalidSize(let size):
            return "virtqueue size \(size) is invalid: it must be a power of 2 between 1 and 32768 (virtio 2.7)"
        case .misaligned(let area, let alignment):
            return "virtqueue \(area.name) is not aligned to \(alignment) bytes (virtio 2.7)"
        }
    }
}

/// The three memory areas of a split virtqueue (2.7).
public enum VirtqueueArea: Equatable, Sendable {
    case descriptorTable, availableRing, usedRing

    public var name: String {
        switch self {
        case .descriptorTable: return "descriptor table"
        case .availableRing: return "available ring"
        case .usedRing: return "used ring"
        }
    }
}
