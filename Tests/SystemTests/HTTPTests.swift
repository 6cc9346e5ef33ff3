import Foundation
import XCTest
@testable import RingsideKit

/// The kernel's HTTP/1.1 server (port 80, forwarded to a host port by QEMU user networking),
/// driven by real clients: `curl`, and scripts/http-check.py (sequential and concurrent
/// keep-alive clients, a 200 KB POST, garbage, abrupt disconnects).
final class HTTPTests: QEMUTestCase {
    private func bootWithHTTP() throws -> UInt16? {
        guard let kernel = requireKernel() else { return nil }
        let c = try baseConfiguration(kernel: kernel)
        _ = try launchReady(c)
        guard case let .user(_, httpPort) = c.network else {
            XCTFail("not user networking")
            return nil
        }
        return httpPort
    }

    func testCurlGetsTheStatusPageAndPrometheusMetrics() throws {
        guard findExecutable("curl") != nil else { return XCTFail("curl is not installed (apt-get install curl)") }
        guard let port = try bootWithHTTP() else { return }
        let page = try runCommand(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)/"])
        XCTAssertEqual(page.status, .exited(0), page.output)
        XCTAssertTrue(page.output.hasSuffix("\n200"), "GET / status: \(page.output.suffix(10))")
        XCTAssertTrue(page.output.contains("net0.rx"), "the status page lists the queues")
        if testRingFormat == .packed {
            // Packed rings in their own words (virtio 1.2 §2.8): positions with wrap counters.
            XCTAssertTrue(page.output.contains("<th>packed queue</th>") && page.output.contains("<th>driver next avail</th>"), page.output)
            XCTAssertNotNil(page.output.range(of: #"<td>net0\.rx</td><td>256</td><td>\d+ w[01]</td><td>\d+ w[01]</td>"#, options: .regularExpression), page.output)
            XCTAssertFalse(page.output.contains("<th>avail idx</th>"), "no split table without split queues")
        } else {
            XCTAssertNotNil(page.output.range(of: #"<td>net0\.rx</td><td>256</td><td>\d+</td><td>\d+</td>"#, options: .regularExpression), page.output)
            XCTAssertFalse(page.output.contains("packed queue"), page.output)
        }

        let metrics = try runCommand(["curl", "-sS", "http://127.0.0.1:\(port)/metrics"])
        XCTAssertEqual(metrics.status, .exited(0), metrics.output)
        // Prometheus text exposition: every line is a comment or `name{labels} value`.
        let sample = try NSRegularExpression(pattern: #"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.eE+-]+$"#)
        var samples = 0
        for line in metrics.output.split(separator: "\n") {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") { continue }
            let text = String(line)
            let matched = sample.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
            XCTAssertTrue(matched, "not Prometheus text: \(text)")
            samples += 1
        }
        XCTAssertGreaterThan(samples, 10)
        XCTAssertTrue(metrics.output.contains(#"queue="net0.rx""#), "per-queue labels")

        // The fixed answer the HTTP benchmark asks for (scripts/bench_vs_linux.py).
        let hello = try runCommand(["curl", "-sS", "-D", "-", "http://127.0.0.1:\(port)/hello"])
        XCTAssertTrue(hello.output.hasPrefix("HTTP/1.1 200"), hello.output)
        XCTAssertTrue(hello.output.hasSuffix("\r\n\r\nhello from ringside\n"), hello.output)

        let missing = try runCommand(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/nope"])
        XCTAssertEqual(missing.output, "404")
    }

    /// VIRTIO_F_RING_EVENT_IDX: negotiated by default on both net queues, off with
    /// `virtio.event_idx=off` (how `make test` runs the integration tests a second time).
    /// Either way RX reposts need no kick while the device has buffers (it says so by
    /// `avail_event` or by VIRTQ_USED_F_NO_NOTIFY), and traffic flows.
    func testEventIdxIsNegotiatedUnlessTheCommandLineTurnsItOff() throws {
        guard let kernel = requireKernel() else { return }
        for off in [false, true] {
            var c = try baseConfiguration(kernel: kernel)
            if off { c.append = "virtio.event_idx=off" }
            let q = try launchReady(c)
            guard case let .user(udpPort, httpPort) = c.network else { return XCTFail("not user networking") }
            _ = try runEchoExchange(port: udpPort, count: 20, sizes: 16...200, seed: 9, perTryTimeout: 1)
            let metrics = try runCommand(["curl", "-sS", "http://127.0.0.1:\(httpPort)/metrics"]).output
            func value(_ name: String, _ queue: String) -> Int? {
                metrics.split(separator: "\n").first { $0.hasPrefix("\(name){queue=\"\(queue)\"} ") }
                    .flatMap { Int($0.split(separator: " ").last ?? "") }
            }
            let expected = off || QEMUConfiguration.environmentAppend.contains("virtio.event_idx=off") ? 0 : 1
            for queue in ["net0.rx", "net0.tx"] {
                XCTAssertEqual(value("ringside_queue_event_idx", queue), expected, "\(queue), off=\(off)")
            }
            XCTAssertGreaterThanOrEqual(value("ringside_queue_kicks_suppressed_total", "net0.rx") ?? 0, 20, "off=\(off)")
            XCTAssertGreaterThanOrEqual(value("ringside_queue_kicks_total", "net0.tx") ?? 0, 20, "off=\(off)")
            q.stop(grace: 2)
        }
    }

    /// `ringside_cpu_idle_seconds_total`: the time the kernel spent halted. At rest it grows
    /// almost as fast as the uptime; under an echo load the busy share (uptime − idle) grows
    /// more than at rest; idle never exceeds the uptime.
    func testIdleTimeIsCountedAndBusyTimeRisesUnderLoad() throws {
        guard let kernel = requireKernel() else { return }
        let c = try baseConfiguration(kernel: kernel)
        _ = try launchReady(c)
        guard case let .user(udpPort, httpPort) = c.network else { return XCTFail("not user networking") }
        func read() throws -> (uptime: Double, idle: Double) {
            let text = try runCommand(["curl", "-sS", "http://127.0.0.1:\(httpPort)/metrics"]).output
            func value(_ name: String) -> Double? {
                text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
            }
            guard let up = value("ringside_uptime_seconds"), let idle = value("ringside_cpu_idle_seconds_total") else {
                XCTFail("no uptime or idle counter in /metrics:\n\(text)")
                return (0, 0)
            }
            XCTAssertLessThanOrEqual(idle, up, "idle time beyond the uptime")
            return (up, idle)
        }
        let a = try read()
        Thread.sleep(forTimeInterval: 1.0)
        let b = try read()
        let restBusy = 1 - (b.idle - a.idle) / (b.uptime - a.uptime)
        _ = try runEchoExchange(port: udpPort, count: 1500, sizes: 64...64, seed: 3, perTryTimeout: 1)
        let d = try read()
        let loadBusy = 1 - (d.idle - b.idle) / (d.uptime - b.uptime)
        print("busy share: at rest \(String(format: "%.3f", restBusy)), under echo \(String(format: "%.3f", loadBusy))")
        XCTAssertGreaterThan(b.idle - a.idle, 0.5, "a resting kernel is mostly halted")
        XCTAssertGreaterThan(loadBusy, restBusy, "serving echoes takes more of the CPU than resting")
    }

    func testHTTPCheckScriptPassesAgainstTheRunningKernel() throws {
        guard findExecutable("python3") != nil else { return XCTFail("python3 is not installed") }
        guard let port = try bootWithHTTP() else { return }
        let script = repositoryRoot + "/scripts/http-check.py"
        let result = try runCommand(["python3", script, "--port", String(port)], timeout: 240)
        XCTAssertEqual(result.status, .exited(0), "http-check failed:\n\(result.output)")
        XCTAssertFalse(result.output.contains("FAIL "), result.output)
    }
}
