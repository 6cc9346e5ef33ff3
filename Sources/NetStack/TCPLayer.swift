// TCP (RFC 9293) for a server: listeners, passive opens, reliable data both ways, orderly
// and abortive close. It plugs into NetStack as protocol 6 (`registerIPv4Protocol`) and
// keeps its timers through `registerTimer`, so the kernel drives it exactly as it drives
// the rest of the stack: `receive`, `poll`, `nextDeadlineMs`.
//
// What it does, and where the RFCs are:
// - Three-way handshake with a per-listener backlog of half-open connections; SYN-ACKs
//   carry our MSS (1460) and the peer's MSS option sets our segment size (§3.7.1).
// - ISNs from a 4 µs clock plus a keyed hash of the connection's addresses (RFC 6528).
// - Sequence numbers compared on the 32-bit circle (TCPSequence.swift).
// - The receive window is the free space of an 8 KiB receive buffer; the send window is
//   min(peer window, cwnd), so several segments are in flight (RFC 5681 slow start and
//   congestion avoidance, initial window 10 segments per RFC 6928, fast retransmit on
//   three duplicate ACKs).
// - Retransmission on a timer with RFC 6298 RTO estimation: SRTT/RTTVAR, Karn's rule (no
//   samples from retransmitted segments), doubling backoff, 200 ms minimum (Linux's, below
//   RFC 6298's 1 s), 60 s maximum; after a timeout everything unacknowledged is sent again
//   (go-back-N), paced by a one-segment cwnd. A zero window is probed on the same timer.
// - Out-of-order segments inside the window are kept (up to 4) and used when the gap fills;
//   each one is answered with a duplicate ACK.
// - RST handling per state, with RFC 5961 challenge ACKs for resets and SYNs whose
//   sequence number is in the window but not exact.
// - TIME-WAIT lasts 2 s (`timeWaitMs`), not 2·MSL: a server on a private link, where
//   holding 4-tuples for minutes buys nothing. A new SYN may take over a TIME-WAIT tuple,
//   and when the table is full the oldest TIME-WAIT entry makes room.
// - A vanished peer is reclaimed: 8 timeouts without progress, 3 unanswered SYN-ACKs, or
//   `idleTimeoutMs` without an acceptable segment from the peer end the connection with a
//   reset. Unacceptable segments (out of window) refresh nothing, so they cannot keep a
//   connection alive.
// - Hostile peers (see NetMemory.swift for memory): a listener's backlog that is full
//   evicts its oldest half-open connection, so a SYN flood churns the backlog instead of
//   owning it; one source address may hold at most `maxConnectionsPerSource`; a full table
//   makes room by resetting the oldest TIME-WAIT, half-open, closing, then idle
//   (`isIdle`) connection, in that order; a SYN for which no room can be made is answered
//   with a reset, so clients fail at once instead of hanging.
//
// Not done: active opens (SYN-SENT), window scaling, SACK, timestamps, urgent data,
// keepalives, delayed ACKs (every data segment is acknowledged at once, usually by the
// response that carries the ACK), IP options.

struct TCPListener {
    var port: UInt16
    var backlog: Int
    var accept: (TCPConnection) -> Void
}

public final class TCPLayer {
    /// The most connections (of all states, TIME-WAIT included) the table ever holds; the
    /// kernel may lower `maxConnections` to what its heap can back.
    public static let connectionTableLimit = 128
    public static let receiveBufferSize = 8 * 1024
    public static let sendBufferSize = 16 * 1024
    /// Our MSS: a 1500-byte MTU less 40 bytes of IPv4 and TCP headers.
    public static let ourMSS = 1460
    public static let timeWaitMs: UInt64 = 2_000
    public static let initialRTOMs = 1_000
    public static let minRTOMs = 200
    public static let maxRTOMs = 60_000
    /// Timeouts in a row without progress before the peer is given up (about 100 s of
    /// backoff from a 200 ms RTO).
    public static let maxRetransmits = 8
    /// SYN-ACKs sent again before a half-open connection is dropped: 1 + 2 + 4 s of backoff,
    /// so a flood's leftovers are gone 7 s after it stops (a real client's SYN-ACK rarely
    /// needs a second try on the links this kernel serves).
    public static let maxSynAckRetransmits = 2
    public static let defaultIdleTimeoutMs: UInt64 = 120_000
    public static let outOfOrderLimit = 4
    /// What one out-of-order segment can cost: a full-sized segment in a [UInt8] (its
    /// 32-byte header included) takes a 2 KiB heap block.
    static let outOfOrderSegmentBytes = 2048
    /// The TCPConnection object, its callbacks' contexts and its table entry, rounded up.
    static let connectionObjectBytes = 1024
    /// Everything one established connection can make the stack hold: what it reserves
    /// from NetMemory when its handshake completes.
    public static let connectionMemoryBytes = receiveBufferSize + sendBufferSize
        + outOfOrderLimit * outOfOrderSegmentBytes + connectionObjectBytes
    public static let maxCongestionWindow = 64 * 1024
    /// Transmit-queue slots TCP leaves free for ARP and ICMP.
    static let transmitReserve = 4

    let stack: NetStack
    /// Connections the table holds at most (≤ `connectionTableLimit`).
    public var maxConnections = TCPLayer.connectionTableLimit {
        didSet { maxConnections = Swift.min(Swift.max(maxConnections, 1), TCPLayer.connectionTableLimit) }
    }
    /// Connections (not counting TIME-WAIT) one remote address may hold: three quarters of
    /// the table, so one address cannot take every slot. Under QEMU user networking every
    /// host client arrives from the gateway's address, so the cap cannot be much lower.
    public var maxConnectionsPerSource: Int { Swift.max(1, maxConnections - maxConnections / 4) }
    public private(set) var connections: [TCPConnection] = []
    var listeners: [TCPListener] = []
    let isnSecret: UInt64
    /// Replaces the ISN generator (tests use it to start near 2^32).
    public var initialSequenceNumber: ((IPv4Address, UInt16, UInt16) -> UInt32)?

