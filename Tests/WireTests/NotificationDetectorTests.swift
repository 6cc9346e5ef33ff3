import XCTest
import Virtio
@testable import Wire

/// The lost-notification detector on synthetic sample sequences: each rule raises only when the
/// notification was owed and nothing moved for the threshold, clears when the queue moves, and
/// 16-bit wrap, parked event words and garbage distances never raise anything.
final class NotificationDetectorTests: XCTestCase {
    /// One queue's sample.
    func sample(_ role: NotificationQueueRole, avail: UInt16, used: UInt16, lastUsed: UInt16? = nil, eventIdx: Bool = true,
                availEvent: UInt16 = 0, usedEvent: UInt16 = 0, availFlags: UInt16 = 0, usedFlags: UInt16 = 0,
                paused: Bool = false, size: UInt16 = 256, ring: Bool = true, deviceLastAvail: UInt16? = nil) -> NotificationSample {
        let status = WireQueueStatus(queue: 0, availIdx: avail, usedIdx: used, lastUsedIdx: lastUsed ?? used, freeCount: 0,
                                     pendingUsed: 0, paused: paused, counters: WireQueueCounters())
        let view = WireRingView(flags: eventIdx ? WireRingView.eventIdxFlag : 0, availFlags: availFlags, usedFlags: usedFlags,
                                usedEvent: usedEvent, availEvent: availEvent, availStart: 0, usedStart: 0)
        return NotificationSample(role: role, size: size, status: status, ring: ring ? view : nil,
                                  deviceLastAvailIdx: deviceLastAvail)
    }

    /// Feeds the same sample at 10 Hz from `from` for `seconds`; returns every change.
    func feed(_ d: inout NotificationDetector, _ s: NotificationSample, from: Double, seconds: Double) -> [NotificationChange] {
        var changes: [NotificationChange] = []
        var t = from
        while t < from + seconds - 1e-9 {
            changes += d.observe([s], time: t)
            t += 0.1
        }
        return changes
    }

    func raisedKinds(_ changes: [NotificationChange]) -> [NotificationAlarmKind] {
        changes.compactMap { if case .raised(let a) = $0 { return a.kind } else { return nil } }
    }

    func clearedKinds(_ changes: [NotificationChange]) -> [NotificationAlarmKind] {
        changes.compactMap { if case .cleared(let a) = $0 { return a.kind } else { return nil } }
    }

    func testRolesFollowTheQueueNames() {
        XCTAssertEqual(NotificationQueueRole(queueName: "net0.tx"), .transmit)
        XCTAssertEqual(NotificationQueueRole(queueName: "net0.tx3"), .transmit)
        XCTAssertEqual(NotificationQueueRole(queueName: "net0.ctrl"), .transmit)
        XCTAssertEqual(NotificationQueueRole(queueName: "con0.rx"), .receive)
        XCTAssertEqual(NotificationQueueRole(queueName: "net1.rx2"), .receive)
        XCTAssertEqual(NotificationQueueRole(queueName: "balloon0.stats"), .other)
        XCTAssertEqual(NotificationQueueRole(queueName: "disk0.q0"), .other)
        XCTAssertEqual(NotificationQueueRole(queueName: "rx"), .receive)
        // The ASCII fast path and the general one agree at the edges.
        XCTAssertEqual(NotificationQueueRole(queueName: "net0.rxx"), .other)
        XCTAssertEqual(NotificationQueueRole(queueName: "net0.ctrlx1"), .other)
        XCTAssertEqual(NotificationQueueRole(queueName: "a.b.tx"), .transmit)
        XCTAssertEqual(NotificationQueueRole(queueName: "tx.q0"), .other)
        XCTAssertEqual(NotificationQueueRole(queueName: "net0."), .other)
        XCTAssertEqual(NotificationQueueRole(queueName: "nét0.rx1"), .receive)
        XCTAssertEqual(NotificationQueueRole(queueName: "net0.rx\u{0663}"), .receive, "a non-ASCII digit ends the base too")
    }

    // MARK: Kicks

