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
