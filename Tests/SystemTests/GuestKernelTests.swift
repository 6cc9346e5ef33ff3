import Foundation
@testable import RingsideKit
import Wire
import XCTest

/// Ringside's own kernel watched the any-guest way: no telemetry, only QMP and its RAM file.
final class GuestKernelTests: QEMUTestCase {
    func testDumpLastRawFromMemoryEqualsTheFrameOnTheWire() throws {
        guard let kernel = requireKernel() else { return }
        let bin = try XCTUnwrap(ringsideBinary(), "build ringside first")
        let tag = "rs-kern-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let memory = "/dev/shm/\(tag).ram"
        let pcap = NSTemporaryDirectory() + tag + ".pcap"
        let qmp2 = NSTemporaryDirectory() + tag + ".qmp", qmp3 = NSTemporaryDirectory() + tag + ".qmp3"
        defer { unlink(memory); unlink(pcap); unlink(qmp2); unlink(qmp3) }
        var c = try baseConfiguration(kernel: kernel)
        c.pcapFile = pcap
        // QEMU serves one client per QMP socket: qmp2 for ctl, qmp3 for this test's session.
        c.extraArguments = QEMUGuestArguments.memory(path: memory, sizeMiB: c.memoryMiB)
            + QEMUConfiguration.qmpArguments(socket: qmp2) + QEMUConfiguration.qmpArguments(socket: qmp3)
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("user networking expected") }
        _ = try runEchoExchange(port: udpPort, count: 3, sizes: 16...64, seed: 3, perTryTimeout: 1)
        usleep(300_000)

        let pause = try runCommand([bin, "ctl", q.run.consoleSocket, "pause", "net0.rx"], timeout: 20)
        XCTAssertEqual(pause.status, .exited(0), pause.output)
        let out = NSTemporaryDirectory() + tag + ".raw"
        defer { unlink(out) }
        func ctlDumpRaw(wait: Double) throws -> ChildProcess {
            try ChildProcess(argv: ["/bin/sh", "-c", "exec \"$0\" ctl --qmp \"$1\" --memory \"$2\" dump net0.rx --last --raw --wait \"$4\" > \"$3\"",
                                    bin, qmp2, memory, out, String(wait)], outputFile: out + ".err")
        }
        defer { unlink(out + ".err") }
        // On packed rings a used slot's buffer is known only to a watcher that saw it offered
        // (docs/any-guest.md "Packed rings"): ctl samples from before the datagram is sent.
        let packed = testRingFormat == .packed
        let early = packed ? try ctlDumpRaw(wait: 20) : nil
        if packed { sleep(1) }
        let session = try GuestSession(qmpPath: qmp3, memoryPath: memory)
        let before = try XCTUnwrap(session.sample(forceQMP: true).queue(named: "net0.rx")?.ring)
        let marker = Array("ringside any-guest marked datagram \(tag)".utf8)
        let udp = try UDPSocket()
        try udp.send(marker, toPort: udpPort)
        // The device puts it in the used ring; the paused kernel leaves it there.
        let deadline = monotonicSeconds() + 10
        var ring = before
        while monotonicSeconds() < deadline {
            if let r = session.sample(forceQMP: true).queue(named: "net0.rx")?.ring, r.usedIdx != before.usedIdx { ring = r; break }
            usleep(50_000)
        }
        session.close()
        XCTAssertEqual(wireRingDistance(from: before.usedIdx, to: ring.usedIdx, size: UInt16(ring.addresses.size), format: testRingFormat), 1,
                       "one element pending in net0.rx's used ring")
        XCTAssertNil(udp.receive(timeout: 0.3), "paused: no echo")

