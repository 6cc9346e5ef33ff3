import XCTest
import RingsideTestSupport
@testable import Virtio

private func buffer(_ pool: BufferPool, _ i: Int, writable: Bool = true, len: UInt32? = nil) -> VirtqBuffer {
    VirtqBuffer(addr: pool.address(i), len: len ?? UInt32(pool.bufferSize), deviceWritable: writable)
}

final class PackedVirtqueueLayoutTests: XCTestCase {
    func testLayoutFollowsTheSpec() {
        // 2.8.13: struct pvirtq_desc { le64 addr; le32 len; le16 id; le16 flags; }.
        XCTAssertEqual(PackedVirtqueue.descRingBytes(size: 256), 16 * 256)
        XCTAssertEqual(virtqPackedDescOffset(5), 80)
        XCTAssertEqual([VIRTQ_PACKED_DESC_ADDR_OFFSET, VIRTQ_PACKED_DESC_LEN_OFFSET, VIRTQ_PACKED_DESC_ID_OFFSET,
                        VIRTQ_PACKED_DESC_FLAGS_OFFSET], [0, 8, 12, 14])
        // 2.8.14: struct pvirtq_event_suppress { le16 desc_event_off_wrap; le16 desc_event_flags; }.
        XCTAssertEqual(PackedVirtqueue.eventBytes, 4)
        XCTAssertEqual(VIRTQ_PACKED_EVENT_FLAGS_OFFSET, 2)
        // 2.8.10.1: alignment 16 / 4 / 4.
        XCTAssertEqual(PackedVirtqueue.descRingAlignment, 16)
        XCTAssertEqual(PackedVirtqueue.eventAlignment, 4)
        XCTAssertEqual(VIRTQ_PACKED_DESC_F_AVAIL, 0x80)
        XCTAssertEqual(VIRTQ_PACKED_DESC_F_USED, 0x8000)
        XCTAssertEqual([VIRTQ_PACKED_EVENT_FLAG_ENABLE, VIRTQ_PACKED_EVENT_FLAG_DISABLE, VIRTQ_PACKED_EVENT_FLAG_DESC], [0, 1, 2])
        XCTAssertEqual(virtqPackedAvailFlags(wrap: true), 0x0080)
        XCTAssertEqual(virtqPackedAvailFlags(wrap: false), 0x8000)
        XCTAssertTrue(virtqPackedIsUsed(flags: 0x8080, wrap: true))
        XCTAssertTrue(virtqPackedIsUsed(flags: 0, wrap: false))
        XCTAssertFalse(virtqPackedIsUsed(flags: 0x0080, wrap: true), "available, not used")
        XCTAssertFalse(virtqPackedIsUsed(flags: 0x8080, wrap: false), "used in the previous lap")
    }

    func testInitRejectsInvalidSizesAndAlignmentAndAcceptsAnySize() {
        let memory = PackedRingMemory(size: 64)
        for bad: UInt16 in [0, 32769, 65535] {
            XCTAssertThrowsError(try PackedVirtqueue(size: bad, descRing: memory.desc, driverEvent: memory.driverEvent,
                                                     deviceEvent: memory.deviceEvent)) {
                XCTAssertEqual($0 as? PackedVirtqueueSetupError, .invalidSize(bad))
            }
        }
        XCTAssertThrowsError(try PackedVirtqueue(size: 8, descRing: memory.desc + 8, driverEvent: memory.driverEvent,
                                                 deviceEvent: memory.deviceEvent)) {
            XCTAssertEqual($0 as? PackedVirtqueueSetupError, .misaligned(area: .descriptorRing, requiredAlignment: 16))
        }
        XCTAssertThrowsError(try PackedVirtqueue(size: 8, descRing: memory.desc, driverEvent: memory.driverEvent + 2,
                                                 deviceEvent: memory.deviceEvent))
        XCTAssertThrowsError(try PackedVirtqueue(size: 8, descRing: memory.desc, driverEvent: memory.driverEvent,
                                                 deviceEvent: memory.deviceEvent + 2))
        // Packed rings need not be a power of 2 (2.8).
        XCTAssertNoThrow(try PackedVirtqueue(size: 37, descRing: memory.desc, driverEvent: memory.driverEvent,
                                             deviceEvent: memory.deviceEvent))
    }

