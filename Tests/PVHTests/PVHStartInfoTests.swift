import XCTest
import PVH

/// Guest memory for one test: a host buffer whose addresses stand in for physical ones (the
/// kernel reads its identity map the same way). Fields are written at the offsets drawn in Xen's
/// start_info.h, typed in here from the header, not taken from PVH's layout enums.
final class FakeGuestMemory {
    let base: UnsafeMutableRawPointer
    let bytes: Int

    init(bytes: Int = 16384) {
        self.bytes = bytes
        base = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
    }
    deinit { base.deallocate() }

    var readable: Range<UInt64> { address(0)..<address(bytes) }
    func address(_ offset: Int) -> UInt64 { UInt64(UInt(bitPattern: base)) + UInt64(offset) }

    func put32(_ value: UInt32, at offset: Int) { base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self) }
    func put64(_ value: UInt64, at offset: Int) { base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self) }

    /// A struct hvm_start_info at `offset`: magic 0, version 4, cmdline_paddr 24, memmap_paddr 40,
    /// memmap_entries 48 (start_info.h).
    func putStartInfo(at offset: Int = 0, magic: UInt32 = 0x336e_c578, version: UInt32 = 1,
                      cmdline: UInt64 = 0, memmap: UInt64 = 0, entries: UInt32 = 0) {
        put32(magic, at: offset)
        put32(version, at: offset + 4)
        put64(cmdline, at: offset + 24)
        put64(memmap, at: offset + 40)
        put32(entries, at: offset + 48)
    }

    /// Memory map entries of 24 bytes: addr 0, size 8, type 16.
    func putMemmap(at offset: Int, _ entries: [(addr: UInt64, size: UInt64, type: UInt32)]) {
        for (i, e) in entries.enumerated() {
            put64(e.addr, at: offset + 24 * i)
            put64(e.size, at: offset + 24 * i + 8)
            put32(e.type, at: offset + 24 * i + 16)
        }
    }

    func putString(_ bytes: [UInt8], at offset: Int) {
        for (i, b) in bytes.enumerated() { base.storeBytes(of: b, toByteOffset: offset + i, as: UInt8.self) }
    }
}

final class PVHStartInfoTests: XCTestCase {
    static let ram: UInt32 = 1, reserved: UInt32 = 2, acpi: UInt32 = 3
    static let mib: UInt64 = 1 << 20
    /// A kernel image linked at 1 MiB, 400 KiB long with its .bss.
    static let image: Range<UInt64> = (1 << 20)..<((1 << 20) + 400 * 1024)
    static let limit: UInt64 = 0xC000_0000

    /// QEMU's pc map with -m 16 (e820 as SeaBIOS-free PVH boot passes it).
    static let pcMap: [(addr: UInt64, size: UInt64, type: UInt32)] = [
        (0, 0x9fc00, ram), (0x9fc00, 0x400, reserved), (0xf0000, 0x10000, reserved),
        (0x100000, 15 << 20, ram), (0xfffc0000, 0x40000, reserved),
    ]

    func boot(_ map: [(addr: UInt64, size: UInt64, type: UInt32)], entries: UInt32? = nil,
              cmdline: [UInt8]? = nil, memory: FakeGuestMemory = FakeGuestMemory()) throws -> (PVHStartInfo, FakeGuestMemory) {
        memory.putMemmap(at: 64, map)
        if let cmdline { memory.putString(cmdline, at: 8192) }
        memory.putStartInfo(cmdline: cmdline == nil ? 0 : memory.address(8192), memmap: memory.address(64),
                            entries: entries ?? UInt32(map.count))
        return (try PVHStartInfo(at: memory.address(0), readable: memory.readable), memory)
    }

