// Payload layouts: the single definition of every message's bytes (docs/protocol.md §Messages).
// Each type writes itself to a `WireWriter` and reads itself back from a `WireReader`.
// Multi-byte integers are little-endian; "varint" is unsigned LEB128.
// Over 400 lines on purpose: the whole byte layout in one file, in the order docs/protocol.md
// gives it, so the two can be read side by side and every version's changes sit in one place.

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

/// The fixed part of a snapshot, before its queues.
public struct WireSnapshotHeader: Equatable, Sendable {
    public var snapshotNumber: UInt32
    public var uptimeNs: UInt64
    public var rateHz: UInt16
    public var droppedFrames: UInt64
    public var memory: WireMemory
    /// Each device's status byte, in hello device order (at most 255).
    public var deviceStatus: [UInt8]
    public var queueCount: UInt8

    public init(snapshotNumber: UInt32, uptimeNs: UInt64, rateHz: UInt16, droppedFrames: UInt64, memory: WireMemory = .zero,
                deviceStatus: [UInt8] = [], queueCount: UInt8) {
        self.snapshotNumber = snapshotNumber
        self.uptimeNs = uptimeNs
        self.rateHz = rateHz
        self.droppedFrames = droppedFrames
        self.memory = memory
        self.deviceStatus = deviceStatus
        self.queueCount = queueCount
    }

    public func write(to w: inout WireWriter) {
        w.writeU32(snapshotNumber)
        w.writeU64(uptimeNs)
        w.writeU16(rateHz)
        w.writeVarint(droppedFrames)
        memory.write(to: &w)
        let devices = min(deviceStatus.count, 255)
        w.writeU8(UInt8(devices))
        for i in 0..<devices { w.writeU8(deviceStatus[i]) }
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
        WireSnapshotHeader(
            snapshotNumber: snapshotNumber, uptimeNs: uptimeNs, rateHz: rateHz,
            droppedFrames: droppedFrames, memory: memory, deviceStatus: deviceStatus,
            queueCount: UInt8(truncatingIfNeeded: queues.count)
        ).write(to: &w)
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
        return WireSnapshot(
            snapshotNumber: header.snapshotNumber, uptimeNs: header.uptimeNs, rateHz: header.rateHz,
            droppedFrames: header.droppedFrames, memory: header.memory, deviceStatus: header.deviceStatus, queues: queues)
    }
}

// MARK: - Hello

extension WireHello {
    public func write(to w: inout WireWriter) {
        w.writeU8(protocolVersion)
        w.writeString(kernelVersion)
        w.writeU64(uptimeNs)
        for i in 0..<6 { w.writeU8(i < mac.count ? mac[i] : 0) }
        w.writeU8(UInt8(truncatingIfNeeded: devices.count))
        for d in devices {
            w.writeString(d.name)
            w.writeU16(d.deviceType)
            w.writeU64(d.features)
            w.writeU64(d.offeredFeatures)
            w.writeU8(d.status)
        }
        w.writeU8(UInt8(truncatingIfNeeded: queues.count))
        for q in queues {
            w.writeU8(q.queue)
            w.writeString(q.name)
            w.writeU16(q.size)
            w.writeU8(q.format.rawValue)
        }
    }

    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireHello {
        let protocolVersion = try r.readU8()
        let kernelVersion = try r.readString()
        let uptimeNs = try r.readU64()
        let mac = try r.readBytes(6)
        let deviceCount = try r.readU8()
        var devices: [WireDeviceInfo] = []
        for _ in 0..<deviceCount {
            let name = try r.readString()
            let type = try r.readU16()
            let features = try r.readU64()
            let offered = try r.readU64()
            let status = try r.readU8()
            devices.append(WireDeviceInfo(name: name, deviceType: type, features: features, offeredFeatures: offered, status: status))
        }
        let queueCount = try r.readU8()
        var queues: [WireQueueInfo] = []
        for _ in 0..<queueCount {
            let index = try r.readU8()
            let name = try r.readString()
            let size = try r.readU16()
            let formatByte = try r.readU8()
            guard let format = WireRingFormat(rawValue: formatByte) else { throw .invalidValue(formatByte) }
            queues.append(WireQueueInfo(queue: index, name: name, size: size, format: format))
        }
        return WireHello(kernelVersion: kernelVersion, protocolVersion: protocolVersion, uptimeNs: uptimeNs, mac: mac,
                         devices: devices, queues: queues)
    }
}

