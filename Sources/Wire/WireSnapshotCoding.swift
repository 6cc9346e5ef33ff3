// The snapshot's byte layout (docs/protocol.md §4): descriptors, queue status, counters, faults,
// ring view, memory, and the snapshot header. Each type writes itself to a `WireWriter` and reads
// itself back from a `WireReader`; multi-byte integers are little-endian, "varint" is unsigned
// LEB128. The other messages' layouts are in WireMessageCoding.swift.

// MARK: - Descriptors

/// The descriptor section's first byte.
public enum WireDescriptorEncoding: UInt8, Sendable {
    /// `count` entries, entry i describing descriptor i (count = queue size).
    case full = 0
    /// `count` entries of (id u16, entry): only descriptors changed since the previous snapshot.
    case delta = 1
}

extension WireDescriptor {
    /// Bytes per entry: state u8, addr u64, len u32, flags u16, next u16.
    public static let encodedBytes = 17

    @inline(__always)
    public func write(to w: inout WireWriter) {
        w.writeU8(state.rawValue)
        w.writeU64(addr)
        w.writeU32(len)
        w.writeU16(flags)
        w.writeU16(next)
    }

    @inline(__always)
    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireDescriptor {
        let raw = try r.readU8()
        guard let state = WireDescriptorState(rawValue: raw) else { throw .invalidValue(raw) }
        let addr = try r.readU64()
        let len = try r.readU32()
        let flags = try r.readU16()
        let next = try r.readU16()
        return WireDescriptor(state: state, addr: addr, len: len, flags: flags, next: next)
    }
}

extension WireDescriptorUpdate {
    public func write(to w: inout WireWriter) {
        switch self {
        case .full(let table):
            w.writeU8(WireDescriptorEncoding.full.rawValue)
            w.writeU16(UInt16(truncatingIfNeeded: table.count))
            for d in table { d.write(to: &w) }
        case .delta(let changes):
            w.writeU8(WireDescriptorEncoding.delta.rawValue)
            w.writeU16(UInt16(truncatingIfNeeded: changes.count))
            for c in changes {
                w.writeU16(c.id)
                c.descriptor.write(to: &w)
            }
        }
    }

    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireDescriptorUpdate {
        let raw = try r.readU8()
        guard let encoding = WireDescriptorEncoding(rawValue: raw) else { throw .invalidValue(raw) }
        let count = Int(try r.readU16())
        switch encoding {
        case .full:
            // Check the bytes are there before reserving: a hostile count cannot make us allocate.
            try r.need(count * WireDescriptor.encodedBytes)
            var table: [WireDescriptor] = []
            table.reserveCapacity(count)
            for _ in 0..<count { table.append(try WireDescriptor.read(from: &r)) }
            return .full(table)
        case .delta:
            try r.need(count * (2 + WireDescriptor.encodedBytes))
            var changes: [WireDescriptorChange] = []
            changes.reserveCapacity(count)
            for _ in 0..<count {
                let id = try r.readU16()
                changes.append(WireDescriptorChange(id: id, descriptor: try WireDescriptor.read(from: &r)))
            }
            return .delta(changes)
        }
    }
}

// MARK: - Snapshot

extension WireQueueCounters {
    public func write(to w: inout WireWriter) {
        w.writeVarint(packets)
        w.writeVarint(bytes)
        w.writeVarint(drops)
        w.writeVarint(kicks)
        w.writeVarint(interrupts)
        w.writeVarint(kicksSuppressed)
        w.writeVarint(interruptsSuppressed)
        w.writeVarint(injectedDrops)
        w.writeVarint(injectedCorruptions)
        w.writeVarint(kicksWithheld)
        w.writeVarint(interruptsIgnored)
    }

    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireQueueCounters {
        let packets = try r.readVarint()
        let bytes = try r.readVarint()
        let drops = try r.readVarint()
        let kicks = try r.readVarint()
        let interrupts = try r.readVarint()
        let kicksSuppressed = try r.readVarint()
        let interruptsSuppressed = try r.readVarint()
        let injectedDrops = try r.readVarint()
        let injectedCorruptions = try r.readVarint()
        let kicksWithheld = try r.readVarint()
        let interruptsIgnored = try r.readVarint()
        return WireQueueCounters(packets: packets, bytes: bytes, drops: drops, kicks: kicks, interrupts: interrupts,
                                 kicksSuppressed: kicksSuppressed, interruptsSuppressed: interruptsSuppressed,
                                 injectedDrops: injectedDrops, injectedCorruptions: injectedCorruptions,
                                 kicksWithheld: kicksWithheld, interruptsIgnored: interruptsIgnored)
    }
}

