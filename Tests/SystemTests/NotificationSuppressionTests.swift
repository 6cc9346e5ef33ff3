import Foundation
import XCTest
import Wire
import Virtio
@testable import RingsideKit

/// TX used-buffer notification suppression (issue 16), end to end on the real kernel in real
/// QEMU: the driver reclaims TX completions on the transmit path, so net0.tx runs with
/// interrupts off (2.7.7, 2.8.10) and asks for one only while it must wait for the device (the
/// ring or pool full with frames pending). Runs in every mode the suites do: EVENT_IDX on and
/// off (`RINGSIDE_KERNEL_APPEND=virtio.event_idx=off`), split and packed, pc and microvm.
final class NotificationSuppressionTests: QEMUTestCase {
    static let rx: UInt8 = 0
    static let tx: UInt8 = 1

    func boot() throws -> (QEMUInstance, TelemetryConnection, UInt16)? {
        guard let kernel = requireKernel() else { return nil }
        let c = try baseConfiguration(kernel: kernel)
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { XCTFail("not user networking"); return nil }
        let t = try TelemetryConnection(path: q.run.consoleSocket, timeout: 10)
        guard t.nextCompleteSnapshot(timeout: 10) != nil else { XCTFail("no complete snapshot"); return nil }
        _ = try runEchoExchange(port: udpPort, count: 3, sizes: 16...64, seed: 7, perTryTimeout: 1)
        return (q, t, udpPort)
    }

    func queue(_ m: TelemetryModel, _ number: UInt8) -> (status: WireQueueStatus, ring: WireRingView?, size: UInt16) {
        let q = m.queues[m.position(ofQueue: number)!]
        return (q.status!, q.ring, q.info.size)
    }

    /// Whether the ring's driver side asks the device for no used-buffer notification: packed
    /// flags DISABLE; split without EVENT_IDX the NO_INTERRUPT flag; split with EVENT_IDX a
    /// used_event the device cannot reach within a ring's worth of used entries.
    static func interruptsOff(_ ring: WireRingView, lastUsed: UInt16, size: UInt16) -> Bool {
        if ring.packed { return ring.driverEvent.flags & 3 == VIRTQ_PACKED_EVENT_FLAG_DISABLE }
        if ring.eventIdx { return Int(ring.usedEvent &- lastUsed) > Int(size) }
        return ring.availFlags & VIRTQ_AVAIL_F_NO_INTERRUPT != 0
    }

    /// Under a UDP echo load (one outstanding, then 32 at a time) net0.tx takes (almost) no
    /// interrupts while kicks and echoes flow, its completions count as suppressed, the ring
    /// says interrupts are off, and the detector raises no IRQ LOST? on the used entries the
    /// driver leaves for its next pass.
    func testTXCompletionsRaiseNoInterruptsUnderAnEchoLoad() throws {
        guard let (_, t, port) = try boot() else { return }
        let before = queue(try t.fullSnapshot(timeout: 10), Self.tx).status
        let echoes = 300
        _ = try runEchoExchange(port: port, count: echoes, sizes: 16...64, seed: 16, perTryTimeout: 1)
        let sock = try UDPSocket()
        var burstEchoes = 0
        for round in 0..<10 {
            let sent = (0..<32).map { Array("burst \(round) #\($0) \(UUID().uuidString)".utf8) }
            for p in sent { try sock.send(p, toPort: port) }
            var got = Set<[UInt8]>()
            while got.count < sent.count, let r = sock.receive(timeout: 1) { got.insert(r) }
            burstEchoes += got.intersection(sent).count
        }
        XCTAssertGreaterThanOrEqual(burstEchoes, 300, "most burst echoes arrive")
        // Idle a moment: the last completions sit in the used ring until the next pass.
        Thread.sleep(forTimeInterval: 1)
        let m = try t.fullSnapshot(timeout: 10)
        let (after, ring, size) = queue(m, Self.tx)
        let frames = Int(after.counters.kicks + after.counters.kicksSuppressed) - Int(before.counters.kicks + before.counters.kicksSuppressed)
        let interrupts = after.counters.interrupts - before.counters.interrupts
        let suppressed = after.counters.interruptsSuppressed - before.counters.interruptsSuppressed
        let kicks = after.counters.kicks - before.counters.kicks
        print("net0.tx over \(echoes + burstEchoes) echoes: publications \(frames), kicks +\(kicks), interrupts +\(interrupts), suppressed +\(suppressed)")
        XCTAssertGreaterThan(kicks, 0, "kicks still flow")
        XCTAssertLessThanOrEqual(interrupts, 3, "TX completions are reclaimed on the transmit path, not by interrupt")
        XCTAssertGreaterThanOrEqual(Int(suppressed), echoes, "every completion the device published unasked counts as suppressed")
        guard let ring else { return XCTFail("no ring state in the snapshot") }
        XCTAssertTrue(Self.interruptsOff(ring, lastUsed: after.lastUsedIdx, size: size),
                      "net0.tx asks for no interrupts: flags \(ring.availFlags) used_event \(ring.usedEvent) last used \(after.lastUsedIdx)")
        XCTAssertEqual(m.alarms(queue: m.position(ofQueue: Self.tx)!), [], "no lost-notification alarm on net0.tx")
    }

