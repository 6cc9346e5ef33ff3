// Why the stack dropped something, and how often. Every drop goes through one place
// (`NetStack.drop`), which bumps the counter named below, remembers the reason and calls
// the kernel's `onDrop` hook, so a drop is never silent.

public enum NetDropReason: Error, Equatable, Sendable {
    /// A frame shorter than an Ethernet header.
    case ethernetTooShort
    /// An EtherType other than IPv4 and ARP (IPv6, VLAN tags, 802.3 lengths, ...).
    case etherTypeUnsupported
    /// ARP that is short, not Ethernet/IPv4, or neither request nor reply.
    case arpMalformed
    /// Less than a header, less than IHL says, or total length beyond the frame.
    case ipv4Truncated
    /// Version not 4, IHL below 5, or total length below the header length.
    case ipv4BadHeader
    case ipv4BadChecksum
    /// Longer than the 1500-byte MTU: received, or asked to be sent.
    case ipv4Oversized
    /// A fragment: the stack does not reassemble.
    case ipv4Fragment
    /// Addressed to neither us nor a broadcast address.
    case ipv4NotForUs
    /// From a broadcast, multicast, unspecified or our own address: never answered.
    case ipv4BadSource
    /// Nowhere to send: off-subnet without a gateway, or to ourselves.
    case ipv4NoRoute
    /// A protocol with neither a built-in nor a registered handler.
    case ipv4ProtocolUnsupported
    /// ICMP shorter than its 8-byte header.
    case icmpMalformed
    case icmpBadChecksum
    /// UDP shorter than its header, or a length field below 8 or beyond the IP payload.
    case udpTruncated
    case udpBadChecksum
    /// No handler on the destination port.
    case udpNoPort
    /// TCP shorter than its header or with a bad data offset.
    case tcpMalformed
    case tcpBadChecksum
    /// Too many packets waiting for one address, or too many addresses being resolved.
    case arpQueueFull
    /// A packet that waited for an ARP answer that never came.
    case arpResolveFailed
    /// The transmit queue was full: the driver has not drained it.
    case transmitQueueFull
    /// The listener's backlog of half-open connections was full: its oldest half-open
    /// connection was dropped to take the new SYN (a SYN flood shows here).
    case tcpBacklogFull
    /// A segment beyond RCV.NXT that did not fit the out-of-order queue (the peer resends it).
    case tcpOutOfOrderOverflow
    /// A segment for a known connection that was neither acceptable nor worth an answer
    /// (e.g. no ACK bit in a synchronized state).
    case tcpUnacceptable

    /// A short name for logs: "ipv4-bad-checksum".
    public var name: StaticString {
        switch self {
        case .ethernetTooShort: "ethernet-too-short"
        case .etherTypeUnsupported: "ethertype-unsupported"
        case .arpMalformed: "arp-malformed"
        case .ipv4Truncated: "ipv4-truncated"
        case .ipv4BadHeader: "ipv4-bad-header"
        case .ipv4BadChecksum: "ipv4-bad-checksum"
        case .ipv4Oversized: "ipv4-oversized"
        case .ipv4Fragment: "ipv4-fragment"
        case .ipv4NotForUs: "ipv4-not-for-us"
        case .ipv4BadSource: "ipv4-bad-source"
        case .ipv4NoRoute: "ipv4-no-route"
        case .ipv4ProtocolUnsupported: "ipv4-protocol-unsupported"
        case .icmpMalformed: "icmp-malformed"
        case .icmpBadChecksum: "icmp-bad-checksum"
        case .udpTruncated: "udp-truncated"
        case .udpBadChecksum: "udp-bad-checksum"
        case .udpNoPort: "udp-no-port"
        case .tcpMalformed: "tcp-malformed"
        case .tcpBadChecksum: "tcp-bad-checksum"
        case .arpQueueFull: "arp-queue-full"
        case .arpResolveFailed: "arp-resolve-failed"
        case .transmitQueueFull: "tx-queue-full"
        case .tcpBacklogFull: "tcp-backlog-full"
        case .tcpOutOfOrderOverflow: "tcp-ooo-overflow"
        case .tcpUnacceptable: "tcp-unacceptable"
        }
    }
}

