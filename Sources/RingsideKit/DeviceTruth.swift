// Device truth: QEMU's own view of the virtio-net queues (QMP `x-query-virtio-queue-status`),
// polled on a thread of its own so a slow or absent QMP never stalls the caller. The rule that
// compares it with the driver's view (the kernel's telemetry) is in DeviceTruthComparison, the
// trackers that apply it over time in DeviceTruthTrackers.
//
// What the QMP fields mean on QEMU 7.2 (checked against the kernel in TelemetryTests'
// device-truth test): `last-avail-idx` counts the buffers the device has taken from the avail
// ring, `used-idx` the ones it has put in the used ring, `inuse` the ones taken and not yet
// returned, `vring-num` the queue size. `shadow-avail-idx` is QEMU's last read of the guest's
// avail->idx and can lag the guest, so it is shown but never compared.

import Foundation

/// The device's view of one queue, as QMP reported it.
public struct DeviceQueueView: Equatable, Sendable {
    /// The device's queue number (virtio-net: 0 = rx, 1 = tx).
    public var queue: Int
    public var lastAvailIdx: UInt16
    public var usedIdx: UInt16
    public var inuse: Int
    public var vringNum: Int
    public var shadowAvailIdx: UInt16
    /// Monotonic seconds (CLOCK_MONOTONIC) when QEMU's answer was in.
    public var time: Double
    /// Monotonic seconds when the query was sent: QEMU read these values between
    /// `requestTime` and `time`.
    public var requestTime: Double

    public init(queue: Int, lastAvailIdx: UInt16, usedIdx: UInt16, inuse: Int, vringNum: Int, shadowAvailIdx: UInt16,
                time: Double = 0, requestTime: Double? = nil) {
        self.time = time
        self.requestTime = requestTime ?? time
        self.queue = queue
        self.lastAvailIdx = lastAvailIdx
        self.usedIdx = usedIdx
        self.inuse = inuse
        self.vringNum = vringNum
        self.shadowAvailIdx = shadowAvailIdx
    }

    /// Parses a `x-query-virtio-queue-status` reply.
    public init?(queue: Int, qmp reply: [String: Any], time: Double = monotonicSeconds(), requestTime: Double? = nil) {
        func int(_ key: String) -> Int? { (reply[key] as? NSNumber)?.intValue }
        guard let lastAvail = int("last-avail-idx"), let used = int("used-idx"),
              let inuse = int("inuse"), let num = int("vring-num") else { return nil }
        self.init(queue: queue, lastAvailIdx: UInt16(truncatingIfNeeded: lastAvail), usedIdx: UInt16(truncatingIfNeeded: used),
                  inuse: inuse, vringNum: num, shadowAvailIdx: UInt16(truncatingIfNeeded: int("shadow-avail-idx") ?? lastAvail),
                  time: time, requestTime: requestTime)
    }
}

/// One poll of every queue.
public struct DeviceTruthSample: Equatable, Sendable {
    /// Monotonic seconds (CLOCK_MONOTONIC) when the answers were in.
    public var time: Double
    /// Counts up by one per successful poll.
    public var number: Int
    public var queues: [DeviceQueueView]

    public init(time: Double, number: Int, queues: [DeviceQueueView]) {
        self.time = time
        self.number = number
        self.queues = queues
    }

    public func queue(_ q: Int) -> DeviceQueueView? { queues.first { $0.queue == q } }
}

/// The answer to one HMP command (`human-monitor-command`).
public struct HMPResult: Equatable, Sendable {
    public var command: String
    /// QEMU's text (may be empty: many HMP commands print nothing on success).
    public var output: String
    /// Why there is no answer (no QMP, QEMU refused the command line...).
    public var error: String?

    public init(command: String, output: String, error: String?) {
        self.command = command
        self.output = output
        self.error = error
    }
}

/// What the poller has to say right now.
public enum DeviceTruthState: Equatable, Sendable {
    /// Not polled yet.
    case starting
    /// QMP is absent or failing; the reason. (A previous sample is no longer trusted.)
    case unavailable(String)
    case sample(DeviceTruthSample)
}

