// Virtio over PCI (4.1): how a driver finds a device and where its registers live.
//
// A modern device exposes its registers as vendor-specific PCI capabilities (4.1.4), each
// pointing into a BAR. The common configuration (features, status, queue setup) is one of
// them; queue notifications, the ISR byte and the device-specific configuration are others.

// MARK: Discovery (4.1.2)

/// PCI vendor id of every virtio device (4.1.2).
public let VIRTIO_PCI_VENDOR_ID: UInt16 = 0x1af4
/// A modern device's PCI device id is this base plus its virtio device type (4.1.2).
public let VIRTIO_PCI_MODERN_DEVICE_ID_BASE: UInt16 = 0x1040
/// Modern (virtio 1.x only) network device id: 0x1040 + VIRTIO_ID_NET (4.1.2).
public let VIRTIO_PCI_DEVICE_ID_NET: UInt16 = 0x1041
/// Modern (virtio 1.x only) console device id: 0x1040 + VIRTIO_ID_CONSOLE (4.1.2).
public let VIRTIO_PCI_DEVICE_ID_CONSOLE: UInt16 = 0x1043
/// Transitional network device id; also speaks the legacy interface (4.1.2.1).
public let VIRTIO_PCI_TRANSITIONAL_DEVICE_ID_NET: UInt16 = 0x1000
/// Transitional block device id (4.1.2.1).
public let VIRTIO_PCI_TRANSITIONAL_DEVICE_ID_BLOCK: UInt16 = 0x1001
/// Transitional console device id (4.1.2.1).
public let VIRTIO_PCI_TRANSITIONAL_DEVICE_ID_CONSOLE: UInt16 = 0x1003
/// Transitional entropy source device id (4.1.2.1).
public let VIRTIO_PCI_TRANSITIONAL_DEVICE_ID_RNG: UInt16 = 0x1005

/// The virtio device type (VIRTIO_ID_*) of a virtio PCI device id, or nil if the id is not
/// one the spec assigns (4.1.2, 4.1.2.1). Check the vendor id first.
public func virtioPCIDeviceType(deviceID: UInt16) -> UInt16? {
    switch deviceID {
    case 0x1041...0x107f: return deviceID - VIRTIO_PCI_MODERN_DEVICE_ID_BASE
    case VIRTIO_PCI_TRANSITIONAL_DEVICE_ID_NET: return VIRTIO_ID_NET
    case VIRTIO_PCI_TRANSITIONAL_DEVICE_ID_BLOCK: return VIRTIO_ID_BLOCK
    case VIRTIO_PCI_TRANSITIONAL_DEVICE_ID_CONSOLE: return VIRTIO_ID_CONSOLE
    case VIRTIO_PCI_TRANSITIONAL_DEVICE_ID_RNG: return VIRTIO_ID_RNG
    default: return nil
    }
}

// MARK: Capabilities (4.1.4)

/// PCI capability id of a vendor-specific capability, which carries each virtio structure (4.1.4).
public let VIRTIO_PCI_CAP_VENDOR_SPECIFIC_ID: UInt8 = 0x09

/// cfg_type: common configuration (4.1.4, 4.1.4.3).
public let VIRTIO_PCI_CAP_COMMON_CFG: UInt8 = 1
/// cfg_type: queue notifications (4.1.4, 4.1.4.4).
public let VIRTIO_PCI_CAP_NOTIFY_CFG: UInt8 = 2
/// cfg_type: ISR status byte (4.1.4, 4.1.4.5).
public let VIRTIO_PCI_CAP_ISR_CFG: UInt8 = 3
/// cfg_type: device-specific configuration (4.1.4, 4.1.4.6).
public let VIRTIO_PCI_CAP_DEVICE_CFG: UInt8 = 4
/// cfg_type: PCI configuration access window (4.1.4, 4.1.4.9).
public let VIRTIO_PCI_CAP_PCI_CFG: UInt8 = 5
/// cfg_type: shared memory region (4.1.4, 4.1.4.7).
public let VIRTIO_PCI_CAP_SHARED_MEMORY_CFG: UInt8 = 8
/// cfg_type: vendor data (4.1.4, 4.1.4.8).
public let VIRTIO_PCI_CAP_VENDOR_CFG: UInt8 = 9

