// Walking a split ring's descriptor chains (virtio 1.2 §2.7.5, §2.7.5.3 for indirect tables)
// out of guest memory for GuestRingReader: a hop limit and a visited set per chain, a length
// limit per indirect table, and the previous read's chains reused where nothing they went
// through changed. See GuestRing for what the reader trusts and what it checks.

import Glibc
import Virtio
import Wire

extension GuestRingReader {
    /// The chains one read needs, each walked once (or taken from the previous read when every
    /// descriptor it went through is unchanged and it has no indirect table), with the states
    /// they give their descriptors. Written as plain loops over plain arrays: this runs for every
    /// outstanding buffer of a queue that moved, 60 times a second, in debug builds too.
    ///
    /// A busy queue's rings move at every read, but between two reads only a few heads come, go
    /// or change (Linux's RX queue: 256 outstanding one-descriptor buffers, a few recycled per
    /// 1/60 s). So when the previous read's chain list is at hand and the heads differ in at most
    /// `maximumEdits` places, `finish` edits that list in place (removes, inserts, replaces only
    /// those) instead of copying 256 chains; otherwise it builds the list afresh. Either way the
    /// result is the list a fresh read makes (GuestRingTests compares them under random writes).
    struct ChainBuilder {
        let reader: GuestRingReader
        let memory: GuestMemory
        let table: [GuestDescriptor]
        /// The previous read's table, chains, the index of each head's chain in `previousChains`
        /// (-1: none) and whether it was a one-descriptor chain made from the table (all empty
        /// when there is nothing to reuse).
        var previousTable: [GuestDescriptor] = []
        var previousChains: [GuestChain] = []
        var previousSlot: [Int32] = []
        var previousSingle: [Bool] = []
        /// Chains in the order first needed; `slot[head]` is the index of head's (-1: none yet;
        /// `single`: a one-descriptor chain `finish` makes); whether each was taken unchanged
        /// from `previousChains` at its head.
        var chains: [GuestChain] = []
        var chainReused: [Bool] = []
        var slot: [Int32]
        var indirectTables: [(address: UInt64, bytes: [UInt8])] = []
        var reused = 0

        /// `slot` of a head whose descriptor has neither NEXT nor INDIRECT: its chain is that one
        /// descriptor, made (or taken from the previous read) by `finish`.
        static let single: Int32 = -2

        /// At most a quarter of the heads added or removed for an in-place edit of the previous
        /// list (each is a move of the list's tail; Linux's RX queue under 1000 echoes a second
        /// sees 0-60 per 1/60 s).
        var maximumEdits: Int { max(16, table.count / 4) }

        init(reader: GuestRingReader, memory: GuestMemory, table: [GuestDescriptor]) {
            self.reader = reader
            self.memory = memory
            self.table = table
            slot = [Int32](repeating: -1, count: table.count)
        }

        var hasPrevious: Bool { !previousSlot.isEmpty }

        mutating func mark(_ head: UInt16, _ state: WireDescriptorState, _ s: inout GuestRingSnapshot) {
            let h = Int(head)
            if slot[h] == Self.single || (slot[h] == -1 && table[h].flags & (VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_INDIRECT) == 0) {
                slot[h] = Self.single
                if state == .avail || s.states[h] == .free { s.states[h] = state }
                return
            }
            let c = chainIndex(head)
            // Only chains the device holds must be intact: a used element's descriptors may already
            // be recycled by the driver (its position is a guess), so their state is not a problem.
            if state == .avail, let p = chains[c].problem, !s.problems.contains(p) { s.problems.append(p) }
            let ids = chains[c].ids
            var k = 0
            while k < ids.count {
                let id = Int(ids[k])
                if state == .avail || s.states[id] == .free { s.states[id] = state }
                k += 1
            }
        }

        /// The index in `chains` of the chain from `head` (walked, or the previous read's).
        mutating func chainIndex(_ head: UInt16) -> Int {
            let h = Int(head)
            let known = Int(slot[h])
            if known >= 0 { return known }
            let index = chains.count
            slot[h] = Int32(index)
            if hasPrevious, previousSlot[h] >= 0, !previousSingle[h] {
                let old = previousChains[Int(previousSlot[h])]
                if old.indirectAddress == 0, sameDescriptors(old.ids) {
                    chains.append(old)
                    chainReused.append(true)
                    reused += 1
                    return index
                }
            }
            chains.append(reader.walk(head: head, table: table, memory: memory, indirectTables: &indirectTables))
            chainReused.append(false)
            return index
        }

