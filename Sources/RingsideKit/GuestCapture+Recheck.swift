// GuestCapture's check after copying, seqlock-style: the copies of a sample are made from memory
// the driver and the device keep using, so once every queue's copies are made, each queue's rings
// are read again (`postedSince`) and a copy is kept only when that read proves nobody could have
// written its memory before the copy was finished:
//   - every buffer the device could have written since the sample is known by its address: it
//     held it at the sample (the sample's chains) or the driver posted it since (the avail entries
//     between the sample's avail->idx and the one read again, walked through the table read
//     again). A head posted twice since the sample was used and rewritten in between: the first
//     buffer's address is gone, and nothing of that queue is trusted (`nil`);
//   - a copy whose descriptor the driver posted again since (its head is among those entries) may
//     have been read through a rewritten descriptor: missed;
//   - a copy whose memory one of those buffers overlaps: TX, the driver wrote there again;
//     RX, the device writes there if it uses that buffer: the copy waits for the next sample and
//     is kept only if none of those heads has been used by then (`confirm`).
// A read again that keeps moving (avail->idx changed while it was read) or that went a ring or
// more past the sample proves nothing; nor does a queue whose window lapped or restarted, or whose
// table-read heads were posted again since, for the other queues' copies (their memory may have
// gone through it unseen): those copies are missed. Copies held for the next sample are checked
// across queues at their own sample first. Left unseen: a driver
// that rewrote a descriptor, then stalled before publishing it in the avail ring for longer than
// the whole copy (its vCPU descheduled between the two stores), and memory reused outside the
// rings.

extension GuestCapture {
    /// The chains of the buffers the driver put in the avail ring since `ring` was read, from a
    /// read of the rings that did not move while it was read, or nil when that cannot be told
    /// (more than a ring's worth, a head posted twice, a chain that does not walk, the rings
    /// unreadable or moving at every try).
    static func postedSince(_ ring: GuestRingSnapshot, reader: GuestRingReader, memory: GuestMemory) -> [GuestChain]? {
        let a = ring.addresses, n = a.size
        for _ in 0..<4 {
            guard let now = memory.bytes(guest: a.avail + 2, count: 2) else { return nil }
            if UInt16(now[0]) | UInt16(now[1]) << 8 == ring.availIdx { return [] }
            let fresh = reader.read(memory, a)
            guard fresh.unreadable == nil, fresh.availRing.count == n, fresh.descriptors.count == n else { return nil }
            if fresh.moving { continue }
            let posted = Int(fresh.availIdx &- ring.availIdx)
            guard posted <= n else { return nil }
            var seen = [Bool](repeating: false, count: n)
            var out: [GuestChain] = []
            for k in 0..<posted {
                let head = fresh.availRing[Int(ring.availIdx &+ UInt16(truncatingIfNeeded: k)) & (n - 1)]
                guard Int(head) < n else { continue }   // names no buffer: the device takes nothing
                if seen[Int(head)] { return nil }
                seen[Int(head)] = true
                let chain = reader.walk(head: head, table: fresh.descriptors, memory: memory)
                if chain.problem != nil { return nil }
                out.append(chain)
            }
            return out
        }
        return nil
    }

    /// The heads of `chains` whose memory overlaps `segments`; nil past a budget (a guest naming
    /// nonsense that many times: treat every head as overlapping).
    static func overlappingHeads(_ segments: [GuestDescriptor], _ chains: [GuestChain], budget: inout Int) -> [UInt16]? {
        var out: [UInt16] = []
        for c in chains {
            budget -= segments.count * max(1, c.segments.count)
            if budget < 0 { return nil }
            if overlaps(segments, c.segments) { out.append(c.head) }
        }
        return out
    }

    /// RX copies held back at the last sample: out with those none of whose heads (`waitingOn`;
    /// nil: any head) the device has used since (`used`: the heads of the used elements since the
    /// last sample; nil: unknown); otherwise it may have written over them — reused.
    static func confirm(_ st: QueueState, used: [Int]?, _ out: inout [Copied]) {
        for c in st.deferred {
            let clear: Bool
            if let used {
                if let waiting = c.waitingOn { clear = !used.contains { $0 < 0 || waiting.contains(UInt16($0)) } } else { clear = used.isEmpty }
            } else {
                clear = false
            }
            if clear { out.append(c) } else { st.counts.reused &+= 1 }
        }
        st.deferred = []
    }

    /// Whether any of `a` shares a byte with any of `b` (a few segments each: a plain loop).
    static func overlaps(_ a: [GuestDescriptor], _ b: [GuestDescriptor]) -> Bool {
        for x in a where x.len > 0 {
            let xEnd = x.addr.addingReportingOverflow(UInt64(x.len))
            for y in b where y.len > 0 {
                let yEnd = y.addr.addingReportingOverflow(UInt64(y.len))
                if (yEnd.overflow || x.addr < yEnd.partialValue) && (xEnd.overflow || y.addr < xEnd.partialValue) { return true }
            }
        }
        return false
    }

    /// Which copies share memory with a buffer of another queue (`claims[q]`: every buffer queue q
    /// named this sample, or posted since): the driver reused memory between its queues (Linux: a
    /// freed TX packet's page becomes an RX page), and the copy may hold the other queue's bytes.
    /// A run of overlapping segments counts as one; past 64 Ki segments (only a guest writing
    /// nonsense names that many) every copy counts as shared.
    static func sharedAcrossQueues(_ copies: [[GuestDescriptor]], _ claims: [[GuestDescriptor]]) -> [Bool] {
        var out = [Bool](repeating: false, count: copies.count)
        guard claims.count > 1, !copies.isEmpty else { return out }
        // (start, end, queue, copy index or -1); the copies' own segments are among their queue's claims.
        var segments: [(start: UInt64, end: UInt64, queue: Int, copy: Int)] = []
        let budget = 1 << 16
        func add(_ d: GuestDescriptor, _ queue: Int, _ copy: Int) -> Bool {
            guard d.len > 0 else { return true }
            guard segments.count < budget else { return false }
            let (end, overflow) = d.addr.addingReportingOverflow(UInt64(d.len))
            segments.append((d.addr, overflow ? .max : end, queue, copy))
            return true
        }
        for (queue, claimed) in claims.enumerated() {
            for d in claimed where !add(d, queue, -1) { return [Bool](repeating: true, count: copies.count) }
        }
        for (i, segs) in copies.enumerated() {
            for d in segs where !add(d, -1, i) { return [Bool](repeating: true, count: copies.count) }
        }
        segments.sort { $0.start < $1.start }
        var i = 0
        while i < segments.count {
            var j = i, end = segments[i].end
            while j + 1 < segments.count && segments[j + 1].start < end {
                j += 1
                end = max(end, segments[j].end)
            }
            let queues = Set(segments[i...j].map(\.queue).filter { $0 >= 0 })
            if queues.count > 1 { for s in segments[i...j] where s.copy >= 0 { out[s.copy] = true } }
            i = j + 1
        }
        return out
    }
}
