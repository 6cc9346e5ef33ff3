// Reading a split virtqueue (virtio 1.2 §2.7) out of guest memory, with no help from the guest.
//
// The guest writes these rings while we read them and may write anything at all: every index and
// id is checked against the queue size, chains are walked with a hop limit and a visited set,
// indirect tables with a length limit, and every memory access is bounds-checked (GuestMemory).
// A read during which avail.idx or used.idx moved is marked `moving`: its problems are what a
// torn read looks like and are reported as such, not as the guest's fault.
//
// Descriptor states from the rings alone (the driver's free list is private to it):
//   avail — the head of one of the last (avail.idx − used.idx) avail entries, and its chain: given
//           to the device and not yet returned (exact when the device completes in order, as
//           QEMU's virtio-net does; otherwise the count is exact and the choice approximate);
//   used  — returned in a used element the driver has not consumed yet; the driver's position
//           is `used_event` with EVENT_IDX (Linux keeps it at its last-seen used index while
//           callbacks are on), or `driverLastUsed` when the caller knows it; otherwise none;
//           (Linux writes used_event = 0 when it turns callbacks off, so this is a guess; the
//           chains of used elements are shown but never reported as problems);
//   free  — everything else (owned by the driver: free, or consumed and not yet recycled).

import Wire

/// Where a queue lives in guest memory (QMP `vring-desc`, `vring-avail`, `vring-used`, `vring-num`).
public struct GuestQueueAddresses: Equatable, Sendable {
    public var size: Int
    public var desc: UInt64
    public var avail: UInt64
    public var used: UInt64

    public init(size: Int, desc: UInt64, avail: UInt64, used: UInt64) {
        self.size = size
        self.desc = desc
        self.avail = avail
        self.used = used
    }

    /// A queue the driver has not set up (QEMU reports zero addresses until it has).
    public var isSetUp: Bool { desc != 0 && avail != 0 && used != 0 && size > 0 }
}

/// `struct virtq_desc`.
public struct GuestDescriptor: Equatable, Sendable {
    public static let next: UInt16 = 1
    public static let write: UInt16 = 2
    public static let indirect: UInt16 = 4

    public var addr: UInt64
    public var len: UInt32
    public var flags: UInt16
    public var next: UInt16

    public init(addr: UInt64, len: UInt32, flags: UInt16, next: UInt16) {
        self.addr = addr
        self.len = len
        self.flags = flags
        self.next = next
    }

    public var flagNames: String {
        var n: [String] = []
        if flags & Self.next != 0 { n.append("NEXT") }
        if flags & Self.write != 0 { n.append("WRITE") }
        if flags & Self.indirect != 0 { n.append("INDIRECT") }
        return n.joined(separator: "|")
    }
}

/// `struct virtq_used_elem`: the wire format's type, so a used element read from guest memory and
/// one the kernel reports are the same value.
public typealias GuestUsedElement = WireUsedElement

/// One buffer: the descriptors from a head, following NEXT, into an indirect table if any.
public struct GuestChain: Equatable, Sendable {
    public var head: UInt16
    /// Ids in the descriptor table, in chain order.
    public var ids: [UInt16]
    /// The indirect table's entries in chain order, when the chain ends in an INDIRECT descriptor.
    public var indirect: [GuestDescriptor]
    /// Address of the indirect table (0 when none).
    public var indirectAddress: UInt64
    /// Every buffer piece in order (table entries without the INDIRECT one, then the indirect ones).
    public var segments: [GuestDescriptor]
    /// Why the walk stopped early (loop, id out of range, ...), if it did.
    public var problem: String?

    public var readableBytes: UInt64 { segments.filter { $0.flags & GuestDescriptor.write == 0 }.reduce(0) { $0 + UInt64($1.len) } }
    public var writableBytes: UInt64 { segments.filter { $0.flags & GuestDescriptor.write != 0 }.reduce(0) { $0 + UInt64($1.len) } }
}

/// What the rings said at one instant (or, when `moving`, over a short interval).
public struct GuestRingSnapshot: Equatable, Sendable {
    public var addresses: GuestQueueAddresses
    public var availFlags: UInt16 = 0
    public var availIdx: UInt16 = 0
    /// avail->ring[], all `size` slots (raw: may hold anything).
    public var availRing: [UInt16] = []
    /// avail->used_event (only meaningful with EVENT_IDX).
    public var usedEvent: UInt16?
    public var usedFlags: UInt16 = 0
    public var usedIdx: UInt16 = 0
    public var usedRing: [GuestUsedElement] = []
    /// used->avail_event (only meaningful with EVENT_IDX).
    public var availEvent: UInt16?
    public var descriptors: [GuestDescriptor] = []
    public var states: [WireDescriptorState] = []
    /// The chains of the heads in `avail`/`used` state, by head.
    public var chains: [GuestChain] = []
    /// The driver's last-seen used index this snapshot assumed (used_event or the caller's), if any.
    public var driverLastUsed: UInt16?
    /// Buffers given to the device and not returned (avail.idx − used.idx), when that is ≤ size.
    public var outstanding: Int?
    /// The ring memory could not be read at all (addresses outside guest RAM, or not set up).
    public var unreadable: String?
    /// avail.idx or used.idx changed while we read: the fields may come from different instants.
    public var moving = false
    /// What did not make sense (ids ≥ size, loops, ...). With `moving`, expected torn reads.
    public var problems: [String] = []

