import XCTest
@testable import NetStack
import NetStackTestSupport

/// RFC 5681's arithmetic, checked on the value alone with numbers worked out by hand.
final class TCPCongestionControlTests: XCTestCase {
    func testInitialWindowIsTenSegments() {
        let control = TCPCongestionControl(mss: 1460)
        XCTAssertEqual(control.cwnd, 14_600)          // RFC 6928
        XCTAssertEqual(control.ssthresh, 65_535)
        XCTAssertEqual(control.duplicateAcks, 0)
        XCTAssertEqual(control.sendWindow(peerWindow: 65_535), 14_600)
        XCTAssertEqual(control.sendWindow(peerWindow: 3_000), 3_000)
    }

    func testSlowStartGrowsByAtMostOneSegmentPerAck() {
        var control = TCPCongestionControl(mss: 1000)
        control.newDataAcknowledged(500)          // less than a segment: that much
        XCTAssertEqual(control.cwnd, 10_500)
        control.newDataAcknowledged(4_000)        // a stretch ACK: still one segment
        XCTAssertEqual(control.cwnd, 11_500)
    }

    func testCongestionAvoidanceGrowsBySegmentSquaredOverWindow() {
        var control = TCPCongestionControl(mss: 1000)
        _ = control.duplicateAcknowledged(flight: 30_000)
        _ = control.duplicateAcknowledged(flight: 30_000)
        let third = control.duplicateAcknowledged(flight: 30_000)   // ssthresh = cwnd = 15,000
        XCTAssertTrue(third)
        XCTAssertTrue(control.cwnd == 15_000 && control.ssthresh == 15_000)
        control.newDataAcknowledged(1_000)        // 1000·1000/15000 = 66
        XCTAssertEqual(control.cwnd, 15_066)
        XCTAssertEqual(control.duplicateAcks, 0)
    }

    func testWindowIsCapped() {
        var control = TCPCongestionControl(mss: 1460)
        for _ in 0..<100 { control.newDataAcknowledged(1460) }
        XCTAssertEqual(control.cwnd, TCPCongestionControl.maxWindow)
    }

    func testThirdDuplicateAckHalvesTheFlight() {
        var control = TCPCongestionControl(mss: 1000)
        let answers = (0..<4).map { _ in control.duplicateAcknowledged(flight: 8_000) }
        XCTAssertEqual(answers, [false, false, true, false])
        XCTAssertTrue(control.ssthresh == 4_000 && control.cwnd == 4_000)
        // The fourth and later change nothing (no window inflation).
        _ = control.duplicateAcknowledged(flight: 2_000)
        XCTAssertTrue(control.ssthresh == 4_000 && control.cwnd == 4_000)
    }

    func testLossThresholdIsAtLeastTwoSegments() {
        var control = TCPCongestionControl(mss: 1000)
        for _ in 0..<3 { _ = control.duplicateAcknowledged(flight: 1_500) }
        XCTAssertTrue(control.ssthresh == 2_000 && control.cwnd == 2_000)
    }

    func testTimeoutShrinksToOneSegment() {
        var control = TCPCongestionControl(mss: 1000)
        _ = control.duplicateAcknowledged(flight: 9_000)
        control.retransmissionTimedOut(flight: 9_000)
        XCTAssertTrue(control.cwnd == 1_000 && control.ssthresh == 4_500 && control.duplicateAcks == 0)
        control.newDataAcknowledged(1_000)        // slow start again, below ssthresh
        XCTAssertEqual(control.cwnd, 2_000)
    }
}