    func testQEMUsPCMapGivesTheRestOfTheImagesRegion() throws {
        let (info, memory) = try boot(Self.pcMap, cmdline: Array("console=ttyS0 ringside.fault=page\0".utf8))
        let chosen = try PVHBootMemory.choose(info, image: Self.image, limit: Self.limit)
        XCTAssertEqual(chosen.ramBytes, 0x9fc00 + (15 << 20))
        XCTAssertEqual(chosen.heap, Self.image.upperBound..<(16 * Self.mib))
        XCTAssertEqual(chosen.wrappingEntries, 0)
        XCTAssertEqual(Array(try info.commandLine()), Array("console=ttyS0 ringside.fault=page".utf8))
        XCTAssertEqual(info.version, 1)
        _ = memory
    }

    func testStartInfoItselfIsChecked() throws {
        let memory = FakeGuestMemory()
        XCTAssertThrowsError(try PVHStartInfo(at: 0, readable: 0..<UInt64.max)) { XCTAssertEqual($0 as? PVHStartInfoError, .absent) }
        memory.putStartInfo(magic: 0x336e_c579)
        XCTAssertThrowsError(try PVHStartInfo(at: memory.address(0), readable: memory.readable)) { XCTAssertEqual($0 as? PVHStartInfoError, .badMagic) }
        // Readable memory ending 4 bytes into the version-1 tail; an address past it; one near 2^64.
        memory.putStartInfo(at: 4096)
        let shortOfTail = memory.address(0)..<memory.address(4096 + 52)
        XCTAssertThrowsError(try PVHStartInfo(at: memory.address(4096), readable: shortOfTail)) { XCTAssertEqual($0 as? PVHStartInfoError, .notReadable) }
        XCTAssertThrowsError(try PVHStartInfo(at: memory.address(memory.bytes), readable: memory.readable)) { XCTAssertEqual($0 as? PVHStartInfoError, .notReadable) }
        XCTAssertThrowsError(try PVHStartInfo(at: UInt64.max - 8, readable: memory.readable)) { XCTAssertEqual($0 as? PVHStartInfoError, .notReadable) }
        // Version 0 is 40 bytes and has no memory map: it is read where version 1 would not fit.
        memory.putStartInfo(at: 4096, version: 0, cmdline: 0, memmap: memory.address(64), entries: 1)
        let v0 = try PVHStartInfo(at: memory.address(4096), readable: memory.address(0)..<memory.address(4096 + 40))
        XCTAssertEqual(v0.memmapEntries, 0)
        XCTAssertThrowsError(try PVHBootMemory.choose(v0, image: Self.image, limit: Self.limit)) { XCTAssertEqual($0 as? PVHBootMemoryError, .noMemoryMap) }
        // Misaligned: read all the same.
        memory.putStartInfo(at: 1001, memmap: 0, entries: 0)
        XCTAssertEqual(try PVHStartInfo(at: memory.address(1001), readable: memory.readable).version, 1)
    }

    func testMemoryMapBoundsAreChecked() throws {
        let memory = FakeGuestMemory()
        memory.putStartInfo(memmap: memory.address(64), entries: 129)
        XCTAssertThrowsError(try PVHStartInfo(at: memory.address(0), readable: memory.readable)) { XCTAssertEqual($0 as? PVHStartInfoError, .tooManyMemmapEntries) }
        // 128 entries from 64 bytes before the end: the table runs out of readable memory.
        memory.putStartInfo(memmap: memory.address(memory.bytes - 64), entries: 128)
        XCTAssertThrowsError(try PVHStartInfo(at: memory.address(0), readable: memory.readable)) { XCTAssertEqual($0 as? PVHStartInfoError, .notReadable) }
        for paddr in [0, UInt64.max - 23, UInt64.max] {
            memory.putStartInfo(memmap: paddr, entries: 1)
            XCTAssertThrowsError(try PVHStartInfo(at: memory.address(0), readable: 0..<UInt64.max)) { XCTAssertEqual($0 as? PVHStartInfoError, .notReadable, "memmap at \(paddr)") }
        }
        memory.putStartInfo(memmap: memory.address(64), entries: 0)
        let empty = try PVHStartInfo(at: memory.address(0), readable: memory.readable)
        XCTAssertThrowsError(try PVHBootMemory.choose(empty, image: Self.image, limit: Self.limit)) { XCTAssertEqual($0 as? PVHBootMemoryError, .noMemoryMap) }
    }

