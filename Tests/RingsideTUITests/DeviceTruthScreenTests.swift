import Foundation
import XCTest
import RingsideKit
@testable import RingsideTUI
import Wire

/// The device's view (QMP) beside the driver's in the queue panels.
final class DeviceTruthScreenTests: XCTestCase {
    /// Sample `number` is answered at 100 + number × 0.25 s, after a driver snapshot 50 ms before.
    func sample(_ number: Int, rx: (UInt16, UInt16), tx: (UInt16, UInt16) = (0, 0), num: Int = 256) -> DeviceTruthState {
        let t = 100 + Double(number) * 0.25
        return .sample(DeviceTruthSample(time: t, number: number, queues: [
            DeviceQueueView(queue: 0, lastAvailIdx: rx.0, usedIdx: rx.1, inuse: 0, vringNum: num, shadowAvailIdx: rx.0, time: t),
            DeviceQueueView(queue: 1, lastAvailIdx: tx.0, usedIdx: tx.1, inuse: 0, vringNum: num, shadowAvailIdx: tx.0, time: t),
        ]))
    }

    /// The driver's snapshot (the fixture's numbers) noted 50 ms before sample `number`.
    func snapshot(_ state: inout TUIState, before number: Int) {
        if state.live.device == nil { state.live.device = .starting }
        state.now = 100 + Double(number) * 0.25 - 0.05
        state.noteDriverViews(uptimeNs: UInt64(state.now * 1e9))
    }

    func apply(_ state: inout TUIState, _ number: Int, rx: (UInt16, UInt16), tx: (UInt16, UInt16) = (0, 0), num: Int = 256) {
        snapshot(&state, before: number)
        state.applyDevice(sample(number, rx: rx, tx: tx, num: num))
    }

    func lines(_ state: TUIState, _ size: ScreenSize = .minimum) -> [String] {
        render(state, size: size).text.components(separatedBy: "\n")
    }

    func testNoQMPShowsNothing() {
        let text = render(sampleState(), size: .minimum).text
        XCTAssertFalse(text.contains("dev:"))
        XCTAssertFalse(text.contains("device view"))
    }

    func testAgreeingDeviceNumbersAreShownWithoutAMarker() {
        var state = sampleState()
        apply(&state, 1, rx: (0, 0))
        apply(&state, 2, rx: (0, 0))
        let l = lines(state)
        XCTAssertTrue(l[2].contains("net0.rx") && l[2].contains("dev: A 0 U 0 inuse 0"), l[2])
        XCTAssertTrue(l[4].contains("net0.tx") && l[4].contains("dev: A 0 U 0 inuse 0"), l[4])
        XCTAssertFalse(l.joined().contains("≠"), l.joined(separator: "\n"))
        XCTAssertFalse(l[6].contains("dev:"), "con0 has no device view: \(l[6])")
        XCTAssertEqual(state.live.deviceTrackers[0]?.flagged, false)
    }

    func testPersistentDisagreementIsMarkedInRed() {
        var state = sampleState()
        apply(&state, 1, rx: (0, 0))
        apply(&state, 2, rx: (5, 5))
        XCTAssertFalse(lines(state)[2].contains("≠ device"), "one differing sample is not flagged")
        apply(&state, 3, rx: (5, 5))
        let grid = render(state, size: .minimum)
        let line = grid.line(2)
        XCTAssertTrue(line.contains("≠ device"), line)
        XCTAssertTrue(line.contains("dev: A 5 U 5"), line)
        let column = Array(line.unicodeScalars).firstIndex(of: "≠")!
        XCTAssertEqual(grid[2, column].style.role, .alarm)
        XCTAssertTrue(grid[2, column].style.bold)
        XCTAssertTrue(state.log.contains { $0.kind == .error && $0.text.hasPrefix("net0.rx ≠ device") }, "\(state.log)")
        XCTAssertFalse(lines(state)[4].contains("≠"), "net0.tx still agrees")
        // Back in step: the marker goes.
        apply(&state, 4, rx: (0, 0))
        XCTAssertFalse(lines(state)[2].contains("≠"))
    }

    func testWrongQueueSizeIsMarkedAtOnce() {
        var state = sampleState()
        apply(&state, 1, rx: (0, 0), num: 128)
        XCTAssertTrue(lines(state)[2].contains("≠ device"))
    }

    /// A device sample with no driver snapshot close before it is not compared: the screen says
    /// so instead of implying agreement (or disagreement).
    func testAnUncomparableSampleSaysNotCompared() {
        var state = sampleState()
        state.live.device = .starting
        state.applyDevice(sample(1, rx: (5, 5)))
        let l = lines(state)
        XCTAssertTrue(l[2].contains("dev: A 5 U 5") && l[2].contains("? not compared"), l[2])
        XCTAssertFalse(l[2].contains("≠"), l[2])
        // A snapshot before the next sample: compared (and here, different but moving: no marker).
        apply(&state, 2, rx: (0, 0))
        XCTAssertFalse(lines(state)[2].contains("not compared"), lines(state)[2])
    }

    func testUnavailableIsSaid() {
        var state = sampleState()
        state.applyDevice(.unavailable("cannot connect to /x/qmp.sock: No such file or directory"))
        let l = lines(state)
        XCTAssertTrue(l[2].contains("device view unavailable"), l[2])
        XCTAssertTrue(state.log.contains { $0.text.hasPrefix("device view unavailable") })
        XCTAssertFalse(l[6].contains("device view"))
    }

    func testWideScreenToo() {
        var state = sampleState()
        apply(&state, 1, rx: (0, 0))
        let text = render(state, size: ScreenSize(width: 200, height: 60)).text
        XCTAssertTrue(text.contains("dev: A 0 U 0 inuse 0"))
    }
}
