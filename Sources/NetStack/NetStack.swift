// The kernel's network stack: one Ethernet interface, ARP, IPv4, ICMP echo, UDP; TCP plugs in.
//
// It does no I/O and keeps no clock. The kernel drives it:
//   1. `receive(frame:nowMs:)` for each frame the driver took off the RX ring;
//   2. `nextTransmitFrame()` until nil (or while `hasPendingTransmit`), giving each frame
//      to the TX ring;
//   3. `poll(nowMs:)` when `nextDeadlineMs()` has passed (ARP retries and give-ups), and
//      drain again. With nothing received, the kernel may halt until that deadline.
// Everything runs on the caller's thread; handlers are called from inside `receive`.
//
// Frames the stack builds are complete Ethernet frames without the virtio-net header,
// padded to 60 bytes. Nothing on the receive path traps on packet contents: each layer
// checks lengths before it reads, and every refusal is a counted `NetDropReason`.
//
// TCP (TCP/TCPLayer.swift) plugs in with `registerIPv4Protocol(_:handler:)` and
// `registerTimer`. Without it every TCP port is CLOSED: a valid segment is answered with a
// reset as RFC 9293 §3.10.7.1 prescribes (TCP/NetStackTCP.swift; no reset to a reset or to
// a broadcast).

public typealias NetUDPHandler = (UDPDatagramInfo, UnsafeRawBufferPointer) -> Void
public typealias NetIPv4ProtocolHandler = (IPv4PacketInfo, UnsafeRawBufferPointer) -> Void

struct UDPPortBinding {
    var port: UInt16
    var handler: NetUDPHandler
}

struct NetTimerClient {
    var poll: (UInt64) -> Void
    var nextDeadlineMs: () -> UInt64?
}

struct IPv4ProtocolBinding {
    var protocolNumber: UInt8
    var handler: NetIPv4ProtocolHandler
}

public final class NetStack {
    /// The built-in echo service (RFC 862).
    public static let udpEchoPort: UInt16 = 7
    /// Where the IPv4 header starts in every frame the stack builds.
    static let ipv4Offset = EthernetHeader.length
    /// Where the transport header starts in every frame the stack builds (no IP options).
    static let transportOffset = EthernetHeader.length + IPv4Header.minimumLength

    public let config: NetConfig
    /// The budget every buffer a peer can make the stack hold is charged to.
    public let memory = NetMemory()
    /// Settable inside the module: the TCP layer (TCPLayer.swift) counts its own events here.
    public internal(set) var counters = NetCounters()
    /// The most recent drop, for a kernel that polls rather than hooks.
    public private(set) var lastDropReason: NetDropReason?
    /// Called on every drop, after counting (e.g. to log `reason.name`).
    public var onDrop: ((NetDropReason) -> Void)?
    /// Answer UDP port 7 when no handler is bound there.
    public var udpEchoEnabled = true
    /// The latest time given to `receive` or `poll`; sends made outside them use it.
    public private(set) var nowMs: UInt64 = 0

    var arpCache: ARPCache
    var arpResolver: ARPResolver
    var transmitQueue: NetTransmitQueue
    var udpBindings: [UDPPortBinding] = []
    var protocolBindings: [IPv4ProtocolBinding] = []
    var timerClients: [NetTimerClient] = []
    var nextIdentification: UInt16 = 1

    public init(config: NetConfig, transmitQueueCapacity: Int = 64) {
        self.config = config
        arpCache = ARPCache(pinned: config.gateway)
        arpResolver = ARPResolver(gateway: config.gateway)
        transmitQueue = NetTransmitQueue(capacity: transmitQueueCapacity)
    }

    // MARK: Driver side

    public var hasPendingTransmit: Bool { !transmitQueue.isEmpty }

    /// The next frame to put on the wire, oldest first.
    public func nextTransmitFrame() -> [UInt8]? {
        guard let frame = transmitQueue.pop() else { return nil }
        counters.txFrames &+= 1
        counters.txBytes &+= UInt64(frame.count)
        return frame
    }

