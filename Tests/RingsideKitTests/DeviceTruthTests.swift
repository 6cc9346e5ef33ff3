import Foundation
import RingsideTestSupport
import XCTest
import Wire
@testable import RingsideKit

/// The comparison rule (pure) and the poller without QEMU (SystemTests has it against real QEMU).
extension DriverQueueView {
    func with(uptime: Double) -> DriverQueueView { var d = self; d.uptime = uptime; return d }
}

extension DeviceQueueView {
    func with(requestTime: Double) -> DeviceQueueView { var d = self; d.requestTime = requestTime; return d }
}

final class DeviceTruthTests: XCTestCase {
    func driver(avail: UInt16, used: UInt16, size: Int = 256, availDescriptors: Int? = nil, time: Double = 10) -> DriverQueueView {
        DriverQueueView(availIdx: avail, usedIdx: used, size: size, availDescriptors: availDescriptors, time: time, format: .split)
    }

    func device(lastAvail: UInt16, used: UInt16, inuse: Int = 0, num: Int = 256, time: Double = 10) -> DeviceQueueView {
        DeviceQueueView(queue: 0, lastAvailIdx: lastAvail, usedIdx: used, inuse: inuse, vringNum: num, shadowAvailIdx: lastAvail, time: time)
    }

    // MARK: The rule

    func testIdleRXQueueAgrees() {
        // 256 RX buffers posted, 21 filled and returned, the device has fetched exactly those.
        XCTAssertEqual(compareQueue(driver: driver(avail: 277, used: 21, availDescriptors: 256), device: device(lastAvail: 21, used: 21)), .agree)
        // Without a descriptor table: avail_idx - used_idx buffers are with the device.
        XCTAssertEqual(compareQueue(driver: driver(avail: 277, used: 21), device: device(lastAvail: 21, used: 21)), .agree)
        // An idle TX queue: everything given came back.
        XCTAssertEqual(compareQueue(driver: driver(avail: 40, used: 40, availDescriptors: 0), device: device(lastAvail: 40, used: 40)), .agree)
    }

    func testBufferTheDeviceHoldsAgrees() {
        // The device popped one buffer (inuse 1) and has not returned it.
        XCTAssertEqual(compareQueue(driver: driver(avail: 277, used: 21, availDescriptors: 256), device: device(lastAvail: 22, used: 21, inuse: 1)), .agree)
    }

    func testIndicesWrapAround() {
        XCTAssertEqual(compareQueue(driver: driver(avail: 200, used: 65480, availDescriptors: 256), device: device(lastAvail: 65480, used: 65480)), .agree)
        XCTAssertEqual(compareQueue(driver: driver(avail: 3, used: 65535, availDescriptors: 4), device: device(lastAvail: 0, used: 65535, inuse: 1)), .agree)
    }

    func testDifferentIndicesDiffer() {
        let c = compareQueue(driver: driver(avail: 277, used: 21, availDescriptors: 256), device: device(lastAvail: 23, used: 23))
        guard case .differs(let reasons) = c else { return XCTFail("\(c)") }
        XCTAssertTrue(reasons.contains { $0.contains("used_idx 21") }, "\(reasons)")
        // The driver's table shows one buffer fewer with the device than the indices say.
        let d = compareQueue(driver: driver(avail: 277, used: 21, availDescriptors: 255), device: device(lastAvail: 21, used: 21))
        guard case .differs(let r2) = d else { return XCTFail("\(d)") }
        XCTAssertTrue(r2.contains { $0.contains("avail_idx 277") }, "\(r2)")
    }

    func testImpossibleValues() {
        // Queue size.
        guard case .impossible = compareQueue(driver: driver(avail: 277, used: 21), device: device(lastAvail: 21, used: 21, num: 128)) else {
            return XCTFail("vring-num must be the queue size")
        }
        guard case .impossible = compareQueue(driver: driver(avail: 277, used: 21), device: device(lastAvail: 21, used: 21, inuse: 300)) else {
            return XCTFail("inuse beyond the queue size")
        }
        // Index differences alone are never "impossible" at one instant: the issue's example
        // (a stale device sample during a flood) only differs.
        let c = compareQueue(driver: driver(avail: 818, used: 562, time: 11), device: device(lastAvail: 159, used: 159, time: 10))
        guard case .differs = c else { return XCTFail("\(c)") }
    }

    func testSignedIndexDistanceAcrossTheWrap() {
        XCTAssertEqual(indexDistance(5, 65530), 11)
        XCTAssertEqual(indexDistance(65530, 5), -11)
        XCTAssertEqual(indexDistance(100, 100), 0)
        XCTAssertEqual(indexDistance(32767, 0), 32767)
        XCTAssertEqual(indexDistance(32768, 0), -32768)
    }

