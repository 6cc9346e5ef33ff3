import Foundation
import XCTest
@testable import RingsideKit

/// Real `ping` and `arping` against the kernel on a tap device inside a private network namespace.
/// Only addresses inside that namespace are ever targeted.
final class TapTests: QEMUTestCase {
    private var namespace: String?

    override func tearDown() {
        super.tearDown() // stops QEMU first: it holds the tap open
        if let ns = namespace {
            _ = try? runCommand(["ip", "netns", "del", ns], timeout: 10)
            namespace = nil
        }
    }

    @discardableResult
    private func sh(_ argv: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try runCommand(argv, timeout: 20)
        guard r.status == .exited(0) else {
            throw RingsideError("\(argv.joined(separator: " ")) failed (\(r.status)): \(r.output)")
        }
        return r.output
    }

    func testPingAndArpingOverTap() throws {
        guard let kernel = requireKernel() else { return }
        guard geteuid() == 0 else { return XCTFail("the tap test needs root (ip netns, ip tuntap); run the tests as root") }
        guard access("/dev/net/tun", R_OK | W_OK) == 0 else { return XCTFail("/dev/net/tun is missing or not accessible; the tap test cannot run") }
        for tool in ["ip", "ping", "arping"] where findExecutable(tool) == nil {
            return XCTFail("\(tool) is not installed (run `make deps`)")
        }
        let ns = "rs-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
        try sh(["ip", "netns", "add", ns])
        namespace = ns
        let inNS = ["ip", "netns", "exec", ns]
        try sh(inNS + ["ip", "link", "set", "lo", "up"])
        try sh(inNS + ["ip", "tuntap", "add", "dev", "rstap0", "mode", "tap"])
        try sh(inNS + ["ip", "addr", "add", "10.0.3.1/24", "dev", "rstap0"])
        try sh(inNS + ["ip", "link", "set", "rstap0", "up"])

        var c = QEMUConfiguration()
        c.kernel = kernel
        c.append = "ip=10.0.3.15/24 gw=10.0.3.1"
        c.network = .tap(ifname: "rstap0")
        c.wrapper = inNS
        let q = try launchReady(c)

        let ping = try runCommand(inNS + ["ping", "-c", "3", "-W", "2", "10.0.3.15"], timeout: 30)
        XCTAssertEqual(ping.status, .exited(0), "ping 10.0.3.15 failed:\n\(ping.output)\nserial.log:\n\(q.serialOutput)")
        XCTAssertTrue(ping.output.contains("3 received"), ping.output)

        let arping = try runCommand(inNS + ["arping", "-c", "3", "-w", "5", "-I", "rstap0", "10.0.3.15"], timeout: 30)
        XCTAssertEqual(arping.status, .exited(0), "arping 10.0.3.15 failed:\n\(arping.output)")
        XCTAssertTrue(arping.output.contains("from") && !arping.output.contains(" 0 packets received"), arping.output)
    }
}
