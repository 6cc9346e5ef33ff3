import Foundation
import XCTest
@testable import RingsideKit

/// The real kernel in real QEMU (TCG), through user-mode networking and forwarded host ports.
final class KernelTests: QEMUTestCase {
    func testBootReachesReady() throws {
        guard let kernel = requireKernel() else { return }
        let c = try baseConfiguration(kernel: kernel)
        let start = monotonicSeconds()
        let q = try launchReady(c, timeout: 30)
        print("kernel ready \(String(format: "%.3f", monotonicSeconds() - start)) s after QEMU start")
        XCTAssertTrue(q.process.isRunning, "QEMU ended after ready: \(q.qemuOutput)")
    }

    func testUDPEcho300RandomDatagrams() throws {
        guard let kernel = requireKernel() else { return }
        let c = try baseConfiguration(kernel: kernel)
        _ = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("not user networking") }
        let retries = try runEchoExchange(port: udpPort, count: 300, sizes: 1...1472, seed: 0x52_49_4E_47)
        print("300 datagrams echoed with \(retries) retransmissions")
        XCTAssertLessThanOrEqual(retries, 15, "too many retransmissions for user-mode networking on loopback")
    }

    /// QEMU 7.2 accepts rx_queue_size up to 1024; tx_queue_size is capped at 256 with a user netdev.
    func testLargeQueuesBootAndEcho() throws {
        try skipOnMicrovm("QueueNumMax is QEMU's transport limit (1024) whatever rx_queue_size says, and the MMIO driver picks its own size")
        guard let kernel = requireKernel() else { return }
        var c = try baseConfiguration(kernel: kernel)
        c.rxQueueSize = 1024
        c.txQueueSize = 1024
        let q = try launchReady(c)
        let qmp = try q.qmpClient()
        let rx = try qmp.execute("x-query-virtio-queue-status", arguments: ["path": try virtioDevicePath(qmp, id: "net0"), "queue": 0]) as? [String: Any]
        XCTAssertEqual(rx?["vring-num"] as? Int, 1024, "device RX queue size")
        guard case let .user(udpPort, _) = c.network else { return XCTFail("not user networking") }
        let retries = try runEchoExchange(port: udpPort, count: 50, sizes: 1...1472, seed: 1024)
        XCTAssertLessThanOrEqual(retries, 5)
    }

    func testSmallMemoryBoots() throws {
        guard let kernel = requireKernel() else { return }
        var c = try baseConfiguration(kernel: kernel)
        c.memoryMiB = 16
        _ = try launchReady(c)
    }

    /// A command line with no NUL within Xen's 1024 bytes is ignored whole and said so, never cut
    /// (Sources/PVH): cut at 1023 bytes, this one would have ended in `ringside.fault=p`.
    func testOverlongCommandLineIsIgnoredWhole() throws {
        try skipOnMicrovm("microvm's devices are on the command line (virtio_mmio.device=): ignored, it leaves none")
        guard let kernel = requireKernel() else { return }
        var c = try baseConfiguration(kernel: kernel)
        c.append = "ringside.pad=" + String(repeating: "x", count: 1000) + " ringside.fault=page"
        let q = try launchReady(c)
        try q.waitForSerial("cmdline: ", timeout: 10)
        let log = readTextFile(q.run.serialLog)
        XCTAssertTrue(log.contains("cmdline: ignored: the command line has no NUL within the cap"), log)
        XCTAssertFalse(log.contains("ringside.pad="), "a cut command line was used:\n\(log)")
    }

    /// The CLI end to end: `ringside run --headless --timeout` streams the serial log and exits 0.
    func testRunHeadlessStreamsSerialAndStopsOnTimeout() throws {
        guard let kernel = requireKernel() else { return }
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found; build it with `swift build`") }
        let r = try runCommand([bin, "run", "--headless", "--kernel", kernel, "--timeout", "4",
                                "--udp-port", String(try freePort(udp: true)), "--http-port", String(try freePort(udp: false))], timeout: 40)
        XCTAssertEqual(r.status, .exited(0), r.output)
        XCTAssertTrue(r.output.contains("ringside: ready"), r.output)
    }

    /// QEMU dying mid-run: the CLI says so and exits non-zero, and leaves no QEMU behind.
    func testRunReportsQEMUDeath() throws {
        guard let kernel = requireKernel() else { return }
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found; build it with `swift build`") }
        let out = NSTemporaryDirectory() + "ringside-death-\(getpid()).out"
        defer { unlink(out) }
        let child = try ChildProcess(argv: [bin, "run", "--headless", "--kernel", kernel, "--timeout", "60",
                                            "--udp-port", String(try freePort(udp: true)), "--http-port", String(try freePort(udp: false))],
                                     outputFile: out)
        defer { if child.isRunning { child.signal(SIGKILL); child.wait(timeout: nil) } }
        let deadline = monotonicSeconds() + 30
        while !readTextFile(out).contains("ringside: ready") && monotonicSeconds() < deadline && child.isRunning { usleep(20_000) }
        guard let qemuPid = readTextFile(out).firstMatch(of: /QEMU pid (\d+)/).flatMap({ pid_t($0.1) }) else {
            return XCTFail("no QEMU pid in output: \(readTextFile(out))")
        }
        kill(qemuPid, SIGKILL)
        guard let status = child.wait(timeout: 10) else { return XCTFail("ringside did not exit after QEMU died") }
        XCTAssertNotEqual(status, .exited(0))
        XCTAssertTrue(readTextFile(out).contains("QEMU ended unexpectedly"), readTextFile(out))
        XCTAssertNotEqual(kill(qemuPid, 0), 0, "QEMU still exists")
    }
}
