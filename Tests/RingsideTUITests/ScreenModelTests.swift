import XCTest
@testable import RingsideTUI
import RingsideKit
import Wire

final class ScreenModelTests: XCTestCase {
    func testLayoutAt80x24() {
        let grid = render(sampleState(), size: ScreenSize(width: 80, height: 24))
        let text = grid.text
        let lines = text.components(separatedBy: "\n")
        XCTAssertEqual(lines.count, 24)
        XCTAssertTrue(lines[0].contains("ringside 0.1.0"), lines[0])
        XCTAssertTrue(lines[0].contains("connected"), lines[0])
        XCTAssertTrue(lines[1].contains("snap 10 Hz"), lines[1])
        XCTAssertTrue(lines[1].contains("tlm drops 0"), lines[1])
        XCTAssertTrue(lines[1].contains("MAC 52:54:00:12:34:56"), lines[1])
        XCTAssertTrue(lines[1].contains("accel tcg"), lines[1])
        XCTAssertTrue(lines[1].contains("heap 1.7/30.5M"), "the kernel heap fits at 80 columns: \(lines[1])")
        // Compact panels: title + ring on one line, stats on the next, for all four queues.
        for (i, name) in ["net0.rx", "net0.tx", "con0.rx", "con0.tx"].enumerated() {
            XCTAssertTrue(lines[2 + 2 * i].contains(name), "line \(2 + 2 * i): \(lines[2 + 2 * i])")
            XCTAssertTrue(lines[3 + 2 * i].contains("pkt/s"), lines[3 + 2 * i])
        }
        XCTAssertTrue(lines[2].hasPrefix("▶1 net0.rx"), "net0.rx is selected at start: \(lines[2])")
        XCTAssertTrue(text.contains("descriptors net0.rx"))
        // Beside the ring-contents pane the table takes its narrow form (10 hex digits).
        XCTAssertTrue(text.contains("0x000014a000"))
        XCTAssertTrue(text.contains("rings net0.rx"), "the ring-contents pane beside the table")
        XCTAssertTrue(text.contains("events"))
        XCTAssertTrue(lines[23].contains("? help"), lines[23])
        XCTAssertTrue(lines[23].contains("q quit"), lines[23])
        // Every line fits.
        for y in 0..<24 { XCTAssertEqual(grid.line(y).unicodeScalars.count, 80) }
    }

    func testLayoutAt200x60UsesTheRoom() {
        let size = ScreenSize(width: 200, height: 60)
        let layout = Layout.compute(size: size, queueCount: 4, maxQueueSize: 256)
        XCTAssertGreaterThan(layout.ringRows, 1, "a tall terminal gives the rings rows of their own")
        XCTAssertEqual(layout.descriptors.x, 0)
        XCTAssertGreaterThan(layout.dump.x, 0, "dump beside the descriptor table when wide")
        XCTAssertGreaterThan(layout.descriptors.height, 20)
        let state = sampleState()
        var withDump = state
        withDump.dumps = [DumpRecord(dump: WireDump(queue: 0, descriptor: 1, guestAddress: 0x14a800, bufferLength: 70,
                                                    bytes: sampleFrame(payload: Array("HELLO-RINGSIDE".utf8))),
                                     queueName: "net0.rx", selector: "dump net0.rx next", wallTime: 0)]
        withDump.shownDump = 0
        let text = render(withDump, size: size).text
        XCTAssertTrue(text.contains("|HELLO-RINGSIDE|") || text.contains("HELLO-RI"), text)
        XCTAssertTrue(text.contains("UDP: 37575 → 7"), "decoded beside the hex when wide")
        // Rows for all 256 slots (2 slots/cell or better).
        let lines = text.components(separatedBy: "\n")
        XCTAssertTrue(lines[1].contains("snap 10 Hz  tlm drops 0  heap 1.7/30.5M"), "roomy spacing when wide: \(lines[1])")
        XCTAssertTrue(lines[1].contains("last-seen"), "and the legend: \(lines[1])")
        XCTAssertTrue(lines[2].contains("net0.rx"))
        XCTAssertTrue(lines[3].contains("▒▒▒▒"), lines[3])
        // The descriptor table shows far more rows than at 80x24.
        XCTAssertTrue(text.contains("  20 avail"), "row 20 visible")
    }

    func testTooSmall() {
        for size in [ScreenSize(width: 79, height: 24), ScreenSize(width: 80, height: 23), ScreenSize(width: 40, height: 10)] {
            let text = render(sampleState(), size: size).text
            XCTAssertTrue(text.contains("terminal too small (need 80x24)"), "\(size)")
            XCTAssertFalse(text.contains("net0.rx"), "nothing else is drawn at \(size)")
        }
        XCTAssertFalse(render(sampleState(), size: .minimum).text.contains("too small"))
    }

