// Payload layouts: the single definition of every message's bytes, in the order of
// docs/protocol.md §3–§7 (the snapshot, §4, is in WireSnapshotCoding.swift). Each type writes
// itself to a `WireWriter` and reads itself back from a `WireReader`. Multi-byte integers are
// little-endian; "varint" is unsigned LEB128.

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
