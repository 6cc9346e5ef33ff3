import XCTest
@testable import NetStack
import NetStackTestSupport

final class TCPStateMachineTests: XCTestCase {
    func testHandshakeAdvertisesAndHonoursMSS() throws {
        let h = TCPHarness(isn: 7000)
        let synAck = h.send(Ref.tcp(sourcePort: 50000, seq: 100, ack: 0, flags: TCPFlag.syn, mss: 1000))
        XCTAssertEqual(synAck.count, 1)
        let segment = try XCTUnwrap(synAck.first)
        XCTAssertTrue(segment.checksumValid)
        XCTAssertEqual(segment.flags, TCPFlag.syn | TCPFlag.ack)
        XCTAssertTrue(segment.seq == 7000 && segment.ack == 101)
        XCTAssertEqual(segment.mss, 1460)
        XCTAssertEqual(segment.window, 8192)
        XCTAssertEqual(h.stack.counters.tcpActiveConnections, 1)
        XCTAssertTrue(h.app.accepted.isEmpty)  // not before the handshake completes
        let none = h.send(Ref.tcp(sourcePort: 50000, seq: 101, ack: 7001, flags: TCPFlag.ack), at: 20)
        XCTAssertTrue(none.isEmpty)
        let connection = try XCTUnwrap(h.app.accepted.first)
        XCTAssertEqual(connection.state, .established)
        XCTAssertEqual(connection.sendMSS, 1000)
        XCTAssertEqual(connection.smoothedRTTMs, 20)
        XCTAssertEqual(h.stack.counters.tcpConnectionsAccepted, 1)
        // The peer's MSS sets our segment size.
        connection.send([UInt8](repeating: 7, count: 2500))
        let data = h.drain()
        XCTAssertEqual(data.map(\.payload.count), [1000, 1000, 500])
    }

    func testNoMSSOptionMeans536() throws {
        let h = TCPHarness()
        h.send(Ref.tcp(sourcePort: 50000, seq: 100, ack: 0, flags: TCPFlag.syn))
        h.send(Ref.tcp(sourcePort: 50000, seq: 101, ack: 1001, flags: TCPFlag.ack))
        let connection = try XCTUnwrap(h.app.accepted.first)
        XCTAssertEqual(connection.sendMSS, 536)
    }

    func testDataBothWaysAcrossSequenceWrap() throws {
        let ourISN: UInt32 = 0xFFFF_FF00
        let peerISN: UInt32 = 0xFFFF_FFF0
        let h = TCPHarness(isn: ourISN)
        h.app.echo = true
        let connection = try XCTUnwrap(h.connect(peerISN: peerISN, mss: 100))
        // 300 bytes from the peer, in three segments crossing 2^32 on its side.
        var peerSeq = peerISN &+ 1
        var echoed: [UInt8] = []
        var ourSeq = ourISN &+ 1
        for chunk in 0..<3 {
            let payload = (0..<100).map { UInt8(truncatingIfNeeded: $0 + chunk * 100) }
            let answers = h.send(Ref.tcp(sourcePort: 50000, seq: peerSeq, ack: ourSeq, flags: TCPFlag.ack | TCPFlag.psh,
                                         payload: payload))
            peerSeq &+= 100
            XCTAssertEqual(answers.count, 1)
            for answer in answers {
                XCTAssertEqual(answer.ack, peerSeq)  // the echo carries the ACK
                XCTAssertEqual(answer.seq, ourSeq)
                echoed += answer.payload
                ourSeq &+= UInt32(answer.payload.count)
            }
            h.send(Ref.tcp(sourcePort: 50000, seq: peerSeq, ack: ourSeq, flags: TCPFlag.ack))
        }
        XCTAssertEqual(echoed, (0..<300).map { UInt8(truncatingIfNeeded: $0) })
        XCTAssertEqual(h.app.data(connection).count, 300)
        // Now past 2^32 on our side too: 400 more bytes of ours.
        connection.send([UInt8](repeating: 9, count: 400))
        let out = h.drain()
        XCTAssertEqual(out.count, 4)  // several segments in flight at once
        XCTAssertEqual(out.first?.seq, ourSeq)
        let end = ourSeq &+ 400
        // Past 2^32 on our side: every sequence number the stack sends has wrapped to a
        // small one (numerically below its ISN), and the data ends where the ACK will point.
        XCTAssertTrue(out.allSatisfy { $0.seq < ourISN })
        XCTAssertEqual(out.last.map { $0.seq &+ UInt32($0.payload.count) }, end)
        h.send(Ref.tcp(sourcePort: 50000, seq: peerSeq, ack: end, flags: TCPFlag.ack))
        XCTAssertEqual(connection.sndUna, end)
        XCTAssertNil(connection.retransmitDeadlineMs)
        XCTAssertTrue(seqLT(0xFFFF_FF00, connection.sndUna))
    }

