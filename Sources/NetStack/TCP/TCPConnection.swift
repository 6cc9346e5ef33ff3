// One TCP connection: its state (RFC 9293 §3.3.2), the send and receive sequence variables
// (§3.3.1), its buffers, its retransmission timer (RFC 6298) and its congestion window
// (RFC 5681, simplified: TCPCongestionControl). The protocol logic that moves it between
// states lives in TCPLayer and its extensions; what an application may call is at the
// bottom of this file.
//
// Memory: the receive buffer holds at most `TCPLayer.receiveBufferSize` (8 KiB) and the
// send buffer `TCPLayer.sendBufferSize` (16 KiB); out-of-order data adds at most
// `TCPLayer.outOfOrderLimit` segments, each inside the receive window. The worst case of
// all three (`TCPLayer.connectionMemoryBytes`) is reserved from the stack's NetMemory when
// the handshake completes, the buffers are allocated then, and both go back when the
// connection closes or enters TIME-WAIT. A half-open or TIME-WAIT connection holds only
// this object.

/// The states a passively opened connection goes through. LISTEN is the listener itself
/// and there is no SYN-SENT: this TCP only accepts connections.
public enum TCPState: UInt8, Sendable {
    case synReceived
    case established
    case finWait1
    case finWait2
    case closeWait
    case closing
    case lastAck
    case timeWait
    /// Gone: reclaimed by the layer. Calls on the connection do nothing.
    case closed

    public var name: StaticString {
        switch self {
        case .synReceived: "SYN-RECEIVED"
        case .established: "ESTABLISHED"
        case .finWait1: "FIN-WAIT-1"
        case .finWait2: "FIN-WAIT-2"
        case .closeWait: "CLOSE-WAIT"
        case .closing: "CLOSING"
        case .lastAck: "LAST-ACK"
        case .timeWait: "TIME-WAIT"
        case .closed: "CLOSED"
        }
    }
}

/// Why a connection's `onClosed` ran.
public enum TCPCloseReason: Equatable, Sendable {
    /// Both FINs exchanged (or ours acknowledged and TIME-WAIT entered).
    case closed
    /// The peer reset the connection.
    case reset
    /// Retransmission limit or idle timeout: the peer vanished. A reset was sent.
    case timedOut
    /// The application called `abort()`.
    case aborted
    /// Reset by the layer to make room for a new connection (it was idle or closing).
    case evicted
}

/// A segment that arrived beyond RCV.NXT, kept until the gap before it fills.
struct TCPOutOfOrderSegment {
    var sequence: UInt32
    var data: [UInt8]
    var fin: Bool
}

public final class TCPConnection {
    public let localPort: UInt16
    public let remoteAddress: IPv4Address
    public let remotePort: UInt16
    /// Every change while the connection is in the layer's table moves the layer's running
    /// gauges (active / TIME-WAIT), so they never need a walk of the table.
    public internal(set) var state: TCPState = .synReceived {
        didSet { if inTable, state != oldValue { layer?.stateChanged(from: oldValue, to: state) } }
    }
    /// Between the layer's `admit` and `reclaim`: counted in its gauges.
    var inTable = false

    // Send sequence variables (RFC 9293 §3.3.1). SND.MAX is the highest sequence number
    // ever sent: after a timeout SND.NXT goes back to SND.UNA (go-back-N) while ACKs up to
    // SND.MAX stay acceptable.
    var iss: UInt32 = 0
    var sndUna: UInt32 = 0
    var sndNxt: UInt32 = 0
    var sndMax: UInt32 = 0
    var sndWnd: Int = 0
    var sndWl1: UInt32 = 0
    var sndWl2: UInt32 = 0
    /// Bytes per segment we send: the peer's MSS option (536 without one, RFC 9293
    /// §3.7.1), at most ours. Set with the congestion state when the SYN arrives.
    var sendMSS: Int { congestion.mss }

    // Receive sequence variables.
    var irs: UInt32 = 0
    var rcvNxt: UInt32 = 0
    var lastAdvertisedWindow = 0

    var sendBuffer = TCPByteRing(capacity: TCPLayer.sendBufferSize)
    var receiveBuffer = TCPByteRing(capacity: TCPLayer.receiveBufferSize)
    var outOfOrder: [TCPOutOfOrderSegment] = []

