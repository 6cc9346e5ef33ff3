import XCTest
@testable import RingsideTUI
import RingsideKit
import Wire
import Virtio

/// The ring-contents pane and the features panel as pure renders: what they show, and that
/// they never pass old or missing data off as live.
final class RingPaneTests: XCTestCase {
    /// sampleState with a ring section on net0.rx: 3 pending used elements from used index 0.
    func stateWithRing(now: Double = 100) -> TUIState {
        var state = sampleState(rxPaused: true, rxPending: 3, now: now)
        let availEntries: [UInt16] = (0..<16).map { (k: Int) -> UInt16 in UInt16((244 + k) % 256) }
        var usedEntries: [WireUsedElement] = []
        for k in 0..<16 {
            usedEntries.append(k >= 4 && k < 7 ? WireUsedElement(id: UInt32(k - 4), len: UInt32(60 + k)) : WireUsedElement(id: 0, len: 0))
        }
        let ring = WireRingView(flags: 0, availFlags: 0, usedFlags: 1, availStart: 244, availEntries: availEntries,
                                usedStart: 65532, usedEntries: usedEntries)
        var snaps: [WireQueueSnapshot] = []
        for q in state.live.model.queues {
            snaps.append(WireQueueSnapshot(status: q.status!, ring: q.info.queue == 0 ? ring : .empty, descriptors: .full(q.descriptors)))
        }
        state.apply(.message(.snapshot(WireSnapshot(snapshotNumber: 2, uptimeNs: 84_000_000_000, rateHz: 10, droppedFrames: 0,
                                                    memory: sampleMemory, deviceStatus: [0x0f, 0x4f], queues: snaps)), seq: 3))
        return state
    }

