/// The stack's drop reasons, folded into the protocol's coarser classes (docs/protocol.md §5).
/// NetStack and Wire know nothing of each other; the kernel, which uses both, maps one to the other.
func wireDropReason(_ reason: NetDropReason) -> WireDropReason {
    switch reason {
    case .transmitQueueFull, .arpQueueFull, .arpResolveFailed, .tcpBacklogFull, .tcpOutOfOrderOverflow:
        return .noBuffer
    case .etherTypeUnsupported, .ipv4NotForUs, .ipv4ProtocolUnsupported, .ipv4NoRoute, .udpNoPort, .ipv4Fragment:
        return .unhandled
    case .ipv4Oversized:
        return .tooLarge
    case .ipv4BadChecksum, .icmpBadChecksum, .udpBadChecksum, .tcpBadChecksum:
        return .badChecksum
    default:
        return .malformed
    }
}
