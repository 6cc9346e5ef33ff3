import Foundation

// The lifecycle every background loop of the monitor shares (the device-truth poller, the telemetry
// hub, the TUI's guest and memory-view samplers): one named thread, started once, that runs a loop
// until asked to stop; `stop` waits for the loop to return.

/// A named thread running one loop until `stop()`. The loop polls `shouldStop` and returns soon
/// after it turns true.
public final class WorkerThread: @unchecked Sendable {
    public let name: String
    private let lock = NSLock()
    private var thread: Thread?
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)

    public init(name: String) { self.name = name }

    /// Runs `loop` on a new thread. Only the first call starts one; later calls do nothing.
    public func start(_ loop: @escaping @Sendable () -> Void) {
        lock.lock()
        guard thread == nil else { lock.unlock(); return }
        let finished = self.finished
        let t = Thread {
            loop()
            finished.signal()
        }
        t.name = name
        thread = t
        lock.unlock()
        t.start()
    }

    /// True once `stop` was called.
    public var shouldStop: Bool {
        lock.lock(); defer { lock.unlock() }
        return stopping
    }

    /// Asks the loop to stop and waits for it to return: at most `timeout` seconds, or as long as
    /// it takes when `timeout` is nil. Does not wait when the loop never started or was stopped before.
    public func stop(waitingAtMost timeout: Double?) {
        lock.lock()
        let running = thread != nil && !stopping
        stopping = true
        lock.unlock()
        guard running else { return }
        if let timeout {
            _ = finished.wait(timeout: .now() + timeout)
        } else {
            finished.wait()
        }
    }
}
