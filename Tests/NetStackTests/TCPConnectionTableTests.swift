import XCTest
@testable import NetStack
import NetStackTestSupport

/// The connection table (TCPLayer.swift): segments for no connection, the backlog, the
/// table full and under attack, the memory budget and the bounds on what one connection holds.
final class TCPConnectionTableTests: XCTestCase {
    func testSegmentsWithoutConnection() {
        let h = TCPHarness()
        // No listener on 81: a reset.
        let refused = h.send(Ref.tcp(sourcePort: 50000, destinationPort: 81, seq: 9, ack: 0, flags: TCPFlag.syn))
        XCTAssertTrue(refused.count == 1 && refused.first?.rst == true && refused.first?.ack == 10)
        // An ACK to the listener: a reset with SEQ = SEG.ACK.
        let stray = h.send(Ref.tcp(sourcePort: 50001, seq: 9, ack: 777, flags: TCPFlag.ack))
        XCTAssertTrue(stray.count == 1 && stray.first?.rst == true && stray.first?.seq == 777)
        // A reset to the listener: silence.
        XCTAssertTrue(h.send(Ref.tcp(sourcePort: 50002, seq: 9, ack: 0, flags: TCPFlag.rst)).isEmpty)
        XCTAssertTrue(h.tcp.connections.isEmpty)
    }

