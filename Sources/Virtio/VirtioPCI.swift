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

/// Offset in the notify capability's BAR region where the driver writes a queue's index to
/// notify it: cap.offset + queue_notify_off * notify_off_multiplier (4.1.4.4).
public func virtioPCIQueueNotifyOffset(
    capOffset: UInt32, queueNotifyOff: UInt16, notifyOffMultiplier: UInt32
) -> UInt64 {
    UInt64(capOffset) + UInt64(queueNotifyOff) * UInt64(notifyOffMultiplier)
}
