import Foundation
import XCTest
import Wire
@testable import RingsideKit

/// Packed virtqueues (virtio 1.2, 2.8) end to end: QEMU offers them (`packed=on` on both
/// devices, as `ringside run --packed` does), the kernel takes them unless its command line says
/// `virtio.packed=off`, and traffic, HTTP and telemetry work on them. QEMU's own view of the
/// negotiated features (QMP `x-query-virtio-status`) is the oracle for what was accepted.
final class PackedRingTests: QEMUTestCase {
    static let netPath = "/machine/peripheral/net0/virtio-backend"
    static let consolePath = "/machine/peripheral/vser/virtio-backend"

    /// The features the guest accepted on the device at `path`, by QEMU's names.
    func guestFeatures(_ q: QEMUInstance, path: String) throws -> [String] {
        let status = try q.qmpClient().execute("x-query-virtio-status", arguments: ["path": path]) as? [String: Any]
        let features = status?["guest-features"] as? [String: Any]
        let lists = ["transports", "dev-features"].compactMap { features?[$0] as? [String] }
        return lists.flatMap { $0 }.map { String($0.prefix { $0 != ":" }) }
    }

    func packedConfiguration(append: String = "") throws -> QEMUConfiguration? {
        try skipOnMicrovm("these read the PCI devices' QMP paths; MicrovmTests and RINGSIDE_PACKED=1 cover packed rings there")
        guard let kernel = requireKernel() else { return nil }
        var c = try baseConfiguration(kernel: kernel)
        c.packedRings = true
        c.append = append
        return c
    }

