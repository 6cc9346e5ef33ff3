import RingsideTestSupport
import XCTest
@testable import RingsideKit

/// The kernel-uptime → wall-clock mapping: least-delay candidate, following a drifting guest clock.
final class KernelClockTests: XCTestCase {
    func testSmallestRecentDelayWinsAndDriftIsFollowed() {
        // The guest's clock runs 1 % fast: at host time t its uptime reads 1.01·t.
        // Messages take 1–20 ms to arrive; the hello took 300 ms (the host was busy).
        var clock = KernelClock(bootWallTime: 1000 + 0.3)
        var delays = SplitMix64(seed: 3)
        var hostTime = 1000.0
        for _ in 0..<600 {  // 60 s of snapshots at 10 Hz
            hostTime += 0.1
            let uptime = UInt64((hostTime - 1000) * 1.01 * 1e9)
            let delay = Double(UInt64.random(in: 1...20, using: &delays)) / 1000
            clock.observe(uptimeNs: uptime, receivedAt: hostTime + delay)
        }
        // A frame stamped just now maps to within the smallest recent delay plus ~3 s of drift.
        let stampNs = UInt64((hostTime - 1000) * 1.01 * 1e9)
        let mapped = try! XCTUnwrap(clock.wallTime(uptimeNs: stampNs))
        XCTAssertEqual(mapped, hostTime, accuracy: 0.05, "mapped \(mapped), truly \(hostTime)")
        // The hello-only mapping would be off by the hello's delay plus 1 % of 60 s.
        let helloOnly = KernelClock(bootWallTime: 1000.3).wallTime(uptimeNs: stampNs)!
        XCTAssertGreaterThan(abs(helloOnly - hostTime), 0.5)
        XCTAssertNil(clock.wallTime(uptimeNs: 0), "0 is the protocol's unknown")
    }
}
