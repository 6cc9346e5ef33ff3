import XCTest
import RingsideTestSupport
@testable import Virtio

final class SplitVirtqueueLayoutTests: XCTestCase {
    func testAreaSizesFollowTheSpec() {
        XCTAssertEqual(SplitVirtqueue.descTableBytes(size: 256), 16 * 256)
        XCTAssertEqual(SplitVirtqueue.availRingBytes(size: 256), 6 + 2 * 256)
        XCTAssertEqual(SplitVirtqueue.usedRingBytes(size: 256), 6 + 8 * 256)
        XCTAssertEqual(SplitVirtqueue.descTableAlignment, 16)
        XCTAssertEqual(SplitVirtqueue.availRingAlignment, 2)
        XCTAssertEqual(SplitVirtqueue.usedRingAlignment, 4)
        // Where the fields are (2.7.5, 2.7.6, 2.7.8), counted by hand from the spec's structs.
        XCTAssertEqual(virtqDescOffset(5), 5 * 16)
        XCTAssertEqual(virtqAvailEntryOffset(slot: 3), 2 + 2 + 3 * 2)
        XCTAssertEqual(virtqUsedEventOffset(size: 256), 2 + 2 + 256 * 2)
        XCTAssertEqual(virtqUsedElementOffset(slot: 3), 2 + 2 + 3 * 8)
        XCTAssertEqual(virtqAvailEventOffset(size: 256), 2 + 2 + 256 * 8)
    }

    func testInitRejectsInvalidSizesAndAlignment() {
        let memory = RingMemory(size: 256)
        for bad: UInt16 in [0, 3, 100, 65535, 40000] {
            XCTAssertThrowsError(try SplitVirtqueue(size: bad, descTable: memory.desc, availRing: memory.avail, usedRing: memory.used)) {
                XCTAssertEqual($0 as? VirtqueueSetupError, .invalidSize(bad))
            }
        }
        XCTAssertThrowsError(try SplitVirtqueue(size: 8, descTable: memory.desc + 8, availRing: memory.avail, usedRing: memory.used)) {
            let error = $0 as! VirtqueueSetupError
            XCTAssertEqual(error, .misaligned(area: .descriptorTable, requiredAlignment: 16))
            XCTAssertTrue(error.message.contains("descriptor table"))
        }
        XCTAssertThrowsError(try SplitVirtqueue(size: 8, descTable: memory.desc, availRing: memory.avail + 1, usedRing: memory.used))
        XCTAssertThrowsError(try SplitVirtqueue(size: 8, descTable: memory.desc, availRing: memory.avail, usedRing: memory.used + 2))
        XCTAssertNoThrow(try SplitVirtqueue(size: 8, descTable: memory.desc, availRing: memory.avail + 2, usedRing: memory.used + 4))
    }

    func testInitZeroesRingsAndStartsAllFree() {
        let memory = RingMemory(size: 16)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        XCTAssertEqual(device.availFlags, 0)
        XCTAssertEqual(device.availIdx, 0)
        XCTAssertEqual(device.usedIdxInMemory, 0)
        XCTAssertEqual(device.usedFlags, 0)
        XCTAssertEqual(device.usedEvent, 0)
        XCTAssertEqual(device.availEvent, 0)
        XCTAssertEqual(queue.freeCount, 16)
        XCTAssertEqual(queue.pendingUsed, 0)
        XCTAssertEqual(queue.stateCounts(), VirtqStateCounts(free: 16))
        XCTAssertEqual(device.rawDescriptor(3).next, 4)  // free list mirrored in the table
    }
}

