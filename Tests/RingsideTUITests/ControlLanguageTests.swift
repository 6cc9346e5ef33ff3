import XCTest
@testable import RingsideTUI
import RingsideKit
import Wire

/// The command language (`parseControlCommand`, RingsideKit) for inject/kick/poll, as
/// `ringside ctl` and the TUI's `:` line use it, and the TUI's fault badges.
final class ControlLanguageTests: XCTestCase {
    let queues = [WireQueueInfo(queue: 0, name: "net0.rx", size: 256), WireQueueInfo(queue: 1, name: "net0.tx", size: 256),
                  WireQueueInfo(queue: 2, name: "con0.rx", size: 64), WireQueueInfo(queue: 3, name: "con0.tx", size: 64)]

    func parse(_ s: String) -> Result<WireCommand, CommandError> { parseControlCommand(s, queues: queues) }

    func testInjectKickPoll() {
        XCTAssertEqual(try parse("inject net0.rx drop 3").get(), .inject(queue: 0, fault: .drop(3)))
        XCTAssertEqual(try parse("inject net0.tx corrupt 65535").get(), .inject(queue: 1, fault: .corrupt(65535)))
        XCTAssertEqual(try parse("inject net0.tx nokick 5").get(), .inject(queue: 1, fault: .nokick(5)))
        XCTAssertEqual(try parse("inject 0 starve").get(), .inject(queue: 0, fault: .starve))
        XCTAssertEqual(try parse("inject net0.rx unstarve").get(), .inject(queue: 0, fault: .unstarve))
        XCTAssertEqual(try parse("INJECT net0.rx NoIrq").get(), .inject(queue: 0, fault: .noirq))
        XCTAssertEqual(try parse("inject  net0.rx   clear").get(), .inject(queue: 0, fault: .clear))
        XCTAssertEqual(try parse("kick net0.tx").get(), .kick(queue: 1))
        XCTAssertEqual(try parse("poll net0.rx").get(), .poll(queue: 0))
        XCTAssertEqual(try parse("capture on").get(), .capture(on: true))
        XCTAssertEqual(try parse("Capture OFF").get(), .capture(on: false))
        // An index the kernel does not have is the kernel's to refuse (unknownQueue).
        XCTAssertEqual(try parse("kick 9").get(), .kick(queue: 9))
        // Console queues parse too: the kernel answers `unsupported` where a fault makes no sense.
        XCTAssertEqual(try parse("inject con0.tx noirq").get(), .inject(queue: 3, fault: .noirq))
        // Every fault's text parses back to it.
        for f: WireFault in [.drop(1), .corrupt(2), .starve, .unstarve, .nokick(3), .noirq, .clear] {
            XCTAssertEqual(try parse("inject net0.rx " + f.text).get(), .inject(queue: 0, fault: f))
        }
    }

    func testBadInjectKickPollWordsAreRefusedWithUsage() {
        func message(_ s: String) -> String {
            if case .failure(let e) = parse(s) { return e.message }
            XCTFail("\(s) parsed")
            return ""
        }
        XCTAssertTrue(message("inject net0.rx").contains("usage: inject Q drop N"))
        XCTAssertTrue(message("inject").contains("needs a queue"))
        XCTAssertTrue(message("inject nope drop 1").contains("no queue \"nope\""))
        XCTAssertTrue(message("inject net0.rx drop").contains("usage: inject Q drop N"))
        XCTAssertTrue(message("inject net0.rx drop 0").contains("1…65535"))
        XCTAssertTrue(message("inject net0.rx drop 65536").contains("1…65535"))
        XCTAssertTrue(message("inject net0.rx drop -1").contains("1…65535"))
        XCTAssertTrue(message("inject net0.rx nokick x").contains("1…65535"))
        XCTAssertTrue(message("inject net0.rx drop 1 2").contains("usage"))
        XCTAssertTrue(message("inject net0.rx starve 3").contains("takes no count"))
        XCTAssertTrue(message("inject net0.rx explode").contains("unknown fault \"explode\""))
        XCTAssertTrue(message("kick").contains("needs a queue"))
        XCTAssertTrue(message("kick net0.tx now").contains("usage: kick Q"))
        XCTAssertTrue(message("poll net0.rx 3").contains("usage: poll Q"))
        XCTAssertTrue(message("frobnicate").contains("inject, kick, poll, capture"))
        XCTAssertTrue(message("capture").contains("usage: capture on|off"))
        XCTAssertTrue(message("capture on now").contains("usage: capture on|off"))
    }

    func testColonLineSendsInject() {
        var state = sampleState()
        _ = state.handle(.character(":"))
        for c in "inject net0.rx drop 3" { _ = state.handle(.character(c)) }
        XCTAssertEqual(state.handle(.enter), [.send(.inject(queue: 0, fault: .drop(3)), label: "inject net0.rx drop 3")])
        _ = state.handle(.character(":"))
        for c in "inject net0.rx drop 0" { _ = state.handle(.character(c)) }
        XCTAssertEqual(state.handle(.enter), [])
        XCTAssertTrue(state.log.contains { $0.kind == .error && $0.text.contains("drop count must be 1…65535") })
        _ = state.handle(.character(":"))
        for c in "kick net0.tx" { _ = state.handle(.character(c)) }
        XCTAssertEqual(state.handle(.enter), [.send(.kick(queue: 1), label: "kick net0.tx")])
    }

    /// A snapshot with faults on net0.rx and net0.tx: badges on their title lines, the new counters
    /// on their stats lines.
    func testFaultBadgesAndCountersAreShown() {
        var state = sampleState()
        let model = state.live.model
        let snaps = model.queues.map { q -> WireQueueSnapshot in
            var s = q.status!
            if q.info.queue == 0 {
                s.faults = WireQueueFaults(drop: 2, starving: true, noirq: true)
                s.counters.injectedDrops = 1
                s.counters.interruptsIgnored = 7
            }
            if q.info.queue == 1 {
                s.faults = WireQueueFaults(nokick: 3)
                s.counters.kicksWithheld = 2
                s.counters.kicksSuppressed = 9
            }
            return WireQueueSnapshot(status: s, descriptors: .full(q.descriptors))
        }
        state.apply(.message(.snapshot(WireSnapshot(snapshotNumber: 2, uptimeNs: 84_000_000_000, rateHz: 10, droppedFrames: 0,
                                                        memory: sampleMemory, queues: snaps)), seq: 3))
        let text = render(state, size: ScreenSize(width: 200, height: 60)).text
        for badge in ["INJ drop 2", "STARVING", "NOIRQ", "NOKICK 3"] { XCTAssertTrue(text.contains(badge), badge) }
        XCTAssertTrue(text.contains("injdrop 1"), text)
        XCTAssertTrue(text.contains("irqign 7"))
        XCTAssertTrue(text.contains("withheld 2"))
        XCTAssertTrue(text.contains("ksup 9"))
        XCTAssertEqual(faultBadges(.none), [])
        XCTAssertEqual(faultBadges(WireQueueFaults(drop: 1, corrupt: 2, nokick: 3, starving: true, noirq: true)),
                       ["INJ drop 1", "INJ corrupt 2", "NOKICK 3", "STARVING", "NOIRQ"])
    }
}
