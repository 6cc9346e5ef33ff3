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
}
