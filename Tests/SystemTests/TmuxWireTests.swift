import Foundation
import XCTest
import RingsideKit
import Wire

/// The real `ringside attach` in tmux on a real guest: the ring-contents pane, the features
/// panel, exact counters on the selected queue, step reports in the log, and `w` writing pcap
/// records stamped with the frame's arrival (read back with tshark).
final class TmuxWireTests: TmuxGuestTestCase {
    /// The net0.rx stats line (the one after the selected panel's title).
    func rxStats(_ screen: String) -> String {
        let lines = screen.components(separatedBy: "\n")
        guard let i = lines.firstIndex(where: { $0.contains("net0.rx") && $0.contains("256") }) else { return "" }
        return lines[(i + 1)...].first { $0.contains("pkts") } ?? ""
    }

    func testRingPaneFeaturesExactCountersStepReportAndPcap() throws {
        let q = try startGuest(requiring: ["tshark"])
        let pcapDir = NSTemporaryDirectory() + "rs-wire-pcap-\(getpid())"
        try FileManager.default.createDirectory(atPath: pcapDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: pcapDir) }
        let tmux = try TmuxSession(
            ringside: "attach \(q.run.consoleSocket) --pcap-dir \(pcapDir)",
            width: 80, height: 24)

        // 80x24: the ring pane beside the descriptor table, compact: flags and the event words.
        // The kernel negotiates EVENT_IDX unless `make test`'s second round turns it off.
        let eventIdx = !QEMUConfiguration.environmentAppend.contains("virtio.event_idx=off")
        // Packed rings (RINGSIDE_PACKED=1) show their two event suppression structures instead
        // of the split ring's flags words (virtio 1.2 §2.8.10).
        let packed = QEMUConfiguration.environmentPacked
        tmux.waitFor("ring pane at 80x24") {
            $0.contains("rings net0.rx · 16/256 slots")
                && $0.contains(packed ? "driver evt " : eventIdx ? "A:0 U:0 ue " : "A:0 U:NO_NOTIFY no EVENT_IDX")
        }

        // F: features by spec name and the status byte decoded, per device; any key closes.
        try tmux.send("F")
        var screen = tmux.waitFor("features panel") {
            $0.contains("Features and device status") && $0.contains("con0 (virtio-console)")
        }
        for needle in ["net0 (virtio-net)", "status 0x0f", "ACKNOWLEDGE|DRIVER|DRIVER_OK|", "FEATURES_OK",
                       "+ VIRTIO_NET_F_MAC", "+ VIRTIO_NET_F_STATUS", "+ VIRTIO_F_VERSION_1",
                       eventIdx ? "+ VIRTIO_F_RING_EVENT_IDX" : "o VIRTIO_F_RING_EVENT_IDX",
                       "o VIRTIO_CONSOLE_F_MULTIPORT",
                       packed ? (eventIdx ? "accepted 0x0000000520010020" : "accepted 0x0000000500010020")
                           : eventIdx ? "accepted 0x0000000120010020" : "accepted 0x0000000100010020"]
                       + (packed ? ["+ VIRTIO_F_RING_PACKED"] : []) {
            XCTAssertTrue(screen.contains(needle), "features panel lacks \(needle):\n\(screen)")
        }
        try tmux.send("Escape")
        tmux.waitFor("features panel closed") { !$0.contains("Features and device status") }

