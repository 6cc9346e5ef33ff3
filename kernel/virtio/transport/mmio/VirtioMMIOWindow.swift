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
///
/// Not yet called: booting on QEMU microvm also needs the IOAPIC routing of `argument.irq`
/// and a TSC calibration that does not use the PIT (docs/architecture.md, "virtio-mmio").
func probeVirtioMMIO(_ argument: VirtioMMIODeviceArgument) -> VirtioMMIOTransport<VolatileMMIORegisters>? {
    let name = "virtio-mmio@0x\(hex(argument.base))"
    guard arch_map_mmio(argument.base, argument.size) == 0 else {
        log("\(name): cannot map \(argument.size) bytes")
        return nil
    }
    do {
        return try VirtioMMIOTransport(registers: VolatileMMIORegisters(base: argument.base), windowSize: argument.size)
    } catch {
        log("\(name): \(error.message)")
        return nil
    }
}