    func testKickOwedWithEventIdxRaisesAfterTheThresholdAndClearsWhenTheDeviceConsumes() {
        var d = NotificationDetector()
        // The device went idle at 100 (avail_event 100); the driver published 100…102 and never kicked.
        let stuck = sample(.transmit, avail: 103, used: 100, availEvent: 100)
        let before = feed(&d, stuck, from: 0, seconds: 0.5)
        XCTAssertEqual(raisedKinds(before), [], "not before the threshold")
        let after = feed(&d, stuck, from: 0.5, seconds: 0.2)
        XCTAssertEqual(raisedKinds(after), [.kickLost])
        let alarm = d.alarms(queue: 0).first
        XCTAssertEqual(alarm?.waiting, 3)
        XCTAssertEqual(alarm?.eventWord, 100)
        XCTAssertEqual(alarm?.since, 0)
        XCTAssertTrue(alarm?.detail.contains("avail_event 100") == true, alarm?.detail ?? "")
        // The kick arrives: the device consumes everything.
        let moved = d.observe([sample(.transmit, avail: 103, used: 103, availEvent: 103)], time: 0.8)
        XCTAssertEqual(clearedKinds(moved), [.kickLost])
        XCTAssertTrue(d.activeAlarms.isEmpty)
    }

    func testNoKickOwedWhileTheDeviceIsPollingOrMoving() {
        var d = NotificationDetector()
        // avail_event behind the unconsumed entries: the device said "don't kick, I'm polling".
        XCTAssertEqual(raisedKinds(feed(&d, sample(.transmit, avail: 103, used: 100, availEvent: 90), from: 0, seconds: 2)), [])
        // The device consumes a little every sample: never an alarm however long it lasts.
        var changes: [NotificationChange] = []
        for k in 0..<40 {
            let used = UInt16(200 + k)
            changes += d.observe([sample(.transmit, avail: used &+ 5, used: used, availEvent: used)], time: 3 + Double(k) * 0.1)
        }
        XCTAssertEqual(raisedKinds(changes), [])
    }

    func testKickOwedWithoutEventIdxFollowsNoNotify() {
        var d = NotificationDetector()
        let suppressed = sample(.transmit, avail: 5, used: 3, eventIdx: false, usedFlags: VIRTQ_USED_F_NO_NOTIFY)
        XCTAssertEqual(raisedKinds(feed(&d, suppressed, from: 0, seconds: 2)), [])
        let owed = sample(.transmit, avail: 5, used: 3, eventIdx: false, usedFlags: 0)
        XCTAssertEqual(raisedKinds(feed(&d, owed, from: 2, seconds: 1)), [.kickLost])
        XCTAssertTrue(d.alarms(queue: 0).first?.detail.contains("NO_NOTIFY") == true)
    }

    func testKickRuleAcrossThe16BitWrap() {
        var d = NotificationDetector()
        // avail.idx wrapped to 2; the device stopped at 65534 and asked for a kick there.
        let stuck = sample(.transmit, avail: 2, used: 65534, availEvent: 65534)
        XCTAssertEqual(raisedKinds(feed(&d, stuck, from: 0, seconds: 1)), [.kickLost])
        XCTAssertEqual(d.alarms(queue: 0).first?.waiting, 4)
        // Garbage: 40000 "unconsumed" entries on a queue of 256 is no evidence of anything.
        var g = NotificationDetector()
        XCTAssertEqual(raisedKinds(feed(&g, sample(.transmit, avail: 40000, used: 0, availEvent: 0), from: 0, seconds: 2)), [])
    }

    func testQMPsLastAvailIdxSharpensTheKickRule() {
        var d = NotificationDetector()
        // used.idx lags (requests in flight) but the device took every entry: nothing owed.
        let inFlight = sample(.transmit, avail: 10, used: 7, availEvent: 7, deviceLastAvail: 10)
        XCTAssertEqual(raisedKinds(feed(&d, inFlight, from: 0, seconds: 2)), [])
        // A device index outside used…avail is ignored (torn or stale), used.idx decides.
        let odd = sample(.transmit, avail: 10, used: 7, availEvent: 7, deviceLastAvail: 300)
        XCTAssertEqual(raisedKinds(feed(&d, odd, from: 2, seconds: 1)), [.kickLost])
        XCTAssertEqual(d.alarms(queue: 0).first?.consumedSource, "used.idx")
    }

    func testReceiveAndOtherQueuesGetNoKickRule() {
        var d = NotificationDetector()
        // A receive queue full of posted buffers waits for frames: that is its normal state.
        XCTAssertEqual(raisedKinds(feed(&d, sample(.receive, avail: 256, used: 0, availEvent: 0), from: 0, seconds: 2)), [])
        var o = NotificationDetector()
        XCTAssertEqual(raisedKinds(feed(&o, sample(.other, avail: 1, used: 0, availEvent: 0), from: 0, seconds: 2)), [])
    }

    // MARK: Interrupts

