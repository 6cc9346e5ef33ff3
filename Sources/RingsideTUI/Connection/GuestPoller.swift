// The TUI's link to any QEMU guest: a thread samples the guest (RingsideKit's GuestSession: QMP at
// a low rate, guest memory at `rate` Hz) and hands each sample to the TUI as the hello + snapshot
// messages our kernel would send, waking the TUI's poll through a pipe. `d` (dump) is answered
// here from guest memory; pause/step/rate need the guest's cooperation and are refused.

import Foundation
import RingsideKit
import Wire

public final class GuestPoller: TUILink, @unchecked Sendable {
    public let qmpPath: String
    public var path: String { qmpPath }
    public let memoryPath: String?
    public let rate: Double
    private let lock = NSLock()
    private var latest: GuestSample?
    private var latestNumber = 0
    private var deliveredNumber = 0
    /// The hello last delivered: a new one goes out whenever the guest's queues, devices or
    /// their features change (a driver that negotiates after the first read: the accepted
    /// features must not stay those of the read before it).
    private var lastHello: WireHello?
    private var error: String?
    private var reportedError: String?
    private var connected = false
    private let worker = WorkerThread(name: "ringside-guest-sampler")
    private var memory: GuestMemory?
    private var pipeFDs: [Int32] = [-1, -1]
    private var seq: UInt32 = 0
    private var pending: [LinkEvent] = []
    private let startedAt = monotonicSeconds()
    private var consistentRequested = false
    private var consistentResult: (sample: GuestSample?, stopped: Double, wasRunning: Bool, error: String?)?

