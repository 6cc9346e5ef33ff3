import Foundation
import XCTest
import Wire
@testable import RingsideKit

/// Fault injection (issue 11), end to end: the real kernel in real QEMU, commands over its
/// console socket, UDP echo through user-mode networking, `ringside ctl` as a user runs it.
/// Datagrams are marked ("inject TAG #n UUID") so every lost or late echo is identified.
final class InjectTests: QEMUTestCase {
    struct Guest {
        let qemu: QEMUInstance
        let telemetry: TelemetryConnection
        let udpPort: UInt16
        let httpPort: UInt16
    }

    static let rx: UInt8 = 0
    static let tx: UInt8 = 1

    func boot(file: StaticString = #filePath, line: UInt = #line) throws -> Guest? {
        guard let kernel = requireKernel(file: file, line: line) else { return nil }
        let c = try baseConfiguration(kernel: kernel)
        let q = try launchReady(c)
        guard case let .user(udpPort, httpPort) = c.network else { XCTFail("not user networking"); return nil }
        let t = try TelemetryConnection(path: q.run.consoleSocket, timeout: 10)
        guard t.nextCompleteSnapshot(timeout: 10) != nil else {
            XCTFail("no complete snapshot within 10 s of connecting", file: file, line: line)
            return nil
        }
        // Settle ARP/slirp before exact counting.
        _ = try runEchoExchange(port: udpPort, count: 3, sizes: 16...64, seed: 7, perTryTimeout: 1)
        return Guest(qemu: q, telemetry: t, udpPort: udpPort, httpPort: httpPort)
    }

    func status(_ t: TelemetryConnection, _ queue: UInt8) throws -> WireQueueStatus {
        let m = try t.fullSnapshot(timeout: 10)
        return m.queues[m.position(ofQueue: queue)!].status!
    }

    /// Sends `command` and asserts the kernel accepted it.
    func ok(_ t: TelemetryConnection, _ command: WireCommand, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try t.request(command, timeout: 5)
        XCTAssertEqual(r.status, .ok, "\(command): \(r.message)", file: file, line: line)
    }

    func payload(_ tag: String, _ n: Int) -> [UInt8] {
        Array("inject \(tag) #\(n) \(UUID().uuidString)".utf8)
    }

    /// Waits up to `timeout` for the echo of `p` (other datagrams that arrive meanwhile go into `others`).
    func awaitEcho(_ sock: UDPSocket, _ p: [UInt8], timeout: Double, others: inout [[UInt8]]) -> Bool {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline, let r = sock.receive(timeout: deadline - monotonicSeconds()) {
            if r == p { return true }
            others.append(r)
        }
        return false
    }

    /// Sends `count` marked datagrams one at a time; returns the indices that were not echoed
    /// within `timeout` each.
    func lostEchoes(_ g: Guest, tag: String, count: Int, timeout: Double = 0.5) throws -> [Int] {
        let sock = try UDPSocket()
        var lost: [Int] = []
        var others: [[UInt8]] = []
        for i in 0..<count {
            let p = payload(tag, i)
            try sock.send(p, toPort: g.udpPort)
            if !awaitEcho(sock, p, timeout: timeout, others: &others) { lost.append(i) }
        }
        XCTAssertTrue(others.isEmpty, "no stray or late echoes: \(others.map { String(decoding: $0, as: UTF8.self) })")
        return lost
    }

    // MARK: drop

    func testDropThreeOnRXLosesExactlyThreeEchoesAndCountsThem() throws {
        guard let g = try boot() else { return }
        let t = g.telemetry
        // slirp now and then sends the guest a frame of its own (an ARP request), which takes one of
        // the drops: such a window is measured again (up to 3 times); the counter is exact always.
        var exact = false
        for attempt in 0..<3 {
            let before = try status(t, Self.rx)
            try ok(t, .inject(queue: Self.rx, fault: .drop(3)))
            let armed = try status(t, Self.rx)
            XCTAssertEqual(armed.faults, WireQueueFaults(drop: 3), "the snapshot shows the fault while active")
            let lost = try lostEchoes(g, tag: "rxdrop\(attempt)", count: 10)
            let after = try status(t, Self.rx)
            print("drop 3 on net0.rx, attempt \(attempt): lost \(lost); injected drops +\(after.counters.injectedDrops - before.counters.injectedDrops)")
            XCTAssertEqual(after.counters.injectedDrops - before.counters.injectedDrops, 3, "injected drops counted")
            XCTAssertEqual(after.faults, .none, "the fault is spent")
            XCTAssertEqual(after.counters.drops, before.counters.drops, "the stack saw nothing to drop")
            if lost == [0, 1, 2] { exact = true; break }
            XCTAssertLessThanOrEqual(lost.count, 3, "never more than 3 lost")
        }
        XCTAssertTrue(exact, "drop 3 never lost exactly the next 3 datagrams")
        XCTAssertEqual(try lostEchoes(g, tag: "rxdrop-after", count: 5), [], "echo works after the drops")
    }

