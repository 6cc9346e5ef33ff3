import XCTest
@testable import RingsideTUI

final class RingSlotTests: XCTestCase {
    func testEmptyRing() {
        let r = RingIndices(size: 8, availIdx: 0, usedIdx: 0, lastUsedIdx: 0)
        XCTAssertEqual(r.slotStates(), [RingSlotState](repeating: .free, count: 8))
        XCTAssertEqual(r.outstanding, 0)
        XCTAssertEqual(r.pending, 0)
    }

    func testFullRingAllAvailable() {
        // RX after posting every buffer: avail.idx = used.idx + size.
        let r = RingIndices(size: 8, availIdx: 8, usedIdx: 0, lastUsedIdx: 0)
        XCTAssertEqual(r.slotStates(), [RingSlotState](repeating: .avail, count: 8))
    }

    func testUsedPilesUpWhilePaused() {
        let r = RingIndices(size: 8, availIdx: 10, usedIdx: 5, lastUsedIdx: 2)
        // used: slots 2,3,4; avail: slots 5,6,7,0,1 (5 outstanding).
        XCTAssertEqual(r.slotStates(), [.avail, .avail, .used, .used, .used, .avail, .avail, .avail])
        XCTAssertEqual(r.pending, 3)
        XCTAssertEqual(r.outstanding, 5)
    }

    func testWrappedWindowAcrossSlotZero() {
        let r = RingIndices(size: 8, availIdx: 14, usedIdx: 12, lastUsedIdx: 6)
        // last 6 -> slot 6, used 12 -> slot 4: used 6,7,0,1,2,3; avail slots 4,5.
        XCTAssertEqual(r.slotStates(), [.used, .used, .used, .used, .avail, .avail, .used, .used])
    }

    func testSixteenBitWrapAround() {
        // Indices run freely mod 2^16: avail has wrapped past 65535, used and last-seen have not.
        let r = RingIndices(size: 256, availIdx: 2, usedIdx: 65534, lastUsedIdx: 65533)
        XCTAssertEqual(r.outstanding, 4)
        XCTAssertEqual(r.pending, 1)
        let states = r.slotStates()
        XCTAssertEqual(states[253], .used)           // 65533 % 256
        XCTAssertEqual(states[254], .avail)          // 65534
        XCTAssertEqual(states[255], .avail)
        XCTAssertEqual(states[0], .avail)            // 65536 ≡ 0
        XCTAssertEqual(states[1], .avail)
        XCTAssertEqual(states[2], .free)
        XCTAssertEqual(states.filter { $0 == .free }.count, 251)
        // The pointers land on the right cells.
        let cells = r.cells(count: 256)
        XCTAssertTrue(cells[2].availMark)
        XCTAssertTrue(cells[254].usedMark)
        XCTAssertTrue(cells[253].lastSeenMark)
        XCTAssertEqual(cells[253].markLetter, "L")
    }

    func testSixteenBitWrapFullRing() {
        let r = RingIndices(size: 256, availIdx: 200, usedIdx: 65480, lastUsedIdx: 65480)
        XCTAssertEqual(r.outstanding, 256)
        XCTAssertEqual(r.slotStates(), [RingSlotState](repeating: .avail, count: 256))
    }

    func testBucketedCellsKeepTheMostImportantState() {
        let r = RingIndices(size: 256, availIdx: 257, usedIdx: 2, lastUsedIdx: 1)
        let cells = r.cells(count: 64)        // 4 slots per cell
        XCTAssertEqual(cells.count, 64)
        XCTAssertEqual(cells[0].state, .used)  // slot 1 used wins over avail
        XCTAssertEqual(cells[1].state, .avail)
    }

    // MARK: Every pointer visible

    func letters(_ strip: [RingStripColumn]) -> String {
        String(String.UnicodeScalarView(strip.compactMap { if case .pointer(let l) = $0 { return l } else { return nil } }))
    }