    func testInitZeroesTheAreasAndFreesEveryID() {
        let memory = PackedRingMemory(size: 16)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        for slot: UInt16 in 0..<16 { XCTAssertEqual(device.raw(slot).flags, 0) }
        XCTAssertEqual(device.driverEventFlags, 0, "ENABLE")
        XCTAssertEqual(queue.deviceEventSuppression.flags, 0)
        XCTAssertFalse(device.hasAvailable)
        XCTAssertEqual(queue.freeCount, 16)
        XCTAssertEqual(queue.stateCounts(), VirtqStateCounts(free: 16))
        XCTAssertTrue(queue.availWrap)
        XCTAssertTrue(queue.usedWrap)
    }
}

final class PackedVirtqueueTests: XCTestCase {
    /// The openvmm #3990 case: the ring filled exactly to its size, so the driver's wrap
    /// counter must flip right after the last position, and the device must then see the next
    /// lap's descriptors (AVAIL = 0, USED = 1) as available — lap after lap.
    func testExactFullRingWrapLapAfterLap() {
        for size: UInt16 in [1, 4, 5] {
            let memory = PackedRingMemory(size: size)
            let queue = memory.makeQueue()
            let device = memory.makeDevice()
            let pool = BufferPool(count: Int(size), bufferSize: 64)
            for lap in 0..<6 {
                var ids: [UInt16] = []
                for i in 0..<Int(size) {
                    guard let id = queue.addBuffer(addr: pool.address(i), len: 64, deviceWritable: true) else {
                        return XCTFail("size \(size) lap \(lap): position \(i) refused")
                    }
                    ids.append(id)
                }
                XCTAssertNil(queue.addBuffer(addr: 0, len: 1, deviceWritable: true), "ring full")
                XCTAssertEqual(queue.nextAvail, 0)
                XCTAssertEqual(queue.availWrap, lap % 2 == 1, "driver wrap counter flipped at the end, lap \(lap)")
                XCTAssertFalse(device.hasAvailable, "nothing visible before publish")
                queue.publish()
                let chains = device.takeAllAvailable()
                XCTAssertEqual(chains.map(\.id), ids, "size \(size) lap \(lap): device sees the whole lap")
                XCTAssertEqual(device.availWrapFlips, lap + 1)
                device.complete(chains) { UInt32($0.id) + 1 }
                var popped: [UInt16] = []
                while let used = queue.popUsed() {
                    XCTAssertEqual(used.len, used.id + 1)
                    popped.append(used.head)
                    XCTAssertTrue(queue.release(head: used.head))
                }
                XCTAssertEqual(popped, ids, "size \(size) lap \(lap)")
                XCTAssertEqual(queue.usedWrap, lap % 2 == 1, "used wrap counter flipped, lap \(lap)")
                XCTAssertEqual(queue.freeCount, size)
            }
            // A single chain exactly as long as the ring.
            let chain = (0..<Int(size)).map { buffer(pool, $0) }
            let id = queue.addChain(chain)
            XCTAssertNotNil(id)
            queue.publish()
            let taken = device.takeAllAvailable()
            XCTAssertEqual(taken.count, 1)
            XCTAssertEqual(taken.first?.count, size)
            device.complete(taken) { _ in 3 }
            XCTAssertEqual(queue.popUsed(), VirtqUsedElement(id: UInt32(id!), len: 3))
            XCTAssertEqual(queue.counters.deviceErrors, 0)
        }
    }

