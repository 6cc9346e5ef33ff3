// Frame decoder with resynchronisation, used by the monitor (telemetry) and the kernel (commands).
//
// Modelled on swift-nio's ByteBuffer: bytes go in with `feed`, frames come out of `next()`.
// A partial frame is kept and `next()` returns nil until the rest arrives. Anything wrong with
// a frame is reported as `.error` and costs exactly that frame: the stream is split at 0x00
// delimiters, and COBS guarantees no 0x00 inside a frame, so the next frame decodes cleanly.

/// Why a frame was rejected.
public enum WireDecodeError: Error, Equatable, Sendable {
    /// More than `WireProtocol.maxFrameBytes` before a delimiter (`bytes`: how many were seen
    /// when the decoder gave up on it). The rest, up to the next 0x00, is skipped.
    case oversizeFrame(bytes: Int)
    /// Not valid COBS (a code byte running past the frame's end).
    case invalidCOBS(bytes: Int)
    /// Shorter than header + CRC (10 bytes after COBS decoding).
    case truncatedFrame(bytes: Int)
    /// The CRC-32C trailer does not match: corrupted in transit, or not a frame at all.
    case crcMismatch(received: UInt32, computed: UInt32)
    /// A well-formed frame of another protocol version: kernel and monitor do not match.
    case unsupportedVersion(got: UInt8)
    /// A type this version does not define (with the frame's seq).
    case unknownMessageType(UInt8, seq: UInt32)
    /// The payload did not parse. `offset` is the byte offset into the frame body.
    case malformed(type: UInt8, seq: UInt32, offset: Int, reason: WireMalformedReason)

    /// A fixed one-line summary, cheap enough for the kernel's log and error replies.
    public var summary: StaticString {
        switch self {
        case .oversizeFrame: return "frame too large"
        case .invalidCOBS: return "invalid COBS framing"
        case .truncatedFrame: return "frame too short"
        case .crcMismatch: return "checksum mismatch"
        case .unsupportedVersion: return "unsupported protocol version"
        case .unknownMessageType: return "unknown message type"
        case .malformed: return "malformed message"
        }
    }
}

public enum WireDecodeResult: Equatable, Sendable {
    case message(WireMessage, seq: UInt32)
    case error(WireDecodeError)
}

/// What the decoder has seen since it was created (or `reset`).
public struct WireDecoderStatistics: Equatable, Sendable {
    public var framesOK: UInt64 = 0
    public var crcErrors: UInt64 = 0
    public var oversizeFrames: UInt64 = 0
    public var versionMismatches: UInt64 = 0
    /// Invalid COBS, truncated, unknown type or malformed payload.
    public var otherErrors: UInt64 = 0
    /// Bytes thrown away: every byte of a rejected frame, and of an oversize run.
    public var bytesSkipped: UInt64 = 0
    /// Times a frame's seq was not the previous seq + 1, per direction (`WireDirection.rawValue`).
    public var sequenceGaps: [UInt64] = [0, 0]
    /// Frames missing according to those gaps, per direction.
    public var framesMissed: [UInt64] = [0, 0]

    public init() {}

    public var totalErrors: UInt64 { crcErrors + oversizeFrames + versionMismatches + otherErrors }
}

public struct WireFrameDecoder: Sendable {
    public private(set) var statistics = WireDecoderStatistics()

    /// Unconsumed input is `buffer[readIndex...]`.
    var buffer: [UInt8] = []
    var readIndex = 0
    /// `buffer[readIndex..<scanIndex]` is known to hold no delimiter.
    var scanIndex = 0
    /// Inside an oversize run: skip to the next delimiter.
    var discarding = false
    /// The decoded (un-COBSed) frame body being parsed; fixed size, `count` bytes valid.
    var body: [UInt8]
    /// Frames with a larger body are rejected as oversize.
    public let maxFrameBytes: Int
    /// The same limit after COBS.
    let maxEncodedBytes: Int
    /// The seq expected next, per direction; nil until the first frame.
    var expectedSeq: [UInt32?] = [nil, nil]