// Byte offsets in `struct virtio_pci_cap`, relative to the capability's start in PCI config space (4.1.4).

/// cap_vndr (u8): the generic PCI capability id, VIRTIO_PCI_CAP_VENDOR_SPECIFIC_ID (4.1.4).
public let VIRTIO_PCI_CAP_VNDR_OFFSET = 0
/// cap_next (u8): config-space offset of the next capability, 0 at the end (4.1.4).
public let VIRTIO_PCI_CAP_NEXT_OFFSET = 1
/// cap_len (u8): length of this capability structure (4.1.4).
public let VIRTIO_PCI_CAP_LEN_OFFSET = 2
/// cfg_type (u8): which structure, VIRTIO_PCI_CAP_*_CFG (4.1.4).
public let VIRTIO_PCI_CAP_CFG_TYPE_OFFSET = 3
/// bar (u8): index of the BAR the structure lives in, 0-5 (4.1.4).
public let VIRTIO_PCI_CAP_BAR_OFFSET = 4
/// id (u8): tells apart several capabilities of the same type (4.1.4).
public let VIRTIO_PCI_CAP_ID_OFFSET = 5
/// offset (le32): where the structure begins inside the BAR (4.1.4).
public let VIRTIO_PCI_CAP_OFFSET_OFFSET = 8
/// length (le32): length of the structure in the BAR (4.1.4).
public let VIRTIO_PCI_CAP_LENGTH_OFFSET = 12
/// notify_off_multiplier (le32), only in the notification capability (4.1.4.4).
public let VIRTIO_PCI_NOTIFY_CAP_MULT_OFFSET = 16

// Byte offsets in `struct virtio_pci_common_cfg`, relative to the structure in its BAR (4.1.4.3).

/// device_feature_select (le32, rw): which 32-bit window device_feature shows (4.1.4.3).
public let VIRTIO_PCI_COMMON_DEVICE_FEATURE_SELECT = 0
/// device_feature (le32, ro): the device's features in the selected window (4.1.4.3).
public let VIRTIO_PCI_COMMON_DEVICE_FEATURE = 4
/// driver_feature_select (le32, rw): which 32-bit window driver_feature writes (4.1.4.3).
public let VIRTIO_PCI_COMMON_DRIVER_FEATURE_SELECT = 8
/// driver_feature (le32, rw): the features the driver accepts in the selected window (4.1.4.3).
public let VIRTIO_PCI_COMMON_DRIVER_FEATURE = 12
/// config_msix_vector (le16, rw): MSI-X vector for configuration change interrupts (4.1.4.3).
public let VIRTIO_PCI_COMMON_CONFIG_MSIX_VECTOR = 16
/// num_queues (le16, ro): how many virtqueues the device has (4.1.4.3).
public let VIRTIO_PCI_COMMON_NUM_QUEUES = 18
/// device_status (u8, rw): VIRTIO_CONFIG_S_* bits; writing 0 resets the device (4.1.4.3, 2.1).
public let VIRTIO_PCI_COMMON_DEVICE_STATUS = 20
/// config_generation (u8, ro): changes whenever device configuration changes (4.1.4.3, 2.5).
public let VIRTIO_PCI_COMMON_CONFIG_GENERATION = 21
/// queue_select (le16, rw): the queue the queue_* fields below refer to (4.1.4.3).
public let VIRTIO_PCI_COMMON_QUEUE_SELECT = 22
/// queue_size (le16, rw): maximum size on reset; the driver may write a smaller power of 2 (4.1.4.3).
public let VIRTIO_PCI_COMMON_QUEUE_SIZE = 24
/// queue_msix_vector (le16, rw): MSI-X vector for this queue's used-buffer notifications (4.1.4.3).
public let VIRTIO_PCI_COMMON_QUEUE_MSIX_VECTOR = 26
/// queue_enable (le16, rw): the driver writes 1 once the queue is set up (4.1.4.3).
public let VIRTIO_PCI_COMMON_QUEUE_ENABLE = 28
/// queue_notify_off (le16, ro): this queue's slot in the notification structure (4.1.4.3, 4.1.4.4).
public let VIRTIO_PCI_COMMON_QUEUE_NOTIFY_OFF = 30
/// queue_desc (le64, rw): physical address of the descriptor table (4.1.4.3).
public let VIRTIO_PCI_COMMON_QUEUE_DESC = 32
/// queue_driver (le64, rw): physical address of the available ring, the driver area (4.1.4.3).
public let VIRTIO_PCI_COMMON_QUEUE_DRIVER = 40
/// queue_device (le64, rw): physical address of the used ring, the device area (4.1.4.3).
public let VIRTIO_PCI_COMMON_QUEUE_DEVICE = 48
/// queue_notify_data (le16, ro): data for notifications with VIRTIO_F_NOTIF_CONFIG_DATA (4.1.4.3).
public let VIRTIO_PCI_COMMON_QUEUE_NOTIFY_DATA = 56
/// queue_reset (le16, rw): per-queue reset with VIRTIO_F_RING_RESET (4.1.4.3).
public let VIRTIO_PCI_COMMON_QUEUE_RESET = 58

