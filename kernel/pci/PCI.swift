import Arch

/// PCI configuration space through configuration mechanism #1 (ports 0xCF8/0xCFC).
/// Bus 0 is all QEMU's `pc` machine puts devices on; firmware has already assigned BARs.
struct PCIAddress: Equatable {
    let bus: UInt8
    let device: UInt8
    let function: UInt8

    var description: String {
        "\(hex(bus, digits: 2)):\(hex(device, digits: 2)).\(function)"
    }

    private func select(_ offset: UInt8) {
        let address: UInt32 = 0x8000_0000 | UInt32(bus) << 16 | UInt32(device) << 11
            | UInt32(function) << 8 | UInt32(offset & 0xFC)
        outl(0xCF8, address)
    }

    func read32(_ offset: UInt8) -> UInt32 {
        select(offset)
        return inl(0xCFC)
    }

    func read16(_ offset: UInt8) -> UInt16 {
        UInt16(truncatingIfNeeded: read32(offset) >> (UInt32(offset & 2) * 8))
    }

    func read8(_ offset: UInt8) -> UInt8 {
        UInt8(truncatingIfNeeded: read32(offset) >> (UInt32(offset & 3) * 8))
    }

    func write32(_ offset: UInt8, _ value: UInt32) {
        select(offset)
        outl(0xCFC, value)
    }

    func write16(_ offset: UInt8, _ value: UInt16) {
        select(offset)
        outw(0xCFC + UInt16(offset & 2), value)
    }
}

/// Configuration-space offsets and bits (PCI Local Bus Specification 3.0, 6.1).
enum PCIConfig {
    static let vendorID: UInt8 = 0x00
    static let deviceID: UInt8 = 0x02
    static let command: UInt8 = 0x04
    static let status: UInt8 = 0x06
    static let classRevision: UInt8 = 0x08
    static let headerType: UInt8 = 0x0E
    static let bar0: UInt8 = 0x10
    static let capabilitiesPointer: UInt8 = 0x34
    static let interruptLine: UInt8 = 0x3C

    static let commandIOSpace: UInt16 = 1 << 0
    static let commandMemorySpace: UInt16 = 1 << 1
    static let commandBusMaster: UInt16 = 1 << 2
    static let commandINTxDisable: UInt16 = 1 << 10
    static let statusCapabilitiesList: UInt16 = 1 << 4

    static let capabilityMSIX: UInt8 = 0x11
    static let capabilityVendor: UInt8 = 0x09
}

/// One function found on the bus.
struct PCIFunction {
    let address: PCIAddress
    let vendorID: UInt16
    let deviceID: UInt16
    let classCode: UInt32   // class, subclass, prog-if

    /// Config-space offset of memory BAR `index` and whether it is 64-bit; nil for an index
    /// out of range or an I/O BAR.
    private func memoryBAR(_ index: Int) -> (offset: UInt8, low: UInt32, is64: Bool)? {
        guard index >= 0 && index < 6 else { return nil }
        let offset = PCIConfig.bar0 + UInt8(index * 4)
        let low = address.read32(offset)
        if low & 1 == 1 { return nil }              // I/O BAR
        return (offset, low, (low >> 1) & 3 == 2 && index < 5)
    }

    /// The physical address a memory BAR points at (64-bit BARs span two registers). A BAR
    /// the firmware left unassigned (address 0: minimal firmware such as qboot does that) is
    /// given one here, from the PCI hole below 4 GiB.
    func barAddress(_ index: Int) -> UInt64? {
        guard let (offset, low, is64) = memoryBAR(index) else { return nil }
        var base = UInt64(low & 0xFFFF_FFF0)
        if is64 { base |= UInt64(address.read32(offset + 4)) << 32 }
        if base == 0 { return assignBAR(offset: offset, is64: is64) }
        return base
    }

    /// How many bytes memory BAR `index` decodes; nil for an I/O BAR, an index out of range,
    /// or a BAR that implements nothing. Device-provided offsets into a BAR are checked
    /// against this.
    func barSize(_ index: Int) -> UInt64? {
        guard let (offset, _, is64) = memoryBAR(index) else { return nil }
        return sizeBAR(offset: offset, is64: is64)
    }