    /// `maxFrameBytes` may be lowered (never raised above the protocol's) where memory is
    /// tight: the kernel only decodes commands, which are a few bytes.
    public init(maxFrameBytes: Int = WireProtocol.maxFrameBytes) {
        self.maxFrameBytes = max(WireProtocol.headerBytes + WireProtocol.trailerBytes, min(maxFrameBytes, WireProtocol.maxFrameBytes))
        maxEncodedBytes = WireCOBS.maxEncodedCount(self.maxFrameBytes)
        body = [UInt8](repeating: 0, count: maxEncodedBytes)
        buffer.reserveCapacity(maxEncodedBytes + 4096)
    }

    /// Bytes held waiting for a delimiter.
    public var bufferedBytes: Int { buffer.count - readIndex }

    /// Forget buffered bytes and sequence expectations (e.g. after a reconnect). Statistics stay.
    public mutating func reset() {
        buffer.removeAll(keepingCapacity: true)
        readIndex = 0
        scanIndex = 0
        discarding = false
        expectedSeq = [nil, nil]
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: bytes)
    }

    public mutating func feed(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// The next frame's outcome, or nil when no complete frame is buffered (feed more).
    public mutating func next() -> WireDecodeResult? {
        while true {
            guard let end = findDelimiter() else {
                return waitForMore()
            }
            let start = readIndex
            readIndex = end + 1
            scanIndex = readIndex
            if discarding {
                discarding = false
                statistics.bytesSkipped &+= UInt64(end - start)
                continue
            }
            if end == start { continue }   // back-to-back delimiters: no frame
            return decodeFrame(start..<end)
        }
    }

    /// Index of the next 0x00 at or after `scanIndex`, remembering how far it looked.
    mutating func findDelimiter() -> Int? {
        let count = buffer.count
        let found: Int? = buffer.withUnsafeBufferPointer { p in
            var i = scanIndex
            while i < count {
                if p[i] == 0 { return i }
                i += 1
            }
            return nil
        }
        scanIndex = found ?? count
        return found
    }

    /// No delimiter buffered: compact, and give up on a frame that is already too long.
    mutating func waitForMore() -> WireDecodeResult? {
        let pending = buffer.count - readIndex
        var result: WireDecodeResult? = nil
        if pending > maxEncodedBytes || (discarding && pending > 0) {
            // Drop what we hold; keep skipping until the next delimiter.
            statistics.bytesSkipped &+= UInt64(pending)
            if !discarding {
                discarding = true
                statistics.oversizeFrames &+= 1
                result = .error(.oversizeFrame(bytes: pending))
            }
            readIndex = buffer.count
        }
        if readIndex > 0 {
            buffer.removeSubrange(0..<readIndex)
            scanIndex -= readIndex
            readIndex = 0
        }
        return result
    }

    /// Decodes one delimited chunk: COBS, CRC, version, header, payload.
    mutating func decodeFrame(_ range: Range<Int>) -> WireDecodeResult {
        if range.count > maxEncodedBytes {
            statistics.bytesSkipped &+= UInt64(range.count)
            statistics.oversizeFrames &+= 1
            return .error(.oversizeFrame(bytes: range.count))
        }
        // `body` is a fixed scratch of maxEncodedBytes: room for any chunk that got here.
        let decoded = buffer.withUnsafeBytes { raw in
            body.withUnsafeMutableBytes { out in
                WireCOBS.decode(UnsafeRawBufferPointer(rebasing: raw[range]), into: out)
            }
        }
        guard let count = decoded else {
            statistics.bytesSkipped &+= UInt64(range.count)
            statistics.otherErrors &+= 1
            return .error(.invalidCOBS(bytes: range.count))
        }
        if count > maxFrameBytes {
            statistics.bytesSkipped &+= UInt64(range.count)
            statistics.oversizeFrames &+= 1
            return .error(.oversizeFrame(bytes: range.count))
        }
        if count < WireProtocol.headerBytes + WireProtocol.trailerBytes {
            statistics.bytesSkipped &+= UInt64(range.count)
            statistics.otherErrors &+= 1
            return .error(.truncatedFrame(bytes: count))
        }
        let crcOffset = count - WireProtocol.trailerBytes
        let received = UInt32(body[crcOffset]) | UInt32(body[crcOffset + 1]) << 8
            | UInt32(body[crcOffset + 2]) << 16 | UInt32(body[crcOffset + 3]) << 24
        let computed = WireCRC32C.checksum(body, in: 0..<crcOffset)
        if received != computed {
            statistics.bytesSkipped &+= UInt64(range.count)
            statistics.crcErrors &+= 1
            return .error(.crcMismatch(received: received, computed: computed))
        }
        // The CRC vouches for the bytes; now they must be ours.
        if body[0] != WireProtocol.version {
            statistics.bytesSkipped &+= UInt64(range.count)
            statistics.versionMismatches &+= 1
            return .error(.unsupportedVersion(got: body[0]))
        }
        let type = WireMessageType(rawValue: body[1])
        let seq = UInt32(body[2]) | UInt32(body[3]) << 8 | UInt32(body[4]) << 16 | UInt32(body[5]) << 24
        noteSequence(seq, direction: type.direction)

        var reader = WireReader(body, from: WireProtocol.headerBytes, to: crcOffset)
        do {
            guard let message = try WireMessage.readPayload(type: type, from: &reader) else {
                statistics.bytesSkipped &+= UInt64(range.count)
                statistics.otherErrors &+= 1
                return .error(.unknownMessageType(type.rawValue, seq: seq))
            }
            statistics.framesOK &+= 1
            return .message(message, seq: seq)
        } catch {
            statistics.bytesSkipped &+= UInt64(range.count)
            statistics.otherErrors &+= 1
            return .error(.malformed(type: type.rawValue, seq: seq, offset: reader.readerIndex, reason: error))
        }
    }

    /// Counts a gap when `seq` is not the one expected in its direction. A seq that goes
    /// backwards (the peer restarted) just re-bases the expectation.
    mutating func noteSequence(_ seq: UInt32, direction: WireDirection) {
        let d = direction.rawValue
        if let expected = expectedSeq[d], seq != expected {
            let missed = seq &- expected
            if missed < 0x8000_0000 {
                statistics.sequenceGaps[d] &+= 1
                statistics.framesMissed[d] &+= UInt64(missed)
            }
        }
        expectedSeq[d] = seq &+ 1
    }
}

