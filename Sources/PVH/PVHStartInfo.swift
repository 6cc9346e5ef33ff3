// The PVH boot ABI's start-of-day structure: QEMU's -kernel (finding the Xen PVH note) jumps to
// the kernel with the physical address of a struct hvm_start_info in %ebx. Layout from Xen's
// xen/include/public/arch-x86/hvm/start_info.h, named once here with the header's field names.
//
// Read through raw pointers at physical addresses, which the kernel sees identity-mapped (boot.S)
// and a host test sees as its own buffers. Nothing here allocates: the kernel reads this before
// its heap exists (the heap's place comes from the memory map). QEMU is trusted, but no number is:
// every address and count is checked against the memory the caller says is readable, a count
// against a bound, and a NUL is looked for within a cap — a bad start info is an error, never a trap.

/// `magic`: "xEn3" with the 0x80 bit of the "E" set (start_info.h).
public let XEN_HVM_START_MAGIC_VALUE: UInt32 = 0x336e_c578
/// A memory map entry's `type`: usable RAM (start_info.h; the E820 numbering).
public let XEN_HVM_MEMMAP_TYPE_RAM: UInt32 = 1

/// struct hvm_start_info: each field's byte offset (all little-endian).
public enum HVMStartInfoLayout {
    public static let magic = 0            // UInt32, XEN_HVM_START_MAGIC_VALUE
    public static let version = 4          // UInt32: 0, or 1 and newer with the memory map
    public static let flags = 8            // UInt32, SIF_xxx
    public static let nr_modules = 12      // UInt32
    public static let modlist_paddr = 16   // UInt64
    public static let cmdline_paddr = 24   // UInt64: a NUL-terminated ASCII string; 0: none
    public static let rsdp_paddr = 32      // UInt64
    public static let memmap_paddr = 40    // UInt64, version 1 and newer
    public static let memmap_entries = 48  // UInt32, version 1 and newer; 0: no map
    public static let reserved = 52        // UInt32, version 1 and newer
    /// The size of version 0 (up to rsdp_paddr) and of version 1 (with the memory map).
    public static let sizeVersion0 = 40
    public static let sizeVersion1 = 56
    /// The first version with `memmap_paddr` and `memmap_entries`.
    public static let memmapVersion: UInt32 = 1
}

/// struct hvm_memmap_table_entry: each field's byte offset, and the entry's size.
public enum HVMMemmapEntryLayout {
    public static let addr = 0             // UInt64: base address
    public static let size = 8             // UInt64: bytes
    public static let type = 16            // UInt32: XEN_HVM_MEMMAP_TYPE_*
    public static let reserved = 20        // UInt32
    public static let stride = 24
}

/// Why the start info (or a part of it) could not be used. `message` is for the serial console,
/// which before the heap takes only static text.
public enum PVHStartInfoError: Error, Equatable {
    /// The start info's address is 0: the loader passed none.
    case absent
    /// The structure, the memory map or the command line lies (partly) outside readable memory.
    case notReadable
    /// `magic` is not XEN_HVM_START_MAGIC_VALUE.
    case badMagic
    /// `memmap_entries` is above `PVHStartInfo.maxMemmapEntries`.
    case tooManyMemmapEntries
    /// No NUL within `PVHStartInfo.maxCommandLineBytes` of the command line's start.
    case commandLineUnterminated

    public var message: StaticString {
        switch self {
        case .absent: return "no PVH start info"
        case .notReadable: return "the PVH start info points outside readable memory"
        case .badMagic: return "the PVH start info's magic is wrong"
        case .tooManyMemmapEntries: return "the PVH memory map has more entries than the bound"
        case .commandLineUnterminated: return "the command line has no NUL within the cap"
        }
    }
}

/// One entry of the memory map, as read.
public struct PVHMemmapEntry: Equatable {
    public var addr: UInt64
    public var size: UInt64
    public var type: UInt32

    /// [addr, addr + size), or nil when that passes the end of the 64-bit address space (an
    /// entry ending exactly at 2^64 included: a Range<UInt64> cannot say it).
    public var range: Range<UInt64>? {
        let (end, overflow) = addr.addingReportingOverflow(size)
        return overflow ? nil : addr..<end
    }
}

