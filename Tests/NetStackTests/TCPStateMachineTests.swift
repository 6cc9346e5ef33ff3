import Testing
@testable import NetStack
import NetStackTestSupport

@Suite struct TCPSequenceTests {
    @Test func comparisonsWrap() {
        #expect(seqLT(0xFFFF_FFF0, 0x10))
        #expect(seqGT(0x10, 0xFFFF_FFF0))
        #expect(seqLE(5, 5) && seqGE(5, 5))
        #expect(!seqLT(0x10, 0xFFFF_FFF0))
        #expect(seqInWindow(0x5, start: 0xFFFF_FFFE, length: 10))
        #expect(!seqInWindow(0x8, start: 0xFFFF_FFFE, length: 10))
        #expect(seqDistance(from: 0xFFFF_FFFE, to: 3) == 5)
    }

    @Test func rtoFollowsRFC6298() {
        let harness = TCPHarness()
        let connection = TCPConnection(localPort: 80, remoteAddress: peerIP, remotePort: 1, layer: harness.tcp)
        #expect(connection.rtoMs == 1000)  // before any sample (RFC 6298 §2.1)
        connection.addRTTSample(100)       // SRTT 100, RTTVAR 50, RTO 100 + 200
        #expect(connection.smoothedRTTMs == 100)
        #expect(connection.rtoMs == 300)
        connection.addRTTSample(100)       // RTTVAR 37.5 → RTO 250
        #expect(connection.rtoMs == 250)
        connection.addRTTSample(1)         // clamps at the 200 ms minimum only if below
        #expect(connection.rtoMs >= 200)
        connection.addRTTSample(500_000)
        #expect(connection.rtoMs == 60_000)
    }

    @Test func mssOptionParsing() {
        let syn = Ref.tcp(sourcePort: 1, seq: 1, ack: 0, flags: TCPFlag.syn, mss: 1200)
        #expect(syn.withUnsafeBytes { TCPOptions.parse($0, headerLength: 24) }.mss == 1200)
        // NOP, NOP, then a truncated option: no MSS, no trap.
        let odd: [UInt8] = Array(repeating: 0, count: 20) + [1, 1, 2]
        #expect(odd.withUnsafeBytes { TCPOptions.parse($0, headerLength: 23) }.mss == nil)
        let zeroLength: [UInt8] = Array(repeating: 0, count: 20) + [5, 0, 2, 4]
        #expect(zeroLength.withUnsafeBytes { TCPOptions.parse($0, headerLength: 24) }.mss == nil)
        let zeroMSS: [UInt8] = Array(repeating: 0, count: 20) + [2, 4, 0, 0]
        #expect(zeroMSS.withUnsafeBytes { TCPOptions.parse($0, headerLength: 24) }.mss == nil)
    }
}

@Suite struct TCPStateMachineTests {
    @Test func handshakeAdvertisesAndHonoursMSS() throws {
        let h = TCPHarness(isn: 7000)
        let synAck = h.send(Ref.tcp(sourcePort: 50000, seq: 100, ack: 0, flags: TCPFlag.syn, mss: 1000))
        #expect(synAck.count == 1)
        let segment = try #require(synAck.first)
        #expect(segment.checksumValid)
        #expect(segment.flags == TCPFlag.syn | TCPFlag.ack)
        #expect(segment.seq == 7000 && segment.ack == 101)
        #expect(segment.mss == 1460)
        #expect(segment.window == 8192)
        #expect(h.stack.counters.tcpActiveConnections == 1)
        #expect(h.app.accepted.isEmpty)  // not before the handshake completes
        let none = h.send(Ref.tcp(sourcePort: 50000, seq: 101, ack: 7001, flags: TCPFlag.ack), at: 20)
        #expect(none.isEmpty)
        let connection = try #require(h.app.accepted.first)
        #expect(connection.state == .established)
        #expect(connection.sendMSS == 1000)
        #expect(connection.smoothedRTTMs == 20)
        #expect(h.stack.counters.tcpConnectionsAccepted == 1)
        // The peer's MSS sets our segment size.
        connection.send([UInt8](repeating: 7, count: 2500))
        let data = h.drain()
        #expect(data.map(\.payload.count) == [1000, 1000, 500])
    }

