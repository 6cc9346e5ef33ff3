import XCTest
import RingsideTestSupport
@testable import Virtio

/// vring_need_event written out independently of the module (Linux virtio_ring.h).
private func referenceNeedEvent(_ event: UInt16, _ new: UInt16, _ old: UInt16) -> Bool {
    UInt16(truncatingIfNeeded: Int(new) - Int(event) - 1) < UInt16(truncatingIfNeeded: Int(new) - Int(old))
}

final class NotificationTests: XCTestCase {
    func testNeedEventFormulaMatchesReference() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<200_000 {
            let old = UInt16(truncatingIfNeeded: rng.next())
            let new = old &+ UInt16(rng.next(below: 512))
            let event = rng.next(below: 2) == 0 ? UInt16(truncatingIfNeeded: rng.next()) : old &+ UInt16(rng.next(below: 600)) &- 40
            XCTAssertEqual(virtqNeedEvent(eventIdx: event, newIdx: new, oldIdx: old), referenceNeedEvent(event, new, old))
        }
        // Spot checks: notify iff old <= event < new (mod 2^16).
        XCTAssertTrue(virtqNeedEvent(eventIdx: 10, newIdx: 11, oldIdx: 10))
        XCTAssertTrue(virtqNeedEvent(eventIdx: 14, newIdx: 15, oldIdx: 10))
        XCTAssertFalse(virtqNeedEvent(eventIdx: 15, newIdx: 15, oldIdx: 10))
        XCTAssertFalse(virtqNeedEvent(eventIdx: 9, newIdx: 15, oldIdx: 10))
        XCTAssertTrue(virtqNeedEvent(eventIdx: 0xFFFF, newIdx: 2, oldIdx: 0xFFFE), "window across the wrap")
        XCTAssertFalse(virtqNeedEvent(eventIdx: 5, newIdx: 5, oldIdx: 5), "nothing new")
    }

    func testNoNotifyFlagWithoutEventIdx() {
        let memory = RingMemory(size: 16)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        XCTAssertFalse(queue.needsNotify(), "nothing published yet")
        _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true)
        XCTAssertFalse(queue.needsNotify(), "added but not published")
        queue.publish()
        XCTAssertTrue(queue.needsNotify())
        queue.noteKick()
        XCTAssertFalse(queue.needsNotify(), "already notified about it")

        device.setNoNotify(true)
        _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true)
        queue.publish()
        XCTAssertFalse(queue.needsNotify(), "device asked for no notifications (VIRTQ_USED_F_NO_NOTIFY)")
        device.setNoNotify(false)
        _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true)
        _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true)
        queue.publish()
        XCTAssertTrue(queue.needsNotify())
        queue.noteKick()
        XCTAssertEqual(queue.counters.kicks, 2)
    }

    func testEventIdxNotifyFollowsAvailEvent() {
        var rng = SplitMix64(seed: 99)
        for size: UInt16 in [8, 256] {
            let memory = RingMemory(size: size)
            let queue = memory.makeQueue(eventIdx: true)
            let device = memory.makeDevice(eventIdx: true)
            device.setNoNotify(true)  // must be ignored with event idx
            var kicks = 0
            let rounds = size == 8 ? 20_000 : 2_000
            for _ in 0..<rounds {
                // The device picks where it wants to be woken, relative to what it has seen.
                let event = device.lastAvailIdx &+ UInt16(rng.next(below: Int(size) + 4)) &- 2
                device.setAvailEvent(event)
                let old = queue.publishedAvailIdx
                let batch = rng.next(below: Int(queue.freeCount) + 1)
                for _ in 0..<batch { _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true) }
                queue.publish()
                let expected = referenceNeedEvent(event, queue.publishedAvailIdx, old)
                XCTAssertEqual(queue.needsNotify(), expected)
                if expected { kicks += 1 }
                // The device consumes and completes everything; the driver recycles it.
                device.complete(device.takeAllAvailable())
                while let element = queue.popUsed() { queue.release(head: element.head) }
            }
            XCTAssertGreaterThan(kicks, 100)
            XCTAssertLessThan(kicks, rounds)
        }
    }

    func testEventIdxWindowIsSinceLastCheck() {
        let memory = RingMemory(size: 16)
        let queue = memory.makeQueue(eventIdx: true)
        let device = memory.makeDevice(eventIdx: true)
        device.setAvailEvent(2)  // wake me when avail.idx passes 2, i.e. reaches 3
        for _ in 0..<2 { _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true) }
        queue.publish()
        XCTAssertFalse(queue.needsNotify(), "avail.idx 2 has not passed 2")
        _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true)
        queue.publish()
        XCTAssertTrue(queue.needsNotify(), "avail.idx 3 passed 2")
        _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true)
        queue.publish()
        XCTAssertFalse(queue.needsNotify(), "already told about 2; no new request")
    }

    func testInterruptSuppressionWithFlags() {
        let memory = RingMemory(size: 8)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        for _ in 0..<8 { _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true) }
        queue.publish()
        var chains = device.takeAllAvailable()

        XCTAssertTrue(device.complete([chains.removeFirst()]), "interrupts on by default")
        queue.disableInterrupts()
        XCTAssertFalse(queue.interruptsEnabled)
        XCTAssertEqual(device.availFlags, VIRTQ_AVAIL_F_NO_INTERRUPT)
        XCTAssertFalse(device.complete([chains.removeFirst()]), "device honours NO_INTERRUPT")
        XCTAssertTrue(queue.enableInterrupts(), "work arrived while interrupts were off")
        XCTAssertEqual(device.availFlags, 0)
        while let element = queue.popUsed() { queue.release(head: element.head) }
        XCTAssertFalse(queue.enableInterrupts(), "nothing pending")
        XCTAssertTrue(device.complete([chains.removeFirst()]))
        XCTAssertEqual(device.interruptsRaised, 2)
    }

    func testInterruptSuppressionWithEventIdx() {
        let memory = RingMemory(size: 8)
        let queue = memory.makeQueue(eventIdx: true)
        let device = memory.makeDevice(eventIdx: true)
        for _ in 0..<8 { _ = queue.addBuffer(addr: 1, len: 1, deviceWritable: true) }
        queue.publish()
        var chains = device.takeAllAvailable()

        XCTAssertTrue(device.complete([chains.removeFirst()]), "used_event 0: interrupt for entry 0")
        XCTAssertFalse(device.complete([chains.removeFirst()]), "used_event not moved: no second interrupt")
        XCTAssertNotNil(queue.popUsed())
        XCTAssertNotNil(queue.popUsed())
        XCTAssertEqual(device.usedEvent, 2, "popUsed moves used_event along while interrupts are on")
        XCTAssertTrue(device.complete([chains.removeFirst()]))

        queue.disableInterrupts()
        XCTAssertEqual(device.availFlags, 0, "flags must stay 0 with event idx (2.7.7.1)")
        XCTAssertFalse(device.complete([chains.removeFirst()]))
        XCTAssertFalse(device.complete([chains.removeFirst(), chains.removeFirst()]))
        while queue.popUsed() != nil {}
        XCTAssertFalse(device.complete([chains.removeFirst()]), "popping with interrupts off keeps them off")
        XCTAssertTrue(queue.enableInterrupts(), "one entry arrived meanwhile")
        XCTAssertNotNil(queue.popUsed())
        XCTAssertFalse(queue.enableInterrupts())
        XCTAssertTrue(device.complete([chains.removeFirst()]))
        XCTAssertEqual(device.interruptsRaised, 3)
    }

    /// The Toro #178 shape: a receive loop driven only by interrupts, toggling suppression on
    /// every batch. With the re-check after enabling, it must never stall, in either mode.
    func testInterruptDrivenReceiveNeverStalls() {
        for eventIdx in [false, true] {
            let memory = RingMemory(size: 256)
            let queue = memory.makeQueue(eventIdx: eventIdx)
            let device = memory.makeDevice(eventIdx: eventIdx)
            var rng = SplitMix64(seed: eventIdx ? 5 : 6)
            while queue.addBuffer(addr: 1, len: 1514, deviceWritable: true) != nil {}
            queue.publish()
            var pendingInterrupt = false
            var received = 0
            for step in 0..<50_000 {
                // The device delivers a burst whenever it has buffers.
                let burst = min(rng.next(below: 6), Int(device.pendingAvail))
                var chains: [DeviceChain] = []
                for _ in 0..<burst { chains.append(try! device.takeAvailable()!) }
                if device.complete(chains, len: { _ in 60 }) { pendingInterrupt = true }
                // The driver runs only on an interrupt.
                guard pendingInterrupt else {
                    XCTAssertEqual(queue.pendingUsed, 0, "step \(step): work pending but no interrupt coming: stall")
                    if queue.pendingUsed != 0 { break }
                    continue
                }
                pendingInterrupt = false
                queue.noteInterrupt()
                queue.disableInterrupts()
                repeat {
                    while let element = queue.popUsed() {
                        received += 1
                        queue.release(head: element.head)
                        _ = queue.addBuffer(addr: 1, len: 1514, deviceWritable: true)
                    }
                    queue.publish()
                    // Sometimes the device sneaks more in right before the driver re-enables.
                    if rng.next(below: 4) == 0, device.pendingAvail > 0 {
                        device.complete([try! device.takeAvailable()!], len: { _ in 60 })
                    }
                } while queue.enableInterrupts()
            }
            XCTAssertGreaterThan(received, 100_000)
            XCTAssertEqual(queue.counters.deviceErrors, 0)
            XCTAssertGreaterThan(queue.counters.interrupts, 1000)
        }
    }
}