/// A validated struct hvm_start_info: its address, magic and version were checked, and so were
/// the memory map's bounds (readable, at most `maxMemmapEntries` entries).
public struct PVHStartInfo {
    /// More entries than any firmware map we have seen (QEMU's pc: ~6; Linux's E820 table holds
    /// 128): a count above it says the structure is not what we think it is.
    public static let maxMemmapEntries: UInt32 = 128
    /// Xen's MAX_GUEST_CMDLINE, NUL included (the kernel's old buffer: 1023 bytes and a NUL).
    public static let maxCommandLineBytes = 1024

    public let address: UInt64
    public let version: UInt32
    public let cmdlinePaddr: UInt64
    /// 0 and 0 for version 0, which has no memory map.
    public let memmapPaddr: UInt64
    public let memmapEntries: UInt32
    /// Addresses this reader may read: the kernel passes its write-back identity map.
    public let readable: Range<UInt64>

    /// Reads and checks the start info at `address`, reading only inside `readable`.
    public init(at address: UInt64, readable: Range<UInt64>) throws(PVHStartInfoError) {
        guard address != 0 else { throw .absent }
        self.address = address
        self.readable = readable
        guard Self.isReadable(address, bytes: UInt64(HVMStartInfoLayout.sizeVersion0), in: readable) else { throw .notReadable }
        guard Self.load(UInt32.self, address, HVMStartInfoLayout.magic) == XEN_HVM_START_MAGIC_VALUE else { throw .badMagic }
        version = Self.load(UInt32.self, address, HVMStartInfoLayout.version)
        cmdlinePaddr = Self.load(UInt64.self, address, HVMStartInfoLayout.cmdline_paddr)
        guard version >= HVMStartInfoLayout.memmapVersion else {
            memmapPaddr = 0
            memmapEntries = 0
            return
        }
        guard Self.isReadable(address, bytes: UInt64(HVMStartInfoLayout.sizeVersion1), in: readable) else { throw .notReadable }
        memmapPaddr = Self.load(UInt64.self, address, HVMStartInfoLayout.memmap_paddr)
        memmapEntries = Self.load(UInt32.self, address, HVMStartInfoLayout.memmap_entries)
        guard memmapEntries <= Self.maxMemmapEntries else { throw .tooManyMemmapEntries }
        guard memmapEntries == 0
              || Self.isReadable(memmapPaddr, bytes: UInt64(memmapEntries) * UInt64(HVMMemmapEntryLayout.stride), in: readable)
        else { throw .notReadable }
    }

    /// Entry `index` of the memory map (`index < memmapEntries`; init checked the whole table).
    public func memmapEntry(_ index: UInt32) -> PVHMemmapEntry {
        let entry = memmapPaddr + UInt64(index) * UInt64(HVMMemmapEntryLayout.stride)
        return PVHMemmapEntry(addr: Self.load(UInt64.self, entry, HVMMemmapEntryLayout.addr),
                              size: Self.load(UInt64.self, entry, HVMMemmapEntryLayout.size),
                              type: Self.load(UInt32.self, entry, HVMMemmapEntryLayout.type))
    }

    /// The command line's bytes before its NUL, read in place (empty when `cmdline_paddr` is 0).
    /// Valid for as long as the loader's memory is left alone: copy it once a heap exists.
    public func commandLine() throws(PVHStartInfoError) -> UnsafeBufferPointer<UInt8> {
        guard cmdlinePaddr != 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
        guard readable.contains(cmdlinePaddr), let start = UnsafePointer<UInt8>(bitPattern: UInt(cmdlinePaddr)) else {
            throw .notReadable
        }
        // Up to the cap, and never past readable memory.
        let readableBytes = readable.upperBound - cmdlinePaddr
        let limit = readableBytes < UInt64(Self.maxCommandLineBytes) ? Int(readableBytes) : Self.maxCommandLineBytes
        for length in 0..<limit where start[length] == 0 {
            return UnsafeBufferPointer(start: start, count: length)
        }
        throw limit < Self.maxCommandLineBytes ? .notReadable : .commandLineUnterminated
    }

    /// [address, address + bytes) lies inside `readable` and does not start at 0 (which
    /// start_info.h reserves for "not present").
    static func isReadable(_ address: UInt64, bytes: UInt64, in readable: Range<UInt64>) -> Bool {
        guard address != 0, readable.contains(address) else { return false }
        return bytes <= readable.upperBound - address
    }

    /// A little-endian field at `base + offset`; the caller checked it is readable.
    static func load<T: FixedWidthInteger>(_: T.Type, _ base: UInt64, _ offset: Int) -> T {
        guard let pointer = UnsafeRawPointer(bitPattern: UInt(base)) else { return 0 }
        return T(littleEndian: pointer.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
