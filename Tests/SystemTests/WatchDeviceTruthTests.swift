import Foundation
import XCTest
import Wire
@testable import RingsideKit

/// `ringside watch SOCKET --json --qmp QMP`: QEMU's own indices beside the driver's, per net queue.
final class WatchDeviceTruthTests: QEMUTestCase {
    func testWatchJSONCarriesTheDevicesIndicesAndVerdict() throws {
        guard let kernel = requireKernel() else { return }
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found; build it with `swift build`") }
        var c = try baseConfiguration(kernel: kernel)
        c.userQMP = true
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("user networking") }
        _ = try runEchoExchange(port: udpPort, count: 10, sizes: 16...300, seed: 3)

        let r = try runCommand(["/bin/sh", "-c", "\"$0\" watch \"$1\" --json --qmp \"$2\" --count 40 2>/dev/null",
                                bin, q.run.consoleSocket, q.run.userQMPSocket], timeout: 60)
        XCTAssertEqual(r.status, .exited(0), String(r.output.suffix(500)))
        let objects = r.output.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        XCTAssertEqual(objects.count, 40)
        var verdicts: [String: [String]] = [:]
        for o in objects {
            for queue in o["queues"] as? [[String: Any]] ?? [] {
                let name = queue["name"] as? String ?? "?"
                guard name.hasPrefix("net0.") else {
                    XCTAssertNil(queue["device"], "\(name): only network queues get a device object")
                    continue
                }
                guard let device = queue["device"] as? [String: Any] else { XCTFail("\(name): no device object"); continue }
                if device["unavailable"] != nil { verdicts[name, default: []].append("unavailable"); continue }
                for key in ["last_avail_idx", "used_idx", "inuse", "vring_num", "shadow_avail_idx", "age_ms", "reasons"] {
                    XCTAssertNotNil(device[key], "\(name): device.\(key) missing: \(device)")
                }
                XCTAssertEqual(device["vring_num"] as? Int, queue["size"] as? Int, "\(name): QEMU's queue size is the driver's")
                let verdict = device["verdict"] as? String ?? "?"
                XCTAssertTrue(["agree", "in_flight", "unknown"].contains(verdict), "\(name): \(verdict) \(device)")
                verdicts[name, default: []].append(verdict)
                // Idle after the echoes: the device has consumed and returned what the driver says.
                if verdict == "agree" {
                    if queue["format"] as? String == "packed" {
                        // QEMU reports a packed queue's used-idx as a slot offset without its wrap
                        // counter; the driver's used_idx is a position (offset | wrap << 15).
                        XCTAssertEqual(device["used_idx"] as? Int, (queue["used_idx"] as? Int).map { $0 & 0x7FFF }, "\(name): agreeing used positions")
                    } else {
                        XCTAssertEqual(device["used_idx"] as? Int, queue["used_idx"] as? Int, "\(name): agreeing used indices")
                    }
                }
            }
        }
        for name in ["net0.rx", "net0.tx"] {
            XCTAssertTrue(verdicts[name]?.suffix(10).contains("agree") == true, "\(name): an idle queue agrees: \(verdicts[name] ?? [])")
        }

        // Without --qmp: no device objects (the plain watch --json is unchanged).
        let plain = try runCommand([bin, "watch", q.run.consoleSocket, "--json", "--count", "2"], timeout: 30)
        XCTAssertEqual(plain.status, .exited(0))
        XCTAssertFalse(plain.output.contains("\"device\":"), String(plain.output.prefix(300)))
        // SOCKET with --qmp and --memory: refused in words.
        let both = try runCommand([bin, "watch", q.run.consoleSocket, "--json", "--qmp", q.run.userQMPSocket, "--memory", "/dev/null"], timeout: 30)
        XCTAssertNotEqual(both.status, .exited(0))
        XCTAssertTrue(both.output.contains("--memory"), both.output)
    }
}
