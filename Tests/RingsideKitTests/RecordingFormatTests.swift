import Foundation
import RingsideTestSupport
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
