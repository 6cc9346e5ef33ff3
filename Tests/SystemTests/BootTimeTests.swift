import Foundation
import XCTest
@testable import RingsideKit

/// The boot as docs/architecture.md ("Boot time") describes it, on the machine under test
/// ($RINGSIDE_MACHINE): the boot log is written once the kernel answers, complete and in order;
/// its `boot:` line accounts for the time from the vCPU's reset to ready; the clock's short boot
/// estimate is measured again over 250 ms, and the two agree.
final class BootTimeTests: QEMUTestCase {
    /// `[    0.012345] text` → (seconds, text).
    static func stamped(_ line: Substring) -> (Double, Substring)? {
        guard line.hasPrefix("["), let close = line.firstIndex(of: "]"),
              let seconds = Double(line[line.index(after: line.startIndex)..<close].trimmingCharacters(in: .whitespaces))
        else { return nil }
        let text = line.index(close, offsetBy: 2, limitedBy: line.endIndex) ?? line.endIndex
        return (seconds, line[text...])
    }

    /// The number after `key` in `text` (`tsc 2445 MHz` → 2445 for key "tsc ").
    static func number(after key: String, in text: Substring) -> Double? {
        guard let r = text.range(of: key) else { return nil }
        return Double(text[r.upperBound...].prefix { $0.isNumber || $0 == "." })
    }

    func testBootLogIsCompleteOrderedAndTheRefinedClockAgrees() throws {
        guard let kernel = requireKernel() else { return }
        let c = try baseConfiguration(kernel: kernel)
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("not user networking") }
        _ = try runEchoExchange(port: udpPort, count: 3, sizes: 1...64, seed: 0x14)
        try q.waitForSerial("clock: tsc ", timeout: 10)
        let log = q.serialOutput
        let lines = log.split(separator: "\n").compactMap(Self.stamped)
        XCTAssertGreaterThan(lines.count, 8, log)

        // Written late, stamped when it happened: in the order of the boot, and time never goes
        // back, across the clock's change of rate too.
        for (a, b) in zip(lines, lines.dropFirst()) {
            XCTAssertLessThanOrEqual(a.0, b.0, "stamps go back: \(a) then \(b)\n\(log)")
        }
        let order = ["ringside kernel", "memory: ", "clock: boot estimate: ", "cmdline: ", "net0: virtio-net at",
                     "net0: 10.0.2.15", "con0: virtio-console at", "ringside: ready", "boot: ", "first frames: ",
                     "clock: tsc "]
        var at = 0
        for prefix in order {
            guard let i = lines[at...].firstIndex(where: { $0.1.hasPrefix(prefix) }) else {
                return XCTFail("no '\(prefix)' after line \(at)\n\(log)")
            }
            at = i
        }

        // The stages add up to the total (each printed to 0.01 ms), and the total is the ready
        // line's stamp plus what firmware and loader took.
        guard let boot = lines.first(where: { $0.1.hasPrefix("boot: ") })?.1,
              let ready = lines.first(where: { $0.1 == "ringside: ready" })?.0 else { return XCTFail(log) }
        let parts = boot.dropFirst("boot: ".count).split(separator: ";")
        XCTAssertEqual(parts.count, 2, String(boot))
        let stages = parts[0].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let values = stages.compactMap { Double($0.split(separator: " ").last ?? "") }
        XCTAssertEqual(values.count, stages.count, String(boot))
        XCTAssertTrue(stages.first?.hasPrefix("firmware+loader ") ?? false, String(boot))
        // The stack is up, and has announced our address, before the console and HTTP are set up:
        // QEMU's user networking holds forwarded datagrams until it learns our MAC.
        let names = stages.map { $0.split(separator: " ").dropLast().joined(separator: " ") }
        XCTAssertEqual(Array(names.drop { $0 != "net0" }.prefix(4)), ["net0", "stack", "con0", "http"], String(boot))
        guard let total = Self.number(after: "total ", in: parts[1]) else { return XCTFail(String(boot)) }
        XCTAssertEqual(values.reduce(0, +), total, accuracy: 0.01 * Double(values.count) + 0.01, String(boot))
        XCTAssertEqual(ready * 1000 + values[0], total, accuracy: 0.5, "ready at \(ready) s\n\(boot)")

        // The first frames: taken after ready (the main loop takes them), at a time that is the
        // ready time plus the wait it states, and answered after they were taken.
        guard let first = lines.first(where: { $0.1.hasPrefix("first frames: ") })?.1,
              let count = Self.number(after: "first frames: ", in: first),
              let taken = Self.number(after: " taken at ", in: first),
              let wait = Self.number(after: " ms from vCPU reset (", in: first),
              let sent = Self.number(after: "replies sent by ", in: first)
        else { return XCTFail(log) }
        XCTAssertGreaterThanOrEqual(count, 1, String(first))
        XCTAssertEqual(total + wait, taken, accuracy: 0.02, "\(boot)\n\(first)")
        XCTAssertGreaterThanOrEqual(sent, taken, String(first))
        // The boot's estimate and the refined rate agree; the refined one is measured over the
        // long span and says so.
        guard let estimate = lines.first(where: { $0.1.hasPrefix("clock: boot estimate: ") })?.1,
              let refined = lines.first(where: { $0.1.hasPrefix("clock: tsc ") })?.1,
              let estimateMHz = Self.number(after: "tsc ", in: estimate),
              let refinedMHz = Self.number(after: "tsc ", in: refined),
              let spanUs = Self.number(after: " over ", in: refined),
              let ppm = Self.number(after: "error at most ", in: refined)
        else { return XCTFail(log) }
        print("boot: \(boot)\nclock: estimate \(estimateMHz) MHz, refined \(refinedMHz) MHz over \(spanUs) us (±\(ppm) ppm)")
        XCTAssertEqual(refinedMHz, estimateMHz, accuracy: estimateMHz * 0.005, "\(estimate)\n\(refined)")
        XCTAssertGreaterThanOrEqual(spanUs, 250_000, String(refined))
        XCTAssertLessThanOrEqual(ppm, 100, String(refined))
    }
}