    /// Random chains, random out-of-order completion, many ring wraps, sizes that are and are
    /// not powers of 2: every buffer comes back once with its len and its bytes.
    func testRandomTrafficAcrossManyWraps() {
        var rng = SplitMix64(seed: 0x9ac4ed)
        for size: UInt16 in [2, 7, 8, 64] {
            let memory = PackedRingMemory(size: size)
            let queue = memory.makeQueue()
            let device = memory.makeDevice()
            let pool = BufferPool(count: 3 * Int(size), bufferSize: 32)
            var freeBuffers = Array(0..<pool.count)
            var inFlight: [UInt16: [Int]] = [:]  // id → pool buffers
            var taken: [PackedDeviceChain] = []
            var expected: [UInt16: UInt32] = [:]
            var completed = 0
            let rounds = 30_000
            for _ in 0..<rounds {
                switch rng.next(below: 4) {
                case 0, 1:
                    let count = 1 + rng.next(below: min(3, Int(size)))
                    guard freeBuffers.count >= count else { break }
                    let writableFrom = rng.next(below: count + 1)
                    let picks = Array(freeBuffers.prefix(count))
                    let chain = picks.enumerated().map { buffer(pool, $0.element, writable: $0.offset >= writableFrom) }
                    if let id = queue.addChain(chain) {
                        XCTAssertNil(inFlight[id], "id handed out twice")
                        inFlight[id] = picks
                        freeBuffers.removeFirst(count)
                    } else {
                        XCTAssertTrue(queue.freeSlots < count || queue.freeIDs == 0, "refused with room")
                    }
                    if rng.next(below: 2) == 0 { queue.publish() }
                case 2:
                    taken += device.takeAllAvailable()
                    guard !taken.isEmpty else { break }
                    // Complete a random subset in random order.
                    taken.shuffle(using: &rng)
                    let n = 1 + rng.next(below: taken.count)
                    for chain in taken.prefix(n) {
                        let len = UInt32(rng.next(below: chain.writableCapacity + 1))
                        device.write((0..<Int(len)).map { UInt8(truncatingIfNeeded: Int(chain.id) &+ $0) }, into: chain)
                        expected[chain.id] = len
                        device.addUsed(chain, len: len)
                    }
                    taken.removeFirst(n)
                    device.signal()
                default:
                    while let used = queue.popUsed() {
                        let id = used.head
                        guard let want = expected.removeValue(forKey: id), let picks = inFlight.removeValue(forKey: id) else {
                            return XCTFail("size \(size): unexpected id \(id)")
                        }
                        XCTAssertEqual(used.len, want)
                        XCTAssertEqual(queue.buffer(id)?.addr, pool.address(picks[0]))
                        completed += 1
                        XCTAssertTrue(queue.release(head: id))
                        XCTAssertFalse(queue.release(head: id), "released twice")
                        freeBuffers += picks
                    }
                }
            }
            XCTAssertEqual(queue.counters.deviceErrors, 0, "size \(size)")
            XCTAssertGreaterThan(device.availWrapFlips, 200, "size \(size): many wraps")
            XCTAssertGreaterThan(device.usedWrapFlips, 200, "size \(size)")
            // Drained, both sides agree on positions and wrap counters.
            queue.publish()
            device.complete(taken + device.takeAllAvailable())
            while let used = queue.popUsed() { queue.release(head: used.head) }
            XCTAssertEqual(device.nextAvail, queue.nextAvail)
            XCTAssertEqual(device.availWrap, queue.availWrap)
            XCTAssertEqual(device.nextUsed, queue.nextUsed)
            XCTAssertEqual(device.usedWrap, queue.usedWrap)
            XCTAssertEqual(queue.freeSlots, size)
            XCTAssertGreaterThan(completed, rounds / 10)
        }
    }

