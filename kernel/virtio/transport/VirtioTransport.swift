import Arch

/// Where a virtio device was found: a PCI function (the `pc` machine) or a probed virtio-mmio
/// window (QEMU microvm). kmain finds them; a driver opens its transport from one.
enum VirtioDeviceLocation {
    case pci(PCIFunction)
    case mmio(VirtioMMIODevice)
}

/// The interrupt vectors of one driver (arch/include/vectors.h). PCI routes each queue and
/// configuration changes to its own MSI-X vector (4.1.5.1.2); an MMIO device has one line for
/// everything (4.2.3.4), routed through the IOAPIC to `line`.
struct DeviceVectors {
    let rx: UInt8
    let tx: UInt8
    let config: UInt8
    let line: UInt8
}

/// What an interrupt told a driver: which of its queues to count an interrupt on, and whether
/// its configuration changed.
struct DeviceInterrupts {
    var rx = false
    var tx = false
    var config = false
}

/// The transport a driver sits on (virtio 1.2, 4.1 PCI or 4.2 MMIO). Embedded Swift has no
/// existentials, so the two are the cases of an enum, and the drivers call only what is here:
/// they do not know which transport they have. What differs is kept inside: the doorbell
/// (`Doorbell`), interrupt routing (MSI-X per queue, or one IOAPIC line per device) and
/// how the configuration space is reached.
enum VirtioTransport {
    case pci(VirtioPCITransport, apicID: UInt32)
    case mmio(VirtioMMIODevice)

    /// Opens the device at `location` for a driver whose configuration reads need
    /// `deviceConfigBytes`; an MMIO device also gets its line routed to `vectors.line`.
    /// nil, logged, if the device is unusable.
    static func open(_ location: VirtioDeviceLocation, deviceConfigBytes: UInt32, vectors: DeviceVectors,
                     apicID: UInt32) -> VirtioTransport? {
        switch location {
        case .pci(let function):
            guard let transport = VirtioPCITransport(function: function, deviceConfigBytes: deviceConfigBytes) else {
                return nil
            }
            return .pci(transport, apicID: apicID)
        case .mmio(let device):
            guard Int(deviceConfigBytes) <= device.transport.configBytes else {
                log("virtio: \(device.name): a \(device.transport.configBytes)-byte configuration space cannot hold the \(deviceConfigBytes) bytes the driver reads; refusing the device")
                return nil
            }
            guard device.routeInterrupt(toVector: vectors.line, apicID: apicID) else { return nil }
            return .mmio(device)
        }
    }

    /// Where the device is, for the log.
    var name: String {
        switch self {
        case .pci(let t, _): return t.function.address.description
        case .mmio(let d): return d.name
        }
    }

    var status: UInt8 {
        switch self {
        case .pci(let t, _): return t.status
        case .mmio(let d): return d.status
        }
    }

    /// What the device offered in the last negotiation (device features), for telemetry.
    var offeredFeatures: VirtioFeatures {
        switch self {
        case .pci(let t, _): return t.offeredFeatures
        case .mmio(let d): return d.offeredFeatures
        }
    }

    /// Steps 1-6 of initialisation (3.1.1); nil, status FAILED, if refused.
    func negotiate(wanted: VirtioFeatures, required: VirtioFeatures) -> VirtioFeatures? {
        switch self {
        case .pci(let t, _): return t.negotiate(wanted: wanted, required: required)
        case .mmio(let d): return d.negotiate(wanted: wanted, required: required)
        }
    }

    /// Routes configuration-change interrupts to `vector` (PCI: MSI-X, 4.1.5.1.2). An MMIO
    /// device reports them on its one line, routed at `open`, so nothing is to do.
    func routeConfigInterrupt(vector: UInt8) -> Bool {
        switch self {
        case .pci(let t, let apicID):
            return t.routeConfigInterrupt(entry: VirtioPCITransport.configMSIXEntry, vector: vector, apicID: apicID)
        case .mmio: return true
        }
    }

