import Foundation
import RingsideTestSupport
import XCTest
import Wire
@testable import RingsideKit

/// The host's own hygiene: sockets made without touching process state, and every queue fed by
/// the other side (QEMU, the guest, a client) bounded.
final class HostBoundsTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "ringside-bounds-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(mkdir(dir, 0o700), 0)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func mode(_ path: String) -> mode_t {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode : 0
    }

    /// While one thread creates sockets, another creates files: their modes follow the umask the
    /// process set, which creating a socket must never change (not even for a moment).
    func testListenUnixSocketLeavesTheUmaskAlone() throws {
        let old = umask(0o022)
        defer { umask(old) }
        final class Shared: @unchecked Sendable {
            let lock = NSLock()
            var done = false
            var wrongModes: [String] = []
        }
        let shared = Shared()
        let creator = Thread { [dir] in
            var i = 0
            while !shared.lock.withLock({ shared.done }) {
                let file = dir + "/file-\(i % 8)"
                unlink(file)
                let fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0o666)
                var st = stat()
                if fd >= 0 && fstat(fd, &st) == 0 && st.st_mode & 0o777 != 0o644 {
                    shared.lock.withLock { shared.wrongModes.append(String(st.st_mode & 0o777, radix: 8)) }
                }
                if fd >= 0 { close(fd) }
                i += 1
            }
        }
        creator.start()
        let path = dir + "/test.sock"
        for i in 0..<1000 {
            let fd = try listenUnixSocket(path, mode: i % 2 == 0 ? 0o600 : 0o660)
            XCTAssertEqual(mode(path) & 0o777, i % 2 == 0 ? 0o600 : 0o660)
            XCTAssertEqual(mode(path) & S_IFMT, S_IFSOCK)
            fd.close()
        }
        shared.lock.withLock { shared.done = true }
        while !creator.isFinished { usleep(1000) }
        XCTAssertEqual(shared.wrongModes, [], "files created while sockets were made got other modes than the umask gives")
        XCTAssertEqual(umask(0o022), 0o022, "umask unchanged")

        // The socket works where it was put, replaced an old one each time, and left nothing beside it.
        let fd = try listenUnixSocket(path)
        defer { fd.close() }
        let client = try connectUnixSocket(path)
        client.close()
        let left = (try FileManager.default.contentsOfDirectory(atPath: dir)).filter { !$0.hasPrefix("file-") }
        XCTAssertEqual(left, ["test.sock"])
    }

    /// A QMP server on a unix socket that runs `script` on the accepted connection in the background:
    /// `send` writes text as is (QEMU ends each JSON object with a newline), `readLine` reads one line.
    func fakeQMP(_ script: @escaping @Sendable (_ send: (String) -> Void, _ readLine: () -> String?) -> Void) throws -> (path: String, done: DispatchSemaphore) {
        let path = dir + "/qmp.sock"
        let listener = try listenUnixSocket(path)
        let done = DispatchSemaphore(value: 0)
        Thread {
            var pfd = pollfd(fd: listener.rawValue, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 10_000)
            let fd = accept(listener.rawValue, nil, nil)
            listener.close()
            guard fd >= 0 else { done.signal(); return }
            var pending: [UInt8] = []
            script({ text in try? FileDescriptor(rawValue: fd).writeAll(Array(text.utf8), timeout: 10) }, {
                while true {
                    if let nl = pending.firstIndex(of: 0x0a) {
                        defer { pending.removeSubrange(...nl) }
                        return String(decoding: pending[..<nl], as: UTF8.self)
                    }
                    var chunk = [UInt8](repeating: 0, count: 4096)
                    let n = recv(fd, &chunk, chunk.count, 0)
                    if n <= 0 { return nil }
                    pending += chunk[..<n]
                }
            })
            close(fd)
            done.signal()
        }.start()
        return (path, done)
    }

    static let greeting = #"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 8}}, "capabilities": []}}"#

    /// QEMU floods events before answering: the client keeps the newest `eventLimit`, counts the rest.
    func testQMPClientKeepsABoundedNumberOfEvents() throws {
        let flood = QMPClient.eventLimit * 5
        let (path, done) = try fakeQMP { send, readLine in
            send(Self.greeting + "\n")
            guard readLine() != nil else { return }
            send(#"{"return": {}}"# + "\n")
            guard readLine() != nil else { return }
            for i in 0..<flood {
                send(#"{"timestamp": {"seconds": 1, "microseconds": 0}, "event": "NIC_RX_FILTER_CHANGED", "data": {"i": \#(i)}}"# + "\n")
            }
            send(#"{"return": {"running": true}}"# + "\n")
            _ = readLine()  // until the client closes
        }
        let client = try QMPClient(path: path, timeout: 5)
        try client.execute("query-status", timeout: 20)
        XCTAssertEqual(client.events.count, QMPClient.eventLimit)
        XCTAssertEqual(client.droppedEvents, UInt64(flood - QMPClient.eventLimit))
        XCTAssertEqual((client.events.last?["data"] as? [String: Any])?["i"] as? Int, flood - 1, "the newest are kept")
        XCTAssertEqual((client.events.first?["data"] as? [String: Any])?["i"] as? Int, flood - QMPClient.eventLimit)
        client.close()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
    }

    /// A line that never ends is a protocol error, not a buffer that grows forever.
    func testQMPClientRejectsAnEndlessLine() throws {
        let (path, done) = try fakeQMP { send, readLine in
            send(Self.greeting + "\n")
            guard readLine() != nil else { return }
            send(#"{"return": {}}"# + "\n")
            guard readLine() != nil else { return }
            send("{")
            let spaces = String(repeating: " ", count: 65536)
            for _ in 0..<(QMPClient.lineLimit / 65536 + 8) { send(spaces) }
        }
        let client = try QMPClient(path: path, timeout: 5)
        XCTAssertThrowsError(try client.execute("query-status", timeout: 20)) { error in
            XCTAssertTrue("\(error)".contains("longer than"), "\(error)")
        }
        client.close()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
    }

    /// The kernel floods the hub; one client never reads, another does. The silent one's backlog
    /// stays bounded: whole frames are dropped for it (counted), never part of one, so once it does
    /// read, its stream decodes without a single bad frame, and it is still served afterwards.
    func testHubDropsWholeFramesForAClientThatDoesNotRead() throws {
        let console = dir + "/console.sock", hubPath = dir + "/telemetry.sock"
        let kernelListener = try listenUnixSocket(console)
        defer { kernelListener.close() }
        let frameCount = 1000
        let flooded = DispatchSemaphore(value: 0), drained = DispatchSemaphore(value: 0)
        Thread {
            var pfd = pollfd(fd: kernelListener.rawValue, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 10_000)
            let fd = accept(kernelListener.rawValue, nil, nil)
            guard fd >= 0 else { flooded.signal(); return }
            usleep(300_000)  // both clients are connected by then
            var encoder = WireFrameEncoder(firstSeq: 1)
            let descriptors = (0..<256).map { WireDescriptor(state: .avail, addr: UInt64($0) << 12, len: 2048, flags: 2, next: 0) }
            func send(_ n: Int) {
                var out: [UInt8] = []
                let status = WireQueueStatus(queue: 0, availIdx: 0, usedIdx: 0, lastUsedIdx: 0, freeCount: 0, pendingUsed: 0,
                                             paused: false, counters: WireQueueCounters())
                _ = try? encoder.encode(.snapshot(WireSnapshot(snapshotNumber: UInt32(n), uptimeNs: 0, rateHz: 10, droppedFrames: 0,
                                                               queues: [WireQueueSnapshot(status: status, descriptors: .full(descriptors))])), into: &out)
                try? FileDescriptor(rawValue: fd).writeAll(out, timeout: 10)
            }
            for n in 0..<frameCount { send(n) }
            flooded.signal()
            drained.wait()
            send(frameCount)  // one more, after the silent client caught up
            var byte: UInt8 = 0
            _ = recv(fd, &byte, 1, 0)  // hold the connection until the hub closes it
            close(fd)
        }.start()
        let limit = 256 * 1024
        let hub = try TelemetryHub(consolePath: console, listenPath: hubPath, clientBacklogLimit: limit)
        hub.start()
        defer { hub.stop() }
        let silent = try connectUnixSocket(hubPath), reader = try connectUnixSocket(hubPath)
        defer { silent.close(); reader.close() }
        silent.setNonBlocking(); reader.setNonBlocking()
        /// Reads `fd` until nothing came for `idle` seconds (after `until` is signalled, if given).
        func readAll(_ fd: FileDescriptor, idle: Double, until: DispatchSemaphore? = nil) -> [UInt8] {
            var bytes: [UInt8] = []
            var done = until == nil
            var idleSince = monotonicSeconds()
            while !done || monotonicSeconds() - idleSince < idle {
                var pfd = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
                _ = poll(&pfd, 1, 50)
                if let n = fd.readAvailable(into: &bytes), n > 0 { idleSince = monotonicSeconds() }
                if !done, until!.wait(timeout: .now()) == .success { done = true; idleSince = monotonicSeconds() }
            }
            return bytes
        }
        func decode(_ bytes: [UInt8]) -> WireDecoderStatistics {
            var decoder = WireFrameDecoder()
            decoder.feed(bytes)
            while decoder.next() != nil {}
            return decoder.statistics
        }
        let read = decode(readAll(reader, idle: 1, until: flooded))
        XCTAssertEqual(read.totalErrors, 0)
        // Now the silent client reads what the hub kept for it...
        let kept = readAll(silent, idle: 1)
        let silentStats = decode(kept)
        let dropped = hub.framesDroppedForSlowClients
        print("reader: \(read.framesOK) frames; silent client: \(kept.count) bytes, \(silentStats.framesOK) frames; dropped \(dropped)")
        XCTAssertEqual(silentStats.totalErrors, 0, "whole frames only: nothing torn")
        XCTAssertGreaterThan(silentStats.framesOK, 0)
        XCTAssertGreaterThan(dropped, 0, "frames were dropped for the silent client")
        XCTAssertEqual(read.framesOK + silentStats.framesOK + dropped, UInt64(2 * frameCount), "every frame reached a client or was counted")
        // (A loaded machine can make even the reading client fall a backlog behind, so no
        // exact count for it: only that it got more than the client that never read.)
        XCTAssertGreaterThan(read.framesOK, silentStats.framesOK, "the client that reads got more")
        XCTAssertLessThan(silentStats.framesOK, UInt64(frameCount) / 2, "the silent client got only what its bounded backlog held")
        XCTAssertLessThan(kept.count, limit + 1 << 20, "its backlog stayed bounded (limit + socket buffers)")
        // ...and is still served: the next frame arrives, after a seq gap.
        drained.signal()
        let after = decode(kept + readAll(silent, idle: 1))
        XCTAssertEqual(after.framesOK, silentStats.framesOK + 1)
        XCTAssertGreaterThanOrEqual(after.sequenceGaps[0], 1, "the frames dropped for it show as a seq gap")
        XCTAssertEqual(after.totalErrors, 0)
    }

    /// A kernel that never reads its commands: the hub queues a bounded amount for it, then
    /// answers further commands itself with an error reply.
    func testHubRefusesCommandsAKernelDoesNotRead() throws {
        let console = dir + "/console.sock", hubPath = dir + "/telemetry.sock"
        let kernelListener = try listenUnixSocket(console)
        defer { kernelListener.close() }
        var kernel: Int32 = -1
        defer { if kernel >= 0 { close(kernel) } }
        let hub = try TelemetryHub(consolePath: console, listenPath: hubPath)
        hub.start()
        defer { hub.stop() }
        var pfd = pollfd(fd: kernelListener.rawValue, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&pfd, 1, 10_000), 1, "the hub connects to the kernel")
        kernel = accept(kernelListener.rawValue, nil, nil)  // and is never read from
        let client = try TelemetryConnection(path: hubPath, timeout: 5, sendHello: false)
        var refused: WireReply?
        for _ in 0..<100 where refused == nil {
            for _ in 0..<1000 { try client.send(.resetCounters) }
            for item in client.receive(timeout: 0.05) {
                if case .message(.reply(let r), _) = item { refused = r }
            }
        }
        XCTAssertEqual(refused?.status, .unsupported)
        XCTAssertEqual(refused?.message, "the guest is not reading commands")
    }
}