    func testDropTwoOnTXLosesExactlyTwoEchoes() throws {
        guard let g = try boot() else { return }
        let t = g.telemetry
        let before = try status(t, Self.tx)
        try ok(t, .inject(queue: Self.tx, fault: .drop(2)))
        let lost = try lostEchoes(g, tag: "txdrop", count: 8)
        let after = try status(t, Self.tx)
        XCTAssertEqual(lost, [0, 1], "the next two echoes are dropped on their way out")
        XCTAssertEqual(after.counters.injectedDrops - before.counters.injectedDrops, 2)
        // Only the 6 echoes sent reached the device (and, now and then, an ARP reply to slirp).
        let txPackets = after.counters.packets - before.counters.packets
        XCTAssertTrue((6...7).contains(txPackets), "net0.tx +\(txPackets) packets: the 2 dropped echoes never reached the device")
        XCTAssertEqual(after.faults, .none)
    }

    // MARK: corrupt

    func testCorruptOneOnRXFailsOneChecksumCountedAsADrop() throws {
        guard let g = try boot() else { return }
        let t = g.telemetry
        let before = try status(t, Self.rx)
        _ = t.receive(timeout: 0)   // forget events so far
        try ok(t, .inject(queue: Self.rx, fault: .corrupt(1)))
        let lost = try lostEchoes(g, tag: "rxcorrupt", count: 6)
        let event = t.wait(timeout: 3) { item in
            if case .message(.event(let e), _) = item, case .drop(0, .badChecksum) = e.kind { return true }
            return false
        }
        let after = try status(t, Self.rx)
        XCTAssertEqual(lost, [0], "the corrupted datagram fails its UDP checksum; the others are echoed")
        XCTAssertEqual(after.counters.injectedCorruptions - before.counters.injectedCorruptions, 1)
        XCTAssertEqual(after.counters.drops - before.counters.drops, 1, "the stack dropped it and net0.rx counts it")
        XCTAssertNotNil(event, "a drop event with reason badChecksum")
        XCTAssertEqual(after.faults, .none)
    }

    func testCorruptOneOnTXLosesOneEcho() throws {
        guard let g = try boot() else { return }
        let t = g.telemetry
        try ok(t, .inject(queue: Self.tx, fault: .corrupt(1)))
        // The corrupted echo reaches slirp, which checks UDP checksums and drops it.
        XCTAssertEqual(try lostEchoes(g, tag: "txcorrupt", count: 4), [0])
        XCTAssertEqual(try status(t, Self.tx).counters.injectedCorruptions, 1)
    }

    // MARK: starve

