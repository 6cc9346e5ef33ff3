import Foundation
import Wire

/// Re-serves one telemetry channel to many clients.
///
/// QEMU's console socket serves one client at a time, so the monitor that holds it (`ringside
/// run`) offers the same byte stream on a unix socket of its own (mode 0600):
///
/// - Kernel → clients: every frame is forwarded byte for byte to every client, except replies:
///   a reply goes only to the client whose command it answers, re-encoded with that client's
///   command seq (and the kernel's own frame seq, so the client's sequence accounting holds).
///   Replies to the hub's own commands (its `hello`) go to nobody. Other clients see a one-frame
///   seq gap there, which the model ignores (deltas are checked by snapshot number).
/// - Clients → kernel: command frames are decoded and re-encoded with the hub's seq, so
///   concurrent clients never collide; the reply is mapped back. Anything else is dropped.
/// - Every queue here is bounded, whoever fills it:
///   - A client that does not read loses whole frames (never part of one: its stream stays
///     decodable, with seq gaps) once `clientBacklogLimit` bytes are queued for it; nobody waits
///     for it. `framesDroppedForSlowClients` counts them.
///   - Commands wait for a kernel that does not read them up to `upstreamBacklogLimit` bytes;
///     past that a client's command is answered at once with an error reply.
///   - At most `maxRoutes` commands await a reply, and `maxClients` clients are served (more
///     are closed on accept).
/// - When the kernel side goes away the hub reconnects and sends `hello` again.
/// - Capture mode is global in the kernel, and a capture client that crashes cannot turn it
///   off: the hub remembers which clients sent `capture on` (and not `capture off` since), and
///   when the last of them goes away, however it went, sends `capture off` itself (its reply
///   goes to nobody). Through a hub, capture mode lasts as long as a client that wants it.
public final class TelemetryHub: @unchecked Sendable {
    public let consolePath: String
    public let listenPath: String
    /// Bytes queued per client before frames are dropped for it.
    public let clientBacklogLimit: Int
    /// Command bytes queued for the kernel before further commands are refused.
    public static let upstreamBacklogLimit = 64 * 1024
    /// Commands awaiting a reply; the oldest routes are forgotten beyond this.
    public static let maxRoutes = 4096
    /// Clients served at once.
    public static let maxClients = 64

    private let listenFD: FileDescriptor
    /// The kernel's console socket; nil while not connected.
    private var upstream: FileDescriptor?
    private var upstreamOut: [UInt8] = []
    private var chunk: [UInt8] = []
    private var encoder = WireFrameEncoder(firstSeq: UInt32.random(in: 0...UInt32.max))
    private var replyDecoder = WireFrameDecoder()
    /// Re-encodes replies with the kernel's frame seq (never the command encoder: its seqs are ours).
    private var replyEncoder = WireFrameEncoder(firstSeq: 0, capacity: 8 * 1024)
    private var clients: [Int: Client] = [:]
    private var nextClientID = 1
    /// hub seq → (client id, the client's seq, when); client id 0 = the hub itself.
    private var routes: [UInt32: (client: Int, seq: UInt32, time: Double)] = [:]
    /// Clients whose last capture command was `capture on`.
    private var capturingClients: Set<Int> = []
    /// Times the hub turned capture off because the last client that had turned it on went away.
    public private(set) var captureOffsSent = 0
    private var lastConnectAttempt = 0.0
    private let worker = WorkerThread(name: "ringside telemetry hub")
    /// Counters (read them from another thread only for display).
    public private(set) var framesForwarded: UInt64 = 0
    public private(set) var bytesFromKernel: UInt64 = 0
    public private(set) var upstreamConnections = 0
    /// Frames not sent to a client because its backlog was full.
    public private(set) var framesDroppedForSlowClients: UInt64 = 0
    /// Records the kernel side of the channel (`ringside run --record`): every byte the kernel
    /// sent (all replies included) and every command the hub wrote to it. Set before `start()`.
    public var recorder: TelemetryRecorder?

    final class Client {
        let fd: FileDescriptor
        var out: [UInt8] = []
        var decoder = WireFrameDecoder(maxFrameBytes: 1024)
        init(fd: FileDescriptor) { self.fd = fd }
    }

    /// Creates the listening socket at `listenPath`; `start()` begins serving.
    public init(consolePath: String, listenPath: String, clientBacklogLimit: Int = 8 << 20) throws(RingsideError) {
        self.consolePath = consolePath
        self.listenPath = listenPath
        self.clientBacklogLimit = clientBacklogLimit
        listenFD = try listenUnixSocket(listenPath, mode: 0o600)
    }

    deinit {
        stop()
        listenFD.close()
    }

    /// Serves on a background thread until `stop()`.
    public func start() {
        worker.start { [self] in self.serve() }
    }

