// Capture from any QEMU guest's memory (`ringside capture --qmp --memory`): no help from the
// guest, only its rings as GuestSession reads them, sampled at a rate. Between two samples, the
// new used elements of an RX queue (the device wrote a frame) and the new avail entries of a TX
// queue (the driver put a frame out) are the frames that went through; each one's buffer is copied
// out of guest memory and its virtio-net header (virtio 1.2 §5.1.6) split off.
//
// Best effort at the sampling rate, and never silently: a frame is missed, and counted, when
//   lapped   — the index moved by more than the queue size between two samples: the oldest
//              entries were overwritten before the sampler saw them;
//   reused   — its buffer may already hold something else: RX, its head came back in a later used
//              element of the same window, or the driver has given it to the device again (its
//              state is `avail` in this sample) and the sampler did not see the device hold it in
//              the last one; TX, its head was put out again later in the same window;
//   invalid  — what the ring names makes no sense (id ≥ size, buffer outside guest memory, a
//              chain that does not walk): the guest may write anything into its own memory.
// An RX buffer the device held at the last sample is read through the chain as it was then (the
// driver may have rewritten the descriptor since; the device wrote where the old one pointed).
// Nothing can tell whether a driver reused the *memory* of a buffer it had consumed: that is the
// rest of "best effort" (Linux leaves an RX page alone until the socket reader frees the packet,
// and a TX buffer until the device returned it).

import Wire

/// One frame copied out of guest memory.
public struct GuestCapturedFrame: Sendable {
    /// `net0.rx`
    public var queue: String
    public var head: UInt16
    /// The ring's `avail->idx` and `used->idx` in the sample that saw the frame.
    public var availIdx: UInt16
    public var usedIdx: UInt16
    /// The virtio-net header as the buffer held it.
    public var header: [UInt8]
    /// The Ethernet frame (at most `GuestCapture.frameLimit` bytes).
    public var frame: [UInt8]
    /// The frame's bytes before any cut.
    public var originalLength: Int
    /// The frame's number on its queue since the capture began; a number never written is a
    /// frame missed.
    public var number: UInt32
}

/// What a capture saw of one queue.
public struct GuestCaptureCounts: Equatable, Sendable {
    /// Frames numbered (captured or missed).
    public var frames: UInt64 = 0
    public var captured: UInt64 = 0
    public var lapped: UInt64 = 0
    public var reused: UInt64 = 0
    public var invalid: UInt64 = 0
    /// Times the queue's rings moved (a reset, new addresses) or its index went back: counting
    /// starts again from the new position.
    public var restarts: UInt64 = 0

    public var missed: UInt64 { lapped &+ reused &+ invalid }

    /// "3 lapped, 1 reused" (the non-zero reasons), or "".
    public var missedReasons: String {
        [(lapped, "lapped"), (reused, "reused"), (invalid, "invalid")].filter { $0.0 > 0 }.map { "\($0.0) \($0.1)" }
            .joined(separator: ", ")
    }
}

/// Follows the network queues of a guest from sample to sample (see the top of this file).
public final class GuestCapture {
    /// Largest frame kept (an Ethernet frame with GSO can reach 64 KiB; more is cut, with its
    /// original length kept).
    public static let frameLimit = 65_550

    public enum Direction: Sendable { case receive, transmit }

    /// The direction of a virtio-net queue from its any-guest name (`rx`, `tx`, `rx1`, …); nil for
    /// `ctrl` and anything else.
    public static func direction(queueName: String) -> Direction? {
        guard let last = queueName.split(separator: ".").last else { return nil }
        if last.hasPrefix("rx") { return .receive }
        if last.hasPrefix("tx") { return .transmit }
        return nil
    }

    final class QueueState {
        let direction: Direction
        var addresses: GuestQueueAddresses?
        /// The next index to look at: RX the next used element, TX the next avail entry.
        var position: UInt16?
        /// RX: the chain of each head the device held at the last sample (by head; nil: not held).
        var held: [GuestChain?] = []
        var counts = GuestCaptureCounts()

        init(direction: Direction) { self.direction = direction }
    }

    public let queues: [String]
    private var state: [String: QueueState] = [:]

    /// `queues`: any-guest names of virtio-net RX and TX queues (others are ignored).
    public init(queues: [String]) {
        self.queues = queues
        for q in queues { if let d = Self.direction(queueName: q) { state[q] = QueueState(direction: d) } }
    }

    public func counts(_ queue: String) -> GuestCaptureCounts { state[queue]?.counts ?? GuestCaptureCounts() }

    /// The frames that went through the captured queues since the last sample, in ring order per
    /// queue. The first sample of a queue (and the first after its rings moved) sets where the
    /// capture starts and gives nothing.
    public func observe(_ sample: GuestSample, memory: GuestMemory) -> [GuestCapturedFrame] {
        var out: [GuestCapturedFrame] = []
        for q in sample.queues {
            guard let st = state[q.name], let ring = q.ring, ring.unreadable == nil, let device = sample.device(named: q.device) else { continue }
            observe(q.name, ring, device, st, memory, &out)
        }
        return out
    }

