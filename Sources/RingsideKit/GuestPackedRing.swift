// Reading a packed virtqueue (virtio 1.2 §2.8) out of guest memory, with no help from the guest.
//
// A packed ring is one descriptor ring that driver and device both write, and two event
// suppression structures (§2.8.10, §2.8.14). QMP's `vring-desc` is the ring, `vring-avail` the
// driver area (the driver's event suppression structure) and `vring-used` the device area (the
// device's). It has no indices in memory: the positions follow from the slots' AVAIL/USED bits.
//
// What the bits say (§2.8.1, §2.8.6, §2.8.9): the driver makes a slot available by writing
// AVAIL = its wrap counter, USED = the inverse; the device marks a slot used by writing both
// equal to its own wrap counter, at the positions it reaches in order. Both wrap counters start
// at 1 and flip each time their side passes the end of the ring, and the device only writes
// positions the driver already wrote in the same lap, so every slot's AVAIL bit is the wrap
// counter of the lap in which it was last written (by either side). Hence:
//   driver position (next available slot, wrap counter) — where the AVAIL bits change: slots
//           before it were written in the current lap (AVAIL = the driver's wrap counter), the
//           rest in the previous one. All AVAIL bits equal: the driver is at slot 0 and its
//           counter is their inverse (an all-zero ring: slot 0, wrap 1, as at reset).
//   device position (next used slot, wrap counter) — just past the newest used slot (AVAIL ==
//           USED), walking back from the driver's position over one lap; none: the device owns
//           the whole lap. A chain's tail slots after the newest used slot keep their AVAIL
//           bits (the device writes one used descriptor per buffer, §2.8.7) and so count as the
//           device's here: exact for drivers that make single-slot buffers (Linux with
//           INDIRECT_DESC, our kernel), a slot per tail ahead of the device otherwise.
//   driver used position — the driver's next used slot is private to it; with EVENT_IDX the
//           driver's event structure asks for a notification at a position (flags DESC), which
//           Linux sets to its next used position when it re-enables callbacks
//           (virtqueue_enable_cb_prepare_packed); used only when it lies within one lap before
//           the device position, otherwise unknown (as split's used_event = 0).
// Slot states: `avail` from the device position to the driver's (given to the device), `used`
// from the driver's used position to the device's (returned, not consumed yet), `free` else.
// Buffer states (the descriptor table of a packed queue, indexed by buffer id, as the kernel's
// telemetry sends it, docs/protocol.md §4): the ids the avail and used slots name. Every id is
// checked against the queue size; a guest may write anything.

import Glibc
import Virtio
import Wire

/// A packed ring position: slot offset and wrap counter (§2.8.14's off_wrap encoding).
public struct GuestPackedPosition: Equatable, Sendable {
    public var offset: UInt16
    public var wrap: Bool

    public init(offset: UInt16, wrap: Bool) {
        self.offset = offset
        self.wrap = wrap
    }

    /// offset | wrap counter << 15, as `desc_event_off_wrap` and the wire protocol encode it.
    public var offWrap: UInt16 { offset & 0x7FFF | (wrap ? 0x8000 : 0) }

    /// "12/w1": the offset and the wrap counter.
    public var text: String { String(offset) + "/w" + (wrap ? "1" : "0") }

    /// `k` slots further on a ring of `size` slots (the wrap counter flips at the end).
    func advanced(by k: Int, size: Int) -> GuestPackedPosition {
        let total = Int(offset) + k
        let laps = total / size
        return GuestPackedPosition(offset: UInt16(total % size), wrap: laps % 2 == 0 ? wrap : !wrap)
    }
}

/// `struct pvirtq_desc` (§2.8.13).
public struct GuestPackedSlot: Equatable, Sendable {
    /// VIRTQ_DESC_F_NEXT, _WRITE, _INDIRECT as in split rings; AVAIL and USED (§2.8.1).
    public static let avail: UInt16 = 1 << 7
    public static let used: UInt16 = 1 << 15

    public var addr: UInt64
    public var len: UInt32
    public var id: UInt16
    public var flags: UInt16

    public var availBit: Bool { flags & Self.avail != 0 }
    public var usedBit: Bool { flags & Self.used != 0 }

    public var flagNames: String {
        var n: [String] = []
        if flags & VIRTQ_DESC_F_NEXT != 0 { n.append("NEXT") }
        if flags & VIRTQ_DESC_F_WRITE != 0 { n.append("WRITE") }
        if flags & VIRTQ_DESC_F_INDIRECT != 0 { n.append("INDIRECT") }
        if availBit { n.append("AVAIL") }
        if usedBit { n.append("USED") }
        return n.joined(separator: "|")
    }
}

/// `struct pvirtq_event_suppress` (§2.8.14).
public struct GuestPackedEvent: Equatable, Sendable {
    /// RING_EVENT_FLAGS_ENABLE 0, _DISABLE 1, _DESC 2 (§2.8.10).
    public var flags: UInt16
    public var offWrap: UInt16

