import XCTest
import RingsideTestSupport
@testable import Virtio

/// The rules of fault injection (`inject Q …`) and the interruptsSuppressed counter.
final class VirtqueueFaultsTests: XCTestCase {
    func testCountsRunDownOnePerFrameAndAreCounted() {
        var f = VirtqueueFaults()
        XCTAssertFalse(f.isActive)
        XCTAssertNil(f.apply(.drop(3), receive: true))
        XCTAssertTrue(f.isActive)
        XCTAssertEqual((0..<5).map { _ in f.takeDrop() }, [true, true, true, false, false])
        XCTAssertEqual(f.dropped, 3)
        XCTAssertNil(f.apply(.corrupt(2), receive: false))
        XCTAssertEqual((0..<3).map { _ in f.takeCorruption() }, [true, true, false])
        XCTAssertEqual(f.corrupted, 2)
        XCTAssertNil(f.apply(.nokick(1), receive: false))
        XCTAssertEqual([f.withholdKick(), f.withholdKick()], [true, false])
        XCTAssertEqual(f.kicksWithheld, 1)
        XCTAssertFalse(f.isActive, "every count spent")
        // A new count replaces the active one.
        XCTAssertNil(f.apply(.drop(5), receive: true))
        XCTAssertNil(f.apply(.drop(1), receive: true))
        XCTAssertEqual(f.drop, 1)
    }

    func testNoirqIgnoresAndCountsInterruptsUntilClear() {
        var f = VirtqueueFaults()
        XCTAssertFalse(f.noteInterrupt(), "not ignored without noirq")
        XCTAssertNil(f.apply(.noirq, receive: true))
        XCTAssertTrue(f.noteInterrupt())
        XCTAssertTrue(f.noteInterrupt())
        XCTAssertEqual(f.interruptsIgnored, 2)
        XCTAssertNil(f.apply(.starve, receive: true))
        XCTAssertNil(f.apply(.drop(9), receive: true))
        XCTAssertNil(f.apply(.clear, receive: true))
        XCTAssertFalse(f.noirq || f.starving || f.isActive, "clear ends every fault, noirq included")
        XCTAssertFalse(f.noteInterrupt())
        XCTAssertEqual(f.interruptsIgnored, 2, "counters survive clear")
        XCTAssertEqual(f.dropped, 0)
    }

    func testRefusalsChangeNothing() {
        var f = VirtqueueFaults()
        XCTAssertNil(f.apply(.nokick(4), receive: false))
        let before = f
        XCTAssertEqual(f.apply(.starve, receive: false), .unsupported("starve applies to receive queues (buffers the device fills)"))
        XCTAssertEqual(f.apply(.unstarve, receive: false)?.message.contains("receive queues"), true)
        for zero: VirtqueueFault in [.drop(0), .corrupt(0), .nokick(0)] {
            guard case .invalid(let m)? = f.apply(zero, receive: true) else { return XCTFail("\(zero) accepted") }
            XCTAssertTrue(m.contains("1…65535"), m)
        }
        XCTAssertEqual(f, before)
        XCTAssertNil(f.apply(.drop(65535), receive: true), "the largest count is fine")
        XCTAssertNil(f.apply(.starve, receive: true))
        XCTAssertNil(f.apply(.unstarve, receive: true))
        XCTAssertFalse(f.starving)
    }

