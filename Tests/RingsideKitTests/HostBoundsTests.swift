import Foundation
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
            close(fd)
        }
        shared.lock.withLock { shared.done = true }
        while !creator.isFinished { usleep(1000) }
        XCTAssertEqual(shared.wrongModes, [], "files created while sockets were made got other modes than the umask gives")
        XCTAssertEqual(umask(0o022), 0o022, "umask unchanged")

        // The socket works where it was put, replaced an old one each time, and left nothing beside it.
        let fd = try listenUnixSocket(path)
        defer { close(fd) }
        let client = try connectUnixSocket(path)
        close(client)
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
            var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 10_000)
            let fd = accept(listener, nil, nil)
            close(listener)
            guard fd >= 0 else { done.signal(); return }
            var pending: [UInt8] = []
            script({ text in try? writeAll(fd, Array(text.utf8), timeout: 10) }, {
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
}