        // Over a thousand packets: the selected queue's counter is exact, not "1.1k".
        let client = try UDPSocket()
        var echoed = 0
        for i in 0..<1100 {
            try? client.send(Array("count-\(i)".utf8), toPort: udpPort)
            if client.receive(timeout: 1) != nil { echoed += 1 }
        }
        XCTAssertGreaterThan(echoed, 1000)
        screen = tmux.waitFor("exact pkts above 1000") { s in
            guard let m = self.rxStats(s).firstMatch(of: #/pkts (\d+) /#) else { return false }
            return (Int(m.1) ?? 0) > 1000
        }
        XCTAssertNil(rxStats(screen).firstMatch(of: /pkts [\d.]+k/), rxStats(screen))

        // Pause, three datagrams of known sizes, step 3: the log lists the three used
        // elements (ids, lengths) and the counter moves by exactly 3.
        try tmux.send("Space")
        tmux.waitFor("PAUSED") { $0.contains("PAUSED") }
        let sizes = [21, 22, 23]
        for n in sizes { try client.send([UInt8](repeating: 0x41, count: n), toPort: udpPort) }
        screen = tmux.waitFor("pend 3") { self.rxStats($0).contains("pend 3") }
        guard let beforeMatch = rxStats(screen).firstMatch(of: #/pkts (\d+) /#), let before = Int(beforeMatch.1) else {
            return XCTFail("no exact pkts on net0.rx: \(rxStats(screen))")
        }
        // The pending elements in the ring pane: L on the first, with its used length.
        if packed {
            // At 80x24 the packed pane has no room for slot rows: the driver's used position L
            // is 3 slots behind the device's U (each datagram one slot).
            let m = screen.firstMatch(of: /A \d+w[01] U (\d+)w([01]) L (\d+)w([01])/)
            let distance = m.map { wireRingDistance(from: UInt16($0.3)! | UInt16($0.4)! << 15, to: UInt16($0.1)! | UInt16($0.2)! << 15,
                                                    size: 256, format: .packed) }
            XCTAssertEqual(distance, 3, "three used slots between L and U in the ring pane:\n\(screen)")
        } else {
            XCTAssertTrue(screen.contains(/L[UI]* +\d+→\d+ +75\b/), "the next used element (75 bytes) marked L:\n\(screen)")
        }
        try tmux.send("S")
        try tmux.send("3", "Enter")
        tmux.waitFor("pkts + 3, exactly") { s in
            guard let m = self.rxStats(s).firstMatch(of: #/pkts (\d+) /#) else { return false }
            return Int(m.1) == before + 3 && s.contains("stepped 3")
        }
        // The report precedes the reply in the log: filter the log to see it at 80x24.
        try tmux.send("/")
        try tmux.send("-l", "took")
        try tmux.send("Enter")
        let took = packed ? "net0.rx took 3 used from " : "net0.rx took used["
        // The report may be on screen unfiltered too: wait for the filter's own note, or the
        // "cleared" wait below passes on a screen from before the filter was ever applied.
        screen = tmux.waitFor("step report in the filtered log") { $0.contains(took) && $0.contains("(filter: took)") }
        try tmux.send("/")
        try tmux.send("BSpace", "BSpace", "BSpace", "BSpace", "Enter")
        tmux.waitFor("log filter cleared") { !$0.contains("(filter: took)") }
        let report = screen.components(separatedBy: "\n").first { $0.contains(took) } ?? ""
        if packed {
            XCTAssertNotNil(report.firstMatch(of: /took 3 used from \d+w[01]: desc \d+ 75 B, desc \d+ 76 B, desc \d+ 77 B/), report)
        } else {
            XCTAssertNotNil(report.firstMatch(of: /took used\[\d+…\d+\]: desc \d+ 75 B, desc \d+ 76 B, desc \d+ 77 B/), report)
        }
        for _ in sizes { XCTAssertNotNil(client.receive(timeout: 3), "each stepped datagram echoed") }

        // A frame waits 2 s in the used ring; d dumps it, w writes it: the pcap record's time is
        // its arrival, not the dump.
        let sentAt = Date().timeIntervalSince1970
        try client.send(Array("pcap-arrival".utf8), toPort: udpPort)
        tmux.waitFor("pend 1") { self.rxStats($0).contains("pend 1") }
        sleep(2)
        try tmux.send("d")
        tmux.waitFor("dump shown") { $0.contains("next · 1/1") }
        try tmux.send("w")
        screen = tmux.waitFor("pcap written") { $0.contains("wrote 1 frame to ") }
        XCTAssertFalse(screen.contains("no arrival time"), screen)
        let files = (try FileManager.default.contentsOfDirectory(atPath: pcapDir)).filter { $0.hasSuffix(".pcapng") }
        XCTAssertEqual(files.count, 1)
        let read = try runTshark(pcapDir + "/" + (files.first ?? "none"))
        let comment = try runTshark(pcapDir + "/" + (files.first ?? "none"), fields: ["frame.interface_name", "frame.comment"])
        let positions = packed ? #"driver \d+/w[01] device \d+/w[01]"# : #"avail \d+ used \d+"#
        XCTAssertNotNil(comment.range(of: #"^net0\.rx\tdesc \d+ "# + positions + #" hdr flags=0 gso=0 hdr_len=0 "#,
                                      options: .regularExpression), comment)
        let stamp = Double(read.split(separator: "\t").first ?? "") ?? 0
        XCTAssertTrue(read.hasSuffix("\t7"), "UDP to port 7: \(read)")
        XCTAssertTrue(stamp > sentAt - 0.5 && stamp < sentAt + 1.0, "record time \(stamp) is the arrival (sent \(sentAt)), \(read)")

        // Bigger: the full pane, with its headers, flags by name and the event words' absence said.
        try tmux.resize(width: 160, height: 50)
        // (A packed ring's pane: its two event suppression structures and a row per slot.)
        screen = tmux.waitFor("full ring pane") {
            packed ? $0.contains("slot  A U    id   len state") && $0.contains("device evt ") : $0.contains("avail ring") && $0.contains("used ring")
        }
        let flagNeedles = packed ? ["driver evt ", "device evt ", "slot  A U    id   len state"]
            : eventIdx ? ["used.flags  0", "used_event ", " avail_event "]
            : ["used.flags  NO_NOTIFY", "no EVENT_IDX: no used/avail_event"]
        for needle in (packed ? [] : ["avail.flags 0", "slot→id"]) + flagNeedles {
            XCTAssertTrue(screen.contains(needle), "ring pane lacks \(needle):\n\(screen)")
        }
        try tmux.send("Space")
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(), 0)
    }

    /// `tshark -r FILE -T fields -e frame.time_epoch -e udp.dstport` (last line).
    func runTshark(_ path: String, fields: [String] = ["frame.time_epoch", "udp.dstport"]) throws -> String {
        let out = NSTemporaryDirectory() + "rs-tshark-\(getpid()).out"
        defer { unlink(out) }
        let child = try ChildProcess(argv: ["tshark", "-r", path, "-T", "fields"] + fields.flatMap { ["-e", $0] },
                                     outputFile: out)
        XCTAssertEqual(child.wait(timeout: 30), .exited(0))
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").last.map(String.init) ?? ""
    }
}
