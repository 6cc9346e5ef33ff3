import Foundation
import XCTest
import Wire
@testable import RingsideKit

/// The device-truth poller against real QEMU: a device without id=net0, and the real kernel at rest.
final class DeviceTruthTests: QEMUTestCase {
    /// A virtio-net device without `id=net0`: the poller says to add it, and where QEMU put the
    /// device instead.
    func testPollerSaysToAddIdNet0() throws {
        guard findExecutable("qemu-system-x86_64") != nil else { return XCTFail("qemu-system-x86_64 is not installed") }
        let dir = NSTemporaryDirectory() + "rs-noid-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let qmp = dir + "/qmp.sock"
        let qemu = try ChildProcess(argv: ["qemu-system-x86_64", "-machine", "pc", "-m", "32", "-nodefaults", "-display", "none",
                                           "-accel", "tcg", "-S", "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
                                           "-qmp", "unix:\(qmp),server=on,wait=off"], outputFile: dir + "/qemu.log")
        defer { qemu.signal(SIGKILL); qemu.wait(timeout: nil) }
        let p = DeviceTruthPoller(socketPath: qmp)
        p.start()
        defer { p.stop() }
        let deadline = monotonicSeconds() + 10
        while monotonicSeconds() < deadline {
            if case .unavailable(let reason) = p.latest, reason.contains("QEMU has no virtio device") {
                XCTAssertTrue(reason.contains("add id=net0 to the virtio-net device"), reason)
                XCTAssertTrue(reason.contains("/machine/peripheral-anon/device[0]/virtio-backend"), reason)
                return
            }
            usleep(50_000)
        }
        XCTFail("still \(p.latest) after 10 s")
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
        // Only samples asked for after the queue settled (the poller ran all along).
        let settled = monotonicSeconds()
        while compared < 4 && monotonicSeconds() - start < 10 {
            guard case .sample(let sample) = poller.latest, sample.number != lastNumber,
                  sample.queues.allSatisfy({ $0.requestTime > settled }) else {
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
                                        availDescriptors: qm.count(of: .avail), time: now, format: qm.info.format)
                let c = compareQueue(driver: d, device: dq)
                print("device truth \(name): driver A \(s.availIdx) U \(s.usedIdx) avail descs \(qm.count(of: .avail)) | dev last-avail \(dq.lastAvailIdx) U \(dq.usedIdx) inuse \(dq.inuse) num \(dq.vringNum) shadow \(dq.shadowAvailIdx) -> \(c)")
                XCTAssertEqual(c, .agree, "\(name)")
                XCTAssertFalse(trackers[dq.queue, default: DisagreementTracker()].note(driver: d, device: dq), "\(name) flagged")
            }
            compared += 1
        }
        XCTAssertEqual(compared, 4, "the poller gave \(compared) fresh samples in 10 s; latest: \(poller.latest)")
        // At most 4 Hz.
        let elapsed = monotonicSeconds() - start
        if let firstNumber {
            XCTAssertLessThanOrEqual(Double(lastNumber - firstNumber), elapsed * 4 + 1, "polled faster than 4 Hz")
        }
        XCTAssertEqual(try t.request(.resume(queue: 0)).status, .ok)
        poller.stop()
        _ = try runEchoExchange(port: udpPort, count: 3, sizes: 16...64, seed: 6, perTryTimeout: 1)
    }
}