/// "No vector": written to an MSI-X vector field to disable that interrupt (4.1.5.1.2).
public let VIRTIO_MSI_NO_VECTOR: UInt16 = 0xffff

// MARK: ISR status (4.1.4.5)

/// ISR bit: a virtqueue has used buffers (4.1.4.5). Reading the ISR byte clears it.
public let VIRTIO_PCI_ISR_QUEUE: UInt8 = 1
/// ISR bit: the device configuration changed (4.1.4.5).
public let VIRTIO_PCI_ISR_CONFIG: UInt8 = 2

// MARK: Bounds (4.1.4)
//
// Every offset and length below comes from the device. A driver that maps and writes where
// they point without checking lets a broken or hostile device aim it anywhere in the
// address space; so each is checked once, at initialisation, and a device that fails is
// refused rather than trusted.

/// Bytes of `struct virtio_pci_common_cfg` up to the end of queue_device: every field this
/// driver touches (4.1.4.3).
public let VIRTIO_PCI_COMMON_CFG_LENGTH: UInt32 = 56
/// Bytes of the ISR status structure (4.1.4.5).
public let VIRTIO_PCI_ISR_CFG_LENGTH: UInt32 = 1
/// Bytes a driver writes to notify a queue: the le16 queue index, or le32 with
/// VIRTIO_F_NOTIFICATION_DATA (4.1.5.2).
public func virtioPCINotifyWriteBytes(notificationData: Bool) -> UInt32 { notificationData ? 4 : 2 }

/// Whether `length` bytes at `offset` lie inside a BAR that decodes `barSize` bytes. In 64
/// bits, so no offset and length a device can report wrap around.
public func pciRegionFits(offset: UInt32, length: UInt32, barSize: UInt64) -> Bool {
    UInt64(offset) + UInt64(length) <= barSize
}

/// The fields of a `struct virtio_pci_cap` that say where its structure is (4.1.4).
public struct VirtioPCICapability: Equatable, Sendable {
    /// VIRTIO_PCI_CAP_*_CFG.
    public var cfgType: UInt8
    /// Index of the BAR the structure lives in.
    public var bar: UInt8
    /// Where the structure begins inside the BAR.
    public var offset: UInt32
    /// Length of the structure.
    public var length: UInt32