    /// Registers with `stack` for protocol 6 and for timer callbacks. `isnSecret` keys the
    /// ISN hash: give it something unpredictable (the kernel uses the TSC at boot).
    public init(stack: NetStack, isnSecret: UInt64) {
        self.stack = stack
        self.isnSecret = isnSecret
        stack.registerIPv4Protocol(IPProtocolNumber.tcp) { info, segment in
            self.receive(info, segment)
        }
        stack.registerTimer(
            poll: { nowMs in self.poll(nowMs: nowMs) },
            nextDeadlineMs: { self.nextDeadlineMs() })
    }

    // MARK: Applications

    /// Accepts connections to `port`: `accept` is called for each one that completes the
    /// handshake, and should set its callbacks. At most `backlog` half-open connections
    /// wait at a time; a SYN beyond that replaces the oldest of them. False if `port` is
    /// taken or 0.
    @discardableResult
    public func listen(port: UInt16, backlog: Int = 64, accept: @escaping (TCPConnection) -> Void) -> Bool {
        guard port != 0, !listeners.contains(where: { $0.port == port }) else { return false }
        listeners.append(TCPListener(port: port, backlog: Swift.max(backlog, 1), accept: accept))
        return true
    }

    public func unlisten(port: UInt16) {
        listeners.removeAll(where: { $0.port == port })
    }

    /// Connections in any state but TIME-WAIT.
    public var activeConnectionCount: Int {
        var count = 0
        for connection in connections where connection.state != .timeWait { count += 1 }
        return count
    }

    // MARK: Receive

    func receive(_ info: IPv4PacketInfo, _ segment: UnsafeRawBufferPointer) {
        stack.counters.tcpIn &+= 1
        let header: TCPSegmentHeader
        do {
            header = try TCPSegmentHeader.parse(segment, source: info.source, destination: info.destination)
        } catch {
            stack.drop(error)
            return
        }
        // TCP is unicast only (RFC 1122 §4.2.3.10).
        guard !info.isBroadcast else {
            stack.drop(.tcpUnacceptable)
            return
        }
        let payload = segment.netSlice(header.headerLength..<segment.count)
        if let connection = connections.first(where: {
            $0.matches(localPort: header.destinationPort, remoteAddress: info.source, remotePort: header.sourcePort)
        }) {
            if connection.state == .timeWait, isNewSYN(header, for: connection) {
                // RFC 9293 §3.10.7.4 (TIME-WAIT) and RFC 6191: a new incarnation may
                // start while the old one waits, when its sequence numbers are ahead.
                reclaim(connection)
                receiveWithoutConnection(info, header, segment)
            } else {
                process(connection, header, payload)
            }
        } else {
            receiveWithoutConnection(info, header, segment)
        }
        updateGauges()
    }

    func isNewSYN(_ header: TCPSegmentHeader, for connection: TCPConnection) -> Bool {
        header.flags & (TCPSegmentHeader.flagSYN | TCPSegmentHeader.flagACK | TCPSegmentHeader.flagRST)
            == TCPSegmentHeader.flagSYN && seqGT(header.sequenceNumber, connection.rcvNxt)
    }

    /// LISTEN (a listener on the port) or CLOSED (none): RFC 9293 §3.10.7.1-2.
    func receiveWithoutConnection(_ info: IPv4PacketInfo, _ header: TCPSegmentHeader, _ segment: UnsafeRawBufferPointer) {
        let flags = header.flags
        if flags & TCPSegmentHeader.flagRST != 0 { return }
        guard let listener = listeners.first(where: { $0.port == header.destinationPort }) else {
            sendReset(answering: header, to: info.source)
            return
        }
        if flags & TCPSegmentHeader.flagACK != 0 {
            sendReset(answering: header, to: info.source)
            return
        }
        guard flags & TCPSegmentHeader.flagSYN != 0 else { return }
        // The backlog: a SYN flood replaces its own half-open entries, oldest first, and
        // a real client's handshake completes within a round trip of its SYN.
        var halfOpen = 0
        var oldestHalfOpen: TCPConnection?
        for connection in connections where connection.listenerPort == listener.port && connection.state == .synReceived {
            halfOpen += 1
            if oldestHalfOpen.map({ connection.createdMs < $0.createdMs }) ?? true { oldestHalfOpen = connection }
        }
        if halfOpen >= listener.backlog, let oldestHalfOpen {
            stack.drop(.tcpBacklogFull)
            evict(oldestHalfOpen)
        }
        guard admitSource(info.source) else {
            stack.counters.tcpRefusedPerSource &+= 1
            sendReset(answering: header, to: info.source)
            return
        }
        guard makeRoom() else {
            stack.counters.tcpRefusedFull &+= 1
            sendReset(answering: header, to: info.source)
            return
        }
        let connection = TCPConnection(
            localPort: header.destinationPort, remoteAddress: info.source, remotePort: header.sourcePort, layer: self)
        let now = stack.nowMs
        connection.createdMs = now
        let iss = makeISN(remote: info.source, remotePort: header.sourcePort, localPort: header.destinationPort)
        connection.iss = iss
        connection.sndUna = iss
        connection.sndNxt = iss &+ 1
        connection.sndMax = iss &+ 1
        connection.irs = header.sequenceNumber
        connection.rcvNxt = header.sequenceNumber &+ 1
        connection.sndWnd = Int(header.window)
        connection.sndWl1 = header.sequenceNumber
        connection.sndWl2 = iss
        let peerMSS = TCPLayer.parseMSSOption(segment, headerLength: header.headerLength) ?? 536
        connection.sendMSS = Swift.max(64, Swift.min(peerMSS, TCPLayer.ourMSS))
        connection.cwnd = 10 * connection.sendMSS
        connection.lastActivityMs = now
        connection.rttSequence = iss
        connection.rttStartMs = now
        connection.retransmitDeadlineMs = now &+ UInt64(connection.rtoMs)
        connections.append(connection)
        // Data in the SYN is not kept: the peer sends it again once we acknowledge only the SYN.
        sendSynAck(connection)
    }

