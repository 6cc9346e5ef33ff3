import Arch

// `dump`: the bytes of one buffer a queue owns, sent to the host (docs/protocol.md). What is
// refused and how long a dump is are TelemetryCommandRules (Sources/Wire, host-tested); this
// finds the buffer and encodes the reply.
extension Telemetry {
    /// A dump covers only a buffer this queue owns (one of its pool's buffers), and only up
    /// to what is meaningful: the used length for a completed buffer, the descriptor's length
    /// otherwise. Address and length come from the driver's own record of the descriptor,
    /// never from the table, which the device can write.
    func dump(_ q: MonitoredQueue, index: UInt8, selector: WireDumpSelector, seq: UInt32) {
        let ring = q.ring
        let id: UInt16
        var usedLength: UInt32?
        switch selector {
        case .last:
            guard !q.lastBuffer.isEmpty else { return reply(seq, .nothingPending, "\(q.name) has delivered nothing yet") }
            out.removeAll(keepingCapacity: true)
            let count = min(q.lastBuffer.count, WireProtocol.maxDumpBytes)
            let sent = q.lastBuffer.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) -> Bool in
                encodeDump(seq: seq, queue: index, descriptor: q.lastDescriptor, address: q.lastAddress,
                           length: q.lastBuffer.count, stampNs: q.lastStampNs,
                           bytes: UnsafeRawBufferPointer(rebasing: bytes[0..<count]))
            }
            if sent { send(reliable: true) } else { reply(seq, .badCommand, "dump could not be encoded") }
            return
        case .next:
            if let held = ring.oldestUnpublished {
                // A paused TX queue: the oldest frame held back from the device.
                id = held
            } else if let used = ring.peekUsed(offset: 0) {
                id = used.head
                usedLength = used.len
            } else {
                return reply(seq, .nothingPending, "\(q.name) has no pending used element")
            }
        case .descriptor(let requested):
            let state = ring.state(of: requested)
            if let refusal = TelemetryCommandRules.checkDumpDescriptor(requested, size: ring.size, isFree: state == .free) {
                return reply(seq, refusal)
            }
            id = requested
            if state == .used {
                var offset: UInt16 = 0
                while offset < min(ring.pendingUsed, ring.size) {
                    if let used = ring.peekUsed(offset: offset), used.head == id { usedLength = used.len; break }
                    offset &+= 1
                }
            }
        }
        guard let buffer = ring.buffer(id), q.pool.owns(buffer.addr) else {
            return reply(seq, TelemetryCommandRules.notOwnedBuffer(id, name: q.name))
        }
        let length = TelemetryCommandRules.dumpLength(deviceWritable: buffer.deviceWritable, bufferLength: buffer.len,
                                                      usedLength: usedLength)
        out.removeAll(keepingCapacity: true)
        let bytes = q.pool.bytes(buffer.addr, count: min(length, WireProtocol.maxDumpBytes))
        if q.queue.deviceWritable { q.noteArrivals(nowNs: Clock.nowNs) }
        if encodeDump(seq: seq, queue: index, descriptor: id, address: buffer.addr, length: length,
                      stampNs: q.stampNs(of: id), bytes: bytes) {
            send(reliable: true)
        } else {
            reply(seq, .badCommand, "dump could not be encoded")
        }
    }

    private func encodeDump(seq: UInt32, queue: UInt8, descriptor: UInt16, address: UInt64, length: Int,
                            stampNs: UInt64, bytes: UnsafeRawBufferPointer) -> Bool {
        do {
            try encoder.encodeDumpReply(commandSeq: seq, queue: queue, descriptor: descriptor, guestAddress: address,
                                        bufferLength: UInt32(truncatingIfNeeded: length), stampNs: stampNs, bytes: bytes,
                                        into: &out)
            return true
        } catch {
            return false
        }
    }
}
