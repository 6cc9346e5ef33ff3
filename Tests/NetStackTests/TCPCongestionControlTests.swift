import Testing
@testable import NetStack
import NetStackTestSupport

/// RFC 5681's arithmetic, checked on the value alone with numbers worked out by hand.
@Suite struct TCPCongestionControlTests {
    @Test func initialWindowIsTenSegments() {
        let control = TCPCongestionControl(mss: 1460)
        #expect(control.cwnd == 14_600)          // RFC 6928
        #expect(control.ssthresh == 65_535)
        #expect(control.duplicateAcks == 0)
        #expect(control.sendWindow(peerWindow: 65_535) == 14_600)
        #expect(control.sendWindow(peerWindow: 3_000) == 3_000)
    }

    @Test func slowStartGrowsByAtMostOneSegmentPerAck() {
        var control = TCPCongestionControl(mss: 1000)
        control.newDataAcknowledged(500)          // less than a segment: that much
        #expect(control.cwnd == 10_500)
        control.newDataAcknowledged(4_000)        // a stretch ACK: still one segment
        #expect(control.cwnd == 11_500)
    }

    @Test func congestionAvoidanceGrowsBySegmentSquaredOverWindow() {
        var control = TCPCongestionControl(mss: 1000)
        _ = control.duplicateAcknowledged(flight: 30_000)
        _ = control.duplicateAcknowledged(flight: 30_000)
        let third = control.duplicateAcknowledged(flight: 30_000)   // ssthresh = cwnd = 15,000
        #expect(third)
        #expect(control.cwnd == 15_000 && control.ssthresh == 15_000)
        control.newDataAcknowledged(1_000)        // 1000·1000/15000 = 66
        #expect(control.cwnd == 15_066)
        #expect(control.duplicateAcks == 0)
    }

    @Test func windowIsCapped() {
        var control = TCPCongestionControl(mss: 1460)
        for _ in 0..<100 { control.newDataAcknowledged(1460) }
        #expect(control.cwnd == TCPCongestionControl.maxWindow)
    }

    @Test func thirdDuplicateAckHalvesTheFlight() {
        var control = TCPCongestionControl(mss: 1000)
        let answers = (0..<4).map { _ in control.duplicateAcknowledged(flight: 8_000) }
        #expect(answers == [false, false, true, false])
        #expect(control.ssthresh == 4_000 && control.cwnd == 4_000)
        // The fourth and later change nothing (no window inflation).
        _ = control.duplicateAcknowledged(flight: 2_000)
        #expect(control.ssthresh == 4_000 && control.cwnd == 4_000)
    }

    @Test func lossThresholdIsAtLeastTwoSegments() {
        var control = TCPCongestionControl(mss: 1000)
        for _ in 0..<3 { _ = control.duplicateAcknowledged(flight: 1_500) }
        #expect(control.ssthresh == 2_000 && control.cwnd == 2_000)
    }

    @Test func timeoutShrinksToOneSegment() {
        var control = TCPCongestionControl(mss: 1000)
        _ = control.duplicateAcknowledged(flight: 9_000)
        control.retransmissionTimedOut(flight: 9_000)
        #expect(control.cwnd == 1_000 && control.ssthresh == 4_500 && control.duplicateAcks == 0)
        control.newDataAcknowledged(1_000)        // slow start again, below ssthresh
        #expect(control.cwnd == 2_000)
    }
}
