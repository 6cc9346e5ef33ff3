import XCTest
@testable import NetStack
import NetStackTestSupport

final class UDPTests: XCTestCase {
    func payload(_ size: Int, seed: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) }
    }

    func testEchoEverySizeFrom0To1472() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        for size in 0...1472 {
            let data = payload(size, seed: size)
            stack.receive(Ref.udpFrame(sourcePort: 40000 &+ UInt16(size), payload: data))
            let frames = stack.drain()
            guard frames.count == 1, let reply = SentIPv4(frames[0]) else {
                XCTFail("size \(size): \(frames.count) frames, or malformed")
                continue
            }
            let udp = reply.transport
            let ok = reply.headerChecksumValid && reply.udpChecksumValid
                && reply.ethernetDestination == peerMAC && reply.ethernetSource == ourMAC
                && reply.source == ourIP && reply.destination == peerIP && reply.proto == 17
                && be16(udp, 0) == 7 && be16(udp, 2) == 40000 &+ UInt16(size)
                && Int(be16(udp, 4)) == 8 + size && be16(udp, 6) != 0
                && Array(udp[8...]) == data
            if !ok { XCTFail("size \(size): bad echo") }
        }
        XCTAssertEqual(stack.counters.udpIn, 1473)
        XCTAssertEqual(stack.counters.udpOut, 1473)
        XCTAssertEqual(stack.counters.totalDrops, 0)
    }

    func testZeroChecksumIsAcceptedAndPaddingIgnored() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        // Ethernet padding after a 9-byte datagram must not become payload.
        stack.receive(Ref.udpFrame(payload: [0x41], withChecksum: false))
        let frames = stack.drain()
        XCTAssertEqual(frames.count, 1)
        XCTAssertEqual(SentIPv4(frames[0])?.transport.dropFirst(8).elementsEqual([0x41]), true)
    }

    func testBadChecksumTruncatedAndNoPortAreDropped() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        var reasons: [NetDropReason] = []
        stack.onDrop = { reasons.append($0) }

        var corrupt = Ref.udpFrame(payload: [1, 2, 3, 4])
        corrupt[45] ^= 0x01
        stack.receive(corrupt)

        // Length field 20 with only 12 bytes of datagram; then a length below 8.
        var long = Ref.udp(sourcePort: 1000, destinationPort: 7, payload: [1, 2, 3, 4], withChecksum: false)
        long[5] = 20
        stack.receive(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 17, payload: long)))
        long[5] = 7
        stack.receive(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 17, payload: long)))
        stack.receive(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 17, payload: [0, 1, 0, 7])))

        stack.receive(Ref.udpFrame(destinationPort: 9999, payload: [9]))
        // Echo refuses source ports 7 and 0.
        stack.receive(Ref.udpFrame(sourcePort: 7, payload: [9]))
        stack.receive(Ref.udpFrame(sourcePort: 0, payload: [9]))

        XCTAssertTrue(stack.drain().isEmpty)
        XCTAssertEqual(reasons, [.udpBadChecksum, .udpTruncated, .udpTruncated, .udpTruncated, .udpNoPort, .udpNoPort, .udpNoPort])
        XCTAssertEqual(stack.counters.udpDropBadChecksum, 1)
        XCTAssertEqual(stack.counters.udpDropTruncated, 3)
        XCTAssertEqual(stack.counters.udpNoPort, 3)
        XCTAssertEqual(stack.counters.totalDrops, 7)

        stack.receive(Ref.udpFrame(payload: [5, 6]))
        XCTAssertEqual(stack.drain().count, 1)
    }

    func testBoundHandlerGetsDatagrams() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        var received: [(UDPDatagramInfo, [UInt8])] = []
        stack.bindUDP(port: 5353) { info, payload in received.append((info, Array(payload))) }
        stack.receive(Ref.udpFrame(sourcePort: 1234, destinationPort: 5353, payload: [1, 2, 3]))
        stack.receive(Ref.udpFrame(destination: .broadcast, ethernetDestination: .broadcast, sourcePort: 1234,
                                   destinationPort: 5353, payload: []))
        XCTAssertEqual(received.count, 2)
        XCTAssertEqual(received.first?.0, UDPDatagramInfo(source: peerIP, sourcePort: 1234, destination: ourIP,
                                                      destinationPort: 5353, isBroadcast: false))
        XCTAssertEqual(received.first?.1, [1, 2, 3])
        XCTAssertEqual(received.last?.0.isBroadcast, true)
        XCTAssertTrue(stack.drain().isEmpty)

        // A handler may answer from inside the callback.
        stack.bindUDP(port: 5353) { info, payload in
            _ = stack.sendUDP(to: info.source, sourcePort: info.destinationPort, destinationPort: info.sourcePort,
                              payload: Array(payload.reversed()))
        }
        stack.receive(Ref.udpFrame(sourcePort: 1234, destinationPort: 5353, payload: [1, 2, 3]))
        let frames = stack.drain()
        XCTAssertEqual(frames.count, 1)
        XCTAssertEqual(SentIPv4(frames[0])?.transport.dropFirst(8).elementsEqual([3, 2, 1]), true)

        stack.unbindUDP(port: 5353)
        stack.receive(Ref.udpFrame(sourcePort: 1234, destinationPort: 5353, payload: [1]))
        XCTAssertEqual(stack.counters.udpNoPort, 1)
    }

    func testEchoCanBeDisabledOrOverridden() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        stack.udpEchoEnabled = false
        stack.receive(Ref.udpFrame(payload: [1]))
        XCTAssertTrue(stack.drain().isEmpty)
        XCTAssertEqual(stack.counters.udpNoPort, 1)
        var calls = 0
        stack.bindUDP(port: 7) { _, _ in calls += 1 }
        stack.udpEchoEnabled = true
        stack.receive(Ref.udpFrame(payload: [1]))
        XCTAssertEqual(calls, 1)
        XCTAssertTrue(stack.drain().isEmpty)
    }

    func testBroadcastEchoIsAnsweredFromOurAddress() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        stack.receive(Ref.udpFrame(destination: .broadcast, ethernetDestination: .broadcast, payload: [7, 7]))
        let frames = stack.drain()
        XCTAssertEqual(frames.count, 1)
        let reply = SentIPv4(frames[0])
        XCTAssertEqual(reply?.source, ourIP)
        XCTAssertEqual(reply?.ethernetDestination, peerMAC)
        XCTAssertEqual(reply?.udpChecksumValid, true)
    }

    func testSendRules() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        XCTAssertTrue(!stack.sendUDP(to: peerIP, sourcePort: 1, destinationPort: 0, payload: []))
        XCTAssertTrue(!stack.sendUDP(to: peerIP, sourcePort: 1, destinationPort: 9, payload: [UInt8](repeating: 0, count: 1473)))
        XCTAssertEqual(stack.counters.ipv4DropOversized, 1)
        XCTAssertTrue(!stack.sendUDP(to: ourIP, sourcePort: 1, destinationPort: 9, payload: []))
        XCTAssertTrue(!stack.sendUDP(to: .unspecified, sourcePort: 1, destinationPort: 9, payload: []))
        XCTAssertEqual(stack.counters.ipv4DropNoRoute, 2)
        XCTAssertTrue(stack.drain().isEmpty)

        XCTAssertTrue(stack.sendUDP(to: .broadcast, sourcePort: 68, destinationPort: 67, payload: [1]))
        XCTAssertTrue(stack.sendUDP(to: IPv4Address(10, 0, 2, 255), sourcePort: 68, destinationPort: 67, payload: [1]))
        XCTAssertTrue(stack.sendUDP(to: IPv4Address(224, 0, 0, 251), sourcePort: 5353, destinationPort: 5353, payload: [1]))
        let frames = stack.drain()
        XCTAssertEqual(frames.map { SentIPv4($0)?.ethernetDestination }, [
            .broadcast, .broadcast, MACAddress(0x01, 0x00, 0x5E, 0x00, 0x00, 0xFB),
        ])
        XCTAssertTrue(frames.allSatisfy { SentIPv4($0)?.udpChecksumValid == true })

        let noGateway = NetStack(config: NetConfig(mac: ourMAC, gateway: .unspecified))
        XCTAssertTrue(!noGateway.sendUDP(to: IPv4Address(1, 1, 1, 1), sourcePort: 1, destinationPort: 9, payload: []))
        XCTAssertEqual(noGateway.counters.ipv4DropNoRoute, 1)
    }
}
