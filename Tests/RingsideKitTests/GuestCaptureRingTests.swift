import Foundation
@testable import RingsideKit
import RingsideTestSupport
import Virtio
import XCTest

/// GuestCapture on rings the test writes itself (SyntheticRing): what it copies, what it counts as
/// missed and why, and hostile rings that must not trap.
final class GuestCaptureRingTests: XCTestCase {
    let device = GuestDeviceInfo(path: "/machine/peripheral/net0/virtio-backend", type: "virtio-net", name: "net0",
                                 hostFeatures: GuestFeatureList(),
                                 guestFeatures: GuestFeatureList(names: ["VIRTIO_F_VERSION_1", "VIRTIO_NET_F_MRG_RXBUF"]),
                                 statuses: [], queueNames: ["rx", "tx"])

    func sample(_ r: SyntheticRing, queue: String = "net0.rx") -> GuestSample {
        let ring = device.ringReader.read(r.memory, r.a)
        return GuestSample(time: 0, number: 0, source: .memory, devices: [device],
                           queues: [GuestQueueSample(name: queue, device: "net0", queue: queue.hasSuffix("rx") ? 0 : 1,
                                                     deviceView: nil, element: nil, ring: ring)],
                           qmpAge: 0, notes: [])
    }

    /// A received frame in buffer `id`: a 12-byte header (num_buffers 1), then `frame`; with
    /// `refill`, the driver then gives the buffer back to the device at avail index `usedIdx + size`
    /// (as Linux refills its RX ring).
    func receive(_ r: inout SyntheticRing, id: Int, usedIdx: UInt16, frame: [UInt8], refill: Bool = true) {
        let at = 0x80000 + UInt64(id) * 0x800
        r.bytes.replaceSubrange(Int(at)..<(Int(at) + 12 + frame.count), with: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0] + frame)
        r.usedSlot(Int(usedIdx) & (r.a.size - 1), id: UInt32(id), len: UInt32(12 + frame.count))
        r.usedIdx(usedIdx &+ 1)
        if refill {
            r.availSlot(Int(usedIdx) & (r.a.size - 1), UInt16(id))
            r.availIdx(usedIdx &+ 1 &+ UInt16(r.a.size))
        }
    }

    func rxRing() -> SyntheticRing {
        var r = SyntheticRing(size: 8)
        for i in 0..<8 { r.desc(i, addr: 0x80000 + UInt64(i) * 0x800, len: 1526, flags: VIRTQ_DESC_F_WRITE) }
        for slot in 0..<8 { r.availSlot(slot, UInt16(slot)) }
        r.availIdx(8)
        return r
    }

    func testReceivedFramesAreCopiedAndLapsCounted() {
        var r = rxRing()
        let capture = GuestCapture(queues: ["net0.rx"])
        XCTAssertEqual(capture.observe(sample(r), memory: r.memory).count, 0, "the first sample sets the start")
        receive(&r, id: 0, usedIdx: 0, frame: Array(repeating: 0xAA, count: 60))
        receive(&r, id: 1, usedIdx: 1, frame: Array(repeating: 0xBB, count: 70))
        // The driver gave the same buffers back: the copies wait one sample for the device not to
        // have used them again.
        XCTAssertEqual(capture.observe(sample(r), memory: r.memory).count, 0)
        let frames = capture.observe(sample(r), memory: r.memory)
        XCTAssertEqual(frames.map(\.frame), [Array(repeating: 0xAA, count: 60), Array(repeating: 0xBB, count: 70)])
        XCTAssertEqual(frames.map(\.number), [0, 1])
        XCTAssertEqual(frames.map(\.head), [0, 1])
        XCTAssertEqual(frames.first?.header.count, 12)
        // 11 used elements between two samples of an 8-entry ring: the oldest 3 were overwritten.
        for k in 2..<13 { receive(&r, id: k % 8, usedIdx: UInt16(k), frame: [UInt8(k)]) }
        _ = capture.observe(sample(r), memory: r.memory, final: true)
        XCTAssertEqual(capture.counts("net0.rx").lapped, 3)
        XCTAssertEqual(capture.counts("net0.rx").frames, 13)
        XCTAssertEqual(capture.counts("net0.rx").captured + capture.counts("net0.rx").missed, 13)
    }

    func testReusedBufferIsMissedNotMisread() {
        var r = rxRing()
        r.availIdx(0)   // nothing held by the device at the first sample: no chain kept from it
        let capture = GuestCapture(queues: ["net0.rx"])
        _ = capture.observe(sample(r), memory: r.memory)
        // Descriptor 3 given, used, given again and used again between two samples: the first
        // frame's buffer was given out again before the sampler could read it.
        r.availSlot(0, 3); r.availSlot(1, 3); r.availIdx(2)
        receive(&r, id: 3, usedIdx: 0, frame: [1, 2, 3], refill: false)
        receive(&r, id: 3, usedIdx: 1, frame: [4, 5, 6], refill: false)
        let frames = capture.observe(sample(r), memory: r.memory)
        XCTAssertEqual(frames.map(\.frame), [[4, 5, 6]])
        XCTAssertEqual(frames.map(\.number), [1])
        XCTAssertEqual(capture.counts("net0.rx").reused, 1)
    }

    /// Seqlock-style check after copying: between the sample and the copy, the driver gave an RX
    /// buffer's memory out again under another head, the device wrote a newer frame there, and
    /// the driver posted that head again with other memory, so the table no longer names where
    /// the device wrote. The copy holds the newer bytes: it is missed, never written as the
    /// sampled element.
    func testMemoryRewrittenWhileCopyingIsMissedNotMisread() {
        var r = SyntheticRing(size: 8)
        func at(_ k: Int) -> UInt64 { 0x80000 + UInt64(k) * 0x800 }
        for i in 0..<4 { r.desc(i, addr: at(i), len: 1526, flags: VIRTQ_DESC_F_WRITE); r.availSlot(i, UInt16(i)) }
        r.availIdx(4)
        let capture = GuestCapture(queues: ["net0.rx"])
        _ = capture.observe(sample(r), memory: r.memory)
        receive(&r, id: 0, usedIdx: 0, frame: Array(repeating: 0xAA, count: 60), refill: false)
        let sampled = sample(r)
        // While the sampler copies: head 4 posted with buffer 0's memory, buffers 1–3 and then
        // head 4 used (a 0xBB frame where buffer 0 was), head 4 posted again with new memory.
        r.desc(4, addr: at(0), len: 1526, flags: VIRTQ_DESC_F_WRITE); r.availSlot(4, 4); r.availIdx(5)
        for k in 1..<4 { receive(&r, id: k, usedIdx: UInt16(k), frame: [UInt8(k)], refill: false) }
        r.bytes.replaceSubrange(Int(at(0))..<(Int(at(0)) + 72), with: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0] + Array(repeating: 0xBB, count: 60))
        r.usedSlot(4, id: 4, len: 72); r.usedIdx(5)
        r.desc(4, addr: at(5), len: 1526, flags: VIRTQ_DESC_F_WRITE); r.availSlot(5, 4); r.availIdx(6)
        let frames = capture.observe(sampled, memory: r.memory)
        XCTAssertFalse(frames.contains { $0.frame == Array(repeating: 0xBB, count: 60) }, "the newer frame written as element \(frames.map(\.number))")
        XCTAssertEqual(frames.count + Int(capture.counts("net0.rx").missed), 1)
    }

    /// The same on TX: the packet's memory was freed, the next packet written there and posted
    /// under another head, that head used and posted again with other memory, all while the
    /// sampler copied.
    func testTransmitMemoryRewrittenWhileCopyingIsMissedNotMisread() {
        var r = SyntheticRing(size: 8)
        let capture = GuestCapture(queues: ["net0.tx"])
        _ = capture.observe(sample(r, queue: "net0.tx"), memory: r.memory)
        r.bytes.replaceSubrange(0x90000..<(0x90000 + 76), with: [UInt8](repeating: 0, count: 12) + Array(repeating: 0xAA, count: 64))
        r.desc(5, addr: 0x90000, len: 76, flags: 0)
        r.availSlot(0, 5); r.availIdx(1)
        let sampled = sample(r, queue: "net0.tx")
        r.bytes.replaceSubrange(0x90000..<(0x90000 + 76), with: [UInt8](repeating: 0, count: 12) + Array(repeating: 0xBB, count: 64))
        r.desc(6, addr: 0x90000, len: 76, flags: 0); r.availSlot(1, 6); r.availIdx(2)
        r.desc(6, addr: 0x98000, len: 76, flags: 0); r.availSlot(2, 6); r.availIdx(3)
        let frames = capture.observe(sampled, memory: r.memory)
        XCTAssertFalse(frames.contains { $0.frame == Array(repeating: 0xBB, count: 64) }, "the next packet written as this one")
        XCTAssertEqual(frames.count + Int(capture.counts("net0.tx").missed), 1)
    }

    /// A packed ring (its snapshot has no split rings) is skipped and said to be, never read as
    /// a split one: no frame, nothing numbered; back to split, capture starts again from there.
    func testPackedRingIsSkippedNotMisread() {
        var r = rxRing()
        let capture = GuestCapture(queues: ["net0.rx"])
        _ = capture.observe(sample(r), memory: r.memory)
        receive(&r, id: 0, usedIdx: 0, frame: Array(repeating: 0xAA, count: 60))
        var packed = sample(r)
        packed.queues[0].ring?.packed = GuestPackedRing()
        XCTAssertEqual(capture.observe(packed, memory: r.memory).count, 0)
        XCTAssertEqual(capture.packedQueues, ["net0.rx"])
        XCTAssertEqual(capture.counts("net0.rx"), GuestCaptureCounts())
        XCTAssertEqual(capture.observe(sample(r), memory: r.memory).count, 0, "split again: a new start")
        XCTAssertEqual(capture.packedQueues, [])
        XCTAssertEqual(capture.counts("net0.rx").frames, 0)
    }

    func testTransmittedFramesFromNewAvailEntries() {
        var r = SyntheticRing(size: 8)
        let capture = GuestCapture(queues: ["net0.tx"])
        _ = capture.observe(sample(r, queue: "net0.tx"), memory: r.memory)
        let frame: [UInt8] = Array(0..<64)
        r.bytes.replaceSubrange(0x90000..<(0x90000 + 12 + 64), with: [UInt8](repeating: 0, count: 12) + frame)
        r.desc(5, addr: 0x90000, len: 76, flags: 0)
        r.availSlot(0, 5); r.availIdx(1)
        let frames = capture.observe(sample(r, queue: "net0.tx"), memory: r.memory)
        XCTAssertEqual(frames.map(\.frame), [frame])
        XCTAssertEqual(frames.first?.head, 5)
    }

    /// Random rings and random rewrites between samples: every sample is answered, the counts
    /// add up, and nothing traps.
    func testHostileRingsNeverTrap() {
        var rng = SplitMix64(seed: 0xCA97_0E57)
        let started = Date()
        for round in 0..<150 {
            var r = SyntheticRing(size: 1 << Int(1 + rng.next() % 7), ramBytes: 1 << 20)
            let capture = GuestCapture(queues: round % 2 == 0 ? ["net0.rx"] : ["net0.tx"])
            let queue = capture.queues[0]
            for _ in 0..<20 {
                for _ in 0..<Int(rng.next() % 400) {
                    let at = Int(rng.next() % UInt64(0x20000))   // the rings and the start of the buffers
                    r.bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                }
                for _ in 0..<4 {
                    let id = Int(rng.next() % UInt64(r.a.size))
                    r.desc(id, addr: rng.next() % 2 == 0 ? rng.next() % (1 << 20) : rng.next(), len: UInt32(truncatingIfNeeded: rng.next() % 70000),
                           flags: UInt16(truncatingIfNeeded: rng.next() % 8), next: UInt16(truncatingIfNeeded: rng.next() % UInt64(r.a.size + 2)))
                }
                if rng.next() % 3 == 0 { r.usedIdx(UInt16(truncatingIfNeeded: rng.next())) }
                for f in capture.observe(sample(r, queue: queue), memory: r.memory) {
                    XCTAssertLessThanOrEqual(f.frame.count, GuestCapture.frameLimit)
                }
                let c = capture.counts(queue)
                XCTAssertEqual(c.frames, c.captured + c.missed)
            }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 60)
    }
}
