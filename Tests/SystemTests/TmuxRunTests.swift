import Foundation
import XCTest
import RingsideKit

/// `ringside run` in tmux: QEMU that cannot start (item 2), where things are (`i`, item 9),
/// the user's QMP socket and `:hmp` (item 10), and the device view's honesty under a flood and
/// against a kernel that lies on purpose (item 1).
final class TmuxRunTests: XCTestCase {
    var extraProcessesToCheck: [Int32] = []

    func requireTools() -> Bool {
        for tool in ["tmux", "qemu-system-x86_64"] where findExecutable(tool) == nil {
            XCTFail("\(tool) is not installed"); return false
        }
        guard FileManager.default.isReadableFile(atPath: kernelPathForTests()),
              FileManager.default.isExecutableFile(atPath: ringsideBinary() ?? "") else {
            XCTFail("kernel or ringside binary missing"); return false
        }
        return true
    }

    func run(udp: UInt16, http: UInt16, append: String = "") throws -> TmuxSession {
        let appendArg = append.isEmpty ? "" : " --append \(append)"
        let cmd = "run --kernel \(kernelPathForTests()) --udp-port \(udp) --http-port \(http)\(appendArg) 2>\(NSTemporaryDirectory())ringside-run-\(udp).err"
        return try TmuxSession(ringside: cmd, width: 120, height: 40)
    }

    /// The value after `label` on the `i` overlay's line that has it.
    static func overlayValue(_ label: String, in screen: String) -> String? {
        for line in screen.components(separatedBy: "\n") {
            guard let r = line.range(of: "│ " + label) else { continue }
            let rest = line[r.upperBound...].drop { $0 == " " }
            return String(rest.prefix { $0 != " " && $0 != "│" })
        }
        return nil
    }

    static func processExists(_ pid: Int32) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

    // MARK: Item 2

