import Foundation
import Wire
@testable import RingsideKit

/// A stand-in for the kernel's end of the telemetry channel, on a unix socket, speaking the real
/// wire format (`WireFrameEncoder`/`WireFrameDecoder`): it greets each client with `hello` and a
/// full snapshot, answers `hello`/`stats`/`requestFull` as the kernel does (reply, then hello or
/// snapshot), and every other command with `answer(command, seq)`. One client at a time, like
/// QEMU's console socket.
final class FakeKernel: @unchecked Sendable {
    let path: String
    let hello: WireHello
    let answer: @Sendable (WireCommand, UInt32) -> WireReply
    private let listener: FileDescriptor
    private let lock = NSLock()
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)
    private var encoder = WireFrameEncoder(firstSeq: 1)
    private var snapshotNumber: UInt32 = 0

    init(path: String, hello: WireHello, answer: @escaping @Sendable (WireCommand, UInt32) -> WireReply) throws {
        self.path = path
        self.hello = hello
        self.answer = answer
        listener = try listenUnixSocket(path)
        let t = Thread { [self] in serve(); done.signal() }
        t.name = "fake kernel"
        t.start()
    }

    deinit { stop() }

    func stop() {
        lock.lock()
        let wasRunning = !stopping
        stopping = true
        lock.unlock()
        guard wasRunning else { return }
        done.wait()
        listener.close()
        unlink(path)
    }

    private var shouldStop: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    /// A full snapshot of every queue in the hello (all descriptors available, one event before it).
    private func fullSnapshot(into out: inout [UInt8]) {
        snapshotNumber += 1
        _ = try? encoder.encode(.event(WireEvent(uptimeNs: UInt64(snapshotNumber), kind: .kick(queue: 0))), into: &out)
        let queues = hello.queues.map { q in
            WireQueueSnapshot(status: WireQueueStatus(queue: q.queue, availIdx: q.size, usedIdx: 0, lastUsedIdx: 0, freeCount: 0,
                                                      pendingUsed: 0, paused: false, counters: WireQueueCounters(packets: 1)),
                              descriptors: .full((0..<Int(q.size)).map { i in
                                  WireDescriptor(state: .avail, addr: 0x1000 * UInt64(i + 1), len: 2048, flags: 2, next: 0)
                              }))
        }
        _ = try? encoder.encode(.snapshot(WireSnapshot(snapshotNumber: snapshotNumber, uptimeNs: UInt64(snapshotNumber) * 100_000_000,
                                                       rateHz: 10, droppedFrames: 0, queues: queues)), into: &out)
    }

    private func serve() {
        var client: Int32 = -1
        var decoder = WireFrameDecoder()
        while !shouldStop {
            var fds = [pollfd(fd: listener.rawValue, events: Int16(POLLIN), revents: 0)]
            if client >= 0 { fds.append(pollfd(fd: client, events: Int16(POLLIN), revents: 0)) }
            if poll(&fds, nfds_t(fds.count), 50) <= 0 { continue }
            var out: [UInt8] = []
            if client < 0 && fds[0].revents & Int16(POLLIN) != 0 {
                client = accept(listener.rawValue, nil, nil)
                decoder.reset()
                if client >= 0 {
                    _ = try? encoder.encode(.hello(hello), into: &out)
                    fullSnapshot(into: &out)
                }
            }
            if fds.count > 1 && fds[1].revents != 0 {
                var bytes: [UInt8] = []
                FileDescriptor(rawValue: client).setNonBlocking()
                if FileDescriptor(rawValue: client).readAvailable(into: &bytes) == nil {
                    close(client)
                    client = -1
                    continue
                }
                decoder.feed(bytes)
                while let result = decoder.next() {
                    guard case .message(.command(let command), let seq) = result else { continue }
                    switch command {
                    case .hello:
                        _ = try? encoder.encode(.reply(WireReply(commandSeq: seq, status: .ok)), into: &out)
                        _ = try? encoder.encode(.hello(hello), into: &out)
                        fullSnapshot(into: &out)
                    case .stats, .requestFull:
                        _ = try? encoder.encode(.reply(WireReply(commandSeq: seq, status: .ok)), into: &out)
                        fullSnapshot(into: &out)
                    default:
                        _ = try? encoder.encode(.reply(answer(command, seq)), into: &out)
                    }
                }
            }
            if client >= 0 && !out.isEmpty { try? FileDescriptor(rawValue: client).writeAll(out, timeout: 5) }
        }
        if client >= 0 { close(client) }
    }
}