    /// "ENABLE", "DISABLE", "DESC@12/w1".
    public var text: String {
        flags & 3 == 2 ? "DESC@" + GuestPackedPosition(offset: offWrap & 0x7FFF, wrap: offWrap & 0x8000 != 0).text : flagsName
    }

    public var flagsName: String {
        switch flags & 3 {
        case 0: return "ENABLE"
        case 1: return "DISABLE"
        case 2: return "DESC"
        default: return "reserved"
        }
    }
}

/// What a packed ring said at one read.
public struct GuestPackedRing: Equatable, Sendable {
    public var slots: [GuestPackedSlot] = []
    /// Each slot's state (see the top of this file).
    public var slotStates: [WireDescriptorState] = []
    public var driver = GuestPackedPosition(offset: 0, wrap: true)
    public var device = GuestPackedPosition(offset: 0, wrap: true)
    /// The driver's next used position, when its event structure shows it.
    public var driverUsed: GuestPackedPosition?
    /// The driver area: when the driver wants used-buffer notifications.
    public var driverEvent = GuestPackedEvent(flags: 0, offWrap: 0)
    /// The device area: when the device wants available-buffer notifications.
    public var deviceEvent = GuestPackedEvent(flags: 0, offWrap: 0)
    /// What the driver made available, by buffer id, as this queue's reads saw it
    /// (GuestPackedRing+Buffers.swift): where a used slot's buffer is, when that is known.
    public var offers: GuestPackedOffers?
}

extension GuestRingReader {
    /// Packed rings are at most 2^15 entries, any size (virtio 1.2 §2.8).
    public static let maximumPackedQueueSize = 32768

