// Virtio over MMIO (virtio 1.2, 4.2): a device that is a window of 32-bit registers at a
// fixed physical address, with one interrupt line. No bus to enumerate: the platform says
// where each device is (on QEMU microvm with acpi=off, a `virtio_mmio.device=` kernel
// command-line argument, parsed at the end of this file).
//
// Only the modern interface (Version 2, 4.2.2) is driven here. A legacy device (Version 1,
// 4.2.4) has a different queue layout (one page-aligned area, QueuePFN) and is refused with
// a reason; on QEMU, `-global virtio-mmio.force-legacy=off` makes its devices modern.
//
// The logic below is written against `MMIORegisters`, a tiny register-access protocol: the
// kernel implements it with volatile loads and stores at the device's mapped address, the
// host tests with a simulated device. Generic, never existential, so it compiles Embedded.

// MARK: Register map (4.2.2, table "MMIO Device Register Layout")
// Byte offsets from the start of the device's register window. Every control register is
// 32 bits wide and must be accessed with 32-bit aligned reads and writes (4.2.2.2).

/// MagicValue (R): 0x74726976, "virt" in little-endian ASCII (4.2.2).
public let VIRTIO_MMIO_MAGIC_VALUE = 0x000
/// Version (R): 2 for the modern interface, 1 for legacy (4.2.2, 4.2.4).
public let VIRTIO_MMIO_VERSION = 0x004
/// DeviceID (R): the virtio device type (VIRTIO_ID_*, 5); 0 means no device here (4.2.2).
public let VIRTIO_MMIO_DEVICE_ID = 0x008
/// VendorID (R): the device's vendor (4.2.2).
public let VIRTIO_MMIO_VENDOR_ID = 0x00c
/// DeviceFeatures (R): 32 bits of the device's features, the window DeviceFeaturesSel picks (4.2.2).
public let VIRTIO_MMIO_DEVICE_FEATURES = 0x010
/// DeviceFeaturesSel (W): 0 = feature bits 0-31, 1 = bits 32-63 (4.2.2).
public let VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014
/// DriverFeatures (W): 32 bits of the features the driver accepts, the window DriverFeaturesSel picks (4.2.2).
public let VIRTIO_MMIO_DRIVER_FEATURES = 0x020
/// DriverFeaturesSel (W): which window DriverFeatures writes (4.2.2).
public let VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024
/// QueueSel (W): the queue the Queue* registers below refer to (4.2.2).
public let VIRTIO_MMIO_QUEUE_SEL = 0x030
/// QueueNumMax (R): the largest queue size the device accepts; 0 = the queue does not exist (4.2.2).
public let VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034
/// QueueNum (W): the queue size the driver chose (4.2.2).
public let VIRTIO_MMIO_QUEUE_NUM = 0x038
/// QueueReady (RW): the driver writes 1 once the queue is set up; reads back its state (4.2.2).
public let VIRTIO_MMIO_QUEUE_READY = 0x044
/// QueueNotify (W): writing a queue index tells the device that queue has new buffers (4.2.2).
public let VIRTIO_MMIO_QUEUE_NOTIFY = 0x050
/// InterruptStatus (R): why the device interrupted, VIRTIO_MMIO_INT_* bits (4.2.2).
public let VIRTIO_MMIO_INTERRUPT_STATUS = 0x060
/// InterruptACK (W): writing InterruptStatus bits back clears them (4.2.2).
public let VIRTIO_MMIO_INTERRUPT_ACK = 0x064
/// Status (RW): the device status, VIRTIO_CONFIG_S_* (2.1); writing 0 resets the device (4.2.2).
public let VIRTIO_MMIO_STATUS = 0x070
/// QueueDescLow (W): low 32 bits of the descriptor area's physical address (4.2.2).
public let VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080
/// QueueDescHigh (W): high 32 bits of the descriptor area's physical address (4.2.2).
public let VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084
/// QueueDriverLow (W): low 32 bits of the driver area (available ring) (4.2.2).
public let VIRTIO_MMIO_QUEUE_DRIVER_LOW = 0x090
/// QueueDriverHigh (W): high 32 bits of the driver area (4.2.2).
public let VIRTIO_MMIO_QUEUE_DRIVER_HIGH = 0x094
/// QueueDeviceLow (W): low 32 bits of the device area (used ring) (4.2.2).
public let VIRTIO_MMIO_QUEUE_DEVICE_LOW = 0x0a0
/// QueueDeviceHigh (W): high 32 bits of the device area (4.2.2).
public let VIRTIO_MMIO_QUEUE_DEVICE_HIGH = 0x0a4
/// ConfigGeneration (R): changes whenever the device configuration changes (4.2.2, 2.5.1).
public let VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc
/// Config (RW): the device-specific configuration space starts here (4.2.2).
public let VIRTIO_MMIO_CONFIG = 0x100

