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
//
// The layer in files, along RFC 9293 §3.10's seams:
//   TCPLayer.swift             the connection table: listeners, demultiplexing, passive
//                              opens (LISTEN, §3.10.7.2), room for new connections
//   TCPSegmentArrival.swift    a connection's segments (§3.10.7.4): acceptability, RST,
//                              SYN, ACK, text and FIN, the out-of-order queue
//   TCPOutput.swift            what is sent and when; every segment built (resets too)
//   TCPClose.swift             close, abort, TIME-WAIT, the end of a connection; timers
//   TCPCongestionControl.swift cwnd/ssthresh (RFC 5681), a value with its own tests
//   TCPSegmentHeader.swift     the header and MSS option, parsed and written
//   NetStackTCP.swift          what the stack does for TCP with or without this layer:
//                              take a segment in, answer a stray one with a reset

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
    /// Transmit-queue slots TCP leaves free for ARP and ICMP.
    static let transmitReserve = 4

    public let stack: NetStack
    /// Connections the table holds at most (≤ `connectionTableLimit`).
    public var maxConnections = TCPLayer.connectionTableLimit {
        didSet { maxConnections = Swift.min(Swift.max(maxConnections, 1), TCPLayer.connectionTableLimit) }
    }
    /// Connections (not counting TIME-WAIT) one remote address may hold: three quarters of
    /// the table, so one address cannot take every slot. Under QEMU user networking every
    /// host client arrives from the gateway's address, so the cap cannot be much lower.
    public var maxConnectionsPerSource: Int { Swift.max(1, maxConnections - maxConnections / 4) }
    public internal(set) var connections: [TCPConnection] = []
    /// No timer of any connection in the table falls before this (UInt64.max: none): a lower
    /// bound, exact after each full `poll`, lowered whenever a connection sets a deadline
    /// (TCPConnection's `didSet`s call `timerSet`) and left as it is when one is cleared or
    /// a connection goes. `poll` walks the table only once it has passed, so a segment costs
    /// no walk of the table (TCPClose.swift).
    var timerFloorMs = UInt64.max
    /// Set when a connection's output is blocked on a full transmit queue; cleared by a full
    /// `poll` that finds none blocked. While set, every `poll` walks the table.
    var outputMayBeBlocked = false
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
    public var activeConnectionCount: Int { Int(stack.counters.tcpActiveConnections) }

    // MARK: Receive

    func receive(_ info: IPv4PacketInfo, _ segment: UnsafeRawBufferPointer) {
        guard let header = stack.acceptTCPSegment(info, segment) else { return }
        let payload = segment.netSlice(header.headerLength..<segment.count)
        // A 4-tuple is in the table at most once; searching from the newest end finds the
        // connections still talking before the TIME-WAIT ones that fill a busy table.
        if let connection = connections.last(where: {
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
            stack.refuseTCP(header, from: info.source)
            return
        }
        if flags & TCPSegmentHeader.flagACK != 0 {
            stack.refuseTCP(header, from: info.source)
            return
        }
        guard flags & TCPSegmentHeader.flagSYN != 0 else { return }
        var census = SYNCensus(table: connections, listenerPort: listener.port, source: info.source)
        // The backlog: a SYN flood replaces its own half-open entries, oldest first, and
        // a real client's handshake completes within a round trip of its SYN.
        if census.halfOpen >= listener.backlog, let oldestHalfOpen = census.oldestHalfOpen {
            stack.drop(.tcpBacklogFull)
            if oldestHalfOpen.remoteAddress == info.source { census.fromSource -= 1 }
            evict(oldestHalfOpen)
        }
        guard admitSource(info.source, holding: census.fromSource) else {
            stack.counters.tcpRefusedPerSource &+= 1
            stack.refuseTCP(header, from: info.source)
            return
        }
        // Evictions so far took no TIME-WAIT entry: the census's oldest is still there.
        guard makeRoom(oldestTimeWait: census.oldestTimeWait) else {
            stack.counters.tcpRefusedFull &+= 1
            stack.refuseTCP(header, from: info.source)
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
        let peerMSS = TCPOptions.parse(segment, headerLength: header.headerLength).mss.map { Int($0) } ?? 536
        connection.congestion = TCPCongestionControl(mss: Swift.max(64, Swift.min(peerMSS, TCPLayer.ourMSS)))
        connection.lastActivityMs = now
        connection.rttSequence = iss
        connection.rttStartMs = now
        connection.retransmitDeadlineMs = now &+ UInt64(connection.rtoMs)
        admit(connection)
        // Data in the SYN is not kept: the peer sends it again once we acknowledge only the SYN.
        sendSynAck(connection)
    }

    /// A free slot in the table. When it is full, one connection goes, the first found of:
    /// the oldest TIME-WAIT (it needs nothing more from anyone), the oldest half-open (most
    /// likely a flood's), the oldest closing (the application is done with it), the one
    /// idle longest (`isIdle`: a keep-alive waiting for a request). False if none.
    /// `oldestTimeWait` is the table's oldest TIME-WAIT connection, from the SYN's census
    /// (walked for again should an application's close handler have ended it meanwhile).
    func makeRoom(oldestTimeWait census: TCPConnection?) -> Bool {
        guard connections.count >= maxConnections else { return true }
        var oldestTimeWait = census
        if let census, !(census.inTable && census.state == .timeWait) {
            oldestTimeWait = oldest(where: { $0.state == .timeWait }, age: { $0.timeWaitDeadlineMs })
        }
        if let victim = oldestTimeWait
            ?? oldest(where: { $0.state == .synReceived }, age: { $0.createdMs })
            ?? oldest(where: { $0.isClosing }, age: { $0.lastActivityMs })
            ?? oldest(where: { $0.isEvictableIdle }, age: { $0.lastActivityMs }) {
            evict(victim)
        }
        return connections.count < maxConnections
    }

    /// Whether `source`, which `holding` connections (not TIME-WAIT) in the table, may open
    /// one more; at its cap, its own longest-idle connection makes room if it has one.
    func admitSource(_ source: IPv4Address, holding count: Int) -> Bool {
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

    /// What one SYN needs to know of the table, in one walk rather than one per question.
    struct SYNCensus {
        /// Half-open connections of the SYN's listener, and the oldest of them.
        var halfOpen = 0
        var oldestHalfOpen: TCPConnection?
        /// Connections (not TIME-WAIT) of the SYN's source address.
        var fromSource = 0
        /// The TIME-WAIT connection that ends first (the first found of equals, as `oldest`).
        var oldestTimeWait: TCPConnection?

        init(table: [TCPConnection], listenerPort: UInt16, source: IPv4Address) {
            // Indices into the table's buffer, not references, inside the loop: a reference kept
            // across iterations made every entry's visit a retain and a release.
            var oldestTimeWaitIndex = -1, oldestHalfOpenIndex = -1
            var halfOpen = 0, fromSource = 0
            table.withUnsafeBufferPointer { entries in
                for index in 0..<entries.count {
                    let state = entries[index].state
                    if state == .timeWait {
                        if oldestTimeWaitIndex < 0
                            || entries[index].timeWaitDeadlineMs < entries[oldestTimeWaitIndex].timeWaitDeadlineMs {
                            oldestTimeWaitIndex = index
                        }
                        continue
                    }
                    if entries[index].remoteAddress == source { fromSource += 1 }
                    if state == .synReceived, entries[index].listenerPort == listenerPort {
                        halfOpen += 1
                        if oldestHalfOpenIndex < 0 || entries[index].createdMs < entries[oldestHalfOpenIndex].createdMs {
                            oldestHalfOpenIndex = index
                        }
                    }
                }
            }
            self.halfOpen = halfOpen
            self.fromSource = fromSource
            if oldestTimeWaitIndex >= 0 { oldestTimeWait = table[oldestTimeWaitIndex] }
            if oldestHalfOpenIndex >= 0 { oldestHalfOpen = table[oldestHalfOpenIndex] }
        }
    }

    // MARK: Gauges and timers, kept as they change

    /// Puts `connection` in the table; from here to `reclaim` its state counts in the gauges.
    func admit(_ connection: TCPConnection) {
        connections.append(connection)
        connection.inTable = true
        countInGauges(connection.state, adding: true)
    }

    /// A connection in the table changed state (its `didSet`): the gauges follow.
    func stateChanged(from old: TCPState, to new: TCPState) {
        countInGauges(old, adding: false)
        countInGauges(new, adding: true)
    }

    /// `ringside_tcp_active_connections` counts every state in the table but TIME-WAIT and
    /// CLOSED (a closed connection is on its way out: `finish` then `reclaim`).
    func countInGauges(_ state: TCPState, adding: Bool) {
        switch state {
        case .closed:
            return
        case .timeWait:
            if adding { stack.counters.tcpTimeWaitConnections &+= 1 } else { stack.counters.tcpTimeWaitConnections &-= 1 }
        default:
            if adding { stack.counters.tcpActiveConnections &+= 1 } else { stack.counters.tcpActiveConnections &-= 1 }
        }
    }

    /// A connection set a deadline: `poll` must not sleep past it.
    func timerSet(_ deadlineMs: UInt64) {
        if deadlineMs < timerFloorMs { timerFloorMs = deadlineMs }
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
}