    func testRetransmissionTimerBacksOff() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect(rttMs: 10))
        XCTAssertEqual(connection.rtoMs, 200)  // SRTT 10 + 4·5 < 200: the minimum
        h.poll(at: 100)
        connection.send([1, 2, 3])
        let first = h.drain()
        XCTAssertEqual(first.count, 1)
        XCTAssertTrue(h.poll(at: 299).isEmpty)
        var again = h.poll(at: 300)
        XCTAssertTrue(again.count == 1 && again.first?.payload == [1, 2, 3] && again.first?.seq == first.first?.seq)
        XCTAssertEqual(connection.rtoMs, 400)
        XCTAssertTrue(h.poll(at: 699).isEmpty)
        again = h.poll(at: 700)
        XCTAssertEqual(again.count, 1)
        XCTAssertEqual(connection.rtoMs, 800)
        XCTAssertTrue(h.poll(at: 1499).isEmpty)
        XCTAssertEqual(h.poll(at: 1500).count, 1)
        XCTAssertEqual(h.stack.counters.tcpRetransmits, 3)
        XCTAssertEqual(h.stack.counters.tcpTimeouts, 3)
        // Karn: the ACK of a retransmitted segment gives no RTT sample; the backed-off
        // RTO stays until a fresh segment is timed.
        h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1004, flags: TCPFlag.ack), at: 1510)
        XCTAssertEqual(connection.rtoMs, 1600)
        XCTAssertNil(connection.retransmitDeadlineMs)
        connection.send([4])
        h.drain()
        h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1005, flags: TCPFlag.ack), at: 1530)
        XCTAssertEqual(connection.rtoMs, 200)
    }

    func testPeerThatVanishesIsReclaimed() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect())
        connection.send([1, 2, 3])
        h.drain()
        var time: UInt64 = 0
        var sawReset = false
        for _ in 0..<40 {
            guard let deadline = h.stack.nextDeadlineMs() else { break }
            time = deadline
            let out = h.poll(at: time)
            if out.contains(where: \.rst) { sawReset = true }
            if h.tcp.connections.isEmpty { break }
        }
        XCTAssertTrue(h.tcp.connections.isEmpty)
        XCTAssertTrue(sawReset)
        XCTAssertEqual(h.app.closeReason(connection), .timedOut)
        XCTAssertEqual(h.stack.counters.tcpConnectionsTimedOut, 1)
        XCTAssertEqual(h.stack.counters.tcpActiveConnections, 0)
        XCTAssertEqual(h.stack.counters.tcpRetransmits, UInt64(TCPLayer.maxRetransmits))
        XCTAssertTrue(time < 200_000)
    }

    func testIdleConnectionIsReclaimed() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect())
        let start = h.now
        connection.idleTimeoutMs = 5_000
        // nextDeadlineMs may come early, at a deadline cleared since it was set (here the
        // SYN-ACK's retransmission, cleared by the ACK): a poll there does nothing, and then
        // the deadline is exact.
        for _ in 0..<3 {
            guard let early = h.stack.nextDeadlineMs(), early < start + 5_000 else { break }
            XCTAssertTrue(h.poll(at: Swift.max(early, h.now)).isEmpty)
        }
        XCTAssertEqual(h.stack.nextDeadlineMs(), start + 5_000)
        XCTAssertTrue(h.poll(at: start + 4_999).isEmpty)
        let out = h.poll(at: start + 5_000)
        XCTAssertTrue(out.count == 1 && out.first?.rst == true)
        XCTAssertTrue(h.tcp.connections.isEmpty)
        XCTAssertEqual(h.app.closeReason(connection), .timedOut)
    }

    func testHalfOpenConnectionIsReclaimed() {
        let h = TCPHarness()
        h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 0, flags: TCPFlag.syn))
        var synAcks = 1
        while let deadline = h.stack.nextDeadlineMs(), !h.tcp.connections.isEmpty {
            synAcks += h.poll(at: deadline).filter(\.syn).count
        }
        XCTAssertEqual(synAcks, 1 + TCPLayer.maxSynAckRetransmits)
        XCTAssertTrue(h.app.accepted.isEmpty)
        XCTAssertEqual(h.stack.counters.tcpActiveConnections, 0)
    }

    func testRepeatedSynGetsSynAckAgain() {
        let h = TCPHarness()
        h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 0, flags: TCPFlag.syn))
        let again = h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 0, flags: TCPFlag.syn))
        XCTAssertTrue(again.count == 1 && again.first?.syn == true && again.first?.ack == 2)
        XCTAssertEqual(h.tcp.connections.count, 1)
    }

    func testOutOfOrderSegmentsAreKeptAndUsed() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect(peerISN: 0))
        let a: [UInt8] = Array(repeating: 0xA, count: 100)
        let b: [UInt8] = Array(repeating: 0xB, count: 100)
        let c: [UInt8] = Array(repeating: 0xC, count: 100)
        // c, then b, then a: each early segment draws a duplicate ACK for 1.
        var out = h.send(Ref.tcp(sourcePort: 50000, seq: 201, ack: 1001, flags: TCPFlag.ack, payload: c))
        XCTAssertTrue(out.count == 1 && out.first?.ack == 1)
        out = h.send(Ref.tcp(sourcePort: 50000, seq: 101, ack: 1001, flags: TCPFlag.ack, payload: b))
        XCTAssertTrue(out.count == 1 && out.first?.ack == 1)
        XCTAssertTrue(h.app.data(connection).isEmpty)
        out = h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack, payload: a))
        XCTAssertTrue(out.count == 1 && out.first?.ack == 301)
        XCTAssertEqual(h.app.data(connection), a + b + c)
        // A duplicate of old data is acknowledged and ignored.
        out = h.send(Ref.tcp(sourcePort: 50000, seq: 101, ack: 1001, flags: TCPFlag.ack, payload: b))
        XCTAssertTrue(out.count == 1 && out.first?.ack == 301)
        XCTAssertEqual(h.app.data(connection).count, 300)
        // Overlapping retransmission: only the new part is taken.
        out = h.send(Ref.tcp(sourcePort: 50000, seq: 251, ack: 1001, flags: TCPFlag.ack, payload: Array(repeating: 0xD, count: 100)))
        XCTAssertEqual(out.first?.ack, 351)
        XCTAssertEqual(h.app.data(connection).count, 350)
    }

    func testOutOfOrderFinWaitsForTheGap() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect(peerISN: 0))
        h.send(Ref.tcp(sourcePort: 50000, seq: 11, ack: 1001, flags: TCPFlag.ack | TCPFlag.fin, payload: [2, 2]))
        XCTAssertEqual(connection.state, .established)
        let out = h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack, payload: Array(repeating: 1, count: 10)))
        XCTAssertEqual(out.last?.ack, 14)
        XCTAssertEqual(connection.state, .closeWait)
        XCTAssertEqual(h.app.data(connection).count, 12)
    }

    func testReceiveWindowReflectsFreeSpace() throws {
        let h = TCPHarness()
        h.app.autoRead = false
        let connection = try XCTUnwrap(h.connect(peerISN: 0))
        var seq: UInt32 = 1
        var lastWindow: UInt16 = 0
        for _ in 0..<5 {
            let out = h.send(Ref.tcp(sourcePort: 50000, seq: seq, ack: 1001, flags: TCPFlag.ack,
                                     payload: Array(repeating: 1, count: 1460)))
            seq &+= 1460
            lastWindow = out.last?.window ?? 0
        }
        XCTAssertEqual(lastWindow, UInt16(8192 - 5 * 1460))
        // More than the window: only what fits is taken.
        let out = h.send(Ref.tcp(sourcePort: 50000, seq: seq, ack: 1001, flags: TCPFlag.ack,
                                 payload: Array(repeating: 1, count: 1460)))
        XCTAssertEqual(out.last?.window, 0)
        XCTAssertEqual(out.last?.ack, seq &+ UInt32(8192 - 5 * 1460))
        XCTAssertEqual(connection.bytesAvailable, 8192)
        // Reading opens it again, and the peer is told.
        var sink: [UInt8] = []
        connection.read(into: &sink, maxLength: 4096)
        let update = h.drain()
        XCTAssertTrue(update.count == 1 && update.first?.window == 4096)
    }

    func testZeroWindowIsProbed() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect(window: 0))
        connection.send([1, 2, 3])
        XCTAssertTrue(h.drain().isEmpty)  // nothing fits
        let deadline = try XCTUnwrap(connection.retransmitDeadlineMs)
        let probe = h.poll(at: deadline)
        XCTAssertTrue(probe.count == 1 && probe.first?.payload == [1])
        // The window opens: the rest goes.
        let rest = h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1002, flags: TCPFlag.ack, window: 1000))
        XCTAssertTrue(rest.count == 1 && rest.first?.payload == [2, 3])
    }

    func testFastRetransmitOnThreeDuplicateAcks() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect(mss: 100))
        connection.send([UInt8](repeating: 5, count: 500))
        XCTAssertEqual(h.drain().count, 5)
        for _ in 0..<2 {
            XCTAssertTrue(h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1101, flags: TCPFlag.ack)).isEmpty)
        }
        h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1101, flags: TCPFlag.ack))
        let third = h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1101, flags: TCPFlag.ack))
        XCTAssertTrue(third.count == 1 && third.first?.seq == 1101 && third.first?.payload.count == 100)
        XCTAssertEqual(h.stack.counters.tcpRetransmits, 1)
    }

    func testPeerClosesFirst() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect(peerISN: 0))
        let ack = h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack | TCPFlag.fin))
        XCTAssertTrue(ack.count == 1 && ack.first?.ack == 2)
        XCTAssertTrue(connection.state == .closeWait && connection.peerClosed)
        connection.send([1, 2])
        connection.close()
        let fin = h.drain()
        XCTAssertEqual(connection.state, .lastAck)
        XCTAssertTrue(fin.last?.fin == true && fin.flatMap(\.payload) == [1, 2])
        h.send(Ref.tcp(sourcePort: 50000, seq: 2, ack: 1004, flags: TCPFlag.ack))
        XCTAssertEqual(connection.state, .closed)
        XCTAssertTrue(h.tcp.connections.isEmpty)
        XCTAssertEqual(h.app.closeReason(connection), .closed)
    }

    func testWeCloseFirstThroughTimeWait() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect(peerISN: 0))
        connection.send([1])
        connection.close()
        let fin = h.drain()
        XCTAssertTrue(fin.last?.fin == true && fin.flatMap(\.payload) == [1])
        XCTAssertEqual(connection.state, .finWait1)
        XCTAssertEqual(connection.sendSpace, 0)
        // Data after our close is acknowledged and discarded (lingering close).
        let ackOfData = h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1003, flags: TCPFlag.ack, payload: [9, 9]))
        XCTAssertEqual(connection.state, .finWait2)
        XCTAssertEqual(ackOfData.first?.ack, 3)
        let last = h.send(Ref.tcp(sourcePort: 50000, seq: 3, ack: 1003, flags: TCPFlag.ack | TCPFlag.fin), at: 100)
        XCTAssertTrue(last.count == 1 && last.first?.ack == 4)
        XCTAssertEqual(connection.state, .timeWait)
        XCTAssertEqual(h.stack.counters.tcpTimeWaitConnections, 1)
        XCTAssertEqual(h.stack.counters.tcpActiveConnections, 0)
        // A retransmitted FIN is acknowledged again.
        let again = h.send(Ref.tcp(sourcePort: 50000, seq: 3, ack: 1003, flags: TCPFlag.ack | TCPFlag.fin), at: 500)
        XCTAssertTrue(again.count == 1 && again.first?.ack == 4)
        // An early deadline (the FIN's retransmission, cleared by its ACK) is overdue: a poll
        // now does nothing and makes the deadline exact.
        if let early = h.stack.nextDeadlineMs(), early < 500 + TCPLayer.timeWaitMs {
            XCTAssertTrue(h.poll(at: Swift.max(early, h.now)).isEmpty)
        }
        XCTAssertEqual(h.stack.nextDeadlineMs(), 500 + TCPLayer.timeWaitMs)
        h.poll(at: 500 + TCPLayer.timeWaitMs - 1)
        XCTAssertEqual(h.tcp.connections.count, 1)
        h.poll(at: 500 + TCPLayer.timeWaitMs)
        XCTAssertTrue(h.tcp.connections.isEmpty)
        XCTAssertEqual(h.stack.counters.tcpTimeWaitConnections, 0)
    }

    func testSimultaneousCloseGoesThroughClosing() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect(peerISN: 0))
        connection.close()
        h.drain()
        // The peer's FIN crosses ours: it does not acknowledge our FIN.
        h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack | TCPFlag.fin))
        XCTAssertEqual(connection.state, .closing)
        h.send(Ref.tcp(sourcePort: 50000, seq: 2, ack: 1002, flags: TCPFlag.ack))
        XCTAssertEqual(connection.state, .timeWait)
    }

    func testFinAckedTogetherWithPeerFin() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect(peerISN: 0))
        connection.close()
        h.drain()
        let out = h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1002, flags: TCPFlag.ack | TCPFlag.fin))
        XCTAssertEqual(connection.state, .timeWait)
        XCTAssertTrue(out.count == 1 && out.first?.ack == 2)
    }

    func testNewSynTakesOverTimeWait() throws {
        let h = TCPHarness()
        let connection = try XCTUnwrap(h.connect(peerISN: 0))
        connection.close()
        h.drain()
        h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1002, flags: TCPFlag.ack | TCPFlag.fin))
        XCTAssertEqual(connection.state, .timeWait)
        let synAck = h.send(Ref.tcp(sourcePort: 50000, seq: 100_000, ack: 0, flags: TCPFlag.syn))
        XCTAssertTrue(synAck.count == 1 && synAck.first?.syn == true)
        XCTAssertTrue(h.tcp.connections.count == 1 && h.tcp.connections.first?.state == .synReceived)
    }

    /// A reset at RCV.NXT ends the connection in every state; one elsewhere in the window
    /// draws a challenge ACK.
    func testResetInEachState() throws {
        for state in [TCPState.synReceived, .established, .finWait1, .finWait2, .closeWait, .closing, .lastAck, .timeWait] {
            try resetInState(state)
        }
    }

    private func resetInState(_ state: TCPState) throws {
        let h = TCPHarness()
        var rcvNxt: UInt32 = 1
        var connection: TCPConnection
        if state == .synReceived {
            h.send(Ref.tcp(sourcePort: 50000, seq: 0, ack: 0, flags: TCPFlag.syn))
            connection = try XCTUnwrap(h.tcp.connections.first)
        } else {
            connection = try XCTUnwrap(h.connect(peerISN: 0))
            switch state {
            case .finWait1:
                connection.close()
            case .finWait2:
                connection.close()
                h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1002, flags: TCPFlag.ack))
            case .closeWait:
                h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack | TCPFlag.fin))
                rcvNxt = 2
            case .closing:
                connection.close()
                h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack | TCPFlag.fin))
                rcvNxt = 2
            case .lastAck:
                h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack | TCPFlag.fin))
                connection.close()
                rcvNxt = 2
            case .timeWait:
                connection.close()
                h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1002, flags: TCPFlag.ack | TCPFlag.fin))
                rcvNxt = 2
            default: break
            }
            h.drain()
        }
        XCTAssertEqual(connection.state, state, "in \(state)")
        if state != .synReceived && state != .timeWait {
            let challenge = h.send(Ref.tcp(sourcePort: 50000, seq: rcvNxt &+ 100, ack: 0, flags: TCPFlag.rst))
            XCTAssertTrue(challenge.count == 1 && challenge.first?.hasAck == true && challenge.first?.ack == rcvNxt, "in \(state)")
            XCTAssertEqual(connection.state, state, "in \(state)")
        }
        let answer = h.send(Ref.tcp(sourcePort: 50000, seq: rcvNxt, ack: 0, flags: TCPFlag.rst))
        XCTAssertTrue(answer.isEmpty, "in \(state)")  // never a reset for a reset
        XCTAssertEqual(connection.state, .closed, "in \(state)")
        XCTAssertTrue(h.tcp.connections.isEmpty, "in \(state)")
        XCTAssertEqual(h.stack.counters.tcpActiveConnections, 0, "in \(state)")
        if state == .established || state == .closeWait || state == .finWait1 || state == .finWait2 {
            XCTAssertEqual(h.app.closeReason(connection), .reset, "in \(state)")
        }
    }
}
