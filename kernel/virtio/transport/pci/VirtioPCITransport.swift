import Arch

/// The virtio 1.x "modern" PCI transport (virtio 1.2, 4.1): the device's registers are
/// structures inside its BARs, each announced by a vendor-specific PCI capability
/// (common configuration, notifications, ISR status, device-specific configuration).
/// Interrupts are MSI-X: one vector per queue and one for configuration changes (4.1.5.1.2).
final class VirtioPCITransport {
    let function: PCIFunction
    let commonConfig: UInt64
    let notifyBase: UInt64
    /// Bytes of the notification structure: every queue's doorbell must lie inside it.
    let notifyLength: UInt32
    let notifyOffMultiplier: UInt32
    let isrStatus: UInt64
    let deviceConfig: UInt64
    let msix: MSIXTable
    /// What the device offered in the last negotiation (device_feature), for telemetry.
    private(set) var offeredFeatures = VirtioFeatures()

    /// Finds the virtio structures of `function` and checks that each lies inside its BAR
    /// and holds the fields the driver uses (`deviceConfigBytes` for the device-specific
    /// one); nil, with a log line saying why, if one is missing or out of bounds.
    init?(function: PCIFunction, deviceConfigBytes: UInt32) {
        var common: VirtioPCICapability?
        var notify: VirtioPCICapability?
        var multiplier: UInt32 = 0
        var isr: VirtioPCICapability?
        var device: VirtioPCICapability?
        function.enableMemoryAndBusMaster()
        let config = function.address
        for cap in function.capabilities(id: UInt8(VIRTIO_PCI_CAP_VENDOR_SPECIFIC_ID)) {
            let found = VirtioPCICapability(
                cfgType: config.read8(cap + UInt8(VIRTIO_PCI_CAP_CFG_TYPE_OFFSET)),
                bar: config.read8(cap + UInt8(VIRTIO_PCI_CAP_BAR_OFFSET)),
                offset: config.read32(cap + UInt8(VIRTIO_PCI_CAP_OFFSET_OFFSET)),
                length: config.read32(cap + UInt8(VIRTIO_PCI_CAP_LENGTH_OFFSET)))
            // A capability in a reserved or I/O BAR is one the driver cannot use (4.1.4.1).
            guard function.barAddress(Int(found.bar)) != nil else { continue }
            // The first capability of each type is the preferred one (4.1.4).
            switch found.cfgType {
            case VIRTIO_PCI_CAP_COMMON_CFG where common == nil: common = found
            case VIRTIO_PCI_CAP_NOTIFY_CFG where notify == nil:
                notify = found
                multiplier = config.read32(cap + UInt8(VIRTIO_PCI_NOTIFY_CAP_MULT_OFFSET))
            case VIRTIO_PCI_CAP_ISR_CFG where isr == nil: isr = found
            case VIRTIO_PCI_CAP_DEVICE_CFG where device == nil: device = found
            default: break
            }
        }
        guard let common, let notify, let isr, let device else {
            log("virtio: \(function.address.description): missing a virtio 1.x capability (legacy-only device?)")
            return nil
        }
        guard let commonAddress = Self.map(common, minimumLength: VIRTIO_PCI_COMMON_CFG_LENGTH, of: function),
              let notifyAddress = Self.map(notify, minimumLength: virtioPCINotifyWriteBytes(notificationData: false), of: function),
              let isrAddress = Self.map(isr, minimumLength: VIRTIO_PCI_ISR_CFG_LENGTH, of: function),
              let deviceAddress = Self.map(device, minimumLength: deviceConfigBytes, of: function)
        else { return nil }
        guard let msix = MSIXTable(function: function) else {
            log("virtio: \(function.address.description): no MSI-X capability")
            return nil
        }
        self.function = function
        self.commonConfig = commonAddress
        self.notifyBase = notifyAddress
        self.notifyLength = notify.length
        self.notifyOffMultiplier = multiplier
        self.isrStatus = isrAddress
        self.deviceConfig = deviceAddress
        self.msix = msix
    }

