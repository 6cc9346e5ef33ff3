import XCTest
@testable import NetStack
import NetStackTestSupport

final class ARPTests: XCTestCase {
    /// What slirp sends to find the guest: "who has 10.0.2.15? tell 10.0.2.2", padded to 60.
    static let capturedRequest: [UInt8] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
        0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x0a, 0x00, 0x02, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x02, 0x0f,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]

    /// "10.0.2.15 is at 52:54:00:12:34:56", unicast back, padded to 60.
    static let expectedReply: [UInt8] = [
        0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x0a, 0x00, 0x02, 0x0f,
        0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x0a, 0x00, 0x02, 0x02,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]

    func testRequestForUsIsAnsweredButNotLearned() {
        let stack = makeStack()
        stack.receive(ARPTests.capturedRequest)
        XCTAssertEqual(stack.drain(), [ARPTests.expectedReply])
        XCTAssertEqual(stack.counters.arpRequestsIn, 1)
        XCTAssertEqual(stack.counters.arpRepliesOut, 1)
        XCTAssertEqual(stack.counters.txFrames, 1)
        XCTAssertEqual(stack.counters.txBytes, 60)
        XCTAssertEqual(stack.counters.totalDrops, 0)
        // The table learns only answers to its own questions.
        XCTAssertNil(stack.cachedMAC(for: peerIP))
    }

    func testAnnounceBroadcastsAGratuitousRequestAndResolvesTheGateway() {
        let stack = makeStack()
        stack.announce()
        let expected = Ref.arpFrame(operation: 1, ethernetDestination: .broadcast, senderMAC: ourMAC, senderIP: ourIP,
                                    targetMAC: .zero, targetIP: ourIP)
        let askGateway = Ref.arpFrame(operation: 1, ethernetDestination: .broadcast, senderMAC: ourMAC, senderIP: ourIP,
                                      targetMAC: .zero, targetIP: peerIP)
        let sent = stack.drain()
        XCTAssertEqual(sent.count, 2)
        XCTAssertEqual(sent.first.map { Array($0.prefix(42)) }, Array(expected.prefix(42)))
        XCTAssertEqual(sent.last.map { Array($0.prefix(42)) }, Array(askGateway.prefix(42)))
        XCTAssertEqual(stack.counters.arpRequestsOut, 2)
        // The gateway's answer is learned.
        stack.receive(Ref.arpFrame(operation: 2, ethernetDestination: ourMAC, senderMAC: peerMAC, senderIP: peerIP,
                                   targetMAC: ourMAC, targetIP: ourIP), nowMs: 5)
        XCTAssertEqual(stack.cachedMAC(for: peerIP), peerMAC)
        XCTAssertEqual(stack.pendingResolutionCount, 0)
    }

    func testRequestWithoutPaddingIsAnswered() {
        let stack = makeStack()
        stack.receive(Array(ARPTests.capturedRequest[0..<42]))
        XCTAssertEqual(stack.drain(), [ARPTests.expectedReply])
    }

    func testRequestForSomeoneElseIsIgnoredAndNotLearned() {
        let stack = makeStack()
        stack.receive(Ref.arpFrame(operation: 1, ethernetDestination: .broadcast, senderMAC: peerMAC, senderIP: peerIP,
                                   targetMAC: .zero, targetIP: IPv4Address(10, 0, 2, 3)))
        XCTAssertTrue(stack.drain().isEmpty)
        XCTAssertNil(stack.cachedMAC(for: peerIP))
        XCTAssertEqual(stack.counters.arpRequestsIn, 1)
        XCTAssertEqual(stack.counters.totalDrops, 0)
    }

    func testKnownEntryIsRenewedButNotRewrittenByUnsolicitedARP() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        let newMAC = MACAddress(0x02, 0, 0, 0, 0, 0x99)
        // A gratuitous ARP claiming the gateway for another MAC is not believed (spoofing).
        stack.receive(Ref.arpFrame(operation: 1, ethernetDestination: .broadcast, senderMAC: newMAC, senderIP: peerIP,
                                   targetMAC: .zero, targetIP: peerIP), nowMs: 10)
        XCTAssertEqual(stack.cachedMAC(for: peerIP), peerMAC)
        XCTAssertTrue(stack.drain().isEmpty)
        // The same MAC renews the entry: just short of the lifetime after the renewal it is
        // still there, though the first learning is older than the lifetime.
        stack.receive(Ref.arpFrame(operation: 1, ethernetDestination: .broadcast, senderMAC: peerMAC, senderIP: peerIP,
                                   targetMAC: .zero, targetIP: peerIP), nowMs: 100_000)
        XCTAssertEqual(stack.arpCache.lookup(peerIP, nowMs: 100_000 + ARPCache.entryLifetimeMs - 1), peerMAC)
        // Our own question, answered with a new MAC, is believed.
        stack.learn(peerIP, newMAC, nowMs: 200_000)
        XCTAssertEqual(stack.arpCache.lookup(peerIP, nowMs: 200_000), newMAC)
    }

    /// The thrash attack: requests from made-up senders aimed at us, fast. They are all
    /// answered, none is learned, and the gateway's entry stays.
    func testRequestsFromStrangersCannotEvictTheGateway() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        var rng = SplitMix64(seed: 7)
        for index in 0..<500 {
            let sender = IPv4Address(10, 0, 2, UInt8.random(in: 3...254, using: &rng))
            let mac = MACAddress(0x02, 0, 0, UInt8(index >> 8), UInt8(index & 0xFF), UInt8.random(in: 0...255, using: &rng))
            stack.receive(Ref.arpFrame(operation: UInt16(1 + index % 2), ethernetDestination: .broadcast, senderMAC: mac,
                                       senderIP: sender, targetMAC: .zero, targetIP: ourIP), nowMs: UInt64(index))
            _ = stack.drain()
        }
        XCTAssertEqual(stack.arpCache.entries.count, 1)
        XCTAssertEqual(stack.cachedMAC(for: peerIP), peerMAC)
        XCTAssertEqual(stack.counters.arpRepliesOut, 250)
    }

    /// Strangers that make us resolve them (a packet to each) fill the table and the
    /// pending slots, but the gateway keeps its entry and can always be resolved.
    func testStrangersWeResolveCannotEvictTheGatewayOrItsSlot() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        // 100 that answer: the table fills past its capacity, evicting the stalest strangers.
        for host in 0..<100 {
            let ip = IPv4Address(10, 0, 2, UInt8(100 + host))
            _ = stack.sendUDP(to: ip, sourcePort: 1, destinationPort: 9, payload: [1])
            stack.receive(Ref.arpFrame(operation: 2, ethernetDestination: ourMAC, senderMAC: MACAddress(0x02, 0, 0, 0, 1, UInt8(host)),
                                       senderIP: ip, targetMAC: ourMAC, targetIP: ourIP), nowMs: UInt64(host))
        }
        // 50 that never answer: they hold every pending slot strangers may have.
        for host in 0..<50 {
            _ = stack.sendUDP(to: IPv4Address(10, 0, 2, UInt8(200 + host)), sourcePort: 1, destinationPort: 9, payload: [1])
        }
        _ = stack.drain()
        XCTAssertEqual(stack.arpCache.entries.count, stack.arpCache.capacity)
        XCTAssertEqual(stack.cachedMAC(for: peerIP), peerMAC)
        XCTAssertEqual(stack.pendingResolutionCount, ARPResolver.maxPendingDestinations - 1)
        // Once the gateway's entry is gone (expired), it is resolved again even with every
        // stranger slot taken.
        let later = ARPCache.entryLifetimeMs + 1_000
        stack.poll(nowMs: later)
        _ = stack.drain()
        XCTAssertTrue(stack.sendUDP(to: IPv4Address(192, 168, 9, 9), sourcePort: 1, destinationPort: 9, payload: [2]))
        XCTAssertTrue(stack.pendingResolutionCount <= ARPResolver.maxPendingDestinations)
        XCTAssertTrue(stack.drain().contains { Array($0[38..<42]) == [10, 0, 2, 2] && $0[21] == 1 })
    }

    func testMalformedARPIsCounted() {
        let stack = makeStack()
        var reasons: [NetDropReason] = []
        stack.onDrop = { reasons.append($0) }
        var bad = ARPTests.capturedRequest
        bad[19] = 16 // hlen 16
        stack.receive(bad)
        stack.receive(Array(ARPTests.capturedRequest[0..<41])) // one byte short
        var badOp = ARPTests.capturedRequest
        badOp[21] = 9
        stack.receive(badOp)
        XCTAssertTrue(stack.drain().isEmpty)
        XCTAssertEqual(stack.counters.arpDropMalformed, 3)
        XCTAssertEqual(reasons, [.arpMalformed, .arpMalformed, .arpMalformed])
        XCTAssertEqual(stack.lastDropReason?.name.description, "arp-malformed")
    }

    func testCacheEntriesExpire() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC, nowMs: 1_000)
        stack.poll(nowMs: 1_000 + 299_999)
        XCTAssertEqual(stack.cachedMAC(for: peerIP), peerMAC)
        stack.poll(nowMs: 1_000 + 300_000)
        XCTAssertNil(stack.cachedMAC(for: peerIP))
    }

    func testUnknownDestinationIsResolvedThenSent() {
        let stack = makeStack()
        // An echo request from a neighbour we never heard from: the reply must wait for ARP.
        stack.receive(Ref.icmpEchoFrame(), nowMs: 5)
        let first = stack.drain()
        let expectedRequest = Ref.arpFrame(operation: 1, ethernetDestination: .broadcast, senderMAC: ourMAC,
                                           senderIP: ourIP, targetMAC: .zero, targetIP: peerIP)
        XCTAssertEqual(first, [expectedRequest])
        XCTAssertEqual(stack.counters.arpRequestsOut, 1)
        XCTAssertEqual(stack.nextDeadlineMs(), 1_005)
        XCTAssertEqual(stack.pendingResolutionCount, 1)

        stack.receive(Ref.arpFrame(operation: 2, ethernetDestination: ourMAC, senderMAC: peerMAC, senderIP: peerIP,
                                   targetMAC: ourMAC, targetIP: ourIP), nowMs: 20)
        let second = stack.drain()
        XCTAssertEqual(second.count, 1)
        let reply = SentIPv4(second[0])
        XCTAssertEqual(reply?.ethernetDestination, peerMAC)
        XCTAssertEqual(reply?.proto, 1)
        XCTAssertEqual(reply?.transport.first, 0)
        XCTAssertEqual(stack.counters.arpRepliesIn, 1)
        XCTAssertEqual(stack.counters.icmpEchoReplies, 1)
        XCTAssertNil(stack.nextDeadlineMs())
        XCTAssertEqual(stack.cachedMAC(for: peerIP), peerMAC)
    }

    func testOffSubnetGoesThroughGateway() {
        let stack = makeStack()
        let remote = IPv4Address(8, 8, 8, 8)
        XCTAssertTrue(stack.sendUDP(to: remote, sourcePort: 5000, destinationPort: 53, payload: [1, 2, 3]))
        let frames = stack.drain()
        XCTAssertEqual(frames.count, 1)
        XCTAssertEqual(Array(frames[0][38..<42]), ipBytes(peerIP)) // ARP target: the gateway
        stack.receive(Ref.arpFrame(operation: 2, ethernetDestination: ourMAC, senderMAC: peerMAC, senderIP: peerIP,
                                   targetMAC: ourMAC, targetIP: ourIP))
        let sent = stack.drain()
        XCTAssertEqual(sent.count, 1)
        let datagram = SentIPv4(sent[0])
        XCTAssertEqual(datagram?.ethernetDestination, peerMAC)
        XCTAssertEqual(datagram?.destination, remote)
        XCTAssertEqual(datagram?.udpChecksumValid, true)
    }

    func testRetriesThenGivesUp() {
        let stack = makeStack()
        var reasons: [NetDropReason] = []
        stack.onDrop = { reasons.append($0) }
        let neighbour = IPv4Address(10, 0, 2, 99)
        for index in 0..<3 {
            XCTAssertTrue(stack.sendUDP(to: neighbour, sourcePort: 1, destinationPort: 9, payload: [UInt8(index)]))
        }
        XCTAssertEqual(stack.drain().count, 1) // one ARP request, not three
        XCTAssertEqual(stack.nextDeadlineMs(), 1_000)
        stack.poll(nowMs: 999)
        XCTAssertTrue(stack.drain().isEmpty)
        stack.poll(nowMs: 1_000)
        XCTAssertEqual(stack.drain().count, 1)
        XCTAssertEqual(stack.nextDeadlineMs(), 2_000)
        stack.poll(nowMs: 2_100)
        XCTAssertEqual(stack.drain().count, 1)
        XCTAssertEqual(stack.nextDeadlineMs(), 3_100)
        XCTAssertEqual(stack.counters.arpRequestsOut, 3)
        stack.poll(nowMs: 3_100)
        XCTAssertTrue(stack.drain().isEmpty)
        XCTAssertEqual(stack.counters.arpResolveFailures, 1)
        XCTAssertEqual(stack.counters.arpPendingDrops, 3)
        XCTAssertEqual(stack.counters.totalDrops, 3)
        XCTAssertEqual(reasons, [.arpResolveFailed, .arpResolveFailed, .arpResolveFailed])
        XCTAssertNil(stack.nextDeadlineMs())
        XCTAssertEqual(stack.pendingResolutionCount, 0)
        XCTAssertEqual(stack.counters.udpOut, 3)

        // A late answer teaches nothing (we no longer asked), a new send asks again.
        stack.receive(Ref.arpFrame(operation: 2, ethernetDestination: ourMAC, senderMAC: peerMAC, senderIP: neighbour,
                                   targetMAC: ourMAC, targetIP: IPv4Address(10, 0, 2, 77)), nowMs: 4_000)
        XCTAssertNil(stack.cachedMAC(for: neighbour))
        XCTAssertTrue(stack.sendUDP(to: neighbour, sourcePort: 1, destinationPort: 9, payload: []))
        XCTAssertEqual(stack.drain().count, 1)
        XCTAssertEqual(stack.counters.arpRequestsOut, 4)
    }

    func testPendingQueuesAreBounded() {
        let stack = makeStack()
        let neighbour = IPv4Address(10, 0, 2, 99)
        for _ in 0..<ARPResolver.maxPendingFramesPerDestination {
            XCTAssertTrue(stack.sendUDP(to: neighbour, sourcePort: 1, destinationPort: 9, payload: []))
        }
        XCTAssertTrue(!stack.sendUDP(to: neighbour, sourcePort: 1, destinationPort: 9, payload: []))
        XCTAssertEqual(stack.counters.arpQueueDrops, 1)
        // Strangers get every slot but the one kept for the gateway.
        for host in 0..<(ARPResolver.maxPendingDestinations - 2) {
            XCTAssertTrue(stack.sendUDP(to: IPv4Address(10, 0, 2, UInt8(100 + host)), sourcePort: 1, destinationPort: 9, payload: []))
        }
        XCTAssertTrue(!stack.sendUDP(to: IPv4Address(10, 0, 2, 200), sourcePort: 1, destinationPort: 9, payload: []))
        XCTAssertEqual(stack.counters.arpQueueDrops, 2)
        XCTAssertEqual(stack.pendingResolutionCount, ARPResolver.maxPendingDestinations - 1)
        // The gateway (a packet off the subnet goes to it) still gets its slot.
        XCTAssertTrue(stack.sendUDP(to: IPv4Address(192, 168, 9, 9), sourcePort: 1, destinationPort: 9, payload: []))
        XCTAssertEqual(stack.pendingResolutionCount, ARPResolver.maxPendingDestinations)
        XCTAssertEqual(stack.drain().count, ARPResolver.maxPendingDestinations)
    }

    func testTransmitQueueOverflowIsCounted() {
        let stack = makeStack(queueCapacity: 2)
        for _ in 0..<3 { stack.receive(ARPTests.capturedRequest) }
        XCTAssertEqual(stack.counters.txQueueDrops, 1)
        XCTAssertEqual(stack.counters.arpRepliesOut, 2)
        XCTAssertTrue(stack.hasPendingTransmit)
        XCTAssertEqual(stack.drain().count, 2)
        XCTAssertTrue(!stack.hasPendingTransmit)
        stack.receive(ARPTests.capturedRequest)
        XCTAssertEqual(stack.drain().count, 1)
    }
}
