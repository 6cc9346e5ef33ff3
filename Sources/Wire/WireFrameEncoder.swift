// Frame encoder, used by both ends: the kernel encodes telemetry, the monitor encodes commands.
//
// A frame is built in the encoder's own body buffer (reserved once at init), then checksummed
// and COBS-encoded onto the end of the caller's output array between two 0x00 delimiters.
// The leading delimiter costs one byte and means a frame never merges with garbage or a torn
// frame before it: the receiver always resynchronises on the frame itself.
//
// Two ways to build a frame:
//   - `encode(message, into:)` for a whole `WireMessage` value (commands, hello, events, tests);
//   - the streaming snapshot calls (`beginSnapshot`, `appendQueueStatus`, `beginDescriptors`,
//     `appendDescriptor`/`appendDescriptorChange`, `endDescriptors`, `finish`), which write the
//     same bytes without building arrays: the kernel's per-snapshot path allocates nothing.

public enum WireEncodeError: Error, Equatable, Sendable {
    /// The body would exceed `WireProtocol.maxFrameBytes`; nothing was emitted.
    case frameTooLarge(bytes: Int)
    /// A list longer than its count field allows (queues > 255, dump bytes > maxDumpBytes...).
    case countOverflow(Int)
    /// A streaming call out of order (e.g. `finish` with a descriptor section still open).
    case misuse
}

public struct WireFrameEncoder: Sendable {
    /// The seq the next frame gets.
    public var nextSeq: UInt32
    /// Frames emitted by `finish`/`encode`.
    public private(set) var framesEncoded: UInt64 = 0

    var body: WireWriter
    var inFrame = false
    var descriptorCountOffset = -1
    var descriptorCount = 0

    public init(firstSeq: UInt32 = 0, capacity: Int = 20 * 1024) {
        nextSeq = firstSeq
        body = WireWriter(capacity: capacity)
    }

    /// The worst-case bytes `finish` appends for a body of `bodyBytes` (delimiters included):
    /// reserve this in the output once to keep encoding allocation-free.
    public static func maxOutputBytes(bodyBytes: Int) -> Int {
        WireCOBS.maxEncodedCount(bodyBytes) + 2
    }

    // MARK: Whole messages

    /// Encodes `message` as one frame appended to `out`. Returns the frame's seq.
    @discardableResult
    public mutating func encode(_ message: WireMessage, into out: inout [UInt8]) throws(WireEncodeError) -> UInt32 {
        try check(message)
        begin(message.type)
        message.writePayload(to: &body)
        return try finish(into: &out)
    }

    /// Counts that would not fit their fields are errors rather than silently cut.
    func check(_ message: WireMessage) throws(WireEncodeError) {
        switch message {
        case .hello(let h):
            if h.devices.count > 255 { throw .countOverflow(h.devices.count) }
            if h.queues.count > 255 { throw .countOverflow(h.queues.count) }
        case .snapshot(let s):
            if s.queues.count > 255 { throw .countOverflow(s.queues.count) }
            if s.deviceStatus.count > 255 { throw .countOverflow(s.deviceStatus.count) }
            for q in s.queues {
                let longest = max(q.ring.availEntries.count, q.ring.usedEntries.count)
                if longest > WireRingView.maxEntries { throw .countOverflow(longest) }
                switch q.descriptors {
                case .full(let t): if t.count > 0xFFFF { throw .countOverflow(t.count) }
                case .delta(let c): if c.count > 0xFFFF { throw .countOverflow(c.count) }
                }
            }
        case .reply(let r):
            if case .dump(let d) = r.body, d.bytes.count > WireProtocol.maxDumpBytes {
                throw .countOverflow(d.bytes.count)
            }
        case .event(let e):
            if case .usedBatch(_, _, let elements) = e.kind, elements.count > WireEvent.maxBatchElements {
                throw .countOverflow(elements.count)
            }
        case .capturedFrame(let f):
            if f.bytes.count > WireProtocol.maxCaptureBytes { throw .countOverflow(f.bytes.count) }
        case .command:
            break
        }
    }

    // MARK: Streaming

    /// Starts a frame of `type`: writes version, type and seq. Any unfinished frame is discarded.
    public mutating func begin(_ type: WireMessageType) {
        body.removeAll()
        body.writeU8(WireProtocol.version)
        body.writeU8(type.rawValue)
        body.writeU32(nextSeq)
        inFrame = true
        descriptorCountOffset = -1
    }

    /// Starts a snapshot frame.
    public mutating func beginSnapshot(_ header: WireSnapshotHeader) {
        begin(.snapshot)
        header.write(to: &body)
    }

    /// A queue's scalar state; follow it with its ring section, then exactly one descriptor section.
    public mutating func appendQueueStatus(_ status: WireQueueStatus) {
        status.write(to: &body)
    }