    func testWrappingEntriesAreLeftOutAndRAMSaturates() throws {
        let (info, _) = try boot([
            (UInt64.max - 10, 100, Self.ram), (1, UInt64.max, Self.ram), (UInt64.max, 1, Self.reserved),
            (0x100000, 31 << 20, Self.ram), (1 << 40, UInt64.max - (1 << 40), Self.ram), (1 << 41, UInt64.max - (1 << 41), Self.ram),
        ])
        let chosen = try PVHBootMemory.choose(info, image: Self.image, limit: Self.limit)
        XCTAssertEqual(chosen.wrappingEntries, 3)
        XCTAssertEqual(chosen.ramBytes, UInt64.max)
        XCTAssertEqual(chosen.heap, Self.image.upperBound..<(32 * Self.mib))
    }

    func testOtherEntriesInsideTheRegionWinOverRAM() throws {
        // An ACPI table 8 MiB in: the heap stops there.
        var (info, _) = try boot([(0x100000, 63 << 20, Self.ram), (8 * Self.mib, Self.mib, Self.acpi)])
        XCTAssertEqual(try PVHBootMemory.choose(info, image: Self.image, limit: Self.limit).heap, Self.image.upperBound..<(8 * Self.mib))
        // Over the image, or over the heap's first page: no heap.
        for claimed in [(Self.image.lowerBound + 4096, UInt64(4096)), (Self.image.upperBound, UInt64(1)), (0, Self.image.lowerBound + 1)] {
            (info, _) = try boot([(0x100000, 63 << 20, Self.ram), (claimed.0, claimed.1, Self.reserved)])
            XCTAssertThrowsError(try PVHBootMemory.choose(info, image: Self.image, limit: Self.limit)) { XCTAssertEqual($0 as? PVHBootMemoryError, .imageRegionClaimed, "\(claimed)") }
        }
        // Reserved ranges that end where the image starts, or are empty, take nothing.
        (info, _) = try boot([(0x100000, 63 << 20, Self.ram), (0xf0000, 0x10000, Self.reserved), (2 * Self.mib, 0, Self.reserved)])
        XCTAssertEqual(try PVHBootMemory.choose(info, image: Self.image, limit: Self.limit).heap, Self.image.upperBound..<(64 * Self.mib))
    }

    func testTheHeapStaysBelowTheLimitAndNeedsAPage() throws {
        var (info, _) = try boot([(0x100000, 8 << 30, Self.ram)])
        XCTAssertEqual(try PVHBootMemory.choose(info, image: Self.image, limit: Self.limit).heap, Self.image.upperBound..<Self.limit)
        let cases: [([(addr: UInt64, size: UInt64, type: UInt32)], PVHBootMemoryError)] = [
            ([(0, 0x9fc00, Self.ram)], .imageNotInRAM),                                         // below the image
            ([(0x100000, UInt64(Self.image.count), Self.ram)], .imageNotInRAM), // ends at the image's end
            ([(0x100000 + 4096, 63 << 20, Self.ram)], .imageNotInRAM),                          // starts inside it
            ([(0x100000, 63 << 20, Self.reserved)], .imageNotInRAM),                            // not RAM
            ([(0x100000, UInt64(Self.image.count) + 4095, Self.ram)], .noRoomForHeap),          // under a page after it
        ]
        for (map, expected) in cases {
            (info, _) = try boot(map)
            XCTAssertThrowsError(try PVHBootMemory.choose(info, image: Self.image, limit: Self.limit)) { XCTAssertEqual($0 as? PVHBootMemoryError, expected, "\(map)") }
        }
        (info, _) = try boot([(0x100000, 63 << 20, Self.ram)])
        XCTAssertThrowsError(try PVHBootMemory.choose(info, image: Self.image, limit: Self.image.upperBound + 100)) { XCTAssertEqual($0 as? PVHBootMemoryError, .noRoomForHeap) }
        // An image at the top of the address space: no wrap while aligning.
        (info, _) = try boot([(UInt64.max - 8192, 8192, Self.ram)])
        XCTAssertThrowsError(try PVHBootMemory.choose(info, image: (UInt64.max - 8192)..<(UInt64.max - 10), limit: UInt64.max)) { XCTAssertEqual($0 as? PVHBootMemoryError, .noRoomForHeap) }
    }

