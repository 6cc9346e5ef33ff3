import Foundation
@testable import RingsideKit
import RingsideTestSupport
import Virtio
import Wire
import XCTest

/// A guest RAM image with one split queue laid out like a driver would (virtio 1.2 §2.7).
struct SyntheticRing {
    var bytes: [UInt8]
    let a: GuestQueueAddresses

    init(size: Int, ramBytes: Int = 1 << 20, desc: UInt64 = 0x10000) {
        bytes = [UInt8](repeating: 0, count: ramBytes)
        let avail = desc + UInt64(16 * size)
        let used = (avail + UInt64(6 + 2 * size) + 4095) & ~4095
        a = GuestQueueAddresses(size: size, desc: desc, avail: avail, used: used)
    }

    mutating func put16(_ at: UInt64, _ v: UInt16) { for i in 0..<2 { bytes[Int(at) + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    mutating func put32(_ at: UInt64, _ v: UInt32) { for i in 0..<4 { bytes[Int(at) + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    mutating func put64(_ at: UInt64, _ v: UInt64) { for i in 0..<8 { bytes[Int(at) + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }

    mutating func desc(_ id: Int, addr: UInt64, len: UInt32, flags: UInt16, next: UInt16 = 0, table: UInt64? = nil) {
        let at = (table ?? a.desc) + UInt64(16 * id)
        put64(at, addr); put32(at + 8, len); put16(at + 12, flags); put16(at + 14, next)
    }
    mutating func availIdx(_ v: UInt16) { put16(a.avail + 2, v) }
    mutating func availSlot(_ slot: Int, _ id: UInt16) { put16(a.avail + 4 + UInt64(2 * slot), id) }
    mutating func usedEvent(_ v: UInt16) { put16(a.avail + 4 + UInt64(2 * a.size), v) }
    mutating func usedIdx(_ v: UInt16) { put16(a.used + 2, v) }
    mutating func usedFlags(_ v: UInt16) { put16(a.used, v) }
    mutating func usedSlot(_ slot: Int, id: UInt32, len: UInt32) { put32(a.used + 4 + UInt64(8 * slot), id); put32(a.used + 8 + UInt64(8 * slot), len) }
    mutating func availEvent(_ v: UInt16) { put16(a.used + 4 + UInt64(8 * a.size), v) }

    var memory: GuestMemory { GuestMemory(bytes: bytes) }
}

extension GuestMemory {
    /// `count` bytes (a multiple of 8) of random guest RAM, each 64-bit little-endian word ANDed
    /// with `mask` (a bias towards plausible flags, ids and chains; `.max` leaves it random).
    static func random(count: Int, mask: UInt64 = .max, using rng: inout SplitMix64) -> GuestMemory {
        var bytes = [UInt8](repeating: 0, count: count)
        for i in stride(from: 0, to: count, by: 8) {
            let v = rng.next() & mask
            withUnsafeBytes(of: v.littleEndian) { for k in 0..<8 { bytes[i + k] = $0[k] } }
        }
        return GuestMemory(bytes: bytes)
    }
}

final class GuestRingTests: XCTestCase {
    func testLayoutRules() {
        // pc, 128 MiB: all below 4 GiB, guest-physical == file offset.
        let small = GuestRAMLayout.pc(ramSize: 128 << 20)
        XCTAssertEqual(small.fileOffset(guest: 0x1234, count: 2), 0x1234)
        XCTAssertNil(small.fileOffset(guest: (128 << 20) - 1, count: 2))
        // pc, 4 GiB: 3 GiB below, 1 GiB at 4 GiB continuing in the file.
        let big = GuestRAMLayout.pc(ramSize: 4 << 30)
        XCTAssertEqual(big.fileOffset(guest: 0xBFFF_FFF0, count: 16), 0xBFFF_FFF0)
        XCTAssertNil(big.fileOffset(guest: 0xC000_0000, count: 1), "the PCI hole is not RAM")
        XCTAssertEqual(big.fileOffset(guest: 1 << 32, count: 8), 0xC000_0000)
        XCTAssertEqual(big.fileOffset(guest: (1 << 32) + (1 << 30) - 8, count: 8), (4 << 30) - 8)
        XCTAssertNil(big.fileOffset(guest: (1 << 32) + (1 << 30) - 4, count: 8))
        // pc, 3.25 GiB (< 3.5 GiB): all below.
        XCTAssertEqual(GuestRAMLayout.pc(ramSize: 0xD000_0000).regions.count, 1)
        // q35, 3 GiB: 2 GiB below, 1 GiB above.
        let q = GuestRAMLayout.q35(ramSize: 3 << 30)
        XCTAssertEqual(q.regions, [GuestRAMRegion(guestStart: 0, length: 2 << 30, fileOffset: 0),
                                   GuestRAMRegion(guestStart: 1 << 32, length: 1 << 30, fileOffset: 2 << 30)])
        XCTAssertNil(q.fileOffset(guest: UInt64.max - 2, count: 8), "overflow is out of bounds, not a trap")
    }

    func testLayoutFromMtree() {
        let text = "FlatView #0\r\n AS \"memory\", root: system\r\n Root memory region: system\r\n"
            + "  0000000000000000-00000000000bffff (prio 0, ram): ram0\r\n"
            + "  00000000000c0000-00000000000c0fff (prio 0, rom): ram0 @00000000000c0000\r\n"
            + "  00000000000c1000-00000000000fffff (prio 0, ram): ram0 @00000000000c1000\r\n"
            + "  0000000000100000-00000000bfffffff (prio 0, ram): ram0 @0000000000100000\r\n"
            + "  00000000febc0000-00000000febc003f (prio 0, i/o): msix-table\r\n"
            + "  0000000100000000-000000013fffffff (prio 0, ram): ram0 @00000000c0000000\r\n"
        let l = GuestRAMLayout.parse(mtree: text, backend: "ram0")
        XCTAssertEqual(l?.regions, [GuestRAMRegion(guestStart: 0, length: 0xC000_0000, fileOffset: 0),
                                    GuestRAMRegion(guestStart: 1 << 32, length: 1 << 30, fileOffset: 0xC000_0000)])
        XCTAssertNil(GuestRAMLayout.parse(mtree: text, backend: "pc.ram"))
    }

    func testMemoryBoundsAndMapping() throws {
        let path = NSTemporaryDirectory() + "guestmem-\(getpid()).bin"
        defer { unlink(path) }
        var b = [UInt8](repeating: 0, count: 8192)
        b[4096] = 0x34; b[4097] = 0x12
        FileManager.default.createFile(atPath: path, contents: Data(b))
        let m = try GuestMemory(path: path)
        XCTAssertEqual(m.u16(4096), 0x1234)
        XCTAssertNil(m.u16(8191))
        XCTAssertNil(m.u64(UInt64.max))
        XCTAssertNil(m.bytes(guest: 0, count: 8193))
        XCTAssertEqual(m.bytes(guest: 8192, count: 0), [])
        // A layout larger than the file must not read past the file.
        let lying = try GuestMemory(path: path, layout: GuestRAMLayout.pc(ramSize: 1 << 20))
        XCTAssertNil(lying.u16(8192))
    }

    /// An RX-like queue: 4 posted single buffers, device used 2, driver consumed 1.
    func testStatesAndEventFields() {
        var r = SyntheticRing(size: 8)
        for i in 0..<8 { r.desc(i, addr: 0x80000 + UInt64(i) * 0x800, len: 1526, flags: VIRTQ_DESC_F_WRITE) }
        for (slot, id) in [3, 5, 1, 6].enumerated() { r.availSlot(slot, UInt16(id)) }
        r.availIdx(4)
        r.usedSlot(0, id: 3, len: 60)
        r.usedSlot(1, id: 5, len: 70)
        r.usedIdx(2)
        r.usedEvent(1)
        r.availEvent(4)
        r.usedFlags(1)
        let s = GuestRingReader(eventIdx: true).read(r.memory, r.a)
        XCTAssertNil(s.unreadable)
        XCTAssertEqual(s.availIdx, 4)
        XCTAssertEqual(s.usedIdx, 2)
        XCTAssertEqual(s.usedFlags, 1)
        XCTAssertEqual(s.usedEvent, 1)
        XCTAssertEqual(s.availEvent, 4)
        XCTAssertEqual(s.outstanding, 2)
        XCTAssertEqual(Array(s.availRing.prefix(4)), [3, 5, 1, 6])
        XCTAssertEqual(s.usedRing[1], GuestUsedElement(id: 5, len: 70))
        XCTAssertEqual(s.states[1], .avail)
        XCTAssertEqual(s.states[6], .avail)
        XCTAssertEqual(s.states[5], .used, "used slot 1 is past used_event 1")
        XCTAssertEqual(s.states[3], .free, "used slot 0 was consumed by the driver")
        XCTAssertEqual(s.states[0], .free)
        XCTAssertEqual(s.problems, [])
        XCTAssertFalse(s.moving)
        // used_event 0 with used.idx past 0: Linux's "callbacks off", not "nothing consumed".
        r.usedEvent(0)
        let off = GuestRingReader(eventIdx: true).read(r.memory, r.a)
        XCTAssertNil(off.driverLastUsed)
        XCTAssertEqual(off.states[5], .free)
        XCTAssertEqual(off.states[3], .free)
        r.usedEvent(1)
        // Without EVENT_IDX the tail fields are not read as such.
        let plain = GuestRingReader(eventIdx: false).read(r.memory, r.a)
        XCTAssertNil(plain.usedEvent)
        XCTAssertNil(plain.availEvent)
        XCTAssertEqual(plain.states[5], .free)
    }

    func testChainsAndIndirectTables() {
        var r = SyntheticRing(size: 8)
        // Head 2 → 4 → 7 (header, then two pieces).
        r.desc(2, addr: 0x90000, len: 12, flags: VIRTQ_DESC_F_NEXT, next: 4)
        r.desc(4, addr: 0x90100, len: 100, flags: VIRTQ_DESC_F_NEXT, next: 7)
        r.desc(7, addr: 0x90200, len: 50, flags: 0)
        // Head 0: an indirect table of 3 entries at 0xA0000.
        r.desc(0, addr: 0xA0000, len: 48, flags: VIRTQ_DESC_F_INDIRECT)
        r.desc(0, addr: 0xB0000, len: 12, flags: VIRTQ_DESC_F_NEXT, next: 1, table: 0xA0000)
        r.desc(1, addr: 0xB1000, len: 1000, flags: VIRTQ_DESC_F_NEXT, next: 2, table: 0xA0000)
        r.desc(2, addr: 0xB2000, len: 24, flags: 0, table: 0xA0000)
        for (i, b) in [UInt8](repeating: 0xAB, count: 12).enumerated() { r.bytes[0x90000 + i] = b }
        for (i, b) in [UInt8](repeating: 0xCD, count: 100).enumerated() { r.bytes[0x90100 + i] = b }
        r.availSlot(0, 2); r.availSlot(1, 0); r.availIdx(2)
        let s = GuestRingReader(eventIdx: false).read(r.memory, r.a)
        XCTAssertEqual(s.chain(head: 2)?.ids, [2, 4, 7])
        XCTAssertEqual(s.states[4], .avail)
        XCTAssertEqual(s.states[7], .avail)
        XCTAssertEqual(s.states[3], .free)
        let ind = s.chain(head: 0)
        XCTAssertEqual(ind?.ids, [0])
        XCTAssertEqual(ind?.indirectAddress, 0xA0000)
        XCTAssertEqual(ind?.indirect.map(\.len), [12, 1000, 24])
        XCTAssertEqual(ind?.readableBytes, 1036)
        XCTAssertNil(ind?.problem)
        let buf = GuestRingReader.buffer(of: s.chain(head: 2)!, usedLength: nil, memory: r.memory)
        XCTAssertEqual(buf?.count, 162)
        XCTAssertEqual(Array(buf!.prefix(13)), [UInt8](repeating: 0xAB, count: 12) + [0xCD])
        // Without INDIRECT_DESC negotiated, an INDIRECT descriptor is a problem, not a walk.
        let strict = GuestRingReader(eventIdx: false, indirect: false).read(r.memory, r.a)
        XCTAssertTrue(strict.problems.contains { $0.contains("INDIRECT") })
    }

    func testGarbageIsReportedNotTrusted() {
        var r = SyntheticRing(size: 8)
        r.desc(1, addr: 0, len: 0, flags: VIRTQ_DESC_F_NEXT, next: 2)
        r.desc(2, addr: 0, len: 0, flags: VIRTQ_DESC_F_NEXT, next: 1)   // loop
        r.desc(3, addr: 0, len: 0, flags: VIRTQ_DESC_F_NEXT, next: 99)  // out of range
        r.desc(5, addr: 0xFFFF_FFFF_0000, len: 48, flags: VIRTQ_DESC_F_INDIRECT)  // outside RAM
        r.availSlot(0, 1); r.availSlot(1, 3); r.availSlot(2, 1000); r.availSlot(3, 5); r.availIdx(4)
        let s = GuestRingReader(eventIdx: false).read(r.memory, r.a)
        XCTAssertEqual(s.chain(head: 1)?.ids.count, 8, "a loop stops after size hops")
        XCTAssertTrue(s.problems.contains("chain from 1: loop (more than 8 descriptors)"), "\(s.problems)")
        XCTAssertTrue(s.problems.contains("chain from 3: next 99 ≥ size 8"), "\(s.problems)")
        XCTAssertTrue(s.problems.contains("avail slot 2: id 1000 ≥ size 8"), "\(s.problems)")
        XCTAssertTrue(s.problems.contains { $0.contains("outside guest memory") }, "\(s.problems)")
        // avail.idx far ahead of used.idx.
        r.availIdx(5000)
        let t = GuestRingReader(eventIdx: false).read(r.memory, r.a)
        XCTAssertNil(t.outstanding)
        XCTAssertFalse(t.problems.isEmpty)
        // Rings outside memory, and a size that is not a power of two.
        XCTAssertNotNil(GuestRingReader(eventIdx: true).read(r.memory, GuestQueueAddresses(size: 256, desc: 0xFFF00, avail: 0xFFFF0, used: 0x200000)).unreadable)
        XCTAssertNotNil(GuestRingReader(eventIdx: true).read(r.memory, GuestQueueAddresses(size: 100, desc: 0x1000, avail: 0x2000, used: 0x3000)).unreadable)
        XCTAssertEqual(GuestRingReader(eventIdx: true).read(r.memory, GuestQueueAddresses(size: 256, desc: 0, avail: 0, used: 0)).unreadable, "queue not set up")
    }

    /// A cached read (GuestRingCache: unchanged rings answered from the last read, chains through
    /// unchanged descriptors reused) must equal a fresh read after any change to any ring byte,
    /// descriptor or indirect table, and an unchanged queue must be answered from the cache.
    func testCachedReadsEqualFreshReads() {
        var r = SyntheticRing(size: 16)
        for i in 0..<16 { r.desc(i, addr: 0x80000 + UInt64(i) * 0x800, len: 1526, flags: VIRTQ_DESC_F_WRITE) }
        r.desc(3, addr: 0x90000, len: 12, flags: VIRTQ_DESC_F_NEXT, next: 4)        // a 2-descriptor chain
        r.desc(5, addr: 0xA0000, len: 32, flags: VIRTQ_DESC_F_INDIRECT)             // an indirect table of 2
        r.desc(0, addr: 0xB0000, len: 12, flags: VIRTQ_DESC_F_NEXT, next: 1, table: 0xA0000)
        r.desc(1, addr: 0xB1000, len: 100, flags: 0, table: 0xA0000)
        for (slot, id) in [3, 5, 7, 9, 11].enumerated() { r.availSlot(slot, UInt16(id)) }
        r.availIdx(5); r.usedSlot(0, id: 3, len: 60); r.usedIdx(1); r.usedEvent(0)
        let m = r.memory
        let reader = GuestRingReader(eventIdx: true)
        let cache = GuestRingCache()
        XCTAssertEqual(reader.read(m, r.a, cache: cache), reader.read(m, r.a))
        XCTAssertEqual(reader.read(m, r.a, cache: cache), reader.read(m, r.a))
        XCTAssertEqual(cache.unchangedReads, 1, "nothing changed: answered from the cache")
        // The indirect table alone changes: the cache must see it (its chain's length changes).
        m.poke(guest: 0xA0000 + 16 + 8, [0xC8, 0, 0, 0])
        let fresh = reader.read(m, r.a)
        XCTAssertEqual(fresh.chain(head: 5)?.indirect.last?.len, 200)
        XCTAssertEqual(reader.read(m, r.a, cache: cache), fresh)
        XCTAssertEqual(cache.changedReads, 2)
        // Random writes anywhere in the rings, the table or the indirect table, and reads in between.
        var rng = SplitMix64(seed: 0xCAC4E)
        let areas: [(UInt64, Int)] = [(r.a.desc, 16 * 16), (r.a.avail, 6 + 2 * 16), (r.a.used, 6 + 8 * 16), (0xA0000, 32)]
        for round in 0..<2000 {
            let (base, count) = areas[Int(rng.next() % UInt64(areas.count))]
            let at = base + rng.next() % UInt64(count)
            // Small values, so ids, flags and nexts stay mostly plausible.
            m.poke(guest: at, [UInt8(truncatingIfNeeded: rng.next() % (round % 3 == 0 ? 256 : 20))])
            let last: UInt16? = round % 5 == 0 ? UInt16(truncatingIfNeeded: rng.next() % 8) : nil
            let cached = reader.read(m, r.a, driverLastUsed: last, cache: cache)
            XCTAssertEqual(cached, reader.read(m, r.a, driverLastUsed: last), "round \(round)")
            if round % 7 == 0 { XCTAssertEqual(reader.read(m, r.a, driverLastUsed: last, cache: cache), cached) }
        }
        XCTAssertGreaterThan(cache.reusedChains, 0)
        // New addresses (a reset moved the rings): never the old queue's snapshot.
        let moved = GuestQueueAddresses(size: 16, desc: 0x40000, avail: 0x41000, used: 0x42000)
        XCTAssertEqual(reader.read(m, moved, cache: cache), reader.read(m, moved))
    }

    /// The chain list edited in place (GuestRingCache: heads that came, went or changed) must be
    /// the list a fresh read makes. A driver like Linux's RX path keeps a ring of 64 full of
    /// one-descriptor buffers and recycles a few per read (new buffer addresses), the device
    /// returns them out of order, some buffers are chains or indirect tables, and now and then
    /// random bytes land anywhere in the rings; sometimes the previous snapshot is still held
    /// (the list is then shared and must be copied, not edited under the holder).
    func testEditedChainListsEqualFreshReads() {
        let n = 64
        var r = SyntheticRing(size: n)
        var rng = SplitMix64(seed: 0xED17)
        var generation: UInt64 = 0
        func fill(_ id: Int) {
            generation += 1
            switch rng.next() % 10 {
            case 0:  // a two-descriptor chain through a descriptor above the ring's heads' range
                let tail = Int(rng.next() % UInt64(n))
                r.desc(id, addr: 0x90000 + generation * 0x40, len: 12, flags: VIRTQ_DESC_F_NEXT, next: UInt16(tail))
            case 1:  // an indirect table of one entry
                r.desc(id, addr: 0xC0000 + UInt64(id) * 0x100, len: 16, flags: VIRTQ_DESC_F_INDIRECT)
                r.desc(0, addr: 0xD0000 + generation, len: 1500, flags: VIRTQ_DESC_F_WRITE, table: 0xC0000 + UInt64(id) * 0x100)
            default:
                r.desc(id, addr: 0x80000 + generation * 0x800, len: 1526, flags: VIRTQ_DESC_F_WRITE)
            }
        }
        for id in 0..<n { fill(id); r.availSlot(id, UInt16(id)) }
        var availIdx = UInt16(n), usedIdx: UInt16 = 0, lastUsed: UInt16 = 0
        r.availIdx(availIdx); r.usedEvent(0)
        var outstanding = Array(0..<n)   // heads the device holds, oldest first
        var consumed: [Int] = []         // returned to the driver, not refilled yet
        let reader = GuestRingReader(eventIdx: true)
        let cache = GuestRingCache()
        var held: GuestRingSnapshot?
        for round in 0..<3000 {
            // The device returns a few (mostly in order), the driver consumes and refills a few.
            for _ in 0..<Int(rng.next() % 4) where !outstanding.isEmpty {
                let k = rng.next() % 5 == 0 ? Int(rng.next() % UInt64(outstanding.count)) : 0
                let id = outstanding.remove(at: k)
                r.usedSlot(Int(usedIdx) & (n - 1), id: UInt32(id), len: 60)
                usedIdx &+= 1
            }
            r.usedIdx(usedIdx)
            while lastUsed != usedIdx, rng.next() % 3 != 0 {
                let slot = Int(lastUsed) & (n - 1)
                consumed.append(Int(r.bytes[Int(r.a.used) + 4 + 8 * slot]))
                lastUsed &+= 1
            }
            r.usedEvent(lastUsed)
            while !consumed.isEmpty, rng.next() % 3 != 0 {
                let id = consumed.removeFirst()
                fill(id)
                r.availSlot(Int(availIdx) & (n - 1), UInt16(id))
                availIdx &+= 1
                outstanding.append(id)
            }
            r.availIdx(availIdx)
            let m = r.memory  // a copy: garbage poked into it does not stay in `r`
            if round % 11 == 0 {  // garbage somewhere in the rings
                let areas: [(UInt64, Int)] = [(r.a.desc, 16 * n), (r.a.avail, 6 + 2 * n), (r.a.used, 6 + 8 * n)]
                let (base, count) = areas[Int(rng.next() % 3)]
                m.poke(guest: base + rng.next() % UInt64(count), [UInt8(truncatingIfNeeded: rng.next() % 80)])
            }
            let cached = reader.read(m, r.a, cache: cache)
            XCTAssertEqual(cached, reader.read(m, r.a), "round \(round)")
            held = round % 4 == 0 ? cached : nil
        }
        _ = held
        XCTAssertGreaterThan(cache.editedReads, 1000, "most moving reads edit the last list")
        XCTAssertGreaterThan(cache.changedReads - cache.editedReads, 0, "and some rebuild it")
    }

    /// Random memory, random addresses and sizes: the reader must never trap or hang.
    func testFuzzRandomMemory() {
        var rng = SplitMix64(seed: 0x5EED_0F_6E57)
        let started = Date()
        for round in 0..<400 {
            let ramBytes = 64 * 1024
            // Bias some words towards small numbers so chains and ids look plausible.
            let m = GuestMemory.random(count: ramBytes, mask: round % 2 == 0 ? 0x0007_000F_0000_FFFF : .max, using: &rng)
            let size = 1 << Int(rng.next() % 9)            // 1...256
            func addr() -> UInt64 { rng.next() % 4 == 0 ? rng.next() : rng.next() % UInt64(ramBytes) }
            let a = GuestQueueAddresses(size: rng.next() % 10 == 0 ? Int(rng.next() % 70000) : size,
                                        desc: addr(), avail: addr(), used: addr())
            let s = GuestRingReader(eventIdx: rng.next() % 2 == 0, indirect: true)
                .read(m, a, driverLastUsed: rng.next() % 3 == 0 ? UInt16(truncatingIfNeeded: rng.next()) : nil)
            if s.unreadable == nil {
                XCTAssertEqual(s.states.count, a.size)
                for c in s.chains {
                    XCTAssertLessThanOrEqual(c.ids.count, a.size)
                    XCTAssertLessThanOrEqual(c.indirect.count, a.size)
                    _ = GuestRingReader.buffer(of: c, usedLength: UInt32(truncatingIfNeeded: rng.next()), memory: m, limit: 4096)
                }
            }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 30)
    }
}

final class GuestQEMUArgumentsTests: XCTestCase {
    func testMemorySizes() {
        XCTAssertEqual(QEMUGuestArguments.parseMemorySize("512"), 512)
        XCTAssertEqual(QEMUGuestArguments.parseMemorySize("128M"), 128)
        XCTAssertEqual(QEMUGuestArguments.parseMemorySize("2G"), 2048)
        XCTAssertEqual(QEMUGuestArguments.parseMemorySize("size=1G,slots=2,maxmem=4G"), 1024)
        XCTAssertNil(QEMUGuestArguments.parseMemorySize("lots"))
        XCTAssertNil(QEMUGuestArguments.parseMemorySize("slots=2"))
    }

    func testWrapAddsBackendAndQMPAndMergesMachine() throws {
        let line = ["qemu-system-x86_64", "-M", "q35,accel=tcg", "-m", "256", "-kernel", "k"]
        let (argv, size) = try QEMUGuestArguments.wrap(line, memoryPath: "/dev/shm/r", qmpPath: "/tmp/q.sock")
        XCTAssertEqual(size, 256)
        XCTAssertEqual(argv[2], "q35,accel=tcg,memory-backend=ringside-ram")
        XCTAssertEqual(Array(argv.suffix(4)), ["-object", "memory-backend-file,id=ringside-ram,size=256M,mem-path=/dev/shm/r,share=on",
                                               "-qmp", "unix:/tmp/q.sock,server=on,wait=off"])
        XCTAssertEqual(argv.filter { $0 == "-machine" || $0 == "-M" }.count, 1, "merged, not a second -machine")
        // No -m, no -machine: QEMU's 128 MiB and a -machine of our own.
        let (plain, s2) = try QEMUGuestArguments.wrap(["qemu-system-x86_64", "-nographic"], memoryPath: "/dev/shm/r", qmpPath: "/q")
        XCTAssertEqual(s2, 128)
        XCTAssertTrue(plain.joined(separator: " ").contains("-machine memory-backend=ringside-ram"))
        XCTAssertThrowsError(try QEMUGuestArguments.wrap(["qemu", "-machine", "pc,memory-backend=mine"], memoryPath: "/r", qmpPath: "/q"))
        XCTAssertThrowsError(try QEMUGuestArguments.wrap(["qemu", "-m"], memoryPath: "/r", qmpPath: "/q"))
    }
}

final class GuestTelemetryTests: XCTestCase {
    /// A guest sample becomes the hello + full snapshot the TUI already draws.
    func testSampleBecomesHelloAndSnapshot() {
        var r = SyntheticRing(size: 8)
        for i in 0..<8 { r.desc(i, addr: 0x80000 + UInt64(i) * 0x800, len: 1526, flags: VIRTQ_DESC_F_WRITE) }
        for slot in 0..<4 { r.availSlot(slot, UInt16(slot)) }
        r.availIdx(4); r.usedSlot(0, id: 0, len: 60); r.usedIdx(1); r.usedEvent(1)
        let ring = GuestRingReader(eventIdx: true).read(r.memory, r.a)
        let device = GuestDeviceInfo(path: "/machine/peripheral/eth7/virtio-backend", type: "virtio-net", name: "eth7",
                                     hostFeatures: GuestFeatureList(), guestFeatures: GuestFeatureList(names: ["VIRTIO_F_VERSION_1", "VIRTIO_RING_F_EVENT_IDX", "VIRTIO_NET_F_MRG_RXBUF"]),
                                     statuses: [], queueNames: ["rx", "tx"])
        let sample = GuestSample(time: 12, number: 3, source: .memory, devices: [device],
                                 queues: [GuestQueueSample(name: "eth7.rx", device: "eth7", queue: 0, deviceView: nil, element: nil, ring: ring),
                                          GuestQueueSample(name: "eth7.tx", device: "eth7", queue: 1, deviceView: nil, element: nil, ring: nil)],
                                 qmpAge: 0, notes: [])
        let hello = GuestTelemetry.hello(sample)
        XCTAssertEqual(hello.queues.map(\.name), ["eth7.rx", "eth7.tx"])
        XCTAssertEqual(hello.queues.first?.size, 8)
        XCTAssertEqual(hello.devices.first?.deviceType, 1)
        XCTAssertEqual(hello.devices.first?.features, 1 << 32 | 1 << 29 | 1 << 15)
        let snap = GuestTelemetry.snapshot(sample, number: 3, startedAt: 10, rateHz: 60)
        XCTAssertEqual(snap.uptimeNs, 2_000_000_000)
        let rx = snap.queues[0]
        XCTAssertEqual(rx.status.availIdx, 4)
        XCTAssertEqual(rx.status.usedIdx, 1)
        XCTAssertEqual(rx.status.lastUsedIdx, 1)
        guard case .full(let table) = rx.descriptors else { return XCTFail("full table expected") }
        XCTAssertEqual(table.map(\.state), [.free, .avail, .avail, .avail, .free, .free, .free, .free])
        // The ring section, read from memory and placed as the kernel places it: an 8-slot ring
        // gives 8-slot windows, avail ending 2 past avail.idx, used starting 2 before the driver.
        XCTAssertTrue(rx.ring.eventIdx)
        XCTAssertEqual(rx.ring.usedEvent, 1)
        XCTAssertEqual(rx.ring.availStart, 4 &- 6)
        XCTAssertEqual(rx.ring.availEntries, [0, 0, 0, 1, 2, 3, 0, 0])
        XCTAssertEqual(rx.ring.usedStart, 1 &- 2)
        XCTAssertEqual(rx.ring.usedEntries.count, 8)
        XCTAssertEqual(rx.ring.usedEntries[1], WireUsedElement(id: 0, len: 60), "used slot 0 (index 0 = 65535 + 1)")
        XCTAssertEqual(snap.queues[1].ring, .empty, "nothing read from memory: no ring section")
        XCTAssertEqual(table[2].addr, 0x81000)
        var model = TelemetryModel()
        _ = model.apply(.hello(hello), seq: 1)
        XCTAssertNil(model.apply(.snapshot(snap), seq: 2), "the TUI's model takes it as is")
        XCTAssertEqual(model.queues[0].count(of: .avail), 3)
    }

    /// A virtio-net RX buffer whose header says num_buffers > 1 (MRG_RXBUF) is the first of
    /// several: the dump says so instead of passing one buffer off as the frame.
    func testMergedReceiveBuffersAreCalledOut() {
        func buffer(numBuffers: UInt16, header: Int) -> GuestBuffer {
            var bytes = [UInt8](repeating: 0, count: 64)
            bytes[10] = UInt8(numBuffers & 0xff)
            bytes[11] = UInt8(numBuffers >> 8)
            let chain = GuestChain(head: 0, ids: [0], indirect: [], indirectAddress: 0, segments: [], problem: nil)
            return GuestBuffer(head: 0, usedLength: 64, chain: chain, bytes: bytes, what: "t", headerBytes: header)
        }
        XCTAssertNil(buffer(numBuffers: 1, header: 12).mergedBuffers)
        XCTAssertEqual(buffer(numBuffers: 3, header: 12).mergedBuffers, 3)
        XCTAssertEqual(buffer(numBuffers: 0x0102, header: 12).mergedBuffers, 0x0102)
        XCTAssertNil(buffer(numBuffers: 3, header: 10).mergedBuffers, "no num_buffers field without VERSION_1/MRG_RXBUF")
        XCTAssertNil(buffer(numBuffers: 3, header: 0).mergedBuffers, "not a virtio-net data queue")
    }
}