    /// Sizes a memory BAR: write all ones, read back the mask, restore (PCI 3.0, 6.2.5.1),
    /// with memory decoding off meanwhile.
    private func sizeBAR(offset: UInt8, is64: Bool) -> UInt64? {
        let command = address.read16(PCIConfig.command)
        address.write16(PCIConfig.command, command & ~PCIConfig.commandMemorySpace)  // no decoding while sizing
        defer { address.write16(PCIConfig.command, command) }
        let original = address.read32(offset)
        address.write32(offset, 0xFFFF_FFFF)
        var mask = UInt64(address.read32(offset) & 0xFFFF_FFF0)
        address.write32(offset, original)
        if is64 {
            let originalHigh = address.read32(offset + 4)
            address.write32(offset + 4, 0xFFFF_FFFF)
            mask |= UInt64(address.read32(offset + 4)) << 32
            address.write32(offset + 4, originalHigh)
        } else {
            mask |= 0xFFFF_FFFF_0000_0000
        }
        guard mask != 0xFFFF_FFFF_0000_0000, mask != 0 else { return nil }
        return ~mask &+ 1
    }

    /// Sizes a memory BAR and places it at the next suitably aligned address of the MMIO
    /// window. nil if it implements nothing or the window is full.
    private func assignBAR(offset: UInt8, is64: Bool) -> UInt64? {
        guard let size = sizeBAR(offset: offset, is64: is64) else { return nil }
        guard let base = PCIBus.allocateMMIO(size: size) else {
            log("pci: \(address.description): no room for a \(size)-byte BAR")
            return nil
        }
        let original = address.read32(offset)
        address.write32(offset, UInt32(truncatingIfNeeded: base) | (original & 0xF))
        if is64 { address.write32(offset + 4, UInt32(truncatingIfNeeded: base >> 32)) }
        bootLog("pci: \(address.description): BAR\((offset - PCIConfig.bar0) / 4) unassigned by firmware, placed at 0x\(hex(base)) (\(size) bytes)")
        return base
    }

    /// Enables memory decoding and bus mastering (DMA); disables legacy INTx (we use MSI-X).
    func enableMemoryAndBusMaster() {
        let command = address.read16(PCIConfig.command)
        address.write16(PCIConfig.command,
                        command | PCIConfig.commandMemorySpace | PCIConfig.commandBusMaster | PCIConfig.commandINTxDisable)
    }

    /// Offsets of the capabilities with id `id`, in list order.
    func capabilities(id: UInt8) -> [UInt8] {
        var found: [UInt8] = []
        guard address.read16(PCIConfig.status) & PCIConfig.statusCapabilitiesList != 0 else { return found }
        var offset = address.read8(PCIConfig.capabilitiesPointer) & 0xFC
        var guardCount = 0
        while offset >= 0x40 && guardCount < 48 {  // a looping list must not hang boot
            if address.read8(offset) == id { found.append(offset) }
            offset = address.read8(offset + 1) & 0xFC
            guardCount += 1
        }
        return found
    }
}

enum PCIBus {
    /// Where BARs the firmware left unassigned go: the top of the 32-bit PCI hole, below the
    /// IOAPIC (0xFEC00000), mapped uncached by boot.S. Firmware-assigned BARs on QEMU's `pc`
    /// machine sit near 0xFEB00000, so allocation runs downwards from 0xFE000000.
    nonisolated(unsafe) static var mmioWindowTop: UInt64 = 0xFE00_0000
    static let mmioWindowBottom: UInt64 = 0xE000_0000

    static func allocateMMIO(size: UInt64) -> UInt64? {
        guard size > 0, size <= mmioWindowTop - mmioWindowBottom else { return nil }
        let base = (mmioWindowTop - size) & ~(size - 1)     // BARs are naturally aligned
        guard base >= mmioWindowBottom else { return nil }
        mmioWindowTop = base
        return base
    }

    /// Every function on bus 0, logged as `BB:DD.F vvvv:dddd class`.
    static func enumerate() -> [PCIFunction] {
        var functions: [PCIFunction] = []
        for device: UInt8 in 0..<32 {
            let first = PCIAddress(bus: 0, device: device, function: 0)
            guard first.read16(PCIConfig.vendorID) != 0xFFFF else { continue }
            let multifunction = first.read8(PCIConfig.headerType) & 0x80 != 0
            for function: UInt8 in 0..<(multifunction ? 8 : 1) {
                let address = PCIAddress(bus: 0, device: device, function: function)
                let vendor = address.read16(PCIConfig.vendorID)
                guard vendor != 0xFFFF else { continue }
                let found = PCIFunction(address: address, vendorID: vendor,
                                        deviceID: address.read16(PCIConfig.deviceID),
                                        classCode: address.read32(PCIConfig.classRevision) >> 8)
                bootLog("pci: \(address.description) \(hex(found.vendorID, digits: 4)):\(hex(found.deviceID, digits: 4)) class \(hex(found.classCode, digits: 6))")
                functions.append(found)
            }
        }
        return functions
    }
}