final class SplitVirtqueueAccountingTests: XCTestCase {
    func testFillWholeRingThenExhaustionThenReleaseRestores() {
        let memory = RingMemory(size: 16)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        var heads = Set<UInt16>()
        for i in 0..<16 {
            let head = queue.addBuffer(addr: 0x1000 + UInt64(i) * 0x100, len: 0x100, deviceWritable: true)
            XCTAssertNotNil(head)
            heads.insert(head!)
            XCTAssertEqual(queue.freeCount, UInt16(15 - i))
        }
        XCTAssertEqual(heads.count, 16, "every descriptor handed out once")
        XCTAssertNil(queue.addBuffer(addr: 0, len: 1, deviceWritable: true), "ring exhausted")
        XCTAssertNil(queue.addChain([VirtqBuffer(addr: 0, len: 1, deviceWritable: false)]))
        XCTAssertEqual(queue.unpublishedCount, 16)
        XCTAssertEqual(device.pendingAvail, 0, "nothing visible before publish")
        queue.publish()
        XCTAssertEqual(device.pendingAvail, 16)

        let chains = device.takeAllAvailable()
        XCTAssertEqual(Set(chains.map(\.head)), heads)
        device.complete(chains) { _ in 64 }
        XCTAssertEqual(queue.pendingUsed, 16)
        XCTAssertNil(queue.addBuffer(addr: 0, len: 1, deviceWritable: true), "used but not released is not free")

        var popped: [UInt16] = []
        while let element = queue.popUsed() { popped.append(element.head) }
        XCTAssertEqual(popped.count, 16)
        XCTAssertEqual(queue.freeCount, 0, "held chains are not free")
        XCTAssertNil(queue.addBuffer(addr: 0, len: 1, deviceWritable: true))
        for head in popped { XCTAssertTrue(queue.release(head: head)) }
        XCTAssertEqual(queue.freeCount, 16)
        XCTAssertFalse(queue.release(head: popped[0]), "double release is refused")
        XCTAssertEqual(queue.freeCount, 16)

        for _ in 0..<16 { XCTAssertNotNil(queue.addBuffer(addr: 0, len: 1, deviceWritable: true)) }
        XCTAssertNil(queue.addBuffer(addr: 0, len: 1, deviceWritable: true))
        XCTAssertEqual(queue.counters.packets, 16)
        XCTAssertEqual(queue.counters.bytes, 16 * 64)
        XCTAssertEqual(queue.counters.deviceErrors, 0)
    }

    func testChainsAreLinkedInOrderWithFlags() {
        let memory = RingMemory(size: 16)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let buffers = [
            VirtqBuffer(addr: 0xA000, len: 12, deviceWritable: false),
            VirtqBuffer(addr: 0xB000, len: 1500, deviceWritable: false),
            VirtqBuffer(addr: 0xC000, len: 4, deviceWritable: true),
        ]
        let head = queue.addChain(buffers)!
        XCTAssertEqual(queue.freeCount, 13)
        let ids = queue.chain(head: head)
        XCTAssertEqual(ids.count, 3)
        XCTAssertEqual(ids.first, head)
        for id in ids { XCTAssertEqual(queue.headOfChain(containing: id), head) }
        XCTAssertEqual(queue.descriptor(ids[0]), VirtqDescriptor(addr: 0xA000, len: 12, flags: VIRTQ_DESC_F_NEXT, next: ids[1]))
        XCTAssertEqual(queue.descriptor(ids[1]).flags, VIRTQ_DESC_F_NEXT)
        XCTAssertEqual(queue.descriptor(ids[2]).flags, VIRTQ_DESC_F_WRITE)
        XCTAssertFalse(queue.descriptor(ids[2]).hasNext)
        queue.publish()

        let chain = try! device.takeAvailable()!
        XCTAssertEqual(chain.head, head)
        XCTAssertEqual(chain.ids, ids)
        XCTAssertEqual(chain.elements.map(\.addr), [0xA000, 0xB000, 0xC000])
        XCTAssertEqual(chain.elements.map(\.writable), [false, false, true])
        XCTAssertEqual(chain.writableCapacity, 4)

        // Not enough descriptors, empty, or readable-after-writable: nil and nothing taken.
        XCTAssertNil(queue.addChain(Array(repeating: VirtqBuffer(addr: 0, len: 1, deviceWritable: false), count: 14)))
        XCTAssertNil(queue.addChain([VirtqBuffer]()))
        XCTAssertNil(queue.addChain([VirtqBuffer(addr: 0, len: 1, deviceWritable: true), VirtqBuffer(addr: 0, len: 1, deviceWritable: false)]))
        XCTAssertEqual(queue.freeCount, 13)
        XCTAssertEqual(queue.availIdx, 1)

        device.complete([chain]) { _ in 4 }
        let element = queue.popUsed()!
        XCTAssertEqual(element, VirtqUsedElement(id: UInt32(head), len: 4))
        XCTAssertTrue(queue.release(head: head))
        XCTAssertEqual(queue.freeCount, 16)
        XCTAssertNil(queue.headOfChain(containing: ids[1]))
        XCTAssertEqual(queue.chain(head: head), [])

        // A chain as long as the whole ring works and uses every descriptor exactly once.
        let full = queue.addChain((0..<16).map { VirtqBuffer(addr: UInt64($0), len: 1, deviceWritable: $0 >= 8) })!
        XCTAssertEqual(queue.freeCount, 0)
        XCTAssertEqual(Set(queue.chain(head: full)).count, 16)
        queue.publish()
        let big = try! device.takeAvailable()!
        XCTAssertEqual(big.ids.count, 16)
        XCTAssertEqual(big.elements.map(\.addr), (0..<16).map { UInt64($0) })
    }

