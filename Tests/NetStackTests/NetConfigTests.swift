import XCTest
@testable import NetStack
import NetStackTestSupport

final class NetConfigTests: XCTestCase {
    func parse(_ line: String) -> NetConfigParseResult {
        NetConfig.parse(commandLine: Array(line.utf8), mac: ourMAC)
    }

    func testDefaults() {
        let result = parse("console=ttyS0 quiet")
        XCTAssertTrue(result.errors.isEmpty)
        XCTAssertEqual(result.config, NetConfig(mac: ourMAC))
        XCTAssertEqual(result.config.ip, IPv4Address(10, 0, 2, 15))
        XCTAssertEqual(result.config.prefixLength, 24)
        XCTAssertEqual(result.config.gateway, IPv4Address(10, 0, 2, 2))
        XCTAssertEqual(result.config.summary, "10.0.2.15/24 gw 10.0.2.2 mac 52:54:00:12:34:56")
        XCTAssertEqual(parse("").config, NetConfig(mac: ourMAC))
    }

    func testGoodValuesAnywhere() {
        let result = parse("console=ttyS0 ip=192.168.7.20/16  gw=192.168.0.1 loglevel=3")
        XCTAssertTrue(result.errors.isEmpty)
        XCTAssertEqual(result.config.ip, IPv4Address(192, 168, 7, 20))
        XCTAssertEqual(result.config.prefixLength, 16)
        XCTAssertEqual(result.config.gateway, IPv4Address(192, 168, 0, 1))
        XCTAssertTrue(result.config.isOnLink(IPv4Address(192, 168, 200, 1)))
        XCTAssertTrue(!result.config.isOnLink(IPv4Address(192, 169, 0, 1)))
        XCTAssertEqual(result.config.directedBroadcast, IPv4Address(192, 168, 255, 255))

        let noPrefix = parse("gw=10.0.2.1\tip=10.0.2.30")
        XCTAssertTrue(noPrefix.errors.isEmpty)
        XCTAssertEqual(noPrefix.config.ip, IPv4Address(10, 0, 2, 30))
        XCTAssertEqual(noPrefix.config.prefixLength, 24)
        XCTAssertEqual(noPrefix.config.gateway, IPv4Address(10, 0, 2, 1))

        // A C string with its NUL and garbage after it.
        var bytes = Array("ip=10.1.0.5/8 gw=10.0.0.1".utf8) + [0] + Array("ip=1.1.1.1".utf8)
        var cString = NetConfig.parse(commandLine: bytes, mac: ourMAC)
        XCTAssertTrue(cString.errors.isEmpty)
        XCTAssertEqual(cString.config.ip, IPv4Address(10, 1, 0, 5))
        XCTAssertEqual(cString.config.prefixLength, 8)
        bytes = Array("ip=10.0.2.40/32 gw=0.0.0.0".utf8)
        cString = NetConfig.parse(commandLine: bytes, mac: ourMAC)
        XCTAssertTrue(cString.errors.isEmpty)
        XCTAssertNil(cString.config.directedBroadcast)
        XCTAssertEqual(cString.config.gateway, .unspecified)
    }

    func testBadValuesKeepDefaults() {
        for bad in ["ip=300.1.1.1/24", "ip=10.0.2.15/33", "ip=1.2.3/24", "ip=", "ip=10.0.2.15/", "ip=10.0.2.15/a",
                    "ip=0.0.0.0/24", "ip=255.255.255.255", "ip=224.0.0.5/24", "ip=10.0.2.15/24/8",
                    "ip=10.0.2.15/024"] {
            let result = parse("console=ttyS0 " + bad)
            XCTAssertEqual(result.errors.count, 1, "\(bad)")
            XCTAssertEqual(result.errors.first?.hasPrefix("netcfg: bad ip="), true, "\(bad)")
            XCTAssertEqual(result.config, NetConfig(mac: ourMAC), "\(bad)")
        }
        for bad in ["gw=abc", "gw=10.0.2", "gw=224.0.0.1", "gw=10.0.2.15", "gw=255.255.255.255"] {
            let result = parse(bad)
            XCTAssertEqual(result.errors.count, 1, "\(bad)")
            XCTAssertEqual(result.errors.first?.hasPrefix("netcfg: bad gw="), true, "\(bad)")
            XCTAssertEqual(result.config.gateway, NetConfig.defaultGateway, "\(bad)")
        }
        let both = parse("ip=x gw=y")
        XCTAssertEqual(both.errors.count, 2)
        XCTAssertEqual(both.errors[0], "netcfg: bad ip=\"x\" (want A.B.C.D/N, a unicast address, N 0-32); using 10.0.2.15/24")
        XCTAssertEqual(both.config, NetConfig(mac: ourMAC))
    }

    func testGatewayOutsideSubnetIsReportedButKept() {
        let result = parse("ip=192.168.1.5/24")
        XCTAssertEqual(result.config.ip, IPv4Address(192, 168, 1, 5))
        XCTAssertEqual(result.config.gateway, NetConfig.defaultGateway)
        XCTAssertEqual(result.errors, ["netcfg: gateway 10.0.2.2 is outside 192.168.1.0/24; ARPing for it anyway"])
    }

    func testGarbageNeverCrashes() {
        var generator = SplitMix64(seed: 42)
        let alphabet = Array("ip=gw./0123456789 \0\u{7F}x".utf8)
        for _ in 0..<5_000 {
            let length = Int.random(in: 0..<64, using: &generator)
            let line = (0..<length).map { _ in
                Bool.random(using: &generator) ? alphabet.randomElement(using: &generator)!
                    : UInt8.random(in: 0...255, using: &generator)
            }
            let result = NetConfig.parse(commandLine: line, mac: ourMAC)
            XCTAssertTrue((0...32).contains(result.config.prefixLength))
        }
    }
}
