// What the stack itself does for TCP, with or without a TCPLayer registered for protocol 6:
// take a segment in (count it, check its header and checksum, refuse broadcasts), and
// answer a segment that belongs to no connection with the reset RFC 9293 §3.10.7.1
// prescribes. Without a layer every port is CLOSED; with one, the layer calls the same
// functions for ports nobody listens on, so there is one way to refuse a segment.

extension NetStack {
    /// The header of `segment`, counted as a TCP segment in; nil (and a counted drop) when it
    /// is malformed, its checksum is wrong, or it came to a broadcast address: TCP is
    /// unicast only (RFC 1122 §4.2.3.10).
    func acceptTCPSegment(_ info: IPv4PacketInfo, _ segment: UnsafeRawBufferPointer) -> TCPSegmentHeader? {
        counters.tcpIn &+= 1
        let header: TCPSegmentHeader
        do {
            header = try TCPSegmentHeader.parse(segment, source: info.source, destination: info.destination)
        } catch {
            drop(error)
            return nil
        }
        guard !info.isBroadcast else {
            drop(.tcpUnacceptable)
            return nil
        }
        return header
    }

    /// Answers `header`, from `source`, as a CLOSED port does: with a reset, unless it is a
    /// reset itself (RFC 9293 §3.10.7.1).
    func refuseTCP(_ header: TCPSegmentHeader, from source: IPv4Address) {
        guard let reset = TCPSegmentHeader.reset(answering: header) else { return }
        sendTCPReset(reset, to: source)
    }

    /// Sends `reset`, a bare header with RST set, to `destination`.
    func sendTCPReset(_ reset: TCPSegmentHeader, to destination: IPv4Address) {
        var frame = makeIPv4Frame(
            destination: destination, protocolNumber: IPProtocolNumber.tcp,
            transportLength: TCPSegmentHeader.minimumLength)
        reset.write(to: &frame, at: NetStack.transportOffset, source: config.ip, destination: destination)
        counters.tcpSegmentsOut &+= 1
        if sendIPv4Frame(&frame, to: destination) {
            counters.tcpResetsOut &+= 1
        }
    }
}
