import Foundation
@testable import RingsideKit
import RingsideTestSupport
import XCTest

/// `ringside capture` against the real kernel under QEMU, with QEMU's own `filter-dump` pcap of
/// the same run as the oracle: every frame on the wire that passed through the rings is in the
/// pcapng byte for byte, and what the capture says it missed is what the pcap shows it lacks.
final class CaptureTests: QEMUTestCase {
    /// A hub on `q`'s console at DIR/telemetry.sock, stopped when the test ends.
    func startHub(_ q: QEMUInstance, in dir: String, clientBacklogLimit: Int = 8 << 20) throws -> (hub: TelemetryHub, path: String) {
        let path = dir + "/telemetry.sock"
        let hub = try TelemetryHub(consolePath: q.run.consoleSocket, listenPath: path, clientBacklogLimit: clientBacklogLimit)
        hub.start()
        addTeardownBlock { hub.stop() }
        return (hub, path)
    }

    /// A hub with a watcher on it that has had a whole snapshot: what a capture runs beside when
    /// the TUI is open.
    func startHubWithWatcher(_ q: QEMUInstance, in dir: String) throws -> (hub: TelemetryHub, path: String, watcher: TelemetryConnection) {
        let (hub, path) = try startHub(q, in: dir)
        let watcher = try TelemetryConnection(path: path, timeout: 5)
        XCTAssertNotNil(watcher.nextCompleteSnapshot(timeout: 10), "a watcher on the hub")
        return (hub, path, watcher)
    }

    /// The guest's MAC: the Ethernet source of the frames its address (10.0.2.15) sends.
    func guestMAC(_ frames: [[UInt8]]) -> ArraySlice<UInt8>? {
        frames.first { $0.count >= 34 && $0[12] == 0x08 && $0[13] == 0x00 && Array($0[26..<30]) == [10, 0, 2, 15] }?[6..<12]
    }

    /// Marked UDP echoes through a hub (beside a watcher, as the TUI would be): every marked
    /// request and echo in filter-dump's pcap is in the pcapng byte for byte, the filter keeps
    /// only UDP port 7, tshark reads the file and shows each frame's ring context.
    func testMarkedEchoesThroughTheHubMatchFilterDumpByteForByte() throws {
        guard let kernel = requireKernel() else { return }
        let bin = try XCTUnwrap(ringsideBinary(), "build ringside first")
        let dir = try scratchDirectory("rs-capture")
        var c = try baseConfiguration(kernel: kernel)
        c.pcapFile = dir + "/wire.pcap"
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("user networking expected") }
        let (_, hubPath, watcher) = try startHubWithWatcher(q, in: dir)

        let out = dir + "/capture.pcapng", log = dir + "/capture.log"
        let capture = try startCapture(bin, [hubPath, "-o", out, "--filter", "udp and port 7"], log: log)
        let marker = Array("ringside-capture-mark-\(getpid())-".utf8)
        let udp = try UDPSocket()
        let count = 25
        for i in 0..<count {
            let payload = marker + Array("\(i)".utf8)
            XCTAssertTrue(try udp.echoes(payload, toPort: udpPort, tries: 10, timeout: 1), "datagram \(i) echoed")
        }
        usleep(300_000)
        capture.signal(SIGINT)
        XCTAssertEqual(capture.wait(timeout: 20), .exited(0), readTextFile(log))
        XCTAssertNotNil(watcher.nextCompleteSnapshot(timeout: 5), "the watcher beside the capture still gets snapshots")