    func testOutOfOrderCompletion() {
        let memory = RingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        var rng = SplitMix64(seed: 42)
        for round in 0..<200 {
            while queue.freeCount > 0 {
                if queue.freeCount >= 2 && rng.next(below: 3) == 0 {
                    _ = queue.addChain([VirtqBuffer(addr: 1, len: 10, deviceWritable: false), VirtqBuffer(addr: 2, len: 10, deviceWritable: true)])
                } else {
                    _ = queue.addBuffer(addr: 3, len: 10, deviceWritable: true)
                }
            }
            queue.publish()
            var chains = device.takeAllAvailable()
            // Shuffle: the device finishes in its own order.
            for i in stride(from: chains.count - 1, to: 0, by: -1) { chains.swapAt(i, rng.next(below: i + 1)) }
            let finishedNow = Array(chains.prefix(max(1, chains.count / 2)))
            device.complete(finishedNow) { _ in 7 }
            var popped: [UInt16] = []
            while let element = queue.popUsed() { popped.append(element.head) }
            XCTAssertEqual(popped, finishedNow.map(\.head), "round \(round): driver sees the device's order")
            for head in popped { XCTAssertTrue(queue.release(head: head)) }
            device.complete(Array(chains.dropFirst(finishedNow.count))) { _ in 7 }
            while let element = queue.popUsed() { XCTAssertTrue(queue.release(head: element.head)) }
            XCTAssertEqual(queue.freeCount, 8, "round \(round)")
            XCTAssertEqual(queue.stateCounts(), VirtqStateCounts(free: 8))
        }
        XCTAssertEqual(queue.counters.deviceErrors, 0)
    }

    func testStatesAtEachStep() {
        let memory = RingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let head = queue.addChain([VirtqBuffer(addr: 1, len: 8, deviceWritable: false), VirtqBuffer(addr: 2, len: 8, deviceWritable: true)])!
        let ids = queue.chain(head: head)
        let single = queue.addBuffer(addr: 3, len: 8, deviceWritable: true)!
        func assertStates(_ expected: VirtqDescriptorState, _ line: UInt = #line) {
            for id in ids { XCTAssertEqual(queue.state(of: id), expected, line: line) }
            XCTAssertEqual(queue.states()[Int(ids[1])], expected, line: line)
        }
        assertStates(.available)
        XCTAssertEqual(queue.stateCounts(), VirtqStateCounts(free: 5, available: 3))
        queue.publish()
        assertStates(.available)

        let chains = device.takeAllAvailable()
        XCTAssertEqual(chains.count, 2)
        device.complete([chains[0]]) { _ in 8 }
        assertStates(.used)
        XCTAssertEqual(queue.state(of: single), .available)
        XCTAssertEqual(queue.stateCounts(), VirtqStateCounts(free: 5, available: 1, used: 2))
        XCTAssertEqual(queue.peekUsed(), VirtqUsedElement(id: UInt32(head), len: 8))
        XCTAssertNil(queue.peekUsed(offset: 1))
        assertStates(.used)  // peeking does not consume

        XCTAssertEqual(queue.popUsed()?.head, head)
        assertStates(.held)
        XCTAssertEqual(queue.stateCounts(), VirtqStateCounts(free: 5, available: 1, held: 2))
        XCTAssertEqual(queue.freeCount, 5)

        XCTAssertTrue(queue.release(head: head))
        assertStates(.free)
        XCTAssertEqual(queue.stateCounts(), VirtqStateCounts(free: 7, available: 1))
        XCTAssertEqual(queue.state(of: 9999), .free)
    }