/// Event counters. "In" counters count arrivals at a layer before validation; "Drop"
/// counters count what validation threw away. All wrap rather than trap.
public struct NetCounters {
    // Link layer. rxNotForUs (another station's unicast or a multicast we did not join) is
    // normal on a shared segment and is not a drop.
    public var rxFrames: UInt64 = 0
    public var rxBytes: UInt64 = 0
    /// Frames handed to the driver by `nextTransmitFrame()`.
    public var txFrames: UInt64 = 0
    public var txBytes: UInt64 = 0
    public var rxNotForUs: UInt64 = 0
    public var ethDropShort: UInt64 = 0
    public var ethDropUnsupportedType: UInt64 = 0
    public var txQueueDrops: UInt64 = 0

    // ARP.
    public var arpRequestsIn: UInt64 = 0
    public var arpRepliesIn: UInt64 = 0
    public var arpRepliesOut: UInt64 = 0
    public var arpRequestsOut: UInt64 = 0
    /// Destinations given up on after the last retry (one per destination, not per packet).
    public var arpResolveFailures: UInt64 = 0
    public var arpDropMalformed: UInt64 = 0
    /// Packets refused because the per-destination or destination queue was full.
    public var arpQueueDrops: UInt64 = 0
    /// Packets thrown away with a destination that did not resolve.
    public var arpPendingDrops: UInt64 = 0

    // IPv4.
    public var ipv4In: UInt64 = 0
    public var ipv4DropBadChecksum: UInt64 = 0
    public var ipv4DropTruncated: UInt64 = 0
    public var ipv4DropBadHeader: UInt64 = 0
    public var ipv4DropOversized: UInt64 = 0
    public var ipv4DropFragment: UInt64 = 0
    public var ipv4DropNotForUs: UInt64 = 0
    public var ipv4DropBadSource: UInt64 = 0
    public var ipv4DropNoRoute: UInt64 = 0
    public var ipv4DropUnsupportedProtocol: UInt64 = 0

    // ICMP.
    public var icmpEchoRequests: UInt64 = 0
    public var icmpEchoReplies: UInt64 = 0
    /// Valid ICMP other than a unicast echo request: ignored, not a drop.
    public var icmpIgnored: UInt64 = 0
    public var icmpDropBadChecksum: UInt64 = 0
    public var icmpDropMalformed: UInt64 = 0

    // UDP.
    public var udpIn: UInt64 = 0
    public var udpOut: UInt64 = 0
    public var udpDropBadChecksum: UInt64 = 0
    public var udpDropTruncated: UInt64 = 0
    public var udpNoPort: UInt64 = 0

    // TCP. Without a TCP layer registered every segment is refused with a reset; with one
    // (TCPLayer), these count its traffic.
    /// Segments received (before validation).
    public var tcpIn: UInt64 = 0
    public var tcpResetsOut: UInt64 = 0
    public var tcpDropMalformed: UInt64 = 0
    public var tcpDropBadChecksum: UInt64 = 0
    /// Segments sent, retransmissions and resets included.
    public var tcpSegmentsOut: UInt64 = 0
    /// Segments sent again: timeouts, fast retransmits, SYN-ACK repeats.
    public var tcpRetransmits: UInt64 = 0
    /// Retransmission timer expiries (each one backs the RTO off).
    public var tcpTimeouts: UInt64 = 0
    /// Connections that reached ESTABLISHED from a listener.
    public var tcpConnectionsAccepted: UInt64 = 0
    /// Connections ended by a reset from the peer.
    public var tcpResetsIn: UInt64 = 0
    /// Connections given up: retransmission limit, idle timeout, half-open timeout.
    public var tcpConnectionsTimedOut: UInt64 = 0
    /// Connections currently open (SYN-RECEIVED through LAST-ACK; not TIME-WAIT). A gauge.
    public var tcpActiveConnections: UInt64 = 0
    /// Connections currently in TIME-WAIT. A gauge.
    public var tcpTimeWaitConnections: UInt64 = 0
    public var tcpDropBacklogFull: UInt64 = 0
    public var tcpDropOutOfOrderOverflow: UInt64 = 0
    public var tcpDropUnacceptable: UInt64 = 0
    /// Connections the layer ended to make room for a new one (RFC 9293 leaves the policy
    /// to us: the oldest half-open, then the oldest closing, then the oldest idle one).
    public var tcpEvictions: UInt64 = 0
    /// SYNs answered with a reset: no slot could be freed, or the source is at its cap.
    public var tcpRefusedFull: UInt64 = 0
    public var tcpRefusedPerSource: UInt64 = 0
    /// Handshakes completed but reset: the connection's memory could not be reserved.
    public var tcpRefusedMemory: UInt64 = 0

