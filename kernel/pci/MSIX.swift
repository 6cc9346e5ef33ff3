import Arch

/// MSI-X (PCI Local Bus 3.0, 6.8.2): each table entry holds a message address and data; a
/// device raises vector n by writing that data to that address, which on x86 is the local
/// APIC (Intel SDM vol. 3, 11.11: address 0xFEEx_xxxx with the destination APIC id in 19:12,
/// data = the IDT vector, fixed delivery, edge).
struct MSIXTable {
    let function: PCIFunction
    let capability: UInt8
    let tableAddress: UInt64
    let tableSize: Int

    init?(function: PCIFunction) {
        guard let capability = function.capabilities(id: PCIConfig.capabilityMSIX).first else { return nil }
        let control = function.address.read16(capability + 2)
        let tableInfo = function.address.read32(capability + 4)
        let bar = Int(tableInfo & 7)
        let offset = tableInfo & ~7
        let tableSize = Int(control & 0x7FF) + 1
        guard let base = function.barAddress(bar), let barSize = function.barSize(bar),
              pciRegionFits(offset: offset, length: UInt32(tableSize * 16), barSize: barSize) else {
            log("pci: \(function.address.description): MSI-X table (\(tableSize) entries at offset \(offset)) lies outside BAR\(bar)")
            return nil
        }
        self.function = function
        self.capability = capability
        self.tableAddress = base + UInt64(offset)
        self.tableSize = tableSize
        _ = arch_map_mmio(tableAddress, UInt64(tableSize * 16))
    }

    /// Points entry `entry` at IDT vector `vector` on the boot CPU and unmasks it.
    func route(entry: Int, toVector vector: UInt8, apicID: UInt32) {
        guard entry < tableSize else { return }
        let slot = tableAddress + UInt64(entry * 16)
        mmio_write32(slot + 0, 0xFEE0_0000 | (apicID & 0xFF) << 12)
        mmio_write32(slot + 4, 0)
        mmio_write32(slot + 8, UInt32(vector))
        mmio_write32(slot + 12, 0)   // vector control: unmasked
    }

    /// Sets MSI-X Enable (bit 15) and clears Function Mask (bit 14) in Message Control.
    func enable() {
        let control = function.address.read16(capability + 2)
        function.address.write16(capability + 2, (control | 0x8000) & ~0x4000)
    }
}
