import Testing
@testable import NetStack
import NetStackTestSupport

/// Each broken packet is dropped with its own reason and counter, and the stack keeps
/// working: a good echo request right after still gets its reply.
@Suite struct IPv4DropTests {
    func expectDropThenRecovery(_ frame: [UInt8], _ reason: NetDropReason, _ counter: KeyPath<NetCounters, UInt64>,
                                sourceLocation: SourceLocation = #_sourceLocation) {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        var reasons: [NetDropReason] = []
        stack.onDrop = { reasons.append($0) }
        stack.receive(frame)
        #expect(stack.drain().isEmpty, sourceLocation: sourceLocation)
        #expect(reasons == [reason], sourceLocation: sourceLocation)
        #expect(stack.lastDropReason == reason, sourceLocation: sourceLocation)
        #expect(stack.counters[keyPath: counter] == 1, sourceLocation: sourceLocation)
        #expect(stack.counters.totalDrops == 1, sourceLocation: sourceLocation)
        stack.receive(Ref.udpFrame(payload: [1, 2, 3]))
        let frames = stack.drain()
        #expect(frames.count == 1 && SentIPv4(frames[0])?.udpChecksumValid == true, sourceLocation: sourceLocation)
    }

    var good: [UInt8] { Ref.udpFrame(payload: Array(0..<40)) }

    @Test func truncatedBelowMinimumHeader() {
        expectDropThenRecovery(Array(good[0..<(14 + 19)]), .ipv4Truncated, \.ipv4DropTruncated)
        expectDropThenRecovery(Array(good[0..<14]), .ipv4Truncated, \.ipv4DropTruncated)
    }

    @Test func totalLengthBeyondBuffer() {
        expectDropThenRecovery(Array(good[0..<(good.count - 1)]), .ipv4Truncated, \.ipv4DropTruncated)
    }

    @Test func optionsBeyondBuffer() {
        var frame = Ref.ethernet(etherType: 0x0800, payload: Array(Ref.ipv4(proto: 17, payload: []).prefix(20)), pad: false)
        frame[14] = 0x4F // IHL 15 → 60 bytes of header in a 20-byte packet
        expectDropThenRecovery(frame, .ipv4Truncated, \.ipv4DropTruncated)
    }

    @Test func badHeaderChecksum() {
        var frame = good
        frame[24] ^= 0x10
        expectDropThenRecovery(frame, .ipv4BadChecksum, \.ipv4DropBadChecksum)
    }

    @Test func badIHLAndVersion() {
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

    @Test func fragmentsAreDropped() {
        let udp = Ref.udp(sourcePort: 1000, destinationPort: 7, payload: [1, 2, 3])
        let moreFragments = Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 17, payload: udp, flagsAndOffset: 0x2000))
        expectDropThenRecovery(moreFragments, .ipv4Fragment, \.ipv4DropFragment)
        let lastFragment = Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 17, payload: udp, flagsAndOffset: 0x0010))
        expectDropThenRecovery(lastFragment, .ipv4Fragment, \.ipv4DropFragment)
    }

    @Test func notForUsAndBadSource() {
        expectDropThenRecovery(Ref.udpFrame(destination: IPv4Address(10, 0, 2, 16), payload: [1]), .ipv4NotForUs, \.ipv4DropNotForUs)
        expectDropThenRecovery(Ref.udpFrame(source: .broadcast, payload: [1]), .ipv4BadSource, \.ipv4DropBadSource)
        expectDropThenRecovery(Ref.udpFrame(source: ourIP, payload: [1]), .ipv4BadSource, \.ipv4DropBadSource)
        expectDropThenRecovery(Ref.udpFrame(source: IPv4Address(224, 0, 0, 1), payload: [1]), .ipv4BadSource, \.ipv4DropBadSource)
    }

    @Test func oversizedIsDropped() {
        // A 1501-byte datagram cannot come off a 1500-MTU link.
        let frame = Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 17, payload: Ref.udp(sourcePort: 1, destinationPort: 7, payload: [UInt8](repeating: 1, count: 1473))))
        expectDropThenRecovery(frame, .ipv4Oversized, \.ipv4DropOversized)
    }

    @Test func unsupportedProtocolAndEtherType() {
        expectDropThenRecovery(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 47, payload: [0, 0, 0, 0])),
                               .ipv4ProtocolUnsupported, \.ipv4DropUnsupportedProtocol)
        expectDropThenRecovery(Ref.ethernet(etherType: 0x86DD, payload: [0x60]), .etherTypeUnsupported, \.ethDropUnsupportedType)
        expectDropThenRecovery([1, 2, 3], .ethernetTooShort, \.ethDropShort)
    }

    @Test func optionsAreSkipped() {
        let stack = makeStack()
        stack.learn(peerIP, peerMAC)
        let udp = Ref.udp(sourcePort: 1000, destinationPort: 7, payload: [9, 8, 7])
        // Router-alert-like options: 4 bytes of NOPs + 4 bytes EOL.
        stack.receive(Ref.ethernet(etherType: 0x0800, payload: Ref.ipv4(proto: 17, payload: udp, options: [1, 1, 1, 1, 0, 0, 0, 0])))
        let frames = stack.drain()
        #expect(frames.count == 1)
        #expect(SentIPv4(frames[0])?.transport.dropFirst(8).elementsEqual([9, 8, 7]) == true)
    }

    @Test func framesForOtherStationsAreIgnored() {
        let stack = makeStack()
        stack.receive(Ref.udpFrame(ethernetDestination: MACAddress(0x52, 0x54, 0, 0, 0, 1), payload: [1]))
        stack.receive(Ref.udpFrame(ethernetDestination: MACAddress(0x33, 0x33, 0, 0, 0, 1), payload: [1]))
        #expect(stack.counters.rxNotForUs == 2)
        #expect(stack.counters.rxFrames == 2)
        #expect(stack.counters.ipv4In == 0)
        #expect(stack.counters.totalDrops == 0)
        #expect(stack.drain().isEmpty)
    }

    @Test func dropReasonNames() {
        #expect(NetDropReason.ipv4BadChecksum.name.description == "ipv4-bad-checksum")
        #expect(NetDropReason.ipv4Truncated.name.description == "ipv4-truncated")
        #expect(NetDropReason.transmitQueueFull.name.description == "tx-queue-full")
    }
}