    /// A free slot in the table. When it is full, one connection goes, the first found of:
    /// the oldest TIME-WAIT (it needs nothing more from anyone), the oldest half-open (most
    /// likely a flood's), the oldest closing (the application is done with it), the one
    /// idle longest (`isIdle`: a keep-alive waiting for a request). False if none.
    func makeRoom() -> Bool {
        guard connections.count >= maxConnections else { return true }
        if let victim = oldest(where: { $0.state == .timeWait }, age: { $0.timeWaitDeadlineMs })
            ?? oldest(where: { $0.state == .synReceived }, age: { $0.createdMs })
            ?? oldest(where: { $0.isClosing }, age: { $0.lastActivityMs })
            ?? oldest(where: { $0.isEvictableIdle }, age: { $0.lastActivityMs }) {
            evict(victim)
        }
        return connections.count < maxConnections
    }

    /// Whether `source` may open one more connection; at its cap, its own longest-idle
    /// connection makes room if it has one.
    func admitSource(_ source: IPv4Address) -> Bool {
        var count = 0
        for connection in connections where connection.remoteAddress == source && connection.state != .timeWait {
            count += 1
        }
        guard count >= maxConnectionsPerSource else { return true }
        guard let idle = oldest(where: { $0.remoteAddress == source && $0.isEvictableIdle }, age: { $0.lastActivityMs }) else {
            return false
        }
        evict(idle)
        return true
    }

    func oldest(where include: (TCPConnection) -> Bool, age: (TCPConnection) -> UInt64) -> TCPConnection? {
        var found: TCPConnection?
        for connection in connections where include(connection) {
            if found.map({ age(connection) < age($0) }) ?? true { found = connection }
        }
        return found
    }

    /// Ends `connection` to make room: a reset to the peer unless it is TIME-WAIT or
    /// half-open (a flood's SYN-ACK went to an address that may not exist; the slot is
    /// what matters).
    func evict(_ connection: TCPConnection) {
        if connection.state == .timeWait {
            reclaim(connection)
            return
        }
        stack.counters.tcpEvictions &+= 1
        if connection.state != .synReceived {
            sendReset(sequence: connection.sndNxt, to: connection)
        }
        finish(connection, reason: .evicted)
    }