/// The value of MagicValue: "virt" read as a little-endian 32-bit integer (4.2.2).
public let VIRTIO_MMIO_MAGIC: UInt32 = 0x7472_6976
/// Version of the modern interface, the one this driver speaks (4.2.2).
public let VIRTIO_MMIO_VERSION_MODERN: UInt32 = 2
/// Version of the legacy interface (4.2.4): refused.
public let VIRTIO_MMIO_VERSION_LEGACY: UInt32 = 1

/// InterruptStatus bit: the device used a buffer in at least one virtqueue (4.2.2).
public let VIRTIO_MMIO_INT_VRING: UInt32 = 1 << 0
/// InterruptStatus bit: the device configuration changed (4.2.2).
public let VIRTIO_MMIO_INT_CONFIG: UInt32 = 1 << 1

// MARK: Register access

/// Access to one virtio-mmio register window. The kernel implements it with volatile loads
/// and stores at the mapped base; host tests with a simulated device. Offsets are bytes from
/// the window's start. The control registers (below VIRTIO_MMIO_CONFIG) are only ever touched
/// with `read32`/`write32` at 4-byte aligned offsets (4.2.2.2); `read8`/`read16` exist for
/// the configuration space, whose 8- and 16-bit fields must be read at their own width.
public protocol MMIORegisters {
    func read32(_ offset: Int) -> UInt32
    func write32(_ offset: Int, _ value: UInt32)
    func read16(_ offset: Int) -> UInt16
    func read8(_ offset: Int) -> UInt8
}

// MARK: Errors

/// What made the driver refuse or give up on a virtio-mmio device, with a line for the log.
public enum VirtioMMIOError: Error, Equatable {
    /// The register window is too small to hold the control registers.
    case windowTooSmall(size: UInt64)
    /// MagicValue is not "virt": nothing virtio is there (4.2.3.1.1).
    case badMagic(UInt32)
    /// Version 1: the legacy interface (4.2.4), which this driver does not speak.
    case legacyDevice
    /// A Version this driver does not know (4.2.3.1.1).
    case unsupportedVersion(UInt32)
    /// DeviceID 0: a placeholder window with no device behind it (4.2.3.1.1).
    case noDevice
    /// The device does not offer a feature the driver cannot work without.
    case missingFeatures(offered: UInt64, required: UInt64)
    /// The device cleared FEATURES_OK: it will not work with the features accepted (3.1.1 step 6).
    case featuresRefused(accepted: UInt64)
    /// QueueNumMax is 0: the device has no such queue (4.2.3.2).
    case queueAbsent(index: UInt16)
    /// QueueReady already reads 1 before setup: the queue is in use (4.2.3.2 step 2).
    case queueInUse(index: UInt16)
    /// A queue size that is 0, above QueueNumMax, or (split ring) not a power of two (2.7, 4.2.3.2).
    case badQueueSize(index: UInt16, size: UInt16, maximum: UInt16)
    /// QueueReady did not read back 1 after the driver wrote it.
    case queueNotReady(index: UInt16)
    /// A configuration-space read beyond the window.
    case configOutOfRange(offset: Int, width: Int, configBytes: Int)
    /// ConfigGeneration kept changing across every attempt to read the configuration (2.5.1).
    case configNeverStable(attempts: Int)

