import XCTest
import RingsideTestSupport
import RingAtomics
@testable import Virtio

/// A device that lies: it rewrites the descriptor table and returns used elements that name
/// the wrong chains or claim impossible lengths. The driver must not trap, must hand back only
/// the buffers it posted (from its own record, never the table), and must count every lie.
final class HostileDeviceTests: XCTestCase {
    private struct Received: Equatable {
        var head: UInt16
        var addr: UInt64
        var bytes: [UInt8]
    }

    /// Receives as the kernel's DeviceQueue.drain does: pop, look the buffer up in the driver's
    /// record, read the used bytes from it (the test pool's `bytes(at:)` traps on address 0),
    /// release.
    private func drain(_ queue: SplitVirtqueue, _ pool: BufferPool) -> [Received] {
        var received: [Received] = []
        while let element = queue.popUsed() {
            guard let buffer = queue.buffer(element.head) else {
                XCTFail("descriptor \(element.head) popped but has no buffer")
                continue
            }
            received.append(Received(head: element.head, addr: buffer.addr,
                                     bytes: pool.bytes(at: buffer.addr, count: Int(element.len))))
            XCTAssertTrue(queue.release(head: element.head))
        }
        return received
    }

    func testRewrittenDescriptorsNeverReachTheDriver() {
        let memory = RingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let pool = BufferPool(count: 8, bufferSize: 64)
        var posted: [UInt16: UInt64] = [:]
        for i in 0..<8 { posted[queue.addBuffer(addr: pool.address(i), len: 64, deviceWritable: true)!] = pool.address(i) }
        queue.publish()
        let chains = device.takeAllAvailable()
        for (n, chain) in chains.enumerated() { device.write([UInt8](repeating: UInt8(n), count: 16), into: chain) }

        device.rewriteDescriptor(chains[0].head, addr: 0)                              // null
        device.rewriteDescriptor(chains[1].head, addr: chains[2].elements[0].addr)     // another buffer of the pool
        device.rewriteDescriptor(chains[2].head, addr: 0xdead_0000_0000)               // outside the pool
        device.rewriteDescriptor(chains[3].head, len: 0xFFFF_FFFF)                     // longer than the buffer
        device.rewriteDescriptor(chains[4].head, flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, next: chains[5].head)
        device.complete(chains) { _ in 16 }

        let received = drain(queue, pool)
        XCTAssertEqual(received.map(\.head), chains.map(\.head))
        for (n, r) in received.enumerated() {
            XCTAssertEqual(r.addr, posted[r.head], "descriptor \(r.head): the buffer the driver posted")
            XCTAssertEqual(queue.descriptor(r.head).addr == r.addr, n != 0 && n != 1 && n != 2)
            // A rewritten chain comes back with no bytes: the device may have written elsewhere.
            XCTAssertEqual(r.bytes, n < 5 ? [] : [UInt8](repeating: UInt8(n), count: 16), "chain \(n)")
        }
        var expected = VirtqueueCounters()
        expected.descriptorsRewritten = 5
        expected.packets = 8
        expected.bytes = 3 * 16
        XCTAssertEqual(queue.counters, expected)
        XCTAssertEqual(queue.freeCount, 8)

        // The driver writes the table afresh when it posts again: no stale lie is counted twice.
        for i in 0..<8 { XCTAssertNotNil(queue.addBuffer(addr: pool.address(i), len: 64, deviceWritable: true)) }
        queue.publish()
        let honest = device.takeAllAvailable()
        XCTAssertEqual(Set(honest.flatMap { $0.elements.map(\.addr) }), Set((0..<8).map(pool.address)))
        device.complete(honest) { _ in 16 }
        XCTAssertEqual(drain(queue, pool).count, 8)
        XCTAssertEqual(queue.counters.deviceErrors, 5)
    }

    func testRewrittenChainIsCountedPerDescriptorAndMovesNoBytes() {
        let memory = RingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let header = VirtqBuffer(addr: 0x1000, len: 12, deviceWritable: false)
        let frame = VirtqBuffer(addr: 0x2000, len: 1500, deviceWritable: false)
        let head = queue.addChain([header, frame])!
        let ids = queue.chain(head: head)
        queue.publish()
        let chain = try! device.takeAvailable()!
        device.rewriteDescriptor(ids[0], addr: 0)
        device.rewriteDescriptor(ids[1], addr: 0x3000, len: 9000)
        device.complete([chain])

        XCTAssertEqual(queue.popUsed(), VirtqUsedElement(id: UInt32(head), len: 0))
        XCTAssertEqual(queue.buffer(ids[0]), header)
        XCTAssertEqual(queue.buffer(ids[1]), frame)
        XCTAssertEqual(queue.counters.descriptorsRewritten, 2)
        XCTAssertEqual(queue.counters.packets, 1)
        XCTAssertEqual(queue.counters.bytes, 0, "what the device read came from somewhere else")
        XCTAssertTrue(queue.release(head: head))
        XCTAssertNil(queue.buffer(ids[0]), "a free descriptor has no buffer")
        XCTAssertNil(queue.buffer(99))
    }