/// Polls QMP `x-query-virtio-queue-status` for a few queues of one device, at most every
/// `interval` seconds, on its own thread. `latest` never blocks for long (a lock around a value).
///
/// QEMU's QMP socket serves one client at a time: while someone else holds it, connecting
/// succeeds but no greeting comes, and the poller reports "unavailable" and retries.
public final class DeviceTruthPoller: @unchecked Sendable {
    /// The `id=` of the device watched by default: the kernel's virtio-net.
    public static let netDeviceID = "net0"

    public let socketPath: String
    /// The device's QOM path; nil until discovered when the caller gave none
    /// (`virtioDevicePath(id:in:)`: QEMU puts it in different places on different machines).
    public private(set) var devicePath: String? {
        get { lock.lock(); defer { lock.unlock() }; return _devicePath }
        set { lock.lock(); _devicePath = newValue; lock.unlock() }
    }
    private var _devicePath: String?
    public let queues: [Int]
    public let interval: Double
    private let lock = NSLock()
    private var state: DeviceTruthState = .starting
    private let worker = WorkerThread(name: "ringside-device-truth")
    private var hmpRequests: [String] = []
    private var hmpResults: [HMPResult] = []

    /// `interval` is clamped to at least 0.25 s (4 Hz: two queries per poll, about 8 queries/s;
    /// QMP polling at 100 queries/s costs the guest 2-3% of its echo rate, so this is well under 1%).
    /// Four samples a second let a persistent disagreement be flagged within a second.
    public init(socketPath: String, devicePath: String? = nil,
                queues: [Int] = [0, 1], interval: Double = 0.25) {
        self.socketPath = socketPath
        self._devicePath = devicePath
        self.queues = queues
        self.interval = max(0.25, interval)
    }

    deinit { stop() }

    /// The latest result.
    public var latest: DeviceTruthState {
        lock.lock(); defer { lock.unlock() }
        return state
    }

    /// Queues an HMP command (`info pci`), run through QMP `human-monitor-command` on this
    /// poller's connection (QEMU serves one client per QMP socket, and this poller holds it).
    /// Its answer comes back through `takeHMPResults`. At most 16 wait; more are refused at once.
    public func submitHMP(_ command: String) {
        lock.lock(); defer { lock.unlock() }
        if hmpRequests.count >= 16 {
            hmpResults.append(HMPResult(command: command, output: "", error: "too many HMP commands waiting"))
            return
        }
        hmpRequests.append(command)
    }

    /// HMP answers that came in since the last call, oldest first.
    public func takeHMPResults() -> [HMPResult] {
        lock.lock(); defer { lock.unlock() }
        let r = hmpResults
        hmpResults.removeAll()
        return r
    }

    private func nextHMPRequest() -> String? {
        lock.lock(); defer { lock.unlock() }
        return hmpRequests.isEmpty ? nil : hmpRequests.removeFirst()
    }

    private func deliver(_ r: HMPResult) {
        lock.lock(); hmpResults.append(r); lock.unlock()
    }

    public func start() {
        worker.start { [self] in self.loop() }
    }

    /// Stops the thread and closes the QMP connection (waits at most about 2 s).
    public func stop() {
        worker.stop(waitingAtMost: 2.5)
    }

    private var shouldStop: Bool { worker.shouldStop }

    private func publish(_ s: DeviceTruthState) {
        lock.lock(); state = s; lock.unlock()
    }

    /// Sleeps up to `seconds`, waking early when stopped (or when an HMP command waits).
    private func nap(_ seconds: Double, wakeForHMP: Bool = false) {
        let until = monotonicSeconds() + seconds
        while !shouldStop {
            if wakeForHMP {
                lock.lock(); let waiting = !hmpRequests.isEmpty; lock.unlock()
                if waiting { return }
            }
            let left = until - monotonicSeconds()
            if left <= 0 { return }
            usleep(UInt32(min(left, 0.05) * 1e6))
        }
    }