    /// The device uses buffers out of order (2.8.8 does not require order): used descriptors
    /// are written in ring order but name ids, and the device skips each chain's length.
    func testOutOfOrderCompletionWithChainsSkipsChainLengths() {
        let memory = PackedRingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let pool = BufferPool(count: 8, bufferSize: 16)
        let a = queue.addChain([buffer(pool, 0, writable: false), buffer(pool, 1)])!  // 2 positions
        let b = queue.addBuffer(addr: pool.address(2), len: 16, deviceWritable: true)!  // 1
        let c = queue.addChain([buffer(pool, 3), buffer(pool, 4), buffer(pool, 5)])!  // 3
        queue.publish()
        let chains = device.takeAllAvailable()
        XCTAssertEqual(chains.map(\.id), [a, b, c])
        XCTAssertEqual(chains.map(\.count), [2, 1, 3])
        // Complete c, then a, then b: used descriptors at positions 0, 3, 5.
        device.complete([chains[2], chains[0], chains[1]]) { UInt32($0.writableCapacity) }
        XCTAssertEqual(queue.state(of: a), .used)
        XCTAssertEqual(queue.popUsed(), VirtqUsedElement(id: UInt32(c), len: 48))
        XCTAssertEqual(queue.nextUsed, 3)
        XCTAssertEqual(queue.popUsed(), VirtqUsedElement(id: UInt32(a), len: 16))
        XCTAssertEqual(queue.popUsed(), VirtqUsedElement(id: UInt32(b), len: 16))
        XCTAssertNil(queue.popUsed())
        XCTAssertEqual(queue.nextUsed, 6)
        XCTAssertEqual(queue.stateCounts(), VirtqStateCounts(free: 5, held: 3))
        // Positions are free again though ids are held: 8 positions, 5 free ids.
        XCTAssertEqual(queue.freeSlots, 8)
        XCTAssertEqual(queue.freeCount, 5)
        for id in [a, b, c] { XCTAssertTrue(queue.release(head: id)) }
        // The next chain crosses the ring's end: positions 6, 7 (lap 0) and 0 (lap 1).
        let d = queue.addChain([buffer(pool, 0), buffer(pool, 1), buffer(pool, 2)])!
        XCTAssertFalse(queue.availWrap)
        XCTAssertEqual(device.raw(7).flags & 0x8080, 0x0080, "lap 0 bits before the end")
        XCTAssertEqual(device.raw(0).flags & 0x8080, 0x8000, "lap 1 bits after it")
        queue.publish()
        let wrapped = device.takeAllAvailable()
        XCTAssertEqual(wrapped.map(\.id), [d])
        XCTAssertEqual(wrapped.first?.count, 3)
        device.complete(wrapped) { _ in 7 }
        XCTAssertEqual(queue.popUsed(), VirtqUsedElement(id: UInt32(d), len: 7))
        XCTAssertEqual(queue.nextUsed, 1)
        XCTAssertFalse(queue.usedWrap)
        XCTAssertEqual(queue.counters.packets, 4)
        XCTAssertEqual(queue.counters.deviceErrors, 0)
    }

    /// The head's flags are written last, on publish (2.8.21.2): a paused queue hides its
    /// chains, and publish(count:) steps them in ring order.
    func testPublishWritesHeadFlagsLastAndStepsInOrder() {
        let memory = PackedRingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let pool = BufferPool(count: 8, bufferSize: 16)
        let a = queue.addChain([buffer(pool, 0), buffer(pool, 1)])!
        let b = queue.addBuffer(addr: pool.address(2), len: 16, deviceWritable: true)!
        let c = queue.addBuffer(addr: pool.address(3), len: 16, deviceWritable: true)!
        XCTAssertEqual(device.raw(0).flags & 0x8080, 0, "head not yet available")
        XCTAssertEqual(device.raw(1).flags & 0x8080, 0x80, "the rest of the chain is written")
        XCTAssertFalse(device.hasAvailable)
        XCTAssertEqual(queue.publish(count: 2), 2)
        XCTAssertEqual(device.takeAllAvailable().map(\.id), [a, b])
        XCTAssertEqual(queue.unpublishedCount, 1)
        // A device that returns the unpublished chain is refused.
        device.addUsed(id: c, len: 1)
        XCTAssertNil(queue.popUsed())
        XCTAssertEqual(queue.counters.usedNotOwned, 1)
        queue.publish()
        XCTAssertEqual(queue.publish(count: 5), 0)
        XCTAssertEqual(queue.state(of: c), .available)
    }

