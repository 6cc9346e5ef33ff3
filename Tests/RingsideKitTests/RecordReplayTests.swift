import Foundation
import XCTest
import Wire
@testable import RingsideKit

/// Lines a recording's kernel side produces as `watch --json` lines (what `replay --json` prints,
/// before terminal escaping), and the reader's verdict.
func replayJSONLines(_ bytes: [UInt8]) -> (lines: [String], stop: String?) {
    var reader = RecordingReader(bytes: bytes)
    var stream = TelemetryStream()
    var lines: [String] = []
    while let e = reader.next() {
        switch e.direction {
        case .fromKernel:
            stream.feed(e.bytes, at: 0) { item, _ in
                if case .snapshot(_, let m, _) = item, m.isComplete { lines.append(m.snapshotJSON()) }
            }
        case .note:
            if e.bytes.starts(with: Array("connected".utf8)) { stream.decoder.reset() }
        case .toKernel:
            break
        }
    }
    return (lines, reader.stopReason)
}

/// The recording format against a fake kernel: no QEMU.
final class RecordingFormatTests: XCTestCase {
    func testRecordingOfAFakeKernelReplaysToTheSameSnapshotsAndSurvivesEveryCut() throws {
        let dir = NSTemporaryDirectory() + "ringside-rec-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        mkdir(dir, 0o700)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let queues = [WireQueueInfo(queue: 0, name: "net0.rx", size: 8), WireQueueInfo(queue: 1, name: "net0.tx", size: 8)]
        let hello = WireHello(kernelVersion: "fake 1", mac: [2, 0, 0, 0, 0, 1], devices: [], queues: queues)
        let kernel = try FakeKernel(path: dir + "/console.sock", hello: hello) { _, seq in WireReply(commandSeq: seq, status: .ok) }
        defer { kernel.stop() }

        let file = dir + "/a.rec"
        let recorder = try TelemetryRecorder(path: file, info: [("source", "fake")])
        let c = try TelemetryConnection(path: kernel.path, timeout: 5, tap: { recorder.record($0, $1) })
        var live: [String] = []
        func collect(_ items: [TelemetryIncoming]) {
            for case .snapshot(_, let m, _) in items where m.isComplete { live.append(m.snapshotJSON()) }
        }
        collect(c.receive(timeout: 2))
        for _ in 0..<5 {
            XCTAssertEqual(try c.request(.pause(queue: 0)).status, .ok)
            XCTAssertEqual(try c.request(.stats).status, .ok)
            usleep(50_000)
            collect(c.receive(timeout: 0.5))
        }
        c.close()
        recorder.close()
        XCTAssertGreaterThanOrEqual(live.count, 5, "snapshots seen live")

        let bytes = Array(FileManager.default.contents(atPath: file) ?? Data())
        let whole = replayJSONLines(bytes)
        XCTAssertNil(whole.stop, "a whole recording reads to its end")
        XCTAssertEqual(whole.lines, live, "the replay prints what the live connection saw")

        let reader = RecordingReader(bytes: bytes)
        XCTAssertEqual(reader.header?.hello, hello, "the header carries the hello")
        XCTAssertTrue(reader.header?.info.contains("source=fake") == true)
        var directions = Set<UInt8>()
        var r = reader
        while let e = r.next() { directions.insert(e.direction.rawValue) }
        XCTAssertEqual(directions, [0, 1, 2], "kernel bytes, our commands and notes are recorded")

        // Every cut: no trap, a prefix of the snapshots, and a reason unless cut between records.
        var boundaries = Set<Int>()
        var b = RecordingReader(bytes: bytes)
        boundaries.insert(b.offset)
        while b.next() != nil { boundaries.insert(b.offset) }
        for cut in 0..<bytes.count {
            let part = replayJSONLines(Array(bytes[0..<cut]))
            XCTAssertEqual(part.lines, Array(whole.lines.prefix(part.lines.count)), "cut at \(cut): a prefix")
            if !boundaries.contains(cut) {
                XCTAssertNotNil(part.stop, "cut at \(cut) inside a record must say where it stopped")
            }
        }
        // Random damage: never a trap.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var damaged = bytes
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                damaged[Int.random(in: 0..<damaged.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            _ = replayJSONLines(damaged)
        }
    }

    func testReplayRefusesWhatIsNotARecordingClearly() throws {
        XCTAssertTrue(RecordingReader(bytes: []).stopReason?.contains("empty") == true)
        XCTAssertTrue(RecordingReader(bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 0, 0, 0]).stopReason?.contains("not a ringside recording") == true)
        var future = RecordingFormat.magic + [9, 0]
        future += [UInt8](repeating: 0, count: 16)
        XCTAssertTrue(RecordingReader(bytes: future).stopReason?.contains("version 9") == true)
    }
}

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
        usleep(600_000)
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