        /// Whether the descriptors `ids` are the same in this read's table as in the previous one's.
        func sameDescriptors(_ ids: [UInt16]) -> Bool {
            var k = 0
            while k < ids.count {
                let i = Int(ids[k])
                if previousTable[i] != table[i] { return false }
                k += 1
            }
            return true
        }

        /// The one-descriptor chain of `h` (static: in debug builds a method call from a mutating
        /// one copies the whole builder).
        static func singleChain(_ h: Int, _ d: GuestDescriptor) -> GuestChain {
            GuestChain(head: UInt16(h), ids: [UInt16(h)], indirect: [], indirectAddress: 0, segments: [d], problem: nil)
        }

        /// Every chain needed, by head (the order `chain(head:)` and JSON list them in), the index
        /// of each head's chain in that list (-1: none), which of them are one-descriptor chains,
        /// and whether the list was the previous one edited.
        mutating func finish() -> (chains: [GuestChain], slot: [Int32], single: [Bool], edited: Bool) {
            let n = table.count
            var single = [Bool](repeating: false, count: n)
            var h = 0
            while h < n {
                if slot[h] == Self.single { single[h] = true }
                h += 1
            }
            let previous = hasPrevious
            if previous, let e = edit() { return (e.chains, e.slot, single, true) }
            var out: [GuestChain] = []
            out.reserveCapacity(chains.count)
            var byHead = [Int32](repeating: -1, count: n)
            h = 0
            while h < n {
                let k = slot[h]
                if k >= 0 {
                    byHead[h] = Int32(out.count)
                    out.append(chains[Int(k)])
                } else if k == Self.single {
                    byHead[h] = Int32(out.count)
                    if previous, previousSlot[h] >= 0, previousSingle[h], previousTable[h] == table[h] {
                        out.append(previousChains[Int(previousSlot[h])])
                        reused += 1
                    } else {
                        out.append(Self.singleChain(h, table[h]))
                    }
                }
                h += 1
            }
            return (out, byHead, single, false)
        }

        /// The previous list edited into this read's: heads no longer named removed, new heads
        /// inserted (both from the highest head down, so the positions below stay valid), then
        /// the chains of heads in both that changed replaced. Nil when more than `maximumEdits`
        /// heads came or went.
        private mutating func edit() -> (chains: [GuestChain], slot: [Int32])? {
            let n = table.count
            let maximumEdits = self.maximumEdits
            var edits = 0
            var h = 0
            while h < n {
                if (slot[h] != -1) != (previousSlot[h] >= 0) {
                    edits += 1
                    if edits > maximumEdits { return nil }
                }
                h += 1
            }
            var out: [GuestChain] = []
            swap(&out, &previousChains)
            if edits > 0 {
                // Previous heads below `h`: the position a head inserted at `h` takes.
                var below = out.count
                h = n - 1
                while h >= 0 {
                    let p = Int(previousSlot[h])
                    if p >= 0 { below = p }
                    let wanted = slot[h] != -1
                    if p >= 0, !wanted {
                        out.remove(at: p)
                    } else if p < 0, wanted {
                        out.insert(slot[h] >= 0 ? chains[Int(slot[h])] : Self.singleChain(h, table[h]), at: below)
                    }
                    h -= 1
                }
            }
            var byHead = [Int32](repeating: -1, count: n)
            var k: Int32 = 0
            h = 0
            while h < n {
                let s = slot[h]
                if s != -1 {
                    byHead[h] = k
                    if previousSlot[h] >= 0 {  // in both lists: replace what changed
                        if s >= 0 {
                            if !chainReused[Int(s)] { out[Int(k)] = chains[Int(s)] }
                        } else if previousSingle[h] && previousTable[h] == table[h] {
                            reused += 1
                        } else {
                            out[Int(k)] = Self.singleChain(h, table[h])
                        }
                    }
                    k += 1
                }
                h += 1
            }
            return (out, byHead)
        }
    }