    func testPaneShowsEntriesFlagsAndMarkers() {
        let text = render(stateWithRing(), size: ScreenSize(width: 160, height: 50)).text
        XCTAssertTrue(text.contains("rings net0.rx · 16/256 slots"), text)
        XCTAssertTrue(text.contains("used.flags  NO_NOTIFY"))
        XCTAssertTrue(text.contains("avail.flags 0"))
        XCTAssertTrue(text.contains("no EVENT_IDX: no used/avail_event"))
        // The next used element (used idx 0, slot 0) marked L, with its id and length.
        XCTAssertNotNil(text.firstMatch(of: /L +0→0 +64/), text)
        // used.idx marked U, and I: without EVENT_IDX and with NO_INTERRUPT clear, the device's
        // next used entry fires the next interrupt.
        XCTAssertNotNil(text.firstMatch(of: /UI +3→0 +0/), "used.idx marked U and I")
        XCTAssertNotNil(text.firstMatch(of: #/A +3→3 /#), "avail.idx marked A, no K: NO_NOTIFY")
        XCTAssertTrue(text.contains("next kick off · irq I@3"), text)
    }

    /// With EVENT_IDX, K sits on the avail entry avail_event names and I on the used entry
    /// used_event names (virtio 1.2 §2.7.10), wherever they are in the window.
    func testNextKickAndInterruptMarkersFollowTheEventWords() {
        let state = stateWithRing()
        guard var status = state.live.model.queues[0].status else { return XCTFail("no status") }
        status.availIdx = 250
        status.usedIdx = 65535
        status.lastUsedIdx = 65534
        let ring = WireRingView(flags: WireRingView.eventIdxFlag, availFlags: 0, usedFlags: 0, usedEvent: 65534, availEvent: 248,
                                availStart: 244, availEntries: (0..<16).map { UInt16(244 + $0) },
                                usedStart: 65532, usedEntries: (0..<16).map { _ in WireUsedElement(id: 1, len: 60) })
        let a = availRows(ring, status: status, size: 256, rows: 16)
        XCTAssertEqual(a.filter { $0.text.contains("K") }.map(\.index), [248], a.map(\.text).joined(separator: "\n"))
        XCTAssertTrue(a.first { $0.index == 250 }?.text.hasPrefix("A ") == true)
        let u = usedRows(ring, status: status, size: 256, rows: 16)
        XCTAssertEqual(u.first { $0.index == 65534 }?.text.hasPrefix("LI") , true, u.map(\.text).joined(separator: "\n"))
        XCTAssertEqual(u.filter { $0.text.contains("I") }.count, 1)
        XCTAssertEqual(nextText(NextNotification.kick(status: status, ring: ring), name: "kick", mark: "K"), "kick K@248")
        var off = ring
        off.flags = 0
        off.usedFlags = 1
        off.availFlags = 1
        XCTAssertEqual(nextText(NextNotification.kick(status: status, ring: off), name: "kick", mark: "K"), "kick off")
        XCTAssertEqual(nextText(NextNotification.interrupt(status: status, ring: off), mark: "I"), "I off")
        XCTAssertTrue(usedRows(off, status: status, size: 256, rows: 16).allSatisfy { !$0.text.contains("I") })
    }

    /// Nothing pending: L (last-seen) and U (used.idx) are the same index. Both letters show on
    /// that row; before, U alone was drawn and L vanished from the used ring.
    func testUsedRingShowsLAndUOnTheSameEntry() {
        var state = stateWithRing()
        guard var status = state.live.model.queues[0].status else { return XCTFail("no status") }
        status.lastUsedIdx = status.usedIdx
        let ring = WireRingView(flags: 0, availFlags: 0, usedFlags: 1, availStart: 244, availEntries: (0..<16).map { UInt16(244 + $0) },
                                usedStart: 65532, usedEntries: (0..<16).map { _ in WireUsedElement(id: 1, len: 60) })
        let rows = usedRows(ring, status: status, size: 256, rows: 4)
        let marked = rows.filter { $0.index == status.usedIdx }
        XCTAssertEqual(marked.count, 1)
        XCTAssertTrue(marked[0].text.hasPrefix("LU"), marked[0].text)
        _ = state
    }

    func testEventIdxWordsShownOnlyWhenInUse() {
        var state = stateWithRing()
        var snaps: [WireQueueSnapshot] = []
        for q in state.live.model.queues {
            var ring = q.ring ?? .empty
            ring.flags = WireRingView.eventIdxFlag
            ring.usedEvent = 1234
            ring.availEvent = 4321
            snaps.append(WireQueueSnapshot(status: q.status!, ring: ring, descriptors: .full(q.descriptors)))
        }
        state.apply(.message(.snapshot(WireSnapshot(snapshotNumber: 3, uptimeNs: 85_000_000_000, rateHz: 10, droppedFrames: 0,
                                                    memory: sampleMemory, queues: snaps)), seq: 4))
        let text = render(state, size: ScreenSize(width: 160, height: 50)).text
        XCTAssertTrue(text.contains("used_event 1234 avail_event 4321"), text)
        let small = render(state, size: ScreenSize(width: 80, height: 24)).text
        XCTAssertTrue(small.contains("ue 1234 ae 4321"), small)
    }

    func testStaleAndMissingAreSaid() {
        var old = stateWithRing()
        old.now += staleAfterSeconds + 5
        let stale = render(old, size: ScreenSize(width: 160, height: 50)).text
        XCTAssertTrue(stale.contains("rings net0.rx · STALE"), stale)
        // A queue whose snapshot had no ring entries: the pane says so, not flags as if known.
        var state = stateWithRing()
        _ = state.handle(.tab)
        let other = render(state, size: ScreenSize(width: 160, height: 50)).text
        XCTAssertTrue(other.contains("ring contents not reported"), other)
        XCTAssertFalse(other.contains("avail.flags"), other)
        let fresh = render(sampleState(), size: ScreenSize(width: 80, height: 24)).text
        XCTAssertTrue(fresh.contains("rings net0.rx"), fresh)
    }

    func testFeaturesPanelNamesAndStatus() {
        var state = stateWithRing()
        _ = state.handle(.character("F"))
        let text = render(state, size: ScreenSize(width: 80, height: 24)).text
        XCTAssertTrue(text.contains("status 0x4f"), "con0's status from the latest snapshot")
        XCTAssertTrue(text.contains("NEEDS_RESET"), text)
        XCTAssertTrue(text.contains("! VIRTIO_F_VERSION_1"), "sampleState's hello offers nothing: accepted, never offered")
        _ = state.handle(.escape)
        XCTAssertEqual(state.mode, .normal)
        XCTAssertEqual(virtioFeatureNames(1 << 5 | 1 << 50, deviceType: 1), ["VIRTIO_NET_F_MAC", "bit 50"])
    }

    /// A raised alarm stays the last verdict when snapshots stop: it is marked stale, not shown as
    /// live; STUCK, judged against the clock, is not judged on stale data at all.
    func testAlarmFlagsSayStaleWhenSnapshotsStop() {
        var state = sampleState(rxPending: 3, now: 100)
        let ring = WireRingView(flags: WireRingView.eventIdxFlag, usedEvent: 0, availEvent: 0, availStart: 0,
                                availEntries: [0, 1], usedStart: 0, usedEntries: [WireUsedElement(id: 0, len: 0)])
        func snapshot(_ n: UInt32, uptime: Double) {
            var snaps: [WireQueueSnapshot] = []
            for q in state.live.model.queues {
                var status = q.status!
                var r = WireRingView.empty
                if q.info.name == "net0.tx" {
                    status.availIdx = 2   // two echoes published, the device never kicked
                    status.usedIdx = 0
                    r = ring
                }
                snaps.append(WireQueueSnapshot(status: status, ring: r, descriptors: .full(q.descriptors)))
            }
            state.apply(.message(.snapshot(WireSnapshot(snapshotNumber: n, uptimeNs: UInt64(uptime * 1e9), rateHz: 10,
                                                        droppedFrames: 0, memory: sampleMemory, queues: snaps)), seq: n + 1))
        }
        snapshot(2, uptime: 84)
        snapshot(3, uptime: 84.6)
        state.now = 100.1
        let live = render(state, size: ScreenSize(width: 160, height: 50)).text
        let txLine = { (t: String) in t.split(separator: "\n").first { $0.contains("net0.tx") && $0.contains("256") }.map(String.init) ?? "" }
        XCTAssertTrue(txLine(live).contains("KICK LOST?") && !txLine(live).contains("(stale)"), txLine(live))
        state.now = 130
        let stale = render(state, size: ScreenSize(width: 160, height: 50)).text
        XCTAssertTrue(txLine(stale).contains("KICK LOST? (stale)"), txLine(stale))
        XCTAssertFalse(stale.contains("STUCK"), "not judged on stale data:\n\(stale)")
    }
}
