// Output: what a connection sends and when (RFC 9293 §3.8.6.2.1 sender-side SWS avoidance,
// RFC 5681's windows through TCPCongestionControl), and the segments themselves: each is
// built around one TCPSegmentHeader (`emit`), resets included.

extension TCPLayer {
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
            let window = connection.congestion.sendWindow(peerWindow: connection.sndWnd)
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
        let window = connection.receiveWindow
        let options = TCPOptions(mss: mssOption ? UInt16(TCPLayer.ourMSS) : nil)
        let header = TCPSegmentHeader(
            sourcePort: connection.localPort, destinationPort: connection.remotePort, sequenceNumber: sequence,
            acknowledgmentNumber: flags & TCPSegmentHeader.flagACK != 0 ? connection.rcvNxt : 0,
            headerLength: TCPSegmentHeader.minimumLength + options.length, flags: flags,
            window: UInt16(truncatingIfNeeded: window), payloadLength: dataLength)
        var frame = stack.makeIPv4Frame(
            destination: connection.remoteAddress, protocolNumber: IPProtocolNumber.tcp,
            transportLength: header.headerLength + dataLength)
        let offset = NetStack.transportOffset
        connection.sendBuffer.copy(offset: dataOffset, length: dataLength, into: &frame, at: offset + header.headerLength)
        header.write(to: &frame, at: offset, source: stack.config.ip, destination: connection.remoteAddress,
                     options: options)
        connection.lastAdvertisedWindow = window
        if flags & TCPSegmentHeader.flagACK != 0 { connection.ackPending = false }
        stack.counters.tcpSegmentsOut &+= 1
        _ = stack.sendIPv4Frame(&frame, to: connection.remoteAddress)
    }

    /// <SEQ=sequence><CTL=RST> to the peer of `connection`.
    func sendReset(sequence: UInt32, to connection: TCPConnection) {
        stack.sendTCPReset(
            TCPSegmentHeader(
                sourcePort: connection.localPort, destinationPort: connection.remotePort, sequenceNumber: sequence,
                acknowledgmentNumber: 0, headerLength: TCPSegmentHeader.minimumLength, flags: TCPSegmentHeader.flagRST,
                window: 0, payloadLength: 0),
            to: connection.remoteAddress)
    }
}