    func testFullReceiveRingShowsAUAndLThoughTheyShareASlot() {
        // 256 posted RX buffers: avail.idx = used.idx + 256, so A, U and L are one slot.
        let r = RingIndices(size: 256, availIdx: 256 + 40, usedIdx: 40, lastUsedIdx: 40)
        for columns in [8, 20, 45, 63, 100, 259, 300] {
            let strip = r.strip(columns: columns, pointers: r.driverPointers)
            XCTAssertLessThanOrEqual(strip.count, columns)
            XCTAssertEqual(letters(strip), "LUA", "every pointer drawn at \(columns) columns")
            XCTAssertEqual(strip.filter { $0 == .cell(.avail) }.count, strip.count - 3)
        }
        // One cell per slot: the three stand just before slot 40.
        let strip = r.strip(columns: 259, pointers: r.driverPointers)
        XCTAssertEqual(Array(strip[40..<44]), [.pointer("L"), .pointer("U"), .pointer("A"), .cell(.avail)])
    }

    func testOnePendingEntryShowsLUAndTheUsedSlot() {
        // One used element pending at slot 40; U at 41 with A (ring full).
        let r = RingIndices(size: 256, availIdx: 256 + 41, usedIdx: 41, lastUsedIdx: 40)
        for columns in [20, 60, 259] {
            let strip = r.strip(columns: columns, pointers: r.driverPointers)
            XCTAssertEqual(letters(strip), "LUA", "at \(columns) columns")
            XCTAssertTrue(strip.contains(.cell(.used)), "the pending entry's █ shows at \(columns) columns")
        }
        let strip = r.strip(columns: 259, pointers: r.driverPointers)
        XCTAssertEqual(Array(strip[40..<45]), [.pointer("L"), .cell(.used), .pointer("U"), .pointer("A"), .cell(.avail)])
    }

    func testDevicePointerIsDrawnToo() {
        let r = RingIndices(size: 256, availIdx: 256 + 41, usedIdx: 41, lastUsedIdx: 40)
        let pointers = r.driverPointers + [RingPointer("D", 41)]
        let strip = r.strip(columns: 30, pointers: pointers)
        XCTAssertEqual(letters(strip), "LUAD")
        XCTAssertLessThanOrEqual(strip.count, 30)
        // Wrapped indices: D far from the others.
        let far = r.strip(columns: 30, pointers: r.driverPointers + [RingPointer("D", 65535)])
        XCTAssertEqual(letters(far), "LUAD")
        XCTAssertEqual(far.last, .cell(.avail))
        XCTAssertEqual(far[far.count - 2], .pointer("D"), "65535 is slot 255, the last cell")
        XCTAssertTrue(r.strip(columns: 4, pointers: pointers).isEmpty, "no room for the pointers and a cell")
    }

    func testHealthFlags() {
        var a = QueueActivity()
        let stuck = WireQueueStatusFixture.status(avail: 300, used: 50, last: 44, free: 0, pending: 6, paused: false)
        a.note(stuck, uptime: 1, now: 10)
        a.note(stuck, uptime: 2, now: 11.5)
        XCTAssertTrue(a.health(stuck, size: 256, isReceive: true, now: 11.5).stuck)
        var paused = stuck; paused.paused = true
        XCTAssertFalse(a.health(paused, size: 256, isReceive: true, now: 11.5).stuck)
        let full = WireQueueStatusFixture.status(avail: 256, used: 0, last: 0, free: 0, pending: 0, paused: false)
        XCTAssertTrue(a.health(full, size: 256, isReceive: false, now: 0).full)
        XCTAssertFalse(a.health(full, size: 256, isReceive: true, now: 0).full)
    }
}

import Wire
enum WireQueueStatusFixture {
    static func status(avail: UInt16, used: UInt16, last: UInt16, free: UInt16, pending: UInt16, paused: Bool) -> WireQueueStatus {
        WireQueueStatus(queue: 0, availIdx: avail, usedIdx: used, lastUsedIdx: last, freeCount: free, pendingUsed: pending,
                        paused: paused, counters: WireQueueCounters())
    }
}