    /// Sets up a driver's two queues, receive (device-writable) then transmit (device-readable);
    /// nil, with status FAILED, if either fails.
    func setUpQueuePair(receive: QueueRequest, transmit: QueueRequest, features: VirtioFeatures)
        -> (rx: DeviceQueue, tx: DeviceQueue)? {
        switch self {
        case .pci(let t, let apicID):
            return t.setUpQueuePair(receive: receive, transmit: transmit, features: features, apicID: apicID)
        case .mmio(let d):
            guard let rx = d.setUpQueue(receive, features: features, deviceWritable: true),
                  let tx = d.setUpQueue(transmit, features: features, deviceWritable: false)
            else {
                d.transport.addStatus(VIRTIO_CONFIG_S_FAILED)
                return nil
            }
            return (rx, tx)
        }
    }

    /// The last steps of initialisation: receive buffers posted, DRIVER_OK (3.1.1 step 8), the
    /// device told. Posting first means no frame arriving right after finds an empty ring.
    func start(receiveQueue rx: DeviceQueue) {
        switch self {
        case .pci(let t, _): t.start(receiveQueue: rx)
        case .mmio(let d):
            rx.refill()
            d.transport.driverOK()
            rx.publishAndNotify()
        }
    }

    func fail() {
        switch self {
        case .pci(let t, _): t.addStatus(VIRTIO_CONFIG_S_FAILED)
        case .mmio(let d): d.transport.addStatus(VIRTIO_CONFIG_S_FAILED)
        }
    }

    func config8(_ offset: Int) -> UInt8 {
        switch self {
        case .pci(let t, _): return t.config8(offset)
        case .mmio(let d): return d.config8(offset)
        }
    }

    func config16(_ offset: Int) -> UInt16 {
        switch self {
        case .pci(let t, _): return t.config16(offset)
        case .mmio(let d): return d.config16(offset)
        }
    }

    /// What the interrupts in `pending` (bits of irq_pending) mean for a driver with queues
    /// `rx` and `tx`.
    ///
    /// PCI: each MSI-X vector names its queue (or configuration changes) by itself.
    ///
    /// MMIO: one line for the whole device (4.2.3.4). InterruptStatus is read and the same bits
    /// written to InterruptACK *before* the queues are serviced: QEMU holds the line high while
    /// InterruptStatus is non-zero, and the IOAPIC entry is edge-triggered, so a buffer the
    /// device uses after the acknowledgement raises the line again — a new edge, a new wakeup.
    /// Acknowledging after servicing would clear the bit of a buffer used in between, leaving
    /// the line low with work pending and no interrupt to say so (a lost wakeup).
    /// A used-buffer interrupt (bit 0) does not say which queue: it is counted on each queue
    /// that asks for interrupts and has used elements the driver has not taken — the queues it
    /// was for (a queue running with interrupts off, such as TX, keeps used elements between
    /// passes and must not be charged). One that finds none (the main loop's polling got there
    /// first) is counted on no queue.
    func interrupts(pending: UInt64, vectors: DeviceVectors, rx: DeviceQueue, tx: DeviceQueue) -> DeviceInterrupts {
        var result = DeviceInterrupts()
        switch self {
        case .pci:
            result.rx = pending & vectors.rx.irqBit != 0
            result.tx = pending & vectors.tx.irqBit != 0
            result.config = pending & vectors.config.irqBit != 0
        case .mmio(let d):
            guard pending & vectors.line.irqBit != 0 else { return result }
            let reasons = d.transport.takeInterrupt()
            if reasons.usedBuffer {
                result.rx = rx.ring.interruptsEnabled && rx.ring.pendingUsed > 0
                result.tx = tx.ring.interruptsEnabled && tx.ring.pendingUsed > 0
            }
            result.config = reasons.configChange
        }
        return result
    }
}
