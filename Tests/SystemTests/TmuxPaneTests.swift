import Foundation
import XCTest
import RingsideKit

/// Expanded, scrollable panes, stale dumps and ring pointers in the real `ringside attach`, in
/// tmux, on a real QEMU running the kernel. Fails (never skips) when a tool is missing.
final class TmuxPaneTests: TmuxGuestTestCase {
    func attach(_ q: QEMUInstance, width: Int = 80, height: Int = 24, extra: String = "") throws -> TmuxSession {
        let cmd = "attach \(q.run.consoleSocket) --qmp \(q.run.qmpSocket) \(extra)"
        return try TmuxSession(ringside: cmd, width: width, height: height)
    }

    /// The ring of `queue` as drawn: the runs of ring glyphs and pointer letters on its panel.
    static func ring(_ queue: String, in screen: String) -> String {
        let lines = screen.components(separatedBy: "\n")
        let panel = lines.drop { !$0.contains(queue) }.prefix { !$0.contains("free ") }
        return panel.flatMap { $0.matches(of: /[·▒█▓LUAD]{12,}/).map { String($0.output) } }.joined()
    }

    // Item 5 (and 4): the whole 1337-byte frame and every decoded header line in the expanded
    // dump at 80x24; a device-owned RX buffer is labelled stale and kept out of the pcap.
    func testExpandedDumpOfA1337ByteFrameAndAStaleDump() throws {
        let q = try startGuest()
        let pcapDir = NSTemporaryDirectory() + "rs-pcap-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: pcapDir) }
        let tmux = try attach(q, extra: "--pcap-dir \(pcapDir)")
        tmux.waitFor("connected") { $0.contains("net0.rx") && $0.contains("● connected") }
        let client = try UDPSocket()
        waitForEcho(client)
        try tmux.send("Space")
        tmux.waitFor("PAUSED") { $0.contains("PAUSED") }
        // 14 + 20 + 8 + 1295 = a 1337-byte Ethernet frame; the RX buffer adds the 12-byte header.
        let payload = (0..<1295).map { UInt8(0x61 + $0 % 26) }
        try client.send(payload, toPort: udpPort)
        tmux.waitFor("pend 1") { $0.contains("pend 1") }
        try tmux.send("d")
        tmux.waitFor("the dump") { $0.contains("1349 bytes") }
        // → focuses the dump, e expands it: every decoded header line, whole.
        try tmux.send("Right")
        try tmux.send("e")
        // The full layout's dump pane shows these headers too: wait for the expanded view's own
        // footer, or a capture taken before the TUI has read `e` passes for the expanded dump.
        var screen = tmux.waitFor("expanded dump with every header") { s in
            s.contains("Esc/e back") && ["virtio-net hdr: flags", "Ethernet: 52:55:0a:00:02:02 → 52:54:00:12:34:56 type 0x0800 IPv4",
             "IPv4: 10.0.2.2 → 10.0.2.15 len 1323", "UDP:", "len 1303 (payload 1295 bytes)"].allSatisfy { s.contains($0) }
        }
        print("REPORT expanded dump of a 1337-byte frame, top (80x24):\n\(screen)")
        XCTAssertFalse(screen.contains("descriptors net0.rx"), "the dump has the screen:\n\(screen)")
        // End: the frame's last line (offset 0x540, bytes 1344-1348) and its end offset.
        try tmux.send("End")
        let tail = Array(payload.suffix(5))
        let lastLine = "00000540  " + hexdumpRun(tail, startColumn: 0)
        screen = tmux.waitFor("the last line of the frame") { $0.contains(lastLine) && $0.contains("00000545") }
        XCTAssertTrue(screen.contains("|" + String(decoding: tail, as: UTF8.self) + "|"), screen)
        print("REPORT expanded dump of a 1337-byte frame, End (80x24):\n\(screen)")
        // PgUp walks back a screen less one line at a time (19 of 20 rows): 72 → 53 → 34 → 15.
        for _ in 0..<3 { try tmux.send("PageUp") }
        tmux.waitFor("scrolled back") { $0.contains("15–34 of 91") && $0.contains("00000090  6d 6e") }
        try tmux.send("Up")
        tmux.waitFor("one line up: offset 0x80 at the top") { $0.contains("14–33 of 91") && $0.contains("\n00000080  ") }
        try tmux.send("Home")
        tmux.waitFor("top again") { $0.contains("virtio-net hdr: flags") && $0.contains("00000000  00 ") }
        // Esc returns to the full layout.
        try tmux.send("Escape")
        tmux.waitFor("layout back") { $0.contains("descriptors net0.rx") && $0.contains("net0.tx") }

        // Item 4: a descriptor the device owns (avail on RX) is stale, not a frame.
        try tmux.send("Left")          // focus the descriptors
        try tmux.send("End")           // cursor on descriptor 255
        screen = tmux.waitFor("cursor on 255") { $0.contains("d dumps desc 255") }
        let row = screen.components(separatedBy: "\n").first { $0.contains(" 255 ") && ($0.contains("avail") || $0.contains("used")) } ?? ""
        if !row.contains("avail") {
            try tmux.send("Up")
            tmux.waitFor("cursor on 254") { $0.contains("d dumps desc 254") }
        }
        try tmux.send("d")
        screen = tmux.waitFor("stale label") { $0.contains("device-owned: contents are stale") }
        print("REPORT stale dump (80x24):\n\(screen)")
        XCTAssertFalse(screen.contains("UDP:"), "a stale buffer is not decoded:\n\(screen)")
        try tmux.send("w")
        screen = tmux.waitFor("pcap written") { $0.contains("wrote 1 frame") }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: pcapDir)) ?? []
        XCTAssertEqual(files.count, 1, "\(files)")
        if let f = files.first {
            let out = pcapDir + "/tshark.out"
            let child = try ChildProcess(argv: ["tshark", "-r", pcapDir + "/" + f, "-T", "fields", "-e", "frame.len"], outputFile: out)
            XCTAssertEqual(child.wait(timeout: 30), .exited(0))
            let lengths = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.allSatisfy(\.isNumber) }
            XCTAssertEqual(lengths, ["1337"], "only the 1337-byte frame, not the stale buffer")
        }
        try tmux.send("Space")
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(), 0)
    }

    // Item 6: on the full 256-slot RX ring every pointer shows, the device's D too; with one
    // entry pending, L, U, A, D and the pending █ all show.
    func testEveryRingPointerIsVisible() throws {
        let q = try startGuest()
        let tmux = try attach(q)
        let client = try UDPSocket()
        waitForEcho(client)
        var screen = tmux.waitFor("L U A D together on net0.rx") { Self.ring("net0.rx", in: $0).contains("LUAD") }
        print("REPORT ring with all pointers in one cell (80x24):\n\(screen)")
        let idle = Self.ring("net0.rx", in: screen)
        XCTAssertFalse(idle.contains("█"), idle)
        XCTAssertEqual(idle.filter { "LUAD".contains($0) }.count, 4, idle)
        try tmux.send("Space")
        tmux.waitFor("PAUSED") { $0.contains("PAUSED") }
        try client.send(Array("one pending".utf8), toPort: udpPort)
        screen = tmux.waitFor("one pending: every pointer and the used slot") { s in
            let r = Self.ring("net0.rx", in: s)
            return s.contains("pend 1") && r.contains("█") && ["L", "U", "A", "D"].allSatisfy { r.contains($0) }
        }
        print("REPORT ring with one pending entry (80x24):\n\(screen)")
        // The legend is in ?.
        try tmux.send("?")
        try tmux.send("End")
        tmux.waitFor("legend in help") { $0.contains("device's last-avail-idx (QMP)") }
        try tmux.send("Escape")
        try tmux.send("Space")
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(), 0)
    }
}
