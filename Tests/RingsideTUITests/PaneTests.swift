import XCTest
@testable import RingsideTUI
import RingsideKit
import Wire

/// Expanded, scrollable panes (`e`, arrows, Esc), stale dumps, and every ring pointer visible.
final class PaneTests: XCTestCase {
    /// A 1337-byte Ethernet frame (UDP, 1295 bytes of payload) as the RX buffer holds it.
    static let bigPayload: [UInt8] = (0..<1295).map { UInt8(0x41 + $0 % 26) }
    static var bigFrame: [UInt8] { sampleFrame(payload: bigPayload) }

    func stateWithDump(_ bytes: [UInt8], ownership: DumpOwnership = .driver, size: ScreenSize) -> TUIState {
        var state = sampleState(rxPaused: true, rxPending: 1)
        var rec = DumpRecord(dump: WireDump(queue: 0, descriptor: 0, guestAddress: 0x14a000, bufferLength: UInt32(bytes.count), bytes: bytes),
                             queueName: "net0.rx", selector: "dump net0.rx next", wallTime: 0)
        rec.ownership = ownership
        state.dumps = [rec]
        state.shownDump = 0
        state.panes.viewport = paneViewports(state, size: size)
        return state
    }

    /// Handles keys as the app does: the viewports follow the layout after each key.
    func press(_ state: inout TUIState, _ keys: Key..., size: ScreenSize) {
        for key in keys {
            _ = state.handle(key)
            state.panes.viewport = paneViewports(state, size: size)
            state.tableViewportRows = state.panes.viewport[.descriptors]?.height ?? 1
        }
    }

    func testExpandedDumpReachesEveryByteAndEveryDecodedLine() {
        let size = ScreenSize(width: 80, height: 24)
        var state = stateWithDump(Self.bigFrame, size: size)
        XCTAssertEqual(Self.bigFrame.count, 12 + 1337)
        // The dump pane gets the focus (→), `e` expands it.
        press(&state, .right, .character("e"), size: size)
        XCTAssertEqual(state.panes.expanded, .dump)
        var text = render(state, size: size).text
        print("expanded dump, top:\n\(text)")
        let decoded = FrameDecoder.describe(Self.bigFrame, virtioHeaderBytes: 12).summaryLines
        XCTAssertGreaterThanOrEqual(decoded.count, 4)
        for line in decoded { XCTAssertTrue(text.contains(String(line.prefix(70))), "decoded line shown whole at the top: \(line)") }
        XCTAssertFalse(text.contains("descriptors net0.rx"), "the other panes are gone")
        XCTAssertTrue(text.contains("1349 bytes"), text)
        // End: the last bytes of the frame (offset 0x540 holds 5 bytes) are on screen.
        press(&state, .end, size: size)
        text = render(state, size: size).text
        print("expanded dump, end:\n\(text)")
        let lastLine = hexDumpCLines(Self.bigFrame).dropLast().last!
        XCTAssertTrue(lastLine.hasPrefix("00000540"), lastLine)
        XCTAssertTrue(text.contains(lastLine), "the frame's last line is reachable")
        XCTAssertTrue(text.contains("00000545"), "and the end offset")
        // Every line is reachable by paging: PgUp from the end walks back to offset 0x80 and before.
        var seen = Set<String>()
        press(&state, .home, size: size)
        for _ in 0..<20 {
            for line in render(state, size: size).text.components(separatedBy: "\n") where line.hasPrefix("000") {
                seen.insert(String(line.prefix(8)))
            }
            press(&state, .pageDown, size: size)
        }
        for offset in stride(from: 0, to: Self.bigFrame.count, by: 16) {
            XCTAssertTrue(seen.contains(hexDigits(UInt64(offset), width: 8)), "offset \(offset) reachable")
        }
        // Esc returns to the full layout.
        press(&state, .escape, size: size)
        XCTAssertNil(state.panes.expanded)
        XCTAssertTrue(render(state, size: size).text.contains("descriptors net0.rx"))
    }

    func testDumpPaneScrollsInTheLayoutWhenFocused() {
        let size = ScreenSize(width: 120, height: 40)
        var state = stateWithDump(Self.bigFrame, size: size)
        var text = render(state, size: size).text
        XCTAssertFalse(text.contains("00000540"))
        press(&state, .right, .end, size: size)
        text = render(state, size: size).text
        XCTAssertTrue(text.contains("00000540"), text)
        XCTAssertTrue(text.contains(" of "), "the pane's title says where it is: \(text)")
        // ↑ ↓ in the dump do not move the table cursor.
        XCTAssertNil(state.cursor)
    }

