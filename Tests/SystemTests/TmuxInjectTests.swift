import Foundation
import XCTest
import RingsideKit

/// Fault injection from the TUI's `:` line (`ringside attach` in tmux on a real QEMU): the
/// badges while a fault is active, the counters after, and kick as the cure for a lost kick.
final class TmuxInjectTests: TmuxGuestTestCase {
    func testColonInjectShowsBadgesCountsAndKickCures() throws {
        let q = try startGuest()
        let cmd = "attach \(q.run.consoleSocket)"
        let tmux = try TmuxSession(ringside: cmd, width: 200, height: 50)
        tmux.waitFor("net0.rx and net0.tx panels") { $0.contains("net0.rx") && $0.contains("net0.tx") && $0.contains("connected") }
        let client = try UDPSocket()
        waitForEcho(client)
        while client.receive(timeout: 0.3) != nil {}

        func command(_ text: String) throws {
            try tmux.send(":")
            try tmux.send("-l", text)
            try tmux.send("Enter")
        }

        // drop 3 on net0.rx: the badge, then exactly the next three datagrams lost.
        try command("inject net0.rx drop 3")
        tmux.waitFor("INJ drop 3 badge") { $0.contains("INJ drop 3") && $0.contains("inject net0.rx drop 3: ok") }
        var lost: [Int] = []
        for i in 0..<6 {
            let p = Array("tmux-drop-\(i)-\(UUID().uuidString)".utf8)
            try client.send(p, toPort: udpPort)
            var echoed = false
            while let r = client.receive(timeout: 0.5) { if r == p { echoed = true; break } }
            if !echoed { lost.append(i) }
        }
        XCTAssertEqual(lost, [0, 1, 2])
        var screen = tmux.waitFor("badge gone, injdrop 3, injected drops in the log") {
            !$0.contains("INJ drop") && $0.contains("injdrop 3") && $0.contains("net0.rx drop: injected")
        }
        print("after drop 3:\n\(screen)")

        // nokick 1 on net0.tx: the echo waits, the counter says why, kick sends it.
        try command("inject net0.tx nokick 1")
        tmux.waitFor("NOKICK 1 badge") { $0.contains("NOKICK 1") }
        let p = Array("tmux-nokick-\(UUID().uuidString)".utf8)
        try client.send(p, toPort: udpPort)
        XCTAssertNil(client.receive(timeout: 1.5), "the echo waits for a kick")
        screen = tmux.waitFor("withheld 1 on net0.tx, badge spent") { $0.contains("withheld 1") && !$0.contains("NOKICK") }
        // The detector's flag on net0.tx's title line and its numbers in the log, in red (a
        // packed ring's in its own words: descriptors and positions, virtio 1.2 §2.8.10).
        let waiting = QEMUConfiguration.environmentPacked ? "available descriptors" : "avail entries"
        screen = tmux.waitFor("KICK LOST? on net0.tx") { s in
            s.split(separator: "\n").contains { $0.contains("net0.tx") && $0.contains("KICK LOST?") }
                && s.contains(waiting + " not consumed")
        }
        print("lost kick:\n\(screen)")
        try command("kick net0.tx")
        XCTAssertEqual(client.receive(timeout: 3), p, ":kick net0.tx sends the echo")
        tmux.waitFor("KICK LOST? cleared") { s in
            !s.split(separator: "\n").contains { $0.contains("KICK LOST?") && !$0.contains("cleared") && !$0.contains(waiting) }
                && s.contains("KICK LOST? cleared after")
        }

        // A fault that makes no sense: the kernel's reason in the log, nothing shown as active.
        try command("inject net0.tx starve")
        screen = tmux.waitFor("refusal in the log") { $0.contains("starve applies to receive queues") }
        XCTAssertFalse(screen.contains("STARVING"), screen)

        // noirq, then clear: the badge comes and goes.
        try command("inject net0.rx noirq")
        tmux.waitFor("NOIRQ badge") { $0.contains("NOIRQ") }
        try command("inject net0.rx clear")
        tmux.waitFor("NOIRQ gone") { !$0.contains("NOIRQ") && $0.contains("inject net0.rx clear: ok") }
        waitForEcho(client)
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(timeout: 10), 0)
    }
}