    func testBogusIdsFromTheDeviceAreCountedAndSkipped() {
        let memory = RingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let chainHead = queue.addChain([VirtqBuffer(addr: 1, len: 8, deviceWritable: false), VirtqBuffer(addr: 2, len: 8, deviceWritable: true)])!
        let middle = queue.chain(head: chainHead)[1]
        let a = queue.addBuffer(addr: 3, len: 100, deviceWritable: true)!
        let b = queue.addBuffer(addr: 4, len: 100, deviceWritable: true)!
        queue.publish()
        _ = device.takeAllAvailable()
        let freeID = UInt32(queue.states().firstIndex(of: .free)!)

        device.addUsed(id: 999, len: 1)             // out of range
        device.addUsed(id: 0xFFFF_FFFF, len: 1)     // out of range, huge
        device.addUsed(id: UInt32(a), len: 50)      // valid
        device.addUsed(id: freeID, len: 1)          // a free descriptor
        device.addUsed(id: UInt32(middle), len: 1)  // middle of a chain, not a head
        device.addUsed(id: UInt32(a), len: 50)      // duplicate: already returned
        device.addUsed(id: UInt32(b), len: 5000)    // len beyond the buffer
        device.publishUsed()

        XCTAssertEqual(queue.pendingUsed, 7)
        XCTAssertNil(queue.peekUsed(offset: 0))
        XCTAssertEqual(queue.peekUsed(offset: 2)?.head, a)
        XCTAssertEqual(queue.states()[Int(a)], .used)

        XCTAssertEqual(queue.popUsed(), VirtqUsedElement(id: UInt32(a), len: 50))
        XCTAssertEqual(queue.counters.deviceErrors, 2)
        XCTAssertEqual(queue.popUsed(), VirtqUsedElement(id: UInt32(b), len: 100), "len clamped to the buffer")
        XCTAssertEqual(queue.counters.deviceErrors, 6)
        XCTAssertNil(queue.popUsed())
        XCTAssertEqual(queue.pendingUsed, 0)
        XCTAssertEqual(queue.counters.packets, 2)
        XCTAssertEqual(queue.counters.bytes, 150)

        // The chain the device never really returned is still the device's.
        XCTAssertEqual(queue.state(of: chainHead), .available)
        XCTAssertEqual(queue.state(of: middle), .available)
        XCTAssertFalse(queue.release(head: middle))
        XCTAssertFalse(queue.release(head: chainHead), "cannot release what the device owns")
        XCTAssertFalse(queue.release(head: 999))
        XCTAssertTrue(queue.release(head: a))
        XCTAssertTrue(queue.release(head: b))
        XCTAssertEqual(queue.freeCount, 6)

        // A used.idx far ahead of anything plausible does not crash the monitor views either.
        device.addUsed(id: UInt32(chainHead), len: 8)
        device.publishUsed()
        XCTAssertEqual(queue.stateCounts(), VirtqStateCounts(free: 6, used: 2))
        XCTAssertEqual(queue.popUsed()?.head, chainHead)
    }

    func testIndexWrapAroundSize8() { runManyBuffers(size: 8, total: 70_000, seed: 1) }
    func testIndexWrapAroundSize256() { runManyBuffers(size: 256, total: 140_000, seed: 2) }

