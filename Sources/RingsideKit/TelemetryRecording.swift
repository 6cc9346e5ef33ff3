// Recordings of the telemetry channel (`ringside record`, `ringside run --record`): the raw byte
// stream as it crossed the socket, with host timestamps, so `ringside replay` feeds the very
// same decoder and model the live monitor used. Format: docs/recording.md.

import Foundation
import Wire

/// Which way a record's bytes went.
public enum RecordingDirection: UInt8, Sendable, Equatable {
    /// Bytes read from the channel (kernel → host frames, as read: any chunking, any garbage).
    case fromKernel = 0
    /// Bytes the recording host wrote to the channel (its command frames).
    case toKernel = 1
    /// A note from the recorder (UTF-8): "connected", "disconnected", …
    case note = 2
}

/// One record: `bytes` went `direction` at `timeNs` (host monotonic ns since the recording began).
public struct RecordingEntry: Equatable, Sendable {
    public var timeNs: UInt64
    public var direction: RecordingDirection
    public var bytes: [UInt8]
    public init(timeNs: UInt64, direction: RecordingDirection, bytes: [UInt8]) {
        self.timeNs = timeNs
        self.direction = direction
        self.bytes = bytes
    }
}

public enum RecordingFormat {
    /// "RINGREC" and a zero byte.
    public static let magic: [UInt8] = Array("RINGREC".utf8) + [0]
    public static let version: UInt16 = 1
    /// Longest info text / hello frame / record the reader accepts.
    public static let maxInfoBytes = 64 * 1024
    public static let maxHelloBytes = WireProtocol.maxEncodedFrameBytes + 16
    public static let maxRecordBytes = 4 << 20
}

/// The file header: what was recorded, when, from where, and the kernel's hello.
public struct RecordingHeader: Equatable, Sendable {
    public var version: UInt16 = RecordingFormat.version
    /// Host wall-clock time (ns since the Unix epoch) at time 0 of the records.
    public var startWallNs: UInt64
    /// `key=value` lines: source, recorder, host.
    public var info: String
    /// The first hello the recorder saw, as a complete frame (delimiters included); empty when
    /// none arrived. The records carry it too: this copy is for reading the header alone.
    public var helloFrame: [UInt8]

    public init(startWallNs: UInt64, info: String, helloFrame: [UInt8] = []) {
        self.startWallNs = startWallNs
        self.info = info
        self.helloFrame = helloFrame
    }

    /// The hello in the header, decoded (nil when there is none or it does not decode).
    public var hello: WireHello? {
        guard !helloFrame.isEmpty else { return nil }
        var d = WireFrameDecoder()
        d.feed(helloFrame)
        while let r = d.next() {
            if case .message(.hello(let h), _) = r { return h }
        }
        return nil
    }

    public func encoded() -> [UInt8] {
        var out = RecordingFormat.magic
        appendLE(&out, UInt64(version), bytes: 2)
        appendLE(&out, startWallNs, bytes: 8)
        let infoBytes = Array(info.utf8.prefix(RecordingFormat.maxInfoBytes))
        appendLE(&out, UInt64(infoBytes.count), bytes: 4)
        out += infoBytes
        appendLE(&out, UInt64(helloFrame.count), bytes: 4)
        out += helloFrame
        return out
    }
}

func appendLE(_ out: inout [UInt8], _ value: UInt64, bytes: Int) {
    for i in 0..<bytes { out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
}

func appendVarint(_ out: inout [UInt8], _ value: UInt64) {
    var v = value
    while v >= 0x80 {
        out.append(UInt8(v & 0x7F) | 0x80)
        v >>= 7
    }
    out.append(UInt8(v))
}

extension RecordingEntry {
    /// `dt` varint (ns since the previous record), direction u8, length varint, bytes.
    public func encoded(previousNs: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 12)
        appendVarint(&out, timeNs >= previousNs ? timeNs - previousNs : 0)
        out.append(direction.rawValue)
        appendVarint(&out, UInt64(bytes.count))
        out += bytes
        return out
    }
}

/// Writes a recording as it happens. Records are held in memory only until the first hello
/// arrives (it goes into the header; at most `holdLimit` bytes or `holdSeconds`, then the header
/// is written without it), then written straight through, so a recorder that is killed leaves
/// every record it wrote readable.
///
/// Thread-safe (the hub records from its own thread).
public final class TelemetryRecorder: @unchecked Sendable {
    public let path: String
    private let lock = NSLock()
    private var fd: Int32
    private var header: RecordingHeader
    private var headerWritten = false
    private var held: [UInt8] = []
    private var helloDecoder = WireFrameDecoder()
    private let startMonotonic: Double
    private var lastNs: UInt64 = 0
    private var failure: String?
    public static let holdLimit = 4 << 20
    public static let holdSeconds = 3.0
    /// Bytes recorded (record payloads) and records, for the summary line.
    public private(set) var payloadBytes: UInt64 = 0
    public private(set) var records = 0
    public private(set) var fileBytes: UInt64 = 0