    /// The application closed: a FIN follows the buffered data.
    var finRequested = false
    /// The FIN's sequence number, once it has been sent.
    var finSequence: UInt32?
    /// The application no longer reads: arriving data is acknowledged and discarded
    /// (a "lingering close", so the peer sees our response and FIN, not a reset).
    var receiveShutdown = false
    public internal(set) var peerClosed = false

    // Retransmission timer (RFC 6298), in units of 1/8 ms for SRTT and RTTVAR.
    var srtt8 = 0
    var rttvar8 = 0
    var hasRTTSample = false
    var rtoMs = TCPLayer.initialRTOMs
    /// The segment being timed (first sequence number) and when it left; nil when none is.
    var rttSequence: UInt32?
    var rttStartMs: UInt64 = 0
    var retransmitDeadlineMs: UInt64? {
        didSet { if let retransmitDeadlineMs { layer?.timerSet(retransmitDeadlineMs) } }
    }
    /// Timeouts since data was last acknowledged; the connection is dropped at the limit.
    var consecutiveTimeouts = 0

    /// Congestion control (RFC 5681): slow start, congestion avoidance, fast retransmit.
    var congestion = TCPCongestionControl(mss: 536)

    var timeWaitDeadlineMs: UInt64 = 0 {
        didSet { layer?.timerSet(timeWaitDeadlineMs) }
    }
    /// When the peer last sent an acceptable segment (unacceptable ones refresh nothing).
    var lastActivityMs: UInt64 = 0 {
        didSet { layer?.timerSet(lastActivityMs &+ idleTimeoutMs) }
    }
    /// When the connection was created (its SYN arrived).
    var createdMs: UInt64 = 0
    /// Bytes reserved from the stack's NetMemory (0 before ESTABLISHED and after the end).
    var reservedBytes = 0
    /// With nothing heard from the peer for this long, the connection is reset and
    /// reclaimed (this TCP sends no keepalives). Applications may shorten it.
    public var idleTimeoutMs: UInt64 = TCPLayer.defaultIdleTimeoutMs {
        didSet { layer?.timerSet(lastActivityMs &+ idleTimeoutMs) }
    }

    /// An ACK is owed; sent with the next segment or on its own at the end of the event.
    var ackPending = false
    /// Output stopped because the stack's transmit queue was full; the next poll resumes.
    var outputBlocked = false {
        didSet { if outputBlocked { layer?.outputMayBeBlocked = true } }
    }
    /// Inside the layer's processing of an event: sends are batched until it ends.
    var deferOutput = false
    let listenerPort: UInt16
    var layer: TCPLayer?

    /// The application has nothing in progress here (an idle keep-alive connection): when
    /// the table is full, an idle connection may be reset to make room for a new one.
    public var isIdle = false
    /// An application deadline: when it passes, `onDeadline` is called once (and the
    /// deadline cleared). HTTP uses it to bound how long a request may take to arrive.
    public var deadlineMs: UInt64? {
        didSet { if let deadlineMs { layer?.timerSet(deadlineMs) } }
    }
    public var onDeadline: ((TCPConnection) -> Void)?

    /// Data (or the peer's FIN) has arrived: read it with `read(into:maxLength:)`.
    public var onReadable: ((TCPConnection) -> Void)?
    /// Send space was freed by an acknowledgment.
    public var onWritable: ((TCPConnection) -> Void)?
    /// The connection is finished with; it was reclaimed (or sits in TIME-WAIT, which
    /// needs nothing from the application).
    public var onClosed: ((TCPConnection, TCPCloseReason) -> Void)?

    init(localPort: UInt16, remoteAddress: IPv4Address, remotePort: UInt16, layer: TCPLayer) {
        self.localPort = localPort
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.listenerPort = localPort
        self.layer = layer
    }

    deinit {
        sendBuffer.release()
        receiveBuffer.release()
    }

    func matches(localPort: UInt16, remoteAddress: IPv4Address, remotePort: UInt16) -> Bool {
        self.localPort == localPort && self.remotePort == remotePort && self.remoteAddress == remoteAddress
    }