    func testPackedRingsAreAcceptedAndEchoRandomSizesExactlyIn16MiB() throws {
        guard var c = try packedConfiguration() else { return }
        c.memoryMiB = 16
        XCTAssertTrue(c.arguments(serialLog: "s", consoleSocket: "c", qmpSocket: "q").contains { $0.hasPrefix("virtio-serial-pci") && $0.contains("packed=on") })
        let q = try launchReady(c)
        for path in [Self.netPath, Self.consolePath] {
            let accepted = try guestFeatures(q, path: path)
            XCTAssertTrue(accepted.contains("VIRTIO_F_RING_PACKED"), "\(path): guest accepted \(accepted)")
        }
        let serial = q.serialOutput
        XCTAssertTrue(serial.contains("net0: virtio-net at") && serial.contains("packed rings"), serial)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("not user networking") }
        // 600 datagrams: more than two laps of each 256-entry ring, so both wrap counters flip.
        let retries = try runEchoExchange(port: udpPort, count: 600, sizes: 1...1472, seed: 0x5041_434B)
        XCTAssertLessThanOrEqual(retries, 15)
    }

    func testHTTPOverPackedRings() throws {
        guard findExecutable("curl") != nil else { return XCTFail("curl is not installed (apt-get install curl)") }
        guard let c = try packedConfiguration() else { return }
        _ = try launchReady(c)
        guard case let .user(_, httpPort) = c.network else { return XCTFail("not user networking") }
        for _ in 0..<5 {
            let page = try runCommand(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "http://127.0.0.1:\(httpPort)/"])
            XCTAssertEqual(page.status, .exited(0), page.output)
            XCTAssertTrue(page.output.hasSuffix("\n200") && page.output.contains("net0.rx"), String(page.output.suffix(200)))
        }
        let metrics = try runCommand(["curl", "-sS", "http://127.0.0.1:\(httpPort)/metrics"])
        XCTAssertTrue(metrics.output.contains(#"ringside_queue_packets_total{queue="net0.rx"}"#), metrics.output)
        for queue in ["net0.rx", "net0.tx", "con0.rx", "con0.tx"] {
            XCTAssertTrue(metrics.output.contains("ringside_queue_packed{queue=\"\(queue)\"} 1"), "\(queue) packed in /metrics")
        }
        // A 200 KB POST and concurrent keep-alive clients (scripts/http-check.py).
        let check = try runCommand(["python3", repositoryRoot + "/scripts/http-check.py", "--port", String(httpPort)], timeout: 120)
        XCTAssertEqual(check.status, .exited(0), check.output)
    }

    func testPackedOffOnTheCommandLineKeepsSplitRings() throws {
        guard let c = try packedConfiguration(append: "virtio.packed=off") else { return }
        let q = try launchReady(c)
        for path in [Self.netPath, Self.consolePath] {
            let accepted = try guestFeatures(q, path: path)
            XCTAssertTrue(accepted.contains("VIRTIO_F_VERSION_1"), "\(path): \(accepted)")
            XCTAssertFalse(accepted.contains("VIRTIO_F_RING_PACKED"), "\(path): guest accepted \(accepted)")
        }
        XCTAssertTrue(q.serialOutput.contains("split rings"), q.serialOutput)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("not user networking") }
        _ = try runEchoExchange(port: udpPort, count: 50, sizes: 1...1472, seed: 34)
    }

    /// The hello says packed; pause, step and dump work on the packed RX queue exactly as on a
    /// split one; snapshots carry both event suppression structures and the wrap counters.
    func testTelemetryDescribesPackedQueuesAndPauseStepDumpWork() throws {
        guard let c = try packedConfiguration() else { return }
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("not user networking") }
        let t = try TelemetryConnection(path: q.run.consoleSocket, timeout: 10)
        guard var m = t.nextCompleteSnapshot(timeout: 10) else { return XCTFail("no complete snapshot") }
        XCTAssertEqual(m.hello?.queues.map(\.format), [.packed, .packed, .packed, .packed])
        _ = try runEchoExchange(port: udpPort, count: 3, sizes: 16...64, seed: 7, perTryTimeout: 1)

        XCTAssertEqual(try t.request(.pause(queue: 0)).status, .ok)
        let sock = try UDPSocket()
        let sent = (0..<3).map { Array("packed step #\($0) \(UUID().uuidString)".utf8) }
        for p in sent { try sock.send(p, toPort: udpPort) }
        XCTAssertNil(sock.receive(timeout: 1), "a paused RX queue must not deliver")
        let deadline = monotonicSeconds() + 5
        repeat {
            m = try t.fullSnapshot(timeout: 10)
        } while m.queues[0].status?.pendingUsed != 3 && monotonicSeconds() < deadline
        let rx = try XCTUnwrap(m.queues[0].status)
        XCTAssertEqual(rx.pendingUsed, 3)
        XCTAssertEqual(m.queues[0].count(of: .used), 3, "buffer ids returned by the device, not yet taken")
        let ring = try XCTUnwrap(m.queues[0].ring)
        // EVENT_IDX as negotiated: on unless the run's kernel command line turns it off (the
        // second round of `make test` does).
        let eventIdx = !QEMUConfiguration.environmentAppend.contains("virtio.event_idx=off")
        XCTAssertTrue(ring.packed, "ring flags \(ring.flags)")
        XCTAssertEqual(ring.eventIdx, eventIdx, "ring flags \(ring.flags)")
        // The device has moved 3 positions past the driver's used position, same lap or the next.
        let lastUsed = Int(rx.lastUsedIdx & 0x7FFF), used = Int(rx.usedIdx & 0x7FFF)
        XCTAssertEqual((used - lastUsed + 256) % 256, 3, "positions \(rx.lastUsedIdx) → \(rx.usedIdx)")
        // The window holds the three used slots right after L, with USED == AVAIL (2.8.1).
        let offset = (lastUsed - Int(ring.usedStart) + 256) % 256
        for k in offset..<offset + 3 {
            let flags = ring.availEntries[k]
            XCTAssertEqual(flags & (1 << 7) != 0, flags & (1 << 15) != 0, "slot flags \(flags)")
        }

        let reply = try t.request(.dump(queue: 0, selector: .next))
        XCTAssertEqual(reply.status, .ok, reply.message)
        guard case .dump(let dump) = reply.body else { return XCTFail("no dump body") }
        XCTAssertEqual(FrameDecoder.describe(dump.bytes).udpPayload, sent[0], "dump --next is the oldest pending frame")
        for i in 0..<2 {
            XCTAssertEqual(try t.request(.step(queue: 0, count: 1)).status, .ok)
            XCTAssertEqual(sock.receive(timeout: 2), sent[i], "step \(i + 1) delivers datagram \(i)")
            XCTAssertNil(sock.receive(timeout: 0.5), "step \(i + 1) delivered more than one")
        }
        XCTAssertEqual(try t.request(.resume(queue: 0)).status, .ok)
        XCTAssertEqual(sock.receive(timeout: 2), sent[2], "resume drains the rest")
    }
}