    /// The UDP port is taken: QEMU exits at once. Within a second the TUI says so with QEMU's own
    /// error, QEMU is reaped (no zombie while the TUI runs), `q` exits non-zero and nothing is left.
    func testQEMUThatCannotStartIsReportedAtOnce() throws {
        guard requireTools() else { return }
        let blocker = try UDPSocket()
        let http = try freePort(udp: false)
        let started = monotonicSeconds()
        let tmux = try run(udp: blocker.port, http: http)
        var screen = tmux.waitFor("QEMU's error on screen", timeout: 10) {
            $0.contains("✖ QEMU exited") && $0.contains("Could not") && $0.contains("set up host forwarding rule")
        }
        let shownAfter = monotonicSeconds() - started
        print("QEMU death shown \(String(format: "%.2f", shownAfter)) s after starting ringside run:\n\(screen)")
        XCTAssertFalse(screen.contains("● connected"), screen)
        XCTAssertFalse(screen.contains("waiting for the kernel's hello"), screen)
        XCTAssertLessThan(shownAfter, 3, "QEMU dies within ~0.2 s of the start; the TUI must say so within a second")
        // QEMU is reaped already: its pid (from `i`) is gone while the TUI still runs.
        try tmux.send("i")
        screen = tmux.waitFor("info overlay") { $0.contains("Where things are") }
        guard let pidText = Self.overlayValue("QEMU pid", in: screen), let pid = Int32(pidText),
              let runDir = Self.overlayValue("run directory", in: screen) else { return XCTFail(screen) }
        XCTAssertFalse(Self.processExists(pid), "QEMU \(pid) is still there (a zombie?) while the TUI runs")
        try tmux.send("Escape")
        try tmux.send("q")
        let status = tmux.exitStatus(timeout: 15)
        XCTAssertNotNil(status)
        XCTAssertNotEqual(status, 0, "ringside run exits non-zero when QEMU failed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: runDir), "run directory \(runDir) left behind")
        let err = (try? String(contentsOfFile: NSTemporaryDirectory() + "ringside-run-\(blocker.port).err", encoding: .utf8)) ?? ""
        XCTAssertTrue(err.contains("Could not set up host forwarding rule"), err)
    }

    // MARK: Items 9 and 10

    func testInfoOverlayUserQMPAndHMP() throws {
        guard requireTools() else { return }
        let (udp, http) = (try freePort(udp: true), try freePort(udp: false))
        let tmux = try run(udp: udp, http: http)
        var screen = tmux.waitFor("TUI with the net queues", timeout: 30) { $0.contains("net0.rx") && $0.contains("dev: A") }
        // The header shows the ports.
        let header = screen.components(separatedBy: "\n").prefix(2).joined(separator: "\n")
        XCTAssertTrue(header.contains("udp :\(udp)") && header.contains("http :\(http)"), header)

        try tmux.send("i")
        screen = tmux.waitFor("where things are") { $0.contains("Where things are") && $0.contains("socat") }
        print("info overlay:\n\(screen)")
        guard let runDir = Self.overlayValue("run directory", in: screen) else { return XCTFail(screen) }
        XCTAssertTrue(runDir.contains("/ringside-"), runDir)
        XCTAssertEqual(Self.overlayValue("telemetry", in: screen), runDir + "/telemetry.sock")
        XCTAssertEqual(Self.overlayValue("QMP for you", in: screen), runDir + "/qmp-user.sock")
        XCTAssertEqual(Self.overlayValue("QMP (TUI)", in: screen), runDir + "/qmp.sock")
        XCTAssertTrue(screen.contains("127.0.0.1:\(udp) → guest :7"), screen)
        XCTAssertTrue(screen.contains("127.0.0.1:\(http) → guest :80"), screen)
        let ctlLine = "ringside ctl \(runDir)/telemetry.sock stats"
        XCTAssertTrue(screen.contains(ctlLine), screen)
        XCTAssertTrue(screen.contains("ringside watch \(runDir)/telemetry.sock --json"), screen)
        XCTAssertTrue(screen.contains("curl http://127.0.0.1:\(http)/"), screen)
        XCTAssertTrue(screen.contains("socat - UNIX-CONNECT:\(runDir)/qmp-user.sock"), screen)

        // The pasted lines work: ctl through the hub, the user's QMP while the TUI holds its own.
        let out = NSTemporaryDirectory() + "rs-ctl-\(udp).out"
        defer { unlink(out) }
        let ctl = try ChildProcess(argv: [try XCTUnwrap(ringsideBinary()), "ctl", runDir + "/telemetry.sock", "stats"], outputFile: out)
        XCTAssertEqual(ctl.wait(timeout: 15), .exited(0), readTextFile(out))
        XCTAssertTrue(readTextFile(out).contains("net0.rx"))
        let userQMP = try QMPClient(path: runDir + "/qmp-user.sock", timeout: 5)
        let status = try userQMP.execute("query-status") as? [String: Any]
        XCTAssertEqual(status?["status"] as? String, "running")
        userQMP.close()

        // Any key closes the overlay.
        try tmux.send("Escape")
        tmux.waitFor("overlay closed") { !$0.contains("Where things are") }

        // :hmp info pci: the answer in a pane; e expands it; Esc goes back and closes it.
        try tmux.send(":")
        try tmux.send("-l", "hmp info pci")
        try tmux.send("Enter")
        screen = tmux.waitFor("hmp answer pane") { $0.contains("hmp info pci ·") && $0.contains("Host bridge: PCI device 8086:1237") }
        print("hmp pane:\n\(screen)")
        XCTAssertTrue(screen.contains("more: e"), "the pane says there is more: \(screen)")
        try tmux.send("e")
        screen = tmux.waitFor("expanded hmp with the network device") {
            $0.contains("hmp info pci · lines 1-") && $0.contains("Ethernet controller: PCI device 1af4:1041")
        }
        print("hmp expanded:\n\(screen)")
        try tmux.send("Escape")
        tmux.waitFor("collapsed") { !$0.contains("· lines 1-") && $0.contains("hmp info pci ·") }
        try tmux.send("Escape")
        tmux.waitFor("pane closed") { !$0.contains("hmp info pci ·") }
        // A refused HMP command shows QEMU's error.
        try tmux.send(":")
        try tmux.send("-l", "hmp no-such-command")
        try tmux.send("Enter")
        tmux.waitFor("HMP's own error") { $0.contains("hmp no-such-command") && $0.contains("unknown command") }

        try tmux.send("q")
        let exit = tmux.exitStatus(timeout: 15)
        XCTAssertEqual(exit, 0, "ringside run's exit status after q; its terminal:\n\(tmux.capture())")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: runDir)) ?? []
        XCTAssertFalse(FileManager.default.fileExists(atPath: runDir), "run directory left behind, holding \(left)")
    }

    // MARK: Item 1

    /// The kernel reports net used_idx 5 ahead of the device: `≠ device` within a second of the
    /// device numbers appearing, with the reason in the log.
    func testMisreportedUsedIdxIsFlaggedWithinASecond() throws {
        guard requireTools() else { return }
        let (udp, http) = (try freePort(udp: true), try freePort(udp: false))
        let tmux = try run(udp: udp, http: http, append: "ringside.test.misreport-used=5")
        tmux.waitFor("device numbers", timeout: 30) { $0.contains("dev: A") }
        let seen = monotonicSeconds()
        let screen = tmux.waitFor("≠ device", timeout: 5) { $0.contains("≠ device") }
        let after = monotonicSeconds() - seen
        print("misreport flagged \(String(format: "%.2f", after)) s after the device numbers appeared:\n\(screen)")
        XCTAssertLessThanOrEqual(after, 1.0)
        // On a packed ring the reason names the device position (virtio 1.2 §2.8).
        let reason = QEMUConfiguration.environmentPacked ? "≠ device: device position" : "≠ device: used_idx"
        XCTAssertTrue(screen.contains(reason), "the reason is logged: \(screen)")
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(timeout: 15), 0)
    }

    /// 12 s of UDP at 5,000 datagrams/s: the device numbers move, `≠ device` never appears.
    func testNoDisagreementShownUnderAFlood() throws {
        guard requireTools() else { return }
        let (udp, http) = (try freePort(udp: true), try freePort(udp: false))
        let tmux = try run(udp: udp, http: http)
        tmux.waitFor("in step", timeout: 30) { TmuxDeviceTruthTests.inStep($0) }
        let flood = try UDPFlood(port: udp, rate: 5000)
        defer { flood.stop() }
        let end = monotonicSeconds() + 12
        var captures = 0
        var devUsed: Set<Int> = []
        while monotonicSeconds() < end {
            let screen = tmux.capture()
            captures += 1
            if screen.contains("≠") { XCTFail("false disagreement under the flood:\n\(screen)"); break }
            if let v = TmuxDeviceTruthTests.views("net0.rx", in: screen) { devUsed.insert(v.device[1]) }
            usleep(50_000)
        }
        flood.stop()
        print("flood in tmux: \(captures) captures, \(devUsed.count) distinct device used-idx values, sent \(flood.sent), echoed \(flood.echoed)")
        XCTAssertGreaterThan(devUsed.count, 10, "the device numbers moved")
        XCTAssertGreaterThan(flood.echoed, 12 * 1000)
        tmux.waitFor("in step after the flood") { TmuxDeviceTruthTests.inStep($0) }
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(timeout: 15), 0)
    }
}