    func testStarveRXStallsOnceThePostedBuffersAreUsedAndUnstarveRecovers() throws {
        guard let g = try boot() else { return }
        let t = g.telemetry
        try ok(t, .inject(queue: Self.rx, fault: .starve))
        let starving = try status(t, Self.rx)
        XCTAssertTrue(starving.faults.starving)
        let posted = ringDistance(from: starving.usedIdx, to: starving.availIdx)
        XCTAssertGreaterThan(posted, 0)
        // Each datagram uses a posted buffer that is not reposted: after `posted` of them the
        // device has nowhere to put the next one.
        let sock = try UDPSocket()
        var echoed = 0, firstLost: Int?
        var others: [[UInt8]] = []
        for i in 0..<(posted + 5) {
            let p = payload("starve", i)
            try sock.send(p, toPort: g.udpPort)
            if awaitEcho(sock, p, timeout: firstLost == nil ? 1 : 0.3, others: &others) {
                echoed += 1
                XCTAssertNil(firstLost, "datagram \(i) echoed after datagram \(firstLost ?? -1) was lost")
            } else if firstLost == nil {
                firstLost = i
            }
        }
        let stalled = try status(t, Self.rx)
        print("starve: \(posted) buffers posted, \(echoed) echoed, first lost #\(firstLost ?? -1); avail \(stalled.availIdx) used \(stalled.usedIdx)")
        XCTAssertEqual(stalled.availIdx, stalled.usedIdx, "every posted buffer used: the ring is empty")
        XCTAssertLessThanOrEqual(echoed, posted)
        XCTAssertGreaterThanOrEqual(echoed, posted - 2, "about every posted buffer carried a datagram (slirp may send an ARP)")
        XCTAssertNotNil(firstLost, "datagrams past the posted buffers are not echoed")
        XCTAssertTrue(others.isEmpty, "nothing arrived while starving: \(others.count)")

        // unstarve: the buffers are posted again; QEMU delivers what it queued meanwhile, then new
        // datagrams echo. No restart.
        try ok(t, .inject(queue: Self.rx, fault: .unstarve))
        let recovered = try status(t, Self.rx)
        XCTAssertFalse(recovered.faults.starving)
        XCTAssertGreaterThan(ringDistance(from: recovered.usedIdx, to: recovered.availIdx), 0, "buffers posted again")
        _ = sock.receive(timeout: 0.5)   // late echoes of queued datagrams, if QEMU kept them
        while sock.receive(timeout: 0.2) != nil {}
        XCTAssertEqual(try lostEchoes(g, tag: "unstarved", count: 10), [], "echo works again")
        XCTAssertTrue(g.qemu.process.isRunning)
    }

    // MARK: nokick / kick