    func testPausedAndPendingAreObvious() {
        let state = sampleState(rxPaused: true, rxPending: 3)
        let lines = render(state, size: .minimum).text.components(separatedBy: "\n")
        XCTAssertTrue(lines[2].contains("PAUSED"), lines[2])
        XCTAssertTrue(lines[3].contains("pend 3"), lines[3])
        XCTAssertTrue(lines[2].contains("L"), "last-seen pointer drawn: \(lines[2])")
    }

    /// The columns of the heap figure on the second header line.
    func heapCells(_ grid: ScreenGrid) -> [Cell] {
        let line = Array(grid.line(1).unicodeScalars)
        let label = Array("heap ".unicodeScalars)
        guard let start = (0...(line.count - label.count)).first(where: { Array(line[$0..<$0 + label.count]) == label }) else { return [] }
        return (start + label.count..<line.count).prefix { line[$0] != " " }.map { grid[1, $0] }
    }

    func testHeapInTheHeaderAtEverySize() {
        for size in [ScreenSize.minimum, ScreenSize(width: 200, height: 60)] {
            let grid = render(sampleState(), size: size)
            XCTAssertTrue(grid.line(1).contains("heap 1.7/30.5M"), "\(size): \(grid.line(1))")
            XCTAssertEqual(String(heapCells(grid).map { Character($0.scalar) }), "1.7/30.5M")
            XCTAssertTrue(heapCells(grid).allSatisfy { $0.style.role != .alarm }, "fresh data is not marked")
        }
        // Worst case at 80 columns: every other fact at its widest still leaves room for the heap.
        let wide = sampleState(accel: "whpx", rateHz: 1000, droppedFrames: 12_345_678,
                               memory: WireMemory(heapTotal: 999 << 20, heapUsed: 998 << 20, heapFree: 0, netReserved: 0, netLimit: 1))
        let line = render(wide, size: .minimum).line(1)
        XCTAssertTrue(line.contains("snap 1000 Hz") && line.contains("tlm drops 12345678") && line.contains("heap 998/999M"), line)
        XCTAssertEqual(line.unicodeScalars.count, 80)
        // Units from 1000 MiB, and no heap reported (an older or fake kernel): a question mark.
        XCTAssertEqual(formatHeap(WireMemory(heapTotal: 2 << 30, heapUsed: 400 << 20, heapFree: 0, netReserved: 0, netLimit: 0)), "0.4/2.0G")
        XCTAssertTrue(render(sampleState(memory: .zero), size: .minimum).line(1).contains("heap ?"))
    }

    func testStaleHeapIsMarkedLikeTheAge() {
        var state = sampleState(now: 100)
        state.now = 100 + 3
        let grid = render(state, size: .minimum)
        XCTAssertTrue(grid.line(0).contains("STALE"))
        let cells = heapCells(grid)
        XCTAssertEqual(cells.count, 9)
        XCTAssertTrue(cells.allSatisfy { $0.style.role == .alarm && $0.style.bold }, "stale heap in red/bold")
        // Frozen on purpose: old, not stale.
        _ = state.handle(.character("f"))
        XCTAssertTrue(heapCells(render(state, size: .minimum)).allSatisfy { $0.style.role != .alarm })
    }

    func testStaleDataAndDisconnect() {
        var state = sampleState(now: 100)
        state.now = 100 + 3
        let header = render(state, size: .minimum).line(0)
        XCTAssertTrue(header.contains("STALE"), header)
        let column = Array(header.unicodeScalars).firstIndex(of: "S")!
        XCTAssertEqual(render(state, size: .minimum)[0, column].style.role, .alarm, "stale age in red/bold")
        state.apply(.disconnected(reason: "the guest closed the console socket"))
        XCTAssertTrue(render(state, size: .minimum).line(0).contains("disconnected"))
    }

    func testFrozenShowsFrozenAndKeepsTheOldView() {
        var state = sampleState()
        _ = state.handle(.character("f"))
        XCTAssertNotNil(state.frozen)
        XCTAssertTrue(render(state, size: .minimum).line(0).contains("FROZEN"))
        _ = state.handle(.character("f"))
        XCTAssertNil(state.frozen)
    }

    func testHelpOverlayListsEveryKey() {
        var state = sampleState()
        _ = state.handle(.character("?"))
        XCTAssertEqual(state.mode, .help)
        let text = render(state, size: ScreenSize(width: 120, height: 40)).text
        for (key, _) in helpLines { XCTAssertTrue(text.contains(key), "help lists \(key)") }
        _ = state.handle(.escape)
        XCTAssertEqual(state.mode, .normal)
    }

