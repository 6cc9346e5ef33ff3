import Foundation
import XCTest
@testable import RingsideKit

/// The launcher against real QEMU (started paused with `-S`, no kernel, except where a test boots the
/// printed command line): QMP, clean stop, QEMU dying, QEMU refusing its command line.
final class LauncherTests: QEMUTestCase {
    /// QMP works, the device really has the queue sizes we asked for (QEMU 7.2 caps TX at 256 with a
    /// user netdev), and stop() reaps QEMU and removes the run directory.
    func testQMPQueueSizesAndCleanStop() throws {
        guard findExecutable("qemu-system-x86_64") != nil else { return XCTFail("qemu-system-x86_64 is not installed") }
        var c = try baseConfiguration(kernel: nil)
        c.rxQueueSize = 1024
        c.txQueueSize = 1024
        c.extraArguments = ["-S"]
        let q = try launch(c)
        let qmp = try q.qmpClient()
        let path = "/machine/peripheral/net0/virtio-backend"
        let rx = try qmp.execute("x-query-virtio-queue-status", arguments: ["path": path, "queue": 0]) as? [String: Any]
        let tx = try qmp.execute("x-query-virtio-queue-status", arguments: ["path": path, "queue": 1]) as? [String: Any]
        XCTAssertEqual(rx?["vring-num"] as? Int, 1024)
        XCTAssertEqual(tx?["vring-num"] as? Int, QueueSizeLimits.txMaximumWithoutVhostUser)
        XCTAssertThrowsError(try qmp.execute("no-such-command"))
        let status = q.stop()
        XCTAssertEqual(status, .exited(0))
        XCTAssertEqual(q.outcome(of: status), .stoppedByUs)
        XCTAssertFalse(FileManager.default.fileExists(atPath: q.run.path), "run directory left behind")
        var s: Int32 = 0
        XCTAssertEqual(waitpid(q.process.pid, &s, WNOHANG), -1, "QEMU not reaped")
    }

    /// QEMU killed from outside: reported as an unexpected end, never as success.
    func testQEMUDyingIsReported() throws {
        guard findExecutable("qemu-system-x86_64") != nil else { return XCTFail("qemu-system-x86_64 is not installed") }
        var c = try baseConfiguration(kernel: nil)
        c.extraArguments = ["-S"]
        let q = try launch(c)
        try q.waitUntilStarted()
        kill(q.process.pid, SIGKILL)
        guard let status = q.process.wait(timeout: 10) else { return XCTFail("QEMU did not die") }
        XCTAssertEqual(status, .signaled(SIGKILL))
        XCTAssertEqual(q.outcome(of: status), .qemuEnded(.signaled(SIGKILL)))
        XCTAssertTrue(q.explain(status).contains("unexpectedly"))
    }

    /// QEMU rejecting its command line (here: a forwarded port already taken) comes back with QEMU's words.
    func testPortInUseIsReportedClearly() throws {
        guard findExecutable("qemu-system-x86_64") != nil else { return XCTFail("qemu-system-x86_64 is not installed") }
        let holder = try UDPSocket()
        var c = QEMUConfiguration()
        c.network = .user(udpPort: holder.port, httpPort: try freePort(udp: false))
        c.extraArguments = ["-S"]
        let q = try launch(c)
        XCTAssertThrowsError(try q.waitUntilStarted()) { error in
            XCTAssertTrue("\(error)".contains("host forwarding"), "\(error)")
        }
    }

    /// `ringside qemu-args` prints a line that runs as printed: the kernel boots, the telemetry
    /// channel answers, and QMP finds the net device at net0.
    func testQemuArgsPrintsARunnableCommandLine() throws {
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found next to the test bundle; build it with `swift build`") }
        guard let kernel = requireKernel() else { return }
        let dir = NSTemporaryDirectory() + "rs-qargs-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (console, qmp) = (dir + "/c.sock", dir + "/q.sock")
        let udp = try freePort(udp: true), http = try freePort(udp: false)
        let r = try runCommand([bin, "qemu-args", "--lines", "--kernel", kernel, "--console-socket", console, "--qmp-socket", qmp,
                                "--udp-port", String(udp), "--http-port", String(http)])
        XCTAssertEqual(r.status, .exited(0), r.output)
        let argv = r.output.split(separator: "\n").map(String.init)
        XCTAssertEqual(argv.first, "qemu-system-x86_64")
        let line = argv.joined(separator: " ")
        for piece in ["-kernel \(kernel)", "virtio-net-pci,netdev=n0,id=net0", "virtconsole", "-qmp unix:\(qmp)", "-serial stdio"] {
            XCTAssertTrue(line.contains(piece), "\(piece) in \(line)")
        }
        let log = dir + "/out.log"
        let qemu = try ChildProcess(argv: argv, outputFile: log)
        defer { qemu.signal(SIGKILL); qemu.wait(timeout: nil) }
        let deadline = monotonicSeconds() + 30
        while !readTextFile(log).contains("ringside: ready") && monotonicSeconds() < deadline { usleep(50_000) }
        XCTAssertTrue(readTextFile(log).contains("ringside: ready"), "the kernel boots from the printed line: \(readTextFile(log))")
        let t = try TelemetryConnection(path: console, timeout: 10)
        XCTAssertNotNil(t.nextCompleteSnapshot(timeout: 10), "telemetry on the console socket")
        let poller = DeviceTruthPoller(socketPath: qmp)
        poller.start()
        defer { poller.stop() }
        while monotonicSeconds() < deadline {
            if case .sample = poller.latest { return }
            usleep(50_000)
        }
        XCTFail("QMP device view: \(poller.latest)")
    }
}