    func testBadChecksumAndMalformedSegmentsAreDroppedAndCounted() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect(peerISN: 0))
        var corrupt = Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack, payload: [1, 2, 3])
        corrupt[21] ^= 0xFF
        XCTAssertTrue(h.send(corrupt).isEmpty)
        XCTAssertEqual(h.stack.counters.tcpDropBadChecksum, 1)
        XCTAssertTrue(h.app.data(connection).isEmpty)
        var badOffset = Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack)
        badOffset[12] = 0x20
        XCTAssertTrue(h.send(badOffset).isEmpty)
        XCTAssertTrue(h.send([1, 2, 3]).isEmpty)
        XCTAssertEqual(h.stack.counters.tcpDropMalformed, 2)
        XCTAssertEqual(connection.state, .established)
    }

    func testBacklogLimitsHalfOpenConnections() {
        let h = TCPHarness(backlog: 2)
        for port in UInt16(1000)..<1003 {
            h.send(Ref.tcp(sourcePort: port, seq: 1, ack: 0, flags: TCPFlag.syn))
        }
        XCTAssertEqual(h.tcp.connections.count, 2)
        XCTAssertEqual(h.stack.counters.tcpDropBacklogFull, 1)
    }

    func testManyConnectionsAtOnce() throws {
        let h = TCPHarness()
        h.app.echo = true
        let count = 96
        var connections: [TCPConnection] = []
        for index in 0..<count {
            connections.append(try XCTUnwrap(h.connect(port: UInt16(20000 + index), peerISN: UInt32(index) * 1000)))
        }
        XCTAssertEqual(h.stack.counters.tcpActiveConnections, UInt64(count))
        for index in 0..<count {
            let payload = [UInt8(index), 1, 2]
            let out = h.send(Ref.tcp(sourcePort: UInt16(20000 + index), seq: UInt32(index) * 1000 + 1, ack: 1001,
                                     flags: TCPFlag.ack, payload: payload))
            XCTAssertTrue(out.count == 1 && out.first?.payload == payload && out.first?.destinationPort == UInt16(20000 + index))
        }
        for index in 0..<count {
            h.send(Ref.tcp(sourcePort: UInt16(20000 + index), seq: UInt32(index) * 1000 + 4, ack: 1004, flags: TCPFlag.rst))
        }
        XCTAssertTrue(h.tcp.connections.isEmpty)
        XCTAssertEqual(h.stack.counters.tcpResetsIn, UInt64(count))
        XCTAssertTrue(connections.allSatisfy { $0.state == .closed })
    }

    func testFullTableEvictsTimeWaitFirst() throws {
        let h = TCPHarness()
        let sources = h.knownSources(2)
        for index in 0..<TCPLayer.connectionTableLimit {
            let source = sources[index % 2]
            let connection = try XCTUnwrap(h.connect(port: UInt16(20000 + index), peerISN: 0, source: source))
            if index == 0 {
                connection.close()
                h.drain()
                h.send(Ref.tcp(sourcePort: 20000, seq: 1, ack: 1002, flags: TCPFlag.ack | TCPFlag.fin, source: source),
                       from: source)
                XCTAssertEqual(connection.state, .timeWait)
            }
        }
        XCTAssertEqual(h.tcp.connections.count, TCPLayer.connectionTableLimit)
        XCTAssertNotNil(h.connect(port: 30000, peerISN: 0))
        XCTAssertTrue(!h.tcp.connections.contains { $0.remotePort == 20000 })
        // Full of live, busy connections: the next SYN is refused with a reset, not silence.
        let refused = h.send(Ref.tcp(sourcePort: 30001, seq: 0, ack: 0, flags: TCPFlag.syn))
        XCTAssertTrue(refused.count == 1 && refused.first?.rst == true && refused.first?.ack == 1)
        XCTAssertEqual(h.stack.counters.tcpRefusedFull, 1)
        XCTAssertEqual(h.stack.counters.tcpEvictions, 0)
    }

    /// Full table: a half-open connection goes before an established one, then a closing
    /// one, then the longest-idle one the application marked idle; each evicted peer is
    /// told with a reset.
    func testFullTableEvictsHalfOpenThenClosingThenIdle() throws {
        let h = TCPHarness()
        let sources = h.knownSources(2)
        var established: [TCPConnection] = []
        for index in 0..<(TCPLayer.connectionTableLimit - 1) {
            established.append(try XCTUnwrap(h.connect(port: UInt16(20000 + index), peerISN: 0, source: sources[index % 2])))
        }
        // The last slot: a half-open connection.
        XCTAssertEqual(h.send(Ref.tcp(sourcePort: 29999, seq: 0, ack: 0, flags: TCPFlag.syn, source: sources[0]),
                       from: sources[0]).first?.syn, true)
        XCTAssertEqual(h.tcp.connections.count, TCPLayer.connectionTableLimit)
        XCTAssertNotNil(h.connect(port: 30000, peerISN: 0))
        XCTAssertTrue(!h.tcp.connections.contains { $0.remotePort == 29999 })
        XCTAssertEqual(h.stack.counters.tcpEvictions, 1)
        // Now a closing one (FIN sent, not acknowledged) and an idle one.
        h.now += 100
        established[5].close()
        h.drain()
        h.now += 100
        established[7].isIdle = true
        established[9].isIdle = true
        let reset = h.send(Ref.tcp(sourcePort: 30001, seq: 0, ack: 0, flags: TCPFlag.syn))
        XCTAssertTrue(reset.contains { $0.rst && $0.destinationPort == 20005 })
        XCTAssertEqual(established[5].state, .closed)
        let synAck = try XCTUnwrap(reset.first { $0.syn })
        h.send(Ref.tcp(sourcePort: 30001, seq: 1, ack: synAck.seq &+ 1, flags: TCPFlag.ack))
        XCTAssertTrue(h.send(Ref.tcp(sourcePort: 30002, seq: 0, ack: 0, flags: TCPFlag.syn))
            .contains { $0.rst && $0.destinationPort == 20007 })
        XCTAssertTrue(established[7].state == .closed && h.app.closeReason(established[7]) == .evicted)
        XCTAssertEqual(established[9].state, .established)
        XCTAssertEqual(h.stack.counters.tcpEvictions, 3)
    }

    /// One address may hold three quarters of the table; past that its own idle
    /// connections make room, and with none idle the SYN gets a reset.
    func testOneSourceCannotTakeEverySlot() throws {
        let h = TCPHarness()
        let cap = h.tcp.maxConnectionsPerSource
        XCTAssertEqual(cap, 96)
        var mine: [TCPConnection] = []
        for index in 0..<cap {
            mine.append(try XCTUnwrap(h.connect(port: UInt16(20000 + index), peerISN: 0)))
        }
        let refused = h.send(Ref.tcp(sourcePort: 30000, seq: 0, ack: 0, flags: TCPFlag.syn))
        XCTAssertTrue(refused.count == 1 && refused.first?.rst == true)
        XCTAssertEqual(h.stack.counters.tcpRefusedPerSource, 1)
        // Another address still gets in.
        let other = h.knownSources(1)[0]
        XCTAssertNotNil(h.connect(port: 30001, peerISN: 0, source: other))
        // With one of ours idle, it makes room for our next.
        mine[3].isIdle = true
        XCTAssertTrue(h.send(Ref.tcp(sourcePort: 30002, seq: 0, ack: 0, flags: TCPFlag.syn)).contains { $0.syn })
        XCTAssertEqual(mine[3].state, .closed)
    }

    /// A SYN flood owns no more than the backlog: each new SYN replaces the oldest
    /// half-open entry, so a real client's handshake in between completes.
    func testSynFloodChurnsTheBacklog() throws {
        let h = TCPHarness(backlog: 8)
        let spoofed = h.knownSources(1)[0]
        for index in 0..<1000 {
            h.send(Ref.tcp(sourcePort: UInt16(10000 + index), seq: 7, ack: 0, flags: TCPFlag.syn, source: spoofed),
                   at: h.now + 1, from: spoofed)
        }
        XCTAssertEqual(h.tcp.connections.count, 8)
        XCTAssertEqual(h.stack.counters.tcpDropBacklogFull, 992)
        let client = try XCTUnwrap(h.connect(port: 40000, peerISN: 0, rttMs: 1))
        XCTAssertEqual(client.state, .established)
    }

    /// Only acceptable segments count as activity: out-of-window ACKs do not keep a
    /// connection from its idle timeout.
    func testOutOfWindowSegmentsDoNotRefreshActivity() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect(port: 50000, peerISN: 5000))
        connection.idleTimeoutMs = 30_000
        let start = h.now
        var time = start
        while time < start + 29_000 {
            time += 5_000
            // Far outside the receive window.
            let answer = h.send(Ref.tcp(sourcePort: 50000, seq: 5001 &+ 1_000_000, ack: 1001, flags: TCPFlag.ack), at: time)
            XCTAssertTrue(answer.count == 1 && answer.first?.rst == false)  // the challenge/duplicate ACK
        }
        h.poll(at: start + 30_001)
        XCTAssertEqual(connection.state, .closed)
        XCTAssertEqual(h.stack.counters.tcpConnectionsTimedOut, 1)
    }

    /// A handshake whose memory the budget cannot hold is reset; what is established
    /// before it keeps working, and the budget returns to zero when all are gone.
    func testHandshakeBeyondTheMemoryBudgetIsReset() throws {
        let h = TCPHarness()
        h.stack.memory.limitBytes = 3 * TCPLayer.connectionMemoryBytes
        var open: [TCPConnection] = []
        for index in 0..<3 {
            open.append(try XCTUnwrap(h.connect(port: UInt16(20000 + index), peerISN: 0)))
        }
        XCTAssertEqual(h.stack.memory.reservedBytes, 3 * TCPLayer.connectionMemoryBytes)
        let synAck = h.send(Ref.tcp(sourcePort: 20003, seq: 0, ack: 0, flags: TCPFlag.syn))
        let answer = h.send(Ref.tcp(sourcePort: 20003, seq: 1, ack: synAck[0].seq &+ 1, flags: TCPFlag.ack))
        XCTAssertTrue(answer.count == 1 && answer.first?.rst == true)
        XCTAssertEqual(h.stack.counters.tcpRefusedMemory, 1)
        XCTAssertEqual(h.stack.memory.refusals, 1)
        XCTAssertEqual(h.tcp.connections.count, 3)
        // The others still carry data.
        let echo = h.send(Ref.tcp(sourcePort: 20001, seq: 1, ack: 1001, flags: TCPFlag.ack, payload: [1, 2, 3]))
        XCTAssertEqual(echo.count, 1)
        XCTAssertEqual(h.app.data(open[1]), [1, 2, 3])
        for index in 0..<3 {
            h.send(Ref.tcp(sourcePort: UInt16(20000 + index), seq: index == 1 ? 4 : 1, ack: 1001, flags: TCPFlag.rst))
        }
        XCTAssertEqual(h.stack.memory.reservedBytes, 0)
        // Headroom is checked too: a heap with nothing to spare refuses the next one.
        h.stack.memory.limitBytes = Int.max
        h.stack.memory.headroom = { 0 }
        XCTAssertNil(h.connect(port: 20010, peerISN: 0))
        XCTAssertEqual(h.stack.counters.tcpRefusedMemory, 2)
    }

    func testSendBufferIsBounded() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect(window: 1000))
        let taken = connection.send([UInt8](repeating: 1, count: 100_000))
        XCTAssertEqual(taken, TCPLayer.sendBufferSize)
        XCTAssertEqual(connection.sendSpace, 0)
        h.drain()
        var writable = 0
        connection.onWritable = { _ in writable += 1 }
        h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1501, flags: TCPFlag.ack, window: 1000))
        XCTAssertEqual(writable, 1)
        XCTAssertEqual(connection.sendSpace, 500)
    }

    func testTransmitQueueFullDefersOutput() throws {
        let stack = makeStack(queueCapacity: 8)
        stack.learn(peerIP, peerMAC)
        let tcp = TCPLayer(stack: stack, isnSecret: 1)
        tcp.initialSequenceNumber = { _, _, _ in 1000 }
        var accepted: TCPConnection?
        tcp.listen(port: 80) { accepted = $0 }
        stack.receive(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 6, payload:
            Ref.tcp(sourcePort: 1, seq: 0, ack: 0, flags: TCPFlag.syn, mss: 100))))
        stack.receive(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 6, payload:
            Ref.tcp(sourcePort: 1, seq: 1, ack: 1001, flags: TCPFlag.ack))))
        _ = stack.drain()
        let connection = try XCTUnwrap(accepted)
        connection.send([UInt8](repeating: 1, count: 1000))
        XCTAssertEqual(stack.drain().count, 4)  // capacity 8 less the reserve of 4
        XCTAssertTrue(connection.outputBlocked)
        XCTAssertEqual(stack.nextDeadlineMs(), stack.nowMs)
        stack.poll(nowMs: 0)
        XCTAssertEqual(stack.drain().count, 4)
        XCTAssertEqual(stack.counters.txQueueDrops, 0)
    }
}
