import Foundation
import RingsideTestSupport
import XCTest
import Wire
@testable import RingsideKit

/// `ringside watch` against a fake kernel on a unix socket: it survives the guest going away
/// and picks the stream up again when it comes back.
final class WatchReconnectTests: XCTestCase {
    func frames(hello: Bool, snapshotNumber: UInt32, seq: inout UInt32) throws -> [UInt8] {
        var enc = WireFrameEncoder(firstSeq: seq)
        var out: [UInt8] = []
        let queues = [WireQueueInfo(queue: 0, name: "net0.rx", size: 4), WireQueueInfo(queue: 1, name: "net0.tx", size: 4)]
        if hello {
            try enc.encode(.hello(WireHello(kernelVersion: "fake", mac: [2, 0, 0, 0, 0, 1], devices: [], queues: queues)), into: &out)
        }
        let table = (0..<4).map { WireDescriptor(state: .avail, addr: 0x1000 * UInt64($0 + 1), len: 2048, flags: 2, next: 0) }
        let snap = WireSnapshot(snapshotNumber: snapshotNumber, uptimeNs: UInt64(snapshotNumber) * 100_000_000, rateHz: 10, droppedFrames: 0,
                                queues: queues.map { WireQueueSnapshot(status: WireQueueStatus(queue: $0.queue, availIdx: 4, usedIdx: 0, lastUsedIdx: 0, freeCount: 0, pendingUsed: 0, paused: false, counters: WireQueueCounters()), descriptors: .full(table)) })
        try enc.encode(.snapshot(snap), into: &out)
        seq = enc.nextSeq
        return out
    }

    func testWatchWaitsForTheGuestToComeBack() throws {
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found; build it with `swift build`") }
        let dir = NSTemporaryDirectory() + "ringside-watch-\(getpid())"
        mkdir(dir, 0o700)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/fake.sock"
        let listener = try listenUnixSocket(path)
        defer { listener.close() }
        let out = dir + "/watch.out"
        let child = try ChildProcess(argv: [bin, "watch", path, "--json", "--count", "2", "--timeout", "20"], outputFile: out)
        defer { if child.isRunning { child.signal(SIGKILL); child.wait(timeout: nil) } }
        var seq: UInt32 = 0
        func serveOnce(_ n: UInt32) throws {
            var pfd = pollfd(fd: listener.rawValue, events: Int16(POLLIN), revents: 0)
            XCTAssertEqual(poll(&pfd, 1, 10_000), 1, "watch did not connect")
            let fd = accept(listener.rawValue, nil, nil)
            XCTAssertGreaterThanOrEqual(fd, 0)
            let bytes = try frames(hello: true, snapshotNumber: n, seq: &seq)
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            usleep(300_000)
            close(fd)  // the guest goes away
        }
        try serveOnce(1)
        usleep(500_000)
        try serveOnce(2)  // and comes back
        XCTAssertEqual(child.wait(timeout: 15), .exited(0), readTextFile(out))
        let text = readTextFile(out)
        let json = text.split(separator: "\n").filter { $0.hasPrefix("{") }
        XCTAssertEqual(json.count, 2, text)
        XCTAssertTrue(text.contains("went away"), text)
        XCTAssertTrue(json.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil }, text)
    }

    func testWatchGivesUpAfterTimeoutWithoutAGuest() throws {
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found; build it with `swift build`") }
        let start = monotonicSeconds()
        let r = try runCommand([bin, "watch", "/nonexistent/ringside.sock", "--json", "--timeout", "1"], timeout: 15)
        XCTAssertNotEqual(r.status, .exited(0))
        XCTAssertTrue(r.output.contains("waiting for the guest") && r.output.contains("giving up"), r.output)
        XCTAssertLessThan(monotonicSeconds() - start, 5)
    }
}
