import XCTest
@testable import NetStack
import NetStackTestSupport

final class TCPTests: XCTestCase {
    static func segment(sequence: UInt32, acknowledgment: UInt32, flags: UInt8, payload: [UInt8] = [],
                 source: IPv4Address = peerIP) -> [UInt8] {
        var bytes: [UInt8] = [0xC3, 0x50, 0x00, 0x50] // 50000 → 80
        for value in [sequence, acknowledgment] {
            bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
        }
        bytes += [0x50, flags, 0xFA, 0xF0, 0, 0, 0, 0] + payload
        let sum = Ref.checksum(Ref.pseudoHeader(source, ourIP, 6, bytes.count) + bytes)
        bytes[16] = UInt8(sum >> 8)
        bytes[17] = UInt8(sum & 0xFF)
        return bytes
    }

    func send(_ stack: NetStack, _ tcp: [UInt8]) -> [UInt8]? {
        stack.receive(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 6, payload: tcp)))
        let frames = stack.drain()
        guard frames.count == 1, let sent = SentIPv4(frames[0]), sent.proto == 6 else { return nil }
        XCTAssertEqual(Ref.checksum(Ref.pseudoHeader(sent.source, sent.destination, 6, sent.transport.count) + sent.transport), 0)
        XCTAssertTrue(sent.headerChecksumValid)
        return sent.transport
    }

    func testSynToClosedPortGetsResetAck() throws {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        let reset = try XCTUnwrap(send(stack, Self.segment(sequence: 0xFFFF_FFFF, acknowledgment: 0, flags: 0x02)))
        XCTAssertEqual(reset.count, 20)
        XCTAssertTrue(be16(reset, 0) == 80 && be16(reset, 2) == 50000)
        XCTAssertEqual(be32(reset, 4), 0)
        XCTAssertEqual(be32(reset, 8), 0) // SEG.SEQ + 1 wraps
        XCTAssertEqual(reset[13], 0x14) // RST|ACK
        XCTAssertEqual(stack.counters.tcpResetsOut, 1)
    }

    func testAckSegmentGetsPlainReset() throws {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        let reset = try XCTUnwrap(send(stack, Self.segment(sequence: 100, acknowledgment: 5555, flags: 0x18, payload: [1, 2, 3])))
        XCTAssertEqual(be32(reset, 4), 5555)
        XCTAssertEqual(reset[13], 0x04)
    }

    func testDataWithoutAckCountsPayloadAndFin() throws {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        let reset = try XCTUnwrap(send(stack, Self.segment(sequence: 1000, acknowledgment: 0, flags: 0x01, payload: [1, 2, 3])))
        XCTAssertEqual(be32(reset, 8), 1004)
    }

    func testResetIsNeverAnsweredAndBadSegmentsAreDropped() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        XCTAssertNil(send(stack, Self.segment(sequence: 1, acknowledgment: 0, flags: 0x04)))
        var corrupt = Self.segment(sequence: 1, acknowledgment: 0, flags: 0x02)
        corrupt[4] ^= 1
        XCTAssertNil(send(stack, corrupt))
        XCTAssertNil(send(stack, [0, 1, 2]))
        var badOffset = Self.segment(sequence: 1, acknowledgment: 0, flags: 0x02)
        badOffset[12] = 0xF0
        XCTAssertNil(send(stack, badOffset))
        XCTAssertEqual(stack.counters.tcpIn, 4)
        XCTAssertEqual(stack.counters.tcpDropBadChecksum, 1)
        XCTAssertEqual(stack.counters.tcpDropMalformed, 2)
        XCTAssertEqual(stack.counters.tcpResetsOut, 0)
    }

    func testRegisteredHandlerTakesOver() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        var seen: [(IPv4PacketInfo, Int)] = []
        XCTAssertTrue(stack.registerIPv4Protocol(6) { info, segment in seen.append((info, segment.count)) })
        XCTAssertTrue(!stack.registerIPv4Protocol(17) { _, _ in })
        XCTAssertNil(send(stack, Self.segment(sequence: 1, acknowledgment: 0, flags: 0x02)))
        XCTAssertEqual(seen.count, 1)
        XCTAssertEqual(seen.first?.1, 20)
        XCTAssertEqual(seen.first?.0.source, peerIP)
        // And it can answer through sendIPv4.
        let answer = Self.segment(sequence: 9, acknowledgment: 0, flags: 0x04)
        XCTAssertTrue(answer.withUnsafeBytes { stack.sendIPv4(to: peerIP, protocolNumber: 6, payload: $0) })
        let frames = stack.drain()
        XCTAssertEqual(frames.count, 1)
        XCTAssertEqual(SentIPv4(frames[0])?.transport, answer)
    }
}