    /// What a lying device writes is counted and skipped, never trusted, never a trap.
    func testHostileUsedDescriptorsAreCountedAndSkipped() {
        let memory = PackedRingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let pool = BufferPool(count: 8, bufferSize: 16)
        var ids: [UInt16] = []
        for i in 0..<6 { ids.append(queue.addBuffer(addr: pool.address(i), len: 16, deviceWritable: true)!) }
        queue.publish()
        let chains = device.takeAllAvailable()
        device.addUsed(id: 999, len: 4)  // out of range
        device.addUsed(id: 7, len: 4)  // in range but free
        device.addUsed(chains[0], len: 1000)  // len beyond the buffer
        device.addUsed(chains[0], len: 4)  // duplicate
        device.addUsed(chains[1], len: 5)
        device.signal()
        XCTAssertEqual(queue.popUsed(), VirtqUsedElement(id: UInt32(ids[0]), len: 16), "len clamped")
        XCTAssertEqual(queue.popUsed(), VirtqUsedElement(id: UInt32(ids[1]), len: 5))
        XCTAssertNil(queue.popUsed())
        XCTAssertEqual(queue.counters.usedBadID, 1)
        XCTAssertEqual(queue.counters.usedNotOwned, 2)
        XCTAssertEqual(queue.counters.usedBadLength, 1)
        XCTAssertEqual(queue.counters.deviceErrors, 4)
        // A held id returned again is refused and stays held.
        device.addUsed(id: ids[0], len: 1)
        XCTAssertNil(queue.popUsed())
        XCTAssertEqual(queue.state(of: ids[0]), .held)
        XCTAssertEqual(queue.counters.usedNotOwned, 3)
        XCTAssertTrue(queue.release(head: ids[0]))
        XCTAssertEqual(queue.buffer(ids[0]), nil)
    }

    /// A used descriptor where the driver published nothing is never read: the driver only
    /// looks at positions the device owns.
    func testUsedFlagsBeyondPublishedPositionsAreIgnored() {
        let memory = PackedRingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        device.addUsed(id: 0, len: 1)  // position 0, nothing published
        XCTAssertFalse(queue.hasPendingUsed)
        XCTAssertNil(queue.popUsed())
        let id = queue.addBuffer(addr: 0x1000, len: 8, deviceWritable: true)!
        XCTAssertNil(queue.popUsed(), "added, not published: still not the device's")
        XCTAssertEqual(queue.counters.deviceErrors, 0)
        XCTAssertEqual(queue.state(of: id), .available)
        // Published, the head's flags (AVAIL 1, USED 0) replace the bogus used bits.
        queue.publish()
        XCTAssertEqual(device.takeAllAvailable().map(\.id), [id])
        XCTAssertNil(queue.popUsed())
        XCTAssertEqual(queue.counters.deviceErrors, 0)
    }