    @Test func noMSSOptionMeans536() throws {
        let h = TCPHarness()
        h.send(Ref.tcp(sourcePort: 50000, seq: 100, ack: 0, flags: TCPFlag.syn))
        h.send(Ref.tcp(sourcePort: 50000, seq: 101, ack: 1001, flags: TCPFlag.ack))
        let connection = try #require(h.app.accepted.first)
        #expect(connection.sendMSS == 536)
    }

    @Test func dataBothWaysAcrossSequenceWrap() throws {
        let ourISN: UInt32 = 0xFFFF_FF00
        let peerISN: UInt32 = 0xFFFF_FFF0
        let h = TCPHarness(isn: ourISN)
        h.app.echo = true
        let connection = try #require(h.connect(peerISN: peerISN, mss: 100))
        // 300 bytes from the peer, in three segments crossing 2^32 on its side.
        var peerSeq = peerISN &+ 1
        var echoed: [UInt8] = []
        var ourSeq = ourISN &+ 1
        for chunk in 0..<3 {
            let payload = (0..<100).map { UInt8(truncatingIfNeeded: $0 + chunk * 100) }
            let answers = h.send(Ref.tcp(sourcePort: 50000, seq: peerSeq, ack: ourSeq, flags: TCPFlag.ack | TCPFlag.psh,
                                         payload: payload))
            peerSeq &+= 100
            #expect(answers.count == 1)
            for answer in answers {
                #expect(answer.ack == peerSeq)  // the echo carries the ACK
                #expect(answer.seq == ourSeq)
                echoed += answer.payload
                ourSeq &+= UInt32(answer.payload.count)
            }
            h.send(Ref.tcp(sourcePort: 50000, seq: peerSeq, ack: ourSeq, flags: TCPFlag.ack))
        }
        #expect(echoed == (0..<300).map { UInt8(truncatingIfNeeded: $0) })
        #expect(h.app.data(connection).count == 300)
        // Now past 2^32 on our side too: 400 more bytes of ours.
        connection.send([UInt8](repeating: 9, count: 400))
        let out = h.drain()
        #expect(out.count == 4)  // several segments in flight at once
        #expect(out.first?.seq == ourSeq)
        let end = ourSeq &+ 400
        // Past 2^32 on our side: every sequence number the stack sends has wrapped to a
        // small one (numerically below its ISN), and the data ends where the ACK will point.
        #expect(out.allSatisfy { $0.seq < ourISN })
        #expect(out.last.map { $0.seq &+ UInt32($0.payload.count) } == end)
        h.send(Ref.tcp(sourcePort: 50000, seq: peerSeq, ack: end, flags: TCPFlag.ack))
        #expect(connection.sndUna == end)
        #expect(connection.retransmitDeadlineMs == nil)
        #expect(seqLT(0xFFFF_FF00, connection.sndUna))
    }

