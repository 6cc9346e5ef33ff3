import Foundation
import XCTest
import Wire
@testable import RingsideKit

/// The comparison rule (pure), the poller without QEMU, and the poller against the real kernel.
final class DeviceTruthTests: QEMUTestCase {
    func driver(avail: UInt16, used: UInt16, size: Int = 256, availDescriptors: Int? = nil, time: Double = 10) -> DriverQueueView {
        DriverQueueView(availIdx: avail, usedIdx: used, size: size, availDescriptors: availDescriptors, time: time)
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
        // Device used-idx ahead of the driver's avail_idx, with the driver's snapshot newer.
        let ahead = compareQueue(driver: driver(avail: 100, used: 100, time: 11), device: device(lastAvail: 103, used: 103, time: 10))
        guard case .impossible(let reasons) = ahead else { return XCTFail("\(ahead)") }
        XCTAssertTrue(reasons.contains { $0.contains("used-idx 103 ahead") }, "\(reasons)")
        // The same numbers with an older driver snapshot: only a difference (traffic since).
        guard case .differs = compareQueue(driver: driver(avail: 100, used: 100, time: 9), device: device(lastAvail: 103, used: 103, time: 10)) else {
            return XCTFail("an older driver snapshot may be behind")
        }
        guard case .impossible = compareQueue(driver: driver(avail: 277, used: 21), device: device(lastAvail: 21, used: 21, inuse: 300)) else {
            return XCTFail("inuse beyond the queue size")
        }
    }

    func testTrackerFlagsOnlyPersistentIdleDisagreement() {
        var t = DisagreementTracker()
        let d = driver(avail: 277, used: 21, availDescriptors: 256)
        let bad = device(lastAvail: 23, used: 23)
        XCTAssertFalse(t.note(driver: d, device: bad), "one differing sample is not enough")
        XCTAssertTrue(t.note(driver: d, device: bad), "the same difference twice with nothing moving")
        XCTAssertFalse(t.reasons.isEmpty)
        XCTAssertTrue(t.note(driver: d, device: bad), "stays flagged")
        XCTAssertFalse(t.note(driver: d, device: device(lastAvail: 21, used: 21)), "agreement clears it")

        // Traffic: differing every sample, but the indices move each time: never flagged.
        var moving = DisagreementTracker()
        for i in 0..<10 {
            let k = UInt16(i * 5)
            XCTAssertFalse(moving.note(driver: driver(avail: 256 + k, used: k, availDescriptors: 256),
                                       device: device(lastAvail: k + 2, used: k + 2)), "sample \(i)")
        }
        // An impossible value is flagged at once.
        var now = DisagreementTracker()
        XCTAssertTrue(now.note(driver: d, device: device(lastAvail: 21, used: 21, num: 64)))
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

    // MARK: Against the real device

    /// Boots the kernel, pauses net0.rx, sends a few datagrams, lets it settle, and checks that the
    /// poller's device view agrees with the kernel's snapshot, with no disagreement flagged.
    func testPollerAgreesWithTheKernelWhenIdle() throws {
        guard let kernel = requireKernel() else { return }
        let c = try baseConfiguration(kernel: kernel)
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("not user networking") }
        let t = try TelemetryConnection(path: q.run.consoleSocket, timeout: 10)
        XCTAssertNotNil(t.nextCompleteSnapshot(timeout: 10), "no complete snapshot")
        _ = try runEchoExchange(port: udpPort, count: 10, sizes: 16...200, seed: 5, perTryTimeout: 1)

        let poller = DeviceTruthPoller(socketPath: q.run.qmpSocket)
        poller.start()
        defer { poller.stop() }

        XCTAssertEqual(try t.request(.pause(queue: 0)).status, .ok)
        let sock = try UDPSocket()
        for i in 0..<3 { try sock.send(Array("device truth \(i)".utf8), toPort: udpPort) }
        // Settle: the three are in the used ring, the paused driver holds them unconsumed.
        let deadline = monotonicSeconds() + 5
        var model = try t.fullSnapshot(timeout: 10)
        func rx(_ m: TelemetryModel) -> WireQueueStatus { m.queues[m.position(ofQueueNamed: "net0.rx")!].status! }
        while rx(model).pendingUsed < 3 {
            XCTAssertLessThan(monotonicSeconds(), deadline, "the 3 datagrams never arrived")
            if monotonicSeconds() > deadline { return }
            usleep(50_000)
            model = try t.fullSnapshot(timeout: 10)
        }

        // Several device samples, each compared with a snapshot taken after it.
        var trackers: [Int: DisagreementTracker] = [:]
        var lastNumber = 0
        var compared = 0
        let start = monotonicSeconds()
        var firstNumber: Int?
        while compared < 4 && monotonicSeconds() - start < 10 {
            guard case .sample(let sample) = poller.latest, sample.number != lastNumber else {
                if case .unavailable(let why) = poller.latest { print("device truth: unavailable: \(why)") }
                usleep(50_000)
                continue
            }
            lastNumber = sample.number
            if firstNumber == nil { firstNumber = sample.number }
            let m = try t.fullSnapshot(timeout: 10)
            let now = monotonicSeconds()
            for dq in sample.queues {
                let name = dq.queue == 0 ? "net0.rx" : "net0.tx"
                let qm = m.queues[m.position(ofQueueNamed: name)!]
                let s = qm.status!
                let d = DriverQueueView(availIdx: s.availIdx, usedIdx: s.usedIdx, size: Int(qm.info.size),
                                        availDescriptors: qm.count(of: .avail), time: now)
                let c = compareQueue(driver: d, device: dq)
                print("device truth \(name): driver A \(s.availIdx) U \(s.usedIdx) avail descs \(qm.count(of: .avail)) | dev last-avail \(dq.lastAvailIdx) U \(dq.usedIdx) inuse \(dq.inuse) num \(dq.vringNum) shadow \(dq.shadowAvailIdx) -> \(c)")
                XCTAssertEqual(c, .agree, "\(name)")
                XCTAssertFalse(trackers[dq.queue, default: DisagreementTracker()].note(driver: d, device: dq), "\(name) flagged")
            }
            compared += 1
        }
        XCTAssertEqual(compared, 4, "the poller gave \(compared) fresh samples in 10 s; latest: \(poller.latest)")
        // At most 2 Hz.
        let elapsed = monotonicSeconds() - start
        if let firstNumber {
            XCTAssertLessThanOrEqual(Double(lastNumber - firstNumber), elapsed * 2 + 1, "polled faster than 2 Hz")
        }
        XCTAssertEqual(try t.request(.resume(queue: 0)).status, .ok)
        poller.stop()
        _ = try runEchoExchange(port: udpPort, count: 3, sizes: 16...64, seed: 6, perTryTimeout: 1)
    }
}
