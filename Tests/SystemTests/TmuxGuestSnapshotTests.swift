import Foundation
import RingsideKit
import RingsideTestSupport
import XCTest

/// The Linux reference guest under `ringside wrap`, in tmux: the header says what is unknown
/// about a foreign guest (its MAC comes from QMP, its heap is n/a), each ring shows the device's
/// own indices (`dev: A … U … inuse …`), `F` lists the features QEMU reports, and `z` takes a
/// consistent snapshot (QMP stop, read every queue, cont) shown frozen with the time the guest
/// was stopped — and the guest runs again afterwards (a UDP echo is answered).
extension TmuxWrapTests {
    func testGuestHeaderDeviceIndicesFeaturesAndConsistentSnapshot() throws {
        let wrap = self
        let memory = wrap.guestMemoryPath("rs-snap")
        defer { wrap.killWrappedGuest(memory: memory) }
        let udp = try freePort(udp: true)
        let tmux = try wrap.wrapLinuxGuest(memory: memory, udp: udp, width: 140, height: 44)
        let client = try UDPSocket()
        var round = 0
        /// Sends a fresh payload until that payload comes back (earlier answers are skipped).
        func echoed(timeout: Double) -> Bool {
            round += 1
            let payload = Array("ping-\(round)".utf8)
            let until = Date().addingTimeInterval(timeout)
            while Date() < until {
                try? client.send(payload, toPort: udp)
                let sent = Date()
                while Date().timeIntervalSince(sent) < 0.3, let reply = client.receive(timeout: 0.3) {
                    if reply == payload { return true }
                }
            }
            return false
        }
        XCTAssertTrue(echoed(timeout: 90), "the Linux guest echoes UDP")

        // 1. Header and the device's indices beside each ring.
        var screen = tmux.waitFor("the device's indices on every queue", timeout: 30) { s in
            s.contains("net0.rx") && s.contains("net0.ctrl") && s.contains("heap n/a (guest)")
                && s.components(separatedBy: "\n").filter { $0.contains("dev: A ") }.count >= 3
        }
        XCTAssertTrue(screen.contains("MAC 52:54:00:12:34:56"), "QEMU's default MAC, from QMP: \(screen)")
        XCTAssertFalse(screen.contains("00:00:00:00:00:00"), screen)
        XCTAssertFalse(screen.contains("heap ?"), screen)
        XCTAssertFalse(screen.contains("≠ device"), "at rest the views agree: \(screen)")

        // F: offered/accepted from QMP.
        try tmux.send("F")
        // (Statuses and features are re-read from QMP every 2 s: the first read may predate the driver.)
        screen = tmux.waitFor("the features panel with the driver's status", timeout: 10) {
            $0.contains("Features and device status") && $0.contains("VERSION_1") && $0.contains("DRIVER_OK")
        }
        XCTAssertTrue(screen.contains("+ ") && screen.contains("MRG_RXBUF"), screen)
        try tmux.send("Escape")
        _ = tmux.waitFor("panel closed", timeout: 5) { !$0.contains("Features and device status") }

        // 2. z: consistent snapshot.
        try tmux.send("z")
        screen = tmux.waitFor("the frozen consistent snapshot", timeout: 15) { $0.contains("FROZEN: guest stopped for") }
        let after = screen.components(separatedBy: "guest stopped for ").dropFirst().first ?? ""
        let ms = String(after.prefix { $0 != " " })
        let value = Double(ms) ?? -1
        XCTAssertGreaterThan(value, 0, ms)
        XCTAssertLessThan(value, 2000, ms)
        screen = tmux.waitFor("the snapshot's log line", timeout: 5) { $0.contains("consistent snapshot (guest stopped for") }
        XCTAssertTrue(screen.contains("queues compared, all agree with the device"), screen)
        XCTAssertFalse(screen.contains("≠ device"), screen)
        // The guest runs again: it answers.
        XCTAssertTrue(echoed(timeout: 10), "the guest runs again after the snapshot")
        // Still frozen after traffic, until f.
        XCTAssertTrue(tmux.capture().contains("FROZEN: guest stopped for"))
        try tmux.send("f")
        _ = tmux.waitFor("live again", timeout: 5) { !$0.contains("FROZEN") }
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(timeout: 15), 0)
    }
}
