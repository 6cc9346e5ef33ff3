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

import Glibc
import Virtio
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

/// `struct virtq_desc`: Virtio's type, so a descriptor read from guest memory and one our driver
/// keeps are the same value.
public typealias GuestDescriptor = VirtqDescriptor

extension VirtqDescriptor {
    /// The VIRTQ_DESC_F_* bits set, by their short names: "NEXT|WRITE".
    public var flagNames: String {
        var n: [String] = []
        if flags & VIRTQ_DESC_F_NEXT != 0 { n.append("NEXT") }
        if flags & VIRTQ_DESC_F_WRITE != 0 { n.append("WRITE") }
        if flags & VIRTQ_DESC_F_INDIRECT != 0 { n.append("INDIRECT") }
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

    public var readableBytes: UInt64 { segments.filter { $0.flags & VIRTQ_DESC_F_WRITE == 0 }.reduce(0) { $0 + UInt64($1.len) } }
    public var writableBytes: UInt64 { segments.filter { $0.flags & VIRTQ_DESC_F_WRITE != 0 }.reduce(0) { $0 + UInt64($1.len) } }
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
    /// A packed ring (VIRTIO_F_RING_PACKED, GuestPackedRing.swift): its slots, positions and
    /// event structures. Then, as in the wire protocol (docs/protocol.md §4 "Packed queues"),
    /// `availIdx`, `usedIdx` and `driverLastUsed` are the driver, device and driver-used
    /// positions in the off_wrap encoding, `availFlags`/`usedEvent` the driver's event
    /// structure, `usedFlags`/`availEvent` the device's, `descriptors`/`states` indexed by buffer
    /// id, `chains` the buffers the device holds (`head` their buffer id, `ids` their ring
    /// slots), and the split rings (`availRing`, `usedRing`) empty.
    public var packed: GuestPackedRing?

    public init(addresses: GuestQueueAddresses) {
        self.addresses = addresses
    }

    public var usedEventPresent: Bool { usedEvent != nil }

    public func chain(head: UInt16) -> GuestChain? { chains.first { $0.head == head } }
}

/// One queue's last read, for whoever reads that queue again and again (GuestSession keeps one
/// per queue): the ring bytes as copied and the snapshot derived from them. A snapshot is a
/// function of those bytes, of the indirect tables its chains went through, of the addresses and of
/// the reader's settings: when all of them are byte-for-byte the same at the next read, so is the
/// snapshot (only `moving` is decided again), and when only some descriptors changed, the chains
/// that go through none of them are reused. Nothing is skipped on trust: an idle queue still costs
/// one comparison of all its ring bytes (6.7 KiB for 256 entries) per read.
public final class GuestRingCache {
    struct Key: Equatable {
        var addresses: GuestQueueAddresses
        var eventIdx: Bool
        var indirect: Bool
        var keepsChains: Bool
        var driverLastUsed: UInt16?
        var packed = false
    }

    var key: Key?
    /// The bytes `snapshot` was derived from (see `GuestRingReader.read`), and a spare buffer of
    /// the same size for the next copy.
    var image: [UInt8] = []
    var spare: [UInt8] = []
    var snapshot: GuestRingSnapshot?
    /// Each indirect table `snapshot`'s chains read: its guest address and the bytes read.
    var indirectTables: [(address: UInt64, bytes: [UInt8])] = []
    /// Index of each head's chain in `snapshot.chains` (-1: none).
    var chainSlot: [Int32] = []
    /// Whether each head's chain in `snapshot.chains` is a one-descriptor chain made from the
    /// table entry alone (ids [head], that descriptor as its one segment, no problem).
    var chainSingle: [Bool] = []
    /// Changed reads whose chain list was edited in place (the heads that came, went or changed)
    /// rather than rebuilt.
    public private(set) var editedReads = 0
    /// Reads answered whole from the cache; reads that derived a new snapshot; chains those reused.
    public private(set) var unchangedReads = 0
    public private(set) var changedReads = 0
    public private(set) var reusedChains = 0