    /// The address of `cap`'s structure, mapped, once it is known to hold `minimumLength`
    /// bytes and to lie inside its BAR; nil, logged, if it does not: the device is refused.
    private static func map(_ cap: VirtioPCICapability, minimumLength: UInt32, of function: PCIFunction) -> UInt64? {
        let name = function.address.description
        guard let base = function.barAddress(Int(cap.bar)), let size = function.barSize(Int(cap.bar)) else {
            log("virtio: \(name): \(virtioPCICapabilityName(cap.cfgType)) structure is in BAR\(cap.bar), which decodes nothing; refusing the device")
            return nil
        }
        do {
            try cap.check(minimumLength: minimumLength, barSize: size)
        } catch {
            log("virtio: \(name): \(error.message); refusing the device")
            return nil
        }
        let address = base + UInt64(cap.offset)
        guard arch_map_mmio(address, UInt64(cap.length)) == 0 else {
            log("virtio: \(name): cannot map the \(virtioPCICapabilityName(cap.cfgType)) structure at 0x\(hex(address))")
            return nil
        }
        return address
    }

    // MARK: Common configuration access

    private func common8(_ offset: Int) -> UInt8 { mmio_read8(commonConfig + UInt64(offset)) }
    private func common16(_ offset: Int) -> UInt16 { mmio_read16(commonConfig + UInt64(offset)) }
    private func common32(_ offset: Int) -> UInt32 { mmio_read32(commonConfig + UInt64(offset)) }
    private func setCommon8(_ offset: Int, _ v: UInt8) { mmio_write8(commonConfig + UInt64(offset), v) }
    private func setCommon16(_ offset: Int, _ v: UInt16) { mmio_write16(commonConfig + UInt64(offset), v) }
    private func setCommon32(_ offset: Int, _ v: UInt32) { mmio_write32(commonConfig + UInt64(offset), v) }
    private func setCommon64(_ offset: Int, _ v: UInt64) { mmio_write64_split(commonConfig + UInt64(offset), v) }

    var status: UInt8 { common8(VIRTIO_PCI_COMMON_DEVICE_STATUS) }

    /// Writing 0 resets the device; the driver waits until it reads back 0 (4.1.4.3.2).
    func reset() {
        setCommon8(VIRTIO_PCI_COMMON_DEVICE_STATUS, 0)
        var spins = 0
        while status != 0 && spins < 1_000_000 { cpu_pause(); spins += 1 }
    }

    func addStatus(_ bits: UInt8) {
        setCommon8(VIRTIO_PCI_COMMON_DEVICE_STATUS, status | bits)
    }

    func deviceFeatures() -> VirtioFeatures {
        var features = VirtioFeatures()
        for select: UInt32 in 0..<2 {
            setCommon32(VIRTIO_PCI_COMMON_DEVICE_FEATURE_SELECT, select)
            features.setWord(select, to: common32(VIRTIO_PCI_COMMON_DEVICE_FEATURE))
        }
        return features
    }

