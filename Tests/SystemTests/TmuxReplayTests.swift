import Foundation
import XCTest
import RingsideKit
import Wire

/// `ringside replay FILE` in a real terminal: the header, play/pause, the next event, speed,
/// going to a time, commands refused, q. The recording is built here (a hello, then a snapshot
/// every 100 ms for 30 s; net0.rx paused at 10 s), so no QEMU is needed.
final class TmuxReplayTests: XCTestCase {
    func recording() throws -> [UInt8] {
        let queues = [WireQueueInfo(queue: 0, name: "net0.rx", size: 8), WireQueueInfo(queue: 1, name: "net0.tx", size: 8)]
        let hello = WireHello(kernelVersion: "replayed kernel", mac: [2, 0, 0, 0, 0, 7], devices: [], queues: queues)
        var encoder = WireFrameEncoder(firstSeq: 1)
        var entries: [RecordingEntry] = [RecordingEntry(timeNs: 0, direction: .note, bytes: Array("connected test".utf8))]
        var frame: [UInt8] = []
        try encoder.encode(.hello(hello), into: &frame)
        entries.append(RecordingEntry(timeNs: 1_000_000, direction: .fromKernel, bytes: frame))
        for n in 1...300 {
            let t = UInt64(n) * 100_000_000
            let paused = n >= 100
            frame = []
            if n == 100 {
                try encoder.encode(.event(WireEvent(uptimeNs: t, kind: .paused(queue: 0))), into: &frame)
            }
            if n == 120 {
                // The recorded host dumps the next pending frame; the kernel answers at once.
                var host = WireFrameEncoder(firstSeq: 77)
                var command: [UInt8] = []
                try host.encode(.command(.dump(queue: 0, selector: .next)), into: &command)
                entries.append(RecordingEntry(timeNs: t, direction: .toKernel, bytes: command))
                let dump = WireDump(queue: 0, descriptor: 3, guestAddress: 0x4000, bufferLength: 64, bytes: [UInt8](repeating: 0x41, count: 64))
                try encoder.encode(.reply(WireReply(commandSeq: 77, status: .ok, body: .dump(dump))), into: &frame)
            }
            let qs = queues.map { q in
                WireQueueSnapshot(status: WireQueueStatus(queue: q.queue, availIdx: 8, usedIdx: 0, lastUsedIdx: 0, freeCount: 0,
                                                          pendingUsed: 0, paused: paused && q.queue == 0,
                                                          counters: WireQueueCounters(packets: UInt64(n))),
                                  descriptors: .full((0..<8).map { i in
                                      WireDescriptor(state: .avail, addr: 0x1000 * UInt64(i + 1), len: 2048, flags: 2, next: 0)
                                  }))
            }
            try encoder.encode(.snapshot(WireSnapshot(snapshotNumber: UInt32(n), uptimeNs: t, rateHz: 10, droppedFrames: 0, queues: qs)),
                               into: &frame)
            entries.append(RecordingEntry(timeNs: t, direction: .fromKernel, bytes: frame))
        }
        var out = RecordingHeader(startWallNs: 1_700_000_000_000_000_000, info: "source=test\n").encoded()
        var previous: UInt64 = 0
        for e in entries {
            out += e.encoded(previousNs: previous)
            previous = e.timeNs
        }
        return out
    }

    func testReplayInTheTUI() throws {
        guard findExecutable("tmux") != nil else { return XCTFail("tmux is not installed") }
        guard let bin = ringsideBinary(), FileManager.default.isExecutableFile(atPath: bin) else {
            return XCTFail("ringside binary not found at \(ringsideBinary() ?? repositoryRoot + "/.build/debug/ringside")")
        }
        let dir = NSTemporaryDirectory() + "ringside-replay-\(getpid())"
        mkdir(dir, 0o700)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/session.rec"
        FileManager.default.createFile(atPath: file, contents: Data(try recording()))

        let tmux = try TmuxSession(command: "\(bin) replay \(file)", width: 120, height: 40)
        tmux.waitFor("the replay header") { $0.contains("REPLAY session.rec t=") && $0.contains("/30.0s ×1") }
        tmux.waitFor("the hello's queues") { $0.contains("net0.rx") && $0.contains("net0.tx") }
        try tmux.send("p")
        var screen = tmux.waitFor("paused") { $0.contains("PAUSED") }
        XCTAssertNotNil(screen.firstMatch(of: /t=[0-5]\.\ds\/30\.0s/), "paused early on: \(screen)")

        // Commands are refused, in words.
        try tmux.send("s")
        tmux.waitFor("the refusal") { $0.contains("step net0.rx: refused: this is a replay") }

        // n: to the next event, the pause at 10 s.
        try tmux.send("n")
        screen = tmux.waitFor("the next event") { $0.contains("t=10.0s/30.0s") && $0.contains("net0.rx paused") }
        // n again: the recorded host's dump, and the kernel's answer named after it.
        try tmux.send("n")
        tmux.waitFor("the recorded command and its reply") {
            $0.contains("t=12.0s/30.0s") && $0.contains("→ dump net0.rx next (recorded)")
                && $0.contains("dump net0.rx next: 64 bytes of net0.rx desc 3")
        }

        // Speed: ×1 → ×4, and back down to ¼.
        try tmux.send(">"); try tmux.send(">")
        tmux.waitFor("×4") { $0.contains("×4 PAUSED") }
        for _ in 0..<4 { try tmux.send("<") }
        tmux.waitFor("×¼") { $0.contains("×¼ PAUSED") }
        for _ in 0..<6 { try tmux.send(">") }
        tmux.waitFor("×16") { $0.contains("×16 PAUSED") }

        // g: to a time, backwards too (the screen starts afresh: the pause is not yet logged).
        try tmux.send("g"); try tmux.send("2"); try tmux.send("5"); try tmux.send("Enter")
        // Each snapshot n counts n packets: the screen shows the snapshot of the time gone to.
        tmux.waitFor("t=25 and its snapshot") { $0.contains("t=25.0s/30.0s") && $0.contains("pkts 250 ") }
        try tmux.send("g"); try tmux.send("5"); try tmux.send("Enter")
        tmux.waitFor("t=5 and its snapshot, going back") { $0.contains("t=5.0s/30.0s") && $0.contains("pkts 50 ") }
        try tmux.send("0")
        tmux.waitFor("the start") { $0.contains("t=0.0s/30.0s") && !$0.contains("pkts 50 ") }

        // Play at 16×: the end in about 1.6 s.
        try tmux.send("p")
        tmux.waitFor("the end", timeout: 10) { $0.contains("t=30.0s/30.0s ×16 END") && $0.contains("end of the recording") }
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(), 0)
    }
}