    func testBadUsedElementsAreCountedByKind() {
        let memory = RingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let pool = BufferPool(count: 8, bufferSize: 64)
        let heads = (0..<4).map { queue.addBuffer(addr: pool.address($0), len: 64, deviceWritable: true)! }
        let chainHead = queue.addChain([VirtqBuffer(addr: pool.address(4), len: 12, deviceWritable: false),
                                        VirtqBuffer(addr: pool.address(5), len: 64, deviceWritable: true)])!
        let middle = queue.chain(head: chainHead)[1]
        queue.publish()
        _ = device.takeAllAvailable()
        let free = UInt32(queue.states().firstIndex(of: .free)!)

        device.addUsed(id: 8, len: 1)                   // bad id: one past the end
        device.addUsed(id: 0xFFFF_FFFF, len: 1)         // bad id: huge
        device.addUsed(id: UInt32(middle), len: 1)      // bad id: not a chain head
        device.addUsed(id: free, len: 1)                // not owned: free
        device.addUsed(id: UInt32(heads[0]), len: 16)   // valid
        device.addUsed(id: UInt32(heads[0]), len: 16)   // not owned: duplicate
        device.addUsed(id: UInt32(heads[1]), len: 65)   // bad length, clamped to 64
        device.addUsed(id: UInt32(heads[2]), len: 0xFFFF_FFFF)  // bad length, clamped to 64
        device.publishUsed()

        let first = queue.popUsed()!
        XCTAssertEqual(first, VirtqUsedElement(id: UInt32(heads[0]), len: 16))
        XCTAssertEqual(queue.buffer(first.head)?.addr, pool.address(0))
        // Held, not released: the device returning it again is still a duplicate.
        device.addUsed(id: UInt32(heads[0]), len: 16)
        device.publishUsed()
        XCTAssertEqual(queue.popUsed(), VirtqUsedElement(id: UInt32(heads[1]), len: 64))
        XCTAssertEqual(queue.peekUsed(), VirtqUsedElement(id: UInt32(heads[2]), len: 64), "peek clamps as pop does")
        XCTAssertEqual(queue.popUsed(), VirtqUsedElement(id: UInt32(heads[2]), len: 64))
        XCTAssertNil(queue.popUsed())
        XCTAssertEqual(queue.buffer(heads[2])?.addr, pool.address(2))

        var expected = VirtqueueCounters()
        expected.usedBadID = 3
        expected.usedNotOwned = 3
        expected.usedBadLength = 2
        expected.packets = 3
        expected.bytes = 16 + 64 + 64
        XCTAssertEqual(queue.counters, expected)
        XCTAssertEqual(queue.counters.deviceErrors, 8)
        // What the device never really returned is still the device's.
        XCTAssertEqual(queue.state(of: heads[3]), .available)
        XCTAssertEqual(queue.state(of: chainHead), .available)
    }

    /// A paused queue holds chains back (added, not published): the device cannot have them,
    /// so returning one is a lie, and the avail ring it may scribble on is not where the
    /// driver looks for them.
    func testUnpublishedChainsAreNotTheDevices() {
        let memory = RingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let sent = queue.addBuffer(addr: 0x1000, len: 60, deviceWritable: false)!
        let held = queue.addBuffer(addr: 0x2000, len: 60, deviceWritable: false)!
        XCTAssertEqual(queue.publish(count: 1), 1)
        let chain = try! device.takeAvailable()!
        XCTAssertEqual(chain.head, sent)
        // The device guesses the held-back head, and rewrites the unpublished avail slot (and
        // puts it back, so that publishing later hands it the right head).
        device.addUsed(id: UInt32(held), len: 0)
        device.complete([chain])
        ring_store16(memory.avail + 4 + 2 * 1, sent)
        XCTAssertEqual(queue.availRingEntry(queue.publishedAvailIdx), held, "the driver's record of the slot")
        ring_store16(memory.avail + 4 + 2 * 1, held)
        XCTAssertEqual(queue.states()[Int(held)], .available)
        XCTAssertEqual(queue.popUsed()?.head, sent)
        XCTAssertNil(queue.popUsed())
        XCTAssertEqual(queue.counters.usedNotOwned, 1)
        XCTAssertTrue(queue.release(head: sent))

        // Once published, the same chain is the device's to return.
        queue.publish()
        let later = try! device.takeAvailable()!
        XCTAssertEqual(later.head, held)
        device.complete([later])
        XCTAssertEqual(queue.popUsed()?.head, held)
        XCTAssertEqual(queue.counters.deviceErrors, 1)
        XCTAssertEqual(queue.counters.packets, 2)
        XCTAssertEqual(queue.counters.bytes, 120)
    }