    public init(addresses: GuestQueueAddresses) {
        self.addresses = addresses
    }

    public var usedEventPresent: Bool { usedEvent != nil }

    public func chain(head: UInt16) -> GuestChain? { chains.first { $0.head == head } }
}

/// Reads split rings out of guest memory. Stateless; every limit is explicit.
public struct GuestRingReader: Sendable {
    /// Split rings are at most 32768 entries (virtio 1.2 §2.7).
    public static let maximumQueueSize = 32768
    public var eventIdx: Bool
    public var indirect: Bool

    public init(eventIdx: Bool, indirect: Bool = true) {
        self.eventIdx = eventIdx
        self.indirect = indirect
    }

    /// Reads the queue at `a`. `driverLastUsed` overrides the used_event guess for `used` states.
    public func read(_ memory: GuestMemory, _ a: GuestQueueAddresses, driverLastUsed: UInt16? = nil) -> GuestRingSnapshot {
        var s = GuestRingSnapshot(addresses: a)
        guard a.isSetUp else { s.unreadable = "queue not set up"; return s }
        guard a.size <= Self.maximumQueueSize, a.size & (a.size - 1) == 0 else {
            s.unreadable = "queue size \(a.size) is not a power of 2 ≤ 32768"
            return s
        }
        let n = a.size
        // Indices first, the rest, then the indices again.
        guard let usedIdx0 = memory.u16(a.used + 2), let availIdx0 = memory.u16(a.avail + 2),
              let availFlags = memory.u16(a.avail), let usedFlags = memory.u16(a.used) else {
            s.unreadable = "ring addresses outside guest memory"
            return s
        }
        s.availFlags = availFlags
        s.usedFlags = usedFlags
        s.availIdx = availIdx0
        s.usedIdx = usedIdx0
        guard let ring = memory.withBytes(guest: a.avail + 4, count: 2 * n + 2, { b -> ([UInt16], UInt16) in
            var r = [UInt16](repeating: 0, count: n)
            for i in 0..<n { r[i] = UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
            return (r, UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 * n, as: UInt16.self)))
        }) else { s.unreadable = "avail ring outside guest memory"; return s }
        s.availRing = ring.0
        if eventIdx { s.usedEvent = ring.1 }
        guard let used = memory.withBytes(guest: a.used + 4, count: 8 * n + 2, { b -> ([GuestUsedElement], UInt16) in
            var r = [GuestUsedElement](repeating: GuestUsedElement(id: 0, len: 0), count: n)
            for i in 0..<n {
                r[i] = GuestUsedElement(id: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 8 * i, as: UInt32.self)),
                                        len: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 8 * i + 4, as: UInt32.self)))
            }
            return (r, UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 8 * n, as: UInt16.self)))
        }) else { s.unreadable = "used ring outside guest memory"; return s }
        s.usedRing = used.0
        if eventIdx { s.availEvent = used.1 }
        guard let table = Self.readTable(memory, at: a.desc, count: n) else {
            s.unreadable = "descriptor table outside guest memory"
            return s
        }
        s.descriptors = table
        if memory.u16(a.used + 2) != usedIdx0 || memory.u16(a.avail + 2) != availIdx0 { s.moving = true }

        // States.
        s.states = [WireDescriptorState](repeating: .free, count: n)
        var chains: [UInt16: GuestChain] = [:]
        let outstanding = Int(s.availIdx &- s.usedIdx)
        if outstanding > n {
            s.problems.append("avail.idx \(s.availIdx) is \(outstanding) ahead of used.idx \(s.usedIdx) (> size \(n))")
        } else {
            s.outstanding = outstanding
        }
        for k in 0..<min(outstanding, n) {
            let slot = Int((s.availIdx &- 1 &- UInt16(truncatingIfNeeded: k))) & (n - 1)
            let head = s.availRing[slot]
            guard Int(head) < n else {
                s.problems.append("avail slot \(slot): id \(head) ≥ size \(n)")
                continue
            }
            mark(head, .avail, &s, &chains, memory)
        }
        // Linux writes used_event = 0 when it turns callbacks off (virtqueue_disable_cb_split) and
        // never sets it on queues without callbacks (its ctrl queue): 0 with a used.idx past 0
        // says "unknown", not "nothing consumed".
        let guess = s.usedEvent.flatMap { $0 == 0 && s.usedIdx != 0 ? nil : $0 }
        let lastUsed = driverLastUsed ?? guess
        if let lastUsed {
            let pending = Int(s.usedIdx &- lastUsed)
            if pending <= n {
                s.driverLastUsed = lastUsed
                for k in 0..<pending {
                    let slot = Int(lastUsed &+ UInt16(truncatingIfNeeded: k)) & (n - 1)
                    let id = s.usedRing[slot].id
                    guard id < UInt32(n) else {
                        s.problems.append("used slot \(slot): id \(id) ≥ size \(n)")
                        continue
                    }
                    mark(UInt16(id), .used, &s, &chains, memory)
                }
            }
        }
        s.chains = chains.values.sorted { $0.head < $1.head }
        return s
    }

    private func mark(_ head: UInt16, _ state: WireDescriptorState, _ s: inout GuestRingSnapshot,
                      _ chains: inout [UInt16: GuestChain], _ memory: GuestMemory) {
        let c = chains[head] ?? walk(head: head, table: s.descriptors, memory: memory)
        chains[head] = c
        // Only chains the device holds must be intact: a used element's descriptors may already
        // be recycled by the driver (its position is a guess), so their state is not a problem.
        if state == .avail, let p = c.problem, !s.problems.contains(p) { s.problems.append(p) }
        for id in c.ids where s.states[Int(id)] == .free || state == .avail { s.states[Int(id)] = state }
    }

    /// Follows the chain from `head` in `table`: at most table.count hops, each id once; an
    /// INDIRECT descriptor ends it and its table (len/16 entries, at most the queue size) is
    /// walked the same way from entry 0.
    public func walk(head: UInt16, table: [GuestDescriptor], memory: GuestMemory) -> GuestChain {
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
            if d.flags & GuestDescriptor.indirect != 0 {
                guard indirect else { c.problem = "chain from \(head): INDIRECT without VIRTIO_F_INDIRECT_DESC"; return c }
                if d.flags & GuestDescriptor.next != 0 { c.problem = "chain from \(head): INDIRECT with NEXT at \(id)" }
                walkIndirect(d, queueSize: n, into: &c, memory: memory)
                return c
            }
            c.segments.append(d)
            guard d.flags & GuestDescriptor.next != 0 else { return c }
            id = Int(d.next)
        }
    }

    private func walkIndirect(_ d: GuestDescriptor, queueSize n: Int, into c: inout GuestChain, memory: GuestMemory) {
        c.indirectAddress = d.addr
        guard d.len % 16 == 0, d.len > 0 else { c.problem = "indirect table of \(d.len) bytes (not a multiple of 16)"; return }
        let entries = Int(d.len / 16)
        guard entries <= n else { c.problem = "indirect table of \(entries) entries > queue size \(n)"; return }
        guard let table = Self.readTable(memory, at: d.addr, count: entries) else {
            c.problem = "indirect table at 0x\(String(d.addr, radix: 16)) outside guest memory"
            return
        }
        var i = 0
        while true {
            guard i < entries else { c.problem = "indirect chain: next \(i) ≥ \(entries) entries"; return }
            guard c.indirect.count < entries else { c.problem = "indirect chain: loop (more than \(entries) entries)"; return }
            let e = table[i]
            c.indirect.append(e)
            if e.flags & GuestDescriptor.indirect != 0 { c.problem = "indirect chain: nested INDIRECT at \(i)"; return }
            c.segments.append(e)
            guard e.flags & GuestDescriptor.next != 0 else { return }
            i = Int(e.next)
        }
    }

    static func readTable(_ memory: GuestMemory, at address: UInt64, count: Int) -> [GuestDescriptor]? {
        memory.withBytes(guest: address, count: 16 * count) { b in
            var t = [GuestDescriptor](repeating: GuestDescriptor(addr: 0, len: 0, flags: 0, next: 0), count: count)
            for i in 0..<count {
                let o = 16 * i
                t[i] = GuestDescriptor(addr: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt64.self)),
                                       len: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o + 8, as: UInt32.self)),
                                       flags: UInt16(littleEndian: b.loadUnaligned(fromByteOffset: o + 12, as: UInt16.self)),
                                       next: UInt16(littleEndian: b.loadUnaligned(fromByteOffset: o + 14, as: UInt16.self)))
            }
            return t
        }
    }

    /// The bytes of a chain's buffer: with any device-writable segment, the writable bytes up to
    /// `usedLength` (what the device wrote); otherwise all readable bytes. At most `limit` bytes;
    /// a segment outside guest memory ends the buffer (nil if nothing could be read).
    public static func buffer(of chain: GuestChain, usedLength: UInt32?, memory: GuestMemory, limit: Int = 1 << 20) -> [UInt8]? {
        let writable = chain.segments.contains { $0.flags & GuestDescriptor.write != 0 }
        var want = limit
        if writable, let usedLength { want = min(limit, Int(usedLength)) }
        var out: [UInt8] = []
        for seg in chain.segments where (seg.flags & GuestDescriptor.write != 0) == writable {
            let take = min(Int(seg.len), want - out.count)
            if take <= 0 { break }
            guard let b = memory.bytes(guest: seg.addr, count: take) else { return out.isEmpty ? nil : out }
            out += b
        }
        return out
    }
}