    func testInterruptOwedWithEventIdx() {
        var d = NotificationDetector()
        // The driver re-armed at 40 (used_event 40); the device wrote 40, 41 and the driver never ran.
        let stuck = sample(.receive, avail: 296, used: 42, lastUsed: 40, usedEvent: 40)
        XCTAssertEqual(raisedKinds(feed(&d, stuck, from: 0, seconds: 0.6)), [.interruptLost])
        XCTAssertEqual(d.alarms(queue: 0).first?.waiting, 2)
        // The device adds more while the driver sleeps: still the same alarm, not a new one.
        XCTAssertEqual(d.observe([sample(.receive, avail: 296, used: 44, lastUsed: 40, usedEvent: 40)], time: 0.7), [])
        // `poll`: the driver consumes.
        let polled = d.observe([sample(.receive, avail: 300, used: 44, lastUsed: 44, usedEvent: 44)], time: 0.8)
        XCTAssertEqual(clearedKinds(polled), [.interruptLost])
    }

    func testNoInterruptOwedWhenTheDriverSuppressedIt() {
        var d = NotificationDetector()
        // Our driver parks used_event half a ring... of 2^16 away while it processes.
        let parked = sample(.receive, avail: 296, used: 42, lastUsed: 40, usedEvent: 40 &- 0x8000)
        XCTAssertEqual(raisedKinds(feed(&d, parked, from: 0, seconds: 2)), [])
        // Linux's TX asks for an interrupt only after 3/4 of the pending entries (used_event ahead).
        let delayed = sample(.transmit, avail: 100, used: 90, lastUsed: 80, usedEvent: 95)
        XCTAssertEqual(raisedKinds(feed(&d, delayed, from: 2, seconds: 2)), [])
        // Without EVENT_IDX: NO_INTERRUPT set.
        let flagged = sample(.receive, avail: 296, used: 42, lastUsed: 40, eventIdx: false, availFlags: VIRTQ_AVAIL_F_NO_INTERRUPT)
        XCTAssertEqual(raisedKinds(feed(&d, flagged, from: 4, seconds: 2)), [])
        let unflagged = sample(.receive, avail: 296, used: 42, lastUsed: 40, eventIdx: false, availFlags: 0)
        XCTAssertEqual(raisedKinds(feed(&d, unflagged, from: 6, seconds: 1)), [.interruptLost])
    }

    func testPausedQueueHoldsItsEntriesWithoutAnAlarm() {
        var d = NotificationDetector()
        let paused = sample(.receive, avail: 296, used: 42, lastUsed: 40, usedEvent: 40, paused: true)
        XCTAssertEqual(raisedKinds(feed(&d, paused, from: 0, seconds: 3)), [])
    }

    func testInterruptRuleAcrossThe16BitWrap() {
        var d = NotificationDetector()
        let stuck = sample(.receive, avail: 200, used: 1, lastUsed: 65535, usedEvent: 65535)
        XCTAssertEqual(raisedKinds(feed(&d, stuck, from: 0, seconds: 1)), [.interruptLost])
        XCTAssertEqual(d.alarms(queue: 0).first?.waiting, 2)
    }

    func testNoRulesWithoutTheRings() {
        var d = NotificationDetector()
        let blind = sample(.transmit, avail: 5, used: 3, lastUsed: 1, ring: false)
        XCTAssertEqual(raisedKinds(feed(&d, blind, from: 0, seconds: 3)), [])
    }

    // MARK: Starvation

    func testStarvedOnlyAfterTheQueueHadBuffers() {
        var d = NotificationDetector()
        // Never had buffers (an interface that is down): not starved, just unused.
        XCTAssertEqual(raisedKinds(feed(&d, sample(.receive, avail: 0, used: 0), from: 0, seconds: 2)), [])
        _ = d.observe([sample(.receive, avail: 256, used: 0)], time: 2)
        // The driver stopped reposting and the device used everything.
        let empty = sample(.receive, avail: 256, used: 256)
        XCTAssertEqual(raisedKinds(feed(&d, empty, from: 2.1, seconds: 0.7)), [.starved])
        XCTAssertTrue(d.alarms(queue: 0).first?.detail.contains("dropped") == true)
        // Reposting clears it.
        XCTAssertEqual(clearedKinds(d.observe([sample(.receive, avail: 300, used: 256)], time: 3)), [.starved])
    }