    func testKeysProduceCommands() {
        var state = sampleState()
        XCTAssertEqual(state.handle(.character(" ")), [.send(.pause(queue: 0), label: "pause net0.rx")])
        XCTAssertEqual(state.handle(.character("s")), [.send(.step(queue: 0, count: 1), label: "step net0.rx")])
        // d: next pending, until the cursor is placed in the table; Esc drops the cursor.
        XCTAssertEqual(state.handle(.character("d")), [.send(.dump(queue: 0, selector: .next), label: "dump net0.rx next")])
        _ = state.handle(.down); _ = state.handle(.down)
        XCTAssertEqual(state.cursor, 1)
        XCTAssertEqual(state.handle(.character("d")), [.send(.dump(queue: 0, selector: .descriptor(1)), label: "dump net0.rx desc 1")])
        _ = state.handle(.end)
        XCTAssertEqual(state.cursor, 255)
        _ = state.handle(.escape)
        XCTAssertNil(state.cursor)
        // Tab / Shift-Tab / digits.
        _ = state.handle(.tab)
        XCTAssertEqual(state.selectedQueue, 1)
        _ = state.handle(.backTab); _ = state.handle(.backTab)
        XCTAssertEqual(state.selectedQueue, 3)
        _ = state.handle(.character("2"))
        XCTAssertEqual(state.selectedQueue, 1)
        // S asks for N.
        _ = state.handle(.character("S"))
        _ = state.handle(.character("5"))
        XCTAssertEqual(state.handle(.enter), [.send(.step(queue: 1, count: 5), label: "step net0.tx 5")])
        // + / - step through the rates.
        XCTAssertEqual(state.handle(.character("+")), [.send(.setSnapshotRate(hz: 20), label: "rate 20 Hz")])
        XCTAssertEqual(state.handle(.character("-")), [.send(.setSnapshotRate(hz: 5), label: "rate 5 Hz")])
        XCTAssertEqual(state.handle(.character("q")), [.quit])
    }

    func testCommandLine() {
        let queues = sampleState().live.model.queues.map { $0.info }
        func parse(_ s: String) -> WireCommand? { try? parseControlCommand(s, queues: queues).get() }
        XCTAssertEqual(parse("stats"), .stats)
        XCTAssertEqual(parse("pause net0.rx"), .pause(queue: 0))
        XCTAssertEqual(parse("resume 1"), .resume(queue: 1))
        XCTAssertEqual(parse("step net0.tx 4"), .step(queue: 1, count: 4))
        XCTAssertEqual(parse("dump net0.rx --desc 7"), .dump(queue: 0, selector: .descriptor(7)))
        XCTAssertEqual(parse("dump net0.rx --last"), .dump(queue: 0, selector: .last))
        XCTAssertEqual(parse("rate 60"), .setSnapshotRate(hz: 60))
        XCTAssertEqual(parse("reset"), .resetCounters)
        XCTAssertNil(parse("pause nope"))
        XCTAssertNil(parse("frobnicate"))
        var state = sampleState()
        _ = state.handle(.character(":"))
        for c in "step net0.rx 2" { _ = state.handle(.character(c)) }
        XCTAssertEqual(state.handle(.enter), [.send(.step(queue: 0, count: 2), label: "step net0.rx 2")])
    }

    func testLogFilterAndReplies() {
        var state = sampleState()
        state.awaiting[7] = "pause net0.rx"
        state.apply(.message(.reply(WireReply(commandSeq: 7, status: .ok)), seq: 3))
        state.awaiting[8] = "step net0.rx"
        state.apply(.message(.reply(WireReply(commandSeq: 8, status: .nothingPending, message: "net0.rx has nothing pending")), seq: 4))
        XCTAssertTrue(state.log.contains { $0.text == "pause net0.rx: ok" })
        XCTAssertTrue(state.log.contains { $0.kind == .error && $0.text == "step net0.rx: net0.rx has nothing pending" },
                      "the kernel's reason, no internal status tag")
        _ = state.handle(.character("/"))
        for c in "step" { _ = state.handle(.character(c)) }
        _ = state.handle(.enter)
        XCTAssertEqual(state.filteredLog.count, 1)
        XCTAssertTrue(render(state, size: .minimum).text.contains("events (filter: step)"))
    }

    func testPcapImage() {
        let frame = Array(sampleFrame(payload: [1, 2, 3]).dropFirst(12))
        let image = PcapWriter.file(frames: [(time: 1.5, bytes: frame)])
        XCTAssertEqual(Array(image.prefix(4)), [0xd4, 0xc3, 0xb2, 0xa1])
        XCTAssertEqual(image.count, 24 + 16 + frame.count)
        XCTAssertEqual(Array(image.suffix(frame.count)), frame)
    }

    func testRenderIsFast() {
        let state = sampleState()
        measure { _ = render(state, size: ScreenSize(width: 200, height: 60)) }
    }
}