    /// Handles one received Ethernet frame (no virtio-net header). The buffer is only read
    /// during the call.
    public func receive(frame: UnsafeRawBufferPointer, nowMs: UInt64) {
        self.nowMs = nowMs
        counters.rxFrames &+= 1
        counters.rxBytes &+= UInt64(frame.count)
        guard let ethernet = EthernetHeader.parse(frame) else {
            drop(.ethernetTooShort)
            return
        }
        guard ethernet.destination == config.mac || ethernet.destination.isBroadcast else {
            counters.rxNotForUs &+= 1
            return
        }
        let payload = frame.netSlice(EthernetHeader.length..<frame.count)
        switch ethernet.etherType {
        case EtherTypeNumber.ipv4: receiveIPv4(payload)
        case EtherTypeNumber.arp: receiveARP(payload)
        default: drop(.etherTypeUnsupported)
        }
    }

    /// ARP retries and give-ups that are due at `nowMs`.
    public func poll(nowMs: UInt64) {
        self.nowMs = nowMs
        // The kernel polls on every pass of its loop: ARP's bookkeeping only when it is due.
        if let deadline = arpResolver.nextDeadlineMs, deadline <= nowMs {
            let due = arpResolver.expire(nowMs: nowMs)
            for frames in due.abandoned {
                counters.arpResolveFailures &+= 1
                for _ in frames { drop(.arpResolveFailed) }
            }
            for ip in due.retry { sendARPRequest(for: ip) }
        }
        for client in timerClients { client.poll(nowMs) }
    }

    /// When `poll` must next run, or nil when nothing is waiting on time. Never late, but
    /// it may be early (TCP keeps a lower bound, TCPLayer's `timerFloorMs`): a `poll` then
    /// finds nothing due, and the next answer is exact.
    public func nextDeadlineMs() -> UInt64? {
        var earliest = arpResolver.nextDeadlineMs
        for client in timerClients {
            if let deadline = client.nextDeadlineMs(), earliest.map({ deadline < $0 }) ?? true { earliest = deadline }
        }
        return earliest
    }

    /// Lets a protocol plugged in with `registerIPv4Protocol` (TCP) keep timers: `poll` runs
    /// on every `poll(nowMs:)`, and `nextDeadlineMs` joins the stack's own.
    public func registerTimer(poll: @escaping (UInt64) -> Void, nextDeadlineMs: @escaping () -> UInt64?) {
        timerClients.append(NetTimerClient(poll: poll, nextDeadlineMs: nextDeadlineMs))
    }

    // MARK: Applications

    /// Delivers datagrams for `port` to `handler` (replacing any earlier one, including the
    /// built-in echo service on port 7). The payload buffer is only valid during the call.
    public func bindUDP(port: UInt16, handler: @escaping NetUDPHandler) {
        if let index = udpBindings.firstIndex(where: { $0.port == port }) {
            udpBindings[index].handler = handler
        } else {
            udpBindings.append(UDPPortBinding(port: port, handler: handler))
        }
    }

    public func unbindUDP(port: UInt16) {
        udpBindings.removeAll(where: { $0.port == port })
    }

    /// Sends one datagram from our address. True when it was queued for the driver or is
    /// waiting for ARP; false when refused (port 0, payload over 1472 bytes, no route, queue
    /// full), which is counted as a drop except for port 0.
    public func sendUDP(
        to destination: IPv4Address, sourcePort: UInt16, destinationPort: UInt16,
        payload: UnsafeRawBufferPointer
    ) -> Bool {
        guard destinationPort != 0 else { return false }
        guard payload.count <= UDPHeader.maximumPayloadLength else {
            drop(.ipv4Oversized)
            return false
        }
        let length = UDPHeader.length + payload.count
        let offset = NetStack.transportOffset
        var frame = makeIPv4Frame(destination: destination, protocolNumber: IPProtocolNumber.udp, transportLength: length)
        frame.netStoreUInt16(sourcePort, at: offset)
        frame.netStoreUInt16(destinationPort, at: offset + 2)
        frame.netStoreUInt16(UInt16(truncatingIfNeeded: length), at: offset + 4)
        frame.netCopy(payload, at: offset + UDPHeader.length)
        var checksum = frame.netChecksum(
            offset..<(offset + length),
            startingWith: InternetChecksum.pseudoHeader(
                source: config.ip, destination: destination, protocolNumber: IPProtocolNumber.udp,
                length: length))
        if checksum == 0 { checksum = 0xFFFF }
        frame.netStoreUInt16(checksum, at: offset + 6)
        guard sendIPv4Frame(&frame, to: destination) else { return false }
        counters.udpOut &+= 1
        return true
    }

