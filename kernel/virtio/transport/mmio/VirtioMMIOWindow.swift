import Arch

/// A virtio-mmio register window (virtio 1.2, 4.2.2) in the kernel: volatile 32-bit loads
/// and stores at the window's mapped physical address (identity-mapped, uncached). The
/// transport logic itself is `VirtioMMIOTransport` in Sources/Virtio, shared with the host
/// tests, which drive it against a simulated device instead.
struct VolatileMMIORegisters: MMIORegisters {
    /// Physical (= virtual) address of the window.
    let base: UInt64

    func read32(_ offset: Int) -> UInt32 { mmio_read32(base + UInt64(offset)) }
    func write32(_ offset: Int, _ value: UInt32) { mmio_write32(base + UInt64(offset), value) }
    func read16(_ offset: Int) -> UInt16 { mmio_read16(base + UInt64(offset)) }
    func read8(_ offset: Int) -> UInt8 { mmio_read8(base + UInt64(offset)) }
}

/// Maps the window one `virtio_mmio.device=` argument names and probes it (4.2.3.1.1);
/// nil, with a log line saying why, if it cannot be mapped or holds no modern device.
func probeVirtioMMIO(_ argument: VirtioMMIODeviceArgument) -> VirtioMMIODevice? {
    let name = "virtio-mmio@0x\(hex(argument.base))"
    guard arch_map_mmio(argument.base, argument.size) == 0 else {
        log("\(name): cannot map \(argument.size) bytes")
        return nil
    }
    do {
        let transport = try VirtioMMIOTransport(registers: VolatileMMIORegisters(base: argument.base),
                                                windowSize: argument.size)
        return VirtioMMIODevice(transport: transport, argument: argument)
    } catch {
        log("\(name): \(error.message)")
        return nil
    }
}

/// One probed virtio-mmio device in the kernel: the shared transport logic over volatile
/// registers, where the device is, and what the kernel did with it. The drivers reach it
/// through `VirtioTransport`, the same way they reach a PCI device.
final class VirtioMMIODevice {
    let transport: VirtioMMIOTransport<VolatileMMIORegisters>
    let argument: VirtioMMIODeviceArgument
    /// What the device offered in the last negotiation, for telemetry.
    private(set) var offeredFeatures = VirtioFeatures()

    init(transport: VirtioMMIOTransport<VolatileMMIORegisters>, argument: VirtioMMIODeviceArgument) {
        self.transport = transport
        self.argument = argument
    }

    /// The largest queue size the kernel asks of an MMIO device (see `setUpQueue`).
    static let maximumQueueSize: UInt16 = 256

    var name: String { "virtio-mmio@0x\(hex(argument.base)):\(argument.irq)" }
    var deviceID: UInt16 { transport.deviceID }
    var status: UInt8 { transport.status }

    /// Steps 1-6 of initialisation (3.1.1); nil, logged, with status FAILED, if refused.
    func negotiate(wanted: VirtioFeatures, required: VirtioFeatures) -> VirtioFeatures? {
        do {
            let (accepted, offered) = try transport.negotiate(wanted: wanted, required: required)
            offeredFeatures = offered
            return accepted
        } catch {
            log("virtio: \(name): \(error.message)")
            return nil
        }
    }

    /// Routes the device's one interrupt line (its GSI, the `<irq>` of the command line) to
    /// `vector` through the IOAPIC. false, logged, if the IOAPIC has no such line.
    func routeInterrupt(toVector vector: UInt8, apicID: UInt32) -> Bool {
        guard argument.irq <= UInt64(UInt32.max),
              IOAPIC.route(gsi: UInt32(argument.irq), toVector: vector, apicID: apicID) else {
            log("virtio: \(name): the IOAPIC has no line \(argument.irq) (it has \(IOAPIC.lines)); refusing the device")
            return false
        }
        return true
    }

    /// Sets up queue `request.index` at the largest size the device accepts (4.2.3.2), its
    /// memory from `QueueMemory`, its doorbell the device's QueueNotify register (4.2.3.3).
    func setUpQueue(_ request: QueueRequest, features: VirtioFeatures, deviceWritable: Bool) -> DeviceQueue? {
        let size: UInt16
        do {
            // QueueNum is the driver's choice, a power of two for a split ring (2.7). QEMU's
            // QueueNumMax is its transport limit (1024) whatever the device's own queue size,
            // where PCI's queue_size offers the device's (256 for virtio-net): capped at
            // `maximumQueueSize`, a -m 16 guest keeps the memory budget it has on `pc`.
            let maximum = try transport.queueMaximum(index: request.index)
            size = largestPowerOfTwo(atMost: min(maximum, Self.maximumQueueSize))
        } catch {
            log("virtio: \(name): \(error.message)")
            return nil
        }
        return QueueMemory.makeQueue(request, size: size, features: features, deviceWritable: deviceWritable,
                                     doorbell: .mmio(register: argument.base + UInt64(VIRTIO_MMIO_QUEUE_NOTIFY))) { areas in
            do throws(VirtioMMIOError) {
                try transport.enableQueue(index: request.index, size: size, descriptorArea: areas.desc,
                                          driverArea: areas.driver, deviceArea: areas.device)
                return true
            } catch {
                log("virtio: \(name): \(error.message)")
                return false
            }
        }
    }

    /// A 16-bit configuration field; 0 if the window does not hold it (a hostile or
    /// short window must not make the driver read outside it).
    func config16(_ offset: Int) -> UInt16 { (try? transport.readConfig { t throws(VirtioMMIOError) in try t.config16(offset) }) ?? 0 }
    func config8(_ offset: Int) -> UInt8 { (try? transport.readConfig { t throws(VirtioMMIOError) in try t.config8(offset) }) ?? 0 }
}

/// The largest power of two ≤ `value` (≥ 1).
func largestPowerOfTwo(atMost value: UInt16) -> UInt16 {
    var power: UInt16 = 1
    while power <= value / 2 { power <<= 1 }
    return power
}