    func testCommandLineIsBoundedAndChecked() throws {
        let longest = [UInt8](repeating: UInt8(ascii: "a"), count: PVHStartInfo.maxCommandLineBytes - 1)
        var (info, memory) = try boot(Self.pcMap, cmdline: longest + [0])
        XCTAssertEqual(Array(try info.commandLine()), longest)
        (info, memory) = try boot(Self.pcMap, cmdline: longest + [UInt8(ascii: "b"), 0])
        XCTAssertThrowsError(try info.commandLine()) { XCTAssertEqual($0 as? PVHStartInfoError, .commandLineUnterminated) }
        // No string: empty. Outside readable memory, or running off its end before a NUL: not readable.
        memory.putStartInfo(cmdline: 0, memmap: memory.address(64), entries: 1)
        XCTAssertEqual(try PVHStartInfo(at: memory.address(0), readable: memory.readable).commandLine().count, 0)
        for (cmdline, text) in [(UInt64.max, [UInt8]()), (memory.address(memory.bytes), []), (memory.address(memory.bytes - 3), Array("abc".utf8))] {
            if !text.isEmpty { memory.putString(text, at: memory.bytes - 3) }
            memory.putStartInfo(cmdline: cmdline, memmap: memory.address(64), entries: 1)
            XCTAssertThrowsError(try PVHStartInfo(at: memory.address(0), readable: memory.readable).commandLine()) { XCTAssertEqual($0 as? PVHStartInfoError, .notReadable) }
        }
    }

    /// Random maps (seeded): never a trap, and a chosen heap always lies after the image, below
    /// the limit, inside one RAM entry that holds the image, and clear of every other entry.
    func testRandomMapsNeverTrapAndKeepTheInvariants() throws {
        var state: UInt64 = 0x5eed_1234
        func next() -> UInt64 {  // splitmix64
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        let interesting: [UInt64] = [0, 1, 0x100000, Self.image.upperBound, Self.image.upperBound + 4096, 16 << 20, Self.limit, 1 << 32, UInt64.max - 1, UInt64.max]
        func pick() -> UInt64 { next() % 2 == 0 ? interesting[Int(next() % UInt64(interesting.count))] &+ (next() % 3) &- 1 : next() % (64 << 20) }
        var chosenCount = 0
        for _ in 0..<5000 {
            let count = Int(next() % 8)
            let map = (0..<count).map { _ in (addr: pick(), size: pick(), type: UInt32(next() % 4)) }
            guard let (info, _) = try? boot(map) else { XCTFail("a valid table refused"); continue }
            guard let chosen = try? PVHBootMemory.choose(info, image: Self.image, limit: Self.limit) else { continue }
            chosenCount += 1
            XCTAssertEqual(chosen.heap.lowerBound, Self.image.upperBound)
            XCTAssertLessThanOrEqual(chosen.heap.upperBound, Self.limit)
            XCTAssertGreaterThanOrEqual(chosen.heap.count, 4096)
            XCTAssertTrue(map.contains { e in
                e.type == 1 && e.addr.addingReportingOverflow(e.size).overflow == false
                    && e.addr <= Self.image.lowerBound && e.addr + e.size >= chosen.heap.upperBound
            }, "\(map)")
            for e in map where e.type != 1 && e.size > 0 && !e.addr.addingReportingOverflow(e.size).overflow {
                XCTAssertTrue(e.addr >= chosen.heap.upperBound || e.addr + e.size <= Self.image.lowerBound, "\(map)")
            }
        }
        XCTAssertGreaterThan(chosenCount, 100, "too few maps gave a heap to check anything")
    }
}