    /// Steps 1-6 of device initialisation (3.1.1): reset, ACKNOWLEDGE, DRIVER, then accept the
    /// offered subset of `wanted` and check FEATURES_OK sticks. Returns the negotiated set, or
    /// nil (status FAILED) if the device lacks a `required` bit or refuses the set.
    func negotiate(wanted: VirtioFeatures, required: VirtioFeatures) -> VirtioFeatures? {
        reset()
        addStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE)
        addStatus(VIRTIO_CONFIG_S_DRIVER)
        let offered = deviceFeatures()
        offeredFeatures = offered
        let accepted = offered.intersection(wanted)
        guard accepted.intersection(required) == required else {
            log("virtio: \(function.address.description): device lacks required features (offered \(hex(offered.rawValue)))")
            addStatus(VIRTIO_CONFIG_S_FAILED)
            return nil
        }
        for select: UInt32 in 0..<2 {
            setCommon32(VIRTIO_PCI_COMMON_DRIVER_FEATURE_SELECT, select)
            setCommon32(VIRTIO_PCI_COMMON_DRIVER_FEATURE, accepted.word(select))
        }
        addStatus(VIRTIO_CONFIG_S_FEATURES_OK)
        guard status & VIRTIO_CONFIG_S_FEATURES_OK != 0 else {
            log("virtio: \(function.address.description): device refused features \(hex(accepted.rawValue))")
            addStatus(VIRTIO_CONFIG_S_FAILED)
            return nil
        }
        return accepted
    }

    /// Routes configuration-change interrupts to `vector` through MSI-X table entry `entry`.
    func routeConfigInterrupt(entry: UInt16, vector: UInt8, apicID: UInt32) -> Bool {
        msix.route(entry: Int(entry), toVector: vector, apicID: apicID)
        setCommon16(VIRTIO_PCI_COMMON_CONFIG_MSIX_VECTOR, entry)
        return common16(VIRTIO_PCI_COMMON_CONFIG_MSIX_VECTOR) == entry
    }

    /// MSI-X table entries: every driver routes its receive queue, its transmit queue and
    /// configuration changes through the first three (4.1.5.1.2).
    static let receiveMSIXEntry: UInt16 = 0
    static let transmitMSIXEntry: UInt16 = 1
    static let configMSIXEntry: UInt16 = 2

    /// Sets up a driver's two queues, receive (device-writable) then transmit (device-readable),
    /// in the ring format and with the notification suppression `features` negotiated
    /// (VIRTIO_F_RING_PACKED, VIRTIO_F_RING_EVENT_IDX). nil, with status FAILED, if either fails.
    func setUpQueuePair(receive: QueueRequest, transmit: QueueRequest, features: VirtioFeatures,
                        apicID: UInt32) -> (rx: DeviceQueue, tx: DeviceQueue)? {
        guard let rx = setUpQueue(receive, msixEntry: Self.receiveMSIXEntry, apicID: apicID, features: features,
                                  deviceWritable: true),
              let tx = setUpQueue(transmit, msixEntry: Self.transmitMSIXEntry, apicID: apicID, features: features,
                                  deviceWritable: false)
        else {
            addStatus(VIRTIO_CONFIG_S_FAILED)
            return nil
        }
        return (rx, tx)
    }

    /// The last steps of initialisation for a driver with a receive queue: its buffers are
    /// posted, then DRIVER_OK (3.1.1 step 8), then the device is told. Posting before DRIVER_OK
    /// (the spec allows either order, 3.1.1 step 7) means no frame arriving right after it
    /// finds an empty ring.
    func start(receiveQueue rx: DeviceQueue) {
        rx.refill()
        driverOK()
        rx.publishAndNotify()
    }

    /// Sets up the queue `request` names at the size the device offers (4.1.5.1.3): allocates
    /// its ring areas and buffers (`bufferCount`, at most the ring size; nil: one per
    /// descriptor), tells the device where the areas are, routes its interrupt, enables it.
    func setUpQueue(_ request: QueueRequest, msixEntry: UInt16, apicID: UInt32, features: VirtioFeatures,
                    deviceWritable: Bool) -> DeviceQueue? {
        let index = request.index
        setCommon16(VIRTIO_PCI_COMMON_QUEUE_SELECT, index)
        let size = common16(VIRTIO_PCI_COMMON_QUEUE_SIZE)
        guard size != 0, common16(VIRTIO_PCI_COMMON_QUEUE_ENABLE) == 0 else {
            log("virtio: queue \(index) unavailable (size \(size))")
            return nil
        }
        // The doorbell is where the driver will write: it must be inside the notification structure.
        let notifyOffset: UInt64
        do {
            notifyOffset = try virtioPCIQueueNotifyOffset(
                queueNotifyOff: common16(VIRTIO_PCI_COMMON_QUEUE_NOTIFY_OFF), notifyOffMultiplier: notifyOffMultiplier,
                capabilityLength: notifyLength)
        } catch {
            log("virtio: \(function.address.description): queue \(index): \(error.message); refusing the device")
            return nil
        }
        return QueueMemory.makeQueue(request, size: size, features: features, deviceWritable: deviceWritable,
                                     doorbell: .pci(address: notifyBase + notifyOffset)) { areas in
            setCommon64(VIRTIO_PCI_COMMON_QUEUE_DESC, areas.desc)
            setCommon64(VIRTIO_PCI_COMMON_QUEUE_DRIVER, areas.driver)
            setCommon64(VIRTIO_PCI_COMMON_QUEUE_DEVICE, areas.device)
            msix.route(entry: Int(msixEntry), toVector: request.vector, apicID: apicID)
            setCommon16(VIRTIO_PCI_COMMON_QUEUE_MSIX_VECTOR, msixEntry)
            guard common16(VIRTIO_PCI_COMMON_QUEUE_MSIX_VECTOR) == msixEntry else {
                log("virtio: queue \(index): device refused MSI-X vector \(msixEntry)")
                return false
            }
            setCommon16(VIRTIO_PCI_COMMON_QUEUE_ENABLE, 1)
            return true
        }
    }

    /// Final step of initialisation (3.1.1 step 8): the device may now use the queues.
    func driverOK() {
        msix.enable()
        addStatus(VIRTIO_CONFIG_S_DRIVER_OK)
    }

    func config8(_ offset: Int) -> UInt8 { mmio_read8(deviceConfig + UInt64(offset)) }
    func config16(_ offset: Int) -> UInt16 { mmio_read16(deviceConfig + UInt64(offset)) }
}
