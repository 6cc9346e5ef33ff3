// The buffers of a packed ring read from guest memory (virtio 1.2 §2.8), for GuestRingReader.
//
// What the device holds: the slots from the device position to the driver's, grouped into
// buffers by NEXT (§2.8.6: the buffer id is in a list's last slot), each walked into its
// indirect table when a slot says INDIRECT (§2.8.7: a table of `struct pvirtq_desc`, entries one
// after another from the start, `len / 16` of them; only WRITE is valid in an entry, §2.8.19).
// Every limit of the split walker holds: a table length that is not a non-zero multiple of 16,
// longer than the queue size or outside guest memory is refused, so is a nested INDIRECT, and an
// INDIRECT slot inside a list linked by NEXT (§2.8.19) is reported.
//
// What the driver made available, by buffer id (`GuestPackedOffers`): a used slot names a buffer
// id and a length, not where the buffer is (the device writes one used descriptor per buffer,
// §2.8.6), and only the driver keeps the id's address. So the reader remembers, per queue, each
// buffer as the samples saw it offered (its first slot and lap, its pieces, which samples saw it),
// and a dump of a used slot takes the address from there — only when that record can be trusted:
//   - seen in a read that was not `moving`, or twice alike (a torn read may pair a new slot's
//     flags with the old slot's address);
//   - not held by the device now (the id offered again: the used buffer's address is gone);
//   - offered within one lap before the driver position;
//   - no offers missed since a sample last saw it: when the driver position moved further between
//     two reads than the slots the device still holds, some slots were offered and used unseen,
//     and any id may have been offered again there.
// Otherwise the dump is refused with the reason; never a guess.

import Virtio
import Wire

/// One buffer as the driver made it available and a sample saw it.
public struct GuestPackedOffer: Equatable, Sendable {
    /// Its first slot and the lap (wrap counter) it was offered in.
    public var position: GuestPackedPosition
    /// Its slots (`ids`: ring offsets), pieces and indirect table; `head` is the buffer id.
    public var chain: GuestChain
    /// The first sample that saw it; the last changed read that still saw it.
    public var firstSample: Int
    public var lastSample: Int
    /// Seen in a read that was not moving, or in two reads alike.
    public var confirmed: Bool
    /// The indirect table's bytes as read (empty: none): the next read reuses `chain` when its
    /// slot and these bytes are unchanged.
    var tableBytes: [UInt8] = []
}

/// A queue's record of offers, by buffer id (see the top of this file).
public struct GuestPackedOffers: Equatable, Sendable {
    public var byId: [GuestPackedOffer?]
    /// The first sample of this record (the queue's addresses unchanged since).
    public var sinceSample: Int
    /// The last read that found slots offered and used unseen, and how many in all.
    public var lastMissSample: Int?
    public var missedSlots = 0

    init(size: Int, sample: Int) {
        byId = [GuestPackedOffer?](repeating: nil, count: size)
        sinceSample = sample
    }
}

