import Foundation
@testable import RingsideKit
import RingsideTestSupport
import Wire
import XCTest

/// A guest RAM image with one packed queue (virtio 1.2 §2.8), written slot by slot as a driver
/// and a device would, from the spec's rules alone (no code shared with the reader).
struct SyntheticPackedRing {
    var bytes: [UInt8]
    let a: GuestQueueAddresses
    static let availFlag: UInt16 = 1 << 7
    static let usedFlag: UInt16 = 1 << 15

    init(size: Int, ramBytes: Int = 1 << 20) {
        bytes = [UInt8](repeating: 0, count: ramBytes)
        a = GuestQueueAddresses(size: size, desc: 0x10000, avail: 0x20000, used: 0x21000)
    }

    mutating func put(_ at: UInt64, _ v: UInt64, _ n: Int) { for i in 0..<n { bytes[Int(at) + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }

    /// The driver makes `slot` available in the lap whose wrap counter is `wrap` (§2.8.6).
    mutating func makeAvailable(_ slot: Int, wrap: Bool, id: UInt16, addr: UInt64 = 0x80000, len: UInt32 = 1526, flags: UInt16 = 2) {
        let at = a.desc + UInt64(16 * slot)
        put(at, addr, 8); put(at + 8, UInt64(len), 4); put(at + 12, UInt64(id), 2)
        put(at + 14, UInt64(flags | (wrap ? Self.availFlag : Self.usedFlag)), 2)
    }

    /// The device writes a used descriptor at `slot` with its wrap counter `wrap` (§2.8.7).
    mutating func markUsed(_ slot: Int, wrap: Bool, id: UInt16, len: UInt32) {
        let at = a.desc + UInt64(16 * slot)
        put(at + 8, UInt64(len), 4); put(at + 12, UInt64(id), 2)
        put(at + 14, UInt64(wrap ? Self.availFlag | Self.usedFlag : 0), 2)
    }

    /// `struct pvirtq_event_suppress` of the driver (driver area) or the device (device area).
    mutating func event(driver: Bool, flags: UInt16, offset: UInt16, wrap: Bool) {
        let at = driver ? a.avail : a.used
        put(at, UInt64(offset | (wrap ? 0x8000 : 0)), 2); put(at + 2, UInt64(flags), 2)
    }

    /// A packed indirect table (§2.8.7): `struct pvirtq_desc` entries one after another, id 0.
    mutating func indirectTable(at: UInt64, _ entries: [(addr: UInt64, len: UInt32, flags: UInt16)]) {
        for (k, e) in entries.enumerated() {
            let o = at + UInt64(16 * k)
            put(o, e.addr, 8); put(o + 8, UInt64(e.len), 4); put(o + 12, 0, 2); put(o + 14, UInt64(e.flags), 2)
        }
    }

    mutating func write(_ b: [UInt8], at: UInt64) { bytes.replaceSubrange(Int(at)..<(Int(at) + b.count), with: b) }

    var memory: GuestMemory { GuestMemory(bytes: bytes) }
}

final class GuestPackedRingTests: XCTestCase {
    let reader = GuestRingReader(eventIdx: true, packed: true)

    /// A fresh (all-zero) ring: driver and device at slot 0 with wrap counters 1 (§2.8.1).
    func testResetRing() throws {
        let r = SyntheticPackedRing(size: 8)
        let s = reader.read(r.memory, r.a)
        let p = try XCTUnwrap(s.packed)
        XCTAssertEqual(p.driver, GuestPackedPosition(offset: 0, wrap: true))
        XCTAssertEqual(p.device, GuestPackedPosition(offset: 0, wrap: true))
        XCTAssertEqual(s.outstanding, 0)
        XCTAssertEqual(s.problems, [])
        XCTAssertEqual(s.states, [WireDescriptorState](repeating: .free, count: 8))
    }

    /// One lap made available, three used, one consumed; then a slot of the next lap.
    func testPositionsStatesAndWrapCounters() throws {
        var r = SyntheticPackedRing(size: 8)
        for slot in 0..<8 { r.makeAvailable(slot, wrap: true, id: UInt16(7 - slot), addr: 0x80000 + UInt64(slot) * 0x1000) }
        for slot in 0..<3 { r.markUsed(slot, wrap: true, id: UInt16(7 - slot), len: 60 + UInt32(slot)) }
        r.event(driver: true, flags: 2, offset: 1, wrap: true)      // the driver consumed slot 0
        r.event(driver: false, flags: 1, offset: 0, wrap: false)    // the device wants no kicks
        var s = reader.read(r.memory, r.a)
        var p = try XCTUnwrap(s.packed)
        XCTAssertEqual(p.driver, GuestPackedPosition(offset: 0, wrap: false), "a whole lap made available: slot 0, wrap counter flipped")
        XCTAssertEqual(p.device, GuestPackedPosition(offset: 3, wrap: true))
        XCTAssertEqual(p.driverUsed, GuestPackedPosition(offset: 1, wrap: true))
        XCTAssertEqual(p.deviceEvent.flagsName, "DISABLE")
        XCTAssertEqual(s.outstanding, 5)
        XCTAssertEqual(p.slotStates, [.free, .used, .used, .avail, .avail, .avail, .avail, .avail])
        // Buffer ids: slot k holds id 7 − k.
        XCTAssertEqual(s.states, [.avail, .avail, .avail, .avail, .avail, .used, .used, .free])
        XCTAssertEqual(s.descriptors[4].addr, 0x83000)
        XCTAssertEqual(s.descriptors[6].len, 61, "a used buffer's len is what the device wrote")
        XCTAssertEqual(s.availIdx, 0, "driver position 0, wrap 0")
        XCTAssertEqual(s.usedIdx, 0x8003)
        XCTAssertEqual(s.driverLastUsed, 0x8001)
        XCTAssertEqual(s.problems, [])
        XCTAssertEqual(s.availRing, [])
        XCTAssertEqual(s.usedRing, [])

        // The driver reuses slot 0 in the second lap (wrap counter 0); the device moves on to slot 5.
        r.makeAvailable(0, wrap: false, id: 7)
        for slot in 3..<5 { r.markUsed(slot, wrap: true, id: UInt16(7 - slot), len: 1) }
        s = reader.read(r.memory, r.a)
        p = try XCTUnwrap(s.packed)
        XCTAssertEqual(p.driver, GuestPackedPosition(offset: 1, wrap: false))
        XCTAssertEqual(p.device, GuestPackedPosition(offset: 5, wrap: true))
        XCTAssertEqual(s.outstanding, 4)
        XCTAssertEqual(wireRingDistance(from: s.usedIdx, to: s.availIdx, size: 8, format: .packed), 4)

        // The device completes the lap and slot 0 of the next: its wrap counter flips too.
        for slot in 5..<8 { r.markUsed(slot, wrap: true, id: UInt16(7 - slot), len: 1) }
        r.markUsed(0, wrap: false, id: 7, len: 1)
        s = reader.read(r.memory, r.a)
        p = try XCTUnwrap(s.packed)
        XCTAssertEqual(p.device, GuestPackedPosition(offset: 1, wrap: false))
        XCTAssertEqual(s.outstanding, 0)
        // The driver has not consumed any of it: a whole lap of used slots waits at its position.
        XCTAssertEqual(p.driverUsed, GuestPackedPosition(offset: 1, wrap: true))
        XCTAssertEqual(s.states.filter { $0 == .used }.count, 8)
    }

    /// What a guest may write that makes no sense is reported, never trusted.
    func testGarbageIsReported() throws {
        var r = SyntheticPackedRing(size: 8)
        for slot in 0..<4 { r.makeAvailable(slot, wrap: true, id: UInt16(slot)) }
        r.makeAvailable(2, wrap: true, id: 999)
        r.makeAvailable(6, wrap: true, id: 6)                      // AVAIL changes twice: 0–3 w1, 4–5 w0, 6 w1
        let s = reader.read(r.memory, r.a)
        XCTAssertTrue(s.problems.contains { $0.contains("id 999 ≥ size 8") }, "\(s.problems)")
        XCTAssertTrue(s.problems.contains { $0.contains("AVAIL bits change more than once") }, "\(s.problems)")
        XCTAssertEqual(s.states.count, 8)
        // A size over 2^15 is refused; any size up to it is fine (packed rings need no power of 2).
        XCTAssertNotNil(reader.read(r.memory, GuestQueueAddresses(size: 40000, desc: 0x10000, avail: 0x20000, used: 0x21000)).unreadable)
        XCTAssertNil(reader.read(r.memory, GuestQueueAddresses(size: 6, desc: 0x10000, avail: 0x20000, used: 0x21000)).unreadable)
        // The driver's event structure naming a position ahead of the device is not a driver position.
        var q = SyntheticPackedRing(size: 8)
        for slot in 0..<4 { q.makeAvailable(slot, wrap: true, id: UInt16(slot)) }
        q.markUsed(0, wrap: true, id: 0, len: 1)
        q.event(driver: true, flags: 2, offset: 3, wrap: true)     // Linux's delayed callbacks ask ahead
        XCTAssertNil(try XCTUnwrap(reader.read(q.memory, q.a).packed).driverUsed)
    }

    /// Random memory, addresses and sizes: the packed reader never traps or hangs, and whatever
    /// it says stays within the queue.
    func testFuzzRandomMemory() {
        var rng = SplitMix64(seed: 0x9AC4_ED)
        let started = Date()
        for round in 0..<400 {
            let ramBytes = 64 * 1024
            // Plausible flags and small ids in every other round.
            let m = GuestMemory.random(count: ramBytes, mask: round % 2 == 0 ? 0x8087_0007_000F_00FF : .max, using: &rng)
            func addr() -> UInt64 { rng.next() % 4 == 0 ? rng.next() : rng.next() % UInt64(ramBytes) }
            let size = rng.next() % 10 == 0 ? Int(rng.next() % 70000) : 1 + Int(rng.next() % 300)
            let a = GuestQueueAddresses(size: size, desc: addr(), avail: addr(), used: addr())
            let cache = GuestRingCache()
            for _ in 0..<2 {
                let s = GuestRingReader(eventIdx: rng.next() % 2 == 0, packed: true).read(m, a, cache: cache)
                guard s.unreadable == nil, let p = s.packed else { continue }
                XCTAssertEqual(s.states.count, size)
                XCTAssertEqual(p.slotStates.count, size)
                XCTAssertLessThan(Int(p.driver.offset), size)
                XCTAssertLessThan(Int(p.device.offset), size)
                XCTAssertLessThanOrEqual(s.outstanding ?? 0, size)
                if let u = p.driverUsed { XCTAssertLessThan(Int(u.offset), size) }
                XCTAssertEqual(wireRingDistance(from: s.usedIdx, to: s.availIdx, size: UInt16(size), format: .packed), s.outstanding ?? -1)
            }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 30)
    }

    // MARK: - Indirect tables (virtio 1.2 §2.8.7, §2.8.19)

    static let indirectFlag: UInt16 = 4, nextFlag: UInt16 = 1, writeFlag: UInt16 = 2

    /// A TX-like buffer through an indirect table (the virtio-net header and frame in two
    /// read-only pieces), a plain one, and a two-slot list: the device holds three buffers, each
    /// walked, and the indirect one's bytes are its pieces in table order.
    func testIndirectTableIsWalked() throws {
        var r = SyntheticPackedRing(size: 8)
        let header = [UInt8](repeating: 0, count: 12), frame = (0..<60).map { UInt8(truncatingIfNeeded: $0 * 7 + 1) }
        r.write(header, at: 0x50000); r.write(frame, at: 0x51000)
        r.indirectTable(at: 0x40000, [(0x50000, 12, 0), (0x51000, 60, 0)])
        r.makeAvailable(0, wrap: true, id: 5, addr: 0x40000, len: 32, flags: Self.indirectFlag)
        r.makeAvailable(1, wrap: true, id: 2, addr: 0x60000, len: 100, flags: 0)
        r.makeAvailable(2, wrap: true, id: 0, addr: 0x61000, len: 10, flags: Self.nextFlag)
        r.makeAvailable(3, wrap: true, id: 7, addr: 0x62000, len: 20, flags: 0)
        let s = reader.read(r.memory, r.a)
        XCTAssertEqual(s.problems, [])
        XCTAssertEqual(s.chains.map(\.head), [2, 5, 7], "by buffer id")
        let c = try XCTUnwrap(s.chain(head: 5))
        XCTAssertEqual(c.ids, [0], "one slot")
        XCTAssertEqual(c.indirectAddress, 0x40000)
        XCTAssertEqual(c.indirect.map(\.addr), [0x50000, 0x51000])
        XCTAssertEqual(c.segments.map(\.len), [12, 60])
        XCTAssertNil(c.problem)
        XCTAssertEqual(GuestRingReader.buffer(of: c, usedLength: nil, memory: r.memory), header + frame)
        XCTAssertEqual(s.chain(head: 7)?.ids, [2, 3], "a list linked by NEXT: its slots, the id in the last")
        XCTAssertEqual(s.chain(head: 7)?.segments.map(\.addr), [0x61000, 0x62000])
        // Without chains kept, the walk still happens (problems), and nothing is listed.
        var plain = reader
        plain.keepsChains = false
        XCTAssertEqual(plain.read(r.memory, r.a).chains, [])
    }

    /// Every hostile table the split walker refuses is refused here too, with a reason, and
    /// nothing traps: a length not a multiple of 16, zero, more entries than the queue size
    /// (also one of 4 GiB), outside guest memory, a nested INDIRECT, INDIRECT in a NEXT list,
    /// INDIRECT without the feature; an entry with a flag other than WRITE is reported.
    func testHostileIndirectTablesAreRefused() throws {
        func problems(_ addr: UInt64, _ len: UInt32, flags: UInt16 = SyntheticPackedRing.availFlag & 0 | 4, indirectFeature: Bool = true,
                      table: [(addr: UInt64, len: UInt32, flags: UInt16)] = [(0x50000, 12, 0)], previous: Bool = false) -> (GuestRingSnapshot, [String]) {
            var r = SyntheticPackedRing(size: 8)
            r.indirectTable(at: 0x40000, table)
            if previous { r.makeAvailable(0, wrap: true, id: 1, addr: 0x70000, len: 8, flags: Self.nextFlag) }
            r.makeAvailable(previous ? 1 : 0, wrap: true, id: 3, addr: addr, len: len, flags: flags)
            let s = GuestRingReader(eventIdx: true, indirect: indirectFeature, packed: true).read(r.memory, r.a)
            return (s, s.problems)
        }
        func expect(_ p: (GuestRingSnapshot, [String]), _ text: String, held: Bool = true, line: UInt = #line) {
            XCTAssertTrue(p.1.contains { $0.contains(text) }, "\(p.1)", line: line)
            if held { XCTAssertEqual(p.0.states[3], .avail, "the buffer is still the device's", line: line) }
        }
        expect(problems(0x40000, 24), "24 bytes (not a multiple of 16)")
        expect(problems(0x40000, 0), "0 bytes")
        expect(problems(0x40000, 16 * 9), "9 entries > queue size 8")
        expect(problems(0x40000, 0xFFFF_FFF0), "entries > queue size 8")
        expect(problems(0xFFFF_FFFF_FFFF_0000, 16), "outside guest memory")
        expect(problems(0xFFFF0, 32), "outside guest memory")  // straddles the end of RAM
        let nested = problems(0x40000, 48, table: [(0x50000, 12, 0), (0x40000, 48, 4), (0x51000, 60, 0)])
        expect(nested, "entry 1: nested INDIRECT")
        XCTAssertEqual(nested.0.chain(head: 3)?.segments.count, 1, "the walk stops at the nested table")
        expect(problems(0x40000, 32, table: [(0x50000, 12, 1), (0x51000, 60, 0)]), "entry 0: flags 0x1 (only WRITE is valid)")
        expect(problems(0x40000, 16, flags: 4 | 1), "INDIRECT in a list linked by NEXT", held: false)  // NEXT on the last slot: no id
        expect(problems(0x40000, 16, previous: true), "INDIRECT in a list linked by NEXT")
        expect(problems(0x40000, 16, indirectFeature: false), "INDIRECT without VIRTIO_F_INDIRECT_DESC")
        XCTAssertEqual(problems(0x40000, 32, table: [(0x50000, 12, 0), (0x51000, 60, 2)]).1, [], "WRITE is valid in an entry")
    }

    /// A cached read notices a table rewritten in place (the ring bytes alike).
    func testCacheSeesATableRewritten() throws {
        var r = SyntheticPackedRing(size: 8)
        r.indirectTable(at: 0x40000, [(0x50000, 12, 0), (0x51000, 60, 0)])
        r.makeAvailable(0, wrap: true, id: 5, addr: 0x40000, len: 32, flags: Self.indirectFlag)
        let cache = GuestRingCache()
        XCTAssertEqual(reader.read(r.memory, r.a, cache: cache).chain(head: 5)?.segments.last?.len, 60)
        r.indirectTable(at: 0x40000, [(0x50000, 12, 0), (0x51000, 61, 0)])
        XCTAssertEqual(reader.read(r.memory, r.a, cache: cache).chain(head: 5)?.segments.last?.len, 61)
    }

    // MARK: - Dumps from the record of offers

    func dump(_ s: GuestRingSnapshot, _ selector: GuestBufferSelector) throws(RingsideError) -> (GuestChain, UInt32?, String) {
        let b = try GuestSample.packedBuffer("q", ring: s, try! XCTUnwrap(s.packed), selector)
        return (b.offer.chain, b.usedLength, b.what)
    }

    func refusal(_ s: GuestRingSnapshot, _ selector: GuestBufferSelector) -> String {
        do { _ = try dump(s, selector); return "" } catch { return error.description }
    }

    /// RX-like buffers offered, seen, then used: a used slot is dumped from where its buffer was
    /// offered (the used length bounds the bytes) and the header says which slot and samples.
    func testUsedSlotIsDumpedFromItsRecordedOffer() throws {
        var r = SyntheticPackedRing(size: 8)
        for k in 0..<4 { r.makeAvailable(k, wrap: true, id: UInt16(3 - k), addr: 0x80000 + UInt64(k) * 0x1000, len: 1526, flags: Self.writeFlag) }
        let cache = GuestRingCache()
        var s = reader.read(r.memory, r.a, cache: cache, sample: 1)
        // Nothing used yet (the zeroed slots of the lap before look like used ones naming id 0,
        // which the device holds: refused either way).
        XCTAssertTrue(refusal(s, .last).contains("offered again"), refusal(s, .last))
        // The device writes a frame into the first buffer (id 3) and a used descriptor over its slot.
        let frame = (0..<72).map { UInt8(truncatingIfNeeded: $0 * 5 + 3) }
        r.write(frame + [0xEE, 0xEE], at: 0x80000)
        r.markUsed(0, wrap: true, id: 3, len: 72)
        r.event(driver: true, flags: 2, offset: 0, wrap: true)
        s = reader.read(r.memory, r.a, cache: cache, sample: 2)
        for selector in [GuestBufferSelector.last, .next, .descriptor(3)] {
            let (chain, len, what) = try dump(s, selector)
            XCTAssertEqual(len, 72)
            XCTAssertEqual(chain.head, 3)
            XCTAssertEqual(GuestRingReader.buffer(of: chain, usedLength: len, memory: r.memory), frame, "the used length bounds the bytes")
            XCTAssertEqual(what, "used slot 0/w1 → buffer id 3, len 72; address from slot 0/w1 as offered, first seen in sample 1")
        }
        // A buffer the device holds: from its slot now.
        let held = try dump(s, .descriptor(2))
        XCTAssertEqual(held.0.segments.map(\.addr), [0x81000])
        XCTAssertNil(held.1)
        XCTAssertTrue(held.2.contains("held by the device"), held.2)
        XCTAssertTrue(refusal(s, .descriptor(6)).contains("neither held by the device nor named by a used slot"))
        XCTAssertTrue(refusal(s, .descriptor(8)).contains("≥ queue size 8"))
    }

    /// Whenever the record cannot be trusted the dump is refused with the reason: a used slot
    /// whose offer no sample saw, an id offered again, offers missed between two samples, an
    /// offer seen only in a torn read.
    func testUntrustedRecordsAreRefused() throws {
        var r = SyntheticPackedRing(size: 8)
        for k in 0..<4 { r.makeAvailable(k, wrap: true, id: UInt16(k), addr: 0x80000 + UInt64(k) * 0x1000, len: 1526, flags: Self.writeFlag) }
        r.markUsed(0, wrap: true, id: 0, len: 60)
        // Watching starts after the offer: unknown.
        let cache = GuestRingCache()
        var s = reader.read(r.memory, r.a, cache: cache, sample: 1)
        XCTAssertTrue(refusal(s, .last).contains("not seen offered since sample 1"), refusal(s, .last))
        // Id 1 seen offered, used, then offered again (slot 4): the used buffer's address is gone.
        r.markUsed(1, wrap: true, id: 1, len: 61)
        r.makeAvailable(4, wrap: true, id: 1, addr: 0x90000, len: 1526, flags: Self.writeFlag)
        s = reader.read(r.memory, r.a, cache: cache, sample: 2)
        XCTAssertTrue(refusal(s, .last).contains("offered again since (slot 4/w1)"), refusal(s, .last))
        // Slots 5 and 6 offered and used between two samples (ids 0 and 5): a miss; id 2, seen
        // before it, is used afterwards and refused; id 7, offered and seen after the miss, is trusted.
        r.makeAvailable(5, wrap: true, id: 0, addr: 0xA0000, len: 1526, flags: Self.writeFlag)
        r.makeAvailable(6, wrap: true, id: 5, addr: 0xA1000, len: 1526, flags: Self.writeFlag)
        for (slot, id) in [(2, 2), (3, 3), (4, 1), (5, 0), (6, 5)] { r.markUsed(slot, wrap: true, id: UInt16(id), len: 62) }
        s = reader.read(r.memory, r.a, cache: cache, sample: 3)
        XCTAssertEqual(s.packed?.offers?.lastMissSample, 3)
        XCTAssertTrue(refusal(s, .descriptor(2)).contains("offers were missed at sample 3"), refusal(s, .descriptor(2)))
        r.makeAvailable(7, wrap: true, id: 7, addr: 0xB0000, len: 1526, flags: Self.writeFlag)
        s = reader.read(r.memory, r.a, cache: cache, sample: 4)
        r.markUsed(7, wrap: true, id: 7, len: 63)
        s = reader.read(r.memory, r.a, cache: cache, sample: 5)
        XCTAssertEqual(try dump(s, .last).0.segments.map(\.addr), [0xB0000])
        // An offer seen in one torn read only is not trusted.
        var torn = try XCTUnwrap(s.packed)
        torn.offers?.byId[7]?.confirmed = false
        s.packed = torn
        XCTAssertTrue(refusal(s, .last).contains("torn read"), refusal(s, .last))
        // New addresses (a reset): a new record.
        var moved = SyntheticPackedRing(size: 8)
        moved.bytes = r.bytes
        let other = GuestQueueAddresses(size: 8, desc: 0x10000, avail: 0x20000, used: 0x21004)
        XCTAssertEqual(reader.read(moved.memory, other, cache: cache, sample: 6).packed?.offers?.sinceSample, 6)
    }
}
