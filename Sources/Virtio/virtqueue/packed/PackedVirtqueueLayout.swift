// The packed virtqueue as laid out in memory (virtio 1.2, 2.8), in the manner of Linux's
// include/uapi/linux/virtio_ring.h. Three areas, each allocated by the driver:
//
//   descriptor ring (2.8.13)          struct pvirtq_desc { le64 addr; le32 len; le16 id; le16 flags; } [N]
//   driver event suppression (2.8.14) struct pvirtq_event_suppress { le16 desc_event_off_wrap;
//   device event suppression (2.8.14)                                 le16 desc_event_flags; }
//
// One ring carries both directions: the driver writes available descriptors, the device
// overwrites them in place with used descriptors. Who owns a descriptor is told by two flag
// bits, AVAIL (7) and USED (15), read against the reader's wrap counter (2.8.1):
//   available: AVAIL == driver's wrap counter, USED != it;
//   used:      AVAIL == USED == device's wrap counter.
// The driver writes the driver event suppression structure (what it wants to be interrupted
// for); the device writes the device event suppression structure (what it wants to be
// notified about). The queue size need not be a power of 2 (2.8).

// MARK: Descriptor flags (2.8.13)

/// The buffer continues in the next descriptor of the ring (2.8.6).
public let VIRTQ_PACKED_DESC_F_NEXT: UInt16 = 1
/// The buffer is device write-only (otherwise device read-only) (2.8.3).
public let VIRTQ_PACKED_DESC_F_WRITE: UInt16 = 2
/// The buffer holds a table of indirect descriptors (2.8.7).
public let VIRTQ_PACKED_DESC_F_INDIRECT: UInt16 = 4
/// Bit 7: set to the driver's wrap counter when the driver makes a descriptor available (2.8.1).
public let VIRTQ_PACKED_DESC_F_AVAIL: UInt16 = 1 << 7
/// Bit 15: set to the device's wrap counter when the device marks a descriptor used (2.8.1).
public let VIRTQ_PACKED_DESC_F_USED: UInt16 = 1 << 15

// MARK: Event suppression (2.8.10, 2.8.14)

/// desc_event_flags: notifications (interrupts / kicks) wanted for every buffer (2.8.14).
public let VIRTQ_PACKED_EVENT_FLAG_ENABLE: UInt16 = 0x0
/// desc_event_flags: no notifications wanted (2.8.14).
public let VIRTQ_PACKED_EVENT_FLAG_DISABLE: UInt16 = 0x1
/// desc_event_flags: a notification wanted only when the descriptor at desc_event_off_wrap is
/// made available / used; only with VIRTIO_F_RING_EVENT_IDX (2.8.14).
public let VIRTQ_PACKED_EVENT_FLAG_DESC: UInt16 = 0x2
/// desc_event_off_wrap bit 15: the wrap counter the offset (bits 0–14) refers to (2.8.14).
public let VIRTQ_PACKED_EVENT_F_WRAP_CTR: UInt16 = 15

// MARK: Sizes and alignment (2.8, 2.8.10.1)

/// Largest queue size a packed virtqueue may have (2.8): offsets are 15 bits.
public let VIRTQ_PACKED_MAX_SIZE: UInt16 = 32768
/// Required alignment of the descriptor ring, in bytes (2.8.10.1).
public let VIRTQ_PACKED_DESC_ALIGN = 16
/// Required alignment of each event suppression structure, in bytes (2.8.10.1).
public let VIRTQ_PACKED_EVENT_ALIGN = 4
/// Size of one `struct pvirtq_desc` (2.8.13).
public let VIRTQ_PACKED_DESC_SIZE = 16
/// Size of one `struct pvirtq_event_suppress` (2.8.14).
public let VIRTQ_PACKED_EVENT_SIZE = 4

// Byte offsets inside the structures above.

/// pvirtq_desc.addr (le64): guest-physical address of the buffer (2.8.13).
public let VIRTQ_PACKED_DESC_ADDR_OFFSET = 0
/// pvirtq_desc.len (le32): buffer length; in a used descriptor, bytes the device wrote (2.8.13).
public let VIRTQ_PACKED_DESC_LEN_OFFSET = 8
/// pvirtq_desc.id (le16): buffer ID, returned by the device in the used descriptor (2.8.13).
public let VIRTQ_PACKED_DESC_ID_OFFSET = 12
/// pvirtq_desc.flags (le16): VIRTQ_PACKED_DESC_F_* (2.8.13).
public let VIRTQ_PACKED_DESC_FLAGS_OFFSET = 14
/// pvirtq_event_suppress.desc_event_off_wrap (le16) (2.8.14).
public let VIRTQ_PACKED_EVENT_OFF_WRAP_OFFSET = 0
/// pvirtq_event_suppress.desc_event_flags (le16), bits 0–1 (2.8.14).
public let VIRTQ_PACKED_EVENT_FLAGS_OFFSET = 2