// Host only: interpolated messages cost kilobytes of kernel image for text nobody reads there.
#if !hasFeature(Embedded)
extension WireDecodeError {
    /// A one-line explanation a user can act on.
    public var message: String {
        switch self {
        case .oversizeFrame(let n):
            return "frame larger than \(WireProtocol.maxFrameBytes) bytes (\(n) seen), skipped"
        case .invalidCOBS(let n):
            return "invalid COBS framing in \(n) bytes, skipped"
        case .truncatedFrame(let n):
            return "frame of \(n) bytes is shorter than header and checksum"
        case .crcMismatch:
            return "checksum mismatch: frame corrupted, skipped"
        case .unsupportedVersion(let v):
            return "peer speaks protocol version \(v), this build speaks \(WireProtocol.version): update the kernel or the monitor"
        case .unknownMessageType(let t, let seq):
            return "unknown message type \(t) (seq \(seq))"
        case let .malformed(type, seq, offset, reason):
            return "malformed message type \(type) (seq \(seq)) at byte \(offset): \(reason.message)"
        }
    }
}

extension WireMalformedReason {
    public var message: String {
        switch self {
        case .truncated: return "payload ends inside a field"
        case .trailingBytes(let n): return "\(n) unexpected trailing bytes"
        case .invalidValue(let v): return "invalid value \(v)"
        case .countTooLarge(let n): return "count \(n) too large"
        case .varintOverflow: return "varint overflows 64 bits"
        case .invalidUTF8: return "string is not valid UTF-8"
        }
    }
}

#endif
