import Foundation
import XCTest
import Wire
@testable import RingsideKit

/// The kernel on QEMU microvm, always (whatever $RINGSIDE_MACHINE says): virtio-mmio devices
/// found from the command line, interrupts through the IOAPIC. The rest of the integration suite
/// runs on microvm too under RINGSIDE_MACHINE=microvm (`make test-microvm`); these tests check
/// what only microvm has.
final class MicrovmTests: QEMUTestCase {
    func microvmConfiguration() throws -> QEMUConfiguration? {
        guard let kernel = requireKernel() else { return nil }
        var c = try baseConfiguration(kernel: kernel)
        c.machine = .microvm
        c.memoryMiB = 16
        return c
    }

    /// Both devices are found on virtio-mmio, datagrams of random sizes come back exact, and they
    /// come back because interrupts arrive: one outstanding at a time, the main loop would
    /// otherwise sleep up to a second per datagram. Telemetry counts the device's interrupts on
    /// the queues that had used buffers (docs/architecture.md, "Interrupts on virtio-mmio").
    func testBothDevicesOnVirtioMMIOEchoRandomSizesExactlyByInterrupt() throws {
        guard var c = try microvmConfiguration() else { return }
        // Every frame by interrupt: the kernel's polling before halting (IdlePollTests) would
        // otherwise find most of them first, one outstanding at a time.
        c.append = "ringside.haltpoll=0"
        XCTAssertTrue(c.arguments(serialLog: "s", consoleSocket: "c", qmpSocket: "q").contains { $0.hasPrefix("virtio-net-device,netdev=n0,id=net0") })
        let q = try launchReady(c)
        let serial = q.serialOutput
        XCTAssertTrue(serial.contains("net0: virtio-net at virtio-mmio@0x"), serial)
        XCTAssertTrue(serial.contains("con0: virtio-console at virtio-mmio@0x"), serial)
        XCTAssertTrue(serial.contains(testRingFormat == .packed ? "packed rings" : "split rings"), serial)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("not user networking") }
        let t = try TelemetryConnection(path: q.run.consoleSocket, timeout: 10)
        XCTAssertNotNil(t.nextCompleteSnapshot(timeout: 10), "no complete snapshot")
        let before = try t.fullSnapshot(timeout: 10)
        let rxBefore = before.queues[before.position(ofQueue: 0)!].status!.counters.interrupts
        let start = monotonicSeconds()
        let retries = try runEchoExchange(port: udpPort, count: 200, sizes: 1...1472, seed: 0x3170, perTryTimeout: 0.5)
        let elapsed = monotonicSeconds() - start
        print("microvm: 200 echoes in \(String(format: "%.3f", elapsed)) s, \(retries) retries")
        XCTAssertLessThanOrEqual(retries, 2)
        // By interrupt: about 0.3 s here. Without them (IOAPIC line left masked) the echoes still
        // come back, on the telemetry's 10 Hz timer wakeups, in about 16 s.
        XCTAssertLessThan(elapsed, 5)
        let after = try t.fullSnapshot(timeout: 10)
        let rxAfter = after.queues[after.position(ofQueue: 0)!].status!.counters.interrupts
        XCTAssertGreaterThanOrEqual(rxAfter - rxBefore, 100, "net0.rx interrupts \(rxBefore) → \(rxAfter) over 200 echoes")
    }

    /// The device view on microvm: QMP's paths are discovered (the device itself, not a PCI
    /// proxy's backend), and the poller finds the net device there.
    func testDeviceViewDiscoversTheMMIOPaths() throws {
        guard let c = try microvmConfiguration() else { return }
        let q = try launchReady(c)
        let qmp = try q.qmpClient()
        XCTAssertEqual(try virtioDevicePath(qmp, id: "net0"), "/machine/peripheral/net0")
        XCTAssertEqual(try virtioDevicePath(qmp, id: "vser"), "/machine/peripheral/vser")
        let status = try qmp.execute("x-query-virtio-queue-status", arguments: ["path": "/machine/peripheral/net0", "queue": 0]) as? [String: Any]
        XCTAssertEqual(status?["vring-num"] as? Int, 256, "the kernel caps MMIO queues at 256")
    }
}