    @Test func retransmissionTimerBacksOff() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect(rttMs: 10))
        #expect(connection.rtoMs == 200)  // SRTT 10 + 4·5 < 200: the minimum
        h.poll(at: 100)
        connection.send([1, 2, 3])
        let first = h.drain()
        #expect(first.count == 1)
        #expect(h.poll(at: 299).isEmpty)
        var again = h.poll(at: 300)
        #expect(again.count == 1 && again.first?.payload == [1, 2, 3] && again.first?.seq == first.first?.seq)
        #expect(connection.rtoMs == 400)
        #expect(h.poll(at: 699).isEmpty)
        again = h.poll(at: 700)
        #expect(again.count == 1)
        #expect(connection.rtoMs == 800)
        #expect(h.poll(at: 1499).isEmpty)
        #expect(h.poll(at: 1500).count == 1)
        #expect(h.stack.counters.tcpRetransmits == 3)
        #expect(h.stack.counters.tcpTimeouts == 3)
        // Karn: the ACK of a retransmitted segment gives no RTT sample; the backed-off
        // RTO stays until a fresh segment is timed.
        h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1004, flags: TCPFlag.ack), at: 1510)
        #expect(connection.rtoMs == 1600)
        #expect(connection.retransmitDeadlineMs == nil)
        connection.send([4])
        h.drain()
        h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1005, flags: TCPFlag.ack), at: 1530)
        #expect(connection.rtoMs == 200)
    }

    @Test func peerThatVanishesIsReclaimed() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect())
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
        #expect(h.tcp.connections.isEmpty)
        #expect(sawReset)
        #expect(h.app.closeReason(connection) == .timedOut)
        #expect(h.stack.counters.tcpConnectionsTimedOut == 1)
        #expect(h.stack.counters.tcpActiveConnections == 0)
        #expect(h.stack.counters.tcpRetransmits == UInt64(TCPLayer.maxRetransmits))
        #expect(time < 200_000)
    }

    @Test func idleConnectionIsReclaimed() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect())
        connection.idleTimeoutMs = 5_000
        #expect(h.stack.nextDeadlineMs() == h.now + 5_000)
        #expect(h.poll(at: h.now + 4_999).isEmpty)
        let out = h.poll(at: h.now + 1)
        #expect(out.count == 1 && out.first?.rst == true)
        #expect(h.tcp.connections.isEmpty)
        #expect(h.app.closeReason(connection) == .timedOut)
    }

    @Test func halfOpenConnectionIsReclaimed() {
        let h = TCPHarness()
        h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 0, flags: TCPFlag.syn))
        var synAcks = 1
        while let deadline = h.stack.nextDeadlineMs(), !h.tcp.connections.isEmpty {
            synAcks += h.poll(at: deadline).filter(\.syn).count
        }
        #expect(synAcks == 1 + TCPLayer.maxSynAckRetransmits)
        #expect(h.app.accepted.isEmpty)
        #expect(h.stack.counters.tcpActiveConnections == 0)
    }

    @Test func repeatedSynGetsSynAckAgain() {
        let h = TCPHarness()
        h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 0, flags: TCPFlag.syn))
        let again = h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 0, flags: TCPFlag.syn))
        #expect(again.count == 1 && again.first?.syn == true && again.first?.ack == 2)
        #expect(h.tcp.connections.count == 1)
    }

    @Test func outOfOrderSegmentsAreKeptAndUsed() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect(peerISN: 0))
        let a: [UInt8] = Array(repeating: 0xA, count: 100)
        let b: [UInt8] = Array(repeating: 0xB, count: 100)
        let c: [UInt8] = Array(repeating: 0xC, count: 100)
        // c, then b, then a: each early segment draws a duplicate ACK for 1.
        var out = h.send(Ref.tcp(sourcePort: 50000, seq: 201, ack: 1001, flags: TCPFlag.ack, payload: c))
        #expect(out.count == 1 && out.first?.ack == 1)
        out = h.send(Ref.tcp(sourcePort: 50000, seq: 101, ack: 1001, flags: TCPFlag.ack, payload: b))
        #expect(out.count == 1 && out.first?.ack == 1)
        #expect(h.app.data(connection).isEmpty)
        out = h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack, payload: a))
        #expect(out.count == 1 && out.first?.ack == 301)
        #expect(h.app.data(connection) == a + b + c)
        // A duplicate of old data is acknowledged and ignored.
        out = h.send(Ref.tcp(sourcePort: 50000, seq: 101, ack: 1001, flags: TCPFlag.ack, payload: b))
        #expect(out.count == 1 && out.first?.ack == 301)
        #expect(h.app.data(connection).count == 300)
        // Overlapping retransmission: only the new part is taken.
        out = h.send(Ref.tcp(sourcePort: 50000, seq: 251, ack: 1001, flags: TCPFlag.ack, payload: Array(repeating: 0xD, count: 100)))
        #expect(out.first?.ack == 351)
        #expect(h.app.data(connection).count == 350)
    }

    @Test func outOfOrderFinWaitsForTheGap() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect(peerISN: 0))
        h.send(Ref.tcp(sourcePort: 50000, seq: 11, ack: 1001, flags: TCPFlag.ack | TCPFlag.fin, payload: [2, 2]))
        #expect(connection.state == .established)
        let out = h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack, payload: Array(repeating: 1, count: 10)))
        #expect(out.last?.ack == 14)
        #expect(connection.state == .closeWait)
        #expect(h.app.data(connection).count == 12)
    }

    @Test func receiveWindowReflectsFreeSpace() throws {
        let h = TCPHarness()
        h.app.autoRead = false
        let connection = try #require(h.connect(peerISN: 0))
        var seq: UInt32 = 1
        var lastWindow: UInt16 = 0
        for _ in 0..<5 {
            let out = h.send(Ref.tcp(sourcePort: 50000, seq: seq, ack: 1001, flags: TCPFlag.ack,
                                     payload: Array(repeating: 1, count: 1460)))
            seq &+= 1460
            lastWindow = out.last?.window ?? 0
        }
        #expect(lastWindow == UInt16(8192 - 5 * 1460))
        // More than the window: only what fits is taken.
        let out = h.send(Ref.tcp(sourcePort: 50000, seq: seq, ack: 1001, flags: TCPFlag.ack,
                                 payload: Array(repeating: 1, count: 1460)))
        #expect(out.last?.window == 0)
        #expect(out.last?.ack == seq &+ UInt32(8192 - 5 * 1460))
        #expect(connection.bytesAvailable == 8192)
        // Reading opens it again, and the peer is told.
        var sink: [UInt8] = []
        connection.read(into: &sink, maxLength: 4096)
        let update = h.drain()
        #expect(update.count == 1 && update.first?.window == 4096)
    }

    @Test func zeroWindowIsProbed() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect(window: 0))
        connection.send([1, 2, 3])
        #expect(h.drain().isEmpty)  // nothing fits
        let deadline = try #require(connection.retransmitDeadlineMs)
        let probe = h.poll(at: deadline)
        #expect(probe.count == 1 && probe.first?.payload == [1])
        // The window opens: the rest goes.
        let rest = h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1002, flags: TCPFlag.ack, window: 1000))
        #expect(rest.count == 1 && rest.first?.payload == [2, 3])
    }

    @Test func fastRetransmitOnThreeDuplicateAcks() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect(mss: 100))
        connection.send([UInt8](repeating: 5, count: 500))
        #expect(h.drain().count == 5)
        for _ in 0..<2 {
            #expect(h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1101, flags: TCPFlag.ack)).isEmpty)
        }
        h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1101, flags: TCPFlag.ack))
        let third = h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1101, flags: TCPFlag.ack))
        #expect(third.count == 1 && third.first?.seq == 1101 && third.first?.payload.count == 100)
        #expect(h.stack.counters.tcpRetransmits == 1)
    }

    @Test func peerClosesFirst() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect(peerISN: 0))
        let ack = h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack | TCPFlag.fin))
        #expect(ack.count == 1 && ack.first?.ack == 2)
        #expect(connection.state == .closeWait && connection.peerClosed)
        connection.send([1, 2])
        connection.close()
        let fin = h.drain()
        #expect(connection.state == .lastAck)
        #expect(fin.last?.fin == true && fin.flatMap(\.payload) == [1, 2])
        h.send(Ref.tcp(sourcePort: 50000, seq: 2, ack: 1004, flags: TCPFlag.ack))
        #expect(connection.state == .closed)
        #expect(h.tcp.connections.isEmpty)
        #expect(h.app.closeReason(connection) == .closed)
    }

    @Test func weCloseFirstThroughTimeWait() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect(peerISN: 0))
        connection.send([1])
        connection.close()
        let fin = h.drain()
        #expect(fin.last?.fin == true && fin.flatMap(\.payload) == [1])
        #expect(connection.state == .finWait1)
        #expect(connection.sendSpace == 0)
        // Data after our close is acknowledged and discarded (lingering close).
        let ackOfData = h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1003, flags: TCPFlag.ack, payload: [9, 9]))
        #expect(connection.state == .finWait2)
        #expect(ackOfData.first?.ack == 3)
        let last = h.send(Ref.tcp(sourcePort: 50000, seq: 3, ack: 1003, flags: TCPFlag.ack | TCPFlag.fin), at: 100)
        #expect(last.count == 1 && last.first?.ack == 4)
        #expect(connection.state == .timeWait)
        #expect(h.stack.counters.tcpTimeWaitConnections == 1)
        #expect(h.stack.counters.tcpActiveConnections == 0)
        // A retransmitted FIN is acknowledged again.
        let again = h.send(Ref.tcp(sourcePort: 50000, seq: 3, ack: 1003, flags: TCPFlag.ack | TCPFlag.fin), at: 500)
        #expect(again.count == 1 && again.first?.ack == 4)
        #expect(h.stack.nextDeadlineMs() == 500 + TCPLayer.timeWaitMs)
        h.poll(at: 500 + TCPLayer.timeWaitMs - 1)
        #expect(h.tcp.connections.count == 1)
        h.poll(at: 500 + TCPLayer.timeWaitMs)
        #expect(h.tcp.connections.isEmpty)
        #expect(h.stack.counters.tcpTimeWaitConnections == 0)
    }

    @Test func simultaneousCloseGoesThroughClosing() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect(peerISN: 0))
        connection.close()
        h.drain()
        // The peer's FIN crosses ours: it does not acknowledge our FIN.
        h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack | TCPFlag.fin))
        #expect(connection.state == .closing)
        h.send(Ref.tcp(sourcePort: 50000, seq: 2, ack: 1002, flags: TCPFlag.ack))
        #expect(connection.state == .timeWait)
    }

    @Test func finAckedTogetherWithPeerFin() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect(peerISN: 0))
        connection.close()
        h.drain()
        let out = h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1002, flags: TCPFlag.ack | TCPFlag.fin))
        #expect(connection.state == .timeWait)
        #expect(out.count == 1 && out.first?.ack == 2)
    }

    @Test func newSynTakesOverTimeWait() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect(peerISN: 0))
        connection.close()
        h.drain()
        h.send(Ref.tcp(sourcePort: 50000, seq: 1, ack: 1002, flags: TCPFlag.ack | TCPFlag.fin))
        #expect(connection.state == .timeWait)
        let synAck = h.send(Ref.tcp(sourcePort: 50000, seq: 100_000, ack: 0, flags: TCPFlag.syn))
        #expect(synAck.count == 1 && synAck.first?.syn == true)
        #expect(h.tcp.connections.count == 1 && h.tcp.connections.first?.state == .synReceived)
    }

    /// A reset at RCV.NXT ends the connection in every state; one elsewhere in the window
    /// draws a challenge ACK.
    @Test(arguments: [TCPState.synReceived, .established, .finWait1, .finWait2, .closeWait, .closing, .lastAck, .timeWait])
    func resetInEachState(_ state: TCPState) throws {
        let h = TCPHarness()
        var rcvNxt: UInt32 = 1
        var connection: TCPConnection
        if state == .synReceived {
            h.send(Ref.tcp(sourcePort: 50000, seq: 0, ack: 0, flags: TCPFlag.syn))
            connection = try #require(h.tcp.connections.first)
        } else {
            connection = try #require(h.connect(peerISN: 0))
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
        #expect(connection.state == state)
        if state != .synReceived && state != .timeWait {
            let challenge = h.send(Ref.tcp(sourcePort: 50000, seq: rcvNxt &+ 100, ack: 0, flags: TCPFlag.rst))
            #expect(challenge.count == 1 && challenge.first?.hasAck == true && challenge.first?.ack == rcvNxt)
            #expect(connection.state == state)
        }
        let answer = h.send(Ref.tcp(sourcePort: 50000, seq: rcvNxt, ack: 0, flags: TCPFlag.rst))
        #expect(answer.isEmpty)  // never a reset for a reset
        #expect(connection.state == .closed)
        #expect(h.tcp.connections.isEmpty)
        #expect(h.stack.counters.tcpActiveConnections == 0)
        if state == .established || state == .closeWait || state == .finWait1 || state == .finWait2 {
            #expect(h.app.closeReason(connection) == .reset)
        }
    }

    @Test func segmentsWithoutConnection() {
        let h = TCPHarness()
        // No listener on 81: a reset.
        let refused = h.send(Ref.tcp(sourcePort: 50000, destinationPort: 81, seq: 9, ack: 0, flags: TCPFlag.syn))
        #expect(refused.count == 1 && refused.first?.rst == true && refused.first?.ack == 10)
        // An ACK to the listener: a reset with SEQ = SEG.ACK.
        let stray = h.send(Ref.tcp(sourcePort: 50001, seq: 9, ack: 777, flags: TCPFlag.ack))
        #expect(stray.count == 1 && stray.first?.rst == true && stray.first?.seq == 777)
        // A reset to the listener: silence.
        #expect(h.send(Ref.tcp(sourcePort: 50002, seq: 9, ack: 0, flags: TCPFlag.rst)).isEmpty)
        #expect(h.tcp.connections.isEmpty)
    }

    @Test func badChecksumAndMalformedSegmentsAreDroppedAndCounted() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect(peerISN: 0))
        var corrupt = Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack, payload: [1, 2, 3])
        corrupt[21] ^= 0xFF
        #expect(h.send(corrupt).isEmpty)
        #expect(h.stack.counters.tcpDropBadChecksum == 1)
        #expect(h.app.data(connection).isEmpty)
        var badOffset = Ref.tcp(sourcePort: 50000, seq: 1, ack: 1001, flags: TCPFlag.ack)
        badOffset[12] = 0x20
        #expect(h.send(badOffset).isEmpty)
        #expect(h.send([1, 2, 3]).isEmpty)
        #expect(h.stack.counters.tcpDropMalformed == 2)
        #expect(connection.state == .established)
    }

    @Test func backlogLimitsHalfOpenConnections() {
        let h = TCPHarness(backlog: 2)
        for port in UInt16(1000)..<1003 {
            h.send(Ref.tcp(sourcePort: port, seq: 1, ack: 0, flags: TCPFlag.syn))
        }
        #expect(h.tcp.connections.count == 2)
        #expect(h.stack.counters.tcpDropBacklogFull == 1)
    }

    @Test func manyConnectionsAtOnce() throws {
        let h = TCPHarness()
        h.app.echo = true
        let count = 96
        var connections: [TCPConnection] = []
        for index in 0..<count {
            connections.append(try #require(h.connect(port: UInt16(20000 + index), peerISN: UInt32(index) * 1000)))
        }
        #expect(h.stack.counters.tcpActiveConnections == UInt64(count))
        for index in 0..<count {
            let payload = [UInt8(index), 1, 2]
            let out = h.send(Ref.tcp(sourcePort: UInt16(20000 + index), seq: UInt32(index) * 1000 + 1, ack: 1001,
                                     flags: TCPFlag.ack, payload: payload))
            #expect(out.count == 1 && out.first?.payload == payload && out.first?.destinationPort == UInt16(20000 + index))
        }
        for index in 0..<count {
            h.send(Ref.tcp(sourcePort: UInt16(20000 + index), seq: UInt32(index) * 1000 + 4, ack: 1004, flags: TCPFlag.rst))
        }
        #expect(h.tcp.connections.isEmpty)
        #expect(h.stack.counters.tcpResetsIn == UInt64(count))
        #expect(connections.allSatisfy { $0.state == .closed })
    }

    @Test func fullTableEvictsTimeWaitFirst() throws {
        let h = TCPHarness()
        let sources = h.knownSources(2)
        for index in 0..<TCPLayer.connectionTableLimit {
            let source = sources[index % 2]
            let connection = try #require(h.connect(port: UInt16(20000 + index), peerISN: 0, source: source))
            if index == 0 {
                connection.close()
                h.drain()
                h.send(Ref.tcp(sourcePort: 20000, seq: 1, ack: 1002, flags: TCPFlag.ack | TCPFlag.fin, source: source),
                       from: source)
                #expect(connection.state == .timeWait)
            }
        }
        #expect(h.tcp.connections.count == TCPLayer.connectionTableLimit)
        #expect(h.connect(port: 30000, peerISN: 0) != nil)
        #expect(!h.tcp.connections.contains { $0.remotePort == 20000 })
        // Full of live, busy connections: the next SYN is refused with a reset, not silence.
        let refused = h.send(Ref.tcp(sourcePort: 30001, seq: 0, ack: 0, flags: TCPFlag.syn))
        #expect(refused.count == 1 && refused.first?.rst == true && refused.first?.ack == 1)
        #expect(h.stack.counters.tcpRefusedFull == 1)
        #expect(h.stack.counters.tcpEvictions == 0)
    }

    /// Full table: a half-open connection goes before an established one, then a closing
    /// one, then the longest-idle one the application marked idle; each evicted peer is
    /// told with a reset.
    @Test func fullTableEvictsHalfOpenThenClosingThenIdle() throws {
        let h = TCPHarness()
        let sources = h.knownSources(2)
        var established: [TCPConnection] = []
        for index in 0..<(TCPLayer.connectionTableLimit - 1) {
            established.append(try #require(h.connect(port: UInt16(20000 + index), peerISN: 0, source: sources[index % 2])))
        }
        // The last slot: a half-open connection.
        #expect(h.send(Ref.tcp(sourcePort: 29999, seq: 0, ack: 0, flags: TCPFlag.syn, source: sources[0]),
                       from: sources[0]).first?.syn == true)
        #expect(h.tcp.connections.count == TCPLayer.connectionTableLimit)
        #expect(h.connect(port: 30000, peerISN: 0) != nil)
        #expect(!h.tcp.connections.contains { $0.remotePort == 29999 })
        #expect(h.stack.counters.tcpEvictions == 1)
        // Now a closing one (FIN sent, not acknowledged) and an idle one.
        h.now += 100
        established[5].close()
        h.drain()
        h.now += 100
        established[7].isIdle = true
        established[9].isIdle = true
        let reset = h.send(Ref.tcp(sourcePort: 30001, seq: 0, ack: 0, flags: TCPFlag.syn))
        #expect(reset.contains { $0.rst && $0.destinationPort == 20005 })
        #expect(established[5].state == .closed)
        let synAck = try #require(reset.first { $0.syn })
        h.send(Ref.tcp(sourcePort: 30001, seq: 1, ack: synAck.seq &+ 1, flags: TCPFlag.ack))
        #expect(h.send(Ref.tcp(sourcePort: 30002, seq: 0, ack: 0, flags: TCPFlag.syn))
            .contains { $0.rst && $0.destinationPort == 20007 })
        #expect(established[7].state == .closed && h.app.closeReason(established[7]) == .evicted)
        #expect(established[9].state == .established)
        #expect(h.stack.counters.tcpEvictions == 3)
    }

    /// One address may hold three quarters of the table; past that its own idle
    /// connections make room, and with none idle the SYN gets a reset.
    @Test func oneSourceCannotTakeEverySlot() throws {
        let h = TCPHarness()
        let cap = h.tcp.maxConnectionsPerSource
        #expect(cap == 96)
        var mine: [TCPConnection] = []
        for index in 0..<cap {
            mine.append(try #require(h.connect(port: UInt16(20000 + index), peerISN: 0)))
        }
        let refused = h.send(Ref.tcp(sourcePort: 30000, seq: 0, ack: 0, flags: TCPFlag.syn))
        #expect(refused.count == 1 && refused.first?.rst == true)
        #expect(h.stack.counters.tcpRefusedPerSource == 1)
        // Another address still gets in.
        let other = h.knownSources(1)[0]
        #expect(h.connect(port: 30001, peerISN: 0, source: other) != nil)
        // With one of ours idle, it makes room for our next.
        mine[3].isIdle = true
        #expect(h.send(Ref.tcp(sourcePort: 30002, seq: 0, ack: 0, flags: TCPFlag.syn)).contains { $0.syn })
        #expect(mine[3].state == .closed)
    }

    /// A SYN flood owns no more than the backlog: each new SYN replaces the oldest
    /// half-open entry, so a real client's handshake in between completes.
    @Test func synFloodChurnsTheBacklog() throws {
        let h = TCPHarness(backlog: 8)
        let spoofed = h.knownSources(1)[0]
        for index in 0..<1000 {
            h.send(Ref.tcp(sourcePort: UInt16(10000 + index), seq: 7, ack: 0, flags: TCPFlag.syn, source: spoofed),
                   at: h.now + 1, from: spoofed)
        }
        #expect(h.tcp.connections.count == 8)
        #expect(h.stack.counters.tcpDropBacklogFull == 992)
        let client = try #require(h.connect(port: 40000, peerISN: 0, rttMs: 1))
        #expect(client.state == .established)
    }

    /// Only acceptable segments count as activity: out-of-window ACKs do not keep a
    /// connection from its idle timeout.
    @Test func outOfWindowSegmentsDoNotRefreshActivity() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect(port: 50000, peerISN: 5000))
        connection.idleTimeoutMs = 30_000
        let start = h.now
        var time = start
        while time < start + 29_000 {
            time += 5_000
            // Far outside the receive window.
            let answer = h.send(Ref.tcp(sourcePort: 50000, seq: 5001 &+ 1_000_000, ack: 1001, flags: TCPFlag.ack), at: time)
            #expect(answer.count == 1 && answer.first?.rst == false)  // the challenge/duplicate ACK
        }
        h.poll(at: start + 30_001)
        #expect(connection.state == .closed)
        #expect(h.stack.counters.tcpConnectionsTimedOut == 1)
    }

    /// A handshake whose memory the budget cannot hold is reset; what is established
    /// before it keeps working, and the budget returns to zero when all are gone.
    @Test func handshakeBeyondTheMemoryBudgetIsReset() throws {
        let h = TCPHarness()
        h.stack.memory.limitBytes = 3 * TCPLayer.connectionMemoryBytes
        var open: [TCPConnection] = []
        for index in 0..<3 {
            open.append(try #require(h.connect(port: UInt16(20000 + index), peerISN: 0)))
        }
        #expect(h.stack.memory.reservedBytes == 3 * TCPLayer.connectionMemoryBytes)
        let synAck = h.send(Ref.tcp(sourcePort: 20003, seq: 0, ack: 0, flags: TCPFlag.syn))
        let answer = h.send(Ref.tcp(sourcePort: 20003, seq: 1, ack: synAck[0].seq &+ 1, flags: TCPFlag.ack))
        #expect(answer.count == 1 && answer.first?.rst == true)
        #expect(h.stack.counters.tcpRefusedMemory == 1)
        #expect(h.stack.memory.refusals == 1)
        #expect(h.tcp.connections.count == 3)
        // The others still carry data.
        let echo = h.send(Ref.tcp(sourcePort: 20001, seq: 1, ack: 1001, flags: TCPFlag.ack, payload: [1, 2, 3]))
        #expect(echo.count == 1)
        #expect(h.app.data(open[1]) == [1, 2, 3])
        for index in 0..<3 {
            h.send(Ref.tcp(sourcePort: UInt16(20000 + index), seq: index == 1 ? 4 : 1, ack: 1001, flags: TCPFlag.rst))
        }
        #expect(h.stack.memory.reservedBytes == 0)
        // Headroom is checked too: a heap with nothing to spare refuses the next one.
        h.stack.memory.limitBytes = Int.max
        h.stack.memory.headroom = { 0 }
        #expect(h.connect(port: 20010, peerISN: 0) == nil)
        #expect(h.stack.counters.tcpRefusedMemory == 2)
    }

    @Test func sendBufferIsBounded() throws {
        let h = TCPHarness()
        let connection = try #require(h.connect(window: 1000))
        let taken = connection.send([UInt8](repeating: 1, count: 100_000))
        #expect(taken == TCPLayer.sendBufferSize)
        #expect(connection.sendSpace == 0)
        h.drain()
        var writable = 0
        connection.onWritable = { _ in writable += 1 }
        h.send(Ref.tcp(sourcePort: 50000, seq: 5001, ack: 1501, flags: TCPFlag.ack, window: 1000))
        #expect(writable == 1)
        #expect(connection.sendSpace == 500)
    }

    @Test func transmitQueueFullDefersOutput() throws {
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
        let connection = try #require(accepted)
        connection.send([UInt8](repeating: 1, count: 1000))
        #expect(stack.drain().count == 4)  // capacity 8 less the reserve of 4
        #expect(connection.outputBlocked)
        #expect(stack.nextDeadlineMs() == stack.nowMs)
        stack.poll(nowMs: 0)
        #expect(stack.drain().count == 4)
        #expect(stack.counters.txQueueDrops == 0)
    }
}
