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
}