    public init(cfgType: UInt8, bar: UInt8, offset: UInt32, length: UInt32) {
        self.cfgType = cfgType
        self.bar = bar
        self.offset = offset
        self.length = length
    }

    /// Checks that the structure has at least the `minimumLength` bytes the driver will touch
    /// and lies wholly inside its BAR of `barSize` bytes.
    public func check(minimumLength: UInt32, barSize: UInt64) throws(VirtioPCIBoundsError) {
        guard length >= minimumLength else {
            throw .capabilityTooShort(cfgType: cfgType, length: length, minimum: minimumLength)
        }
        guard pciRegionFits(offset: offset, length: length, barSize: barSize) else {
            throw .capabilityOutsideBAR(cfgType: cfgType, bar: bar, offset: offset, length: length, barSize: barSize)
        }
    }
}

/// Offset of a queue's doorbell from the start of the notification structure:
/// queue_notify_off × notify_off_multiplier (4.1.4.4). Throws unless the whole write — 2
/// bytes, 4 with VIRTIO_F_NOTIFICATION_DATA — lies inside the structure's `capabilityLength`.
public func virtioPCIQueueNotifyOffset(
    queueNotifyOff: UInt16, notifyOffMultiplier: UInt32, capabilityLength: UInt32, notificationData: Bool = false
) throws(VirtioPCIBoundsError) -> UInt64 {
    // At most 0xFFFF × 0xFFFF_FFFF: no overflow in 64 bits.
    let offset = UInt64(queueNotifyOff) * UInt64(notifyOffMultiplier)
    guard offset + UInt64(virtioPCINotifyWriteBytes(notificationData: notificationData)) <= UInt64(capabilityLength) else {
        throw .doorbellOutsideCapability(queueNotifyOff: queueNotifyOff, notifyOffMultiplier: notifyOffMultiplier,
                                         capabilityLength: capabilityLength)
    }
    return offset
}

/// What a device got wrong about where its registers are.
public enum VirtioPCIBoundsError: Error, Equatable {
    /// The structure is shorter than the fields the driver uses.
    case capabilityTooShort(cfgType: UInt8, length: UInt32, minimum: UInt32)
    /// offset + length runs past the end of the BAR.
    case capabilityOutsideBAR(cfgType: UInt8, bar: UInt8, offset: UInt32, length: UInt32, barSize: UInt64)
    /// queue_notify_off × notify_off_multiplier (plus the write) runs past the notification structure.
    case doorbellOutsideCapability(queueNotifyOff: UInt16, notifyOffMultiplier: UInt32, capabilityLength: UInt32)

    /// A line for the log.
    public var message: String {
        switch self {
        case .capabilityTooShort(let type, let length, let minimum):
            return "\(virtioPCICapabilityName(type)) structure is \(length) bytes, needs \(minimum)"
        case .capabilityOutsideBAR(let type, let bar, let offset, let length, let barSize):
            return "\(virtioPCICapabilityName(type)) structure (offset \(offset), \(length) bytes) lies outside BAR\(bar) (\(barSize) bytes)"
        case .doorbellOutsideCapability(let notifyOff, let multiplier, let length):
            return "doorbell at queue_notify_off \(notifyOff) x multiplier \(multiplier) lies outside the notification structure (\(length) bytes)"
        }
    }
}

/// A readable name for a capability's cfg_type (4.1.4).
public func virtioPCICapabilityName(_ cfgType: UInt8) -> String {
    switch cfgType {
    case VIRTIO_PCI_CAP_COMMON_CFG: return "common configuration"
    case VIRTIO_PCI_CAP_NOTIFY_CFG: return "notification"
    case VIRTIO_PCI_CAP_ISR_CFG: return "ISR status"
    case VIRTIO_PCI_CAP_DEVICE_CFG: return "device configuration"
    default: return "cfg_type \(cfgType)"
    }
}