    /// RFC 9293 §3.10.7.4, "Otherwise" (every state but LISTEN and SYN-SENT).
    func process(_ connection: TCPConnection, _ header: TCPSegmentHeader, _ payload: UnsafeRawBufferPointer) {
        let now = stack.nowMs
        let flags = header.flags
        let hasSYN = flags & TCPSegmentHeader.flagSYN != 0
        let hasACK = flags & TCPSegmentHeader.flagACK != 0
        let hasRST = flags & TCPSegmentHeader.flagRST != 0
        let hasFIN = flags & TCPSegmentHeader.flagFIN != 0
        let sequence = header.sequenceNumber

        // A repeated SYN in SYN-RECEIVED: our SYN-ACK was lost; send it again.
        if connection.state == .synReceived, hasSYN, !hasACK, !hasRST, sequence == connection.irs {
            stack.counters.tcpRetransmits &+= 1
            connection.rttSequence = nil
            sendSynAck(connection)
            return
        }

        // First: is the segment in the window?
        let window = UInt32(connection.receiveWindow)
        let segmentLength = header.sequenceLength
        var acceptable: Bool
        var textAllowed = true
        if segmentLength == 0 {
            acceptable = window == 0 ? sequence == connection.rcvNxt
                : seqInWindow(sequence, start: connection.rcvNxt, length: window)
        } else if window == 0 {
            // Nothing fits, but an ACK or RST at RCV.NXT must still be heard.
            acceptable = sequence == connection.rcvNxt
            textAllowed = false
        } else {
            acceptable = seqInWindow(sequence, start: connection.rcvNxt, length: window)
                || seqInWindow(sequence &+ segmentLength &- 1, start: connection.rcvNxt, length: window)
        }
        if !acceptable {
            if !hasRST { sendAck(connection) }
            // A retransmitted FIN in TIME-WAIT restarts the wait (RFC 9293 §3.10.7.4).
            if connection.state == .timeWait, hasFIN { connection.timeWaitDeadlineMs = now &+ TCPLayer.timeWaitMs }
            return
        }
        // Only an acceptable segment shows the peer is there (an out-of-window ACK every
        // few seconds must not keep a connection alive).
        connection.lastActivityMs = now

        // Second: RST. In the window but not exact: a challenge ACK (RFC 5961 §3.2).
        if hasRST {
            if connection.state != .synReceived, sequence != connection.rcvNxt {
                sendAck(connection)
                return
            }
            stack.counters.tcpResetsIn &+= 1
            finish(connection, reason: .reset)
            return
        }

        // Fourth: SYN. A passive open goes back to LISTEN; otherwise a challenge ACK
        // (RFC 5961 §4.2).
        if hasSYN {
            if connection.state == .synReceived {
                finish(connection, reason: .reset)
            } else {
                sendAck(connection)
            }
            return
        }

        // Fifth: ACK.
        guard hasACK else {
            stack.drop(.tcpUnacceptable)
            return
        }
        var accepted = false
        var writable = false
        switch connection.state {
        case .synReceived:
            guard seqLT(connection.sndUna, header.acknowledgmentNumber),
                  seqLE(header.acknowledgmentNumber, connection.sndMax) else {
                sendReset(sequence: header.acknowledgmentNumber, to: connection)
                return
            }
            // The connection's memory, reserved and allocated now or never: a handshake
            // the heap cannot back is reset, and nothing later can run out.
            guard takeMemory(connection) else {
                stack.counters.tcpRefusedMemory &+= 1
                sendReset(sequence: header.acknowledgmentNumber, to: connection)
                finish(connection, reason: .reset)
                return
            }
            connection.state = .established
            connection.sndUna = header.acknowledgmentNumber
            connection.sndWnd = Int(header.window)
            connection.sndWl1 = sequence
            connection.sndWl2 = header.acknowledgmentNumber
            if connection.rttSequence != nil {
                connection.addRTTSample(Int(truncatingIfNeeded: now &- connection.rttStartMs))
                connection.rttSequence = nil
            }
            connection.retransmitDeadlineMs = nil
            connection.consecutiveTimeouts = 0
            stack.counters.tcpConnectionsAccepted &+= 1
            accepted = true
        case .established, .finWait1, .finWait2, .closeWait, .closing, .lastAck:
            guard let result = processAck(connection, header, payloadLength: payload.count, now: now) else { return }
            writable = result
            if connection.finAcknowledged {
                switch connection.state {
                case .finWait1: connection.state = .finWait2
                case .closing:
                    enterTimeWait(connection)
                    return
                case .lastAck:
                    finish(connection, reason: .closed)
                    return
                default: break
                }
            }
        case .timeWait:
            // Only a retransmitted FIN can arrive (handled as unacceptable above, with an
            // ACK); anything else restarts nothing.
            if hasFIN {
                sendAck(connection)
                connection.timeWaitDeadlineMs = now &+ TCPLayer.timeWaitMs
            }
            return
        case .closed:
            return
        }

        // Seventh and eighth: text and FIN.
        var readable = false
        if textAllowed, connection.state == .established || connection.state == .finWait1
            || connection.state == .finWait2 {
            readable = receiveText(connection, sequence: sequence, payload: payload, fin: hasFIN)
        } else if segmentLength > 0 {
            connection.ackPending = true
        }

        connection.deferOutput = true
        if accepted, let listener = listeners.first(where: { $0.port == connection.listenerPort }) {
            listener.accept(connection)
        }
        if writable, connection.state != .closed { connection.onWritable?(connection) }
        if readable, connection.state != .closed { connection.onReadable?(connection) }
        connection.deferOutput = false
        if connection.state != .closed, connection.state != .timeWait { output(connection) }
    }

    /// The ACK of an acceptable segment in a synchronized state. Returns nil when the
    /// segment must go no further (it acknowledged something never sent), else whether
    /// send space was freed.
    func processAck(_ connection: TCPConnection, _ header: TCPSegmentHeader, payloadLength: Int, now: UInt64) -> Bool? {
        let ack = header.acknowledgmentNumber
        if seqGT(ack, connection.sndMax) {
            sendAck(connection)
            return nil
        }
        var freed = false
        let window = Int(header.window)
        if seqGT(ack, connection.sndUna) {
            let acknowledged = seqDistance(from: connection.sndUna, to: ack)
            let dataAcknowledged = Swift.min(acknowledged, connection.sendBuffer.count)
            connection.sendBuffer.discard(dataAcknowledged)
            connection.sndUna = ack
            if seqLT(connection.sndNxt, ack) { connection.sndNxt = ack }
            // Karn: only a segment sent once is timed, and a timeout clears the timing.
            if let timed = connection.rttSequence, seqGT(ack, timed) {
                connection.addRTTSample(Int(truncatingIfNeeded: now &- connection.rttStartMs))
                connection.rttSequence = nil
            }
            connection.consecutiveTimeouts = 0
            connection.duplicateAcks = 0
            let mss = connection.sendMSS
            if connection.cwnd < connection.ssthresh {
                connection.cwnd += Swift.min(acknowledged, mss)
            } else {
                connection.cwnd += Swift.max(1, mss * mss / Swift.max(connection.cwnd, 1))
            }
            connection.cwnd = Swift.min(connection.cwnd, TCPLayer.maxCongestionWindow)
            connection.retransmitDeadlineMs = connection.sndUna == connection.sndMax
                ? nil : now &+ UInt64(connection.rtoMs)
            freed = dataAcknowledged > 0
        } else if ack == connection.sndUna, payloadLength == 0,
                  header.flags & TCPSegmentHeader.flagFIN == 0, window == connection.sndWnd,
                  connection.sndMax != connection.sndUna {
            // RFC 5681 §3.2: the third duplicate ACK means a lost segment; send it now.
            connection.duplicateAcks += 1
            if connection.duplicateAcks == 3 {
                let mss = connection.sendMSS
                connection.ssthresh = Swift.max(seqDistance(from: connection.sndUna, to: connection.sndMax) / 2, 2 * mss)
                connection.cwnd = connection.ssthresh
                connection.rttSequence = nil
                retransmitFirst(connection)
            }
        }
        // Window update (RFC 9293 §3.10.7.4, SND.WL1/SND.WL2).
        if seqGE(ack, connection.sndUna),
           seqLT(connection.sndWl1, header.sequenceNumber)
            || (connection.sndWl1 == header.sequenceNumber && seqLE(connection.sndWl2, ack)) {
            if connection.sndWnd == 0, window > 0 { freed = true }
            connection.sndWnd = window
            connection.sndWl1 = header.sequenceNumber
            connection.sndWl2 = ack
        }
        return freed
    }