        let wire = pcapFrames(Array(FileManager.default.contents(atPath: c.pcapFile!) ?? Data())).filter { contains($0, marker) }
        XCTAssertGreaterThanOrEqual(wire.count, 2 * count, "filter-dump saw every request and echo")
        let file = PcapngReading(path: out)
        XCTAssertEqual(file.problems, [])
        XCTAssertEqual(file.interfaces.map { $0.name }, ["net0.rx", "net0.tx"])
        XCTAssertEqual(file.interfaces.map { $0.tsresol }, [9, 9])
        XCTAssertEqual(file.interfaces.map { $0.linkType }, [1, 1])
        let captured = file.packets.map(\.data)
        for (i, frame) in wire.enumerated() {
            XCTAssertTrue(captured.contains(frame), "marked frame \(i) of the pcap (\(frame.count) bytes) is in the pcapng")
        }
        XCTAssertEqual(captured.filter { contains($0, marker) }.count, wire.count, "nothing marked in the pcapng that is not on the wire")
        // The filter kept UDP port 7 only (no ARP, nothing else).
        for p in file.packets {
            XCTAssertTrue(p.data.count > 37 && p.data[23] == 17 && (p.data[34...35] == [0, 7] || p.data[36...37] == [0, 7]),
                          "only UDP port 7 passes the filter")
            XCTAssertEqual(p.originalLength, p.data.count)
        }
        let summaryLog = readTextFile(log)
        XCTAssertEqual(captureSummary(summaryLog, "net0.rx")?.missed, 0, summaryLog)
        XCTAssertEqual(captureSummary(summaryLog, "net0.tx")?.missed, 0, summaryLog)
        XCTAssertEqual(captureSummary(summaryLog, "net0.rx")?.written, file.packets.filter { $0.interface == 0 }.count)
        XCTAssertEqual(file.statistics.map { $0.dropped }, [0, 0], "isb_ifdrop: nothing missed")
        XCTAssertEqual(file.statistics.map { $0.filterAccepted.map(Int.init) },
                       [file.packets.filter { $0.interface == 0 }.count, file.packets.filter { $0.interface == 1 }.count])

