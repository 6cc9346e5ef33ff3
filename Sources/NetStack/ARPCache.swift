// The neighbour table: IPv4 → MAC mappings learned from ARP. The packets waiting for a
// mapping that is being asked for are ARPResolver's.
//
// Both are small arrays searched linearly: a unikernel talks to a handful of neighbours
// (under QEMU user networking, one gateway), and an array needs no hashing seed.
//
// Strangers on the segment cannot push entries out: the stack adds an entry only for an
// address it is resolving (NetStack.receiveARP), and the `pinned` address (the gateway)
// is never the one evicted to make room.

struct ARPCacheEntry {
    var ip: IPv4Address
    var mac: MACAddress
    var updatedMs: UInt64
}

struct ARPCache {
    /// RFC 1122 §2.3.2.1 asks for a timeout; Linux-like 5 minutes.
    static let entryLifetimeMs: UInt64 = 300_000
    let capacity: Int
    /// Never evicted for another entry (it still expires, and is then resolved again).
    let pinned: IPv4Address?
    private(set) var entries: [ARPCacheEntry] = []

    init(capacity: Int = 32, pinned: IPv4Address? = nil) {
        self.capacity = capacity
        self.pinned = pinned
        entries.reserveCapacity(capacity)
    }

    /// The MAC for `ip` if known and not expired. An expired entry is removed.
    mutating func lookup(_ ip: IPv4Address, nowMs: UInt64) -> MACAddress? {
        guard let index = entries.firstIndex(where: { $0.ip == ip }) else { return nil }
        if isExpired(entries[index], nowMs: nowMs) {
            entries.remove(at: index)
            return nil
        }
        return entries[index].mac
    }

    /// Sets `ip` → `mac` (an answer to our own question), adding the entry if needed and
    /// evicting the stalest unpinned entry when full. Returns whether the cache holds `ip`.
    @discardableResult
    mutating func update(ip: IPv4Address, mac: MACAddress, nowMs: UInt64) -> Bool {
        if let index = entries.firstIndex(where: { $0.ip == ip }) {
            entries[index].mac = mac
            entries[index].updatedMs = nowMs
            return true
        }
        guard capacity > 0 else { return false }
        let entry = ARPCacheEntry(ip: ip, mac: mac, updatedMs: nowMs)
        if entries.count < capacity {
            entries.append(entry)
            return true
        }
        var stalest: Int?
        for index in entries.indices where entries[index].ip != pinned {
            if stalest.map({ entries[index].updatedMs < entries[$0].updatedMs }) ?? true { stalest = index }
        }
        guard let stalest else { return false }
        entries[stalest] = entry
        return true
    }

    /// RFC 826's merge for a packet we did not ask for: an existing entry's lifetime is
    /// renewed when the packet confirms its MAC. A different MAC is not taken from an
    /// unsolicited packet (that is how ARP spoofing works); the entry is corrected the
    /// next time we resolve the address. Returns whether the entry was renewed.
    @discardableResult
    mutating func refresh(ip: IPv4Address, mac: MACAddress, nowMs: UInt64) -> Bool {
        guard let index = entries.firstIndex(where: { $0.ip == ip }), entries[index].mac == mac else { return false }
        entries[index].updatedMs = nowMs
        return true
    }

    private func isExpired(_ entry: ARPCacheEntry, nowMs: UInt64) -> Bool {
        // A clock that went backwards keeps the entry.
        nowMs > entry.updatedMs && nowMs - entry.updatedMs >= ARPCache.entryLifetimeMs
    }
}
