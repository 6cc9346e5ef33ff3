// The stack's side of ARP (RFC 826): answering requests for our address, learning only
// what we asked (so strangers cannot poison the table), asking for next hops, and sending
// the frames that waited for them. The books are ARPCache (what is known) and ARPResolver
// (what is being asked); this is where NetStack acts on them.

extension NetStack {
    func receiveARP(_ packet: UnsafeRawBufferPointer) {
        guard let arp = ARPPacket.parse(packet) else {
            drop(.arpMalformed)
            return
        }
        if arp.isRequest {
            counters.arpRequestsIn &+= 1
        } else {
            counters.arpRepliesIn &+= 1
        }
        let targetsUs = arp.targetIP == config.ip
        // RFC 826 "Packet Reception", hardened: the table learns only what we asked. A
        // sender we are resolving is added (and its waiting packets leave); any other
        // sender can only renew an entry that already has its MAC. So a flood of requests
        // from made-up senders changes nothing here, and cannot evict the gateway. (A
        // stranger that pings us is answered after we ARP for it ourselves.) Probes
        // (sender 0.0.0.0), nonsense senders and claims to our own address are ignored.
        let senderIsLearnable = isUnicastPeer(arp.senderIP) && !arp.senderMAC.isMulticast
            && arp.senderMAC != .zero
        if senderIsLearnable {
            if arpResolver.isResolving(arp.senderIP) {
                if arpCache.update(ip: arp.senderIP, mac: arp.senderMAC, nowMs: nowMs) {
                    releasePending(for: arp.senderIP, mac: arp.senderMAC)
                }
            } else {
                arpCache.refresh(ip: arp.senderIP, mac: arp.senderMAC, nowMs: nowMs)
            }
        }
        if arp.isRequest, targetsUs, !arp.senderMAC.isMulticast {
            let reply = ARPPacket(
                operation: ARPPacket.operationReply, senderMAC: config.mac, senderIP: config.ip,
                targetMAC: arp.senderMAC, targetIP: arp.senderIP)
            if enqueue(reply.makeFrame(destination: arp.senderMAC, source: config.mac)) {
                counters.arpRepliesOut &+= 1
            }
        }
    }

    /// Parks `frame` until `nextHop` resolves; the first packet for an address sends the
    /// first ARP request at once.
    func awaitARP(_ frame: [UInt8], nextHop: IPv4Address) -> Bool {
        switch arpResolver.park(frame, nextHop: nextHop, nowMs: nowMs) {
        case .queued:
            return true
        case .startedResolving:
            sendARPRequest(for: nextHop)
            return true
        case .refused:
            drop(.arpQueueFull)
            return false
        }
    }

    /// Asks for `ip`'s MAC now, ahead of any packet to it (nothing if it is being asked for
    /// already); the answer is learned like any answer to our own request.
    public func resolve(_ ip: IPv4Address) {
        guard !arpResolver.isResolving(ip) else { return }
        arpResolver.start(ip, nowMs: nowMs)
        sendARPRequest(for: ip)
    }

    /// Broadcasts a gratuitous ARP request (RFC 5227 §3: sender and target IP both ours) so
    /// peers learn our MAC before they need it. QEMU's user-mode network, for one, would
    /// otherwise ARP for the guest on its first forwarded packet and retry only after a second.
    /// Then resolves the gateway, so the first reply to a client need not wait for it (we
    /// learn neighbours only from answers to our own requests).
    public func announce() {
        sendARPRequest(for: config.ip)
        if arpCache.lookup(config.gateway, nowMs: nowMs) == nil, isUnicastPeer(config.gateway) {
            resolve(config.gateway)
        }
    }

    func sendARPRequest(for ip: IPv4Address) {
        let request = ARPPacket(
            operation: ARPPacket.operationRequest, senderMAC: config.mac, senderIP: config.ip,
            targetMAC: .zero, targetIP: ip)
        if enqueue(request.makeFrame(destination: .broadcast, source: config.mac)) {
            counters.arpRequestsOut &+= 1
        }
    }

    /// Sends the frames that waited for `ip`, now that its MAC is known.
    func releasePending(for ip: IPv4Address, mac: MACAddress) {
        guard var frames = arpResolver.resolved(ip) else { return }
        for index in frames.indices {
            mac.write(to: &frames[index], at: 0)
            _ = enqueue(frames[index])
        }
    }

    /// The cached MAC for `ip`, if any and not expired.
    public func cachedMAC(for ip: IPv4Address) -> MACAddress? {
        arpCache.lookup(ip, nowMs: nowMs)
    }

    /// Addresses currently being resolved.
    public var pendingResolutionCount: Int { arpResolver.pending.count }
}
