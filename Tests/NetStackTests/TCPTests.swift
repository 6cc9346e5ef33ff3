import Testing
@testable import NetStack
import NetStackTestSupport

@Suite struct TCPTests {
    func segment(sequence: UInt32, acknowledgment: UInt32, flags: UInt8, payload: [UInt8] = [],
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
        #expect(Ref.checksum(Ref.pseudoHeader(sent.source, sent.destination, 6, sent.transport.count) + sent.transport) == 0)
        #expect(sent.headerChecksumValid)
        return sent.transport
    }

    @Test func synToClosedPortGetsResetAck() throws {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        let reset = try #require(send(stack, segment(sequence: 0xFFFF_FFFF, acknowledgment: 0, flags: 0x02)))
        #expect(reset.count == 20)
        #expect(be16(reset, 0) == 80 && be16(reset, 2) == 50000)
        #expect(be32(reset, 4) == 0)
        #expect(be32(reset, 8) == 0) // SEG.SEQ + 1 wraps
        #expect(reset[13] == 0x14) // RST|ACK
        #expect(stack.counters.tcpResetsOut == 1)
    }

    @Test func ackSegmentGetsPlainReset() throws {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        let reset = try #require(send(stack, segment(sequence: 100, acknowledgment: 5555, flags: 0x18, payload: [1, 2, 3])))
        #expect(be32(reset, 4) == 5555)
        #expect(reset[13] == 0x04)
    }

    @Test func dataWithoutAckCountsPayloadAndFin() throws {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        let reset = try #require(send(stack, segment(sequence: 1000, acknowledgment: 0, flags: 0x01, payload: [1, 2, 3])))
        #expect(be32(reset, 8) == 1004)
    }

    @Test func resetIsNeverAnsweredAndBadSegmentsAreDropped() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        #expect(send(stack, segment(sequence: 1, acknowledgment: 0, flags: 0x04)) == nil)
        var corrupt = segment(sequence: 1, acknowledgment: 0, flags: 0x02)
        corrupt[4] ^= 1
        #expect(send(stack, corrupt) == nil)
        #expect(send(stack, [0, 1, 2]) == nil)
        var badOffset = segment(sequence: 1, acknowledgment: 0, flags: 0x02)
        badOffset[12] = 0xF0
        #expect(send(stack, badOffset) == nil)
        #expect(stack.counters.tcpIn == 4)
        #expect(stack.counters.tcpDropBadChecksum == 1)
        #expect(stack.counters.tcpDropMalformed == 2)
        #expect(stack.counters.tcpResetsOut == 0)
    }

    @Test func registeredHandlerTakesOver() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        var seen: [(IPv4PacketInfo, Int)] = []
        #expect(stack.registerIPv4Protocol(6) { info, segment in seen.append((info, segment.count)) })
        #expect(!stack.registerIPv4Protocol(17) { _, _ in })
        #expect(send(stack, segment(sequence: 1, acknowledgment: 0, flags: 0x02)) == nil)
        #expect(seen.count == 1)
        #expect(seen.first?.1 == 20)
        #expect(seen.first?.0.source == peerIP)
        // And it can answer through sendIPv4.
        let answer = segment(sequence: 9, acknowledgment: 0, flags: 0x04)
        #expect(answer.withUnsafeBytes { stack.sendIPv4(to: peerIP, protocolNumber: 6, payload: $0) })
        let frames = stack.drain()
        #expect(frames.count == 1)
        #expect(SentIPv4(frames[0])?.transport == answer)
    }
}