    /// Creates (truncates) `path`. `info` is free text for the header (`key=value` lines).
    public init(path: String, info: [(String, String)]) throws(RingsideError) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw RingsideError("cannot create \(path): \(Errno.current)") }
        startMonotonic = monotonicSeconds()
        let wall = wallClockSeconds()
        var text = ""
        for (k, v) in info {
            let clean = v.replacingOccurrences(of: "\n", with: " ")
            text += "\(k)=\(clean)\n"
        }
        header = RecordingHeader(startWallNs: UInt64(max(0, wall) * 1e9), info: text)
    }

    deinit { close() }

    /// Why writing stopped (disk full…), if it did.
    public var error: String? {
        lock.lock(); defer { lock.unlock() }
        return failure
    }

    public func record(_ direction: RecordingDirection, _ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        lock.lock(); defer { lock.unlock() }
        guard fd >= 0 else { return }
        let ns = UInt64(max(0, monotonicSeconds() - startMonotonic) * 1e9)
        let t = max(ns, lastNs)
        let entry = RecordingEntry(timeNs: t, direction: direction, bytes: bytes)
        let encoded = entry.encoded(previousNs: lastNs)
        lastNs = t
        records += 1
        payloadBytes &+= UInt64(bytes.count)
        if headerWritten {
            write(encoded)
            return
        }
        held += encoded
        if direction == .fromKernel {
            helloDecoder.feed(bytes)
            while let r = helloDecoder.next() {
                if case .message(.hello(let h), let seq) = r {
                    var e = WireFrameEncoder(firstSeq: seq)
                    var frame: [UInt8] = []
                    if (try? e.encode(.hello(h), into: &frame)) != nil { header.helloFrame = frame }
                    break
                }
            }
        }
        if !header.helloFrame.isEmpty || held.count > Self.holdLimit
            || monotonicSeconds() - startMonotonic > Self.holdSeconds {
            flushHeader()
        }
    }

    private func flushHeader() {
        guard !headerWritten else { return }
        headerWritten = true
        write(header.encoded() + held)
        held = []
    }

    private func write(_ bytes: [UInt8]) {
        guard fd >= 0, failure == nil else { return }
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                let e = Errno.current
                if e == .interrupted { continue }
                failure = "writing \(path): \(e)"
                return
            }
            done += n
        }
        fileBytes &+= UInt64(bytes.count)
    }

    /// Writes what is held and closes the file.
    public func close() {
        lock.lock(); defer { lock.unlock() }
        guard fd >= 0 else { return }
        flushHeader()
        Glibc.close(fd)
        fd = -1
    }
}

/// Reads a recording from bytes that may be anything: never traps, stops at the first record
/// it cannot read and says where (`stopReason`).
public struct RecordingReader {
    public let bytes: [UInt8]
    public private(set) var header: RecordingHeader?
    /// Byte offset of the next record.
    public private(set) var offset = 0
    /// Time of the last record read.
    public private(set) var timeNs: UInt64 = 0
    /// Why reading stopped before the end of the file (nil: not stopped, or a clean end).
    public private(set) var stopReason: String?
    public private(set) var recordsRead = 0

    public init(bytes: [UInt8]) {
        self.bytes = bytes
        readHeader()
    }

