import XCTest
import Virtio

/// The adaptive poll window of the kernel's idle loop (Sources/Virtio/virtqueue/PollWindow.swift).
final class PollWindowTests: XCTestCase {
    func testClosedUntilWorkComesWithinReachThenDoublesToTheMaximum() {
        var w = PollWindow(maxNs: 200_000)
        XCTAssertEqual(w.windowNs, 0, "no polling before any work was seen")
        w.halted(idleNs: 150_000, byWork: true)
        XCTAssertEqual(w.windowNs, PollWindow.growStartNs)
        w.halted(idleNs: 150_000, byWork: true)
        XCTAssertEqual(w.windowNs, 100_000)
        w.halted(idleNs: 150_000, byWork: true)
        XCTAssertEqual(w.windowNs, 200_000)
        w.halted(idleNs: 150_000, byWork: true)
        XCTAssertEqual(w.windowNs, 200_000, "capped at the maximum")
        XCTAssertEqual(w.misses, 3, "the first halt had no window: not a miss")
    }

    func testHitsKeepTheWindowAndLongGapsCloseIt() {
        var w = PollWindow(maxNs: 200_000)
        for _ in 0..<3 { w.halted(idleNs: 120_000, byWork: true) }
        XCTAssertEqual(w.windowNs, 200_000)
        for _ in 0..<10 { w.hit() }
        XCTAssertEqual(w.windowNs, 200_000)
        XCTAssertEqual(w.hits, 10)
        // Traffic stops: each gap is longer than any window could catch.
        w.halted(idleNs: 100_000_000, byWork: false)
        XCTAssertEqual(w.windowNs, 100_000)
        w.halted(idleNs: 100_000_000, byWork: true)
        XCTAssertEqual(w.windowNs, 50_000)
        w.halted(idleNs: 100_000_000, byWork: false)
        XCTAssertEqual(w.windowNs, 0, "below the grow start it closes: an idle CPU halts at once")
    }

    func testAGapJustPastTheWindowThatNoWindowCouldCatchShrinksIt() {
        // Polled 200 µs, then halted 50 µs: 250 µs in all, beyond the maximum. Growing could
        // not catch such gaps; keeping the window would spin 200 µs for nothing each time.
        var w = PollWindow(maxNs: 200_000)
        for _ in 0..<3 { w.halted(idleNs: 120_000, byWork: true) }
        w.halted(idleNs: 250_000, byWork: true)
        XCTAssertEqual(w.windowNs, 100_000)
    }

    func testATimerWakeupSaysNothingAboutWork() {
        var w = PollWindow(maxNs: 200_000)
        w.halted(idleNs: 30_000, byWork: false)
        XCTAssertEqual(w.windowNs, 0, "a short sleep ended by the driver's own deadline opens nothing")
    }

    func testMaximumZeroNeverPolls() {
        var w = PollWindow(maxNs: 0)
        for _ in 0..<5 { w.halted(idleNs: 10_000, byWork: true) }
        XCTAssertEqual(w.windowNs, 0)
        XCTAssertEqual(w.misses, 0)
    }

    func testASmallMaximumIsTheWholeWindow() {
        var w = PollWindow(maxNs: 20_000)
        w.halted(idleNs: 10_000, byWork: true)
        XCTAssertEqual(w.windowNs, 20_000, "never more than the maximum, even at the grow start")
    }
}
