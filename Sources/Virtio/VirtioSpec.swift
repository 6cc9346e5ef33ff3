// Virtio 1.2 device-independent constants: device status, reserved feature bits, device types.
//
// Names follow the specification (and Linux's include/uapi/linux/virtio_config.h) so a reader
// can grep the spec for them. Section numbers refer to "Virtual I/O Device (VIRTIO) Version 1.2".

// MARK: Device status field (2.1)

/// The guest OS has noticed the device (2.1).
public let VIRTIO_CONFIG_S_ACKNOWLEDGE: UInt8 = 1
/// The guest OS knows how to drive the device (2.1).
public let VIRTIO_CONFIG_S_DRIVER: UInt8 = 2
/// The driver is set up and ready to drive the device (2.1).
public let VIRTIO_CONFIG_S_DRIVER_OK: UInt8 = 4
/// The driver has acknowledged the features it understands; negotiation is complete (2.1).
public let VIRTIO_CONFIG_S_FEATURES_OK: UInt8 = 8
/// The device hit an error it cannot recover from without a reset (2.1).
public let VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET: UInt8 = 64
/// The driver gave up on the device (2.1).
public let VIRTIO_CONFIG_S_FAILED: UInt8 = 128

// MARK: Reserved (transport- and ring-level) feature bits (6)

/// Descriptors may point at a table of indirect descriptors (2.7.5.3, 6).
public let VIRTIO_F_INDIRECT_DESC: UInt32 = 28
/// used_event / avail_event fields control notifications (2.7.7, 2.7.10, 6).
public let VIRTIO_F_RING_EVENT_IDX: UInt32 = 29
/// Compliance with virtio 1.x (not legacy); mandatory for modern devices (6).
public let VIRTIO_F_VERSION_1: UInt32 = 32
/// The device sits behind an IOMMU / platform-specific address translation (6).
public let VIRTIO_F_ACCESS_PLATFORM: UInt32 = 33
/// Packed virtqueue layout is supported (2.8, 6).
public let VIRTIO_F_RING_PACKED: UInt32 = 34
/// The device uses buffers in the order the driver made them available (2.7.9, 6).
public let VIRTIO_F_IN_ORDER: UInt32 = 35
/// Memory accesses need platform ordering, not just CPU barriers (6).
public let VIRTIO_F_ORDER_PLATFORM: UInt32 = 36
/// The device supports single root I/O virtualization (6).
public let VIRTIO_F_SR_IOV: UInt32 = 37
/// The driver passes extra data (besides the queue index) in notifications (6).
public let VIRTIO_F_NOTIFICATION_DATA: UInt32 = 38
/// The driver uses the device-provided queue_notify_data in notifications (6).
public let VIRTIO_F_NOTIF_CONFIG_DATA: UInt32 = 39
/// Individual virtqueues can be reset (2.6.1, 6).
public let VIRTIO_F_RING_RESET: UInt32 = 40

// MARK: Device types (5)

/// Device type of a network card (5, 5.1).
public let VIRTIO_ID_NET: UInt16 = 1
/// Device type of a block device (5, 5.2).
public let VIRTIO_ID_BLOCK: UInt16 = 2
/// Device type of a console (5, 5.3).
public let VIRTIO_ID_CONSOLE: UInt16 = 3
/// Device type of an entropy source (5, 5.4).
public let VIRTIO_ID_RNG: UInt16 = 4

/// A 64-bit feature set as negotiated through the transport's 32-bit feature windows (2.2).
///
/// The PCI transport exposes features 32 bits at a time (`device_feature_select` picks the
/// window, 4.1.4.3), hence `word(_:)` and `setWord(_:to:)`.
public struct VirtioFeatures: Equatable, Sendable {
    public var rawValue: UInt64

    public init(rawValue: UInt64 = 0) { self.rawValue = rawValue }

    /// A set holding exactly the given feature bit numbers.
    public init(bits: [UInt32]) {
        self.rawValue = 0
        for bit in bits { insert(bit) }
    }

    public func contains(_ bit: UInt32) -> Bool {
        bit < 64 && rawValue & (1 << UInt64(bit)) != 0
    }

    /// These features and `bits`.
    public func adding(_ bits: [UInt32]) -> VirtioFeatures {
        var result = self
        for bit in bits { result.insert(bit) }
        return result
    }

    public mutating func insert(_ bit: UInt32) {
        if bit < 64 { rawValue |= 1 << UInt64(bit) }
    }

    public mutating func remove(_ bit: UInt32) {
        if bit < 64 { rawValue &= ~(1 << UInt64(bit)) }
    }

    /// The features both sides offer: what a driver writes back to the device.
    public func intersection(_ other: VirtioFeatures) -> VirtioFeatures {
        VirtioFeatures(rawValue: rawValue & other.rawValue)
    }

    /// The features of either set: what a driver wants, plus what the command line allows.
    public func union(_ other: VirtioFeatures) -> VirtioFeatures {
        VirtioFeatures(rawValue: rawValue | other.rawValue)
    }

    /// The 32-bit window `select` (0 = bits 0-31, 1 = bits 32-63).
    public func word(_ select: UInt32) -> UInt32 {
        select < 2 ? UInt32(truncatingIfNeeded: rawValue >> (UInt64(select) * 32)) : 0
    }

    /// Replaces the 32-bit window `select` with `value`.
    public mutating func setWord(_ select: UInt32, to value: UInt32) {
        guard select < 2 else { return }
        let shift = UInt64(select) * 32
        rawValue = (rawValue & ~(UInt64(0xffff_ffff) << shift)) | (UInt64(value) << shift)
    }
}