    private func observe(_ name: String, _ ring: GuestRingSnapshot, _ device: GuestDeviceInfo, _ st: QueueState,
                         _ memory: GuestMemory, _ out: inout [GuestCapturedFrame]) {
        let n = ring.addresses.size
        // GuestRingReader refuses other sizes; every array below has n entries.
        guard n > 0, ring.usedRing.count == n, ring.availRing.count == n, ring.descriptors.count == n, ring.states.count == n else { return }
        let current = st.direction == .receive ? ring.usedIdx : ring.availIdx
        defer { if st.direction == .receive { st.held = Self.heldChains(ring) } }
        guard st.addresses == ring.addresses, let start = st.position else {
            if st.addresses != nil { st.counts.restarts &+= 1 }
            st.addresses = ring.addresses
            st.position = current
            return
        }
        var moved = Int(current &- start)
        // An index that went back (the driver reset the queue at the same addresses, or wrote
        // nonsense) reads as a huge step forward: no device completes 32768 buffers in one sample
        // period, so start again from here rather than count them.
        if moved >= 1 << 15 {
            st.counts.restarts &+= 1
            st.position = current
            return
        }
        st.position = current
        guard moved > 0 else { return }
        var first = start
        if moved > n {
            let lost = moved - n
            st.counts.lapped &+= UInt64(lost)
            st.counts.frames &+= UInt64(lost)
            first = current &- UInt16(n)
            moved = n
        }
        // The heads in the window, and the last place each appears: an earlier appearance's buffer
        // was given out again after it.
        var heads = [Int](repeating: -1, count: moved)
        var lastSeen = [Int](repeating: -1, count: n)
        for k in 0..<moved {
            let slot = Int(first &+ UInt16(truncatingIfNeeded: k)) & (n - 1)
            let id = st.direction == .receive ? Int(clamping: ring.usedRing[slot].id) : Int(ring.availRing[slot])
            guard id < n else { continue }
            heads[k] = id
            lastSeen[id] = k
        }
        let reader = device.ringReader
        let headerBytes = device.netHeaderBytes
        var seenHead = [Bool](repeating: false, count: n)
        var k = 0
        while k < moved {
            let number = UInt32(truncatingIfNeeded: st.counts.frames)
            st.counts.frames &+= 1
            // RX with MRG_RXBUF: one frame may span several used elements (num_buffers, in the
            // first one's header); they are consecutive and all published at once.
            var pieces: [UInt8] = []
            var total = 0
            var missed: ReasonMissed?
            var elements = 1
            var e = 0
            while e < elements {
                let at = k + e
                let slot = Int(first &+ UInt16(truncatingIfNeeded: at)) & (n - 1)
                switch buffer(at: at, slot: slot, heads: heads, lastSeen: lastSeen, seenHead: &seenHead, ring: ring, st: st,
                              reader: reader, memory: memory) {
                case .success(let bytes):
                    total += bytes.count
                    if missed == nil { pieces += bytes.prefix(max(0, Self.frameLimit + headerBytes - pieces.count)) }
                case .failure(let reason):
                    if missed == nil { missed = reason }
                }
                if e == 0, st.direction == .receive, headerBytes >= 12, pieces.count >= 12, missed == nil {
                    let numBuffers = Int(pieces[10]) | Int(pieces[11]) << 8
                    elements = max(1, min(numBuffers, moved - k))
                }
                e += 1
            }
            k += elements
            switch missed {
            case .reused?: st.counts.reused &+= 1; continue
            case .invalid?: st.counts.invalid &+= 1; continue
            case nil: break
            }
            guard pieces.count >= headerBytes else { st.counts.invalid &+= 1; continue }
            st.counts.captured &+= 1
            let frame = Array(pieces[headerBytes...])
            out.append(GuestCapturedFrame(queue: name, head: UInt16(heads[k - elements]), availIdx: ring.availIdx, usedIdx: ring.usedIdx,
                                          header: Array(pieces[..<headerBytes]), frame: frame, originalLength: total - headerBytes,
                                          number: number))
        }
    }

    private enum ReasonMissed: Error { case reused, invalid }

    /// The bytes of the window's element `at` (in ring slot `slot`), or why they cannot be had.
    private func buffer(at: Int, slot: Int, heads: [Int], lastSeen: [Int], seenHead: inout [Bool], ring: GuestRingSnapshot,
                        st: QueueState, reader: GuestRingReader, memory: GuestMemory) -> Result<[UInt8], ReasonMissed> {
        let head = heads[at]
        guard head >= 0 else { return .failure(.invalid) }
        defer { seenHead[head] = true }
        let chain: GuestChain
        var usedLength: UInt32?
        if st.direction == .receive {
            usedLength = ring.usedRing[slot].len
            if !seenHead[head], head < st.held.count, let held = st.held[head] {
                chain = held   // the buffer the device held at the last sample: where it wrote
            } else if lastSeen[head] == at && ring.states[head] != .avail {
                chain = reader.walk(head: UInt16(head), table: ring.descriptors, memory: memory)
            } else {
                return .failure(.reused)
            }
        } else {
            guard lastSeen[head] == at else { return .failure(.reused) }
            chain = reader.walk(head: UInt16(head), table: ring.descriptors, memory: memory)
        }
        guard chain.problem == nil,
              let bytes = GuestRingReader.buffer(of: chain, usedLength: usedLength, memory: memory, limit: Self.frameLimit + 64)
        else { return .failure(.invalid) }
        return .success(bytes)
    }

    /// The chain of every head in `avail` state (the device holds it), by head.
    static func heldChains(_ ring: GuestRingSnapshot) -> [GuestChain?] {
        var held = [GuestChain?](repeating: nil, count: ring.states.count)
        for c in ring.chains where Int(c.head) < held.count && ring.states[Int(c.head)] == .avail { held[Int(c.head)] = c }
        return held
    }
}