    /// The byte corrupt flips is one a checksum covers: the IP datagram's last byte, never the
    /// Ethernet padding after it.
    func testCorruptionHitsTheIPDatagramNotThePadding() {
        // 14 Ethernet + 20 IPv4 + 8 UDP + 2 payload = 44 bytes, padded to 60.
        var frame = [UInt8](repeating: 0, count: 60)
        frame[12] = 0x08; frame[13] = 0x00; frame[14] = 0x45
        frame[16] = 0; frame[17] = 30
        frame[42] = 0x41; frame[43] = 0x42
        frame.withUnsafeBytes { XCTAssertEqual(VirtqueueFaults.corruptionOffset(frame: $0), 43) }
        let offset = frame.withUnsafeMutableBytes { VirtqueueFaults.corrupt(frame: $0) }
        XCTAssertEqual(offset, 43)
        XCTAssertEqual(frame[43], 0x42 ^ 0xFF)
        XCTAssertEqual(frame[44...].allSatisfy { $0 == 0 }, true, "padding untouched")
        // A total length beyond the frame: its last byte. Not IPv4 (ARP): the last byte.
        frame[16] = 0x05; frame[17] = 0xdc
        frame.withUnsafeBytes { XCTAssertEqual(VirtqueueFaults.corruptionOffset(frame: $0), 59) }
        var arp = [UInt8](repeating: 1, count: 42)
        arp[12] = 0x08; arp[13] = 0x06
        arp.withUnsafeBytes { XCTAssertEqual(VirtqueueFaults.corruptionOffset(frame: $0), 41) }
        // Short or empty frames never trap.
        [UInt8]().withUnsafeBytes { XCTAssertNil(VirtqueueFaults.corruptionOffset(frame: $0)) }
        var one: [UInt8] = [7]
        XCTAssertEqual(one.withUnsafeMutableBytes { VirtqueueFaults.corrupt(frame: $0) }, 0)
        XCTAssertEqual(one, [0xF8])
        let shortIP: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00, 0x45]
        shortIP.withUnsafeBytes { XCTAssertEqual(VirtqueueFaults.corruptionOffset(frame: $0), 14) }
    }

    // MARK: interruptsSuppressed

    /// With EVENT_IDX the device interrupts once per batch that crosses used_event; every other
    /// element is one the driver did not ask an interrupt for. A driver that consumes each batch
    /// before the next: suppressed = elements − interrupts, exactly.
    func testInterruptsSuppressedWithEventIdxIsElementsMinusInterrupts() {
        var rng = SplitMix64(seed: 21)
        for size: UInt16 in [8, 256] {
            let memory = RingMemory(size: size)
            let queue = memory.makeQueue(eventIdx: true)
            let device = memory.makeDevice(eventIdx: true)
            var elements = 0
            for _ in 0..<2_000 {
                while queue.addBuffer(addr: 0x1000, len: 64, deviceWritable: true) != nil {}
                queue.publish()
                let chains = device.takeAllAvailable()
                let batch = Array(chains.prefix(1 + rng.next(below: min(Int(size), 5))))
                device.complete(batch) { _ in 60 }
                elements += batch.count
                // Some rounds the monitor reads the counters before the driver pops.
                if rng.next(below: 2) == 0 { queue.observeUsed() }
                while let used = queue.popUsed() { queue.release(head: used.head) }
                // The device gets back what it did not complete.
                device.complete(Array(chains.dropFirst(batch.count))) { _ in 0 }
                elements += chains.count - batch.count
                while let used = queue.popUsed() { queue.release(head: used.head) }
            }
            queue.observeUsed()
            XCTAssertEqual(queue.counters.interruptsSuppressed, UInt64(elements - device.interruptsRaised), "size \(size)")
            XCTAssertGreaterThan(queue.counters.interruptsSuppressed, 0)
        }
    }

    /// Without EVENT_IDX only VIRTQ_AVAIL_F_NO_INTERRUPT suppresses: 0 while the driver never sets
    /// it (ours), every element published while it is set.
    func testInterruptsSuppressedWithFlagsCountsElementsPublishedUnderNoInterrupt() {
        let memory = RingMemory(size: 16)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        for _ in 0..<16 { _ = queue.addBuffer(addr: 0x1000, len: 64, deviceWritable: true) }
        queue.publish()
        let chains = device.takeAllAvailable()
        XCTAssertTrue(device.complete(Array(chains[0..<3])))
        queue.observeUsed()
        XCTAssertEqual(queue.counters.interruptsSuppressed, 0, "interrupts were asked for")
        queue.disableInterrupts()
        XCTAssertFalse(device.complete(Array(chains[3..<8])))
        XCTAssertFalse(queue.enableInterrupts() == false, "work pending")
        XCTAssertEqual(queue.counters.interruptsSuppressed, 5, "5 elements published under NO_INTERRUPT")
        XCTAssertTrue(device.complete(Array(chains[8..<10])))
        while queue.popUsed() != nil {}
        XCTAssertEqual(queue.counters.interruptsSuppressed, 5)
    }
}
