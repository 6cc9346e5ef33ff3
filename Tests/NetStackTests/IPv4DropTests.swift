import XCTest
@testable import NetStack
import NetStackTestSupport

/// Each broken packet is dropped with its own reason and counter, and the stack keeps
/// working: a good echo request right after still gets its reply.
final class IPv4DropTests: XCTestCase {
    func expectDropThenRecovery(_ frame: [UInt8], _ reason: NetDropReason, _ counter: KeyPath<NetCounters, UInt64>,
                                file: StaticString = #filePath, line: UInt = #line) {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        var reasons: [NetDropReason] = []
        stack.onDrop = { reasons.append($0) }
        stack.receive(frame)
        XCTAssertTrue(stack.drain().isEmpty, file: file, line: line)
        XCTAssertEqual(reasons, [reason], file: file, line: line)
        XCTAssertEqual(stack.lastDropReason, reason, file: file, line: line)
        XCTAssertEqual(stack.counters[keyPath: counter], 1, file: file, line: line)
        XCTAssertEqual(stack.counters.totalDrops, 1, file: file, line: line)
        stack.receive(Ref.udpFrame(payload: [1, 2, 3]))
        let frames = stack.drain()
        XCTAssertTrue(frames.count == 1 && SentIPv4(frames[0])?.udpChecksumValid == true, file: file, line: line)
    }

    var good: [UInt8] { Ref.udpFrame(payload: Array(0..<40)) }

    func testTruncatedBelowMinimumHeader() {
        expectDropThenRecovery(Array(good[0..<(14 + 19)]), .ipv4Truncated, \.ipv4DropTruncated)
        expectDropThenRecovery(Array(good[0..<14]), .ipv4Truncated, \.ipv4DropTruncated)
    }

    func testTotalLengthBeyondBuffer() {
        expectDropThenRecovery(Array(good[0..<(good.count - 1)]), .ipv4Truncated, \.ipv4DropTruncated)
    }

    func testOptionsBeyondBuffer() {
        var frame = Ref.ethernet(etherType: 0x0800, payload: Array(Ref.ipv4(proto: 17, payload: []).prefix(20)), pad: false)
        frame[14] = 0x4F // IHL 15 → 60 bytes of header in a 20-byte packet
        expectDropThenRecovery(frame, .ipv4Truncated, \.ipv4DropTruncated)
    }

    func testBadHeaderChecksum() {
        var frame = good
        frame[24] ^= 0x10
        expectDropThenRecovery(frame, .ipv4BadChecksum, \.ipv4DropBadChecksum)
    }

    func testBadIHLAndVersion() {
        var ihl4 = good
        ihl4[14] = 0x44
        expectDropThenRecovery(ihl4, .ipv4BadHeader, \.ipv4DropBadHeader)
        var version6 = good
        version6[14] = 0x65
        expectDropThenRecovery(version6, .ipv4BadHeader, \.ipv4DropBadHeader)
        // Total length smaller than the header, checksum fixed so only the length is wrong.
        var short = Ref.ipv4(proto: 17, payload: [])
        short[3] = 16
        short[10] = 0
        short[11] = 0
        let sum = Ref.checksum(short[0..<20])
        short[10] = UInt8(sum >> 8)
        short[11] = UInt8(sum & 0xFF)
        expectDropThenRecovery(Ref.ethernet(etherType: 0x0800, payload: short), .ipv4BadHeader, \.ipv4DropBadHeader)
    }

    func testFragmentsAreDropped() {
        let udp = Ref.udp(sourcePort: 1000, destinationPort: 7, payload: [1, 2, 3])
        let moreFragments = Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 17, payload: udp, flagsAndOffset: 0x2000))
        expectDropThenRecovery(moreFragments, .ipv4Fragment, \.ipv4DropFragment)
        let lastFragment = Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 17, payload: udp, flagsAndOffset: 0x0010))
        expectDropThenRecovery(lastFragment, .ipv4Fragment, \.ipv4DropFragment)
    }

    func testNotForUsAndBadSource() {
        expectDropThenRecovery(Ref.udpFrame(destination: IPv4Address(10, 0, 2, 16), payload: [1]), .ipv4NotForUs, \.ipv4DropNotForUs)
        expectDropThenRecovery(Ref.udpFrame(source: .broadcast, payload: [1]), .ipv4BadSource, \.ipv4DropBadSource)
        expectDropThenRecovery(Ref.udpFrame(source: ourIP, payload: [1]), .ipv4BadSource, \.ipv4DropBadSource)
        expectDropThenRecovery(Ref.udpFrame(source: IPv4Address(224, 0, 0, 1), payload: [1]), .ipv4BadSource, \.ipv4DropBadSource)
    }

    func testOversizedIsDropped() {
        // A 1501-byte datagram cannot come off a 1500-MTU link.
        let frame = Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 17, payload: Ref.udp(sourcePort: 1, destinationPort: 7, payload: [UInt8](repeating: 1, count: 1473))))
        expectDropThenRecovery(frame, .ipv4Oversized, \.ipv4DropOversized)
    }

    func testUnsupportedProtocolAndEtherType() {
        expectDropThenRecovery(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 47, payload: [0, 0, 0, 0])),
                               .ipv4ProtocolUnsupported, \.ipv4DropUnsupportedProtocol)
        expectDropThenRecovery(Ref.ethernet(etherType: 0x86DD, payload: [0x60]), .etherTypeUnsupported, \.ethDropUnsupportedType)
        expectDropThenRecovery([1, 2, 3], .ethernetTooShort, \.ethDropShort)
    }

    func testOptionsAreSkipped() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        let udp = Ref.udp(sourcePort: 1000, destinationPort: 7, payload: [9, 8, 7])
        // Router-alert-like options: 4 bytes of NOPs + 4 bytes EOL.
        stack.receive(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 17, payload: udp, options: [1, 1, 1, 1, 0, 0, 0, 0])))
        let frames = stack.drain()
        XCTAssertEqual(frames.count, 1)
        XCTAssertEqual(SentIPv4(frames[0])?.transport.dropFirst(8).elementsEqual([9, 8, 7]), true)
    }

    func testFramesForOtherStationsAreIgnored() {
        let stack = makeStack()
        stack.receive(Ref.udpFrame(ethernetDestination: MACAddress(0x52, 0x54, 0, 0, 0, 1), payload: [1]))
        stack.receive(Ref.udpFrame(ethernetDestination: MACAddress(0x33, 0x33, 0, 0, 0, 1), payload: [1]))
        XCTAssertEqual(stack.counters.rxNotForUs, 2)
        XCTAssertEqual(stack.counters.rxFrames, 2)
        XCTAssertEqual(stack.counters.ipv4In, 0)
        XCTAssertEqual(stack.counters.totalDrops, 0)
        XCTAssertTrue(stack.drain().isEmpty)
    }

    func testDropReasonNames() {
        XCTAssertEqual(NetDropReason.ipv4BadChecksum.name.description, "ipv4-bad-checksum")
        XCTAssertEqual(NetDropReason.ipv4Truncated.name.description, "ipv4-truncated")
        XCTAssertEqual(NetDropReason.transmitQueueFull.name.description, "tx-queue-full")
    }
}