    /// Follows the chain from `head` in `table`: at most table.count hops, each id once; an
    /// INDIRECT descriptor ends it and its table (len/16 entries, at most the queue size) is
    /// walked the same way from entry 0.
    public func walk(head: UInt16, table: [GuestDescriptor], memory: GuestMemory) -> GuestChain {
        var ignored: [(address: UInt64, bytes: [UInt8])] = []
        return walk(head: head, table: table, memory: memory, indirectTables: &ignored)
    }

    /// `walk`, noting each indirect table read (address and bytes) in `indirectTables`.
    func walk(head: UInt16, table: [GuestDescriptor], memory: GuestMemory,
              indirectTables: inout [(address: UInt64, bytes: [UInt8])]) -> GuestChain {
        var c = GuestChain(head: head, ids: [], indirect: [], indirectAddress: 0, segments: [], problem: nil)
        let n = table.count
        var id = Int(head)
        // At most n hops: a longer walk revisits an id, i.e. loops (no visited set to allocate:
        // this runs for every outstanding buffer of every queue, 60 times a second).
        while true {
            guard id < n else { c.problem = "chain from \(head): next \(id) ≥ size \(n)"; return c }
            guard c.ids.count < n else { c.problem = "chain from \(head): loop (more than \(n) descriptors)"; return c }
            c.ids.append(UInt16(id))
            let d = table[id]
            if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                guard indirect else { c.problem = "chain from \(head): INDIRECT without VIRTIO_F_INDIRECT_DESC"; return c }
                if d.flags & VIRTQ_DESC_F_NEXT != 0 { c.problem = "chain from \(head): INDIRECT with NEXT at \(id)" }
                walkIndirect(d, queueSize: n, into: &c, memory: memory, indirectTables: &indirectTables)
                return c
            }
            c.segments.append(d)
            guard d.flags & VIRTQ_DESC_F_NEXT != 0 else { return c }
            id = Int(d.next)
        }
    }

    private func walkIndirect(_ d: GuestDescriptor, queueSize n: Int, into c: inout GuestChain, memory: GuestMemory,
                              indirectTables: inout [(address: UInt64, bytes: [UInt8])]) {
        guard let bytes = indirectTable(address: d.addr, length: d.len, queueSize: n, into: &c, memory: memory,
                                        indirectTables: &indirectTables) else { return }
        let entries = bytes.count / 16
        let table = bytes.withUnsafeBytes { Self.decodeTable($0.baseAddress!, count: entries) }
        var i = 0
        while true {
            guard i < entries else { c.problem = "indirect chain: next \(i) ≥ \(entries) entries"; return }
            guard c.indirect.count < entries else { c.problem = "indirect chain: loop (more than \(entries) entries)"; return }
            let e = table[i]
            c.indirect.append(e)
            if e.flags & VIRTQ_DESC_F_INDIRECT != 0 { c.problem = "indirect chain: nested INDIRECT at \(i)"; return }
            c.segments.append(e)
            guard e.flags & VIRTQ_DESC_F_NEXT != 0 else { return }
            i = Int(e.next)
        }
    }

    /// The bytes of the indirect table at `address`, `length` bytes long, copied once (the guest
    /// may rewrite it while we look; the walk reads the copy), noted in `indirectTables`; nil with
    /// `c.problem` set when the length is not a non-zero multiple of 16, the table has more than
    /// `n` entries (the queue size: no list may be longer, virtio 1.2 §2.7.5.3.1 and §2.8.17), or
    /// it is not all in guest memory. Split and packed tables alike (16-byte entries, §2.7.5.3,
    /// §2.8.7).
    func indirectTable(address: UInt64, length: UInt32, queueSize n: Int, into c: inout GuestChain, memory: GuestMemory,
                       indirectTables: inout [(address: UInt64, bytes: [UInt8])]) -> [UInt8]? {
        c.indirectAddress = address
        guard length % 16 == 0, length > 0 else { c.problem = "indirect table of \(length) bytes (not a multiple of 16)"; return nil }
        let entries = Int(length / 16)
        guard entries <= n else { c.problem = "indirect table of \(entries) entries > queue size \(n)"; return nil }
        guard let bytes = memory.bytes(guest: address, count: 16 * entries) else {
            c.problem = "indirect table at 0x\(String(address, radix: 16)) outside guest memory"
            return nil
        }
        indirectTables.append((address, bytes))
        return bytes
    }
}