    public init() {}

    func noteRead(changed: Bool, reusedChains reused: Int, edited: Bool = false) {
        if changed { changedReads += 1 } else { unchangedReads += 1 }
        reusedChains += reused
        if edited { editedReads += 1 }
    }
}

/// Reads split rings out of guest memory. Stateless (a `GuestRingCache` passed in carries the
/// state between reads); every limit is explicit.
public struct GuestRingReader: Sendable {
    /// Split rings are at most 32768 entries (virtio 1.2 §2.7).
    public static let maximumQueueSize = 32768
    public var eventIdx: Bool
    public var indirect: Bool
    /// VIRTIO_F_RING_PACKED was negotiated: the queue is a packed ring (readPacked).
    public var packed = false
    /// Whether snapshots list their chains (`chains`). Off, `chains` is empty and everything
    /// else is the same: states, problems and every check still walk every chain the rings name.
    public var keepsChains = true

    public init(eventIdx: Bool, indirect: Bool = true, keepsChains: Bool = true, packed: Bool = false) {
        self.packed = packed
        self.eventIdx = eventIdx
        self.indirect = indirect
        self.keepsChains = keepsChains
    }

    /// Reads the queue at `a`. `driverLastUsed` overrides the used_event guess for `used` states.
    ///
    /// The indices are read first; then the three areas are copied in one pass into one buffer
    /// (the image: the avail ring's flags, idx, ring[] and used_event, 6 + 2n bytes; the used
    /// ring's flags, idx, ring[] and avail_event, 6 + 8n bytes; the descriptor table, 16n bytes);
    /// then the indices again. Everything is derived from the image, so one snapshot never mixes
    /// two reads of the same field. With `cache`, an image equal to the last one gives the last
    /// snapshot, and chains through unchanged descriptors are taken from it.
    /// `sample` numbers the read in a packed ring's record of offers (GuestPackedRing+Buffers.swift).
    public func read(_ memory: GuestMemory, _ a: GuestQueueAddresses, driverLastUsed: UInt16? = nil,
                     cache: GuestRingCache? = nil, sample: Int = 0) -> GuestRingSnapshot {
        if packed { return readPacked(memory, a, cache: cache, sample: sample) }
        var s = GuestRingSnapshot(addresses: a)
        guard a.isSetUp else { s.unreadable = "queue not set up"; return s }
        guard a.size <= Self.maximumQueueSize, a.size & (a.size - 1) == 0 else {
            s.unreadable = "queue size \(a.size) is not a power of 2 ≤ 32768"
            return s
        }
        let n = a.size
        let availBytes = 6 + 2 * n, usedBytes = 6 + 8 * n, tableBytes = 16 * n
        let imageBytes = availBytes + usedBytes + tableBytes
        guard let availHead = memory.pointer(guest: a.avail, count: 4), let usedHead = memory.pointer(guest: a.used, count: 4) else {
            s.unreadable = "ring addresses outside guest memory"
            return s
        }
        guard let availArea = memory.pointer(guest: a.avail, count: availBytes) else { s.unreadable = "avail ring outside guest memory"; return s }
        guard let usedArea = memory.pointer(guest: a.used, count: usedBytes) else { s.unreadable = "used ring outside guest memory"; return s }
        guard let tableArea = memory.pointer(guest: a.desc, count: tableBytes) else {
            s.unreadable = "descriptor table outside guest memory"
            return s
        }
        let usedIdx0 = Self.u16(usedHead, 2), availIdx0 = Self.u16(availHead, 2)
        let key = GuestRingCache.Key(addresses: a, eventIdx: eventIdx, indirect: indirect, keepsChains: keepsChains, driverLastUsed: driverLastUsed)
        let sameKey = cache?.key == key && cache?.image.count == imageBytes

        // Nothing changed since the cached read: the same bytes make the same snapshot.
        if let cache, sameKey, var previous = cache.snapshot {
            let same = cache.image.withUnsafeBytes { b -> Bool in
                memcmp(availArea, b.baseAddress!, availBytes) == 0
                    && memcmp(usedArea, b.baseAddress! + availBytes, usedBytes) == 0
                    && memcmp(tableArea, b.baseAddress! + availBytes + usedBytes, tableBytes) == 0
            } && cache.indirectTables.allSatisfy { t in t.bytes.withUnsafeBytes { memory.holds($0, at: t.address) } }
            if same {
                previous.moving = Self.u16(usedHead, 2) != usedIdx0 || Self.u16(availHead, 2) != availIdx0
                    || previous.usedIdx != usedIdx0 || previous.availIdx != availIdx0
                cache.noteRead(changed: false, reusedChains: 0)
                return previous
            }
        }

        var image = cache.map { $0.spare.count == imageBytes ? $0.spare : [] } ?? []
        if image.count != imageBytes { image = [UInt8](repeating: 0, count: imageBytes) }
        if let cache { cache.spare = [] }  // let `image` own its buffer alone (no copy on write)
        image.withUnsafeMutableBytes { b in
            let p = b.baseAddress!
            p.copyMemory(from: availArea, byteCount: availBytes)
            (p + availBytes).copyMemory(from: usedArea, byteCount: usedBytes)
            (p + availBytes + usedBytes).copyMemory(from: tableArea, byteCount: tableBytes)
        }
        let usedIdx1 = Self.u16(usedHead, 2), availIdx1 = Self.u16(availHead, 2)
        image.withUnsafeBytes { b in
            let avail = b.baseAddress!, used = avail + availBytes, table = used + usedBytes
            s.availFlags = Self.u16(avail, 0)
            s.availIdx = Self.u16(avail, 2)
            s.availRing = Self.decodeAvailRing(avail + 4, count: n)
            if eventIdx { s.usedEvent = Self.u16(avail, 4 + 2 * n) }
            s.usedFlags = Self.u16(used, 0)
            s.usedIdx = Self.u16(used, 2)
            s.usedRing = Self.decodeUsedRing(used + 4, count: n)
            if eventIdx { s.availEvent = Self.u16(used, 4 + 8 * n) }
            s.descriptors = Self.decodeTable(table, count: n)
        }
        s.moving = usedIdx1 != usedIdx0 || availIdx1 != availIdx0 || s.usedIdx != usedIdx0 || s.availIdx != availIdx0

        // States, and the chains of the heads the rings name. The last read's chains are taken
        // out of the cache (not copied) so that they can be edited in place when they are not
        // shared (`finish`).
        var chains = ChainBuilder(reader: self, memory: memory, table: s.descriptors)
        if sameKey, let cache, cache.snapshot?.descriptors.count == n, cache.chainSlot.count == n, cache.chainSingle.count == n {
            chains.previousTable = cache.snapshot!.descriptors
            swap(&chains.previousChains, &cache.snapshot!.chains)
            chains.previousSlot = cache.chainSlot
            chains.previousSingle = cache.chainSingle
        }
        cache?.snapshot = nil
        s.states = [WireDescriptorState](repeating: .free, count: n)
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
            chains.mark(head, .avail, &s)
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
                    chains.mark(UInt16(id), .used, &s)
                }
            }
        }
        let built = keepsChains ? chains.finish() : (chains: [], slot: [], single: [], edited: false)  // before `chains.reused` is read
        s.chains = built.chains
        if let cache {
            cache.key = key
            cache.spare = cache.image
            cache.image = image
            cache.snapshot = s
            cache.chainSlot = built.slot
            cache.chainSingle = built.single
            cache.indirectTables = chains.indirectTables
            cache.noteRead(changed: true, reusedChains: chains.reused, edited: built.edited)
        }
        return s
    }
}
