import Foundation
import Wire

/// Something that arrived on a telemetry connection.
public enum TelemetryIncoming: Equatable, Sendable {
    /// A decoded message other than a snapshot, with its frame seq (already applied to the model).
    case message(WireMessage, seq: UInt32)
    /// A snapshot, as the model stood right after applying it (frame seq `seq`). Print
    /// `model.snapshotJSON()` when `model.isComplete`.
    case snapshot(WireSnapshot, model: TelemetryModel, seq: UInt32)
    /// A frame that did not decode (garbage, torn frame, bad checksum...): it cost that frame only.
    case decodeError(WireDecodeError)
    /// The peer closed the connection (QEMU ended, or the hub went away).
    case disconnected
}

/// A client of the telemetry channel: QEMU's console socket, or a `ringside run` hub socket
/// (both carry the same byte stream, so the client cannot tell and need not care).
///
/// - Reads are non-blocking; bytes go through a resynchronising `WireFrameDecoder` into a
///   `TelemetryModel`. When the model asks for a hello or a full table, the connection sends it.
/// - On connect it sends `hello`, so it resynchronises mid-stream: the kernel answers with a
///   hello and a full snapshot.
/// - Commands get this connection's own frame seqs; `send(_:timeout:)` waits for the reply that
///   quotes the command's seq. Everything else that arrives meanwhile is kept for `receive`.
///
/// Not thread-safe: use one connection from one thread.
public final class TelemetryConnection: @unchecked Sendable {
    public let path: String
    /// Decoder, model and kernel clock (shared with `ringside replay`).
    public private(set) var stream = TelemetryStream()
    public var model: TelemetryModel { stream.model }
    public var decoder: WireFrameDecoder { stream.decoder }
    /// Bytes read since connecting (all connections).
    public private(set) var bytesReceived: UInt64 = 0
    /// Kernel uptime → host wall clock, from the latest hello (nil before one).
    public var kernelClock: KernelClock? { stream.kernelClock }
    /// Sees every byte read from and written to the channel, as it crosses (`ringside record`).
    public let tap: (@Sendable (RecordingDirection, [UInt8]) -> Void)?
    public var isConnected: Bool { fd != nil }

    /// nil while not connected.
    private var fd: FileDescriptor?
    private var encoder: WireFrameEncoder
    private var inbox: [TelemetryIncoming] = []
    private var inboxHead = 0
    private var readBuffer: [UInt8] = []
    /// Seqs of commands the connection sent by itself (hello, requestFull): their replies are not surfaced.
    private var internalSeqs: Set<UInt32> = []
    /// When set, `requestFull`/`requestHello` are sent at most this often.
    private var lastAutoRequest: Double = 0

    /// Connects to `path`, retrying until `timeout` seconds pass (0: one try), and sends `hello`
    /// unless `sendHello` is false. Command seqs start at `firstSeq` (default: random).
    public init(path: String, timeout: Double = 0, sendHello: Bool = true, firstSeq: UInt32? = nil,
                tap: (@Sendable (RecordingDirection, [UInt8]) -> Void)? = nil) throws(RingsideError) {
        self.path = path
        self.tap = tap
        encoder = WireFrameEncoder(firstSeq: firstSeq ?? UInt32.random(in: 0...UInt32.max))
        try connect(timeout: timeout, sendHello: sendHello)
    }

    deinit { close() }

    public func close() {
        fd?.close()
        fd = nil
    }

    /// (Re)connects: closes any current connection, resets the decoder's stream state (the model
    /// is kept; its tables are refreshed by the hello the kernel answers with).
    public func connect(timeout: Double, sendHello: Bool = true) throws(RingsideError) {
        close()
        let deadline = monotonicSeconds() + timeout
        let connected: FileDescriptor
        while true {
            do {
                connected = try connectUnixSocket(path)
                break
            } catch {
                if monotonicSeconds() >= deadline { throw error }
                usleep(50_000)
            }
        }
        connected.setNonBlocking()
        connected.setCloseOnExec()
        fd = connected
        stream.decoder.reset()
        readBuffer.removeAll(keepingCapacity: true)
        tap?(.note, Array("connected \(path)".utf8))
        if sendHello {
            let seq = try send(.hello)
            internalSeqs.insert(seq)
        }
    }