    public init(path: String) throws(RingsideError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RingsideError("cannot read \(path): \(Errno.current)")
        }
        self.init(bytes: Array(data))
    }

    public var atEnd: Bool { stopReason != nil || offset >= bytes.count }

    private mutating func stop(_ why: String) {
        if stopReason == nil {
            stopReason = "stopped at byte \(offset) of \(bytes.count)"
                + (recordsRead > 0 ? " (after record \(recordsRead), t=\(String(format: "%.3f", Double(timeNs) / 1e9)) s)" : "")
                + ": " + why
        }
    }

    private func le(_ at: Int, _ count: Int) -> UInt64? {
        guard at >= 0, count <= 8, at <= bytes.count - count else { return nil }
        var v: UInt64 = 0
        for i in 0..<count { v |= UInt64(bytes[at + i]) << (8 * UInt64(i)) }
        return v
    }

    private mutating func readHeader() {
        let magic = RecordingFormat.magic
        guard bytes.count >= magic.count else {
            stop(bytes.isEmpty ? "empty file: not a ringside recording" : "too short for a ringside recording header")
            return
        }
        guard Array(bytes[0..<magic.count]) == magic else {
            stop("not a ringside recording (no RINGREC magic; a compressed file? decompress it first: xz -d / gunzip)")
            return
        }
        var at = magic.count
        guard let version = le(at, 2) else { return stop("truncated header") }
        at += 2
        guard version == UInt64(RecordingFormat.version) else {
            return stop("recording format version \(version); this ringside reads version \(RecordingFormat.version)")
        }
        guard let wall = le(at, 8) else { return stop("truncated header") }
        at += 8
        guard let infoLength = le(at, 4) else { return stop("truncated header") }
        at += 4
        guard infoLength <= UInt64(RecordingFormat.maxInfoBytes) else { return stop("header info of \(infoLength) bytes: corrupt") }
        guard at + Int(infoLength) <= bytes.count else { return stop("truncated header") }
        let info = String(decoding: bytes[at..<at + Int(infoLength)], as: UTF8.self)
        at += Int(infoLength)
        guard let helloLength = le(at, 4) else { return stop("truncated header") }
        at += 4
        guard helloLength <= UInt64(RecordingFormat.maxHelloBytes) else { return stop("header hello of \(helloLength) bytes: corrupt") }
        guard at + Int(helloLength) <= bytes.count else { return stop("truncated header") }
        let hello = Array(bytes[at..<at + Int(helloLength)])
        at += Int(helloLength)
        header = RecordingHeader(startWallNs: wall, info: info, helloFrame: hello)
        header?.version = UInt16(version)
        offset = at
    }

    private func varint(_ at: inout Int) -> UInt64? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while at < bytes.count {
            let b = bytes[at]
            at += 1
            if shift == 63 && b > 1 { return nil }
            v |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
            if shift > 63 { return nil }
        }
        return nil
    }

    /// The next record, or nil at the end (check `stopReason`).
    public mutating func next() -> RecordingEntry? {
        guard stopReason == nil, offset < bytes.count else { return nil }
        var at = offset
        guard let dt = varint(&at) else {
            stop(at >= bytes.count ? "truncated record (time)" : "bad record time")
            return nil
        }
        guard at < bytes.count else { stop("truncated record (direction)"); return nil }
        guard let direction = RecordingDirection(rawValue: bytes[at]) else {
            stop("unknown record direction \(bytes[at])")
            return nil
        }
        at += 1
        guard let length = varint(&at) else { stop("truncated record (length)"); return nil }
        guard length <= UInt64(RecordingFormat.maxRecordBytes) else {
            stop("record of \(length) bytes: corrupt")
            return nil
        }
        guard Int(length) <= bytes.count - at else {
            stop("truncated record: \(length) bytes announced, \(bytes.count - at) left")
            return nil
        }
        let (t, overflow) = timeNs.addingReportingOverflow(dt)
        guard !overflow else { stop("record time overflows"); return nil }
        timeNs = t
        let entry = RecordingEntry(timeNs: t, direction: direction, bytes: Array(bytes[at..<at + Int(length)]))
        offset = at + Int(length)
        recordsRead += 1
        return entry
    }
}

/// The host's decoding of a telemetry byte stream: decoder, model and kernel clock, as
/// `TelemetryConnection` runs them live and `ringside replay` runs them on a recording (so a
/// replay produces exactly what the live monitor did).
public struct TelemetryStream: Sendable {
    public var decoder = WireFrameDecoder()
    public var model = TelemetryModel()
    public var kernelClock: KernelClock?

    public init() {}

    /// Decodes `bytes` (read at host wall time `wall`); calls `handle` with each item in order
    /// and what the model asks the host to send.
    public mutating func feed(_ bytes: [UInt8], at wall: Double, _ handle: (TelemetryIncoming, TelemetryModelAction?) -> Void) {
        decoder.feed(bytes)
        while let result = decoder.next() {
            switch result {
            case .message(let m, let seq):
                let action = model.apply(m, seq: seq)
                if case .hello(let h) = m { kernelClock = KernelClock(hello: h, receivedAt: wall) }
                if case .snapshot(let snap) = m {
                    kernelClock?.observe(uptimeNs: snap.uptimeNs, receivedAt: wall)
                    handle(.snapshot(snap, model: model, seq: seq), action)
                } else {
                    handle(.message(m, seq: seq), action)
                }
            case .error(let e):
                handle(.decodeError(e), nil)
            }
        }
    }
}