    /// Garbage written all over the ring: the driver neither traps nor frees more than it has.
    func testRandomGarbageNeverTrapsOrOverfrees() {
        var rng = SplitMix64(seed: 31337)
        let memory = PackedRingMemory(size: 16)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        for _ in 0..<20_000 {
            if rng.next(below: 2) == 0 {
                _ = queue.addChain((0..<(1 + rng.next(below: 3))).map { _ in VirtqBuffer(addr: 0x1000, len: 64, deviceWritable: true) })
                queue.publish()
            }
            let slot = UInt16(rng.next(below: 16))
            let p = memory.desc + 16 * Int(slot)
            p.storeBytes(of: UInt32(truncatingIfNeeded: rng.next()), toByteOffset: 8, as: UInt32.self)
            p.storeBytes(of: UInt16(rng.next(below: 20)), toByteOffset: 12, as: UInt16.self)
            p.storeBytes(of: UInt16(truncatingIfNeeded: rng.next()), toByteOffset: 14, as: UInt16.self)
            while let used = queue.popUsed() {
                XCTAssertLessThanOrEqual(used.len, 64 * 3)
                XCTAssertTrue(queue.release(head: used.head))
            }
            XCTAssertLessThanOrEqual(queue.freeIDs, 16)
            XCTAssertLessThanOrEqual(Int(queue.freeSlots) + Int(queue.slotsOwnedByDevice), 16 + 3)
        }
        _ = device
        XCTAssertGreaterThan(queue.counters.deviceErrors, 0)
    }
}

final class PackedNotificationTests: XCTestCase {
    func testKickFollowsDeviceEventFlags() {
        let memory = PackedRingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        XCTAssertFalse(queue.needsNotify(), "nothing published")
        _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true)
        XCTAssertFalse(queue.needsNotify(), "added, not published")
        queue.publish()
        XCTAssertTrue(queue.needsNotify(), "ENABLE")
        XCTAssertFalse(queue.needsNotify(), "already asked about that window")
        device.setDeviceEvent(flags: 1)
        _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true)
        queue.publish()
        XCTAssertFalse(queue.needsNotify(), "DISABLE")
        // DESC without VIRTIO_F_RING_EVENT_IDX is not a valid request: kick to be safe.
        device.setDeviceEvent(flags: 2, offset: 7, wrap: true)
        _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true)
        queue.publish()
        XCTAssertTrue(queue.needsNotify())
    }

    /// With VIRTIO_F_RING_EVENT_IDX the device names one position (offset + wrap counter);
    /// the driver must kick iff the window it published covers it — checked against absolute
    /// (never wrapping) descriptor numbers across many wraps, for windows that cross the end.
    func testEventIdxKickAcrossWrapsMatchesAbsoluteModel() {
        var rng = SplitMix64(seed: 4242)
        for size: UInt16 in [4, 6, 16] {
            let memory = PackedRingMemory(size: size)
            let queue = memory.makeQueue(eventIdx: true)
            let device = memory.makeDevice()
            var published = 0  // absolute descriptors published
            var kicks = 0, saved = 0
            for _ in 0..<5_000 {
                // The device asks about an absolute position near what it has consumed.
                let event = published + rng.next(below: Int(size)) - rng.next(below: 2)
                let lap = event >= 0 ? event / Int(size) : -1
                let offset = UInt16((event % Int(size) + Int(size)) % Int(size))
                device.setDeviceEvent(flags: 2, offset: offset, wrap: lap % 2 == 0)
                let n = 1 + rng.next(below: Int(size))
                var added = 0
                for _ in 0..<n { if queue.addBuffer(addr: 1, len: 1, deviceWritable: false) != nil { added += 1 } }
                queue.publish()
                let want = published <= event && event < published + added
                published += added
                let got = queue.needsNotify()
                XCTAssertEqual(got, want, "size \(size) event \(event) window [\(published - added), \(published))")
                if got { kicks += 1 } else { saved += 1 }
                // The device consumes and returns everything; the driver reclaims it.
                device.complete(device.takeAllAvailable())
                while let used = queue.popUsed() { queue.release(head: used.head) }
            }
            XCTAssertGreaterThan(kicks, 100)
            XCTAssertGreaterThan(saved, 100)
            XCTAssertGreaterThan(device.availWrapFlips, 100)
        }
    }

    func testInterruptRequestsWithoutEventIdx() {
        let memory = PackedRingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true)
        _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true)
        queue.publish()
        var chains = device.takeAllAvailable()
        XCTAssertTrue(device.complete([chains.removeFirst()]), "ENABLE: interrupt")
        queue.disableInterrupts()
        XCTAssertEqual(device.driverEventFlags, 1)
        XCTAssertFalse(device.complete([chains.removeFirst()]), "DISABLE: no interrupt")
        XCTAssertNotNil(queue.popUsed())
        XCTAssertTrue(queue.enableInterrupts(), "a used descriptor is still pending: poll again")
        XCTAssertEqual(device.driverEventFlags, 0)
        XCTAssertNotNil(queue.popUsed())
        XCTAssertFalse(queue.enableInterrupts())
        XCTAssertEqual(queue.counters.interruptsSuppressed, 1)
    }

    /// With event idx the driver asks for an interrupt at its next used position (DESC with
    /// offset and wrap counter); the device interrupts once per batch that covers it, across
    /// ring wraps; everything else in the batch counts as suppressed.
    func testEventIdxInterruptsAcrossWraps() {
        var rng = SplitMix64(seed: 77)
        for size: UInt16 in [4, 5, 32] {
            let memory = PackedRingMemory(size: size)
            let queue = memory.makeQueue(eventIdx: true)
            let device = memory.makeDevice()
            XCTAssertEqual(device.driverEventFlags, 2, "DESC from the start")
            XCTAssertEqual(device.driverEventOffWrap, 0x8000, "position 0, wrap counter 1")
            var elements = 0, interrupts = 0
            for round in 0..<3_000 {
                while queue.addBuffer(addr: 1, len: 1, deviceWritable: true) != nil {}
                queue.publish()
                var chains = device.takeAllAvailable()
                let disabled = round % 7 == 3
                if disabled { queue.disableInterrupts() }
                // Complete in one or two batches.
                let first = rng.next(below: chains.count + 1)
                let batches = [Array(chains.prefix(first)), Array(chains.dropFirst(first))].filter { !$0.isEmpty }
                chains = []
                var raised = 0
                for batch in batches { if device.complete(batch) { raised += 1 } }
                elements += batches.reduce(0) { $0 + $1.count }
                // Only the first batch covers the requested position; the driver has not moved it.
                XCTAssertEqual(raised, disabled ? 0 : 1, "size \(size) round \(round)")
                interrupts += raised
                if disabled { XCTAssertTrue(queue.enableInterrupts()) }
                while let used = queue.popUsed() { queue.release(head: used.head) }
                XCTAssertEqual(device.driverEventOffWrap, virtqPackedOffWrap(offset: queue.nextUsed, wrap: queue.usedWrap))
            }
            queue.observeUsed()
            XCTAssertEqual(Int(queue.counters.interruptsSuppressed), elements - interrupts, "size \(size)")
            XCTAssertGreaterThan(device.usedWrapFlips, 1_000)
        }
    }
}