    /// Read at one instant (the guest stopped), any difference is a disagreement at once; a
    /// Linux-style chain count (no descriptor count: avail − used − inuse unfetched) agrees.
    func testInstantComparisonFlagsAnyDifferenceAtOnce() {
        var t = DisagreementTracker()
        t.noteInstant(driver: driver(avail: 256, used: 16, availDescriptors: nil, time: 1), device: device(lastAvail: 16, used: 16, time: 1))
        XCTAssertEqual(t.verdict, .agree)
        t.noteInstant(driver: driver(avail: 277, used: 21, availDescriptors: 256, time: 2), device: device(lastAvail: 23, used: 23, time: 2))
        XCTAssertTrue(t.flagged, "one differing instant is enough")
        XCTAssertFalse(t.reasons.isEmpty)
    }

    func testTrackerFlagsOnlyPersistentIdleDisagreement() {
        var t = DisagreementTracker()
        // Driver snapshots at 10 Hz, device samples between them: nothing moves.
        let bad = { (time: Double) in self.device(lastAvail: 23, used: 23, time: time) }
        t.noteDriver(driver(avail: 277, used: 21, availDescriptors: 256, time: 10.0))
        XCTAssertFalse(t.noteDevice(bad(10.05)), "one differing sample is not enough")
        XCTAssertEqual(t.verdict, .inFlight)
        t.noteDriver(driver(avail: 277, used: 21, availDescriptors: 256, time: 10.1))
        t.noteDriver(driver(avail: 277, used: 21, availDescriptors: 256, time: 10.2))
        XCTAssertTrue(t.noteDevice(bad(10.3)), "the same difference twice with nothing moving")
        XCTAssertFalse(t.reasons.isEmpty)
        t.noteDriver(driver(avail: 277, used: 21, availDescriptors: 256, time: 10.4))
        XCTAssertTrue(t.noteDevice(bad(10.55)), "stays flagged")
        t.noteDriver(driver(avail: 277, used: 21, availDescriptors: 256, time: 10.6))
        XCTAssertFalse(t.noteDevice(device(lastAvail: 21, used: 21, time: 10.8)), "agreement clears it")
        XCTAssertEqual(t.verdict, .agree)

        // The same driver snapshot twice (telemetry stopped) is not "nothing moved".
        var stalled = DisagreementTracker()
        stalled.noteDriver(driver(avail: 277, used: 21, availDescriptors: 256, time: 20))
        XCTAssertFalse(stalled.noteDevice(bad(20.1)))
        XCTAssertFalse(stalled.noteDevice(bad(20.35)), "no fresh driver snapshot since the previous sample")

        // Traffic: differing every sample, but the indices move each time: never flagged.
        var moving = DisagreementTracker()
        for i in 0..<10 {
            let k = UInt16(i * 5)
            let t0 = 30 + Double(i) * 0.25
            moving.noteDriver(driver(avail: 256 + k, used: k, availDescriptors: 256, time: t0))
            XCTAssertFalse(moving.noteDevice(device(lastAvail: k + 2, used: k + 2, time: t0 + 0.05)), "sample \(i)")
        }
        // A size mismatch is flagged at once.
        var now = DisagreementTracker()
        now.noteDriver(driver(avail: 277, used: 21, time: 9.9))
        XCTAssertTrue(now.noteDevice(device(lastAvail: 21, used: 21, num: 64)))
    }