// MARK: - Event

extension WireEvent {
    public func write(to w: inout WireWriter) {
        w.writeU64(uptimeNs)
        switch kind {
        case let .usedConsumed(queue, descriptor, length):
            w.writeU8(1); w.writeU8(queue); w.writeU16(descriptor); w.writeU32(length)
        case let .drop(queue, reason):
            w.writeU8(2); w.writeU8(queue); w.writeU8(reason.rawValue)
        case let .kick(queue):
            w.writeU8(3); w.writeU8(queue)
        case let .interrupt(queue):
            w.writeU8(4); w.writeU8(queue)
        case let .stepped(queue, count):
            w.writeU8(5); w.writeU8(queue); w.writeU16(count)
        case let .paused(queue):
            w.writeU8(6); w.writeU8(queue)
        case let .resumed(queue):
            w.writeU8(7); w.writeU8(queue)
        case .countersReset:
            w.writeU8(8)
        case let .link(up):
            w.writeU8(9); w.writeBool(up)
        case let .usedBatch(queue, first, elements):
            WireEvent.writeUsedBatchHead(queue: queue, firstUsedIdx: first, count: elements.count, to: &w)
            for e in elements.prefix(WireEvent.maxBatchElements) { WireEvent.writeUsedBatchElement(e, to: &w) }
        case let .captureCounts(queue, frames, missed):
            w.writeU8(11); w.writeU8(queue); w.writeVarint(frames); w.writeVarint(missed)
        }
    }

    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireEvent {
        let uptime = try r.readU64()
        let raw = try r.readU8()
        let kind: WireEventKind
        switch raw {
        case 1: kind = .usedConsumed(queue: try r.readU8(), descriptor: try r.readU16(), length: try r.readU32())
        case 2: kind = .drop(queue: try r.readU8(), reason: WireDropReason(rawValue: try r.readU8()))
        case 3: kind = .kick(queue: try r.readU8())
        case 4: kind = .interrupt(queue: try r.readU8())
        case 5: kind = .stepped(queue: try r.readU8(), count: try r.readU16())
        case 6: kind = .paused(queue: try r.readU8())
        case 7: kind = .resumed(queue: try r.readU8())
        case 8: kind = .countersReset
        case 9: kind = .link(up: try r.readBool())
        case 10:
            let queue = try r.readU8()
            let first = try r.readU16()
            let count = Int(try r.readU16())
            if count > WireEvent.maxBatchElements { throw .countTooLarge(count) }
            try r.need(count * 6)
            var elements: [WireUsedElement] = []
            elements.reserveCapacity(count)
            for _ in 0..<count {
                let id = try r.readU16()
                elements.append(WireUsedElement(id: UInt32(id), len: try r.readU32()))
            }
            kind = .usedBatch(queue: queue, firstUsedIdx: first, elements: elements)
        case 11: kind = .captureCounts(queue: try r.readU8(), frames: try r.readVarint(), missed: try r.readVarint())
        default: throw .invalidValue(raw)
        }
        return WireEvent(uptimeNs: uptime, kind: kind)
    }
}

extension WireEvent {
    /// The most elements one `usedBatch` event carries (6 bytes each: 6 KiB, well inside a
    /// console buffer); a longer step is reported in several events.
    public static let maxBatchElements = 1024

    /// A `usedBatch` event's fields before its elements (kind byte included).
    static func writeUsedBatchHead(queue: UInt8, firstUsedIdx: UInt16, count: Int, to w: inout WireWriter) {
        w.writeU8(10); w.writeU8(queue); w.writeU16(firstUsedIdx)
        w.writeU16(UInt16(truncatingIfNeeded: min(count, maxBatchElements)))
    }

    /// One element: id u16 (a chain head the driver accepted is below the queue size), len u32.
    static func writeUsedBatchElement(_ e: WireUsedElement, to w: inout WireWriter) {
        w.writeU16(UInt16(truncatingIfNeeded: e.id)); w.writeU32(e.len)
    }
}

// MARK: - Reply

extension WireReply {
    /// Everything up to the body kind byte; shared with the kernel's copy-free dump encoder.
    static func writeHead(commandSeq: UInt32, status: WireReplyStatus, message: String, to w: inout WireWriter) {
        w.writeU32(commandSeq)
        w.writeU8(status.rawValue)
        w.writeString(message)
    }