    /// Takes in the segment's data and FIN. Returns whether the application has something
    /// new to read (data or end of stream).
    func receiveText(_ connection: TCPConnection, sequence: UInt32, payload: UnsafeRawBufferPointer, fin: Bool) -> Bool {
        guard payload.count > 0 || fin else { return false }
        connection.ackPending = true
        var start = sequence
        var data = payload
        var fin = fin
        if seqLT(start, connection.rcvNxt) {
            let skip = seqDistance(from: start, to: connection.rcvNxt)
            if skip > data.count {
                return false  // everything, FIN included, is old
            }
            data = data.netSlice(skip..<data.count)
            start = connection.rcvNxt
        }
        // Trim to the window; a FIN beyond it is not taken either.
        let window = connection.receiveWindow
        let beyond = seqDistance(from: connection.rcvNxt, to: start)
        if beyond >= window {
            if beyond > 0 || data.count > 0 { return false }
        } else if beyond + data.count > window {
            data = data.netSlice(0..<(window - beyond))
            fin = false
        }
        if start != connection.rcvNxt {
            keepOutOfOrder(connection, sequence: start, data: data, fin: fin)
            return false
        }
        var readable = false
        if data.count > 0 {
            var taken = data.count
            if !connection.receiveShutdown {
                taken = connection.receiveBuffer.append(data)
                readable = taken > 0
            }
            connection.rcvNxt &+= UInt32(truncatingIfNeeded: taken)
            // Bytes the ring did not take are not acknowledged: the peer sends them again.
            if taken < data.count { return readable }
        }
        var finReceived = fin
        if !finReceived {
            finReceived = drainOutOfOrder(connection, readable: &readable)
        }
        if finReceived {
            connection.rcvNxt &+= 1
            connection.peerClosed = true
            readable = true
            switch connection.state {
            case .established: connection.state = .closeWait
            case .finWait1:
                // Our FIN not yet acknowledged (else we would be in FIN-WAIT-2).
                connection.state = .closing
            case .finWait2:
                sendAck(connection)
                enterTimeWait(connection)
                return false
            default: break
            }
        }
        return readable && !connection.receiveShutdown
    }

    func keepOutOfOrder(_ connection: TCPConnection, sequence: UInt32, data: UnsafeRawBufferPointer, fin: Bool) {
        guard data.count > 0 || fin else { return }
        if connection.outOfOrder.contains(where: { $0.sequence == sequence && $0.data.count >= data.count }) { return }
        guard connection.outOfOrder.count < TCPLayer.outOfOrderLimit else {
            stack.drop(.tcpOutOfOrderOverflow)
            return
        }
        connection.outOfOrder.append(TCPOutOfOrderSegment(sequence: sequence, data: Array(data), fin: fin))
    }

    /// Moves kept segments that now start at or before RCV.NXT into the receive buffer.
    /// Returns whether one of them carried the FIN that is now next.
    func drainOutOfOrder(_ connection: TCPConnection, readable: inout Bool) -> Bool {
        var progress = true
        while progress {
            progress = false
            var index = 0
            while index < connection.outOfOrder.count {
                let kept = connection.outOfOrder[index]
                guard seqLE(kept.sequence, connection.rcvNxt) else {
                    index += 1
                    continue
                }
                connection.outOfOrder.remove(at: index)
                let skip = seqDistance(from: kept.sequence, to: connection.rcvNxt)
                guard skip <= kept.data.count else { continue }  // wholly old
                let fresh = kept.data.count - skip
                if fresh > 0 {
                    let taken = kept.data.withUnsafeBytes { bytes -> Int in
                        let slice = bytes.netSlice(skip..<bytes.count)
                        if connection.receiveShutdown { return slice.count }
                        return connection.receiveBuffer.append(slice)
                    }
                    connection.rcvNxt &+= UInt32(truncatingIfNeeded: taken)
                    if !connection.receiveShutdown, taken > 0 { readable = true }
                    if taken < fresh { continue }
                }
                if kept.fin {
                    connection.outOfOrder.removeAll()
                    return true
                }
                progress = true
            }
        }
        return false
    }

    // MARK: Send

