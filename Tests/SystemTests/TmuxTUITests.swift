import Foundation
import XCTest
import RingsideKit

/// The real `ringside attach` in a real terminal (tmux) on a real QEMU running the kernel.
/// Fails (never skips) when tmux, QEMU, the kernel or the binary is missing.
final class TmuxTUITests: TmuxGuestTestCase {
    func attach(_ q: QEMUInstance, width: Int = 120, height: Int = 40) throws -> TmuxSession {
        let cmd = "attach \(q.run.consoleSocket)"
        return try TmuxSession(ringside: cmd, width: width, height: height)
    }

    func testWatchPauseStepDumpResizeHelpQuit() throws {
        let q = try startGuest()
        let tmux = try attach(q)
        // Watch: both net queues shown, connected, data fresh.
        tmux.waitFor("net0.rx and net0.tx panels") { $0.contains("net0.rx") && $0.contains("net0.tx") && $0.contains("connected") }
        let client = try UDPSocket()
        waitForEcho(client)

        // Counters move under UDP traffic.
        // The count before, from a capture that has it: a single capture may predate the stats
        // line (or catch a redraw), and a missing count (-1) would let any 19 packets pass.
        var screen = tmux.waitFor("net0.rx packet counter") { number(after: "pkts", inLineAfter: "▶1 net0.rx", of: $0) != nil }
        guard let before = number(after: "pkts", inLineAfter: "▶1 net0.rx", of: screen) else { return }
        for i in 0..<20 {
            try? client.send(Array("traffic-\(i)".utf8), toPort: udpPort)
            _ = client.receive(timeout: 1)
        }
        screen = tmux.waitFor("net0.rx packet counter to grow") {
            (number(after: "pkts", inLineAfter: "▶1 net0.rx", of: $0) ?? -1) >= before + 20
        }
        XCTAssertTrue(screen.contains("pkt/s"))

        // Space pauses net0.rx: PAUSED shown, datagrams are not echoed.
        try tmux.send("Space")
        tmux.waitFor("PAUSED") { $0.contains("PAUSED") }
        let payloads = ["STEP-ONE-abcdefgh", "STEP-TWO-ijklmnop"].map { Array($0.utf8) }
        for p in payloads { try? client.send(p, toPort: udpPort) }
        XCTAssertNil(client.receive(timeout: 1.0), "a paused RX queue must not deliver")
        tmux.waitFor("pend 2 on net0.rx") { $0.contains("pend 2") }

        // s steps exactly one: one echo arrives, the next does not.
        try tmux.send("s")
        let first = client.receive(timeout: 5)
        XCTAssertEqual(first, payloads[0], "step delivers the oldest pending frame")
        XCTAssertNil(client.receive(timeout: 1.0), "one step, one packet")
        tmux.waitFor("pend 1 and the step in the log") { $0.contains("pend 1") && $0.contains("stepped 1") }

        // d dumps the next pending frame: the second datagram's payload bytes are on screen.
        try tmux.send("d")
        // Payload starts at 12 (virtio-net hdr) + 14 + 20 + 8 = 54 = 0x36: column 6 of line 0x30.
        let expected = hexdumpRun(Array(payloads[1].prefix(10)), startColumn: 6)
        screen = tmux.waitFor("payload hex \(expected)") { $0.contains(expected) }
        XCTAssertTrue(screen.contains("00000030"), screen)
        XCTAssertTrue(screen.contains("UDP:"), "decoded headers shown")

        // Space resumes: the rest is delivered.
        try tmux.send("Space")
        XCTAssertEqual(client.receive(timeout: 5), payloads[1])
        tmux.waitFor("PAUSED gone") { !$0.contains("PAUSED") }

        // ? shows help, Esc closes it.
        try tmux.send("?")
        tmux.waitFor("help overlay") { $0.contains("Ringside keys") && $0.contains("Shift-Tab") }
        try tmux.send("Escape")
        tmux.waitFor("help closed") { !$0.contains("Ringside keys") }

        // Resize: relayout at the new size, then too small, then back.
        try tmux.resize(width: 90, height: 30)
        screen = tmux.waitFor("relayout at 90x30") { s in
            let lines = s.components(separatedBy: "\n")
            return lines.count >= 30 && lines[29].contains("? help") && lines[2].hasPrefix("▶1 net0.rx")
        }
        for line in screen.components(separatedBy: "\n") {
            XCTAssertLessThanOrEqual(line.unicodeScalars.count, 90, "no line wider than the window: \(line)")
        }
        XCTAssertFalse(screen.contains("STEP-TWO") && screen.contains("Ringside keys"), "no leftovers")
        try tmux.resize(width: 70, height: 20)
        tmux.waitFor("too small message") { $0.contains("terminal too small (need 80x24)") && !$0.contains("net0.rx") }
        try tmux.resize(width: 120, height: 40)
        tmux.waitFor("full layout again") { $0.contains("net0.tx") && !$0.contains("too small") }

        // q quits with status 0 and gives the terminal back (cooked mode, echo on).
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(), 0)
        tmux.waitFor("shell output after the TUI") { $0.contains("TERMINAL-RESTORED") }
        let stty = (try? String(contentsOfFile: tmux.sttyFile, encoding: .utf8)) ?? ""
        XCTAssertTrue(stty.contains(" icanon") && !stty.contains("-icanon"), "canonical mode restored: \(stty)")
        XCTAssertTrue(stty.contains(" echo ") && !stty.contains("-echo "), "echo restored: \(stty)")
        XCTAssertTrue(q.process.isRunning, "attach leaves QEMU running")
    }

    func testDisconnectAndReconnect() throws {
        let q = try startGuest()
        let tmux = try attach(q, width: 80, height: 24)
        tmux.waitFor("connected at 80x24") { $0.contains("connected") && $0.contains("net0.rx") }
        // The real kernel's heap, in the header, at 80 columns.
        tmux.waitFor("the heap in the header") { $0.contains(/heap \d+\.\d\/\d+\.\dM/) }
        let socketPath = q.run.consoleSocket
        q.stop(grace: 2)
        tmux.waitFor("disconnected shown") { $0.contains("disconnected") }
        // A new guest on the same socket path: the view reconnects by itself.
        var c = q.configuration
        c.network = .user(udpPort: try freePort(udp: true), httpPort: try freePort(udp: false))
        let dir = (socketPath as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let args = c.arguments(serialLog: dir + "/serial.log", consoleSocket: socketPath, qmpSocket: dir + "/qmp.sock")
        let second = try ChildProcess(argv: [c.qemuBinary] + args, outputFile: dir + "/qemu2.log")
        defer {
            second.signal(SIGTERM)
            if second.wait(timeout: 5) == nil { second.signal(SIGKILL); second.wait(timeout: nil) }
            try? FileManager.default.removeItem(atPath: dir)
        }
        tmux.waitFor("reconnected", timeout: 20) { $0.contains("● connected") && $0.contains("up 0:00:0") }
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(), 0)
    }
}