extension GuestRingReader {
    /// The buffers the device holds (`owned` slots from the device position), each walked, and
    /// the record of offers after this read: the previous read's (`previous`: same queue, same
    /// addresses), a miss noted when the driver moved further than the slots the device holds,
    /// and every buffer held now as offered (kept with its first sample when it is the same
    /// offer). A one-slot buffer whose slot and table are byte for byte those of the previous
    /// read's offer at the same position is not walked again (Linux's RX ring: 256 buffers, a
    /// few renewed between two reads). Returns the record and which ids the device holds; tables
    /// read are noted in `indirectTables`, the walks' problems in `problems`.
    func walkAndRecordPacked(_ r: GuestPackedRing, owned: Int, memory: GuestMemory, previous: GuestPackedRing?, moving: Bool,
                             sample: Int, indirectTables: inout [(address: UInt64, bytes: [UInt8])],
                             problems: inout [String]) -> (offers: GuestPackedOffers, held: [Bool]) {
        let n = r.slots.count
        let before = previous.flatMap { $0.slots.count == n ? $0 : nil }
        var o = before?.offers ?? GuestPackedOffers(size: n, sample: sample)
        if let pd = before?.driver {
            let advanced = wireRingDistance(from: pd.offWrap, to: r.driver.offWrap, size: UInt16(n), format: .packed)
            if advanced > owned {
                o.lastMissSample = sample
                o.missedSlots += advanced - owned
            }
        }
        var held = [Bool](repeating: false, count: n)
        var k = 0
        while k < owned {
            let start = r.device.advanced(by: k, size: n)
            let first = r.slots[Int(start.offset)]
            let firstId = Int(first.id)
            if let before, first.flags & VIRTQ_DESC_F_NEXT == 0, firstId < n, before.slots[Int(start.offset)] == first,
               let old = o.byId[firstId], old.position == start, old.chain.ids.count == 1,
               old.tableBytes.isEmpty || old.tableBytes.withUnsafeBytes({ memory.holds($0, at: old.chain.indirectAddress) }) {
                if !old.tableBytes.isEmpty { indirectTables.append((old.chain.indirectAddress, old.tableBytes)) }
                if let p = old.chain.problem, !problems.contains(p) { problems.append(p) }
                o.byId[firstId]?.lastSample = sample
                o.byId[firstId]?.confirmed = true
                held[firstId] = true
                k += 1
                continue
            }
            let tablesBefore = indirectTables.count
            var c = GuestChain(head: 0, ids: [], indirect: [], indirectAddress: 0, segments: [], problem: nil)
            while true {
                let i = Int(r.device.advanced(by: k, size: n).offset)
                let d = r.slots[i]
                c.ids.append(UInt16(i))
                k += 1
                if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                    if !indirect {
                        c.problem = "slot \(i): INDIRECT without VIRTIO_F_INDIRECT_DESC"
                    } else if c.ids.count > 1 || d.flags & VIRTQ_DESC_F_NEXT != 0 {
                        c.problem = "slot \(i): INDIRECT in a list linked by NEXT"
                    } else if c.problem == nil {
                        walkPackedIndirect(address: d.addr, length: d.len, queueSize: n, into: &c, memory: memory,
                                           indirectTables: &indirectTables)
                    }
                } else {
                    c.segments.append(GuestDescriptor(addr: d.addr, len: d.len, flags: d.flags & VIRTQ_DESC_F_WRITE, next: 0))
                }
                if d.flags & VIRTQ_DESC_F_NEXT == 0 { c.head = d.id; break }
                if k == owned {
                    if c.problem == nil { c.problem = "list from slot \(start.offset): NEXT at the driver position (slot \(i))" }
                    c.head = d.id
                    break
                }
            }
            if let p = c.problem, !problems.contains(p) { problems.append(p) }
            let id = Int(c.head)
            guard id < n else { continue }  // reported by derivePacked
            held[id] = true
            if let old = o.byId[id], old.position == start, old.chain == c {
                o.byId[id]?.lastSample = sample
                o.byId[id]?.confirmed = true
            } else {
                // A one-slot buffer's table, kept for the next read's comparison.
                let table = c.ids.count == 1 && indirectTables.count == tablesBefore + 1 ? indirectTables[tablesBefore].bytes : []
                o.byId[id] = GuestPackedOffer(position: start, chain: c, firstSample: sample, lastSample: sample, confirmed: !moving,
                                              tableBytes: table)
            }
        }
        return (o, held)
    }


    /// A packed indirect table (§2.8.7): `len / 16` entries in order, no NEXT links; an entry's
    /// id is reserved and WRITE its only valid flag (§2.8.19): a nested INDIRECT ends the walk,
    /// any other flag is reported.
    private func walkPackedIndirect(address: UInt64, length: UInt32, queueSize n: Int, into c: inout GuestChain, memory: GuestMemory,
                                    indirectTables: inout [(address: UInt64, bytes: [UInt8])]) {
        guard let bytes = indirectTable(address: address, length: length, queueSize: n, into: &c, memory: memory,
                                        indirectTables: &indirectTables) else { return }
        bytes.withUnsafeBytes { b in
            let p = b.baseAddress!
            for e in 0..<(bytes.count / 16) {
                let o = 16 * e
                let flags = Self.u16(p, o + 14)
                let entry = GuestDescriptor(addr: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self)),
                                            len: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o + 8, as: UInt32.self)),
                                            flags: flags, next: 0)
                c.indirect.append(entry)
                if flags & VIRTQ_DESC_F_INDIRECT != 0 { c.problem = "indirect table entry \(e): nested INDIRECT"; return }
                if flags & ~VIRTQ_DESC_F_WRITE != 0, c.problem == nil {
                    c.problem = "indirect table entry \(e): flags 0x\(String(flags, radix: 16)) (only WRITE is valid)"
                }
                c.segments.append(GuestDescriptor(addr: entry.addr, len: entry.len, flags: flags & VIRTQ_DESC_F_WRITE, next: 0))
            }
        }
    }
}