    /// Sends what the windows allow: new data, data again after a timeout, the FIN; and an
    /// owed ACK if nothing else carried it. `probe` lets one byte through a zero window.
    func output(_ connection: TCPConnection, probe: Bool = false) {
        switch connection.state {
        case .established, .finWait1, .closeWait, .closing, .lastAck: break
        case .finWait2, .timeWait:
            if connection.ackPending { sendAck(connection) }
            return
        case .synReceived, .closed:
            return
        }
        let now = stack.nowMs
        while true {
            let sent = seqDistance(from: connection.sndUna, to: connection.sndNxt)
            let buffered = connection.sendBuffer.count
            if sent > buffered { break }  // the FIN is out
            let unsent = buffered - sent
            let window = Swift.min(connection.sndWnd, connection.cwnd)
            var usable = window > sent ? window - sent : 0
            if probe, usable == 0, unsent > 0 { usable = 1 }
            let length = Swift.min(unsent, usable, connection.sendMSS)
            let fin = connection.finRequested && sent + length == buffered
            if length == 0 && !fin { break }
            // Sender-side silly window avoidance: no runt while data is in flight.
            if length < connection.sendMSS, length < unsent, sent > 0, !probe { break }
            guard hasTransmitRoom else {
                connection.outputBlocked = true
                break
            }
            var flags = TCPSegmentHeader.flagACK
            if length > 0 && length == unsent { flags |= TCPSegmentHeader.flagPSH }
            if fin { flags |= TCPSegmentHeader.flagFIN }
            let sequence = connection.sndNxt
            if seqLT(sequence, connection.sndMax) {
                stack.counters.tcpRetransmits &+= 1
            } else if connection.rttSequence == nil {
                connection.rttSequence = sequence
                connection.rttStartMs = now
            }
            emit(connection, sequence: sequence, flags: flags, dataOffset: sent, dataLength: length)
            if fin, connection.finSequence == nil {
                connection.finSequence = sequence &+ UInt32(truncatingIfNeeded: length)
            }
            connection.sndNxt &+= UInt32(truncatingIfNeeded: length + (fin ? 1 : 0))
            if seqGT(connection.sndNxt, connection.sndMax) { connection.sndMax = connection.sndNxt }
            if connection.retransmitDeadlineMs == nil {
                connection.retransmitDeadlineMs = now &+ UInt64(connection.rtoMs)
            }
            if probe { break }
        }
        // Persist: a zero window with data waiting and nothing in flight is probed when
        // the timer runs out.
        if connection.retransmitDeadlineMs == nil, connection.sndWnd == 0,
           connection.sendBuffer.count > seqDistance(from: connection.sndUna, to: connection.sndNxt) {
            connection.retransmitDeadlineMs = now &+ UInt64(connection.rtoMs)
        }
        if connection.ackPending { sendAck(connection) }
    }

    /// Sends the first unacknowledged segment again (fast retransmit).
    func retransmitFirst(_ connection: TCPConnection) {
        guard hasTransmitRoom else { return }
        let buffered = connection.sendBuffer.count
        let length = Swift.min(buffered, connection.sendMSS)
        let fin = connection.finSequence != nil && length == buffered
        guard length > 0 || fin else { return }
        var flags = TCPSegmentHeader.flagACK
        if fin { flags |= TCPSegmentHeader.flagFIN }
        stack.counters.tcpRetransmits &+= 1
        emit(connection, sequence: connection.sndUna, flags: flags, dataOffset: 0, dataLength: length)
    }

    /// After the application read: tell the peer about a window that grew by at least
    /// min(MSS, half the buffer) since we last advertised it.
    func windowOpened(_ connection: TCPConnection) {
        switch connection.state {
        case .established, .finWait1, .finWait2: break
        default: return
        }
        let grown = connection.receiveWindow - connection.lastAdvertisedWindow
        guard grown >= Swift.min(TCPLayer.ourMSS, TCPLayer.receiveBufferSize / 2) else { return }
        connection.ackPending = true
        if !connection.deferOutput { output(connection) }
    }

    func sendSynAck(_ connection: TCPConnection) {
        guard hasTransmitRoom else { return }  // the timer sends it again
        emit(connection, sequence: connection.iss,
             flags: TCPSegmentHeader.flagSYN | TCPSegmentHeader.flagACK, dataOffset: 0, dataLength: 0, mssOption: true)
    }

    func sendAck(_ connection: TCPConnection) {
        guard hasTransmitRoom else {
            connection.ackPending = true
            connection.outputBlocked = true
            return
        }
        emit(connection, sequence: connection.sndNxt, flags: TCPSegmentHeader.flagACK, dataOffset: 0, dataLength: 0)
    }

    var hasTransmitRoom: Bool {
        stack.transmitQueue.count + TCPLayer.transmitReserve < stack.transmitQueue.capacity
    }

    /// Builds and queues one segment of `connection`, its data copied from the send buffer.
    func emit(_ connection: TCPConnection, sequence: UInt32, flags: UInt8, dataOffset: Int, dataLength: Int,
              mssOption: Bool = false) {
        let headerLength = TCPSegmentHeader.minimumLength + (mssOption ? 4 : 0)
        let length = headerLength + dataLength
        var frame = stack.makeIPv4Frame(
            destination: connection.remoteAddress, protocolNumber: IPProtocolNumber.tcp, transportLength: length)
        let offset = NetStack.transportOffset
        let window = connection.receiveWindow
        frame.netStoreUInt16(connection.localPort, at: offset)
        frame.netStoreUInt16(connection.remotePort, at: offset + 2)
        frame.netStoreUInt32(sequence, at: offset + 4)
        frame.netStoreUInt32(flags & TCPSegmentHeader.flagACK != 0 ? connection.rcvNxt : 0, at: offset + 8)
        frame[offset + 12] = UInt8(truncatingIfNeeded: headerLength / 4) << 4
        frame[offset + 13] = flags
        frame.netStoreUInt16(UInt16(truncatingIfNeeded: window), at: offset + 14)
        if mssOption {
            frame[offset + 20] = 2
            frame[offset + 21] = 4
            frame.netStoreUInt16(UInt16(TCPLayer.ourMSS), at: offset + 22)
        }
        connection.sendBuffer.copy(offset: dataOffset, length: dataLength, into: &frame, at: offset + headerLength)
        let checksum = frame.netChecksum(
            offset..<(offset + length),
            startingWith: InternetChecksum.pseudoHeader(
                source: stack.config.ip, destination: connection.remoteAddress,
                protocolNumber: IPProtocolNumber.tcp, length: length))
        frame.netStoreUInt16(checksum, at: offset + 16)
        connection.lastAdvertisedWindow = window
        if flags & TCPSegmentHeader.flagACK != 0 { connection.ackPending = false }
        stack.counters.tcpSegmentsOut &+= 1
        _ = stack.sendIPv4Frame(&frame, to: connection.remoteAddress)
    }

