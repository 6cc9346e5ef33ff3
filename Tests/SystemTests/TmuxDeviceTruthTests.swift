import Foundation
import XCTest
import RingsideKit

/// The device's view (QMP) in the real TUI: `ringside attach --qmp` and `ringside run`, in tmux,
/// on a real QEMU running the kernel.
final class TmuxDeviceTruthTests: TmuxGuestTestCase {

    /// The device's (A, U, inuse) on `queue`'s title line and the driver's (A, U) on its stats line.
    static func views(_ queue: String, in screen: String) -> (device: [Int], driver: [Int])? {
        let lines = screen.components(separatedBy: "\n")
        guard let i = lines.firstIndex(where: { $0.contains(queue) && $0.contains("dev: A") }) else { return nil }
        func ints(_ line: String, _ pattern: String) -> [Int]? {
            guard let re = try? NSRegularExpression(pattern: pattern),
                  let m = re.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) else { return nil }
            return (1..<m.numberOfRanges).compactMap { Range(m.range(at: $0), in: line).flatMap { Int(line[$0]) } }
        }
        guard let dev = ints(lines[i], #"dev: A (\d+) U (\d+) inuse (\d+)"#),
              let statsLine = lines[(i + 1)...].prefix(4).first(where: { $0.contains("free ") }),
              // A packed queue's positions carry their wrap counters ("A 12w0 U 12w1", virtio 1.2
              // §2.8); QEMU's dev: numbers are offsets without them.
              let drv = ints(statsLine, #"^\s*A (\d+)(?:w[01])? U (\d+)(?:w[01])? "#) else { return nil }
        return (dev, drv)
    }

    /// Both net queues show device numbers whose used index equals the driver's, and no `≠`.
    static func inStep(_ screen: String) -> Bool {
        guard !screen.contains("≠") else { return false }
        for q in ["net0.rx", "net0.tx"] {
            guard let v = views(q, in: screen), v.device[1] == v.driver[1] else { return false }
        }
        return true
    }

    func testAttachWithQMPShowsTheDeviceViewInStep() throws {
        let q = try startGuest()
        let cmd = "attach \(q.run.consoleSocket) --qmp \(q.run.qmpSocket)"
        let tmux = try TmuxSession(ringside: cmd, width: 120, height: 40)
        tmux.waitFor("dev: numbers on both net panels") {
            Self.views("net0.rx", in: $0) != nil && Self.views("net0.tx", in: $0) != nil
        }
        let client = try UDPSocket()
        waitForEcho(client)
        for i in 0..<10 {
            try? client.send(Array("device-truth-\(i)".utf8), toPort: udpPort)
            _ = client.receive(timeout: 1)
        }
        var screen = tmux.waitFor("device and driver in step after traffic") {
            Self.inStep($0) && (Self.views("net0.rx", in: $0)?.device[1] ?? 0) >= 10
        }
        let rxBefore = Self.views("net0.rx", in: screen)
        XCTAssertGreaterThan(rxBefore?.device[1] ?? 0, 10, "the device has used RX buffers: \(String(describing: rxBefore))")
        // Pause net0.rx (space: net0.rx is selected), send 3: the device uses 3 more, the paused
        // driver holds them; both views still agree.
        try tmux.send("Space")
        tmux.waitFor("PAUSED") { $0.contains("PAUSED") }
        for i in 0..<3 { try? client.send(Array("held-\(i)".utf8), toPort: udpPort) }
        screen = tmux.waitFor("3 more used, in step") {
            Self.inStep($0) && (Self.views("net0.rx", in: $0)?.device[1] ?? 0) >= (rxBefore?.device[1] ?? 0) + 3
        }
        print("device truth screen:\n\(screen)")
        // Stays in step (no false disagreement) across a few more samples while idle: every
        // capture for 1.6 s, not one capture after a sleep (which sees one moment, and may catch
        // the two views a sample apart if slirp's own frame arrives then).
        let idleEnd = monotonicSeconds() + 1.6
        while monotonicSeconds() < idleEnd {
            let s = tmux.capture()
            if s.contains("≠") { XCTFail("false disagreement while idle:\n\(s)"); break }
            usleep(50_000)
        }
        tmux.waitFor("still in step") { Self.inStep($0) }
        try tmux.send("Space")
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(), 0)
        // The TUI let go of QMP (QEMU serves one client): we can connect now.
        XCTAssertNoThrow(try QMPClient(path: q.run.qmpSocket, timeout: 3).close())
    }