/// Bytes of a descriptor ring of `size` descriptors (2.8.13).
@inline(__always)
public func virtqPackedDescRingBytes(size: UInt16) -> Int { VIRTQ_PACKED_DESC_SIZE * Int(size) }
/// Offset of ring position `slot` (0 ..< size) (2.8.13).
@inline(__always)
public func virtqPackedDescOffset(_ slot: UInt16) -> Int { VIRTQ_PACKED_DESC_SIZE * Int(slot) }

/// The flags that make a descriptor available under the driver's wrap counter (2.8.1, 2.8.21.2):
/// AVAIL = wrap, USED = !wrap.
@inline(__always)
public func virtqPackedAvailFlags(wrap: Bool) -> UInt16 {
    wrap ? VIRTQ_PACKED_DESC_F_AVAIL : VIRTQ_PACKED_DESC_F_USED
}

/// Whether `flags` mark a used descriptor for a reader whose used wrap counter is `wrap`
/// (2.8.1, 2.8.22): AVAIL == USED == wrap.
@inline(__always)
public func virtqPackedIsUsed(flags: UInt16, wrap: Bool) -> Bool {
    let avail = flags & VIRTQ_PACKED_DESC_F_AVAIL != 0
    let used = flags & VIRTQ_PACKED_DESC_F_USED != 0
    return avail == used && used == wrap
}

/// desc_event_off_wrap for ring position `offset` under wrap counter `wrap` (2.8.14).
@inline(__always)
public func virtqPackedOffWrap(offset: UInt16, wrap: Bool) -> UInt16 {
    (offset & 0x7FFF) | (wrap ? 1 << VIRTQ_PACKED_EVENT_F_WRAP_CTR : 0)
}

/// The packed form of the event-index rule (2.8.10; Linux virtqueue_kick_prepare_packed,
/// QEMU vring_packed_need_event): positions [old, new) were just published (available
/// descriptors for a kick, used descriptors for an interrupt) by a side whose wrap counter is
/// now `wrap`; `old` may be "negative" (new - count, modulo 2^16) when the window crossed the
/// ring's end. An event offset from the previous lap (its wrap bit differs) is moved back by
/// `size` so both live on one number line.
@inline(__always)
public func virtqPackedNeedEvent(offWrap: UInt16, size: UInt16, wrap: Bool, newIdx: UInt16, oldIdx: UInt16) -> Bool {
    var event = offWrap & 0x7FFF
    if (offWrap >> VIRTQ_PACKED_EVENT_F_WRAP_CTR != 0) != wrap { event &-= size }
    return virtqNeedEvent(eventIdx: event, newIdx: newIdx, oldIdx: oldIdx)
}

/// The three memory areas of a packed virtqueue (2.8).
public enum PackedVirtqueueArea: Equatable, Sendable {
    case descriptorRing, driverEvent, deviceEvent

    public var name: String {
        switch self {
        case .descriptorRing: return "descriptor ring"
        case .driverEvent: return "driver event suppression structure"
        case .deviceEvent: return "device event suppression structure"
        }
    }
}

/// Why a packed virtqueue could not be set up.
public enum PackedVirtqueueSetupError: Error, Equatable {
    /// Size 0 or above VIRTQ_PACKED_MAX_SIZE (2.8).
    case invalidSize(UInt16)
    /// One of the three areas is not aligned as 2.8.10.1 requires.
    case misaligned(area: PackedVirtqueueArea, requiredAlignment: Int)
    /// The driver's private bookkeeping could not be allocated.
    case outOfMemory(bytes: Int)

    /// A message a person can act on.
    public var message: String {
        switch self {
        case .invalidSize(let size):
            return "packed virtqueue size \(size) is invalid: it must be between 1 and 32768 (virtio 2.8)"
        case .misaligned(let area, let alignment):
            return "packed virtqueue \(area.name) is not aligned to \(alignment) bytes (virtio 2.8.10.1)"
        case .outOfMemory(let bytes):
            return "packed virtqueue bookkeeping (\(bytes) bytes) could not be allocated"
        }
    }
}
