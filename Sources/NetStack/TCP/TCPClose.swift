// Close and timers: orderly close (FIN-WAIT, CLOSING, LAST-ACK), abort, TIME-WAIT, and the
// end of a connection (the application told, the memory given back, the slot reclaimed);
// then the clock — the retransmission timer (RFC 6298 §5), the persist probe, SYN-ACK
// retries, the idle and application deadlines.

extension TCPLayer {
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
    }

    func abort(_ connection: TCPConnection) {
        guard connection.state != .closed else { return }
        if connection.state != .timeWait {
            sendReset(sequence: connection.sndNxt, to: connection)
        }
        finish(connection, reason: .aborted)
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
        if connection.inTable, let index = connections.firstIndex(where: { $0 === connection }) {
            connections.remove(at: index)
        }
        connection.inTable = false
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

    /// Runs every connection's due timers. Before the earliest deadline (`timerFloorMs`)
    /// nothing can be due and the table is not walked: the kernel polls on every pass of
    /// its loop, many times per segment.
    func poll(nowMs now: UInt64) {
        guard now >= timerFloorMs || outputMayBeBlocked else { return }
        // A snapshot: connections may be reclaimed during the loop.
        let snapshot = connections
        for connection in snapshot where connection.state != .closed {
            pollConnection(connection, now: now)
        }
        let timers = scanTimers()
        timerFloorMs = timers.earliest ?? UInt64.max
        outputMayBeBlocked = timers.blocked
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
        connection.congestion.retransmissionTimedOut(flight: seqDistance(from: connection.sndUna, to: connection.sndMax))
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

    /// When `poll` must next run: no later than the earliest timer (it may be earlier, when
    /// the deadline that set the floor was cleared since; that `poll` then finds nothing due
    /// and makes the floor exact again), or now while output is blocked and there is room.
    func nextDeadlineMs() -> UInt64? {
        let floor = timerFloorMs == UInt64.max ? nil : timerFloorMs
        guard outputMayBeBlocked, hasTransmitRoom else { return floor }
        return Swift.min(floor ?? stack.nowMs, stack.nowMs)
    }

    /// The earliest deadline of any connection in the table (nil: none) and whether any has
    /// its output blocked: one walk, after each `poll` that ran timers.
    func scanTimers() -> (earliest: UInt64?, blocked: Bool) {
        var earliest: UInt64?
        var blocked = false
        func consider(_ deadline: UInt64) {
            if earliest.map({ deadline < $0 }) ?? true { earliest = deadline }
        }
        for connection in connections {
            if connection.state == .timeWait {
                consider(connection.timeWaitDeadlineMs)
                continue
            }
            if let deadline = connection.retransmitDeadlineMs { consider(deadline) }
            if let deadline = connection.deadlineMs { consider(deadline) }
            consider(connection.lastActivityMs &+ connection.idleTimeoutMs)
            if connection.outputBlocked { blocked = true }
        }
        return (earliest, blocked)
    }
}