    /// A queue's ring section (flags, event words, windows of entries).
    public mutating func appendRing(_ ring: WireRingView) {
        ring.write(to: &body)
    }

    /// Opens a descriptor section; its count is patched in by `endDescriptors`.
    public mutating func beginDescriptors(_ encoding: WireDescriptorEncoding) {
        body.writeU8(encoding.rawValue)
        descriptorCountOffset = body.count
        descriptorCount = 0
        body.writeU16(0)
    }

    /// An entry of a full section (entry i is descriptor i).
    @inline(__always)
    public mutating func appendDescriptor(_ descriptor: WireDescriptor) {
        descriptor.write(to: &body)
        descriptorCount += 1
    }

    /// An entry of a delta section.
    @inline(__always)
    public mutating func appendDescriptorChange(id: UInt16, _ descriptor: WireDescriptor) {
        body.writeU16(id)
        descriptor.write(to: &body)
        descriptorCount += 1
    }

    /// Closes the descriptor section opened by `beginDescriptors`.
    public mutating func endDescriptors() throws(WireEncodeError) {
        guard descriptorCountOffset >= 0 else { throw .misuse }
        if descriptorCount > 0xFFFF { throw .countOverflow(descriptorCount) }
        body.patchU16(at: descriptorCountOffset, UInt16(descriptorCount))
        descriptorCountOffset = -1
    }

    /// A dump reply whose bytes are read straight from guest memory (no intermediate array).
    @discardableResult
    public mutating func encodeDumpReply(
        commandSeq: UInt32, queue: UInt8, descriptor: UInt16, guestAddress: UInt64,
        bufferLength: UInt32, stampNs: UInt64 = 0, bytes: UnsafeRawBufferPointer, into out: inout [UInt8]
    ) throws(WireEncodeError) -> UInt32 {
        if bytes.count > WireProtocol.maxDumpBytes { throw .countOverflow(bytes.count) }
        begin(.reply)
        WireReply.writeHead(commandSeq: commandSeq, status: .ok, message: "", to: &body)
        WireReply.writeDumpHead(
            queue: queue, descriptor: descriptor, guestAddress: guestAddress,
            bufferLength: bufferLength, stampNs: stampNs, byteCount: bytes.count, to: &body)
        body.writeBytes(bytes)
        return try finish(into: &out)
    }

    /// A captured frame whose bytes are read straight from the packet buffer (no intermediate
    /// array): the kernel's capture path. At most `WireProtocol.maxCaptureBytes` bytes.
    @discardableResult
    public mutating func encodeCapturedFrame(
        uptimeNs: UInt64, queue: UInt8, descriptor: UInt16, availIdx: UInt16, usedIdx: UInt16, number: UInt32,
        bufferLength: UInt32, headerBytes: UInt8, bytes: UnsafeRawBufferPointer, into out: inout [UInt8]
    ) throws(WireEncodeError) -> UInt32 {
        if bytes.count > WireProtocol.maxCaptureBytes { throw .countOverflow(bytes.count) }
        begin(.capturedFrame)
        WireCapturedFrame.writeHead(uptimeNs: uptimeNs, queue: queue, descriptor: descriptor, availIdx: availIdx,
                                    usedIdx: usedIdx, number: number, bufferLength: bufferLength, headerBytes: headerBytes,
                                    byteCount: bytes.count, to: &body)
        body.writeBytes(bytes)
        return try finish(into: &out)
    }

    /// The most bytes `encodeCapturedFrame` appends to `out` for `byteCount` buffer bytes.
    public static func maxCapturedFrameOutputBytes(byteCount: Int) -> Int {
        maxOutputBytes(bodyBytes: WireProtocol.headerBytes + WireCapturedFrame.headBytes + byteCount + WireProtocol.trailerBytes)
    }

    /// Ends the frame: appends CRC-32C, then `0x00 COBS(body) 0x00` to `out`. Returns the seq
    /// used, and advances `nextSeq`. On error nothing is appended and the seq is not used.
    @discardableResult
    public mutating func finish(into out: inout [UInt8]) throws(WireEncodeError) -> UInt32 {
        guard inFrame, descriptorCountOffset < 0 else {
            inFrame = false
            throw .misuse
        }
        inFrame = false
        let total = body.count + WireProtocol.trailerBytes
        if total > WireProtocol.maxFrameBytes { throw .frameTooLarge(bytes: total) }
        let crc = body.bytes.withUnsafeBytes { WireCRC32C.checksum($0) }
        body.writeU32(crc)
        out.append(WireProtocol.delimiter)
        body.bytes.withUnsafeBytes { WireCOBS.encode($0, appendingTo: &out) }
        out.append(WireProtocol.delimiter)
        let seq = nextSeq
        nextSeq &+= 1
        framesEncoded &+= 1
        return seq
    }

    /// The body of the frame being built (before CRC), for tests and size estimates.
    public var pendingBodyBytes: Int { body.count }
}
