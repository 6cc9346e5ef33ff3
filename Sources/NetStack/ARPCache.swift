// The neighbour table: IPv4 → MAC mappings learned from ARP, and the packets waiting for a
// mapping that is being asked for.
//
// Both are small arrays searched linearly: a unikernel talks to a handful of neighbours
// (under QEMU user networking, one gateway), and an array needs no hashing seed.

struct ARPCacheEntry {
    var ip: IPv4Address
    var mac: MACAddress
    var updatedMs: UInt64
}

struct ARPCache {
    /// RFC 1122 §2.3.2.1 asks for a timeout; Linux-like 5 minutes.
    static let entryLifetimeMs: UInt64 = 300_000
    let capacity: Int
    private(set) var entries: [ARPCacheEntry] = []

    init(capacity: Int = 32) {
        self.capacity = capacity
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

    /// RFC 826's merge: refreshes an existing entry for `ip`; adds one only when `insert`
    /// (the packet was meant for us), evicting the stalest entry when full. Returns whether
    /// the cache now holds `ip`.
    @discardableResult
    mutating func update(ip: IPv4Address, mac: MACAddress, nowMs: UInt64, insert: Bool) -> Bool {
        if let index = entries.firstIndex(where: { $0.ip == ip }) {
            entries[index].mac = mac
            entries[index].updatedMs = nowMs
            return true
        }
        guard insert, capacity > 0 else { return false }
        let entry = ARPCacheEntry(ip: ip, mac: mac, updatedMs: nowMs)
        if entries.count < capacity {
            entries.append(entry)
        } else {
            var stalest = 0
            for index in entries.indices where entries[index].updatedMs < entries[stalest].updatedMs {
                stalest = index
            }
            entries[stalest] = entry
        }
        return true
    }

    private func isExpired(_ entry: ARPCacheEntry, nowMs: UInt64) -> Bool {
        // A clock that went backwards keeps the entry.
        nowMs > entry.updatedMs && nowMs - entry.updatedMs >= ARPCache.entryLifetimeMs
    }
}

/// Outgoing frames waiting for the MAC of `ip` (the next hop). Frames are complete except
/// for the Ethernet destination, which is filled in when the answer comes.
struct ARPPendingResolution {
    var ip: IPv4Address
    var frames: [[UInt8]]
    /// ARP requests sent so far.
    var attempts: Int
    /// When to send the next request, or give up once `attempts` reached the limit.
    var deadlineMs: UInt64
}