    func testExpandedLogWrapsLongLines() {
        let size = ScreenSize(width: 80, height: 24)
        var state = sampleState()
        let reason = "net0.rx ≠ device: used_idx 7 ≠ device used-idx 9; avail_idx 263 ≠ device last-avail-idx 7 + unfetched 256 (this is the tail END-OF-REASON)"
        state.addLog(.event, "an event line that is long enough to be cut at eighty columns in the layout: TAIL-OF-EVENT")
        state.addLog(.error, reason)
        var text = render(state, size: size).text
        XCTAssertTrue(text.contains("END-OF-REASON"), "an error wraps even in the layout: \(text)")
        var onlyEvent = sampleState()
        onlyEvent.addLog(.event, "an event line that is long enough to be cut at eighty columns in the layout: TAIL-OF-EVENT")
        let cut = render(onlyEvent, size: size).text
        XCTAssertFalse(cut.contains("TAIL-OF-EVENT"), "other lines are cut…")
        XCTAssertTrue(cut.contains("in the l…"), "…and say so: \(cut)")
        press(&state, .right, .right, .character("e"), size: size)
        XCTAssertEqual(state.panes.expanded, .log)
        text = render(state, size: size).text
        print("expanded log:\n\(text)")
        XCTAssertTrue(text.contains("TAIL-OF-EVENT"), "the expanded log wraps every line")
        XCTAssertTrue(text.contains("END-OF-REASON"))
        for line in text.components(separatedBy: "\n") { XCTAssertLessThanOrEqual(line.unicodeScalars.count, 80) }
    }

    func testExpandedDescriptorTableUsesTheScreen() {
        let size = ScreenSize(width: 80, height: 24)
        var state = sampleState()
        let normalRows = paneViewports(state, size: size)[.descriptors]!.height
        press(&state, .character("e"), size: size)
        XCTAssertEqual(state.panes.expanded, .descriptors)
        XCTAssertEqual(state.tableViewportRows, 24 - 3 - 2)
        XCTAssertGreaterThan(state.tableViewportRows, normalRows * 4)
        let text = render(state, size: size).text
        XCTAssertTrue(text.contains("  18 avail"), text)
        press(&state, .end, size: size)
        XCTAssertEqual(state.cursor, 255)
        XCTAssertTrue(render(state, size: size).text.contains(" 255 avail"))
    }

    func testBiggerTerminalsGiveTheTableMoreRows() {
        let state = sampleState()
        var last = 0
        for h in [24, 30, 40, 50, 60] {
            print("120x\(h): \(paneViewports(state, size: ScreenSize(width: 120, height: h))[.descriptors]!.height) table rows")
            let rows = paneViewports(state, size: ScreenSize(width: 120, height: h))[.descriptors]!.height
            XCTAssertGreaterThan(rows, last, "at 120x\(h)")
            last = rows
        }
    }

    // MARK: Stale dumps

    func testDeviceOwnedReceiveBufferIsLabelledStaleNotDecodedNotInPcap() {
        var state = sampleState()          // every RX descriptor avail, device-writable
        state.noteSent(.dump(queue: 0, selector: .descriptor(5)), seq: 40, label: "dump net0.rx desc 5")
        let old = sampleFrame(payload: Array("OLD-FRAME".utf8)) + [UInt8](repeating: 0, count: 100)
        state.apply(.message(.reply(WireReply(commandSeq: 40, status: .ok, body: .dump(
            WireDump(queue: 0, descriptor: 5, guestAddress: 0x14a000 + 5 * 0x800, bufferLength: 2048, bytes: old)))), seq: 9))
        XCTAssertEqual(state.dumps.last?.ownership, .deviceWrites)
        for size in [ScreenSize(width: 80, height: 24), ScreenSize(width: 200, height: 60)] {
            let text = render(state, size: size).text
            XCTAssertTrue(text.contains("device-owned: contents are stale"), "\(size): \(text)")
            XCTAssertFalse(text.contains("UDP:"), "not decoded as a frame at \(size)")
            XCTAssertFalse(text.contains("IPv4"), "not decoded as a frame at \(size)")
        }
        XCTAssertTrue(state.log.last!.text.contains("stale"), state.log.last!.text)
        // `next` picks a used element: the driver's, decoded, written.
        state.noteSent(.dump(queue: 0, selector: .next), seq: 41, label: "dump net0.rx next")
        state.apply(.message(.reply(WireReply(commandSeq: 41, status: .ok, body: .dump(
            WireDump(queue: 0, descriptor: 6, guestAddress: 0x14a000, bufferLength: 60, bytes: sampleFrame(payload: [1, 2]))))), seq: 10))
        XCTAssertEqual(state.dumps.last?.ownership, .driver)
        XCTAssertTrue(render(state, size: .minimum).text.contains("UDP:"))
        let (frames, skipped) = state.pcapFrames()
        XCTAssertEqual(frames.count, 1)
        XCTAssertEqual(skipped, 1)
        XCTAssertEqual(frames[0].bytes, Array(sampleFrame(payload: [1, 2]).dropFirst(12)))
        XCTAssertEqual(frames[0].queueName, "net0.rx")
        XCTAssertTrue(frames[0].comment.hasPrefix("desc 6 avail "), frames[0].comment)
        XCTAssertTrue(frames[0].comment.contains(" hdr flags=0 gso=0 "), frames[0].comment)
        XCTAssertFalse(frames[0].comment.contains(" nr "), "a dump has no capture number")
    }