    func testAFloodThatEmptiesTheRingBetweenSamplesIsNotStarvation() {
        var d = NotificationDetector()
        var changes = d.observe([sample(.receive, avail: 256, used: 0)], time: 0)
        // Every sample finds the ring empty, but the indices move: the driver keeps reposting.
        for k in 1...100 {
            let i = UInt16(truncatingIfNeeded: 256 + k * 700)
            changes += d.observe([sample(.receive, avail: i, used: i)], time: Double(k) * 0.1)
        }
        XCTAssertEqual(raisedKinds(changes), [])
    }

    func testAHelloForgetsEveryAlarm() {
        var d = NotificationDetector()
        _ = feed(&d, sample(.transmit, avail: 103, used: 100, availEvent: 100), from: 0, seconds: 1)
        XCTAssertEqual(d.activeAlarms.count, 1)
        d.reset()
        XCTAssertTrue(d.activeAlarms.isEmpty)
    }

    /// Random samples (a guest writing garbage): the detector never traps, and an alarm is only
    /// ever raised for a condition that held `threshold` with a fixed key.
    func testRandomSamplesNeverTrap() {
        var rng = SystemRandomNumberGenerator()
        var d = NotificationDetector()
        for k in 0..<20000 {
            let roles: [NotificationQueueRole] = [.transmit, .receive, .other]
            let s = sample(roles[Int.random(in: 0..<3, using: &rng)], avail: .random(in: 0...UInt16.max, using: &rng),
                           used: .random(in: 0...UInt16.max, using: &rng), lastUsed: .random(in: 0...UInt16.max, using: &rng),
                           eventIdx: .random(using: &rng), availEvent: .random(in: 0...UInt16.max, using: &rng),
                           usedEvent: .random(in: 0...UInt16.max, using: &rng), availFlags: .random(in: 0...3, using: &rng),
                           usedFlags: .random(in: 0...3, using: &rng), paused: .random(using: &rng),
                           size: [0, 1, 2, 256, 32768][Int.random(in: 0..<5, using: &rng)],
                           deviceLastAvail: Bool.random(using: &rng) ? .random(in: 0...UInt16.max, using: &rng) : nil)
            for change in d.observe([s, nil], time: Double(k) * 0.1) {
                if case .raised = change { XCTFail("garbage that changes every sample raised \(change)") }
            }
        }
    }

    // MARK: Packed rings (virtio 1.2 §2.8.10)

    /// A packed queue of 8 slots: positions as offset | wrap << 15; `deviceEvent`/`driverEvent`
    /// as (flags, offset, wrap) of the event suppression structures.
    func packed(_ role: NotificationQueueRole, driver: (UInt16, UInt16), device: (UInt16, UInt16), driverUsed: (UInt16, UInt16)? = nil,
                deviceEvent: (UInt16, UInt16, UInt16) = (0, 0, 0), driverEvent: (UInt16, UInt16, UInt16) = (1, 0, 0),
                packets: UInt64 = 0) -> NotificationSample {
        func pos(_ p: (UInt16, UInt16)) -> UInt16 { p.0 | p.1 << 15 }
        let status = WireQueueStatus(queue: 0, availIdx: pos(driver), usedIdx: pos(device), lastUsedIdx: pos(driverUsed ?? device),
                                     freeCount: 0, pendingUsed: 0, paused: false, counters: WireQueueCounters(packets: packets))
        let view = WireRingView(flags: WireRingView.packedFlag | WireRingView.eventIdxFlag,
                                availFlags: driverEvent.0, usedFlags: deviceEvent.0,
                                usedEvent: driverEvent.1 | driverEvent.2 << 15, availEvent: deviceEvent.1 | deviceEvent.2 << 15)
        return NotificationSample(role: role, size: 8, status: status, ring: view, format: .packed)
    }

