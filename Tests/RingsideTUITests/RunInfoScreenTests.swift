import XCTest
import RingsideKit
@testable import RingsideTUI

/// The `i` overlay, the "QEMU is not running" box and the `:hmp` pane, without a terminal.
final class RunInfoScreenTests: XCTestCase {
    func runState() -> TUIState {
        var state = sampleState()
        var info = RunInfo(telemetrySocket: "/tmp/ringside-1-a/telemetry.sock", telemetryIsHub: true)
        info.runDirectory = "/tmp/ringside-1-a"
        info.qmpSocket = "/tmp/ringside-1-a/qmp.sock"
        info.userQMPSocket = "/tmp/ringside-1-a/qmp-user.sock"
        info.udpPort = 5555
        info.httpPort = 8080
        state.runInfo = info
        return state
    }

    func testHeaderShowsThePortsAndIShowsWhereThingsAre() {
        var state = runState()
        XCTAssertTrue(render(state, size: .minimum).line(0).contains("│ udp :5555 http :8080"), render(state, size: .minimum).line(0))
        XCTAssertEqual(state.handle(.character("i")), [])
        let text = render(state, size: ScreenSize(width: 100, height: 30)).text
        for expected in ["Where things are", "run directory  /tmp/ringside-1-a", "QMP for you", "/tmp/ringside-1-a/qmp-user.sock",
                         "ringside ctl /tmp/ringside-1-a/telemetry.sock stats", "ringside watch /tmp/ringside-1-a/telemetry.sock --json",
                         "curl http://127.0.0.1:8080/", "127.0.0.1:5555 → guest :7"] {
            XCTAssertTrue(text.contains(expected), "\(expected) missing:\n\(text)")
        }
        _ = state.handle(.escape)
        XCTAssertFalse(render(state, size: .minimum).text.contains("Where things are"))
    }

    /// At 80 columns nothing is cut off: long paths wrap under their value; the memory view's
    /// file and QMP socket are listed, and a guest without telemetry says so.
    func testLongValuesWrapAt80ColumnsAndTheMemoryViewIsListed() {
        var state = sampleState()
        var info = RunInfo(telemetrySocket: "", telemetryIsHub: false)
        let dir = "/tmp/ringside-wrap-" + String(repeating: "d", count: 40)
        info.runDirectory = dir
        info.qmpSocket = dir + "/qmp.sock"
        info.userQMPSocket = dir + "/qmp-user.sock"
        info.guestMemory = dir + "/guest.ram"
        info.memoryQMPSocket = dir + "/qmp-memory.sock"
        state.runInfo = info
        _ = state.handle(.character("i"))
        let grid = render(state, size: .minimum)
        let text = grid.text
        XCTAssertTrue(text.contains("none (any guest"), text)
        let joined = text.replacingOccurrences(of: "\n", with: "").replacingOccurrences(of: " ", with: "").replacingOccurrences(of: "│", with: "")
        for expected in ["guest.ram", "qmp-memory.sock", "ringsidewatch--qmp\(dir)/qmp-user.sock--memory\(dir)/guest.ram--json"] {
            XCTAssertTrue(joined.contains(expected.replacingOccurrences(of: " ", with: "")), "\(expected) missing or cut:\n\(text)")
        }
        XCTAssertTrue(text.contains("guest memory"), text)
        XCTAssertTrue(text.contains("QMP (memory)"), text)
    }

    func testAttachSaysWhatIsUnknown() {
        var state = sampleState()
        state.runInfo = RunInfo(telemetrySocket: "/x/console.sock", telemetryIsHub: false)
        _ = state.handle(.character("i"))
        let text = render(state, size: ScreenSize(width: 120, height: 30)).text
        XCTAssertTrue(text.contains("unknown (attached"), text)
        XCTAssertFalse(text.contains("ringside ctl"), "no hub: ctl would take the console from the TUI")
    }

    func testProcessEndedReplacesConnectedAndShowsQEMUsWords() {
        var state = runState()
        state.noteProcessEnded(["QEMU exited (exit status 1)", "qemu-system-x86_64: -netdev user,id=n0,hostfwd=udp:127.0.0.1:5555-:7: Could not set up host forwarding rule 'udp:127.0.0.1:5555-:7'"])
        let grid = render(state, size: .minimum)
        XCTAssertTrue(grid.line(0).contains("✖ QEMU exited") && !grid.line(0).contains("connected"), grid.line(0))
        let text = grid.text
        XCTAssertTrue(text.contains("QEMU is not running"))
        XCTAssertTrue(text.contains("Could not set up host"), "wrapped to the screen, not cut:\n\(text)")
        XCTAssertTrue(text.contains("forwarding rule 'udp:127.0.0.1:5555-:7'"), text)
        XCTAssertTrue(state.log.contains { $0.kind == .error && $0.text.contains("Could not set up") })
    }

    func testHMPCommandPaneExpandAndClose() {
        var state = runState()
        state.mode = .prompt(.command, text: "hmp info pci")
        XCTAssertEqual(state.handle(.enter), [.hmp("info pci")])
        state.mode = .prompt(.command, text: "hmp")
        XCTAssertEqual(state.handle(.enter), [])
        XCTAssertTrue(state.log.last?.text.contains("usage: hmp COMMAND") ?? false)
        let output = (0..<30).map { "line \($0)\r\n" }.joined()
        state.showHMP(HMPResult(command: "info pci", output: output, error: nil))
        XCTAssertEqual(state.hmp?.lines.count, 30, "CR LF ends a line")
        var text = render(state, size: .minimum).text
        XCTAssertTrue(text.contains("hmp info pci · 30 lines") && text.contains("line 0") && text.contains("more: e"), text)
        _ = state.handle(.character("e"))
        _ = state.handle(.pageDown)
        text = render(state, size: .minimum).text
        XCTAssertTrue(text.contains("lines 21-30 of 30") || text.contains("lines 21-"), text)
        XCTAssertTrue(text.contains("line 29"), text)
        _ = state.handle(.escape)
        XCTAssertEqual(state.hmp?.expanded, false)
        _ = state.handle(.escape)
        XCTAssertNil(state.hmp)
        state.showHMP(HMPResult(command: "nope", output: "", error: "QMP human-monitor-command failed"))
        XCTAssertTrue(render(state, size: .minimum).text.contains("QMP human-monitor-command failed"))
    }

    /// The hmp answer stands in the dump pane: `e` and Esc act on it only when the dump pane has
    /// the focus (showing an answer focuses it). With the focus moved to the events, `e` expands
    /// the log, as it does for every focused pane, and Esc leaves the answer open.
    func testHMPPaneLeavesOtherPanesTheirKeys() {
        var state = runState()
        state.showHMP(HMPResult(command: "info pci", output: "a\nb\n", error: nil))
        XCTAssertEqual(state.panes.focus, .dump, "the answer takes the focus")
        _ = state.handle(.right)
        XCTAssertEqual(state.panes.focus, .log)
        _ = state.handle(.character("e"))
        XCTAssertEqual(state.panes.expanded, .log, "e expands the focused log, not the hmp pane")
        XCTAssertEqual(state.hmp?.expanded, false)
        _ = state.handle(.escape)
        XCTAssertNil(state.panes.expanded)
        XCTAssertNotNil(state.hmp, "Esc on the log leaves the answer open")
        _ = state.handle(.left)
        _ = state.handle(.character("e"))
        XCTAssertEqual(state.hmp?.expanded, true, "on the dump pane, e expands the answer")
    }
}