extension PackedVirtqueueTests {
    /// The kernel's receive queue under a flood it cannot keep up with (DeviceTruthFloodTests,
    /// packed): the device fills the whole ring one frame at a time, deciding after each frame
    /// whether to interrupt (as QEMU 7.2's virtio_net_receive does), while the driver is busy;
    /// the driver then takes the full lap in one pass, reposts every buffer and publishes.
    /// Lap after lap, at the same offset, alternating wrap counters: the driver's request
    /// (desc_event_off_wrap, §2.8.10) must name its own next position with the right wrap
    /// counter, so the device interrupts exactly once per lap, at the lap's first frame, and
    /// the driver counts the other size − 1 as suppressed. A request left behind (not stored
    /// by popUsed, or with the wrong wrap counter) lets the device fill a lap in silence.
    func testAFullLapTakenInOnePassAsksForTheNextLapsFirstFrame() {
        let size: UInt16 = 256
        let memory = PackedRingMemory(size: size)
        let queue = memory.makeQueue(eventIdx: true)
        let device = memory.makeDevice()
        // Start where the flood's stalls were seen: 16 frames in, then lap after lap from offset 16.
        for _ in 0..<size { _ = queue.addBuffer(addr: 1, len: 1514, deviceWritable: true) }
        queue.publish()
        var pending = device.takeAllAvailable()
        for chain in pending.prefix(16) { _ = device.complete([chain], len: { _ in 60 }) }
        pending.removeFirst(16)
        while let used = queue.popUsed() { queue.release(head: used.head) }
        for _ in 0..<16 { _ = queue.addBuffer(addr: 1, len: 1514, deviceWritable: true) }
        queue.publish()
        pending += device.takeAllAvailable()
        for lap in 0..<40 {
            XCTAssertEqual(queue.nextUsed, 16, "lap \(lap)")
            XCTAssertEqual(device.driverEventOffWrap, virtqPackedOffWrap(offset: 16, wrap: queue.usedWrap),
                           "lap \(lap): the driver asks at its own next position")
            XCTAssertEqual(pending.count, Int(size))
            var raisedAt: [Int] = []
            for (n, chain) in pending.enumerated() where device.complete([chain], len: { _ in 60 }) { raisedAt.append(n) }
            XCTAssertEqual(raisedAt, [0], "lap \(lap): one interrupt, at the lap's first frame")
            XCTAssertEqual(queue.pendingUsedCount, size, "lap \(lap): the ring is full of used descriptors")
            let suppressedBefore = queue.counters.interruptsSuppressed
            var taken = 0
            while let used = queue.popUsed() {
                queue.release(head: used.head)
                taken += 1
            }
            XCTAssertEqual(taken, Int(size), "lap \(lap): the driver takes the lap in one pass")
            XCTAssertEqual(queue.counters.interruptsSuppressed - suppressedBefore, UInt64(size - 1), "lap \(lap)")
            while queue.addBuffer(addr: 1, len: 1514, deviceWritable: true) != nil {}
            queue.publish()
            pending = device.takeAllAvailable()
        }
        XCTAssertEqual(device.interruptsRaised, 1 + 40, "one for the first 16 frames, one per lap")
        XCTAssertGreaterThanOrEqual(device.usedWrapFlips, 40)
    }
}