    public init(qmpPath: String, memoryPath: String?, rate: Double = 60) {
        self.qmpPath = qmpPath
        self.memoryPath = memoryPath
        self.rate = max(1, min(rate, 1000))
        _ = pipe(&pipeFDs)
        for fd in pipeFDs { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        worker.start { [self] in self.loop() }
    }

    deinit { close() }

    public var pollDescriptor: Int32? { pipeFDs[0] >= 0 ? pipeFDs[0] : nil }

    private var shouldStop: Bool { worker.shouldStop }

    private func loop() {
        var session: GuestSession?
        let period = 1 / rate
        var next = monotonicSeconds()
        while !shouldStop {
            if session == nil {
                do {
                    session = try GuestSession(qmpPath: qmpPath, memoryPath: memoryPath, timeout: 1)
                    lock.lock(); memory = session?.memory; error = nil; lock.unlock()
                } catch {
                    lock.lock(); self.error = error.description; lock.unlock()
                    wake()
                    usleep(500_000)
                    continue
                }
            }
            lock.lock(); let wantConsistent = consistentRequested; consistentRequested = false; lock.unlock()
            if wantConsistent {
                let result: (sample: GuestSample?, stopped: Double, wasRunning: Bool, error: String?)
                do {
                    let c = try session!.consistentSample()
                    result = (c.sample, c.stoppedSeconds, c.wasRunning, nil)
                } catch {
                    result = (nil, 0, false, error.description)
                }
                lock.lock(); consistentResult = result; lock.unlock()
            }
            let s = session!.sample()
            lock.lock()
            latest = s
            latestNumber += 1
            lock.unlock()
            wake()
            next += period
            let wait = next - monotonicSeconds()
            if wait > 0 { usleep(UInt32(wait * 1e6)) } else { next = monotonicSeconds() }
        }
        session?.close()
    }

    private func wake() {
        var b: UInt8 = 1
        _ = write(pipeFDs[1], &b, 1)
    }

    public func service(now: Double) -> [LinkEvent] {
        var drain = [UInt8](repeating: 0, count: 256)
        while read(pipeFDs[0], &drain, drain.count) > 0 {}
        var events = pending
        pending = []
        lock.lock()
        let s = latest, n = latestNumber, err = error
        lock.unlock()
        if let err, err != reportedError {
            reportedError = err
            if connected { connected = false; events.append(.disconnected(reason: err)) }
            events.append(.decodeError("guest: \(err)"))
        }
        guard let s, n != deliveredNumber else { return events }
        deliveredNumber = n
        let hello = GuestTelemetry.hello(s)
        if !connected || hello != lastHello {
            if !connected { events.append(.connected); connected = true; reportedError = nil }
            lastHello = hello
            seq &+= 1
            events.append(.message(.hello(hello), seq: seq))
        }
        seq &+= 1
        events.append(.message(.snapshot(GuestTelemetry.snapshot(s, number: UInt32(truncatingIfNeeded: n), startedAt: startedAt, rateHz: UInt16(rate))), seq: seq))
        return events
    }

    public var guestFacts: GuestFacts? {
        lock.lock(); let s = latest; lock.unlock()
        return GuestFacts(mac: s.flatMap { GuestTelemetry.macAddress($0) })
    }

    /// The device's own indices (QMP, polled at 2 Hz by the session) of every queue.
    public func deviceTruth() -> (names: [Int: String], state: DeviceTruthState)? {
        lock.lock(); let s = latest; lock.unlock()
        guard let s, let d = GuestTelemetry.deviceTruth(s) else { return nil }
        return (d.names, .sample(d.sample))
    }

    public func requestConsistentSnapshot() -> String? {
        lock.lock(); defer { lock.unlock() }
        guard latest != nil else { return "not connected to the guest yet" }
        consistentRequested = true
        return nil
    }

    public func takeConsistentSnapshot() -> ConsistentSnapshot? {
        lock.lock(); let r = consistentResult; consistentResult = nil; lock.unlock()
        guard let r else { return nil }
        guard let s = r.sample else {
            return ConsistentSnapshot(events: [], deviceNames: [:], device: nil, stoppedSeconds: 0, wasRunning: false,
                                      error: r.error ?? "unknown error")
        }
        var events: [LinkEvent] = []
        let hello = GuestTelemetry.hello(s)
        if hello != lastHello {
            lastHello = hello
            seq &+= 1
            events.append(.message(.hello(hello), seq: seq))
        }
        seq &+= 1
        events.append(.message(.snapshot(GuestTelemetry.snapshot(s, number: UInt32(truncatingIfNeeded: s.number), startedAt: startedAt,
                                                                  rateHz: UInt16(rate))), seq: seq))
        let d = GuestTelemetry.deviceTruth(s)
        return ConsistentSnapshot(events: events, deviceNames: d?.names ?? [:], device: d?.sample, stoppedSeconds: r.stopped,
                                  wasRunning: r.wasRunning)
    }

    /// Dumps are read from guest memory; everything else needs the guest's help.
    public func send(_ command: WireCommand) -> UInt32? {
        seq &+= 1
        let mySeq = seq
        var reply = WireReply(commandSeq: mySeq, status: .unsupported,
                              message: "not possible without the guest's cooperation (QMP + memory view)")
        switch command {
        case .hello, .requestFull, .stats, .setSnapshotRate:
            reply = WireReply(commandSeq: mySeq, status: .ok)
        case .dump(let q, let selector):
            lock.lock(); let s = latest, mem = memory; lock.unlock()
            if let s, let mem, Int(q) < s.queues.count {
                let sel: GuestBufferSelector
                switch selector {
                case .descriptor(let id): sel = .descriptor(Int(id))
                case .next: sel = .next
                case .last: sel = .last
                }
                do {
                    let b = try s.buffer(queue: s.queues[Int(q)].name, sel, memory: mem)
                    let addr = b.chain.segments.first?.addr ?? 0
                    reply = WireReply(commandSeq: mySeq, status: .ok,
                                      body: .dump(WireDump(queue: q, descriptor: UInt16(b.head), guestAddress: addr,
                                                           bufferLength: UInt32(clamping: b.bytes.count), bytes: b.bytes)))
                } catch {
                    reply = WireReply(commandSeq: mySeq, status: .nothingPending, message: error.description)
                }
            } else {
                reply = WireReply(commandSeq: mySeq, status: .unsupported, message: "dump needs the guest memory file (--memory)")
            }
        default:
            break
        }
        seq &+= 1
        pending.append(.message(.reply(reply), seq: seq))
        wake()
        return mySeq
    }

    public func close() {
        worker.stop(waitingAtMost: 3)
        for i in 0..<2 where pipeFDs[i] >= 0 { Glibc.close(pipeFDs[i]); pipeFDs[i] = -1 }
    }
}
