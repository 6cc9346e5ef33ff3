import XCTest
import Wire
@testable import RingsideTUI

/// A packed queue's positions (offset | wrap counter << 15, docs/protocol.md §4) drawn as the
/// same ring strip a split queue gets: the slot states are worked out by hand from 2.8.1.
final class PackedRingSlotTests: XCTestCase {
    func status(avail: UInt16, used: UInt16, lastUsed: UInt16) -> WireQueueStatus {
        WireQueueStatus(queue: 0, availIdx: avail, usedIdx: used, lastUsedIdx: lastUsed, freeCount: 0, pendingUsed: 0,
                        paused: false, counters: WireQueueCounters())
    }

    func testFreshReceiveRingIsAllAvailable() {
        // Every one of 8 positions posted: the driver is at 0 on its second lap (wrap 0), the
        // device and the driver's used position at 0, wrap 1.
        let r = RingIndices(size: 8, status: status(avail: 0, used: 0x8000, lastUsed: 0x8000), format: .packed)
        XCTAssertEqual(r.slotStates(), [RingSlotState](repeating: .avail, count: 8))
        XCTAssertEqual(r.pending, 0)
        XCTAssertEqual(r.outstanding, 8)
    }

    func testUsedPilesUpAcrossTheWrap() {
        // Driver used position 6 (wrap 1), device has written 6, 7, 0, 1 (now at 2, wrap 0),
        // driver available position 4, wrap 0: slots 2, 3 still the device's.
        let r = RingIndices(size: 8, status: status(avail: 4, used: 2, lastUsed: 0x8000 | 6), format: .packed)
        XCTAssertEqual(r.slotStates(), [.used, .used, .avail, .avail, .free, .free, .used, .used])
        XCTAssertEqual(r.pending, 4)
        XCTAssertEqual(r.outstanding, 2)
    }

    func testSplitStatusIsReadAsBefore() {
        let s = status(avail: 10, used: 5, lastUsed: 2)
        XCTAssertEqual(RingIndices(size: 8, status: s, format: .split), RingIndices(size: 8, status: s))
    }

    func testEventRequestsAndPositionsRead() {
        XCTAssertEqual(packedPosition(0x8000 | 12), "12w1")
        XCTAssertEqual(packedPosition(3), "3w0")
        XCTAssertEqual(packedEventRequest((offWrap: 0, flags: 0)), "on")
        XCTAssertEqual(packedEventRequest((offWrap: 0, flags: 1)), "off")
        XCTAssertEqual(packedEventRequest((offWrap: 0x8000 | 5, flags: 2)), "@5w1")
    }
}