    /// Random lies of every kind, many rounds: no trap, every buffer the driver gets back is the
    /// one it posted on that descriptor, no buffer is ever on two descriptors, and every lie is
    /// counted exactly once under its kind.
    func testRandomLiesAreSurvivedAndCountedExactly() {
        for seed: UInt64 in 1...8 { runLies(size: 16, rounds: 500, seed: seed) }
    }

    private func runLies(size: UInt16, rounds: Int, seed: UInt64) {
        let memory = RingMemory(size: size)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let pool = BufferPool(count: Int(size), bufferSize: 64)
        var rng = SplitMix64(seed: seed)
        var freeBuffers = Array(0..<Int(size))
        var bufferOf: [UInt16: Int] = [:]
        var expected = VirtqueueCounters()
        var held: [DeviceChain] = []
        for round in 0..<rounds {
            while let buffer = freeBuffers.popLast() {
                let head = queue.addBuffer(addr: pool.address(buffer), len: 64, deviceWritable: true)!
                XCTAssertNil(bufferOf[head], "seed \(seed) round \(round): descriptor \(head) reused while in use")
                bufferOf[head] = buffer
            }
            queue.publish()
            held += device.takeAllAvailable()
            // The device returns a random part of what it holds, lying as it goes; no more used
            // entries than the ring has slots before the driver reads them.
            var returned: Set<UInt16> = []
            var entries = 0
            for _ in 0..<rng.next(below: held.count + 1) where entries < Int(size) {
                let chain = held.remove(at: rng.next(below: held.count))
                var len = UInt32(rng.next(below: 65))
                var rewritten = false
                switch rng.next(below: 8) {
                case 0: device.rewriteDescriptor(chain.head, addr: 0); rewritten = true
                case 1:
                    let other = pool.address(rng.next(below: Int(size)))
                    device.rewriteDescriptor(chain.head, addr: other)
                    rewritten = other != chain.elements[0].addr
                case 2: device.rewriteDescriptor(chain.head, addr: 0xffff_0000_0000 | rng.next()); rewritten = true
                case 3: device.rewriteDescriptor(chain.head, len: 65 + UInt32(rng.next(below: 10_000))); rewritten = true
                case 4: len = 65 + UInt32(truncatingIfNeeded: rng.next()) % 0xFFFF_FF00; expected.usedBadLength += 1
                default: break
                }
                device.write([UInt8](repeating: UInt8(truncatingIfNeeded: chain.head), count: 64), into: chain)
                device.addUsed(chain, len: len)
                entries += 1
                returned.insert(chain.head)
                if rewritten { expected.descriptorsRewritten += 1 }
                expected.packets += 1
                expected.bytes += rewritten ? 0 : UInt64(min(len, 64))
                // Garbage next to it: a bad id or a duplicate of something just returned.
                guard entries < Int(size) else { continue }
                switch rng.next(below: 4) {
                case 0:
                    device.addUsed(id: UInt32(size) + UInt32(truncatingIfNeeded: rng.next() % 0xFFFF_0000), len: 1)
                    expected.usedBadID += 1
                    entries += 1
                case 1:
                    device.addUsed(id: UInt32(returned.randomElement(using: &rng)!), len: 1)
                    expected.usedNotOwned += 1
                    entries += 1
                default: break
                }
            }
            device.publishUsed()
            for r in drain(queue, pool) {
                guard let buffer = bufferOf.removeValue(forKey: r.head) else {
                    XCTFail("seed \(seed) round \(round): descriptor \(r.head) came back twice"); return
                }
                XCTAssertEqual(r.addr, pool.address(buffer), "seed \(seed) round \(round)")
                XCTAssertTrue(r.bytes.allSatisfy { $0 == UInt8(truncatingIfNeeded: r.head) })
                freeBuffers.append(buffer)
            }
            XCTAssertEqual(Int(queue.freeCount), freeBuffers.count)
        }
        XCTAssertEqual(queue.counters, expected, "seed \(seed)")
    }
}