    // MARK: Small things

    func testRateKeysAccumulateOnThePendingRate() {
        var state = sampleState(rateHz: 10)
        for (expected, seq) in [(UInt16(20), UInt32(50)), (30, 51), (60, 52)] {
            let effects = state.handle(.character("+"))
            XCTAssertEqual(effects, [.send(.setSnapshotRate(hz: expected), label: "rate \(expected) Hz")])
            state.noteSent(.setSnapshotRate(hz: expected), seq: seq, label: "rate \(expected) Hz")
        }
        XCTAssertTrue(render(state, size: .minimum).text.contains("snap 10→60 Hz"))
        XCTAssertEqual(state.handle(.character("-")), [.send(.setSnapshotRate(hz: 30), label: "rate 30 Hz")])
        // A refused rate is no longer pending.
        state.apply(.message(.reply(WireReply(commandSeq: 52, status: .badCommand, message: "rate refused")), seq: 11))
        XCTAssertNil(state.pendingRateHz)
    }

    func testErrorRepliesCarryNoInternalTags() {
        var state = sampleState()
        state.noteSent(.step(queue: 0, count: 1), seq: 60, label: "step net0.rx")
        state.apply(.message(.reply(WireReply(commandSeq: 60, status: .nothingPending, message: "net0.rx has nothing pending")), seq: 12))
        XCTAssertEqual(state.log.last?.text, "step net0.rx: net0.rx has nothing pending")
        state.noteSent(.step(queue: 0, count: 1), seq: 61, label: "step net0.rx")
        state.apply(.message(.reply(WireReply(commandSeq: 61, status: .nothingPending)), seq: 13))
        XCTAssertEqual(state.log.last?.text, "step net0.rx: nothing pending")
    }

    func testHeaderKeepsTheProductNameAt80Columns() {
        var state = sampleState()
        var line = render(state, size: .minimum).text.components(separatedBy: "\n")[0]
        XCTAssertTrue(line.hasPrefix(" Ringside "), line)
        XCTAssertTrue(line.contains("connected"), line)
        state.frozen = state.live
        state.now = 200
        line = render(state, size: .minimum).text.components(separatedBy: "\n")[0]
        XCTAssertTrue(line.hasPrefix(" Ringside ") && line.contains("FROZEN"), line)
    }

    func testHelpHasTheSymbolLegendAndScrolls() {
        let size = ScreenSize.minimum
        var state = sampleState()
        state.helpRows = helpBox(state, size: size).rows
        _ = state.handle(.character("?"))
        _ = state.handle(.end)
        XCTAssertEqual(state.mode, .help, "arrows scroll the help")
        let text = render(state, size: size).text
        print("help at 80x24, end:\n\(text)")
        XCTAssertTrue(text.contains("device's last-avail-idx"), text)
        XCTAssertTrue(text.contains("ringside-<time>.pcapng"), text)
        let full = ScreenSize(width: 120, height: 60)
        state.helpTop = 0
        let all = render(state, size: full).text
        for (symbol, _, meaning) in symbolLegend { XCTAssertTrue(all.contains(String(symbol) + "  " + meaning), meaning) }
        _ = state.handle(.escape)
        XCTAssertEqual(state.mode, .normal)
    }

    // MARK: Ring pointers on screen

    func testEveryPointerIsOnScreenAt80x24And200x60() {
        for pending in [UInt16(0), 1] {
            let state = sampleState(rxPaused: true, rxPending: pending)
            for size in [ScreenSize(width: 80, height: 24), ScreenSize(width: 200, height: 60)] {
                let lines = render(state, size: size).text.components(separatedBy: "\n")
                // The ring strip(s) of net0.rx: runs of ring glyphs and pointer letters.
                let panel = lines.drop { !$0.contains("net0.rx") }.prefix { !$0.contains("free ") }
                let ring = panel.flatMap { $0.matches(of: /[·▒█▓LUAD]{12,}/).map { String($0.output) } }.joined()
                for letter in ["L", "U", "A"] {
                    XCTAssertTrue(ring.contains(letter), "\(letter) visible with \(pending) pending at \(size): \(ring)")
                }
                XCTAssertEqual(ring.contains("█"), pending > 0, "the used slot shows when pending at \(size): \(ring)")
            }
        }
    }
}
