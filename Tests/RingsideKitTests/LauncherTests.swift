import Foundation
import RingsideTestSupport
import XCTest
@testable import RingsideKit

/// The launcher without QEMU: argument lists, validation, the run directory, and the `qemu-args`
/// and `run` commands refusing or printing without starting anything (SystemTests starts QEMU).
final class LauncherTests: XCTestCase {
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

    func testQemuArgsCommandPrintsConsoleAndQMP() throws {
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found next to the test bundle; build it with `swift build`") }
        let r = try runCommand([bin, "qemu-args", "--only-channels", "--console-socket", "/tmp/c.sock", "--qmp-socket", "/tmp/q.sock"])
        XCTAssertEqual(r.status, .exited(0))
        XCTAssertEqual(r.output.trimmingCharacters(in: .whitespacesAndNewlines),
                       "-device virtio-serial-pci,id=vser,disable-legacy=on -chardev socket,id=con0c,path=/tmp/c.sock,server=on,wait=off -device virtconsole,chardev=con0c,id=con0 -qmp unix:/tmp/q.sock,server=on,wait=off")
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