        let dump = try early ?? ctlDumpRaw(wait: 0)
        XCTAssertEqual(dump.wait(timeout: 30), .exited(0), readTextFile(out + ".err"))
        let raw = Array(FileManager.default.contents(atPath: out) ?? Data())
        let wire = pcapFrames(Array(FileManager.default.contents(atPath: pcap) ?? Data()))
        let inbound = try XCTUnwrap(wire.last { frame in frame.count >= marker.count && (0...(frame.count - marker.count)).contains { Array(frame[$0..<($0 + marker.count)]) == marker } },
                                    "the marked datagram in filter-dump's pcap (\(wire.count) frames)")
        XCTAssertEqual(raw, inbound, "dump --last --raw from guest memory == the frame on the wire")

        // Resume: the echo comes back, and the hexdump form decodes it.
        let text = try runCommand([bin, "ctl", "--qmp", qmp2, "--memory", memory, "dump", "net0.rx", "--last"], timeout: 30)
        if packed {
            XCTAssertTrue(text.output.contains("not seen offered since sample 1"), "a one-shot dump of a used packed slot: \(text.output)")
        } else {
            XCTAssertTrue(text.output.contains("UDP") && text.output.contains("dst_port: 7"), text.output)
        }
        _ = try runCommand([bin, "ctl", q.run.consoleSocket, "resume", "net0.rx"], timeout: 20)
        XCTAssertEqual(udp.receive(timeout: 5), marker)
    }

    /// The lost-notification detector on the memory view of a guest (here our kernel, whose
    /// `inject net0.tx nokick` withholds a kick on demand): `watch --qmp --memory --json` raises
    /// KICK LOST? on net0.tx from what guest memory holds (avail.idx past avail_event, used.idx
    /// not moving), with nothing before the fault, and clears it when `kick` lets the echo out.
    func testWatchFromMemoryRaisesKickLostForAWithheldKickAndClearsItOnKick() throws {
        guard let kernel = requireKernel() else { return }
        let bin = try XCTUnwrap(ringsideBinary(), "build ringside first")
        let tag = "rs-kick-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let memory = "/dev/shm/\(tag).ram"
        let qmp2 = NSTemporaryDirectory() + tag + ".qmp"
        let out = NSTemporaryDirectory() + tag + ".jsonl"
        defer { unlink(memory); unlink(qmp2); unlink(out) }
        var c = try baseConfiguration(kernel: kernel)
        c.extraArguments = QEMUGuestArguments.memory(path: memory, sizeMiB: c.memoryMiB)
            + QEMUConfiguration.qmpArguments(socket: qmp2)
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("user networking expected") }
        _ = try runEchoExchange(port: udpPort, count: 3, sizes: 16...64, seed: 5, perTryTimeout: 1)

        // The watcher: 20 samples a second (for at most 30 s), JSON lines to a file; stopped
        // once it has logged the alarm cleared. A fixed window (6 s) and a fixed start-up wait
        // (1 s) were races on a loaded host: the watcher could start sampling after the kick
        // was withheld, or stop before the kick's clearing.
        let watch = Process()
        watch.executableURL = URL(fileURLWithPath: bin)
        watch.arguments = ["watch", "--qmp", qmp2, "--memory", memory, "--json", "--rate", "20", "--count", "600"]
        FileManager.default.createFile(atPath: out, contents: nil)
        watch.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        watch.standardError = FileHandle.nullDevice
        try watch.run()
        defer { if watch.isRunning { watch.terminate() } }
        /// Waits up to `timeout` for a complete line of the watcher's output that contains `needle`.
        func watcherWrote(_ needle: String, timeout: Double) -> Bool {
            let deadline = monotonicSeconds() + timeout
            while monotonicSeconds() < deadline {
                if readTextFile(out).split(separator: "\n").dropLast().contains(where: { $0.contains(needle) }) { return true }
                if !watch.isRunning { return readTextFile(out).contains(needle) }
                usleep(50_000)
            }
            return false
        }
        XCTAssertTrue(watcherWrote("\"alarm_events\"", timeout: 20), "the watcher samples before the kick is withheld")

        let inject = try runCommand([bin, "ctl", q.run.consoleSocket, "inject", "net0.tx", "nokick", "1"], timeout: 20)
        XCTAssertEqual(inject.status, .exited(0), inject.output)
        let marker = Array("ringside memory-view lost kick \(tag)".utf8)
        let udp = try UDPSocket()
        try udp.send(marker, toPort: udpPort)
        XCTAssertNil(udp.receive(timeout: 1.5), "the withheld kick keeps the echo in net0.tx")
        let kick = try runCommand([bin, "ctl", q.run.consoleSocket, "kick", "net0.tx"], timeout: 20)
        XCTAssertEqual(kick.status, .exited(0), kick.output)
        XCTAssertEqual(udp.receive(timeout: 5), marker, "kick lets the echo out")
        _ = watcherWrote("\"event\":\"cleared\"", timeout: 10)
        watch.terminate()
        watch.waitUntilExit()

        // Whole lines only: the watcher may have been stopped in the middle of one.
        let text = try String(contentsOfFile: out, encoding: .utf8)
        let lines = text.split(separator: "\n").dropLast(text.hasSuffix("\n") ? 0 : 1)
        var raised: [String: Any]?
        var raisedAt: Int?
        var clearedAt: Int?
        for (n, line) in lines.enumerated() {
            guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let events = o["alarm_events"] as? [[String: Any]] else { return XCTFail("no alarm_events in \(line.prefix(200))") }
            for e in events {
                let what = "\(e["event"] ?? "") \(e["queue"] ?? "") \(e["alarm"] ?? "")"
                switch what {
                case "raised net0.tx kick_lost" where raisedAt == nil: raised = e; raisedAt = n
                case "cleared net0.tx kick_lost" where raisedAt != nil: clearedAt = n
                default: XCTFail("unexpected alarm event on sample \(n): \(e)")
                }
            }
        }
        let r = try XCTUnwrap(raised, "KICK LOST? never raised from memory (\(lines.count) samples)")
        print("memory view: \(r["detail"] ?? "")")
        // The device's own last-avail-idx (QMP, 2 Hz) sharpens "not consumed" when it lies between
        // used.idx and avail.idx; used.idx otherwise.
        // A packed ring has no used.idx: the device's position read from the descriptors is the
        // consumed side, and the rule names desc_event_off_wrap as "offset/wrap counter".
        let detail = r["detail"] as? String ?? ""
        if testRingFormat == .packed {
            XCTAssertEqual(r["consumed_source"] as? String, "device position", "\(r)")
            let event = try XCTUnwrap(r["event_word"] as? Int, "EVENT_IDX on: the rule has an event word: \(r)")
            XCTAssertEqual(event, r["consumed"] as? Int, "the device asked for a kick where it stopped: \(r)")
            XCTAssertTrue(detail.contains("the device asked for a kick at descriptor \(event & 0x7FFF)/w\(event >> 15)"),
                          "EVENT_IDX on: the rule cites desc_event_off_wrap: \(detail)")
        } else {
            XCTAssertTrue(["QMP last-avail-idx", "used.idx"].contains(r["consumed_source"] as? String ?? ""), "\(r)")
            XCTAssertTrue(detail.contains("avail_event"), "EVENT_IDX on: the rule cites avail_event")
        }
        XCTAssertEqual(r["waiting"] as? Int, 1)
        XCTAssertNotNil(clearedAt, "KICK LOST? cleared after kick")
        if let raisedAt, let clearedAt { XCTAssertLessThan(raisedAt, clearedAt) }
        // Samples in between carry the alarm in "alarms".
        if let raisedAt, raisedAt + 1 < lines.count,
           let o = try JSONSerialization.jsonObject(with: Data(lines[raisedAt + 1].utf8)) as? [String: Any] {
            XCTAssertEqual((o["alarms"] as? [[String: Any]])?.first?["label"] as? String, "KICK LOST?")
        }
    }
}