// MARK: - Dumps

extension GuestSample {
    /// The buffer `selector` names in a packed ring, from the record of offers (see the top of
    /// this file): a buffer the device holds from its slot now, a used one from where the
    /// driver offered it, when that record can be trusted; refused with the reason otherwise.
    static func packedBuffer(_ name: String, ring: GuestRingSnapshot, _ p: GuestPackedRing,
                      _ selector: GuestBufferSelector) throws(RingsideError) -> (offer: GuestPackedOffer, usedLength: UInt32?, what: String) {
        let n = ring.addresses.size
        guard let offers = p.offers else { throw RingsideError("\(name): no record of offers (read without a session)") }
        // Slots behind the device position, within the lap the driver has not offered again
        // (positions k back are 2n − k further on: two laps keep the wrap counter).
        let usedSpan = n - (ring.outstanding ?? n)
        func usedSlot(_ pos: GuestPackedPosition) -> GuestPackedSlot? {
            let s = p.slots[Int(pos.offset)]
            return s.availBit == pos.wrap && s.usedBit == pos.wrap ? s : nil
        }
        let used: GuestPackedPosition
        switch selector {
        case .descriptor(let id):
            guard id >= 0, id < n else { throw RingsideError("buffer id \(id) ≥ queue size \(n)") }
            if ring.states[id] == .avail, let o = offers.byId[id] {
                return (o, nil, "buffer id \(id), held by the device: slot \(o.position.text), first seen in sample \(o.firstSample)")
            }
            guard let u = (1...max(1, usedSpan)).lazy.map({ p.device.advanced(by: 2 * n - $0, size: n) })
                .first(where: { usedSpan > 0 && usedSlot($0)?.id == UInt16(id) }) else {
                throw RingsideError("\(name): buffer id \(id) is neither held by the device nor named by a used slot of the last lap")
            }
            used = u
        case .last:
            let u = p.device.advanced(by: 2 * n - 1, size: n)  // one back: two laps less one keep the lap
            guard usedSpan > 0, usedSlot(u) != nil else { throw RingsideError("\(name): nothing used in the last lap") }
            used = u
        case .next:
            guard let u = p.driverUsed, u != p.device else {
                throw RingsideError("\(name): no pending used slot known (needs EVENT_IDX's DESC event at the driver's used position)")
            }
            guard usedSlot(u) != nil else { throw RingsideError("\(name): the driver's used position \(u.text) holds no used descriptor") }
            used = u
        }
        let slot = p.slots[Int(used.offset)]
        let id = Int(slot.id)
        let head = "\(name): used slot \(used.text) names buffer id \(slot.id)"
        guard id < n else { throw RingsideError("\(head) ≥ size \(n) (torn read? try again)") }
        guard let o = offers.byId[id] else {
            throw RingsideError("\(head), not seen offered since sample \(offers.sinceSample): only the driver knows where it is (keep watching: attach, or ctl dump --wait)")
        }
        if ring.states[id] == .avail {
            throw RingsideError("\(head), offered again since (slot \(o.position.text)): the used buffer's address is gone")
        }
        guard o.confirmed else { throw RingsideError("\(head): its offer was seen in one torn read only") }
        let age = wireRingDistance(from: o.position.offWrap, to: p.driver.offWrap, size: UInt16(n), format: .packed)
        guard age >= 1, age <= n else {
            throw RingsideError("\(head): offered at slot \(o.position.text), more than a lap before the driver position \(p.driver.text)")
        }
        if let m = offers.lastMissSample, o.lastSample < m {
            throw RingsideError("\(head): offers were missed at sample \(m) (slots offered and used between two samples), after sample \(o.lastSample) last saw it: it may have been offered again")
        }
        return (o, slot.len, "used slot \(used.text) → buffer id \(id), len \(slot.len); address from slot \(o.position.text) as offered, first seen in sample \(o.firstSample)")
    }
}