    /// A flood at 5,000 buffers/s for 60 s across several 16-bit wraps, with driver snapshots at
    /// 10 Hz arriving after random flights (some very late), device samples at 4 Hz whose answers
    /// take random times (some very slow): stale samples on both sides, never a flag.
    func testStaleSamplesUnderAFloodAcrossTheWrapNeverFlag() {
        var rng = SplitMix64(seed: 42)
        let rate = 5000.0, start: UInt16 = 65000
        func used(_ t: Double) -> UInt16 { UInt16(truncatingIfNeeded: Int(start) + Int(t * rate)) }
        var rx = DisagreementTracker(), tx = DisagreementTracker()
        // Events in host time: snapshots taken every 0.1 s, arriving after a flight of 0-30 ms,
        // 1 in 20 after up to 1.5 s, 1 in 60 after 7-9 s; device queries every 0.25 s taking 1-20 ms, 1 in 10 up to 0.8 s.
        var events: [(time: Double, apply: (inout DisagreementTracker, inout DisagreementTracker) -> Bool)] = []
        for k in 0..<600 {
            let taken = Double(k) * 0.1
            let dice = Int.random(in: 0..<60, using: &rng)
            // Late by 7-9 s: 35,000-45,000 buffers behind, more than half the 16-bit range.
            let flight = dice == 0 ? Double.random(in: 7...9, using: &rng)
                : dice < 4 ? Double.random(in: 0...1.5, using: &rng) : Double.random(in: 0...0.03, using: &rng)
            let arrival = taken + flight
            let u = used(taken)
            events.append((arrival, { a, b in
                a.noteDriver(DriverQueueView(availIdx: u &+ 256, usedIdx: u, size: 256, availDescriptors: 256, time: arrival, uptime: taken + 1, format: .split))
                b.noteDriver(DriverQueueView(availIdx: u, usedIdx: u, size: 256, availDescriptors: 0, time: arrival, uptime: taken + 1, format: .split))
                return false
            }))
        }
        for k in 0..<240 {
            let sent = Double(k) * 0.25 + 0.01
            let slow = Int.random(in: 0..<10, using: &rng) == 0
            let answered = sent + (slow ? Double.random(in: 0...0.8, using: &rng) : Double.random(in: 0.001...0.02, using: &rng))
            let read = Double.random(in: sent...answered, using: &rng)
            let u = used(read)
            events.append((answered, { a, b in
                let flagged = a.noteDevice(DeviceQueueView(queue: 0, lastAvailIdx: u, usedIdx: u, inuse: 0, vringNum: 256, shadowAvailIdx: u, time: answered, requestTime: sent))
                return b.noteDevice(DeviceQueueView(queue: 1, lastAvailIdx: u, usedIdx: u, inuse: 0, vringNum: 256, shadowAvailIdx: u, time: answered, requestTime: sent)) || flagged
            }))
        }
        events.sort { $0.time < $1.time }
        var flags = 0
        for e in events where e.apply(&rx, &tx) { flags += 1 }
        XCTAssertEqual(flags, 0, "rx \(rx.verdict), tx \(tx.verdict)")
        XCTAssertGreaterThan(rx.comparisons, 150, "most samples are comparable (\(rx.uncompared) were not)")
        XCTAssertGreaterThan(rx.uncompared, 0, "the late snapshots and slow answers were not compared")
    }

    /// The issue's case: a device sample from long ago against the driver's newest snapshot.
    func testAStaleDeviceSampleIsNotComparedNotFlagged() {
        // The device was read at 11.0 (a slow answer, or a sample applied late); the driver's
        // snapshot is from 12.0: nothing the driver said before the device was read.
        var issue = DisagreementTracker()
        issue.noteDriver(driver(avail: 818, used: 562, availDescriptors: 256, time: 12.0))
        XCTAssertFalse(issue.noteDevice(device(lastAvail: 159, used: 159, time: 12.1).with(requestTime: 11.0)))
        XCTAssertEqual(issue.verdict, .unknown("no driver snapshot before the device's sample"))
        // The newest snapshot before the device's sample is 1.5 s older than it.
        var t = DisagreementTracker()
        t.noteDriver(driver(avail: 818, used: 562, availDescriptors: 256, time: 12.0))
        XCTAssertFalse(t.noteDevice(device(lastAvail: 159, used: 159, time: 13.5)))
        guard case .unknown(let why) = t.verdict else { return XCTFail("\(t.verdict)") }
        XCTAssertTrue(why.contains("older than the device's answer"), why)
        // A snapshot that arrived late (kernel uptime says it was taken 1.2 s before it came).
        var late = DisagreementTracker()
        late.noteDriver(driver(avail: 300, used: 44, time: 20.0).with(uptime: 10.0))
        late.noteDriver(driver(avail: 356, used: 100, time: 21.3).with(uptime: 10.1))
        XCTAssertFalse(late.noteDevice(device(lastAvail: 20, used: 20, time: 21.35)))
        guard case .unknown(let lateWhy) = late.verdict else { return XCTFail("\(late.verdict)") }
        XCTAssertTrue(lateWhy.contains("late"), lateWhy)
    }

    /// A driver whose used_idx is ahead of the device's (what `ringside.test.misreport-used=N`
    /// makes the kernel report) is flagged at the first comparable sample, under traffic and
    /// across the 16-bit wrap.
    func testDriverAheadOfTheDeviceIsFlaggedAtOnce() {
        var t = DisagreementTracker()
        // True used 65530 at 10.0 s, 65535 + 20 = 19 (wrapped) at 10.1; the device read 25 at 10.15.
        t.noteDriver(driver(avail: 65530 &+ 256 &+ 40, used: 65530 &+ 40, availDescriptors: 256, time: 10.0))
        t.noteDriver(driver(avail: 19 &+ 256 &+ 40, used: 19 &+ 40, availDescriptors: 256, time: 10.1))
        XCTAssertTrue(t.noteDevice(device(lastAvail: 25, used: 25, time: 10.16).with(requestTime: 10.15)))
        XCTAssertTrue(t.reasons.first?.contains("is 34 ahead of device used-idx 25") ?? false, "\(t.reasons)")
        // Honest traffic across the wrap, same timing: no flag.
        var honest = DisagreementTracker()
        honest.noteDriver(driver(avail: 65530 &+ 256, used: 65530, availDescriptors: 256, time: 10.0))
        honest.noteDriver(driver(avail: 19 &+ 256, used: 19, availDescriptors: 256, time: 10.1))
        XCTAssertFalse(honest.noteDevice(device(lastAvail: 25, used: 25, time: 10.16).with(requestTime: 10.15)))
        XCTAssertEqual(honest.verdict, .inFlight)
    }