    /// The socket's descriptor while connected (for poll loops and for tests that want to misbehave).
    public var fileDescriptor: FileDescriptor? { fd }

    /// Sends a command and returns its frame seq; the reply will quote it.
    @discardableResult
    public func send(_ command: WireCommand) throws(RingsideError) -> UInt32 {
        guard let fd else { throw RingsideError("not connected to \(path)") }
        var out: [UInt8] = []
        let seq: UInt32
        do { seq = try encoder.encode(.command(command), into: &out) } catch {
            throw RingsideError("cannot encode command: \(error)")
        }
        tap?(.toKernel, out)
        do { try fd.writeAll(out, timeout: 5) } catch {
            close()
            throw RingsideError("sending to \(path): \(error.description)")
        }
        return seq
    }

    /// Writes raw bytes to the channel (tests: garbage, torn frames).
    public func sendRaw(_ bytes: [UInt8]) throws(RingsideError) {
        guard let fd else { throw RingsideError("not connected to \(path)") }
        tap?(.toKernel, bytes)
        try fd.writeAll(bytes, timeout: 5)
    }

    /// Sends `command` and waits up to `timeout` seconds for its reply. Other messages that arrive
    /// meanwhile stay queued for `receive`. Throws on timeout or disconnect.
    ///
    /// With `discardEarlier`, everything that arrived before the reply is dropped, so what
    /// `receive`/`wait` return next is what the kernel sent after answering.
    public func request(_ command: WireCommand, timeout: Double = 5, discardEarlier: Bool = false) throws(RingsideError) -> WireReply {
        let seq = try send(command)
        let deadline = monotonicSeconds() + timeout
        var scan = inboxHead
        while true {
            while scan < inbox.count {
                if case .message(.reply(let r), _) = inbox[scan], r.commandSeq == seq {
                    if discardEarlier {
                        inbox.removeFirst(scan + 1)
                        inboxHead = 0
                    } else {
                        inbox.remove(at: scan)
                    }
                    return r
                }
                if case .disconnected = inbox[scan] {
                    throw RingsideError("connection to \(path) closed before the reply")
                }
                scan += 1
            }
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { throw RingsideError("no reply within \(formatSeconds(timeout)) s") }
            guard fd != nil else { throw RingsideError("connection to \(path) closed before the reply") }
            pump(timeout: remaining)
        }
    }

    /// Everything that has arrived, waiting up to `timeout` seconds for at least one item.
    public func receive(timeout: Double) -> [TelemetryIncoming] {
        if inboxHead >= inbox.count && fd != nil {
            let deadline = monotonicSeconds() + timeout
            repeat {
                pump(timeout: max(0, deadline - monotonicSeconds()))
            } while inboxHead >= inbox.count && fd != nil && monotonicSeconds() < deadline
        } else if fd != nil {
            pump(timeout: 0)
        }
        let out = Array(inbox[inboxHead...])
        inbox.removeAll(keepingCapacity: true)
        inboxHead = 0
        return out
    }

    /// Waits until `predicate` holds for an incoming item (which is consumed with all before it),
    /// returning that item, or nil after `timeout`.
    public func wait(timeout: Double, for predicate: (TelemetryIncoming) -> Bool) -> TelemetryIncoming? {
        let deadline = monotonicSeconds() + timeout
        while true {
            while inboxHead < inbox.count {
                let item = inbox[inboxHead]
                inboxHead += 1
                if predicate(item) { compactInbox(); return item }
            }
            compactInbox()
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 || fd == nil { return nil }
            pump(timeout: remaining)
        }
    }