    /// RCV.WND: free receive space (all of it once the application stopped reading), at
    /// most 65535 (no window scaling).
    var receiveWindow: Int {
        let free = receiveShutdown ? receiveBuffer.capacity : receiveBuffer.freeSpace
        return Swift.min(free, 65_535)
    }

    /// Our FIN has been sent and acknowledged.
    var finAcknowledged: Bool {
        guard let finSequence else { return false }
        return seqGT(sndUna, finSequence)
    }

    /// Past ESTABLISHED on the way out: our FIN is queued or sent.
    var isClosing: Bool {
        switch state {
        case .finWait1, .finWait2, .closing, .lastAck: true
        default: false
        }
    }

    /// Idle by the application's word and by TCP's: nothing unread, nothing unsent or in flight.
    var isEvictableIdle: Bool {
        isIdle && (state == .established || state == .closeWait) && receiveBuffer.isEmpty
            && sendBuffer.isEmpty && sndUna == sndMax
    }

    /// Sequence space sent and not yet acknowledged.
    var bytesInFlight: Int { seqDistance(from: sndUna, to: sndNxt) }

    /// RFC 6298 §2: fold one round-trip measurement into SRTT/RTTVAR and recompute the RTO.
    func addRTTSample(_ sampleMs: Int) {
        let sample8 = Swift.max(sampleMs, 0) * 8
        if !hasRTTSample {
            srtt8 = sample8
            rttvar8 = sample8 / 2
            hasRTTSample = true
        } else {
            let delta = srtt8 > sample8 ? srtt8 - sample8 : sample8 - srtt8
            rttvar8 = (3 * rttvar8 + delta) / 4
            srtt8 = (7 * srtt8 + sample8) / 8
        }
        // RTO = SRTT + max(G, 4·RTTVAR) with a 1 ms clock granularity G, clamped.
        let rto = (srtt8 + Swift.max(8, 4 * rttvar8)) / 8
        rtoMs = Swift.min(Swift.max(rto, TCPLayer.minRTOMs), TCPLayer.maxRTOMs)
    }

    /// The smoothed round-trip time in ms (0 before the first sample).
    public var smoothedRTTMs: Int { srtt8 / 8 }
    public var retransmissionTimeoutMs: Int { rtoMs }

    // MARK: Application interface

    /// Received bytes waiting to be read.
    public var bytesAvailable: Int { receiveBuffer.count }

    /// Moves up to `maxLength` received bytes to the end of `destination`; returns how many.
    /// Reading opens the receive window again (a window update goes out when it has grown
    /// by enough to be worth one, RFC 9293 §3.8.6.2.2).
    @discardableResult
    public func read(into destination: inout [UInt8], maxLength: Int) -> Int {
        guard state != .closed else { return 0 }
        let count = receiveBuffer.read(into: &destination, maxLength: maxLength)
        if count > 0 { layer?.windowOpened(self) }
        return count
    }

    /// Fills the front of `destination` with received bytes; returns how many.
    @discardableResult
    public func read(into destination: UnsafeMutableRawBufferPointer) -> Int {
        guard state != .closed, let base = destination.baseAddress else { return 0 }
        let count = receiveBuffer.read(to: base, maxLength: destination.count)
        if count > 0 { layer?.windowOpened(self) }
        return count
    }

    /// Whether `send` accepts data: not after `close`, nor before or after the connection.
    public var canSend: Bool { (state == .established || state == .closeWait) && !finRequested }

    /// How many bytes `send` would take now.
    public var sendSpace: Int { canSend ? sendBuffer.freeSpace : 0 }

    /// Queues as much of `bytes` as fits in the send buffer and returns how much; the rest
    /// waits for `onWritable`.
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard canSend else { return 0 }
        let count = sendBuffer.append(bytes)
        if count > 0, !deferOutput { layer?.output(self) }
        return count
    }

    @discardableResult
    public func send(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { send($0) }
    }

    /// An orderly close: the buffered data goes, then a FIN. Further input is discarded.
    public func close() { layer?.close(self) }

    /// Resets the connection at once and reclaims it.
    public func abort() { layer?.abort(self) }
}
