import XCTest
@testable import NetStack
import NetStackTestSupport

/// The TCP layer keeps its gauges (active / TIME-WAIT connections) and its timer floor as it
/// goes instead of walking the table per segment (TCPLayer.swift, "Gauges and timers"). Here
/// thousands of random events — opens, half-opens, closes from either side, resets, aborts,
/// TIME-WAIT take-overs and expiry, evictions from a small full table, idle timeouts — run
/// against a real layer, and after each one the running figures must equal a recount.
final class TCPRunningCountTests: XCTestCase {
    func testRunningCountsMatchARecountThroughRandomLifecycles() throws {
        let h = TCPHarness(backlog: 3)
        h.tcp.maxConnections = 12
        h.app.echo = true
        let sources = h.knownSources(3)
        var generator = SplitMix64(seed: 0x6761_7567_6573)  // "gauges"
        func pick(_ n: Int) -> Int { Int(generator.next() % UInt64(n)) }
        var ports: [UInt16: UInt32] = [:]  // a peer's port -> its next ISN
        var evictionsSeen = false, timeWaitTakeovers = false

        func live(_ connection: TCPConnection) -> Bool { connection.state != .closed }
        func segment(_ connection: TCPConnection, _ flags: UInt8, payload: [UInt8] = []) {
            h.send(Ref.tcp(sourcePort: connection.remotePort, seq: connection.rcvNxt, ack: connection.sndNxt,
                           flags: flags, payload: payload, source: connection.remoteAddress),
                   from: connection.remoteAddress)
        }

        for step in 0..<6_000 {
            let table = h.tcp.connections
            let someone = table.isEmpty ? nil : table[pick(table.count)]
            switch pick(11) {
            case 0, 1, 2:
                // A SYN from a small port range, so tuples repeat (TIME-WAIT take-overs);
                // half the time the handshake completes.
                let port = UInt16(40_000 + pick(24))
                let source = sources[pick(sources.count)]
                let isn = ports[port, default: 1] &+ 100_000
                ports[port] = isn
                let wasTimeWait = h.tcp.connections.contains {
                    $0.remotePort == port && $0.remoteAddress == source && $0.state == .timeWait
                }
                let answer = h.send(Ref.tcp(sourcePort: port, seq: isn, ack: 0, flags: TCPFlag.syn, mss: 1460, source: source),
                                    from: source)
                if wasTimeWait, answer.contains(where: { $0.syn }) { timeWaitTakeovers = true }
                if pick(2) == 0, let synAck = answer.first(where: { $0.syn && $0.hasAck }) {
                    h.send(Ref.tcp(sourcePort: port, seq: isn &+ 1, ack: synAck.seq &+ 1, flags: TCPFlag.ack, source: source),
                           from: source)
                }
            case 3:
                if let someone, live(someone) { someone.close() }
                h.drain()
            case 4:
                if let someone, live(someone) { segment(someone, TCPFlag.ack | TCPFlag.fin) }
            case 5:
                if let someone, live(someone) { segment(someone, TCPFlag.ack) }
            case 6:
                if let someone, live(someone), pick(3) == 0 { segment(someone, TCPFlag.rst) }
            case 7:
                if let someone, live(someone), pick(3) == 0 { someone.abort() }
                h.drain()
            case 8:
                if let someone, live(someone) {
                    someone.isIdle = pick(2) == 0
                    segment(someone, TCPFlag.ack, payload: [UInt8(truncatingIfNeeded: step), 1, 2])
                }
            case 9:
                if let someone, live(someone), pick(4) == 0 { someone.idleTimeoutMs = UInt64(1 + pick(3_000)) }
            default:
                // Time passes: SYN-ACK retries, TIME-WAIT expiry, idle timeouts, retransmissions.
                h.poll(at: h.now + UInt64(pick(4) == 0 ? 2_500 : pick(400)))
            }
            if h.stack.counters.tcpEvictions > 0 || h.stack.counters.tcpDropBacklogFull > 0 { evictionsSeen = true }

            var active: UInt64 = 0, timeWait: UInt64 = 0
            for connection in h.tcp.connections {
                XCTAssertNotEqual(connection.state, .closed, "a closed connection left in the table at step \(step)")
                if connection.state == .timeWait { timeWait += 1 } else { active += 1 }
            }
            XCTAssertEqual(h.stack.counters.tcpActiveConnections, active, "active at step \(step)")
            XCTAssertEqual(h.stack.counters.tcpTimeWaitConnections, timeWait, "TIME-WAIT at step \(step)")
            XCTAssertEqual(h.tcp.activeConnectionCount, Int(active))
            // The timer floor never lies late: `poll` skips the table before it.
            let timers = h.tcp.scanTimers()
            if let earliest = timers.earliest {
                XCTAssertLessThanOrEqual(h.tcp.timerFloorMs, earliest, "timer floor at step \(step)")
            }
            if timers.blocked { XCTAssertTrue(h.tcp.outputMayBeBlocked, "blocked output unseen at step \(step)") }
            if h.stack.counters.tcpActiveConnections != active { break }
        }
        // The walk covered what it is for.
        XCTAssertTrue(evictionsSeen)
        XCTAssertTrue(timeWaitTakeovers)
        XCTAssertGreaterThan(h.stack.counters.tcpResetsIn, 0)
        XCTAssertGreaterThan(h.stack.counters.tcpConnectionsTimedOut, 0)
        XCTAssertGreaterThan(h.app.accepted.count, 500)
    }

    /// A timer that falls due is run on time although `poll` skips the table before the floor.
    func testPollRunsTimersOnceTheFloorPasses() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect())
        connection.deadlineMs = h.now + 50
        var fired = 0
        connection.onDeadline = { _ in fired += 1 }
        h.poll(at: h.now + 49)
        XCTAssertEqual(fired, 0)
        h.poll(at: h.now + 1)
        XCTAssertEqual(fired, 1)
    }
}
