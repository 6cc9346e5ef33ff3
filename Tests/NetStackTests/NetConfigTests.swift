import Testing
@testable import NetStack
import NetStackTestSupport

@Suite struct NetConfigTests {
    func parse(_ line: String) -> NetConfigParseResult {
        NetConfig.parse(commandLine: Array(line.utf8), mac: ourMAC)
    }

    @Test func defaults() {
        let result = parse("console=ttyS0 quiet")
        #expect(result.errors.isEmpty)
        #expect(result.config == NetConfig(mac: ourMAC))
        #expect(result.config.ip == IPv4Address(10, 0, 2, 15))
        #expect(result.config.prefixLength == 24)
        #expect(result.config.gateway == IPv4Address(10, 0, 2, 2))
        #expect(result.config.summary == "10.0.2.15/24 gw 10.0.2.2 mac 52:54:00:12:34:56")
        #expect(parse("").config == NetConfig(mac: ourMAC))
    }

    @Test func goodValuesAnywhere() {
        let result = parse("console=ttyS0 ip=192.168.7.20/16  gw=192.168.0.1 loglevel=3")
        #expect(result.errors.isEmpty)
        #expect(result.config.ip == IPv4Address(192, 168, 7, 20))
        #expect(result.config.prefixLength == 16)
        #expect(result.config.gateway == IPv4Address(192, 168, 0, 1))
        #expect(result.config.isOnLink(IPv4Address(192, 168, 200, 1)))
        #expect(!result.config.isOnLink(IPv4Address(192, 169, 0, 1)))
        #expect(result.config.directedBroadcast == IPv4Address(192, 168, 255, 255))

        let noPrefix = parse("gw=10.0.2.1\tip=10.0.2.30")
        #expect(noPrefix.errors.isEmpty)
        #expect(noPrefix.config.ip == IPv4Address(10, 0, 2, 30))
        #expect(noPrefix.config.prefixLength == 24)
        #expect(noPrefix.config.gateway == IPv4Address(10, 0, 2, 1))

        // A C string with its NUL and garbage after it.
        var bytes = Array("ip=10.1.0.5/8 gw=10.0.0.1".utf8) + [0] + Array("ip=1.1.1.1".utf8)
        var cString = NetConfig.parse(commandLine: bytes, mac: ourMAC)
        #expect(cString.errors.isEmpty)
        #expect(cString.config.ip == IPv4Address(10, 1, 0, 5))
        #expect(cString.config.prefixLength == 8)
        bytes = Array("ip=10.0.2.40/32 gw=0.0.0.0".utf8)
        cString = NetConfig.parse(commandLine: bytes, mac: ourMAC)
        #expect(cString.errors.isEmpty)
        #expect(cString.config.directedBroadcast == nil)
        #expect(cString.config.gateway == .unspecified)
    }

    @Test func badValuesKeepDefaults() {
        for bad in ["ip=300.1.1.1/24", "ip=10.0.2.15/33", "ip=1.2.3/24", "ip=", "ip=10.0.2.15/", "ip=10.0.2.15/a",
                    "ip=0.0.0.0/24", "ip=255.255.255.255", "ip=224.0.0.5/24", "ip=10.0.2.15/24/8",
                    "ip=10.0.2.15/024"] {
            let result = parse("console=ttyS0 " + bad)
            #expect(result.errors.count == 1, "\(bad)")
            #expect(result.errors.first?.hasPrefix("netcfg: bad ip=") == true, "\(bad)")
            #expect(result.config == NetConfig(mac: ourMAC), "\(bad)")
        }
        for bad in ["gw=abc", "gw=10.0.2", "gw=224.0.0.1", "gw=10.0.2.15", "gw=255.255.255.255"] {
            let result = parse(bad)
            #expect(result.errors.count == 1, "\(bad)")
            #expect(result.errors.first?.hasPrefix("netcfg: bad gw=") == true, "\(bad)")
            #expect(result.config.gateway == NetConfig.defaultGateway, "\(bad)")
        }
        let both = parse("ip=x gw=y")
        #expect(both.errors.count == 2)
        #expect(both.errors[0] == "netcfg: bad ip=\"x\" (want A.B.C.D/N, a unicast address, N 0-32); using 10.0.2.15/24")
        #expect(both.config == NetConfig(mac: ourMAC))
    }

    @Test func gatewayOutsideSubnetIsReportedButKept() {
        let result = parse("ip=192.168.1.5/24")
        #expect(result.config.ip == IPv4Address(192, 168, 1, 5))
        #expect(result.config.gateway == NetConfig.defaultGateway)
        #expect(result.errors == ["netcfg: gateway 10.0.2.2 is outside 192.168.1.0/24; ARPing for it anyway"])
    }

    @Test func garbageNeverCrashes() {
        var generator = SplitMix64(seed: 42)
        let alphabet = Array("ip=gw./0123456789 \0\u{7F}x".utf8)
        for _ in 0..<5_000 {
            let length = Int.random(in: 0..<64, using: &generator)
            let line = (0..<length).map { _ in
                Bool.random(using: &generator) ? alphabet.randomElement(using: &generator)!
                    : UInt8.random(in: 0...255, using: &generator)
            }
            let result = NetConfig.parse(commandLine: line, mac: ourMAC)
            #expect((0...32).contains(result.config.prefixLength))
        }
    }
}