    func testParsesAQMPReply() {
        let reply: [String: Any] = ["last-avail-idx": 277, "used-idx": 21, "inuse": 0, "vring-num": 256, "shadow-avail-idx": 270,
                                    "name": "virtio-net", "queue-index": 0]
        let v = DeviceQueueView(queue: 0, qmp: reply, time: 5)
        XCTAssertEqual(v, DeviceQueueView(queue: 0, lastAvailIdx: 277, usedIdx: 21, inuse: 0, vringNum: 256, shadowAvailIdx: 270, time: 5))
        XCTAssertNil(DeviceQueueView(queue: 0, qmp: ["used-idx": 1]))
    }

    func testPollerWithoutQMPSaysUnavailable() {
        let p = DeviceTruthPoller(socketPath: "/tmp/ringside-no-such-qmp-\(getpid()).sock")
        p.start()
        defer { p.stop() }
        let deadline = monotonicSeconds() + 5
        while monotonicSeconds() < deadline {
            if case .unavailable = p.latest { return }
            usleep(20_000)
        }
        XCTFail("still \(p.latest) after 5 s")
    }
}

/// Driver ↔ memory (and driver ↔ device in the three-way view): each driver snapshot against a
/// sample taken before the kernel took it.
final class ThreeWayTrackerTests: XCTestCase {
    func mem(_ avail: UInt16, _ used: UInt16, at t: Double) -> DeviceQueueView {
        .memory(queue: 0, availIdx: avail, usedIdx: used, size: 128, time: t)
    }
    func drv(_ avail: UInt16, _ used: UInt16, uptime: Double, flight: Double = 0.002) -> DriverQueueView {
        // Host clock = uptime + 100.
        DriverQueueView(availIdx: avail, usedIdx: used, size: 128, availDescriptors: nil, time: 100 + uptime + flight, uptime: uptime, format: .split)
    }

    /// con0.tx at 1 Hz: each snapshot reports the state before posting its own buffer; memory
    /// read after its arrival is one ahead. Read before the next snapshot was taken, memory
    /// equals what that snapshot reports: agree — and the reads after arrival are never compared.
    func testSelfPostingQueueAgreesAtRestAndNeverFlagsTheLag() {
        var t = DriverAfterTracker()
        t.noteDriver(drv(59, 59, uptime: 1.0))
        for k in 1...19 { t.noteMemory(mem(60, 60, at: 101.0 + Double(k) * 0.05)) }   // own buffer posted and consumed
        t.noteDriver(drv(60, 60, uptime: 2.0))
        XCTAssertEqual(t.verdict, .agree)
        for k in 1...19 { t.noteMemory(mem(61, 61, at: 102.0 + Double(k) * 0.05)) }
        t.noteMemory(mem(62, 61, at: 102.999))   // the next snapshot's buffer, within the margin
        t.noteDriver(drv(61, 61, uptime: 3.0))
        XCTAssertEqual(t.verdict, .agree, "the read inside the margin is not used")
        XCTAssertFalse(t.flagged)
    }

    func testMemoryAheadOfALaterSnapshotIsFlaggedAtOnce() {
        var t = DriverAfterTracker()
        t.noteDriver(drv(10, 10, uptime: 1.0))
        t.noteMemory(mem(30, 10, at: 101.5))
        t.noteDriver(drv(20, 10, uptime: 2.0))
        XCTAssertTrue(t.flagged, "avail.idx is the driver's to write: memory cannot be ahead of a later snapshot")
    }

    func testThreeWayAgreesAtRest() {
        var t = ThreeWayTracker()
        t.noteDriver(drv(257, 1, uptime: 1.0))
        t.noteMemory(mem(257, 1, at: 101.2), format: .split)
        t.noteDevice(DeviceQueueView(queue: 0, lastAvailIdx: 1, usedIdx: 1, inuse: 0, vringNum: 128, shadowAvailIdx: 1,
                                     time: 101.31, requestTime: 101.3))
        t.noteMemory(mem(257, 1, at: 101.5), format: .split)
        t.noteDriver(drv(257, 1, uptime: 2.0))
        XCTAssertTrue(t.allAgree, "\(t.pairs)")
    }
}
