import Arch

/// The I/O APIC (Intel 82093AA datasheet): routes the platform's interrupt lines (GSIs) to
/// local APIC vectors. The `pc` machine's devices use MSI-X and never touch it; on QEMU
/// microvm, with no PCI bus and no MSI, every virtio-mmio device raises one IOAPIC line
/// (the `<irq>` of its `virtio_mmio.device=` argument), and this is how it reaches the CPU.
///
/// With `acpi=off` there is no MADT to say where the IOAPIC is: QEMU places the first one at
/// the architectural default, 0xFEC00000, inside the uncached boot map (x86.h), and its
/// version register says how many lines it has, which bounds every GSI a command line names.
enum IOAPIC {
    /// The architectural default base, where QEMU's microvm and pc put IOAPIC 0.
    static let base: UInt64 = 0xFEC0_0000
    /// IOREGSEL: the index of the register IOWIN then reads or writes (82093AA 3.1).
    static let IOREGSEL = 0x00
    /// IOWIN: the window onto the register IOREGSEL selects (82093AA 3.1).
    static let IOWIN = 0x10
    /// IOAPICVER: bits 16-23 hold the index of the last redirection entry (82093AA 3.2.2).
    static let IOAPICVER: UInt32 = 0x01
    /// IOREDTBL0: redirection entry n is the register pair 0x10 + 2n (low), 0x11 + 2n (high) (82093AA 3.2.4).
    static let IOREDTBL0: UInt32 = 0x10
    /// Redirection entry bits (82093AA 3.2.4): fixed delivery and physical destination are 0.
    static let REDIR_POLARITY_LOW: UInt32 = 1 << 13
    static let REDIR_TRIGGER_LEVEL: UInt32 = 1 << 15
    static let REDIR_MASKED: UInt32 = 1 << 16

    private static func read(_ register: UInt32) -> UInt32 {
        mmio_write32(base + UInt64(IOREGSEL), register)
        return mmio_read32(base + UInt64(IOWIN))
    }

    private static func write(_ register: UInt32, _ value: UInt32) {
        mmio_write32(base + UInt64(IOREGSEL), register)
        mmio_write32(base + UInt64(IOWIN), value)
    }

    /// How many lines (GSIs) this IOAPIC has: the last entry's index + 1 (24 on QEMU).
    static var lines: UInt32 { ((read(IOAPICVER) >> 16) & 0xff) + 1 }

    /// Routes line `gsi` to `vector` on the CPU with local APIC id `apicID`, edge-triggered and
    /// active-high (how QEMU's virtio-mmio drives its line: high while InterruptStatus is not 0),
    /// and unmasks it. false, nothing written, if the IOAPIC has no such line: a command line
    /// naming line 200 must not make the kernel write outside the table.
    static func route(gsi: UInt32, toVector vector: UInt8, apicID: UInt32) -> Bool {
        guard gsi < lines else { return false }
        let low = IOREDTBL0 + 2 * gsi
        // Masked while the destination is written, so a half-written entry never fires.
        write(low, REDIR_MASKED | UInt32(vector))
        write(low + 1, (apicID & 0xff) << 24)
        write(low, UInt32(vector))
        return true
    }
}