    /// The reset for a segment that belongs to no connection (RFC 9293 §3.10.7.1).
    func sendReset(answering header: TCPSegmentHeader, to address: IPv4Address) {
        guard let reset = TCPSegmentHeader.reset(answering: header) else { return }
        var frame = stack.makeIPv4Frame(
            destination: address, protocolNumber: IPProtocolNumber.tcp, transportLength: TCPSegmentHeader.minimumLength)
        reset.write(to: &frame, at: NetStack.transportOffset, source: stack.config.ip, destination: address)
        stack.counters.tcpSegmentsOut &+= 1
        if stack.sendIPv4Frame(&frame, to: address) {
            stack.counters.tcpResetsOut &+= 1
        }
    }

    /// <SEQ=sequence><CTL=RST> to the peer of `connection`.
    func sendReset(sequence: UInt32, to connection: TCPConnection) {
        let reset = TCPSegmentHeader(
            sourcePort: connection.localPort, destinationPort: connection.remotePort, sequenceNumber: sequence,
            acknowledgmentNumber: 0, headerLength: TCPSegmentHeader.minimumLength, flags: TCPSegmentHeader.flagRST,
            window: 0, payloadLength: 0)
        var frame = stack.makeIPv4Frame(
            destination: connection.remoteAddress, protocolNumber: IPProtocolNumber.tcp,
            transportLength: TCPSegmentHeader.minimumLength)
        reset.write(to: &frame, at: NetStack.transportOffset, source: stack.config.ip, destination: connection.remoteAddress)
        stack.counters.tcpSegmentsOut &+= 1
        if stack.sendIPv4Frame(&frame, to: connection.remoteAddress) {
            stack.counters.tcpResetsOut &+= 1
        }
    }

    // MARK: Closing

    func close(_ connection: TCPConnection) {
        switch connection.state {
        case .established: connection.state = .finWait1
        case .closeWait: connection.state = .lastAck
        default: return
        }
        connection.finRequested = true
        connection.receiveShutdown = true
        connection.receiveBuffer.release()
        connection.outOfOrder.removeAll()
        connection.isIdle = false
        connection.deadlineMs = nil
        if !connection.deferOutput { output(connection) }
        updateGauges()
    }

    func abort(_ connection: TCPConnection) {
        guard connection.state != .closed else { return }
        if connection.state != .timeWait {
            sendReset(sequence: connection.sndNxt, to: connection)
        }
        finish(connection, reason: .aborted)
        updateGauges()
    }

    func enterTimeWait(_ connection: TCPConnection) {
        connection.state = .timeWait
        connection.timeWaitDeadlineMs = stack.nowMs &+ TCPLayer.timeWaitMs
        connection.retransmitDeadlineMs = nil
        connection.outputBlocked = false
        releaseMemory(connection)
        notifyClosed(connection, reason: .closed)
    }

    /// The connection is over: tell the application (if it ever had it) and reclaim it.
    func finish(_ connection: TCPConnection, reason: TCPCloseReason) {
        let wasAccepted = connection.state != .synReceived && connection.state != .timeWait
        connection.state = .closed
        if wasAccepted { notifyClosed(connection, reason: reason) }
        reclaim(connection)
    }

    func notifyClosed(_ connection: TCPConnection, reason: TCPCloseReason) {
        let handler = connection.onClosed
        connection.onReadable = nil
        connection.onWritable = nil
        connection.onClosed = nil
        handler?(connection, reason)
    }

    func reclaim(_ connection: TCPConnection) {
        connection.state = .closed
        releaseMemory(connection)
        connection.onReadable = nil
        connection.onWritable = nil
        connection.onClosed = nil
        connection.onDeadline = nil
        connection.layer = nil
        connections.removeAll(where: { $0 === connection })
    }

    /// Reserves the connection's worst case and allocates its buffers; all or nothing.
    func takeMemory(_ connection: TCPConnection) -> Bool {
        let memory = stack.memory
        guard memory.reserve(TCPLayer.connectionMemoryBytes) else { return false }
        connection.reservedBytes = TCPLayer.connectionMemoryBytes
        guard connection.receiveBuffer.allocate(from: memory), connection.sendBuffer.allocate(from: memory) else {
            releaseMemory(connection)
            return false
        }
        return true
    }

    /// Gives back the buffers and the reservation (TIME-WAIT and after need neither).
    func releaseMemory(_ connection: TCPConnection) {
        connection.sendBuffer.release()
        connection.receiveBuffer.release()
        connection.outOfOrder.removeAll()
        if connection.reservedBytes > 0 {
            stack.memory.release(connection.reservedBytes)
            connection.reservedBytes = 0
        }
    }

    // MARK: Timers

    func poll(nowMs now: UInt64) {
        // A snapshot: connections may be reclaimed during the loop.
        let snapshot = connections
        for connection in snapshot where connection.state != .closed {
            pollConnection(connection, now: now)
        }
        updateGauges()
    }