    public func sendUDP(
        to destination: IPv4Address, sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8]
    ) -> Bool {
        payload.withUnsafeBytes {
            sendUDP(to: destination, sourcePort: sourcePort, destinationPort: destinationPort, payload: $0)
        }
    }

    /// Extension point for transports other than ICMP and UDP (TCP first): `handler` gets
    /// every valid, unfragmented datagram for us with `protocolNumber`, with the IPv4
    /// payload. Returns false for ICMP and UDP, which the stack keeps.
    @discardableResult
    public func registerIPv4Protocol(_ protocolNumber: UInt8, handler: @escaping NetIPv4ProtocolHandler) -> Bool {
        guard protocolNumber != IPProtocolNumber.icmp, protocolNumber != IPProtocolNumber.udp else { return false }
        protocolBindings.removeAll(where: { $0.protocolNumber == protocolNumber })
        protocolBindings.append(IPv4ProtocolBinding(protocolNumber: protocolNumber, handler: handler))
        return true
    }

    /// Sends `payload` (a complete transport segment, its checksum already computed with
    /// `InternetChecksum.pseudoHeader(source: config.ip, ...)`) in one IPv4 datagram from
    /// our address. Same result rules as `sendUDP`.
    public func sendIPv4(to destination: IPv4Address, protocolNumber: UInt8, payload: UnsafeRawBufferPointer) -> Bool {
        guard payload.count <= EthernetHeader.maximumPayloadLength - IPv4Header.minimumLength else {
            drop(.ipv4Oversized)
            return false
        }
        var frame = makeIPv4Frame(destination: destination, protocolNumber: protocolNumber, transportLength: payload.count)
        frame.netCopy(payload, at: NetStack.transportOffset)
        return sendIPv4Frame(&frame, to: destination)
    }

    // MARK: Receive path

    func receiveIPv4(_ packet: UnsafeRawBufferPointer) {
        counters.ipv4In &+= 1
        let header: IPv4Header
        do {
            header = try IPv4Header.parse(packet)
        } catch {
            drop(error)
            return
        }
        guard header.totalLength <= EthernetHeader.maximumPayloadLength else {
            drop(.ipv4Oversized)
            return
        }
        guard !header.isFragment else {
            drop(.ipv4Fragment)
            return
        }
        let isBroadcast = header.destination.isBroadcast || header.destination == config.directedBroadcast
        guard header.destination == config.ip || isBroadcast else {
            drop(.ipv4NotForUs)
            return
        }
        guard isUnicastPeer(header.source) else {
            drop(.ipv4BadSource)
            return
        }
        let info = IPv4PacketInfo(
            source: header.source, destination: header.destination,
            protocolNumber: header.protocolNumber, ttl: header.ttl, isBroadcast: isBroadcast)
        let transport = packet.netSlice(header.headerLength..<header.totalLength)
        switch header.protocolNumber {
        case IPProtocolNumber.icmp:
            receiveICMP(info, transport)
        case IPProtocolNumber.udp:
            receiveUDP(info, transport)
        default:
            if let binding = protocolBindings.first(where: { $0.protocolNumber == header.protocolNumber }) {
                binding.handler(info, transport)
            } else if header.protocolNumber == IPProtocolNumber.tcp {
                // No TCP layer: every port is CLOSED.
                if let segment = acceptTCPSegment(info, transport) { refuseTCP(segment, from: info.source) }
            } else {
                drop(.ipv4ProtocolUnsupported)
            }
        }
    }

    func receiveICMP(_ info: IPv4PacketInfo, _ message: UnsafeRawBufferPointer) {
        guard message.count >= ICMPMessage.headerLength else {
            drop(.icmpMalformed)
            return
        }
        guard InternetChecksum.compute(message) == 0 else {
            drop(.icmpBadChecksum)
            return
        }
        guard message[0] == ICMPMessage.typeEchoRequest else {
            counters.icmpIgnored &+= 1
            return
        }
        counters.icmpEchoRequests &+= 1
        // RFC 1122 §3.2.2.6 lets a host ignore echo to a broadcast address (Linux's default):
        // answering would make us a smurf amplifier.
        guard !info.isBroadcast else {
            counters.icmpIgnored &+= 1
            return
        }
        // The reply is the request with type 0 and a new checksum (RFC 792): identifier,
        // sequence and data unchanged.
        let offset = NetStack.transportOffset
        var frame = makeIPv4Frame(destination: info.source, protocolNumber: IPProtocolNumber.icmp, transportLength: message.count)
        frame.netCopy(message, at: offset)
        frame[offset] = ICMPMessage.typeEchoReply
        frame[offset + 1] = 0
        frame.netStoreUInt16(0, at: offset + 2)
        frame.netStoreUInt16(frame.netChecksum(offset..<(offset + message.count)), at: offset + 2)
        if sendIPv4Frame(&frame, to: info.source) {
            counters.icmpEchoReplies &+= 1
        }
    }

    func receiveUDP(_ info: IPv4PacketInfo, _ segment: UnsafeRawBufferPointer) {
        counters.udpIn &+= 1
        let header: UDPHeader
        do {
            header = try UDPHeader.parse(segment, source: info.source, destination: info.destination)
        } catch {
            drop(error)
            return
        }
        let payload = segment.netSlice(UDPHeader.length..<header.length)
        if let binding = udpBindings.first(where: { $0.port == header.destinationPort }) {
            let datagram = UDPDatagramInfo(
                source: info.source, sourcePort: header.sourcePort,
                destination: info.destination, destinationPort: header.destinationPort,
                isBroadcast: info.isBroadcast)
            binding.handler(datagram, payload)
            return
        }
        // Echo never answers port 0 (no reply possible) or port 7: two echo services would
        // bounce one datagram between them forever. For those senders port 7 is closed.
        if header.destinationPort == NetStack.udpEchoPort, udpEchoEnabled,
           header.sourcePort != 0, header.sourcePort != NetStack.udpEchoPort {
            _ = sendUDP(to: info.source, sourcePort: NetStack.udpEchoPort, destinationPort: header.sourcePort, payload: payload)
            return
        }
        drop(.udpNoPort)
    }

    // MARK: Transmit path

    /// A frame with the Ethernet header (destination still zero) and a 20-byte IPv4 header
    /// from us written, and `transportLength` zero bytes at `transportOffset`.
    func makeIPv4Frame(destination: IPv4Address, protocolNumber: UInt8, transportLength: Int) -> [UInt8] {
        let totalLength = IPv4Header.minimumLength + transportLength
        var frame = EthernetHeader(destination: .zero, source: config.mac, etherType: EtherTypeNumber.ipv4)
            .makeFrame(payloadLength: totalLength)
        IPv4Header.write(
            to: &frame, at: NetStack.ipv4Offset, totalLength: totalLength, identification: nextIdentification,
            protocolNumber: protocolNumber, source: config.ip, destination: destination)
        nextIdentification &+= 1
        return frame
    }

    /// Routes a finished IPv4 frame: broadcast and multicast go straight out; unicast goes
    /// to the destination when on our subnet, else to the gateway, once ARP has its MAC.
    func sendIPv4Frame(_ frame: inout [UInt8], to destination: IPv4Address) -> Bool {
        if destination.isBroadcast || destination == config.directedBroadcast {
            MACAddress.broadcast.write(to: &frame, at: 0)
            return enqueue(frame)
        }
        if destination.isMulticast {
            // RFC 1112 §6.4: 01:00:5E and the low 23 bits of the group.
            MACAddress(rawValue: 0x0100_5E00_0000 | UInt64(destination.value & 0x7F_FFFF)).write(to: &frame, at: 0)
            return enqueue(frame)
        }
        guard isUnicastPeer(destination) else {
            drop(.ipv4NoRoute)
            return false
        }
        let nextHop = config.isOnLink(destination) ? destination : config.gateway
        guard isUnicastPeer(nextHop) else {
            drop(.ipv4NoRoute)
            return false
        }
        if let mac = arpCache.lookup(nextHop, nowMs: nowMs) {
            mac.write(to: &frame, at: 0)
            return enqueue(frame)
        }
        return awaitARP(frame, nextHop: nextHop)
    }

    func enqueue(_ frame: [UInt8]) -> Bool {
        guard transmitQueue.push(frame) else {
            drop(.transmitQueueFull)
            return false
        }
        return true
    }

    // MARK: Helpers

    /// An address a host can talk to and answer: not unspecified, broadcast, multicast,
    /// reserved, our subnet's broadcast, or our own.
    func isUnicastPeer(_ address: IPv4Address) -> Bool {
        !address.isUnspecified && !address.isMulticast && !address.isReserved
            && address != config.directedBroadcast && address != config.ip
    }

    func drop(_ reason: NetDropReason) {
        counters.record(reason)
        lastDropReason = reason
        onDrop?(reason)
    }
}