    func testNokickOnTXKeepsAnEchoPendingUntilKick() throws {
        guard let g = try boot() else { return }
        let t = g.telemetry
        // Both notification modes: make test runs this again with virtio.event_idx=off.
        let eventIdx = !QEMUConfiguration.environmentAppend.contains("virtio.event_idx=off")
        XCTAssertEqual(try t.fullSnapshot(timeout: 10).queues[Int(Self.tx)].ring?.eventIdx, eventIdx)
        let before = try status(t, Self.tx)
        try ok(t, .inject(queue: Self.tx, fault: .nokick(5)))
        let sock = try UDPSocket()
        let p = payload("nokick", 0)
        var others: [[UInt8]] = []
        try sock.send(p, toPort: g.udpPort)
        XCTAssertFalse(awaitEcho(sock, p, timeout: 1.5, others: &others), "the echo waits in the TX ring: its kick was withheld")
        let pending = try status(t, Self.tx)
        print("nokick: avail \(pending.availIdx) used \(pending.usedIdx), withheld \(pending.counters.kicksWithheld - before.counters.kicksWithheld), faults \(pending.faults)")
        XCTAssertEqual(pending.counters.kicksWithheld - before.counters.kicksWithheld, 1, "one kick withheld")
        XCTAssertEqual(pending.faults.nokick, 4, "4 more kicks to withhold")
        XCTAssertEqual(ringDistance(from: pending.usedIdx, to: pending.availIdx), 1, "the echo is published but the device has not used it")
        XCTAssertEqual(pending.counters.kicks, before.counters.kicks, "no kick sent")

        try ok(t, .kick(queue: Self.tx))
        XCTAssertTrue(awaitEcho(sock, p, timeout: 2, others: &others), "kick makes the echo leave")
        let kicked = try status(t, Self.tx)
        XCTAssertEqual(kicked.counters.kicks, before.counters.kicks + 1, "the kick command counts as a kick")
        XCTAssertEqual(kicked.usedIdx, kicked.availIdx, "the device used it")
        try ok(t, .inject(queue: Self.tx, fault: .clear))
        XCTAssertEqual(try status(t, Self.tx).faults, .none)
        XCTAssertEqual(try lostEchoes(g, tag: "after-clear", count: 5), [])

        // /metrics has the same counters (fetched once TX kicks again: its reply leaves on net0.tx).
        guard findExecutable("curl") != nil else { return XCTFail("curl is not installed") }
        let metrics = try runCommand(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:\(g.httpPort)/metrics"]).output
        func value(_ name: String, _ queue: String) -> Int? {
            metrics.split(separator: "\n").first { $0.hasPrefix("\(name){queue=\"\(queue)\"} ") }
                .flatMap { Int($0.split(separator: " ").last ?? "") }
        }
        XCTAssertEqual(value("ringside_queue_kicks_withheld_total", "net0.tx"), 1, String(metrics.prefix(300)))
        XCTAssertEqual(value("ringside_queue_inject_nokick_remaining", "net0.tx"), 0)
        XCTAssertEqual(value("ringside_queue_injected_drops_total", "net0.rx"), 0)
        XCTAssertEqual(value("ringside_queue_noirq", "net0.rx"), 0)
        XCTAssertNotNil(value("ringside_queue_interrupts_suppressed_total", "net0.rx"))
        XCTAssertTrue(metrics.contains("# HELP ringside_queue_interrupts_suppressed_total Used elements the device published that the driver had not asked to be interrupted for"))
    }

    // MARK: noirq / poll

    func testNoirqOnRXHoldsADatagramUntilPollAndClearRestoresService() throws {
        guard let g = try boot() else { return }
        let t = g.telemetry
        let before = try status(t, Self.rx)
        try ok(t, .inject(queue: Self.rx, fault: .noirq))
        let sock = try UDPSocket()
        var others: [[UInt8]] = []
        let p0 = payload("noirq", 0)
        try sock.send(p0, toPort: g.udpPort)
        XCTAssertFalse(awaitEcho(sock, p0, timeout: 1.5, others: &others), "not echoed while noirq is on")
        let held = try status(t, Self.rx)
        print("noirq: used \(held.usedIdx) last used \(held.lastUsedIdx), interrupts +\(held.counters.interrupts - before.counters.interrupts), ignored +\(held.counters.interruptsIgnored - before.counters.interruptsIgnored)")
        XCTAssertEqual(ringDistance(from: held.lastUsedIdx, to: held.usedIdx), 1, "the datagram waits in the used ring")
        XCTAssertTrue(held.faults.noirq)
        XCTAssertGreaterThanOrEqual(held.counters.interruptsIgnored - before.counters.interruptsIgnored, 1,
                                    "the device interrupted and the driver ignored it")

        let polled = try t.request(.poll(queue: Self.rx))
        XCTAssertEqual(polled.status, .ok, polled.message)
        XCTAssertEqual(polled.message, "took 1 used elements")
        XCTAssertTrue(awaitEcho(sock, p0, timeout: 2, others: &others), "poll delivers it: the echo arrives")

        // Still noirq: the next one waits too; clear lets the loop take it.
        let p1 = payload("noirq", 1)
        try sock.send(p1, toPort: g.udpPort)
        XCTAssertFalse(awaitEcho(sock, p1, timeout: 1, others: &others), "noirq lasts until clear")
        try ok(t, .inject(queue: Self.rx, fault: .clear))
        XCTAssertTrue(awaitEcho(sock, p1, timeout: 2, others: &others), "clear restores service: the held datagram is echoed")
        XCTAssertEqual(try status(t, Self.rx).faults, .none)
        XCTAssertTrue(others.isEmpty)
        XCTAssertEqual(try lostEchoes(g, tag: "noirq-cleared", count: 5), [])
    }

    /// net0.tx runs with used-buffer notifications off (its completions are reclaimed on the
    /// transmit path), so `noirq` there makes the driver ask for interrupts and then ignore them:
    /// a driver losing the interrupts it asked for. The echo still leaves (publishing is not
    /// affected), its completion stays in the used ring, the device's interrupt is counted as
    /// ignored, the detector raises IRQ LOST? on net0.tx; `poll` takes the completion and the
    /// alarm clears; `clear` turns TX interrupts off again and later completions raise no alarm.
    func testNoirqOnTXAsksForInterruptsIgnoresThemAndTheDetectorSeesIt() throws {
        guard let g = try boot() else { return }
        let t = g.telemetry
        func txAlarms() throws -> [NotificationAlarm] {
            let m = try t.fullSnapshot(timeout: 10)
            return m.alarms(queue: m.position(ofQueue: Self.tx)!).filter { $0.kind == .interruptLost }
        }
        let before = try status(t, Self.tx)
        try ok(t, .inject(queue: Self.tx, fault: .noirq))
        let sock = try UDPSocket()
        var others: [[UInt8]] = []
        let p0 = payload("txnoirq", 0)
        let sentAt = Double(try t.fullSnapshot(timeout: 10).uptimeNs) / 1e9
        try sock.send(p0, toPort: g.udpPort)
        XCTAssertTrue(awaitEcho(sock, p0, timeout: 2, others: &others), "noirq on TX does not stop publishing")
        var alarm: NotificationAlarm?
        let deadline = monotonicSeconds() + 5
        while alarm == nil && monotonicSeconds() < deadline {
            alarm = try txAlarms().first
            if alarm == nil { usleep(50_000) }
        }
        let held = try status(t, Self.tx)
        print("tx noirq: used \(held.usedIdx) last used \(held.lastUsedIdx), interrupts +\(held.counters.interrupts - before.counters.interrupts), ignored +\(held.counters.interruptsIgnored - before.counters.interruptsIgnored); \(alarm.map { "IRQ LOST? after \(String(format: "%.3f", $0.now - sentAt)) s: \($0.detail)" } ?? "no alarm")")
        XCTAssertNotNil(alarm, "IRQ LOST? on net0.tx while its completion waits under noirq")
        XCTAssertGreaterThanOrEqual(ringDistance(from: held.lastUsedIdx, to: held.usedIdx), 1, "the completion waits in the used ring")
        XCTAssertGreaterThanOrEqual(held.counters.interruptsIgnored - before.counters.interruptsIgnored, 1,
                                    "the driver asked, the device interrupted, the driver ignored it")

        let polled = try t.request(.poll(queue: Self.tx))
        XCTAssertEqual(polled.status, .ok, polled.message)
        // The alarm is judged on fresh snapshots: poll them (a loaded host delivers them late)
        // rather than looking twice 0.7 s apart.
        var alarmGone = false
        let clearDeadline = monotonicSeconds() + 5
        while !alarmGone && monotonicSeconds() < clearDeadline {
            alarmGone = try txAlarms().isEmpty
            if !alarmGone { usleep(50_000) }
        }
        XCTAssertTrue(alarmGone, "poll took the completion: the alarm clears")
        try ok(t, .inject(queue: Self.tx, fault: .clear))
        let cleared = try status(t, Self.tx)
        XCTAssertEqual(try lostEchoes(g, tag: "txnoirq-cleared", count: 20), [])
        usleep(1_000_000)   // completions left for the next pass raise nothing: interrupts are off again
        XCTAssertTrue(try txAlarms().isEmpty, "no IRQ LOST? once TX interrupts are off again")
        XCTAssertLessThanOrEqual(try status(t, Self.tx).counters.interrupts - cleared.counters.interrupts, 1,
                                 "TX interrupts off again after clear")
        XCTAssertTrue(others.isEmpty)
    }

    // MARK: the lost-notification detector sees what was injected

    /// Each lost notification made on purpose raises the host's alarm for it (KICK LOST?, IRQ
    /// LOST?, STARVED: Sources/Wire/NotificationDetector.swift), and the cure clears it.
    func testInjectedFaultsRaiseTheDetectorsAlarmsAndTheCureClearsThem() throws {
        guard let g = try boot() else { return }
        let t = g.telemetry
        /// Waits for the alarm to be up (or down); returns it when raised.
        @discardableResult
        func waitAlarm(_ kind: NotificationAlarmKind, queue: UInt8, raised: Bool, line: UInt = #line) throws -> NotificationAlarm? {
            let deadline = monotonicSeconds() + 5
            while monotonicSeconds() < deadline {
                let m = try t.fullSnapshot(timeout: 10)
                let up = m.alarms(queue: m.position(ofQueue: queue)!).first { $0.kind == kind }
                if (up != nil) == raised { return up }
                usleep(50_000)
            }
            XCTFail("\(kind) on queue \(queue) never \(raised ? "raised" : "cleared")", line: line)
            return nil
        }
        let sock = try UDPSocket()
        var others: [[UInt8]] = []

        try ok(t, .inject(queue: Self.tx, fault: .nokick(1)))
        let p0 = payload("alarm", 0)
        // The kernel's clock just before the datagram: the alarm's own times are on it.
        let sentAt = Double(try t.fullSnapshot(timeout: 10).uptimeNs) / 1e9
        let hostSentAt = monotonicSeconds()
        try sock.send(p0, toPort: g.udpPort)
        let kickAlarm = try waitAlarm(.kickLost, queue: Self.tx, raised: true)
        if let a = kickAlarm {
            // The issue: KICK LOST? within 1 s of the lost kick (0.5 s of nothing moving, then the
            // next 10 Hz snapshot). Measured on the kernel's clock, so a busy host's late delivery
            // of snapshots does not count against the detector.
            print("nokick → KICK LOST?: \(String(format: "%.3f", a.now - sentAt)) s on the kernel's clock, \(String(format: "%.3f", monotonicSeconds() - hostSentAt)) s on the host's; \(a.detail)")
            XCTAssertLessThanOrEqual(a.now - sentAt, 1.0, "KICK LOST? within 1 s of the withheld kick")
            XCTAssertEqual(a.waiting, 1, "one echo waits in net0.tx")
        }
        try ok(t, .kick(queue: Self.tx))
        XCTAssertTrue(awaitEcho(sock, p0, timeout: 2, others: &others))
        try waitAlarm(.kickLost, queue: Self.tx, raised: false)

        try ok(t, .inject(queue: Self.rx, fault: .noirq))
        let p1 = payload("alarm", 1)
        let p1SentAt = Double(try t.fullSnapshot(timeout: 10).uptimeNs) / 1e9
        try sock.send(p1, toPort: g.udpPort)
        if let a = try waitAlarm(.interruptLost, queue: Self.rx, raised: true) {
            print("noirq → IRQ LOST?: \(String(format: "%.3f", a.now - p1SentAt)) s on the kernel's clock; \(a.detail)")
            XCTAssertLessThanOrEqual(a.now - p1SentAt, 1.0, "IRQ LOST? within 1 s")
        }
        try ok(t, .poll(queue: Self.rx))
        XCTAssertTrue(awaitEcho(sock, p1, timeout: 2, others: &others))
        try waitAlarm(.interruptLost, queue: Self.rx, raised: false)
        try ok(t, .inject(queue: Self.rx, fault: .clear))

        try ok(t, .inject(queue: Self.rx, fault: .starve))
        let posted = try status(t, Self.rx)
        for i in 0..<ringDistance(from: posted.usedIdx, to: posted.availIdx) {
            let p = payload("alarm-starve", i)
            try sock.send(p, toPort: g.udpPort)
            _ = awaitEcho(sock, p, timeout: 1, others: &others)
        }
        try waitAlarm(.starved, queue: Self.rx, raised: true)
        try ok(t, .inject(queue: Self.rx, fault: .unstarve))
        try waitAlarm(.starved, queue: Self.rx, raised: false)
        while sock.receive(timeout: 0.3) != nil {}
        XCTAssertEqual(try lostEchoes(g, tag: "alarm-after", count: 3), [])
    }

    // MARK: hostile input

    func testHostileInjectCommandsAreRefusedCleanly() throws {
        guard let g = try boot() else { return }
        let t = g.telemetry
        func expect(_ c: WireCommand, _ s: WireReplyStatus, _ contains: String = "", line: UInt = #line) throws {
            let r = try t.request(c)
            XCTAssertEqual(r.status, s, "\(c): \(r.message)", line: line)
            if !contains.isEmpty { XCTAssertTrue(r.message.contains(contains), "\(c): \(r.message)", line: line) }
        }
        try expect(.inject(queue: 9, fault: .drop(1)), .unknownQueue)
        try expect(.inject(queue: 255, fault: .clear), .unknownQueue)
        try expect(.kick(queue: 200), .unknownQueue)
        try expect(.poll(queue: 4), .unknownQueue)
        try expect(.inject(queue: Self.rx, fault: .drop(0)), .badCommand, "count")
        try expect(.inject(queue: Self.tx, fault: .corrupt(0)), .badCommand, "count")
        try expect(.inject(queue: Self.tx, fault: .nokick(0)), .badCommand, "count")
        try expect(.inject(queue: Self.tx, fault: .starve), .unsupported, "receive queues")
        try expect(.inject(queue: Self.tx, fault: .unstarve), .unsupported, "receive queues")
        for console: UInt8 in 2...3 {
            try expect(.inject(queue: console, fault: .noirq), .unsupported, "telemetry")
            try expect(.inject(queue: console, fault: .drop(65535)), .unsupported, "telemetry")
            try expect(.poll(queue: console), .unsupported)
        }
        try expect(.kick(queue: 3), .ok)        // a doorbell is harmless anywhere
        try expect(.poll(queue: Self.tx), .ok)
        // Huge counts are fine; clear ends them.
        try expect(.inject(queue: Self.rx, fault: .corrupt(65535)), .ok)
        try expect(.inject(queue: Self.rx, fault: .clear), .ok)
        // A malformed inject (fault kind 99) and a truncated one: badCommand, nothing changes.
        for payload: [UInt8] in [[10, 0, 99], [10, 0, 1], [11], [12, 0, 0]] {
            var body: [UInt8] = [WireProtocol.version, WireMessageType.command.rawValue, 0x10, 0x27, 0, 0] + payload
            let crc = WireCRC32C.checksum(body)
            for i in 0..<4 { body.append(UInt8(truncatingIfNeeded: crc >> (8 * i))) }
            var frame: [UInt8] = [0]
            WireCOBS.encode(body, appendingTo: &frame)
            frame.append(0)
            try t.sendRaw(frame)
            let reply = t.wait(timeout: 5) { item in
                if case .message(.reply(let r), _) = item { return r.commandSeq == 10000 }
                return false
            }
            guard case .message(.reply(let r), _)? = reply else { XCTFail("no reply to malformed \(payload)"); continue }
            XCTAssertEqual(r.status, .badCommand, "\(payload)")
        }
        let after = try t.fullSnapshot(timeout: 10)
        for q in after.queues { XCTAssertEqual(q.status?.faults, WireQueueFaults.none, q.info.name) }
        XCTAssertTrue(g.qemu.process.isRunning)
        _ = try runEchoExchange(port: g.udpPort, count: 20, sizes: 1...1472, seed: 11)
    }

    // MARK: ringside ctl

    func testCtlInjectKickPollAndStats() throws {
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found; build it with `swift build`") }
        guard let g = try boot() else { return }
        let sock = g.qemu.run.consoleSocket
        g.telemetry.close()   // QEMU's console socket takes one client

        let inject = try runCommand([bin, "ctl", sock, "inject", "net0.tx", "nokick", "5"], timeout: 20)
        XCTAssertEqual(inject.status, .exited(0), inject.output)
        XCTAssertEqual(inject.output, "net0.tx: nokick 5\n")
        let stats = try runCommand([bin, "ctl", sock, "stats"], timeout: 20)
        XCTAssertEqual(stats.status, .exited(0), stats.output)
        let object = try JSONSerialization.jsonObject(with: Data(stats.output.utf8)) as? [String: Any]
        let tx = (object?["queues"] as? [[String: Any]])?[1]
        XCTAssertEqual((tx?["faults"] as? [String: Any])?["nokick"] as? Int, 5, stats.output.prefix(400) + "")
        XCTAssertNotNil((tx?["counters"] as? [String: Any])?["kicks_withheld"])

        let udp = try UDPSocket()
        let p = payload("ctl", 0)
        var others: [[UInt8]] = []
        try udp.send(p, toPort: g.udpPort)
        XCTAssertFalse(awaitEcho(udp, p, timeout: 1, others: &others), "kick withheld")
        let kick = try runCommand([bin, "ctl", sock, "kick", "net0.tx"], timeout: 20)
        XCTAssertEqual(kick.status, .exited(0), kick.output)
        XCTAssertEqual(kick.output, "net0.tx kicked\n")
        XCTAssertTrue(awaitEcho(udp, p, timeout: 2, others: &others), "ctl kick makes the echo leave")

        let poll = try runCommand([bin, "ctl", sock, "poll", "net0.rx"], timeout: 20)
        XCTAssertEqual(poll.status, .exited(0), poll.output)
        XCTAssertTrue(poll.output.hasPrefix("net0.rx polled: took "), poll.output)
        let clear = try runCommand([bin, "ctl", sock, "inject", "1", "clear"], timeout: 20)
        XCTAssertEqual(clear.status, .exited(0), clear.output)

        // Refusals: the kernel's (exit 1, its message) and the language's (exit 1, usage).
        let starve = try runCommand([bin, "ctl", sock, "inject", "net0.tx", "starve"], timeout: 20)
        XCTAssertEqual(starve.status, .exited(1), starve.output)
        XCTAssertTrue(starve.output.contains("receive queues") && starve.output.contains("unsupported"), starve.output)
        let zero = try runCommand([bin, "ctl", sock, "inject", "net0.rx", "drop", "0"], timeout: 20)
        XCTAssertEqual(zero.status, .exited(1), zero.output)
        XCTAssertTrue(zero.output.contains("1…65535"), zero.output)
        let unknown = try runCommand([bin, "ctl", sock, "inject", "net0.rx", "explode"], timeout: 20)
        XCTAssertEqual(unknown.status, .exited(1), unknown.output)
        XCTAssertTrue(unknown.output.contains("unknown fault"), unknown.output)
        XCTAssertEqual(try lostEchoes(g, tag: "ctl-after", count: 3), [])
    }
}
