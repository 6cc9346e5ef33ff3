// The memory view of our own kernel (`ringside run --shared-memory`): a thread reads the rings
// of the four queues (net0.rx/tx, con0.rx/tx) from the shared guest RAM (RingsideKit's
// GuestSession, which finds them through QMP on a QMP socket of its own) and keeps the latest
// sample for the TUI, which sets it beside the telemetry and the device's QMP view.

import Foundation
import RingsideKit

public final class MemoryViewPoller: @unchecked Sendable {
    /// GuestSession's queue names → the kernel's telemetry names (virtconsole con0 is port 0 of
    /// the virtio-serial controller `vser`).
    public static let kernelQueueNames: [String: String] = [
        "net0.rx": "net0.rx", "net0.tx": "net0.tx", "vser.port0.rx": "con0.rx", "vser.port0.tx": "con0.tx",
    ]

    public let qmpPath: String
    public let memoryPath: String
    public let rate: Double
    private let lock = NSLock()
    private var latest: GuestSample?
    private var error: String?
    private let worker = WorkerThread(name: "ringside-memory-view")

    public init(qmpPath: String, memoryPath: String, rate: Double = 20) {
        self.qmpPath = qmpPath
        self.memoryPath = memoryPath
        self.rate = max(1, min(rate, 200))
    }

    deinit { stop() }

    public func start() {
        worker.start { [self] in self.loop() }
    }

    public func stop() {
        worker.stop(waitingAtMost: 3)
    }

    /// The latest sample, or why there is none.
    public var state: (sample: GuestSample?, error: String?) {
        lock.lock(); defer { lock.unlock() }
        return (latest, error)
    }

    private var shouldStop: Bool { worker.shouldStop }

    private func loop() {
        var session: GuestSession?
        while !shouldStop {
            if session == nil {
                do {
                    session = try GuestSession(qmpPath: qmpPath, memoryPath: memoryPath, qmpInterval: 0.5, timeout: 1,
                                               queueFilter: Set(Self.kernelQueueNames.keys))
                } catch {
                    lock.lock(); self.error = error.description; lock.unlock()
                    usleep(300_000)
                    continue
                }
            }
            let s = session!.sample()
            lock.lock(); latest = s; error = nil; lock.unlock()
            usleep(UInt32(1e6 / rate))
        }
        session?.close()
    }
}