        // tshark reads it without complaint and shows each frame's ring context.
        let read = try runCommand(["tshark", "-r", out], timeout: 60)
        XCTAssertEqual(read.status, .exited(0), read.output)
        XCTAssertFalse(read.output.lowercased().contains("error") || read.output.contains("damaged"), read.output)
        XCTAssertGreaterThanOrEqual(read.output.split(separator: "\n").filter { $0.contains("ECHO") }.count, 2 * count, read.output)
        let comments = try runCommand(["tshark", "-r", out, "-T", "fields", "-e", "frame.comment"], timeout: 60)
        XCTAssertEqual(comments.status, .exited(0), comments.output)
        let lines = comments.output.split(separator: "\n").filter { $0.hasPrefix("desc ") }
        XCTAssertEqual(lines.count, file.packets.count, comments.output)
        // Split indices, or on packed rings the driver's and the device's positions with wrap counters.
        let indices = testRingFormat == .packed ? #"driver \d+/w[01] device \d+/w[01]"# : #"avail \d+ used \d+"#
        for line in lines {
            XCTAssertNotNil(line.range(of: #"^desc \d+ "# + indices + #" hdr flags=0 gso=0 hdr_len=0 gso_size=0 csum_start=0 csum_offset=0 num_buffers=\d+ nr \d+$"#,
                                       options: .regularExpression), String(line))
        }
    }

    /// A UDP flood through a hub that keeps only 64 KiB for a client that falls behind (the
    /// capture is stopped for most of it): what it misses is counted exactly. TX frames
    /// leave in ring order, so filter-dump's frames from the guest are the kernel's TX frames
    /// numbered 0, 1, 2, … from capture on: each captured frame `nr j` must be the pcap's frame
    /// j of the window, and the missed count the numbers that never arrived. RX frames the guest
    /// took are, in order, a subsequence of what QEMU received for it.
    func testFloodMissedFramesAreCountedExactly() throws {
        guard let kernel = requireKernel() else { return }
        let bin = try XCTUnwrap(ringsideBinary(), "build ringside first")
        let dir = try scratchDirectory("rs-capture")
        var c = try baseConfiguration(kernel: kernel)
        c.pcapFile = dir + "/wire.pcap"
        c.memoryMiB = 16   // the kernel's budget: capture must hold in it
        let q = try launchReady(c)
        guard case let .user(udpPort, httpPort) = c.network else { return XCTFail("user networking expected") }
        let (hub, hubPath) = try startHub(q, in: dir, clientBacklogLimit: 64 * 1024)
        let out = dir + "/capture.pcapng", log = dir + "/capture.log"
        let capture = try startCapture(bin, [hubPath, "-o", out], log: log)
        let udp = try UDPSocket()
        let marker = Array("ringside-flood-\(getpid())-".utf8)
        var sent = 0
        let start = monotonicSeconds()
        var frozen = false
        while monotonicSeconds() - start < 3 {
            try udp.send(marker + Array("\(sent)-".utf8) + [UInt8](repeating: 0x61, count: 48), toPort: udpPort)
            sent += 1
            // The capture stops reading after half a second, so the socket's buffer and then the
            // hub's 64 KiB for it overflow on any machine, however fast it would keep up.
            if !frozen && monotonicSeconds() - start >= 0.5 { capture.signal(SIGSTOP); frozen = true }
        }
        if frozen { capture.signal(SIGCONT) }
        // QEMU's user networking buffers the flood in its host socket and hands it to the guest
        // for a while after the sender stops: stop the capture only once the guest has gone
        // quiet, or echoes sent after `capture off` would count as frames the capture missed.
        var lastTx = -1, quietSince = monotonicSeconds()
        let quietDeadline = monotonicSeconds() + 20
        while monotonicSeconds() < quietDeadline {
            let metrics = (try? runCommand(["curl", "-sS", "http://127.0.0.1:\(httpPort)/metrics"], timeout: 10).output) ?? ""
            let tx = metrics.split(separator: "\n").first { $0.hasPrefix("ringside_udp_datagrams_out_total ") }
                .flatMap { Int($0.split(separator: " ").last ?? "") } ?? -2
            if tx != lastTx { lastTx = tx; quietSince = monotonicSeconds() }
            if monotonicSeconds() - quietSince >= 0.5 { break }
            usleep(100_000)
        }
        capture.signal(SIGINT)
        XCTAssertEqual(capture.wait(timeout: 30), .exited(0), readTextFile(log))
        let text = readTextFile(log)
        let tx = try XCTUnwrap(captureSummary(text, "net0.tx"), text)
        let rx = try XCTUnwrap(captureSummary(text, "net0.rx"), text)

        let wire = pcapFrames(Array(FileManager.default.contents(atPath: c.pcapFile!) ?? Data()))
        let mac = try XCTUnwrap(guestMAC(wire), "the guest's frames in the pcap")
        let wireTx = wire.filter { $0.count >= 12 && $0[6..<12] == mac }
        let wireRx = wire.filter { $0.count >= 12 && $0[6..<12] != mac }
        let file = PcapngReading(path: out)
        XCTAssertEqual(file.problems, [])
        let capturedTx = file.packets.filter { $0.interface == 1 }
        let capturedRx = file.packets.filter { $0.interface == 0 }
        XCTAssertEqual(capturedTx.count, tx.written)
        XCTAssertEqual(capturedRx.count, rx.written)

        // TX: the window starts where a captured frame sits in the pcap, less its number. The
        // frame must be one the wire holds once (an ARP reply can repeat byte for byte, and
        // anchoring on an earlier copy would shift the window).
        var occurrences: [[UInt8]: Int] = [:]
        for frame in wireTx { occurrences[frame, default: 0] += 1 }
        let first = try XCTUnwrap(capturedTx.first { occurrences[$0.data] == 1 }, "a captured TX frame unique on the wire")
        let firstNr = try XCTUnwrap(first.number, first.comment ?? "no comment")
        let at = try XCTUnwrap(wireTx.firstIndex(of: first.data), "the captured TX frame is on the wire")
        let base = at - firstNr
        XCTAssertGreaterThanOrEqual(base, 0)
        var mismatches = 0
        for p in capturedTx {
            guard let nr = p.number, base + nr < wireTx.count, wireTx[base + nr] == p.data else { mismatches += 1; continue }
        }
        XCTAssertEqual(mismatches, 0, "each captured TX frame nr j is the window's frame j on the wire")
        let numberedTx = wireTx.count - base
        XCTAssertEqual(tx.written + tx.missed, numberedTx, "TX frames written + missed = the guest's frames on the wire since capture began")
        XCTAssertEqual(file.statistics.first { $0.interface == 1 }?.dropped, UInt64(tx.missed), "isb_ifdrop")
        XCTAssertEqual(file.statistics.first { $0.interface == 1 }?.received, UInt64(numberedTx), "isb_ifrecv")

        // RX: in order, a subsequence of what QEMU handed the NIC; missed = numbers not seen.
        var cursor = 0
        var outOfOrder = 0
        for p in capturedRx {
            guard let i = wireRx[cursor...].firstIndex(of: p.data) else { outOfOrder += 1; continue }
            cursor = i + 1
        }
        XCTAssertEqual(outOfOrder, 0, "captured RX frames appear on the wire in the same order")
        let rxNumbered = try XCTUnwrap(file.statistics.first { $0.interface == 0 }?.received)
        let rxSeen = Set(capturedRx.compactMap(\.number))
        XCTAssertEqual(rx.missed, Int(rxNumbered) - rxSeen.count, "RX missed = numbers never seen")
        XCTAssertEqual(rxSeen.filter { $0 >= Int(rxNumbered) }.count, 0)
        XCTAssertGreaterThan(rx.missed + tx.missed, 0, "the flood overran the hub's 64 KiB for the capture: something was missed to count")
        XCTAssertGreaterThan(hub.framesDroppedForSlowClients, 0)
        XCTAssertTrue(q.process.isRunning, "the kernel held under -m 16: \(readTextFile(q.run.serialLog).suffix(500))")
        XCTAssertFalse(readTextFile(q.run.serialLog).contains("CPU exception"), String(readTextFile(q.run.serialLog).suffix(500)))
        print("capture flood: sent \(sent) datagrams in 3 s; net0.rx \(rx.written) written \(rx.missed) missed; "
              + "net0.tx \(tx.written) written \(tx.missed) missed (\(numberedTx) on the wire since capture on); \(text)")
    }

    /// A `ringside capture` through a hub killed with SIGKILL cannot turn capture off; the hub
    /// does when its last capturing client goes away: a watcher beside it sees captured frames
    /// under traffic before the kill and none after.
    func testHubTurnsCaptureOffWhenTheLastCapturingClientDies() throws {
        guard let kernel = requireKernel() else { return }
        let bin = try XCTUnwrap(ringsideBinary(), "build ringside first")
        let dir = try scratchDirectory("rs-capture")
        let c = try baseConfiguration(kernel: kernel)
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("user networking expected") }
        let (hub, hubPath, watcher) = try startHubWithWatcher(q, in: dir)
        let udp = try UDPSocket()
        /// Captured frames the watcher receives during `seconds` of UDP echoes.
        func capturedFrames(during seconds: Double) throws -> Int {
            var frames = 0
            let end = monotonicSeconds() + seconds
            while monotonicSeconds() < end {
                try udp.send(Array("ringside-hub-capture".utf8), toPort: udpPort)
                _ = udp.receive(timeout: 0.05)
                for item in watcher.receive(timeout: 0.02) {
                    if case .message(.capturedFrame, _) = item { frames += 1 }
                }
            }
            return frames
        }
        /// Echoes until half a second passes with no captured frame (at most 10 s): capture off
        /// takes effect when the kernel reads it, later than the hub sends it on a loaded host,
        /// and the watcher may still hold frames from before. A capture that stays on never
        /// goes quiet, and the count after this still says so.
        func drainUntilQuiet() throws {
            let deadline = monotonicSeconds() + 10
            while try capturedFrames(during: 0.5) > 0 && monotonicSeconds() < deadline {}
        }

        let capture = try startCapture(bin, [hubPath, "-o", dir + "/capture.pcapng"], log: dir + "/capture.log")
        XCTAssertGreaterThan(try capturedFrames(during: 1), 0, "capture is on while the capture runs")
        capture.signal(SIGKILL)
        XCTAssertNotNil(capture.wait(timeout: 10))
        let deadline = monotonicSeconds() + 5
        while hub.captureOffsSent == 0 && monotonicSeconds() < deadline { usleep(20_000) }
        XCTAssertEqual(hub.captureOffsSent, 1, "the hub sent capture off when its capturing client died")
        try drainUntilQuiet()   // frames sent before the kernel read the off
        XCTAssertEqual(try capturedFrames(during: 1.5), 0, "no captured frames once the hub turned capture off")

        // A client that turns capture off itself leaves the hub nothing to do.
        let second = try startCapture(bin, [hubPath, "-o", dir + "/second.pcapng"], log: dir + "/second.log")
        XCTAssertGreaterThan(try capturedFrames(during: 1), 0)
        second.signal(SIGINT)
        XCTAssertEqual(second.wait(timeout: 20), .exited(0), readTextFile(dir + "/second.log"))
        try drainUntilQuiet()   // frames the watcher had not read yet
        XCTAssertEqual(hub.captureOffsSent, 1)
        XCTAssertEqual(try capturedFrames(during: 1), 0)
    }
}