    func testAttachWithoutQMPSaysUnavailable() throws {
        let q = try startGuest()
        let cmd = "attach \(q.run.consoleSocket) --qmp \(q.run.path)/no-such-qmp.sock"
        let tmux = try TmuxSession(ringside: cmd, width: 120, height: 40)
        tmux.waitFor("device view unavailable") { $0.contains("net0.rx") && $0.contains("device view unavailable") }
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(), 0)
    }

    func testRunShowsTheDeviceView() throws {
        try requireTools()
        let kernel = kernelPath
        let (udp, http) = (try freePort(udp: true), try freePort(udp: false))
        let cmd = "run --kernel \(kernel) --udp-port \(udp) --http-port \(http)"
        let tmux = try TmuxSession(ringside: cmd, width: 120, height: 40)
        tmux.waitFor("dev: numbers in step under ringside run", timeout: 30) { Self.inStep($0) }
        try tmux.send("q")
        // run stops QEMU through QMP after the TUI has let go of it.
        XCTAssertEqual(tmux.exitStatus(timeout: 15), 0)
    }

    /// `ringside run --shared-memory`: every queue of our kernel (net0.rx/tx, con0.rx/tx) shown
    /// three ways — telemetry, the rings in guest memory, the device's QMP view — and at rest
    /// all three agree (`= 3-way`), the memory's indices equal the driver's on screen.
    func testRunSharedMemoryThreeWayAgreementAtRest() throws {
        try requireTools()
        let kernel = kernelPath
        let (udp, http) = (try freePort(udp: true), try freePort(udp: false))
        let cmd = "run --shared-memory --kernel \(kernel) --udp-port \(udp) --http-port \(http)"
        let tmux = try TmuxSession(ringside: cmd, width: 160, height: 44)
        let queues = ["net0.rx", "net0.tx", "con0.rx", "con0.tx"]
        // con0.tx carries the telemetry itself: at rest means few snapshots (1 Hz), so most
        // samples fall between two of them.
        tmux.waitFor("the first snapshot", timeout: 30) { $0.contains("snap ") && $0.contains("drv A ") }
        for _ in 0..<7 { try tmux.send("-") }
        tmux.waitFor("1 Hz", timeout: 10) { $0.contains("snap 1 Hz") }
        func line(_ q: String, _ s: String) -> String? {
            s.components(separatedBy: "\n").first { $0.contains(" " + q + " ") && $0.contains("drv A ") }
        }
        let screen = tmux.waitFor("three-way agreement on all four queues", timeout: 40) { s in
            queues.allSatisfy { q in line(q, s)?.contains("= 3-way") == true }
        }
        XCTAssertFalse(screen.contains("≠"), screen)
        if ProcessInfo.processInfo.environment["SHOW_SCREEN"] != nil { print(screen) }
        // On screen, the latest of each view: equal at rest, except con0.tx, whose memory holds
        // the buffer of the very snapshot on screen (which was taken before posting it).
        for q in queues where q != "con0.tx" {
            guard let l = line(q, screen) else { XCTFail("no three-way line for \(q)"); continue }
            // drv A x U y │ mem A x U y: the same numbers.
            let parts = l.components(separatedBy: " │ ")
            guard parts.count >= 3, let drv = parts[0].range(of: "drv ").map({ String(parts[0][$0.upperBound...]) }) else {
                XCTFail(l); continue
            }
            XCTAssertEqual("mem " + drv, String(parts[1]), l)
        }
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(timeout: 15), 0)
    }
}
