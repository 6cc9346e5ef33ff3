// Capture from any QEMU guest's memory (`ringside capture --qmp --memory`): no help from the
// guest, only its rings as GuestSession reads them, sampled at a rate. Between two samples, the
// new used elements of an RX queue (the device wrote a frame) and the new avail entries of a TX
// queue (the driver put a frame out) are the frames that went through; each one's buffer is copied
// out of guest memory and its virtio-net header (virtio 1.2 §5.1.6) split off.
//
// Best effort at the sampling rate, and never silently: a frame is missed, and counted, when
//   lapped   — the index moved by more than the queue size between two samples, or the slots
//              were overwritten while the sample copied them: the sampler never saw them;
//   reused   — its buffer may hold something else by now (see `verdicts`): read through the
//              table as it is now while a later element, or a buffer the device holds now, uses
//              one of its descriptors; memory overlapping a later element's buffer, a buffer of
//              another queue (`sharedAcrossQueues`); not proved untouched by the rings read
//              again after copying (GuestCapture+Recheck.swift); an RX header with num_buffers
//              0. An RX copy whose memory the device holds or was given waits a sample (`confirm`);
//   invalid  — what the ring names makes no sense (id ≥ size, buffer outside guest memory, a
//              chain that does not walk): the guest may write anything into its own memory.
// An RX buffer the device held at the last sample is read through the chain as it was then (the
// driver may have rewritten the descriptor since; the device wrote where the old one pointed),
// unless the ring lapped (its head may have been used in between).
// Memory a driver reused for something that never goes through the ring cannot be seen: that is
// the rest of "best effort". Split rings only: a packed queue is skipped (`packedQueues`).

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
        /// RX: copies whose memory the device held, or was given, when they were made (a driver
        /// that gives the same buffer back, as fixed-buffer drivers do): confirmed at the next
        /// sample unless the device has used one of those buffers since (`confirm`).
        var deferred: [Copied] = []
        /// The queue is a packed ring (VIRTIO_F_RING_PACKED): not captured (see `packedQueues`).
        var packed = false
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

    /// The queues last seen as packed rings (VIRTIO_F_RING_PACKED): this capture reads split
    /// rings only, and skips them (nothing numbered, nothing written) rather than misread them.
    public var packedQueues: [String] { queues.filter { state[$0]?.packed == true } }

    /// A frame copied, before the checks after copying (`GuestCapture+Recheck.swift`).
    struct Copied {
        var frame: GuestCapturedFrame
        var state: QueueState
        var segments: [GuestDescriptor]
        /// The ids of the descriptors read through the table as it was at the sample.
        var tableIds: [UInt16] = []
        /// RX: the heads the device held at the sample whose memory overlaps this copy (nil:
        /// too many to tell, any); then those posted since too. Used by `confirm`.
        var waitingOn: [UInt16]? = []
    }

    /// One queue's copies of a sample, until the read again after every queue's copies.
    struct Pending {
        var state: QueueState
        var ring: GuestRingSnapshot
        var reader: GuestRingReader
        var copies: [Copied]
        var claimed: [GuestDescriptor]
        /// Whether `claimed` holds every buffer the window's elements went through (not when the
        /// window lapped or restarted, or a head came round again: its earlier buffer is gone).
        var complete = false
        /// The heads whose chains were read through the sample's table: posted again since, the
        /// table may already have named their next buffer.
        var tableHeads: Set<UInt16> = []
    }

    /// The frames that went through the captured queues since the last sample, in ring order per
    /// queue. The first sample of a queue (and the first after its rings moved) sets where the
    /// capture starts and gives nothing.
    ///
    /// `final`: the last sample of the capture; copies it would confirm at the next sample
    /// cannot be, and are counted reused.
    public func observe(_ sample: GuestSample, memory: GuestMemory, final: Bool = false) -> [GuestCapturedFrame] {
        var copied: [Copied] = []
        var pending: [Pending] = []
        for q in sample.queues {
            guard let st = state[q.name], let ring = q.ring, ring.unreadable == nil, let device = sample.device(named: q.device) else { continue }
            st.packed = ring.packed != nil
            if st.packed {
                // Not a split ring: nothing here is an index or an element this file understands.
                st.counts.reused &+= UInt64(st.deferred.count)
                st.deferred = []
                st.addresses = nil
                st.position = nil
                continue
            }
            var p = Pending(state: st, ring: ring, reader: device.ringReader, copies: [], claimed: [])
            observe(q.name, ring, device, st, memory, &copied, &p)
            pending.append(p)
        }
        // Every copy is made: what the rings say now proves which ones nobody wrote meanwhile.
        // One queue whose buffers posted since cannot be told leaves every queue's copies
        // unproved: the driver may have given their memory to that queue, and the device written it.
        let posted = pending.map { Self.postedSince($0.ring, reader: $0.reader, memory: memory) }
        // Every copy is checked against the other queues' buffers below: a queue that cannot name
        // them all leaves the other queues' copies unproved.
        let complete = zip(pending, posted).map { p, posted in
            p.complete && posted.map { Set($0.map(\.head)).isDisjoint(with: p.tableHeads) } ?? false
        }
        var claims: [[GuestDescriptor]] = []
        var checked: [(copy: Copied, defer: Bool)] = []
        for (q, (p, posted)) in zip(pending, posted).enumerated() {
            let others = complete.enumerated().allSatisfy { $0.offset == q || $0.element }
            claims.append(p.claimed + (posted ?? []).flatMap(\.segments))
            let postedHeads = Set((posted ?? []).map(\.head))
            var budget = 1 << 20
            for var c in p.copies {
                guard others, let posted, !c.tableIds.contains(where: postedHeads.contains) else { p.state.counts.reused &+= 1; continue }
                let given = Self.overlappingHeads(c.segments, posted, budget: &budget)
                if p.state.direction == .receive {
                    if let given, let held = c.waitingOn { c.waitingOn = held + given } else { c.waitingOn = nil }
                    checked.append((c, !(c.waitingOn?.isEmpty ?? false)))
                } else if given?.isEmpty ?? false {
                    checked.append((c, false))
                } else {
                    p.state.counts.reused &+= 1
                }
            }
        }
        let shared = Self.sharedAcrossQueues(checked.map(\.copy.segments), claims)
        for (i, c) in checked.enumerated() {
            if shared[i] {
                c.copy.state.counts.reused &+= 1
            } else if c.defer {
                c.copy.state.deferred.append(c.copy)
            } else {
                copied.append(c.copy)
            }
        }
        if final {
            for p in pending {
                p.state.counts.reused &+= UInt64(p.state.deferred.count)
                p.state.deferred = []
            }
        }
        var out: [GuestCapturedFrame] = []
        for c in copied {
            c.state.counts.captured &+= 1
            out.append(c.frame)
        }
        return out
    }

    private func observe(_ name: String, _ ring: GuestRingSnapshot, _ device: GuestDeviceInfo, _ st: QueueState,
                         _ memory: GuestMemory, _ out: inout [Copied], _ pending: inout Pending) {
        let n = ring.addresses.size
        // GuestRingReader refuses other sizes; every array below has n entries.
        guard n > 0, ring.usedRing.count == n, ring.availRing.count == n, ring.descriptors.count == n, ring.states.count == n else { return }
        let current = st.direction == .receive ? ring.usedIdx : ring.availIdx
        let heldNow = st.direction == .receive ? Self.heldChains(ring) : []
        defer { if st.direction == .receive { st.held = heldNow } }
        guard st.addresses == ring.addresses, let start = st.position else {
            Self.confirm(st, used: nil, &out)
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
            Self.confirm(st, used: nil, &out)
            st.counts.restarts &+= 1
            st.position = current
            return
        }
        st.position = current
        guard moved > 0 else {
            Self.confirm(st, used: [], &out)
            pending.complete = true
            return
        }
        // The sample copied the index before the ring entries: elements published since may have
        // overwritten the oldest slots of a (nearly) full window while it copied them. The index
        // read again now bounds how many: those count as lapped too.
        let idxAt = (st.direction == .receive ? ring.addresses.used : ring.addresses.avail) + 2
        let since = memory.bytes(guest: idxAt, count: 2).map { Int((UInt16($0[0]) | UInt16($0[1]) << 8) &- current) } ?? n
        let intact = since >= 1 << 15 ? 0 : n - min(n, since)
        var first = start
        pending.complete = moved <= intact
        if moved > intact {
            Self.confirm(st, used: nil, &out)
            let lost = moved - intact
            st.counts.lapped &+= UInt64(lost)
            st.counts.frames &+= UInt64(lost)
            first = current &- UInt16(intact)
            moved = intact
            if moved == 0 { return }
        }
        // Each element's chain: RX, the one the device held at the last sample when this is the
        // first use of its head since then (and nothing was lapped: the head may have been used in
        // between); otherwise the descriptor table as it is now.
        let reader = device.ringReader
        var heads = [Int](repeating: -1, count: moved)
        var chains = [GuestChain?](repeating: nil, count: moved)
        var fromTable = [Bool](repeating: false, count: moved)
        var seenHead = [Bool](repeating: false, count: n)
        for k in 0..<moved {
            let slot = Int(first &+ UInt16(truncatingIfNeeded: k)) & (n - 1)
            let id = st.direction == .receive ? Int(clamping: ring.usedRing[slot].id) : Int(ring.availRing[slot])
            guard id < n else { continue }
            heads[k] = id
            if st.direction == .receive, first == start, !seenHead[id], id < st.held.count, let held = st.held[id] {
                chains[k] = held
            } else {
                chains[k] = reader.walk(head: UInt16(id), table: ring.descriptors, memory: memory)
                fromTable[k] = true
            }
            seenHead[id] = true
        }
        // The heads read through the table (posted again since, the table may already name their
        // next buffer). A head that came round again within the window lost its earlier buffer
        // too, but that is every quiet moment of Linux's TX (it reuses the head it just freed):
        // left to the checks on the queue's own copies, not held against the other queues'.
        for k in 0..<moved where fromTable[k] {
            let id = heads[k]
            guard id >= 0 else { continue }
            pending.tableHeads.insert(UInt16(id))
        }
        Self.confirm(st, used: heads, &out)
        // RX buffers the device holds now were given out after every element of the window. (A TX
        // buffer the device holds is an element of this window or an older one.)
        let verdicts = Self.verdicts(chains, fromTable: fromTable, deviceHeld: heldNow.compactMap { $0 }, queueSize: n)
        let headerBytes = device.netHeaderBytes
        // Frames copied, with the window elements they came from, until the check after copying.
        var copied: [(frame: GuestCapturedFrame, elements: Range<Int>, held: Bool)] = []
        var k = 0
        while k < moved {
            let number = UInt32(truncatingIfNeeded: st.counts.frames)
            st.counts.frames &+= 1
            // RX with MRG_RXBUF: one frame may span several used elements (num_buffers, in the
            // first one's header); they are consecutive and all published at once.
            var pieces: [UInt8] = []
            var total = 0
            var missed: ReasonMissed?
            var heldByDevice = false
            var elements = 1
            var e = 0
            while e < elements {
                let at = k + e
                let slot = Int(first &+ UInt16(truncatingIfNeeded: at)) & (n - 1)
                let usedLength = st.direction == .receive ? ring.usedRing[slot].len : nil
                if let chain = chains[at], chain.problem == nil,
                   let bytes = GuestRingReader.buffer(of: chain, usedLength: usedLength, memory: memory, limit: Self.frameLimit + 64) {
                    if verdicts[at] == .reused {
                        missed = missed ?? .reused
                    } else {
                        if verdicts[at] == .heldByDevice { heldByDevice = true }
                        total += bytes.count
                        if missed == nil { pieces += bytes.prefix(max(0, Self.frameLimit + headerBytes - pieces.count)) }
                    }
                } else {
                    missed = missed ?? .invalid
                }
                if e == 0, st.direction == .receive, headerBytes >= 12, pieces.count >= 12, missed == nil {
                    let numBuffers = Int(pieces[10]) | Int(pieces[11]) << 8
                    // The device writes num_buffers ≥ 1 (virtio 1.2 §5.1.6.4); 0 is not a header
                    // it wrote: the driver has already put something else in that memory.
                    if numBuffers == 0 { missed = .reused }
                    elements = max(1, min(numBuffers, moved - k))
                } else if e == 0, st.direction == .transmit, headerBytes >= 12, pieces.count >= 12, pieces[10] | pieces[11] != 0 {
                    // The driver sets a transmitted header's num_buffers to 0 (§5.1.6.2.1): memory
                    // the driver has reused since for something else.
                    missed = missed ?? .reused
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
            let frame = Array(pieces[headerBytes...])
            copied.append((GuestCapturedFrame(queue: name, head: UInt16(heads[k - elements]), availIdx: ring.availIdx, usedIdx: ring.usedIdx,
                                              header: Array(pieces[..<headerBytes]), frame: frame, originalLength: total - headerBytes,
                                              number: number), (k - elements)..<k, heldByDevice))
        }
        // Checked once every queue's copies are made (GuestCapture+Recheck.swift): what each copy
        // was read through, and RX, the buffers the device held that overlap it.
        let held = heldNow.compactMap { $0 }
        var budget = 1 << 20
        for c in copied {
            let segments = c.elements.flatMap { chains[$0]?.segments ?? [] }
            let tableIds = c.elements.filter { fromTable[$0] }.flatMap { chains[$0]?.ids ?? [] }
            let waiting = c.held ? Self.overlappingHeads(segments, held, budget: &budget) : []
            pending.copies.append(Copied(frame: c.frame, state: st, segments: segments, tableIds: tableIds, waitingOn: waiting))
        }
        // Every buffer this queue named, for the check across queues.
        for c in chains { if let c { pending.claimed += c.segments } }
        for c in held { pending.claimed += c.segments }
    }

    private enum ReasonMissed { case reused, invalid }
}