/// One generic driver loop over either format: what the kernel's DeviceQueue would become.
private func roundTrip<Q: Virtqueue>(_ queue: Q, addresses: [UInt64], deviceStep: () -> Void) -> [UInt32] {
    for address in addresses { _ = queue.addBuffer(addr: address, len: 64, deviceWritable: true) }
    queue.publish()
    if queue.needsNotify() { queue.noteKick() }
    deviceStep()
    var lens: [UInt32] = []
    while let used = queue.popUsed() {
        lens.append(used.len)
        XCTAssertNotNil(queue.buffer(used.head))
        queue.release(head: used.head)
    }
    return lens
}

final class VirtqueueProtocolTests: XCTestCase {
    func testOneGenericLoopDrivesBothFormats() {
        let splitMemory = RingMemory(size: 8)
        let split = splitMemory.makeQueue()
        let splitDevice = splitMemory.makeDevice()
        XCTAssertEqual(roundTrip(split, addresses: [0x1000, 0x2000]) {
            splitDevice.complete(splitDevice.takeAllAvailable()) { _ in 9 }
        }, [9, 9])
        let packedMemory = PackedRingMemory(size: 8)
        let packed = packedMemory.makeQueue()
        let packedDevice = packedMemory.makeDevice()
        XCTAssertEqual(roundTrip(packed, addresses: [0x1000, 0x2000]) {
            packedDevice.complete(packedDevice.takeAllAvailable()) { _ in 9 }
        }, [9, 9])
        XCTAssertEqual(split.counters.kicks, 1)
        XCTAssertEqual(packed.counters.kicks, 1)
    }
}