    @inline(never)
    func pollConnection(_ connection: TCPConnection, now: UInt64) {
        if connection.state == .timeWait {
            if now >= connection.timeWaitDeadlineMs { reclaim(connection) }
            return
        }
        if now &- connection.lastActivityMs >= connection.idleTimeoutMs, now >= connection.lastActivityMs {
            giveUp(connection)
            return
        }
        if let deadline = connection.deadlineMs, now >= deadline {
            connection.deadlineMs = nil
            connection.onDeadline?(connection)
            if connection.state == .closed { return }
        }
        if let deadline = connection.retransmitDeadlineMs, now >= deadline {
            timeout(connection, now: now)
            if connection.state == .closed { return }
        }
        if connection.outputBlocked, hasTransmitRoom {
            connection.outputBlocked = false
            output(connection)
        }
    }

    /// The retransmission timer ran out (RFC 6298 §5.4-5.6).
    func timeout(_ connection: TCPConnection, now: UInt64) {
        connection.retransmitDeadlineMs = nil
        if connection.state == .synReceived {
            guard connection.consecutiveTimeouts < TCPLayer.maxSynAckRetransmits else {
                stack.counters.tcpConnectionsTimedOut &+= 1
                finish(connection, reason: .timedOut)
                return
            }
            connection.consecutiveTimeouts += 1
            stack.counters.tcpTimeouts &+= 1
            stack.counters.tcpRetransmits &+= 1
            connection.rtoMs = Swift.min(connection.rtoMs * 2, TCPLayer.maxRTOMs)
            connection.rttSequence = nil
            sendSynAck(connection)
            connection.retransmitDeadlineMs = now &+ UInt64(connection.rtoMs)
            return
        }
        guard connection.consecutiveTimeouts < TCPLayer.maxRetransmits else {
            giveUp(connection)
            return
        }
        connection.consecutiveTimeouts += 1
        stack.counters.tcpTimeouts &+= 1
        connection.rtoMs = Swift.min(connection.rtoMs * 2, TCPLayer.maxRTOMs)
        let mss = connection.sendMSS
        let flight = seqDistance(from: connection.sndUna, to: connection.sndMax)
        connection.ssthresh = Swift.max(flight / 2, 2 * mss)
        connection.cwnd = mss
        connection.duplicateAcks = 0
        connection.rttSequence = nil
        connection.sndNxt = connection.sndUna
        output(connection, probe: connection.sndWnd == 0)
        if connection.retransmitDeadlineMs == nil, connection.sndUna != connection.sndMax
            || connection.sendBuffer.count > 0 {
            connection.retransmitDeadlineMs = now &+ UInt64(connection.rtoMs)
        }
    }

    /// The peer is gone: reset (in case it is not) and reclaim.
    func giveUp(_ connection: TCPConnection) {
        stack.counters.tcpConnectionsTimedOut &+= 1
        if connection.state != .synReceived {
            sendReset(sequence: connection.sndNxt, to: connection)
        }
        finish(connection, reason: .timedOut)
    }

    func nextDeadlineMs() -> UInt64? {
        var earliest: UInt64?
        func consider(_ deadline: UInt64) {
            if earliest.map({ deadline < $0 }) ?? true { earliest = deadline }
        }
        let room = hasTransmitRoom
        for connection in connections {
            if connection.state == .timeWait {
                consider(connection.timeWaitDeadlineMs)
                continue
            }
            if let deadline = connection.retransmitDeadlineMs { consider(deadline) }
            if let deadline = connection.deadlineMs { consider(deadline) }
            consider(connection.lastActivityMs &+ connection.idleTimeoutMs)
            if connection.outputBlocked, room { consider(stack.nowMs) }
        }
        return earliest
    }

    func updateGauges() {
        var active: UInt64 = 0
        var timeWait: UInt64 = 0
        for connection in connections {
            if connection.state == .timeWait { timeWait += 1 } else { active += 1 }
        }
        stack.counters.tcpActiveConnections = active
        stack.counters.tcpTimeWaitConnections = timeWait
    }

    // MARK: Helpers

    /// RFC 6528: a 4 µs clock plus a keyed hash of the connection's identity, so ISNs
    /// advance with time and cannot be predicted across connections.
    func makeISN(remote: IPv4Address, remotePort: UInt16, localPort: UInt16) -> UInt32 {
        if let generator = initialSequenceNumber { return generator(remote, remotePort, localPort) }
        var hash = isnSecret ^ (UInt64(remote.value) << 32 | UInt64(remotePort) << 16 | UInt64(localPort))
        hash = (hash ^ (hash >> 30)) &* 0xBF58_476D_1CE4_E5B9
        hash = (hash ^ (hash >> 27)) &* 0x94D0_49BB_1331_11EB
        hash ^= hash >> 31
        return UInt32(truncatingIfNeeded: stack.nowMs &* 250) &+ UInt32(truncatingIfNeeded: hash)
    }

    /// The MSS option (kind 2, length 4) among the options of `segment`, if present and
    /// well formed. Malformed options end the search; nothing here reads past the header.
    static func parseMSSOption(_ segment: UnsafeRawBufferPointer, headerLength: Int) -> Int? {
        var offset = TCPSegmentHeader.minimumLength
        let end = Swift.min(headerLength, segment.count)
        while offset < end {
            let kind = segment[offset]
            if kind == 0 { return nil }
            if kind == 1 {
                offset += 1
                continue
            }
            guard offset + 1 < end else { return nil }
            let length = Int(segment[offset + 1])
            guard length >= 2, offset + length <= end else { return nil }
            if kind == 2, length == 4 {
                let mss = Int(segment.netUInt16(at: offset + 2))
                return mss > 0 ? mss : nil
            }
            offset += length
        }
        return nil
    }
}