    /// Pushes `total` receive buffers through the queue in random batches; the device writes a
    /// sequence number into each, the driver checks it. Indices wrap past 65535 on the way:
    /// avail.idx and used.idx as ring memory holds them must wrap once per 65536 buffers.
    private func runManyBuffers(size: UInt16, total: Int, seed: UInt64) {
        let memory = RingMemory(size: size)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let pool = BufferPool(count: Int(size), bufferSize: 16)
        var nextFreeBuffer = Array(0..<Int(size))
        var rng = SplitMix64(seed: seed)
        var sent = 0, received = 0, sequence: UInt32 = 0
        var availWraps = 0, usedWraps = 0
        while received < total {
            while sent < total, let buffer = nextFreeBuffer.popLast() {
                guard queue.addBuffer(addr: pool.address(buffer), len: 16, deviceWritable: true) != nil else {
                    XCTFail("free descriptor expected"); return
                }
                sent += 1
            }
            // avail.idx as the device reads it from ring memory, not the driver's shadow.
            let availBefore = device.availIdx
            queue.publish()
            let availAfter = device.availIdx
            XCTAssertEqual(availAfter, UInt16(truncatingIfNeeded: sent), "avail.idx in ring memory counts every chain published, modulo 2^16")
            if availAfter < availBefore { availWraps += 1 }
            guard device.pendingAvail > 0 else { XCTFail("the device sees nothing published (avail.idx \(availAfter))"); return }
            // The device finishes a random part of what it has.
            let n = 1 + rng.next(below: Int(device.pendingAvail))
            var chains: [DeviceChain] = []
            for _ in 0..<n { chains.append(try! device.takeAvailable()!) }
            for chain in chains {
                device.write(withUnsafeBytes(of: sequence.littleEndian) { Array($0) }, into: chain)
                sequence &+= 1
            }
            let usedBefore = device.publishedUsedIdx
            device.complete(chains) { _ in 4 }
            if device.publishedUsedIdx < usedBefore { usedWraps += 1 }
            while let element = queue.popUsed() {
                let addr = queue.buffer(element.head)!.addr
                let bytes = pool.bytes(at: addr, count: 4)
                let value = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
                XCTAssertEqual(value, UInt32(received), "packet order and contents")
                received += 1
                nextFreeBuffer.append(pool.index(of: addr))
                XCTAssertTrue(queue.release(head: element.head))
            }
        }
        // No publication spans 65536 chains, so each wrap shows as one step down.
        XCTAssertEqual(availWraps, total / 65_536, "avail.idx wraps at 2^16")
        XCTAssertEqual(usedWraps, total / 65_536, "used.idx wraps at 2^16")
        XCTAssertEqual(queue.availIdx, UInt16(truncatingIfNeeded: total))
        XCTAssertEqual(queue.lastUsedIdx, UInt16(truncatingIfNeeded: total))
        XCTAssertEqual(queue.usedIdx, UInt16(truncatingIfNeeded: total))
        XCTAssertEqual(queue.freeCount, size)
        XCTAssertEqual(queue.counters.packets, UInt64(total))
        XCTAssertEqual(queue.counters.bytes, UInt64(total) * 4)
        XCTAssertEqual(queue.counters.deviceErrors, 0)
    }

    func testLargeQueueSizes() {
        for size: UInt16 in [256, 1024, 32768] {
            let memory = RingMemory(size: size)
            let queue = memory.makeQueue()
            let device = memory.makeDevice()
            // Three full rounds: with 32768 the indices wrap (3 × 32768 > 65536).
            for round in 0..<3 {
                for i in 0..<Int(size) {
                    XCTAssertNotNil(queue.addBuffer(addr: UInt64(i), len: 64, deviceWritable: true))
                }
                XCTAssertNil(queue.addBuffer(addr: 0, len: 1, deviceWritable: true))
                queue.publish()
                XCTAssertEqual(device.pendingAvail, size)
                let chains = device.takeAllAvailable()
                XCTAssertEqual(chains.count, Int(size))
                XCTAssertEqual(Set(chains.map(\.head)).count, Int(size))
                device.complete(chains.reversed()) { _ in 64 }
                XCTAssertEqual(queue.pendingUsed, size, "size \(size) round \(round)")
                if round == 0 { XCTAssertEqual(queue.stateCounts(), VirtqStateCounts(used: Int(size))) }
                var count = 0
                while let element = queue.popUsed() {
                    XCTAssertTrue(queue.release(head: element.head))
                    count += 1
                }
                XCTAssertEqual(count, Int(size))
                XCTAssertEqual(queue.freeCount, size)
            }
            XCTAssertEqual(queue.availIdx, UInt16(truncatingIfNeeded: 3 * Int(size)))
            XCTAssertEqual(queue.counters.deviceErrors, 0)
        }
    }

