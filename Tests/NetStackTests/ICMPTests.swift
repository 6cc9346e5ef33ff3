import XCTest
@testable import NetStack
import NetStackTestSupport

final class ICMPTests: XCTestCase {
    /// A Linux `ping` from 10.0.2.2: id 0x1c46, seq 1, 56 data bytes, DF set. Both
    /// checksums (IPv4 e776, ICMP b960) computed outside Swift.
    static let capturedEchoRequest: [UInt8] = [
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x08, 0x00,
        0x45, 0x00, 0x00, 0x4c, 0x3b, 0x2a, 0x40, 0x00, 0x40, 0x01, 0xe7, 0x76,
        0x0a, 0x00, 0x02, 0x02, 0x0a, 0x00, 0x02, 0x0f,
        0x08, 0x00, 0xb9, 0x60, 0x1c, 0x46, 0x00, 0x01,
        0xa0, 0xb1, 0xc2, 0xd3, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
        0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
        0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ]

    /// The reply: identification 1 (the stack's first datagram), DF, TTL 64, IPv4 checksum
    /// 22a0, ICMP type 0 with checksum c160 (= b960 + 0800, RFC 1624).
    static let expectedEchoReply: [UInt8] = [
        0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00,
        0x45, 0x00, 0x00, 0x4c, 0x00, 0x01, 0x40, 0x00, 0x40, 0x01, 0x22, 0xa0,
        0x0a, 0x00, 0x02, 0x0f, 0x0a, 0x00, 0x02, 0x02,
        0x00, 0x00, 0xc1, 0x60, 0x1c, 0x46, 0x00, 0x01,
        0xa0, 0xb1, 0xc2, 0xd3, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
        0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
        0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ]

    func testCapturedChecksumsAreRight() {
        let request = ICMPTests.capturedEchoRequest
        XCTAssertEqual(Ref.checksum(request[14..<34]), 0)
        XCTAssertEqual(Ref.checksum(request[34...]), 0)
        XCTAssertEqual(Ref.checksum(ICMPTests.expectedEchoReply[14..<34]), 0)
        XCTAssertEqual(Ref.checksum(ICMPTests.expectedEchoReply[34...]), 0)
    }

    func testEchoRequestGetsExactReply() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        stack.receive(ICMPTests.capturedEchoRequest)
        XCTAssertEqual(stack.drain(), [ICMPTests.expectedEchoReply])
        XCTAssertEqual(stack.counters.icmpEchoRequests, 1)
        XCTAssertEqual(stack.counters.icmpEchoReplies, 1)
        XCTAssertEqual(stack.counters.ipv4In, 1)
        XCTAssertEqual(stack.counters.totalDrops, 0)
    }

    func testEchoOfManySizesHasValidChecksums() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        for size in [0, 1, 2, 3, 17, 100, 1000, 1471, 1472] {
            let data = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
            stack.receive(Ref.icmpEchoFrame(sequence: UInt16(size), data: data))
            let frames = stack.drain()
            XCTAssertEqual(frames.count, 1)
            guard let reply = frames.first.flatMap(SentIPv4.init) else {
                XCTFail("no reply for \(size)")
                continue
            }
            XCTAssertTrue(reply.headerChecksumValid)
            XCTAssertTrue(reply.destination == peerIP && reply.source == ourIP)
            XCTAssertEqual(Ref.checksum(reply.transport), 0)
            XCTAssertEqual(reply.transport, Ref.icmpEcho(type: 0, sequence: UInt16(size), data: data))
        }
    }

    func testBadChecksumAndShortAreDropped() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        var bad = Ref.icmpEcho(data: [1, 2, 3, 4])
        bad[8] ^= 0xFF
        stack.receive(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 1, payload: bad)))
        XCTAssertEqual(stack.counters.icmpDropBadChecksum, 1)
        stack.receive(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 1, payload: [8, 0, 0xF7])))
        XCTAssertEqual(stack.counters.icmpDropMalformed, 1)
        XCTAssertTrue(stack.drain().isEmpty)
        stack.receive(Ref.icmpEchoFrame())
        XCTAssertEqual(stack.drain().count, 1)
    }

    func testOtherTypesAndBroadcastEchoAreIgnored() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        // An echo reply (type 0) and a destination unreachable (type 3): nothing to do.
        stack.receive(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 1, payload: Ref.icmpEcho(type: 0, data: []))))
        stack.receive(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 1, payload: Ref.icmpEcho(type: 3, data: [1]))))
        stack.receive(Ref.icmpEchoFrame(destination: .broadcast, ethernetDestination: .broadcast))
        stack.receive(Ref.icmpEchoFrame(destination: IPv4Address(10, 0, 2, 255), ethernetDestination: .broadcast))
        XCTAssertTrue(stack.drain().isEmpty)
        XCTAssertEqual(stack.counters.icmpIgnored, 4)
        XCTAssertEqual(stack.counters.totalDrops, 0)
    }
}