extension WireQueueFaults {
    /// Bytes on the wire: flags u8, drop u16, corrupt u16, nokick u16.
    public static let encodedBytes = 7

    public func write(to w: inout WireWriter) {
        w.writeU8((starving ? WireQueueFaults.starvingFlag : 0) | (noirq ? WireQueueFaults.noirqFlag : 0))
        w.writeU16(drop)
        w.writeU16(corrupt)
        w.writeU16(nokick)
    }

    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireQueueFaults {
        let flags = try r.readU8()
        guard flags & ~(starvingFlag | noirqFlag) == 0 else { throw .invalidValue(flags) }
        let drop = try r.readU16()
        let corrupt = try r.readU16()
        let nokick = try r.readU16()
        return WireQueueFaults(drop: drop, corrupt: corrupt, nokick: nokick,
                               starving: flags & starvingFlag != 0, noirq: flags & noirqFlag != 0)
    }
}

extension WireQueueStatus {
    public func write(to w: inout WireWriter) {
        w.writeU8(queue)
        w.writeU16(availIdx)
        w.writeU16(usedIdx)
        w.writeU16(lastUsedIdx)
        w.writeU16(freeCount)
        w.writeU16(pendingUsed)
        w.writeBool(paused)
        counters.write(to: &w)
        faults.write(to: &w)
    }

    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireQueueStatus {
        let queue = try r.readU8()
        let availIdx = try r.readU16()
        let usedIdx = try r.readU16()
        let lastUsedIdx = try r.readU16()
        let freeCount = try r.readU16()
        let pendingUsed = try r.readU16()
        let paused = try r.readBool()
        let counters = try WireQueueCounters.read(from: &r)
        let faults = try WireQueueFaults.read(from: &r)
        return WireQueueStatus(
            queue: queue, availIdx: availIdx, usedIdx: usedIdx, lastUsedIdx: lastUsedIdx,
            freeCount: freeCount, pendingUsed: pendingUsed, paused: paused, counters: counters, faults: faults)
    }
}

extension WireRingView {
    /// Largest window either list may carry (its count is a u8).
    public static let maxEntries = 255

    public func write(to w: inout WireWriter) {
        w.writeU8(flags)
        w.writeU16(availFlags)
        w.writeU16(usedFlags)
        w.writeU16(usedEvent)
        w.writeU16(availEvent)
        w.writeU16(availStart)
        let availCount = min(availEntries.count, WireRingView.maxEntries)
        w.writeU8(UInt8(availCount))
        for i in 0..<availCount { w.writeVarint(UInt64(availEntries[i])) }
        w.writeU16(usedStart)
        let usedCount = min(usedEntries.count, WireRingView.maxEntries)
        w.writeU8(UInt8(usedCount))
        for i in 0..<usedCount {
            w.writeVarint(UInt64(usedEntries[i].id))
            w.writeVarint(UInt64(usedEntries[i].len))
        }
    }

    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireRingView {
        var v = WireRingView()
        v.flags = try r.readU8()
        v.availFlags = try r.readU16()
        v.usedFlags = try r.readU16()
        v.usedEvent = try r.readU16()
        v.availEvent = try r.readU16()
        v.availStart = try r.readU16()
        let availCount = Int(try r.readU8())
        try r.need(availCount)
        v.availEntries.reserveCapacity(availCount)
        for _ in 0..<availCount {
            let raw = try r.readVarint()
            guard raw <= UInt64(UInt16.max) else { throw .varintOverflow }
            v.availEntries.append(UInt16(raw))
        }
        v.usedStart = try r.readU16()
        let usedCount = Int(try r.readU8())
        try r.need(usedCount * 2)
        v.usedEntries.reserveCapacity(usedCount)
        for _ in 0..<usedCount {
            let id = try r.readVarint()
            let len = try r.readVarint()
            guard id <= UInt64(UInt32.max), len <= UInt64(UInt32.max) else { throw .varintOverflow }
            v.usedEntries.append(WireUsedElement(id: UInt32(id), len: UInt32(len)))
        }
        return v
    }
}