    /// Reads the packed queue at `a` (desc = the ring, avail = driver area, used = device area).
    /// The ring and both areas are copied into one buffer, then compared with memory again: a
    /// difference marks the read `moving`. Everything is derived from the copy.
    /// The buffers the device holds are walked (into their indirect tables) and recorded by id
    /// with `sample` in the cache's record of offers (GuestPackedRing+Buffers.swift).
    func readPacked(_ memory: GuestMemory, _ a: GuestQueueAddresses, cache: GuestRingCache?, sample: Int) -> GuestRingSnapshot {
        var s = GuestRingSnapshot(addresses: a)
        guard a.isSetUp else { s.unreadable = "queue not set up"; return s }
        guard a.size <= Self.maximumPackedQueueSize else {
            s.unreadable = "queue size \(a.size) > 32768"
            return s
        }
        let n = a.size
        let ringBytes = 16 * n, imageBytes = ringBytes + 8
        guard let ring = memory.pointer(guest: a.desc, count: ringBytes) else { s.unreadable = "descriptor ring outside guest memory"; return s }
        guard let driverArea = memory.pointer(guest: a.avail, count: 4) else { s.unreadable = "driver area outside guest memory"; return s }
        guard let deviceArea = memory.pointer(guest: a.used, count: 4) else { s.unreadable = "device area outside guest memory"; return s }
        let key = GuestRingCache.Key(addresses: a, eventIdx: eventIdx, indirect: indirect, keepsChains: keepsChains, driverLastUsed: nil,
                                     packed: true)
        let sameKey = cache?.key == key && cache?.image.count == imageBytes
        func sameAsMemory(_ b: UnsafeRawPointer) -> Bool {
            memcmp(ring, b, ringBytes) == 0 && memcmp(driverArea, b + ringBytes, 4) == 0 && memcmp(deviceArea, b + ringBytes + 4, 4) == 0
        }
        if let cache, sameKey, let previous = cache.snapshot, cache.image.withUnsafeBytes({ sameAsMemory($0.baseAddress!) }),
           cache.indirectTables.allSatisfy({ t in t.bytes.withUnsafeBytes { memory.holds($0, at: t.address) } }) {
            cache.noteRead(changed: false, reusedChains: 0)
            var p = previous
            p.moving = false
            return p
        }
        var image = [UInt8](repeating: 0, count: imageBytes)
        image.withUnsafeMutableBytes { b in
            let p = b.baseAddress!
            p.copyMemory(from: ring, byteCount: ringBytes)
            (p + ringBytes).copyMemory(from: driverArea, byteCount: 4)
            (p + ringBytes + 4).copyMemory(from: deviceArea, byteCount: 4)
        }
        s.moving = !image.withUnsafeBytes { sameAsMemory($0.baseAddress!) }
        var r = GuestPackedRing()
        image.withUnsafeBytes { b in
            let p = b.baseAddress!
            r.slots.reserveCapacity(n)
            for i in 0..<n {
                let o = 16 * i
                r.slots.append(GuestPackedSlot(addr: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self)),
                                               len: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o + 8, as: UInt32.self)),
                                               id: Self.u16(p, o + 12), flags: Self.u16(p, o + 14)))
            }
            r.driverEvent = GuestPackedEvent(flags: Self.u16(p, ringBytes + 2), offWrap: Self.u16(p, ringBytes))
            r.deviceEvent = GuestPackedEvent(flags: Self.u16(p, ringBytes + 6), offWrap: Self.u16(p, ringBytes + 4))
        }
        Self.derivePacked(&r, &s, size: n, eventIdx: eventIdx)
        // The buffers the device holds, walked; their problems are the guest's (or a torn read's).
        var tables: [(address: UInt64, bytes: [UInt8])] = []
        let walked = walkAndRecordPacked(r, owned: s.outstanding ?? 0, memory: memory, previous: sameKey ? cache?.snapshot?.packed : nil,
                                         moving: s.moving, sample: sample, indirectTables: &tables, problems: &s.problems)
        if keepsChains {
            for id in 0..<n where walked.held[id] { if let c = walked.offers.byId[id]?.chain { s.chains.append(c) } }
        }
        s.packed?.offers = walked.offers
        if let cache {
            cache.key = key
            cache.image = image
            cache.snapshot = s
            cache.indirectTables = tables
            cache.noteRead(changed: true, reusedChains: 0)
        }
        return s
    }

    /// Positions, states and buffer ids from the slots (the rules at the top of this file).
    static func derivePacked(_ r: inout GuestPackedRing, _ s: inout GuestRingSnapshot, size n: Int, eventIdx: Bool) {
        // The driver position: where the AVAIL bits change.
        let first = r.slots[0].availBit
        var change = 0
        while change < n && r.slots[change].availBit == first { change += 1 }
        if change == n {
            r.driver = GuestPackedPosition(offset: 0, wrap: !first)
        } else {
            r.driver = GuestPackedPosition(offset: UInt16(change), wrap: first)
            if let odd = (change..<n).first(where: { r.slots[$0].availBit == first }) {
                s.problems.append("AVAIL bits change more than once (slots \(change) and \(odd)): a driver writing out of order, or a torn read")
            }
        }
        // The device position: just past the newest used slot within the lap before the driver.
        let pa = Int(r.driver.offset)
        var newestUsedBack: Int?
        for back in 1...n {
            let slot = r.slots[(pa - back + n) % n]
            if slot.availBit == slot.usedBit { newestUsedBack = back; break }
        }
        let lapStart = r.driver.advanced(by: n, size: n)  // the same slot, one lap earlier: the inverse wrap counter
        let owned = (newestUsedBack ?? (n + 1)) - 1        // slots the device owns, 0…n
        r.device = lapStart.advanced(by: n - owned, size: n)
        s.outstanding = owned

        // The driver's next used position (EVENT_IDX, DESC), if it lies within a lap before the device.
        if eventIdx, r.driverEvent.flags & 3 == 2 {
            let offset = r.driverEvent.offWrap & 0x7FFF
            if Int(offset) < n {
                let guess = GuestPackedPosition(offset: offset, wrap: r.driverEvent.offWrap & 0x8000 != 0)
                if wireRingDistance(from: guess.offWrap, to: r.device.offWrap, size: UInt16(n), format: .packed) <= n {
                    r.driverUsed = guess
                }
            }
        }
        // Slot and buffer states.
        r.slotStates = [WireDescriptorState](repeating: .free, count: n)
        s.states = [WireDescriptorState](repeating: .free, count: n)
        s.descriptors = [GuestDescriptor](repeating: GuestDescriptor(addr: 0, len: 0, flags: 0, next: 0), count: n)
        func mark(_ slotIndex: Int, _ state: WireDescriptorState) {
            r.slotStates[slotIndex] = state
            let slot = r.slots[slotIndex]
            // The buffer id is in a chain's last descriptor (§2.8.6): tails with NEXT carry none.
            if state == .avail, slot.flags & VIRTQ_DESC_F_NEXT != 0 { return }
            guard Int(slot.id) < n else {
                s.problems.append("\(state == .avail ? "avail" : "used") slot \(slotIndex): id \(slot.id) ≥ size \(n)")
                return
            }
            s.states[Int(slot.id)] = state
            s.descriptors[Int(slot.id)] = GuestDescriptor(addr: state == .avail ? slot.addr : 0, len: slot.len,
                                                          flags: slot.flags & (VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_INDIRECT), next: 0)
        }
        for k in 0..<owned { mark(Int(r.device.advanced(by: k, size: n).offset), .avail) }
        if let u = r.driverUsed {
            let pending = wireRingDistance(from: u.offWrap, to: r.device.offWrap, size: UInt16(n), format: .packed)
            for k in 0..<pending {
                let i = Int(u.advanced(by: k, size: n).offset)
                // Slots the device skipped (a chain's tails) are not used descriptors.
                if r.slots[i].availBit == r.slots[i].usedBit { mark(i, .used) }
            }
        }
        s.availIdx = r.driver.offWrap
        s.usedIdx = r.device.offWrap
        s.driverLastUsed = r.driverUsed?.offWrap
        s.availFlags = r.driverEvent.flags
        s.usedEvent = eventIdx ? r.driverEvent.offWrap : nil
        s.usedFlags = r.deviceEvent.flags
        s.availEvent = eventIdx ? r.deviceEvent.offWrap : nil
        s.packed = r
    }
}