    /// The dump body's fields before its bytes.
    static func writeDumpHead(queue: UInt8, descriptor: UInt16, guestAddress: UInt64, bufferLength: UInt32, stampNs: UInt64,
                              byteCount: Int, to w: inout WireWriter) {
        w.writeU8(1)
        w.writeU8(queue)
        w.writeU16(descriptor)
        w.writeU64(guestAddress)
        w.writeU32(bufferLength)
        w.writeU64(stampNs)
        w.writeU16(UInt16(truncatingIfNeeded: byteCount))
    }

    public func write(to w: inout WireWriter) {
        WireReply.writeHead(commandSeq: commandSeq, status: status, message: message, to: &w)
        switch body {
        case .none:
            w.writeU8(0)
        case .dump(let dump):
            WireReply.writeDumpHead(
                queue: dump.queue, descriptor: dump.descriptor, guestAddress: dump.guestAddress,
                bufferLength: dump.bufferLength, stampNs: dump.stampNs, byteCount: dump.bytes.count, to: &w)
            w.writeBytes(dump.bytes)
        }
    }

    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireReply {
        let seq = try r.readU32()
        let status = WireReplyStatus(rawValue: try r.readU8())
        let message = try r.readString()
        let bodyKind = try r.readU8()
        switch bodyKind {
        case 0:
            return WireReply(commandSeq: seq, status: status, message: message, body: .none)
        case 1:
            let queue = try r.readU8()
            let descriptor = try r.readU16()
            let address = try r.readU64()
            let length = try r.readU32()
            let stamp = try r.readU64()
            let count = Int(try r.readU16())
            if count > WireProtocol.maxDumpBytes { throw .countTooLarge(count) }
            let bytes = try r.readBytes(count)
            let dump = WireDump(queue: queue, descriptor: descriptor, guestAddress: address, bufferLength: length,
                                stampNs: stamp, bytes: bytes)
            return WireReply(commandSeq: seq, status: status, message: message, body: .dump(dump))
        default:
            throw .invalidValue(bodyKind)
        }
    }
}

// MARK: - Captured frame

extension WireCapturedFrame {
    /// The fields before the bytes; shared with the kernel's copy-free capture encoder.
    static func writeHead(uptimeNs: UInt64, queue: UInt8, descriptor: UInt16, availIdx: UInt16, usedIdx: UInt16,
                          number: UInt32, bufferLength: UInt32, headerBytes: UInt8, byteCount: Int, to w: inout WireWriter) {
        w.writeU64(uptimeNs)
        w.writeU8(queue)
        w.writeU16(descriptor)
        w.writeU16(availIdx)
        w.writeU16(usedIdx)
        w.writeU32(number)
        w.writeU32(bufferLength)
        w.writeU8(headerBytes)
        w.writeU16(UInt16(truncatingIfNeeded: byteCount))
    }

    /// Bytes before `bytes`.
    public static let headBytes = 8 + 1 + 2 + 2 + 2 + 4 + 4 + 1 + 2

    public func write(to w: inout WireWriter) {
        let count = min(bytes.count, WireProtocol.maxCaptureBytes)
        WireCapturedFrame.writeHead(uptimeNs: uptimeNs, queue: queue, descriptor: descriptor, availIdx: availIdx,
                                    usedIdx: usedIdx, number: number, bufferLength: bufferLength, headerBytes: headerBytes,
                                    byteCount: count, to: &w)
        w.writeBytes(Array(bytes.prefix(count)))
    }

    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireCapturedFrame {
        let uptime = try r.readU64()
        let queue = try r.readU8()
        let descriptor = try r.readU16()
        let availIdx = try r.readU16()
        let usedIdx = try r.readU16()
        let number = try r.readU32()
        let bufferLength = try r.readU32()
        let headerBytes = try r.readU8()
        let count = Int(try r.readU16())
        if count > WireProtocol.maxCaptureBytes { throw .countTooLarge(count) }
        let bytes = try r.readBytes(count)
        return WireCapturedFrame(uptimeNs: uptime, queue: queue, descriptor: descriptor, availIdx: availIdx, usedIdx: usedIdx,
                                 number: number, bufferLength: bufferLength, headerBytes: headerBytes, bytes: bytes)
    }
}

// MARK: - Command

