import Foundation
import XCTest
import Wire
@testable import RingsideKit

/// Record and replay against the real kernel, as a user runs them.
final class RecordReplayTests: QEMUTestCase {
    /// Waits for `needle` in `path`.
    func waitForText(_ path: String, _ needle: String, timeout: Double) -> Bool {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            if readTextFile(path).contains(needle) { return true }
            usleep(50_000)
        }
        return false
    }

    func testRecordingsReplayToWhatWatchPrintedLive() throws {
        guard let kernel = requireKernel() else { return }
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found; build it with `swift build`") }
        let dir = NSTemporaryDirectory() + "ringside-record-\(getpid())"
        mkdir(dir, 0o700)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let udpPort = try freePort(udp: true)
        let runOut = dir + "/run.out", runRec = dir + "/run.rec", clientRec = dir + "/client.rec"
        let run = try ChildProcess(argv: [bin, "run", "--headless", "--kernel", kernel, "--timeout", "120", "--record", runRec,
                                          "--udp-port", String(udpPort), "--http-port", String(try freePort(udp: false))],
                                   outputFile: runOut)
        defer { if run.isRunning { run.signal(SIGKILL); run.wait(timeout: nil) } }
        let deadline = monotonicSeconds() + 30
        var hubPath: String?, consolePath: String?
        while monotonicSeconds() < deadline && run.isRunning {
            let text = readTextFile(runOut)
            if text.contains("ringside: ready"), let m = text.firstMatch(of: /telemetry for watch\/ctl at (\S+)/),
               let c = text.firstMatch(of: /console: (\S+)/) {
                hubPath = String(m.1)
                consolePath = String(c.1)
                break
            }
            usleep(20_000)
        }
        guard let hub = hubPath, let console = consolePath else { return XCTFail("no telemetry socket announced: \(readTextFile(runOut))") }

        // A recorder beside the hub's, then watch --json, both clients of the hub.
        let recOut = dir + "/record.out"
        let record = try ChildProcess(argv: [bin, "record", hub, "-o", clientRec], outputFile: recOut)
        defer { if record.isRunning { record.signal(SIGKILL); record.wait(timeout: nil) } }
        XCTAssertTrue(waitForText(recOut, "recording", timeout: 10), readTextFile(recOut))
        usleep(500_000)
        let watchOut = dir + "/watch.json", watchErr = dir + "/watch.err"
        let watch = try ChildProcess(argv: ["/bin/sh", "-c", "exec \"$0\" watch \"$1\" --json > \"$2\" 2> \"$3\"", bin, hub, watchOut, watchErr],
                                     outputFile: nil)
        defer { if watch.isRunning { watch.signal(SIGKILL); watch.wait(timeout: nil) } }
        XCTAssertTrue(waitForText(watchOut, "\n", timeout: 10), "watch prints snapshots: " + readTextFile(watchErr))

        // Traffic, then pause, traffic held back, step, dump, resume, through ctl on the hub.
        _ = try runEchoExchange(port: udpPort, count: 5, sizes: 16...200, seed: 15)
        func ctl(_ args: String...) throws -> String {
            let r = try runCommand([bin, "ctl", hub] + args, timeout: 20)
            XCTAssertEqual(r.status, .exited(0), "ctl \(args): \(r.output)")
            return r.output
        }
        _ = try ctl("pause", "net0.rx")
        let udp = try UDPSocket()
        for i in 0..<3 { try udp.send(Array("held \(i)".utf8), toPort: udpPort) }
        // Step once the three are held (used, not consumed), not after a fixed 0.6 s: a loaded
        // host may not have run the guest that long, and a step with nothing pending fails.
        func heldOnRX() throws -> Int {
            let object = try? JSONSerialization.jsonObject(with: Data(try ctl("stats").utf8)) as? [String: Any]
            let rx = (object?["queues"] as? [[String: Any]])?.first { $0["name"] as? String == "net0.rx" }
            return (rx?["descriptors"] as? [[String: Any]] ?? []).filter { $0["state"] as? String == "used" }.count
        }
        let heldDeadline = monotonicSeconds() + 10
        var held = try heldOnRX()
        while held < 3 && monotonicSeconds() < heldDeadline {
            usleep(100_000)
            held = try heldOnRX()
        }
        XCTAssertEqual(held, 3, "the three datagrams held on the paused net0.rx")
        XCTAssertTrue(try ctl("step", "net0.rx").contains("stepped 1"))
        XCTAssertTrue(try ctl("dump", "net0.rx", "--next").contains("held"))
        _ = try ctl("resume", "net0.rx")
        _ = try runEchoExchange(port: udpPort, count: 5, sizes: 16...200, seed: 16)
        usleep(800_000)

        // QEMU's console socket is held by the hub: a recorder there hears nothing and says why.
        let busy = try runCommand([bin, "record", console, "-o", dir + "/busy.rec", "--timeout", "2"], timeout: 20)
        XCTAssertNotEqual(busy.status, .exited(0), busy.output)
        XCTAssertTrue(busy.output.contains("one client"), busy.output)

        watch.signal(SIGTERM)
        _ = watch.wait(timeout: 10)
        usleep(300_000)
        record.signal(SIGINT)
        XCTAssertEqual(record.wait(timeout: 10), .exited(0), readTextFile(recOut))
        XCTAssertTrue(readTextFile(recOut).contains("recorded"), readTextFile(recOut))
        run.signal(SIGINT)
        XCTAssertEqual(run.wait(timeout: 20), .exited(0), readTextFile(runOut))
        XCTAssertTrue(readTextFile(runOut).contains("recorded"), readTextFile(runOut))

        let live = readTextFile(watchOut).split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropLast()
        XCTAssertGreaterThan(live.count, 20, "watch printed snapshots")
        for (name, file) in [("run --record", runRec), ("record", clientRec)] {
            let replay = try runCommand(["/bin/sh", "-c", "\"$0\" replay \"$1\" --json 2>/dev/null", bin, file], timeout: 60)
            XCTAssertEqual(replay.status, .exited(0), "\(name): " + replay.output.suffix(300))
            let lines = replay.output.split(separator: "\n").map(String.init)
            // Both recorders started before watch: from watch's first line on, the same lines.
            guard let first = live.first, let start = lines.firstIndex(of: first) else {
                XCTFail("\(name): watch's first snapshot is not in the replay (\(lines.count) lines)")
                continue
            }
            let overlap = Array(lines[start...].prefix(live.count))
            XCTAssertEqual(overlap.count, live.count, "\(name): the recording covers everything watch printed")
            XCTAssertTrue(overlap == Array(live), "\(name): replay --json differs from watch --json at line \(Array(zip(overlap, live)).firstIndex { $0.0 != $0.1 } ?? -1)")
            // The pause, the step and the held frames are in the snapshots.
            XCTAssertTrue(lines.contains { $0.contains("\"paused\":true") }, "\(name): a snapshot with net0.rx paused")
            let info = try runCommand([bin, "replay", file, "--info"], timeout: 30)
            XCTAssertEqual(info.status, .exited(0), info.output)
            XCTAssertTrue(info.output.contains("net0.rx[256]"), "\(name): the header's hello: \(info.output)")
        }

        // A truncated recording: what it can, then where it stopped, exit 1, no crash.
        let bytes = Array(FileManager.default.contents(atPath: runRec) ?? Data())
        let cut = dir + "/cut.rec"
        FileManager.default.createFile(atPath: cut, contents: Data(bytes[0..<(bytes.count * 2 / 3)]))
        let truncated = try runCommand([bin, "replay", cut, "--json"], timeout: 60)
        XCTAssertEqual(truncated.status, .exited(1), String(truncated.output.suffix(300)))
        let tail = truncated.output.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue(tail.contains("stopped at byte") && tail.contains("truncated"), tail)
        XCTAssertGreaterThan(truncated.output.split(separator: "\n").count, 5, "the part before the cut is replayed")
    }
}
