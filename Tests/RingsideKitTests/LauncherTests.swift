import Foundation
import XCTest
@testable import RingsideKit

/// The launcher itself: argument lists, validation, QMP, clean stop. Uses real QEMU but no kernel
/// (QEMU started paused with `-S`), so these run before the kernel exists.
final class LauncherTests: QEMUTestCase {
    func testArgumentListMatchesTheDocumentedLine() {
        var c = QEMUConfiguration()
        c.kernel = "/k.elf"
        c.append = "ip=10.0.2.15/24 gw=10.0.2.2"
        c.network = .user(udpPort: 5555, httpPort: 8080)
        c.rxQueueSize = 1024
        let args = c.arguments(serialLog: "/r/serial.log", consoleSocket: "/r/console.sock", qmpSocket: "/r/qmp.sock")
        XCTAssertEqual(args, [
            "-machine", "pc", "-m", "32", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-accel", "tcg",
            "-kernel", "/k.elf", "-append",
            ["ip=10.0.2.15/24 gw=10.0.2.2", QEMUConfiguration.environmentAppend].filter { !$0.isEmpty }.joined(separator: " "),
            "-chardev", "file,id=ser0,path=/r/serial.log", "-serial", "chardev:ser0",
            "-netdev", "user,id=n0,hostfwd=udp:127.0.0.1:5555-:7,hostfwd=tcp:127.0.0.1:8080-:80",
            "-device", "virtio-net-pci,netdev=n0,id=net0,disable-legacy=on,rx_queue_size=1024",
            "-device", "virtio-serial-pci,id=vser,disable-legacy=on",
            "-chardev", "socket,id=con0c,path=/r/console.sock,server=on,wait=off",
            "-device", "virtconsole,chardev=con0c,id=con0",
            "-qmp", "unix:/r/qmp.sock,server=on,wait=off",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ])
    }

    func testFirmwareChoice() {
        let installed: (String) -> Bool = { $0 == Firmware.qbootPath || $0 == "/fw.bin" }
        XCTAssertEqual(try Firmware.resolve("qboot", fileExists: installed).get(), Firmware.qbootPath)
        XCTAssertNil(try Firmware.resolve("seabios", fileExists: installed).get())
        XCTAssertEqual(try Firmware.resolve("/fw.bin", fileExists: installed).get(), "/fw.bin")
        XCTAssertThrowsError(try Firmware.resolve("qboot", fileExists: { _ in false }).get())
        XCTAssertThrowsError(try Firmware.resolve("/nope.bin", fileExists: installed).get())
        var c = QEMUConfiguration()
        c.firmware = Firmware.qbootPath
        let args = c.arguments(serialLog: "s", consoleSocket: "c", qmpSocket: "q")
        XCTAssertTrue(args.joined(separator: " ").contains("-accel tcg -bios \(Firmware.qbootPath)"))
    }

    func testAcceleratorArguments() {
        XCTAssertEqual(Accelerator.tcg.qemuArguments(), ["-accel", "tcg"])
        XCTAssertEqual(Accelerator.kvm.qemuArguments(), ["-accel", "kvm", "-cpu", "kvm64"])
        XCTAssertEqual(Accelerator.auto.qemuArguments(kvmDevice: "/nonexistent/kvm"), ["-accel", "tcg"])
    }

    func testOtherNetdevsAndPcap() {
        XCTAssertEqual(NetworkBackend.socketUDP(peerPort: 1000, localPort: 1001).netdevArgument,
                       "socket,id=n0,udp=127.0.0.1:1000,localaddr=127.0.0.1:1001")
        XCTAssertEqual(NetworkBackend.tap(ifname: "rstap0").netdevArgument, "tap,id=n0,ifname=rstap0,script=no,downscript=no")
        var c = QEMUConfiguration()
        c.pcapFile = "/tmp/x.pcap"
        c.extraArguments = ["-S"]
        let args = c.arguments(serialLog: "s", consoleSocket: "c", qmpSocket: "q")
        XCTAssertTrue(args.joined(separator: " ").contains("-object filter-dump,id=f0,netdev=n0,file=/tmp/x.pcap"))
        XCTAssertEqual(args.last, "-S")
    }

    func testQueueSizeValidation() {
        for ok in [256, 512, 1024] { XCTAssertNil(QueueSizeLimits.problem(with: ok, name: "q")) }
        for bad in [0, 128, 255, 300, 2048] { XCTAssertNotNil(QueueSizeLimits.problem(with: bad, name: "q"), "\(bad)") }
    }

    func testKernelLocatorWalksUpFromTheCurrentDirectory() {
        let candidates = KernelLocator.candidates(currentDirectory: "/a/b", executablePath: "/x/.build/debug/ringside")
        XCTAssertEqual(Array(candidates.prefix(3)), ["/a/b/kernel/build/ringside.elf", "/a/kernel/build/ringside.elf", "/kernel/build/ringside.elf"])
        XCTAssertTrue(candidates.contains("/x/kernel/build/ringside.elf"))
    }

    func testRunDirectoryIsPrivate() throws {
        let run = try RunDirectory.create()
        defer { run.remove() }
        var st = stat()
        XCTAssertEqual(stat(run.path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        XCTAssertTrue((run.path as NSString).lastPathComponent.hasPrefix("ringside-\(getpid())-"))
    }

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

    func testQemuArgsCommandPrintsConsoleAndQMP() throws {
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found next to the test bundle; build it with `swift build`") }
        let r = try runCommand([bin, "qemu-args", "--only-channels", "--console-socket", "/tmp/c.sock", "--qmp-socket", "/tmp/q.sock"])
        XCTAssertEqual(r.status, .exited(0))
        XCTAssertEqual(r.output.trimmingCharacters(in: .whitespacesAndNewlines),
                       "-device virtio-serial-pci,id=vser,disable-legacy=on -chardev socket,id=con0c,path=/tmp/c.sock,server=on,wait=off -device virtconsole,chardev=con0c,id=con0 -qmp unix:/tmp/q.sock,server=on,wait=off")
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

    func testRunValidatesOptions() throws {
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found next to the test bundle; build it with `swift build`") }
        for bad in [["--rx-queue-size", "300"], ["--tx-queue-size", "2048"], ["--udp-port", "70000"], ["--memory", "0"]] {
            let r = try runCommand([bin, "run", "--headless", "--kernel", "/nonexistent"] + bad)
            XCTAssertNotEqual(r.status, .exited(0), "\(bad) accepted")
            XCTAssertTrue(r.output.contains("Error"), "\(bad): \(r.output)")
        }
    }
}

/// The `ringside` executable built beside the test bundle, if there is one.
func ringsideBinary() -> String? {
    var dir = (KernelLocator.executablePath() ?? "") as NSString
    // The XCTest runner is .build/<config>/RingsidePackageTests.xctest (a file on Linux).
    for _ in 0..<3 {
        dir = dir.deletingLastPathComponent as NSString
        let candidate = dir.appendingPathComponent("ringside")
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    let fallback = repositoryRoot + "/.build/debug/ringside"
    return FileManager.default.isExecutableFile(atPath: fallback) ? fallback : nil
}