    private func loop() {
        var client: QMPClient?
        var number = 0
        while !shouldStop {
            let started = monotonicSeconds()
            while let command = nextHMPRequest() {
                do {
                    if client == nil { client = try QMPClient(path: socketPath, timeout: 0.5) }
                    let out = try client!.execute("human-monitor-command", arguments: ["command-line": command], timeout: 5)
                    deliver(HMPResult(command: command, output: out as? String ?? "\(out)", error: nil))
                } catch {
                    client?.close()
                    client = nil
                    deliver(HMPResult(command: command, output: "", error: "\(error)"))
                }
            }
            do {
                if client == nil { client = try QMPClient(path: socketPath, timeout: 0.5) }
                if devicePath == nil {
                    let devices = try virtioDevices(client!)
                    guard let found = virtioDevicePath(id: Self.netDeviceID, in: devices) else {
                        throw RingsideError(missingDeviceMessage(devicePath: nil, virtioDevices: devices))
                    }
                    devicePath = found
                }
                guard let devicePath else { continue }
                var views: [DeviceQueueView] = []
                for q in queues {
                    let sent = monotonicSeconds()
                    let reply = try client!.execute("x-query-virtio-queue-status",
                                                    arguments: ["path": devicePath, "queue": q], timeout: 1)
                    guard let obj = reply as? [String: Any], let view = DeviceQueueView(queue: q, qmp: obj, requestTime: sent) else {
                        throw RingsideError("unexpected x-query-virtio-queue-status reply for queue \(q)")
                    }
                    views.append(view)
                }
                number += 1
                publish(.sample(DeviceTruthSample(time: monotonicSeconds(), number: number, queues: views)))
            } catch {
                var reason = "\(error)"
                if reason.contains("is not a VirtIODevice") || reason.contains("not found"), let client {
                    // Say what QEMU does have, while the connection is still up.
                    let devices = (try? virtioDevices(client)) ?? []
                    reason = missingDeviceMessage(devicePath: devicePath, virtioDevices: devices)
                }
                client?.close()
                client = nil
                publish(.unavailable(reason))
            }
            nap(interval - (monotonicSeconds() - started), wakeForHMP: true)
        }
        client?.close()
    }
}

/// QEMU's virtio devices as `x-query-virtio` lists them: each one's type name and QOM path.
public func virtioDevices(_ client: QMPClient) throws -> [(name: String, path: String)] {
    (try client.execute("x-query-virtio", timeout: 1) as? [[String: Any]] ?? []).compactMap { d in
        guard let name = d["name"] as? String, let path = d["path"] as? String else { return nil }
        return (name, path)
    }
}

/// The QOM path of the virtio device whose `-device … id=` is `id`, among `devices`
/// (`x-query-virtio`). Asked, never assumed: on `pc` a virtio-net-pci proxy holds the virtio
/// device at `/machine/peripheral/ID/virtio-backend`; on microvm virtio-net-device *is* the
/// virtio device, at `/machine/peripheral/ID`.
public func virtioDevicePath(id: String, in devices: [(name: String, path: String)]) -> String? {
    devices.first { device in
        let parts = device.path.split(separator: "/")
        return parts.count >= 3 && parts[0] == "machine" && parts[1] == "peripheral" && parts[2] == id
    }?.path
}

/// Why the device view is unavailable when QEMU has no virtio device at `devicePath` (nil: none
/// with `id=net0`): the net device needs `id=net0` on its `-device`, and where QEMU's virtio
/// devices are instead.
public func missingDeviceMessage(devicePath: String?, virtioDevices: [(name: String, path: String)]) -> String {
    var text = "QEMU has no virtio device at \(devicePath ?? "/machine/peripheral/\(DeviceTruthPoller.netDeviceID)")"
    if devicePath == nil {
        text += ": add id=net0 to the virtio-net device (-device virtio-net-pci,netdev=…,id=net0; ringside qemu-args prints a complete line)"
    }
    let nets = virtioDevices.filter { $0.name == "virtio-net" }
    if !nets.isEmpty {
        text += "; QEMU's virtio-net is at " + nets.map(\.path).joined(separator: ", ")
    }
    return text
}
