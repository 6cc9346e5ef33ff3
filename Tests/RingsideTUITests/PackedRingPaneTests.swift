import XCTest
@testable import RingsideTUI
import Wire

/// A packed queue on screen (docs/protocol.md §4 "Packed queues"): said to be packed, its
/// positions shown with wrap counters, no split-ring words (avail.flags, used_event) shown for it.
final class PackedRingPaneTests: XCTestCase {
    /// One packed 8-entry RX queue, paused: positions L 6w1, U 2w0 (4 used across the wrap),
    /// A 4w0; the driver asks for an interrupt at 6w1 (DESC), the device for every kick (ENABLE).
    func packedState() -> TUIState {
        var state = TUIState(title: "Ringside", accel: "tcg")
        state.startedAt = 90
        state.now = 100
        let info = WireQueueInfo(queue: 0, name: "net0.rx", size: 8, format: .packed)
        let hello = WireHello(kernelVersion: "ringside 0.1.0", mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
                              devices: [WireDeviceInfo(name: "net0", deviceType: 1, features: 1 << 32 | 1 << 34)],
                              queues: [info])
        state.apply(.connected)
        state.apply(.message(.hello(hello), seq: 1))
        let status = WireQueueStatus(queue: 0, availIdx: 4, usedIdx: 2, lastUsedIdx: 0x8000 | 6, freeCount: 0, pendingUsed: 4,
                                     paused: true, counters: WireQueueCounters(packets: 10, bytes: 1000, drops: 0, kicks: 3, interrupts: 4))
        // Slots from 2 (a quarter window before L = 6): 2, 3 available (AVAIL=0 USED=1 on the
        // driver's lap 2, wrap 0); 4, 5 used last lap (taken); 6, 7 used, wrap 1; 0, 1 used, wrap 0.
        let avail: UInt16 = 1 << 15, usedW1: UInt16 = 1 << 7 | 1 << 15, usedW0: UInt16 = 0
        let flags: [UInt16] = [avail, avail, usedW1, usedW1, usedW1, usedW1, usedW0, usedW0]
        let ids: [UInt32] = [2, 3, 4, 5, 6, 7, 0, 1]
        let ring = WireRingView(flags: WireRingView.eventIdxFlag | WireRingView.packedFlag, availFlags: 2, usedFlags: 0,
                                usedEvent: 0x8000 | 6, availEvent: 0, availStart: 2, availEntries: flags,
                                usedStart: 2, usedEntries: ids.map { WireUsedElement(id: $0, len: 60 + $0) })
        let table = (0..<8).map { i in WireDescriptor(state: [6, 7, 0, 1].contains(i) ? .used : .avail, addr: 0x14a000 + UInt64(i) * 0x800,
                                                     len: 2048, flags: 2, next: 0) }
        state.apply(.message(.snapshot(WireSnapshot(snapshotNumber: 1, uptimeNs: 83_000_000_000, rateHz: 10, droppedFrames: 0,
                                                    memory: sampleMemory, deviceStatus: [0x0f],
                                                    queues: [WireQueueSnapshot(status: status, ring: ring, descriptors: .full(table))])),
                           seq: 2))
        return state
    }

    func testPackedQueueIsDrawnAsPacked() {
        let text = render(packedState(), size: ScreenSize(width: 160, height: 50)).text
        XCTAssertTrue(text.contains("packed ring"), text)
        XCTAssertTrue(text.contains("A 4w0") && text.contains("U 2w0") && text.contains("L 6w1"), text)
        XCTAssertTrue(text.contains("driver evt @6w1") && text.contains("device evt on"), text)
        // Slot rows: 6 is L and used (wrap 1), 0 used on the next lap, 2 (U) still the device's.
        XCTAssertNotNil(text.firstMatch(of: /L +6 +1 1 +6 +66 used/), text)
        XCTAssertNotNil(text.firstMatch(of: #/ +0 +0 0 +0 +60 used/#), text)
        XCTAssertNotNil(text.firstMatch(of: /U +2 +0 1 +2 +62 avail/), text)
        XCTAssertNotNil(text.firstMatch(of: #/ +4 +1 1 +4 +64 done/#), text)
        // None of the split ring's words is shown for it.
        XCTAssertFalse(text.contains("avail.flags") || text.contains("used_event"), text)
    }
}