    /// A line for the log.
    public var message: String {
        switch self {
        case .windowTooSmall(let size):
            return "register window of \(size) bytes cannot hold the control registers (\(VIRTIO_MMIO_CONFIG) bytes)"
        case .badMagic(let value):
            return "magic value 0x\(String(value, radix: 16)) is not 0x74726976 (\"virt\"): not a virtio-mmio device"
        case .legacyDevice:
            return "legacy virtio-mmio device (Version 1); only the modern interface (Version 2) is supported"
                + " - on QEMU add -global virtio-mmio.force-legacy=off"
        case .unsupportedVersion(let version):
            return "virtio-mmio Version \(version) is unknown; only Version 2 is supported"
        case .noDevice:
            return "DeviceID 0: no device behind this virtio-mmio window"
        case .missingFeatures(let offered, let required):
            return "device lacks required features (offered 0x\(String(offered, radix: 16)), required 0x\(String(required, radix: 16)))"
        case .featuresRefused(let accepted):
            return "device refused features 0x\(String(accepted, radix: 16)) (FEATURES_OK cleared)"
        case .queueAbsent(let index):
            return "queue \(index) does not exist (QueueNumMax 0)"
        case .queueInUse(let index):
            return "queue \(index) is already ready before setup"
        case .badQueueSize(let index, let size, let maximum):
            return "queue \(index): size \(size) is not a power of two in 1...\(maximum)"
        case .queueNotReady(let index):
            return "queue \(index): QueueReady did not read back 1"
        case .configOutOfRange(let offset, let width, let configBytes):
            return "configuration read of \(width) bytes at \(offset) is outside the \(configBytes)-byte configuration space"
        case .configNeverStable(let attempts):
            return "configuration generation changed across all \(attempts) reads"
        }
    }
}

// MARK: Interrupts (4.2.3.4)

/// The reasons in InterruptStatus: used buffers, a configuration change, or both.
public struct VirtioMMIOInterrupt: Equatable, Sendable {
    public var rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// A virtqueue has used buffers (VIRTIO_MMIO_INT_VRING).
    public var usedBuffer: Bool { rawValue & VIRTIO_MMIO_INT_VRING != 0 }
    /// The device configuration changed (VIRTIO_MMIO_INT_CONFIG).
    public var configChange: Bool { rawValue & VIRTIO_MMIO_INT_CONFIG != 0 }
    /// Nothing pending: on a shared line, the interrupt was someone else's.
    public var isEmpty: Bool { rawValue == 0 }
}

// MARK: The transport

/// The hardware-independent half of a modern virtio-mmio transport (4.2.3): probe, feature
/// negotiation, queue setup, notification, interrupt status, configuration reads. Holds no
/// ring memory: the caller allocates the rings (it knows the queue size from `queueMaximum`)
/// and passes their physical addresses to `enableQueue`.
public struct VirtioMMIOTransport<Registers: MMIORegisters> {
    public let registers: Registers
    /// The virtio device type (VIRTIO_ID_*).
    public let deviceID: UInt16
    public let vendorID: UInt32
    /// Bytes of device-specific configuration the window holds, after VIRTIO_MMIO_CONFIG.
    public let configBytes: Int

    /// How often a configuration read is retried while ConfigGeneration keeps changing.
    public static var configReadAttempts: Int { 16 }

    /// Probes the window (4.2.3.1.1): the magic value, Version 2, a non-zero DeviceID. Throws,
    /// touching nothing else, if any fails. `windowSize` is the window's length (the `<size>`
    /// of `virtio_mmio.device=`); the configuration space is what follows the control registers.
    public init(registers: Registers, windowSize: UInt64) throws(VirtioMMIOError) {
        guard windowSize >= UInt64(VIRTIO_MMIO_CONFIG) else { throw .windowTooSmall(size: windowSize) }
        let magic = registers.read32(VIRTIO_MMIO_MAGIC_VALUE)
        guard magic == VIRTIO_MMIO_MAGIC else { throw .badMagic(magic) }
        let version = registers.read32(VIRTIO_MMIO_VERSION)
        guard version != VIRTIO_MMIO_VERSION_LEGACY else { throw .legacyDevice }
        guard version == VIRTIO_MMIO_VERSION_MODERN else { throw .unsupportedVersion(version) }
        let device = registers.read32(VIRTIO_MMIO_DEVICE_ID)
        guard device != 0 else { throw .noDevice }
        self.registers = registers
        // Device types are small (5); one above 16 bits is not one a driver matches anyway.
        self.deviceID = UInt16(truncatingIfNeeded: min(device, 0xffff))
        self.vendorID = registers.read32(VIRTIO_MMIO_VENDOR_ID)
        self.configBytes = Int(min(windowSize, 0x1_0000)) - VIRTIO_MMIO_CONFIG
    }

    // MARK: Status (2.1, 3.1.1)

    /// The device status (VIRTIO_CONFIG_S_*). Status is a 32-bit register; its low byte holds the bits.
    public var status: UInt8 { UInt8(truncatingIfNeeded: registers.read32(VIRTIO_MMIO_STATUS)) }

