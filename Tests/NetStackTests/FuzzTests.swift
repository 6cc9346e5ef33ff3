import XCTest
@testable import NetStack
import NetStackTestSupport

/// Garbage in, counted drops out: 100 000 frames from a seeded generator, from pure noise
/// to valid frames with a few bytes flipped to well-formed headers with random fields.
/// Run in a debug build, any out-of-bounds read or arithmetic overflow would trap.
final class FuzzTests: XCTestCase {
    static func randomBytes(_ count: Int, _ generator: inout SplitMix64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < count {
                var word = generator.next()
                let chunk = min(8, count - offset)
                withUnsafeBytes(of: &word) { wordBytes in
                    for index in 0..<chunk { buffer[offset + index] = wordBytes[index] }
                }
                offset += chunk
            }
        }
        return bytes
    }

    static func withChecksum(_ header: inout [UInt8], at offset: Int, length: Int, checksumAt: Int) {
        guard offset + length <= header.count, checksumAt + 1 < header.count else { return }
        header[checksumAt] = 0
        header[checksumAt + 1] = 0
        let sum = InternetChecksum.compute(Array(header[offset..<(offset + length)]))
        header[checksumAt] = UInt8(sum >> 8)
        header[checksumAt + 1] = UInt8(sum & 0xFF)
    }

    func testRandomFramesNeverCrash() {
        var generator = SplitMix64(seed: 0x5249_4E47_5349_4445) // "RINGSIDE"
        let stack = makeStack(queueCapacity: 16)
        stack.bindUDP(port: 9) { _, payload in _ = payload.reduce(0, &+) }
        var drops = 0
        stack.onDrop = { _ in drops += 1 }
        let seeds: [[UInt8]] = [
            ARPTests.capturedRequest, ICMPTests.capturedEchoRequest,
            Ref.udpFrame(payload: Array(0..<100)),
            Ref.udpFrame(source: IPv4Address(10, 0, 2, 77), destinationPort: 9, payload: [1, 2]),
            Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 6, payload: TCPTests.segment(sequence: 1, acknowledgment: 0, flags: 2))),
            Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 17, payload: Ref.udp(sourcePort: 5, destinationPort: 7, payload: [1]), options: [1, 1, 1, 0])),
            Ref.arpFrame(operation: 2, ethernetDestination: ourMAC, senderMAC: MACAddress(2, 0, 0, 0, 0, 7),
                         senderIP: IPv4Address(10, 0, 2, 77), targetMAC: ourMAC, targetIP: ourIP),
        ]
        let protocols: [UInt8] = [1, 6, 17, 0, 2, 255]
        var now: UInt64 = 0
        let iterations = 100_000
        for iteration in 0..<iterations {
            now &+= generator.next() % 40
            var frame: [UInt8]
            switch generator.next() % 4 {
            case 0:
                // Noise of any length.
                frame = FuzzTests.randomBytes(Int(generator.next() % 1600), &generator)
            case 1:
                // Noise behind a header the stack accepts.
                frame = FuzzTests.randomBytes(Int(generator.next() % 200), &generator)
                let destination = generator.next() % 2 == 0 ? ourMAC : MACAddress.broadcast
                let header = Ref.ethernet(destination: destination, etherType: generator.next() % 3 == 0 ? 0x0806 : 0x0800,
                                          payload: [], pad: false)
                frame = header + frame
            case 2:
                // A valid frame with a few bytes changed, maybe cut or extended.
                frame = seeds[Int(generator.next() % UInt64(seeds.count))]
                for _ in 0..<(1 + generator.next() % 6) where !frame.isEmpty {
                    frame[Int(generator.next() % UInt64(frame.count))] = UInt8(truncatingIfNeeded: generator.next())
                }
                switch generator.next() % 4 {
                case 0: frame = Array(frame.prefix(Int(generator.next() % UInt64(frame.count + 1))))
                case 1: frame += FuzzTests.randomBytes(Int(generator.next() % 64), &generator)
                default: break
                }
            default:
                // An IPv4 header with a correct checksum and random everything else, so the
                // transport parsers see hostile lengths.
                let length = 20 + Int(generator.next() % 120)
                var packet = FuzzTests.randomBytes(length, &generator)
                let ihl = generator.next() % 4 == 0 ? UInt8(truncatingIfNeeded: generator.next() % 16) : 5
                packet[0] = 0x40 | ihl
                let total = generator.next() % 3 == 0 ? Int(generator.next() % 200) : length
                packet[2] = UInt8(total >> 8)
                packet[3] = UInt8(total & 0xFF)
                packet[6] = generator.next() % 5 == 0 ? packet[6] : 0x40
                packet[7] = generator.next() % 5 == 0 ? packet[7] : 0
                packet[9] = protocols[Int(generator.next() % UInt64(protocols.count))]
                let source = generator.next() % 2 == 0 ? peerIP : IPv4Address(10, 0, 2, UInt8(truncatingIfNeeded: generator.next()))
                let destination = generator.next() % 4 == 0 ? IPv4Address.broadcast : ourIP
                packet.replaceSubrange(12..<16, with: ipBytes(source))
                packet.replaceSubrange(16..<20, with: ipBytes(destination))
                FuzzTests.withChecksum(&packet, at: 0, length: Int(ihl) * 4, checksumAt: 10)
                if packet[9] == 17, generator.next() % 2 == 0, length >= 28 + Int(ihl) * 4 - 20 {
                    // Sometimes a UDP port we serve, with a real checksum.
                    let start = Int(ihl) * 4
                    if start + 8 <= packet.count {
                        packet[start + 2] = 0
                        packet[start + 3] = generator.next() % 2 == 0 ? 7 : 9
                    }
                }
                frame = Ref.ethernet(destination: generator.next() % 8 == 0 ? .broadcast : ourMAC, etherType: 0x0800,
                                     payload: packet, pad: generator.next() % 2 == 0)
            }
            stack.receive(frame, nowMs: now)
            if iteration % 5 == 0 { stack.poll(nowMs: now) }
            if generator.next() % 3 != 0 {
                while let sent = stack.nextTransmitFrame() {
                    XCTAssertTrue(sent.count >= 60 && sent.count <= 1514)
                }
            }
        }
        stack.poll(nowMs: now &+ 10_000)
        _ = stack.drain()
        XCTAssertEqual(stack.counters.rxFrames, UInt64(iterations))
        XCTAssertEqual(stack.counters.totalDrops, UInt64(drops))
        XCTAssertEqual(stack.pendingResolutionCount, 0)
        XCTAssertNil(stack.nextDeadlineMs())
        // The noise reached every layer.
        XCTAssertTrue(stack.counters.ipv4In > 10_000)
        XCTAssertTrue(stack.counters.arpRequestsIn + stack.counters.arpRepliesIn > 1_000)
        XCTAssertTrue(stack.counters.udpIn > 1_000)
        XCTAssertTrue(stack.counters.tcpIn > 1_000)
        XCTAssertTrue(stack.counters.icmpEchoRequests > 10)

        // Still alive and correct afterwards.
        stack.learn(peerIP, peerMAC, nowMs: now &+ 20_000)
        stack.receive(ICMPTests.capturedEchoRequest, nowMs: now &+ 20_000)
        let frames = stack.drain()
        XCTAssertEqual(frames.count, 1)
        XCTAssertEqual(frames.first.flatMap(SentIPv4.init).map { Ref.checksum($0.transport) == 0 }, true)
    }

    func testParsersOnEveryPrefixOfValidFrames() {
        let frames: [[UInt8]] = [ARPTests.capturedRequest, ICMPTests.capturedEchoRequest, Ref.udpFrame(payload: Array(0..<64))]
        for frame in frames {
            for length in 0...frame.count {
                Array(frame.prefix(length)).withUnsafeBytes { bytes in
                    _ = EthernetHeader.parse(bytes)
                    _ = ARPPacket.parse(bytes)
                    _ = try? IPv4Header.parse(bytes)
                    _ = try? UDPHeader.parse(bytes, source: peerIP, destination: ourIP)
                    _ = try? TCPSegmentHeader.parse(bytes, source: peerIP, destination: ourIP)
                }
                let stack = makeStack()
                stack.receive(Array(frame.prefix(length)))
                _ = stack.drain()
            }
        }
    }
}