extension WireCommand {
    public func write(to w: inout WireWriter) {
        switch self {
        case .hello: w.writeU8(1)
        case let .pause(queue): w.writeU8(2); w.writeU8(queue)
        case let .resume(queue): w.writeU8(3); w.writeU8(queue)
        case let .step(queue, count): w.writeU8(4); w.writeU8(queue); w.writeU16(count)
        case let .dump(queue, selector):
            w.writeU8(5); w.writeU8(queue)
            switch selector {
            case .descriptor(let id): w.writeU8(0); w.writeU16(id)
            case .next: w.writeU8(1)
            case .last: w.writeU8(2)
            }
        case let .setSnapshotRate(hz): w.writeU8(6); w.writeU16(hz)
        case .resetCounters: w.writeU8(7)
        case .requestFull: w.writeU8(8)
        case .stats: w.writeU8(9)
        case let .inject(queue, fault):
            w.writeU8(10); w.writeU8(queue)
            switch fault {
            case .drop(let n): w.writeU8(1); w.writeU16(n)
            case .corrupt(let n): w.writeU8(2); w.writeU16(n)
            case .starve: w.writeU8(3)
            case .unstarve: w.writeU8(4)
            case .nokick(let n): w.writeU8(5); w.writeU16(n)
            case .noirq: w.writeU8(6)
            case .clear: w.writeU8(7)
            }
        case let .kick(queue): w.writeU8(11); w.writeU8(queue)
        case let .poll(queue): w.writeU8(12); w.writeU8(queue)
        case let .capture(on): w.writeU8(13); w.writeBool(on)
        }
    }

    public static func read(from r: inout WireReader) throws(WireMalformedReason) -> WireCommand {
        let raw = try r.readU8()
        switch raw {
        case 1: return .hello
        case 2: return .pause(queue: try r.readU8())
        case 3: return .resume(queue: try r.readU8())
        case 4: return .step(queue: try r.readU8(), count: try r.readU16())
        case 5:
            let queue = try r.readU8()
            let selector = try r.readU8()
            switch selector {
            case 0: return .dump(queue: queue, selector: .descriptor(try r.readU16()))
            case 1: return .dump(queue: queue, selector: .next)
            case 2: return .dump(queue: queue, selector: .last)
            default: throw .invalidValue(selector)
            }
        case 6: return .setSnapshotRate(hz: try r.readU16())
        case 7: return .resetCounters
        case 8: return .requestFull
        case 9: return .stats
        case 10:
            let queue = try r.readU8()
            let kind = try r.readU8()
            let fault: WireFault
            switch kind {
            case 1: fault = .drop(try r.readU16())
            case 2: fault = .corrupt(try r.readU16())
            case 3: fault = .starve
            case 4: fault = .unstarve
            case 5: fault = .nokick(try r.readU16())
            case 6: fault = .noirq
            case 7: fault = .clear
            default: throw .invalidValue(kind)
            }
            return .inject(queue: queue, fault: fault)
        case 11: return .kick(queue: try r.readU8())
        case 12: return .poll(queue: try r.readU8())
        case 13: return .capture(on: try r.readBool())
        default: throw .invalidValue(raw)
        }
    }
}

// MARK: - Message

extension WireMessage {
    public func writePayload(to w: inout WireWriter) {
        switch self {
        case .hello(let m): m.write(to: &w)
        case .snapshot(let m): m.write(to: &w)
        case .event(let m): m.write(to: &w)
        case .reply(let m): m.write(to: &w)
        case .capturedFrame(let m): m.write(to: &w)
        case .command(let m): m.write(to: &w)
        }
    }

    /// Reads the payload of a frame of `type`; nil for a type this version does not know.
    public static func readPayload(type: WireMessageType, from r: inout WireReader) throws(WireMalformedReason) -> WireMessage? {
        let message: WireMessage
        switch type {
        case .hello: message = .hello(try WireHello.read(from: &r))
        case .snapshot: message = .snapshot(try WireSnapshot.read(from: &r))
        case .event: message = .event(try WireEvent.read(from: &r))
        case .reply: message = .reply(try WireReply.read(from: &r))
        case .capturedFrame: message = .capturedFrame(try WireCapturedFrame.read(from: &r))
        case .command: message = .command(try WireCommand.read(from: &r))
        default: return nil
        }
        try r.expectEnd()
        return message
    }
}