    /// Writes 0 to Status, which resets the device (4.2.2), and waits (bounded) until it reads
    /// back 0 (2.4.1). Returns whether it did.
    @discardableResult
    public func reset(spins: Int = 1_000_000) -> Bool {
        registers.write32(VIRTIO_MMIO_STATUS, 0)
        var remaining = spins
        while status != 0 {
            guard remaining > 0 else { return false }
            remaining -= 1
        }
        return true
    }

    /// Sets `bits` in Status, keeping those already set (3.1.1).
    public func addStatus(_ bits: UInt8) {
        registers.write32(VIRTIO_MMIO_STATUS, UInt32(status | bits))
    }

    // MARK: Features (2.2, 4.2.3.1)

    /// All 64 feature bits the device offers, read through DeviceFeaturesSel 0 and 1.
    public func deviceFeatures() -> VirtioFeatures {
        var features = VirtioFeatures()
        for select: UInt32 in 0..<2 {
            registers.write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, select)
            features.setWord(select, to: registers.read32(VIRTIO_MMIO_DEVICE_FEATURES))
        }
        return features
    }

    /// Steps 1-6 of device initialisation (3.1.1): reset, ACKNOWLEDGE, DRIVER, accept the
    /// offered subset of `wanted` (both 32-bit halves, through DriverFeaturesSel), set
    /// FEATURES_OK and check it stuck. Returns the accepted features and what was offered;
    /// on failure sets FAILED and throws.
    public func negotiate(wanted: VirtioFeatures, required: VirtioFeatures)
        throws(VirtioMMIOError) -> (accepted: VirtioFeatures, offered: VirtioFeatures)
    {
        reset()
        addStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE)
        addStatus(VIRTIO_CONFIG_S_DRIVER)
        let offered = deviceFeatures()
        let accepted = offered.intersection(wanted)
        guard accepted.intersection(required) == required else {
            addStatus(VIRTIO_CONFIG_S_FAILED)
            throw .missingFeatures(offered: offered.rawValue, required: required.rawValue)
        }
        for select: UInt32 in 0..<2 {
            registers.write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, select)
            registers.write32(VIRTIO_MMIO_DRIVER_FEATURES, accepted.word(select))
        }
        addStatus(VIRTIO_CONFIG_S_FEATURES_OK)
        // The device clears FEATURES_OK if it cannot work with this subset (3.1.1 step 6).
        guard status & VIRTIO_CONFIG_S_FEATURES_OK != 0 else {
            addStatus(VIRTIO_CONFIG_S_FAILED)
            throw .featuresRefused(accepted: accepted.rawValue)
        }
        return (accepted, offered)
    }

    /// Final step of initialisation (3.1.1 step 8): the device may now use its queues.
    public func driverOK() { addStatus(VIRTIO_CONFIG_S_DRIVER_OK) }

    // MARK: Queues (4.2.3.2)

    /// Selects queue `index` and returns the largest size the device accepts for it (4.2.3.2
    /// steps 1-3). Throws if the queue is absent (QueueNumMax 0) or already in use.
    public func queueMaximum(index: UInt16) throws(VirtioMMIOError) -> UInt16 {
        registers.write32(VIRTIO_MMIO_QUEUE_SEL, UInt32(index))
        guard registers.read32(VIRTIO_MMIO_QUEUE_READY) == 0 else { throw .queueInUse(index: index) }
        let maximum = registers.read32(VIRTIO_MMIO_QUEUE_NUM_MAX)
        guard maximum != 0 else { throw .queueAbsent(index: index) }
        // Queue sizes are 16-bit (2.7); a larger maximum only means any 16-bit size will do.
        return UInt16(truncatingIfNeeded: min(maximum, 0x8000))
    }

    /// Sets up and enables queue `index` (4.2.3.2 steps 4-7): its size (a power of two, at
    /// most QueueNumMax), the physical addresses of its descriptor, driver and device areas,
    /// each written as two 32-bit halves, then QueueReady = 1, read back.
    public func enableQueue(index: UInt16, size: UInt16, descriptorArea: UInt64, driverArea: UInt64,
                            deviceArea: UInt64) throws(VirtioMMIOError) {
        let maximum = try queueMaximum(index: index)
        guard size != 0, size <= maximum, size & (size - 1) == 0 else {
            throw .badQueueSize(index: index, size: size, maximum: maximum)
        }
        registers.write32(VIRTIO_MMIO_QUEUE_NUM, UInt32(size))
        write64(low: VIRTIO_MMIO_QUEUE_DESC_LOW, high: VIRTIO_MMIO_QUEUE_DESC_HIGH, descriptorArea)
        write64(low: VIRTIO_MMIO_QUEUE_DRIVER_LOW, high: VIRTIO_MMIO_QUEUE_DRIVER_HIGH, driverArea)
        write64(low: VIRTIO_MMIO_QUEUE_DEVICE_LOW, high: VIRTIO_MMIO_QUEUE_DEVICE_HIGH, deviceArea)
        registers.write32(VIRTIO_MMIO_QUEUE_READY, 1)
        guard registers.read32(VIRTIO_MMIO_QUEUE_READY) == 1 else { throw .queueNotReady(index: index) }
    }

    private func write64(low: Int, high: Int, _ value: UInt64) {
        registers.write32(low, UInt32(truncatingIfNeeded: value))
        registers.write32(high, UInt32(truncatingIfNeeded: value >> 32))
    }

    /// Tells the device queue `index` has new available buffers (4.2.3.3).
    public func notify(queue index: UInt16) {
        registers.write32(VIRTIO_MMIO_QUEUE_NOTIFY, UInt32(index))
    }

    // MARK: Interrupts (4.2.3.4)

    /// InterruptStatus, unacknowledged.
    public func interruptStatus() -> VirtioMMIOInterrupt {
        VirtioMMIOInterrupt(rawValue: registers.read32(VIRTIO_MMIO_INTERRUPT_STATUS))
    }

    /// Writes `reasons` to InterruptACK, clearing exactly those bits (4.2.3.4).
    public func acknowledge(_ reasons: VirtioMMIOInterrupt) {
        registers.write32(VIRTIO_MMIO_INTERRUPT_ACK, reasons.rawValue)
    }

    /// What an interrupt handler does first (4.2.3.4): read InterruptStatus, acknowledge
    /// what it found, and return it so the caller can tell used buffers from configuration
    /// changes. Empty if nothing was pending (nothing is written then).
    public func takeInterrupt() -> VirtioMMIOInterrupt {
        let reasons = interruptStatus()
        if !reasons.isEmpty { acknowledge(reasons) }
        return reasons
    }

    // MARK: Device configuration (2.5.1, 4.2.2.2)

    /// ConfigGeneration: changes whenever the configuration does.
    public var configGeneration: UInt32 { registers.read32(VIRTIO_MMIO_CONFIG_GENERATION) }

    /// Reads the configuration through `body`, retrying until ConfigGeneration is the same
    /// before and after (2.5.1: "drivers MUST NOT assume reads from fields greater than 32
    /// bits wide are atomic, nor are reads from multiple fields"). Throws after
    /// `configReadAttempts` unstable reads, so a device that keeps changing cannot hang the driver.
    public func readConfig<T>(_ body: (Self) throws(VirtioMMIOError) -> T) throws(VirtioMMIOError) -> T {
        for _ in 0..<Self.configReadAttempts {
            let before = configGeneration
            let value = try body(self)
            if configGeneration == before { return value }
        }
        throw .configNeverStable(attempts: Self.configReadAttempts)
    }

    /// An 8-bit configuration field at `offset` in the configuration space.
    public func config8(_ offset: Int) throws(VirtioMMIOError) -> UInt8 {
        try checkConfig(offset, width: 1)
        return registers.read8(VIRTIO_MMIO_CONFIG + offset)
    }

    /// A 16-bit configuration field, read at its own width (4.2.2.2); offset must be aligned.
    public func config16(_ offset: Int) throws(VirtioMMIOError) -> UInt16 {
        try checkConfig(offset, width: 2)
        return registers.read16(VIRTIO_MMIO_CONFIG + offset)
    }

    /// A 32-bit configuration field (4.2.2.2); offset must be aligned.
    public func config32(_ offset: Int) throws(VirtioMMIOError) -> UInt32 {
        try checkConfig(offset, width: 4)
        return registers.read32(VIRTIO_MMIO_CONFIG + offset)
    }

    private func checkConfig(_ offset: Int, width: Int) throws(VirtioMMIOError) {
        guard offset >= 0, offset % width == 0, offset <= configBytes - width else {
            throw .configOutOfRange(offset: offset, width: width, configBytes: configBytes)
        }
    }
}