extension WireMemory {
    public func write(to w: inout WireWriter) {
        w.writeVarint(heapTotal)
        w.writeVarint(heapUsed)
        w.writeVarint(heapFree)
        w.writeVarint(netReserved)
        w.writeVarint(netLimit)
    }

    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireMemory {
        let heapTotal = try r.readVarint()
        let heapUsed = try r.readVarint()
        let heapFree = try r.readVarint()
        let netReserved = try r.readVarint()
        let netLimit = try r.readVarint()
        return WireMemory(heapTotal: heapTotal, heapUsed: heapUsed, heapFree: heapFree, netReserved: netReserved, netLimit: netLimit)
    }
}

/// The fixed part of a snapshot, before its queues: what the kernel writes first when it streams a
/// snapshot queue by queue (`WireFrameEncoder.beginSnapshot`), and what a reader reads first.
public struct WireSnapshotHeader: Equatable, Sendable {
    /// The snapshot's fields (`WireSnapshot` documents them) with no queues: they follow.
    public var fixed: WireSnapshot
    /// How many queues follow.
    public var queueCount: UInt8

    public init(snapshotNumber: UInt32, uptimeNs: UInt64, rateHz: UInt16, droppedFrames: UInt64, memory: WireMemory = .zero,
                deviceStatus: [UInt8] = [], queueCount: UInt8) {
        fixed = WireSnapshot(snapshotNumber: snapshotNumber, uptimeNs: uptimeNs, rateHz: rateHz, droppedFrames: droppedFrames,
                             memory: memory, deviceStatus: deviceStatus, queues: [])
        self.queueCount = queueCount
    }

    init(fixed: WireSnapshot, queueCount: UInt8) {
        self.fixed = fixed
        self.queueCount = queueCount
    }

    public func write(to w: inout WireWriter) {
        w.writeU32(fixed.snapshotNumber)
        w.writeU64(fixed.uptimeNs)
        w.writeU16(fixed.rateHz)
        w.writeVarint(fixed.droppedFrames)
        fixed.memory.write(to: &w)
        let devices = min(fixed.deviceStatus.count, 255)
        w.writeU8(UInt8(devices))
        for i in 0..<devices { w.writeU8(fixed.deviceStatus[i]) }
        w.writeU8(queueCount)
    }

    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireSnapshotHeader {
        let number = try r.readU32()
        let uptime = try r.readU64()
        let rate = try r.readU16()
        let dropped = try r.readVarint()
        let memory = try WireMemory.read(from: &r)
        let devices = Int(try r.readU8())
        let deviceStatus = try r.readBytes(devices)
        let count = try r.readU8()
        return WireSnapshotHeader(snapshotNumber: number, uptimeNs: uptime, rateHz: rate, droppedFrames: dropped,
                                  memory: memory, deviceStatus: deviceStatus, queueCount: count)
    }
}

extension WireSnapshot {
    public func write(to w: inout WireWriter) {
        var fixed = self
        fixed.queues = []
        WireSnapshotHeader(fixed: fixed, queueCount: UInt8(truncatingIfNeeded: queues.count)).write(to: &w)
        for q in queues {
            q.status.write(to: &w)
            q.ring.write(to: &w)
            q.descriptors.write(to: &w)
        }
    }

    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireSnapshot {
        let header = try WireSnapshotHeader.read(from: &r)
        var queues: [WireQueueSnapshot] = []
        queues.reserveCapacity(Int(header.queueCount))
        for _ in 0..<header.queueCount {
            let status = try WireQueueStatus.read(from: &r)
            let ring = try WireRingView.read(from: &r)
            let descriptors = try WireDescriptorUpdate.read(from: &r)
            queues.append(WireQueueSnapshot(status: status, ring: ring, descriptors: descriptors))
        }
        var snapshot = header.fixed
        snapshot.queues = queues
        return snapshot
    }
}