    /// Stops serving, closes every connection and removes the socket file.
    public func stop() {
        worker.stop(waitingAtMost: nil)
        unlink(listenPath)
    }

    private var shouldStop: Bool { worker.shouldStop }

    private func serve() {
        while !shouldStop {
            if upstream == nil && monotonicSeconds() - lastConnectAttempt > 0.2 { connectUpstream() }
            var fds: [pollfd] = [pollfd(fd: listenFD.rawValue, events: Int16(POLLIN), revents: 0)]
            if let upstream {
                fds.append(pollfd(fd: upstream.rawValue, events: Int16(POLLIN) | (upstreamOut.isEmpty ? 0 : Int16(POLLOUT)), revents: 0))
            }
            let ids = Array(clients.keys)
            for id in ids {
                let c = clients[id]!
                fds.append(pollfd(fd: c.fd.rawValue, events: Int16(POLLIN) | (c.out.isEmpty ? 0 : Int16(POLLOUT)), revents: 0))
            }
            let pr = poll(&fds, nfds_t(fds.count), 50)
            if pr < 0 && Errno.current != .interrupted { usleep(10_000); continue }
            if pr <= 0 { expireRoutes(); continue }
            if fds[0].revents & Int16(POLLIN) != 0 { acceptClients() }
            var index = 1
            if upstream != nil {
                let r = fds[1].revents
                index = 2
                if r & Int16(POLLIN | POLLHUP | POLLERR) != 0 { readUpstream() }
                if let upstream, !upstreamOut.isEmpty {
                    if !upstream.flushNonBlocking(&upstreamOut) { dropUpstream() }
                }
            }
            for (offset, id) in ids.enumerated() {
                guard let c = clients[id] else { continue }
                let r = fds[index + offset].revents
                if r & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                    if !readClient(id, c) { continue }
                }
                if !c.out.isEmpty && !c.fd.flushNonBlocking(&c.out) { removeClient(id) }
            }
            expireRoutes()
        }
        upstream?.close()
        upstream = nil
        for (id, _) in clients { removeClient(id) }
    }

    // MARK: Kernel side

    private func connectUpstream() {
        lastConnectAttempt = monotonicSeconds()
        guard let fd = try? connectUnixSocket(consolePath) else { return }
        fd.setNonBlocking()
        fd.setCloseOnExec()
        upstream = fd
        upstreamConnections += 1
        chunk.removeAll(keepingCapacity: true)
        upstreamOut.removeAll()
        // Resynchronise: the kernel answers with a hello and a full snapshot, which every
        // client sees (a client that connected mid-stream gets its tables that way too).
        recorder?.record(.note, Array("connected \(consolePath)".utf8))
        if let seq = try? encoder.encode(.command(.hello), into: &upstreamOut) {
            routes[seq] = (0, 0, monotonicSeconds())
        }
        recorder?.record(.toKernel, upstreamOut)
        _ = fd.flushNonBlocking(&upstreamOut)
    }

    private func dropUpstream() {
        if let upstream {
            upstream.close()
            recorder?.record(.note, Array("disconnected".utf8))
        }
        upstream = nil
        chunk.removeAll(keepingCapacity: true)
        upstreamOut.removeAll()
    }

    private func readUpstream() {
        var bytes: [UInt8] = []
        guard let upstream else { return }
        let n = upstream.readAvailable(into: &bytes, max: 1 << 20)
        if let n, n > 0 {
            bytesFromKernel &+= UInt64(n)
            recorder?.record(.fromKernel, bytes)
            split(bytes)
        }
        if n == nil { dropUpstream() }
    }

    /// Splits the kernel stream at delimiters; each complete frame is routed as a whole.
    private func split(_ bytes: [UInt8]) {
        var forward: [UInt8] = []
        var frames = 0
        forward.reserveCapacity(bytes.count + 2)
        for b in bytes {
            if b != 0 {
                chunk.append(b)
                if chunk.count > WireProtocol.maxEncodedFrameBytes + 16 {
                    // Not a frame any decoder would take; forward it so clients count it as garbage.
                    forward.append(0); forward.append(contentsOf: chunk)
                    frames += 1
                    chunk.removeAll(keepingCapacity: true)
                }
                continue
            }
            if chunk.isEmpty { continue }
            // COBS: a first code byte ≥ 3 means body[0...1] are chunk[1...2]; body[1] is the type.
            if chunk.count >= 3 && chunk[0] >= 3 && chunk[2] == WireMessageType.reply.rawValue {
                routeReply(chunk)
            } else {
                forward.append(0)
                forward.append(contentsOf: chunk)
                forward.append(0)
                frames += 1
                framesForwarded &+= 1
            }
            chunk.removeAll(keepingCapacity: true)
        }
        if !forward.isEmpty { broadcast(forward, frames: frames) }
    }

    private func routeReply(_ frame: [UInt8]) {
        replyDecoder.reset()
        replyDecoder.feed([0] + frame + [0])
        guard case .message(.reply(var reply), let frameSeq)? = replyDecoder.next() else {
            broadcast([0] + frame + [0], frames: 1)  // not a reply after all: forward as is
            return
        }
        guard let route = routes.removeValue(forKey: reply.commandSeq) else { return }
        guard route.client != 0, let c = clients[route.client] else { return }
        reply.commandSeq = route.seq
        replyEncoder.nextSeq = frameSeq
        var out: [UInt8] = []
        if (try? replyEncoder.encode(.reply(reply), into: &out)) != nil {
            enqueue(out, frames: 1, for: c)
        }
        framesForwarded &+= 1
    }

    /// `bytes` holds `frames` whole frames, each with its delimiters.
    private func broadcast(_ bytes: [UInt8], frames: Int) {
        for (_, c) in clients { enqueue(bytes, frames: frames, for: c) }
    }

    /// Queues whole frames for `c`, or drops them all when its backlog would pass the limit: what
    /// is queued is always whole frames (a partly sent one stays at the head until it is out).
    private func enqueue(_ bytes: [UInt8], frames: Int, for c: Client) {
        if c.out.count + bytes.count > clientBacklogLimit {
            framesDroppedForSlowClients &+= UInt64(frames)
            return
        }
        c.out.append(contentsOf: bytes)
    }

    // MARK: Client side

    private func acceptClients() {
        while true {
            let accepted = accept(listenFD.rawValue, nil, nil)
            if accepted < 0 { return }
            let fd = FileDescriptor(rawValue: accepted)
            if clients.count >= TelemetryHub.maxClients {
                fd.close()
                continue
            }
            fd.setNonBlocking()
            fd.setCloseOnExec()
            clients[nextClientID] = Client(fd: fd)
            nextClientID += 1
        }
    }

    private func removeClient(_ id: Int) {
        guard let c = clients.removeValue(forKey: id) else { return }
        c.fd.close()
        routes = routes.filter { $0.value.client != id }
        if capturingClients.remove(id) != nil, capturingClients.isEmpty, let upstream {
            let before = upstreamOut.count
            if let seq = try? encoder.encode(.command(.capture(on: false)), into: &upstreamOut) {
                routes[seq] = (0, 0, monotonicSeconds())
                recorder?.record(.toKernel, Array(upstreamOut[before...]))
                captureOffsSent += 1
            }
            if !upstream.flushNonBlocking(&upstreamOut) { dropUpstream() }
        }
    }

    /// False when the client went away (and was removed).
    private func readClient(_ id: Int, _ c: Client) -> Bool {
        var bytes: [UInt8] = []
        let n = c.fd.readAvailable(into: &bytes, max: 64 * 1024)
        if let n, n > 0 {
            c.decoder.feed(bytes)
            while let result = c.decoder.next() {
                guard case .message(.command(let command), let clientSeq) = result else { continue }
                // No kernel, or one that is not reading: answer at once rather than let the
                // client time out (or the queue grow).
                if upstream == nil || upstreamOut.count >= TelemetryHub.upstreamBacklogLimit {
                    var out: [UInt8] = []
                    var e = WireFrameEncoder(firstSeq: 0)
                    let why = upstream == nil ? "the guest is not connected" : "the guest is not reading commands"
                    _ = try? e.encode(.reply(WireReply(commandSeq: clientSeq, status: .unsupported, message: why)), into: &out)
                    enqueue(out, frames: 1, for: c)
                    continue
                }
                let before = upstreamOut.count
                if let seq = try? encoder.encode(.command(command), into: &upstreamOut) {
                    if case .capture(let on) = command {
                        if on { capturingClients.insert(id) } else { capturingClients.remove(id) }
                    }
                    routes[seq] = (id, clientSeq, monotonicSeconds())
                    recorder?.record(.toKernel, Array(upstreamOut[before...]))
                }
            }
            if let upstream, !upstreamOut.isEmpty, !upstream.flushNonBlocking(&upstreamOut) { dropUpstream() }
        }
        if n == nil {
            removeClient(id)
            return false
        }
        return true
    }

    private func expireRoutes() {
        guard routes.count > 256 else { return }
        let cutoff = monotonicSeconds() - 60
        routes = routes.filter { $0.value.time > cutoff }
        if routes.count > TelemetryHub.maxRoutes {
            // A kernel that reads commands but does not answer: forget the oldest.
            let newest = routes.sorted { $0.value.time > $1.value.time }.prefix(TelemetryHub.maxRoutes)
            routes = Dictionary(uniqueKeysWithValues: newest.map { ($0.key, $0.value) })
        }
    }
}