    /// The device's event structure decides whether a kick is owed for unconsumed descriptors:
    /// ENABLE always, DISABLE never, DESC when its position is among them (across the wrap too).
    func testPackedKickRule() {
        func kicks(_ s: NotificationSample) -> [NotificationAlarmKind] {
            var d = NotificationDetector(threshold: 0.5)
            return raisedKinds(feed(&d, s, from: 0, seconds: 1))
        }
        XCTAssertEqual(kicks(packed(.transmit, driver: (3, 1), device: (1, 1), deviceEvent: (0, 0, 0))), [.kickLost], "ENABLE")
        XCTAssertEqual(kicks(packed(.transmit, driver: (3, 1), device: (1, 1), deviceEvent: (1, 0, 0))), [], "DISABLE")
        XCTAssertEqual(kicks(packed(.transmit, driver: (3, 1), device: (1, 1), deviceEvent: (2, 2, 1))), [.kickLost], "DESC among them")
        XCTAssertEqual(kicks(packed(.transmit, driver: (3, 1), device: (1, 1), deviceEvent: (2, 3, 1))), [], "DESC at the next one")
        // Across the end of the ring: device at 7 (wrap 1), driver at 1 (wrap 0).
        XCTAssertEqual(kicks(packed(.transmit, driver: (1, 0), device: (7, 1), deviceEvent: (2, 0, 0))), [.kickLost], "DESC 0/w0 after the wrap")
        XCTAssertEqual(kicks(packed(.transmit, driver: (1, 0), device: (7, 1), deviceEvent: (2, 0, 1))), [], "DESC 0/w1: a lap away")
        XCTAssertEqual(kicks(packed(.transmit, driver: (3, 1), device: (1, 1), deviceEvent: (2, 9, 1))), [], "an offset past the size: unknown")
        XCTAssertEqual(kicks(packed(.transmit, driver: (3, 1), device: (3, 1), deviceEvent: (0, 0, 0))), [], "nothing unconsumed")
        var d = NotificationDetector(threshold: 0.5)
        _ = feed(&d, packed(.transmit, driver: (1, 0), device: (7, 1)), from: 0, seconds: 1)
        XCTAssertEqual(d.activeAlarms.first?.waiting, 2)
        XCTAssertTrue(d.activeAlarms.first?.detail.contains("driver at 1/w0, device position 7/w1") ?? false, d.activeAlarms.first?.detail ?? "")
    }

    /// The driver's event structure decides whether an interrupt is owed for used descriptors
    /// the driver has not taken; a receive queue with no descriptors for the device starves.
    func testPackedInterruptAndStarveRules() {
        var d = NotificationDetector(threshold: 0.5)
        var c = feed(&d, packed(.receive, driver: (2, 0), device: (1, 0), driverUsed: (6, 1), driverEvent: (2, 7, 1)), from: 0, seconds: 1)
        XCTAssertEqual(raisedKinds(c), [.interruptLost], "DESC 7/w1 among the 3 used from 6/w1")
        d = NotificationDetector(threshold: 0.5)
        c = feed(&d, packed(.receive, driver: (2, 0), device: (1, 0), driverUsed: (6, 1), driverEvent: (1, 7, 1)), from: 0, seconds: 1)
        XCTAssertEqual(raisedKinds(c), [], "DISABLE")
        d = NotificationDetector(threshold: 0.5)
        _ = feed(&d, packed(.receive, driver: (4, 1), device: (1, 1)), from: 0, seconds: 0.3)
        c = feed(&d, packed(.receive, driver: (4, 1), device: (4, 1)), from: 0.3, seconds: 1)
        XCTAssertEqual(raisedKinds(c), [.starved])
    }

    /// A receive queue under a flood the driver cannot keep up with (seen on our kernel, QEMU
    /// 7.2, packed, 5,000 datagrams/s): each sample finds the ring full — the driver at 2/w1, the
    /// device a lap ahead at 2/w0, nothing available — but the driver took two laps (16 buffers)
    /// since the previous one, so the positions are the same again. That is progress, not a lost
    /// interrupt nor starvation: the driver's count of buffers taken tells them apart. With
    /// that count standing still, the same samples are a stuck queue and raise both.
    func testPackedPositionsRepeatingAfterTwoLapsAreProgress() {
        func full(packets: UInt64) -> NotificationSample {
            packed(.receive, driver: (2, 0), device: (2, 0), driverUsed: (2, 1), driverEvent: (2, 2, 1), packets: packets)
        }
        // First a lap of buffers given and none used (a receive queue that has had buffers).
        let given = packed(.receive, driver: (2, 0), device: (2, 1), driverUsed: (2, 1), driverEvent: (2, 2, 1), packets: 92)
        var d = NotificationDetector(threshold: 0.5)
        var changes = d.observe([given], time: -0.1)
        for n in 0..<20 { changes += d.observe([full(packets: 100 + 16 * UInt64(n))], time: 0.1 * Double(n)) }
        XCTAssertEqual(raisedKinds(changes), [], "two laps between samples: the queue moved")
        d = NotificationDetector(threshold: 0.5)
        changes = d.observe([given], time: -0.1)
        for n in 0..<20 { changes += d.observe([full(packets: 100)], time: 0.1 * Double(n)) }
        XCTAssertEqual(raisedKinds(changes), [.interruptLost, .starved], "nothing taken for 2 s: stuck")
        XCTAssertTrue(d.activeAlarms.first?.detail.contains("8 used descriptors not consumed") ?? false, "\(d.activeAlarms)")
    }
}
