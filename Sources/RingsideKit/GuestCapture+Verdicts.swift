// GuestCapture's judgement of a sample's window before copying: which elements' buffers may
// already hold something else (see the top of GuestCapture.swift).

extension GuestCapture {
    enum Verdict { case fresh, reused, heldByDevice }

    /// Whether each element's buffer may hold something else by now (`reused`): a chain read from
    /// the table as it is now whose descriptors a later element, or a buffer the device holds now,
    /// also uses (the driver rewrote them since); a chain whose memory overlaps a later element's
    /// (the driver gave that memory out again and the device used it). One whose memory overlaps
    /// only a buffer the device holds now is `heldByDevice`: the device has not written it unless
    /// it uses it (see `confirm`). Overlaps are found by sorting the segments, and a run of
    /// overlapping segments counts as one (an element that only touches one that overlaps a later
    /// one is counted reused too: never copied wrong, sometimes missed). At most 4 × size + 1024
    /// segments are checked; an element with more is counted reused.
    static func verdicts(_ chains: [GuestChain?], fromTable: [Bool], deviceHeld: [GuestChain], queueSize n: Int) -> [Verdict] {
        let after = chains.count   // the owner of the buffers the device holds now: after every element
        var out = [Verdict](repeating: .fresh, count: chains.count)
        var idOwner = [Int](repeating: -1, count: n)
        var segments: [(start: UInt64, end: UInt64, owner: Int)] = []
        let budget = 4 * n + 1024
        func add(_ c: GuestChain, _ owner: Int) {
            for id in c.ids where Int(id) < n { idOwner[Int(id)] = max(idOwner[Int(id)], owner) }
            for s in c.segments where s.len > 0 {
                guard segments.count < budget else {
                    if owner < after { out[owner] = .reused }
                    return
                }
                let (end, overflow) = s.addr.addingReportingOverflow(UInt64(s.len))
                segments.append((start: s.addr, end: overflow ? UInt64.max : end, owner: owner))
            }
        }
        for k in chains.indices { if let c = chains[k] { add(c, k) } }
        for c in deviceHeld { add(c, after) }
        for k in chains.indices where fromTable[k] {
            if let c = chains[k], c.ids.contains(where: { Int($0) < n && idOwner[Int($0)] > k }) { out[k] = .reused }
        }
        segments.sort { $0.start < $1.start }
        var i = 0
        while i < segments.count {
            var j = i
            var end: UInt64 = segments[i].end
            var held: Bool = segments[i].owner == after
            var newestElement: Int = held ? -1 : segments[i].owner
            while j + 1 < segments.count && segments[j + 1].start < end {
                j += 1
                end = max(end, segments[j].end)
                if segments[j].owner == after { held = true } else { newestElement = max(newestElement, segments[j].owner) }
            }
            for s in segments[i...j] where s.owner < after {
                if s.owner < newestElement { out[s.owner] = .reused } else if held && out[s.owner] == .fresh { out[s.owner] = .heldByDevice }
            }
            i = j + 1
        }
        return out
    }

    /// The chain of every head in `avail` state (the device holds it), by head.
    static func heldChains(_ ring: GuestRingSnapshot) -> [GuestChain?] {
        var held = [GuestChain?](repeating: nil, count: ring.states.count)
        for c in ring.chains where Int(c.head) < held.count && ring.states[Int(c.head)] == .avail { held[Int(c.head)] = c }
        return held
    }
}