    /// The name the TCP brief uses for `tcpIn`.
    public var tcpSegmentsIn: UInt64 { tcpIn }

    public init() {}

    /// Every packet the stack threw away, once each. Excludes rxNotForUs, icmpIgnored,
    /// and arpResolveFailures (which counts destinations; their packets are in arpPendingDrops).
    public var totalDrops: UInt64 {
        ethDropShort &+ ethDropUnsupportedType &+ txQueueDrops
            &+ arpDropMalformed &+ arpQueueDrops &+ arpPendingDrops
            &+ ipv4DropBadChecksum &+ ipv4DropTruncated &+ ipv4DropBadHeader &+ ipv4DropOversized
            &+ ipv4DropFragment &+ ipv4DropNotForUs &+ ipv4DropBadSource &+ ipv4DropNoRoute
            &+ ipv4DropUnsupportedProtocol
            &+ icmpDropBadChecksum &+ icmpDropMalformed
            &+ udpDropBadChecksum &+ udpDropTruncated &+ udpNoPort
            &+ tcpDropMalformed &+ tcpDropBadChecksum
            &+ tcpDropBacklogFull &+ tcpDropOutOfOrderOverflow &+ tcpDropUnacceptable
    }

    /// Counts one drop for `reason`.
    public mutating func record(_ reason: NetDropReason) {
        switch reason {
        case .ethernetTooShort: ethDropShort &+= 1
        case .etherTypeUnsupported: ethDropUnsupportedType &+= 1
        case .arpMalformed: arpDropMalformed &+= 1
        case .ipv4Truncated: ipv4DropTruncated &+= 1
        case .ipv4BadHeader: ipv4DropBadHeader &+= 1
        case .ipv4BadChecksum: ipv4DropBadChecksum &+= 1
        case .ipv4Oversized: ipv4DropOversized &+= 1
        case .ipv4Fragment: ipv4DropFragment &+= 1
        case .ipv4NotForUs: ipv4DropNotForUs &+= 1
        case .ipv4BadSource: ipv4DropBadSource &+= 1
        case .ipv4NoRoute: ipv4DropNoRoute &+= 1
        case .ipv4ProtocolUnsupported: ipv4DropUnsupportedProtocol &+= 1
        case .icmpMalformed: icmpDropMalformed &+= 1
        case .icmpBadChecksum: icmpDropBadChecksum &+= 1
        case .udpTruncated: udpDropTruncated &+= 1
        case .udpBadChecksum: udpDropBadChecksum &+= 1
        case .udpNoPort: udpNoPort &+= 1
        case .tcpMalformed: tcpDropMalformed &+= 1
        case .tcpBadChecksum: tcpDropBadChecksum &+= 1
        case .arpQueueFull: arpQueueDrops &+= 1
        case .arpResolveFailed: arpPendingDrops &+= 1
        case .transmitQueueFull: txQueueDrops &+= 1
        case .tcpBacklogFull: tcpDropBacklogFull &+= 1
        case .tcpOutOfOrderOverflow: tcpDropOutOfOrderOverflow &+= 1
        case .tcpUnacceptable: tcpDropUnacceptable &+= 1
        }
    }
}
