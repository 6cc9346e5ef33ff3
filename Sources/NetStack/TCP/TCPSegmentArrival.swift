// Segment arrival (RFC 9293 §3.10.7.4, "Otherwise"): for a segment that belongs to a
// connection, in the RFC's order — acceptability (is it in the window?), RST, SYN, ACK
// (what it acknowledges, what the congestion window makes of it, window updates), then the
// text and FIN, with the out-of-order queue that holds segments beyond RCV.NXT until the
// gap before them fills. LISTEN and CLOSED (no connection yet) are TCPLayer.swift's.

extension TCPLayer {
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
            connection.congestion.newDataAcknowledged(acknowledged)
            connection.retransmitDeadlineMs = connection.sndUna == connection.sndMax
                ? nil : now &+ UInt64(connection.rtoMs)
            freed = dataAcknowledged > 0
        } else if ack == connection.sndUna, payloadLength == 0,
                  header.flags & TCPSegmentHeader.flagFIN == 0, window == connection.sndWnd,
                  connection.sndMax != connection.sndUna {
            // RFC 5681 §3.2: the third duplicate ACK means a lost segment; send it now.
            if connection.congestion.duplicateAcknowledged(flight: seqDistance(from: connection.sndUna, to: connection.sndMax)) {
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
}
