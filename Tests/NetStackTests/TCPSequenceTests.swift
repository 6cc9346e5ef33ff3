import XCTest
@testable import NetStack
import NetStackTestSupport

final class TCPSequenceTests: XCTestCase {
    func testComparisonsWrap() {
        XCTAssertTrue(seqLT(0xFFFF_FFF0, 0x10))
        XCTAssertTrue(seqGT(0x10, 0xFFFF_FFF0))
        XCTAssertTrue(seqLE(5, 5) && seqGE(5, 5))
        XCTAssertTrue(!seqLT(0x10, 0xFFFF_FFF0))
        XCTAssertTrue(seqInWindow(0x5, start: 0xFFFF_FFFE, length: 10))
        XCTAssertTrue(!seqInWindow(0x8, start: 0xFFFF_FFFE, length: 10))
        XCTAssertEqual(seqDistance(from: 0xFFFF_FFFE, to: 3), 5)
    }

    func testRtoFollowsRFC6298() {
        let harness = TCPHarness()
        let connection = TCPConnection(localPort: 80, remoteAddress: peerIP, remotePort: 1, layer: harness.tcp)
        XCTAssertEqual(connection.rtoMs, 1000)  // before any sample (RFC 6298 §2.1)
        connection.addRTTSample(100)       // SRTT 100, RTTVAR 50, RTO 100 + 200
        XCTAssertEqual(connection.smoothedRTTMs, 100)
        XCTAssertEqual(connection.rtoMs, 300)
        connection.addRTTSample(100)       // RTTVAR 37.5 → RTO 250
        XCTAssertEqual(connection.rtoMs, 250)
        connection.addRTTSample(1)         // clamps at the 200 ms minimum only if below
        XCTAssertTrue(connection.rtoMs >= 200)
        connection.addRTTSample(500_000)
        XCTAssertEqual(connection.rtoMs, 60_000)
    }

    func testMssOptionParsing() {
        let syn = Ref.tcp(sourcePort: 1, seq: 1, ack: 0, flags: TCPFlag.syn, mss: 1200)
        XCTAssertEqual(syn.withUnsafeBytes { TCPOptions.parse($0, headerLength: 24) }.mss, 1200)
        // NOP, NOP, then a truncated option: no MSS, no trap.
        let odd: [UInt8] = Array(repeating: 0, count: 20) + [1, 1, 2]
        XCTAssertNil(odd.withUnsafeBytes { TCPOptions.parse($0, headerLength: 23) }.mss)
        let zeroLength: [UInt8] = Array(repeating: 0, count: 20) + [5, 0, 2, 4]
        XCTAssertNil(zeroLength.withUnsafeBytes { TCPOptions.parse($0, headerLength: 24) }.mss)
        let zeroMSS: [UInt8] = Array(repeating: 0, count: 20) + [2, 4, 0, 0]
        XCTAssertNil(zeroMSS.withUnsafeBytes { TCPOptions.parse($0, headerLength: 24) }.mss)
    }
}