    /// With net0.tx paused, echoes fill its ring (unpublished) and the rest wait in the stack:
    /// the driver must wait for the device, so it asks for an interrupt. On resume every frame
    /// goes out promptly — the interrupt, not a timer, wakes the loop for the frames that did
    /// not fit (snapshots are off, so nothing else would before the loop's 1 s idle sleep) —
    /// and once space is back the driver turns TX interrupts off again.
    func testAFullTXRingWaitsForTheDeviceByInterruptAndEveryFrameLeaves() throws {
        guard let (_, t, port) = try boot() else { return }
        let size = Int(queue(try t.fullSnapshot(timeout: 10), Self.tx).size)
        XCTAssertEqual(try t.request(.setSnapshotRate(hz: 0)).status, .ok)
        XCTAssertEqual(try t.request(.pause(queue: Self.tx)).status, .ok)
        let before = queue(try t.fullSnapshot(timeout: 10), Self.tx).status
        let sock = try UDPSocket()
        let count = size + 32   // the ring's worth, and 32 more held by the stack (it queues 64)
        let sent = (0..<count).map { Array("fill #\($0) \(UUID().uuidString)".utf8) }
        for (i, p) in sent.enumerated() {
            try sock.send(p, toPort: port)
            if i % 16 == 15 { Thread.sleep(forTimeInterval: 0.005) }   // within the RX ring
        }
        XCTAssertNil(sock.receive(timeout: 1), "a paused TX queue holds the echoes")
        let held = queue(try t.fullSnapshot(timeout: 10), Self.tx)
        XCTAssertEqual(held.status.freeCount, 0, "the ring is full of held echoes")
        if let ring = held.ring {
            XCTAssertFalse(Self.interruptsOff(ring, lastUsed: held.status.lastUsedIdx, size: UInt16(size)),
                           "waiting for the device, the driver asks for an interrupt")
        } else { XCTFail("no ring state") }

        XCTAssertEqual(try t.request(.resume(queue: Self.tx)).status, .ok)
        let resumed = monotonicSeconds()
        var got = Set<[UInt8]>()
        var last = resumed
        while got.count < count, let r = sock.receive(timeout: 3) {
            got.insert(r)
            last = monotonicSeconds()
        }
        let drain = last - resumed
        let after = queue(try t.fullSnapshot(timeout: 10), Self.tx)
        print("full TX ring (\(size)) + 32: \(got.count)/\(count) echoes, all out \(String(format: "%.3f", drain)) s after resume; interrupts +\(after.status.counters.interrupts - before.counters.interrupts)")
        XCTAssertEqual(got, Set(sent), "every held echo goes out")
        XCTAssertLessThan(drain, 0.6, "no stall: the device's interrupt wakes the driver for the frames that did not fit")
        // On pc each queue has its own MSI-X vector, so the interrupt the driver asked for counts on
        // net0.tx. A virtio-mmio device has one line for all its queues, and the driver counts an
        // interrupt on a queue only if that queue asked for one when it is taken: by then the loop
        // may have reclaimed the ring (its re-check after asking) and turned TX interrupts off
        // again, so on microvm the count can stay, legitimately, where it was (seen with EVENT_IDX
        // off: 288 echoes out in 3 ms, +0). The drain time above is what catches a stall.
        if QEMUConfiguration.environmentMachine != .microvm {
            XCTAssertGreaterThan(after.status.counters.interrupts, before.counters.interrupts, "the driver waited by interrupt")
        }
        if let ring = after.ring {
            XCTAssertTrue(Self.interruptsOff(ring, lastUsed: after.status.lastUsedIdx, size: UInt16(size)), "space is back: interrupts off again")
        }
        _ = try runEchoExchange(port: port, count: 5, sizes: 1...100, seed: 17)
    }
}