    func testTransmitPayloadReachesDevice() {
        let memory = RingMemory(size: 16)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let pool = BufferPool(count: 2, bufferSize: 64)
        let header = VirtioNetHeader()
        pool.write(header.bytes, at: pool.address(0))
        pool.write(Array("hello".utf8), at: pool.address(1))
        let head = queue.addChain([
            VirtqBuffer(addr: pool.address(0), len: UInt32(VirtioNetHeader.size), deviceWritable: false),
            VirtqBuffer(addr: pool.address(1), len: 5, deviceWritable: false),
        ])!
        queue.publish()
        let chain = try! device.takeAvailable()!
        XCTAssertEqual(chain.head, head)
        XCTAssertEqual(device.read(chain), header.bytes + Array("hello".utf8))
        device.complete([chain])
        XCTAssertEqual(queue.popUsed()?.len, 0)
        XCTAssertTrue(queue.release(head: head))
    }
}

final class SplitVirtqueueSteppedPublishTests: XCTestCase {
    /// A device reports len 0 for a chain it only read (TX); the byte counter still counts the
    /// bytes it read, so a monitor's TX bytes/s is not stuck at zero.
    func testReadOnlyChainsCountTheBytesTheDeviceRead() {
        let memory = RingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        _ = queue.addBuffer(addr: 0x1000, len: 74, deviceWritable: false)
        _ = queue.addChain([VirtqBuffer(addr: 0x2000, len: 12, deviceWritable: false),
                            VirtqBuffer(addr: 0x3000, len: 60, deviceWritable: false)])
        queue.publish()
        _ = device.complete(device.takeAllAvailable())   // len 0: nothing written
        while let used = queue.popUsed() { XCTAssertTrue(queue.release(head: used.head)) }
        XCTAssertEqual(queue.counters.packets, 2)
        XCTAssertEqual(queue.counters.bytes, 74 + 12 + 60)
    }

    /// A paused TX queue holds frames back; each step publishes exactly the oldest ones.
    func testPublishCountReleasesExactlyTheOldestChains() {
        let memory = RingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        var heads: [UInt16] = []
        for i in 0..<5 {
            heads.append(queue.addBuffer(addr: 0x1000 + UInt64(i) * 0x100, len: 64, deviceWritable: false)!)
        }
        XCTAssertEqual(queue.unpublishedCount, 5)
        XCTAssertEqual(device.availIdx, 0, "nothing visible before a step")
        XCTAssertEqual(queue.availRingEntry(queue.publishedAvailIdx), heads[0])
        XCTAssertEqual(queue.publish(count: 1), 1)
        XCTAssertEqual(device.availIdx, 1)
        XCTAssertEqual(device.takeAllAvailable().map(\.head), [heads[0]])
        XCTAssertEqual(queue.availRingEntry(queue.publishedAvailIdx), heads[1])
        XCTAssertEqual(queue.publish(count: 2), 2)
        XCTAssertEqual(device.takeAllAvailable().map(\.head), [heads[1], heads[2]])
        XCTAssertEqual(queue.publish(count: 10), 2, "never more than were held")
        XCTAssertEqual(queue.unpublishedCount, 0)
        XCTAssertEqual(queue.publish(count: 1), 0)
        XCTAssertEqual(device.takeAllAvailable().map(\.head), [heads[3], heads[4]])
    }
}