    /// Sends `stats` and returns the model as of the full snapshot the kernel sends right after
    /// its reply (not an older snapshot still queued). Throws on an error reply or timeout.
    public func fullSnapshot(timeout: Double = 5) throws(RingsideError) -> TelemetryModel {
        let deadline = monotonicSeconds() + timeout
        let reply = try request(.stats, timeout: timeout, discardEarlier: true)
        guard reply.status.isOK else { throw RingsideError("stats: \(reply.message) (\(reply.status.name))") }
        guard let m = nextCompleteSnapshot(timeout: max(0.001, deadline - monotonicSeconds())) else {
            throw RingsideError("no full snapshot after stats within \(formatSeconds(timeout)) s")
        }
        return m
    }

    /// Waits for the next snapshot after which the model is complete; returns the model as it
    /// stood then.
    public func nextCompleteSnapshot(timeout: Double) -> TelemetryModel? {
        let item = wait(timeout: timeout) { item in
            if case .snapshot(_, let m, _) = item { return m.isComplete }
            return false
        }
        if case .snapshot(_, let m, _)? = item { return m }
        return nil
    }

    /// True when the model has a hello and every queue table is current.
    public var modelIsComplete: Bool { model.isComplete }

    private func compactInbox() {
        if inboxHead > 0 {
            inbox.removeFirst(inboxHead)
            inboxHead = 0
        }
    }

    /// Reads for up to `timeout` seconds (returns as soon as something was read) and decodes.
    private func pump(timeout: Double) {
        guard let fd else { return }
        var pfd = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
        let ms = Int32(max(0, min(timeout * 1000, 1000)).rounded(.up))
        let pr = poll(&pfd, 1, ms)
        if pr < 0 { return }
        readBuffer.removeAll(keepingCapacity: true)
        let n = fd.readAvailable(into: &readBuffer)
        if let n, n > 0 {
            bytesReceived &+= UInt64(n)
            tap?(.fromKernel, readBuffer)
            decodeAll()
        }
        if n == nil {
            close()
            tap?(.note, Array("disconnected".utf8))
            inbox.append(.disconnected)
        }
    }

    private func decodeAll() {
        var actions: [TelemetryModelAction] = []
        stream.feed(readBuffer, at: wallClockSeconds()) { item, action in
            if case .message(.reply(let r), _) = item, internalSeqs.remove(r.commandSeq) != nil { return }
            inbox.append(item)
            if let action { actions.append(action) }
        }
        for action in actions { autoRequest(action) }
    }

    private func autoRequest(_ action: TelemetryModelAction) {
        let now = monotonicSeconds()
        guard now - lastAutoRequest > 0.2 else { return }
        lastAutoRequest = now
        let command: WireCommand = action == .requestHello ? .hello : .requestFull
        if let seq = try? send(command) {
            internalSeqs.insert(seq)
            if internalSeqs.count > 64 { internalSeqs.removeAll() }
        }
    }
}

extension TelemetryModel {
    /// A hello has arrived and every queue's table is current (not stale, has a status).
    public var isComplete: Bool {
        hello != nil && !queues.isEmpty && queues.allSatisfy { !$0.isStale && $0.status != nil }
    }

    /// The queue index for `text`: a queue name from the hello (`net0.rx`) or a number.
    public func queueIndex(_ text: String) -> UInt8? {
        if let n = UInt8(text) { return n }
        if let p = position(ofQueueNamed: text) { return queues[p].info.queue }
        return nil
    }

    /// The queue's name, or its number when the hello did not name it.
    public func queueName(_ index: UInt8) -> String {
        position(ofQueue: index).map { queues[$0].info.name } ?? "queue \(index)"
    }
}

func formatSeconds(_ s: Double) -> String {
    s == s.rounded() ? String(Int(s)) : String(format: "%.1f", s)
}
