import XCTest
@testable import RingsideTUI
import Wire

/// The descriptor table follows the frame `d` would dump until the user moves the cursor.
final class TableFollowTests: XCTestCase {
    /// `state` after a full net0.rx snapshot: last_used_idx 33926 (slot 134), `used` = `usedIDs`.
    func withRX(_ state: TUIState, lastUsed: UInt16, pending: UInt16, usedIDs: Set<Int>, number: UInt32) -> TUIState {
        var state = state
        let table = (0..<256).map { i in
            WireDescriptor(state: usedIDs.contains(i) ? .used : .avail, addr: 0x14a000 + UInt64(i) * 0x800,
                           len: 2048, flags: 2, next: 0)
        }
        let status = WireQueueStatus(queue: 0, availIdx: lastUsed &+ 256, usedIdx: lastUsed &+ pending, lastUsedIdx: lastUsed,
                                     freeCount: 0, pendingUsed: pending, paused: true, counters: WireQueueCounters())
        state.apply(.message(.snapshot(WireSnapshot(snapshotNumber: number, uptimeNs: 84_000_000_000, rateHz: 10, droppedFrames: 0,
                                                    queues: [WireQueueSnapshot(status: status, descriptors: .full(table))])),
                             seq: number + 1))
        return state
    }

    static let size = ScreenSize(width: 100, height: 40)

    /// The id of the first descriptor row drawn.
    func firstRow(_ state: TUIState) -> Int? {
        let lines = render(state, size: Self.size).text.components(separatedBy: "\n")
        guard let header = lines.firstIndex(where: { $0.hasPrefix("   id state") }), header + 1 < lines.count else { return nil }
        return Int(lines[header + 1].dropFirst().prefix(5).trimmingCharacters(in: .whitespaces))
    }

    func testTableFollowsTheNextPendingFrameUntilTheCursorMoves() {
        var state = sampleState(rxPaused: true)
        let layout = Layout.compute(size: Self.size, queueCount: 4, maxQueueSize: 256)
        state.tableViewportRows = descriptorRowsVisible(paneHeight: layout.descriptors.height)
        XCTAssertEqual(state.tableViewportRows, 7, "100x40 gives the table 7 rows")
        XCTAssertEqual(firstRow(state), 0, "nothing pending: the top of the table")

        // Two frames pending from slot 134; descriptor 10 is used too but comes last in ring order.
        state = withRX(state, lastUsed: 33926, pending: 2, usedIDs: [10, 135, 136], number: 2)
        XCTAssertEqual(state.nextPendingDescriptor, 135)
        XCTAssertEqual(state.displayedTableTop, 134, "one row of context above it")
        XCTAssertEqual(firstRow(state), 134)
        let text = render(state, size: Self.size).text
        XCTAssertTrue(text.contains(" 135 used"), text)
        XCTAssertTrue(text.contains("d dumps next pending"), text)

        // One step later the next frame is 136: the table moves with it.
        state = withRX(state, lastUsed: 33927, pending: 1, usedIDs: [10, 136], number: 3)
        XCTAssertEqual(firstRow(state), 135)

        // The pending frames are gone: the table stays where it was (the app keeps tableTop).
        state.followPending()
        state = withRX(state, lastUsed: 33928, pending: 0, usedIDs: [], number: 4)
        XCTAssertNil(state.nextPendingDescriptor)
        XCTAssertEqual(firstRow(state), 135)

        // New frames, then the user moves: ↓ picks the first row shown, and the table stays put.
        state = withRX(state, lastUsed: 33928, pending: 3, usedIDs: [137, 138, 139], number: 5)
        XCTAssertEqual(firstRow(state), 136)
        _ = state.handle(.down)
        XCTAssertEqual(state.cursor, 136)
        XCTAssertEqual(firstRow(state), 136)
        _ = state.handle(.home)
        XCTAssertEqual(state.cursor, 0)
        state = withRX(state, lastUsed: 33929, pending: 2, usedIDs: [138, 139], number: 6)
        state.followPending()
        XCTAssertEqual(firstRow(state), 0, "with a cursor the table does not follow")

        // Esc: back to dumping the next pending frame, and to following it.
        _ = state.handle(.escape)
        XCTAssertEqual(firstRow(state), 137)

        // Near the end of the table it scrolls only as far as the last row.
        state = withRX(state, lastUsed: 255, pending: 1, usedIDs: [255], number: 7)
        XCTAssertEqual(state.nextPendingDescriptor, 255)
        XCTAssertEqual(firstRow(state), 256 - 7)
    }

    /// Buffers come back out of id order (the kernel reposts its free list last-in first-out):
    /// the next pending frame is the used ring's entry at last_used_idx, not the first `used`
    /// id counted from last_used_idx's slot. With the ring window in the snapshot, the table
    /// follows (and `d` names) that descriptor.
    func testNextPendingIsTheUsedRingEntryAtLastUsedIdx() {
        var state = sampleState(rxPaused: true, rxPending: 3)
        let used = [WireUsedElement(id: 2, len: 70), WireUsedElement(id: 0, len: 70), WireUsedElement(id: 1, len: 70)]
        let ring = WireRingView(flags: 0, availFlags: 0, usedFlags: 1, availStart: 0, availEntries: (0..<16).map { UInt16($0) },
                                usedStart: 0, usedEntries: used + (0..<13).map { _ in WireUsedElement(id: 0, len: 0) })
        var snaps: [WireQueueSnapshot] = []
        for q in state.live.model.queues {
            snaps.append(WireQueueSnapshot(status: q.status!, ring: q.info.queue == 0 ? ring : .empty, descriptors: .full(q.descriptors)))
        }
        state.apply(.message(.snapshot(WireSnapshot(snapshotNumber: 2, uptimeNs: 84_000_000_000, rateHz: 10, droppedFrames: 0,
                                                    memory: sampleMemory, queues: snaps)), seq: 3))
        XCTAssertEqual(state.nextPendingDescriptor, 2, "used[0] holds descriptor 2")
    }
}
