// Congestion control (RFC 5681), all of its arithmetic in one value: the congestion window
// (cwnd) and slow-start threshold (ssthresh) in bytes, and the duplicate-ACK count.
//
// - The initial window is 10 segments (RFC 6928); ssthresh starts at 65535 (RFC 5681 §3.1:
//   "arbitrarily high").
// - An ACK for new data grows cwnd: by min(bytes acknowledged, SMSS) below ssthresh (slow
//   start, §3.1 eq. 2), by SMSS·SMSS/cwnd at or above it (congestion avoidance, eq. 3), at
//   most `maxWindow`.
// - The third duplicate ACK is a lost segment (§3.2): ssthresh = max(FlightSize/2, 2·SMSS)
//   (eq. 4) and cwnd = ssthresh; the caller retransmits. There is no fast recovery's
//   window inflation: further duplicates change nothing until new data is acknowledged.
// - A retransmission timeout (§3.1, eq. 4 and the loss window): ssthresh as above, cwnd one
//   segment.
//
// The connection decides what counts as new data or a duplicate (TCPSegmentArrival.swift);
// this type only keeps the numbers.

public struct TCPCongestionControl: Equatable, Sendable {
    /// The largest window, whatever the ACKs say: the 16 KiB send buffer is the real limit,
    /// this keeps the arithmetic bounded.
    public static let maxWindow = 64 * 1024
    /// Segments in the initial window (RFC 6928).
    public static let initialSegments = 10

    /// SMSS: the size of the segments we send.
    public private(set) var mss: Int
    public private(set) var cwnd: Int
    public private(set) var ssthresh = 65_535
    /// Duplicate ACKs in a row (reset by an ACK for new data and by a timeout).
    public private(set) var duplicateAcks = 0

    public init(mss: Int) {
        self.mss = mss
        cwnd = TCPCongestionControl.initialSegments * mss
    }

    /// How much may be in flight: the peer's window, limited by ours.
    public func sendWindow(peerWindow: Int) -> Int { Swift.min(peerWindow, cwnd) }

    /// An ACK that acknowledged `acknowledged` bytes of new sequence space.
    public mutating func newDataAcknowledged(_ acknowledged: Int) {
        duplicateAcks = 0
        if cwnd < ssthresh {
            cwnd += Swift.min(acknowledged, mss)
        } else {
            cwnd += Swift.max(1, mss * mss / Swift.max(cwnd, 1))
        }
        cwnd = Swift.min(cwnd, TCPCongestionControl.maxWindow)
    }

    /// A duplicate ACK with `flight` bytes outstanding. True on the third in a row: the
    /// first unacknowledged segment is lost, send it again now (fast retransmit).
    public mutating func duplicateAcknowledged(flight: Int) -> Bool {
        duplicateAcks += 1
        guard duplicateAcks == 3 else { return false }
        ssthresh = lossThreshold(flight: flight)
        cwnd = ssthresh
        return true
    }

    /// The retransmission timer ran out with `flight` bytes outstanding.
    public mutating func retransmissionTimedOut(flight: Int) {
        ssthresh = lossThreshold(flight: flight)
        cwnd = mss
        duplicateAcks = 0
    }

    /// RFC 5681 eq. 4: max(FlightSize / 2, 2·SMSS).
    func lossThreshold(flight: Int) -> Int { Swift.max(flight / 2, 2 * mss) }
}
