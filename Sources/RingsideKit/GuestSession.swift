// A watch on any QEMU guest: QMP for the devices, their features and the rings' addresses (at a
// low rate: QMP queries cost the guest), guest memory for the rings themselves (at any rate: a
// read of shared memory costs the guest nothing). Without a memory file it falls back to QMP
// alone and says so in every sample (`source: qmp`).

import Foundation
import Wire

/// One queue in one sample.
public struct GuestQueueSample: Equatable, Sendable {
    /// `net0.rx`
    public var name: String
    public var device: String
    public var queue: Int
    /// The device's view (as of the last QMP poll), when QMP answered.
    public var deviceView: GuestQueueDeviceView?
    /// Live indices through QMP (QMP-only mode).
    public var element: GuestQueueElementView?
    /// The rings read from guest memory (memory mode, queue set up).
    public var ring: GuestRingSnapshot?
    /// The queue's role for the lost-notification detector (from its name; GuestSession works
    /// it out once per queue; nil: work it out from `name`).
    public var role: NotificationQueueRole?
}

public struct GuestSample: Equatable, Sendable {
    public enum Source: String, Sendable { case memory, qmp }
    public var time: Double
    public var number: Int
    public var source: Source
    public var devices: [GuestDeviceInfo]
    public var queues: [GuestQueueSample]
    /// Seconds since QMP last answered (the device views' age).
    public var qmpAge: Double
    /// Why the view is degraded, if it is (QMP-only, QMP failing).
    public var notes: [String]
    /// MAC addresses of the virtio-net devices (device name → "52:54:00:12:34:56"), from QOM.
    public var macs: [String: String] = [:]

    public func queue(named name: String) -> GuestQueueSample? { queues.first { $0.name == name } }
    public func device(named name: String) -> GuestDeviceInfo? { devices.first { $0.name == name } }
}

public final class GuestSession {
    public let qmpPath: String
    public let memoryPath: String?
    public let memory: GuestMemory?
    public private(set) var layoutSource = ""
    public private(set) var devices: [GuestDeviceInfo] = []
    /// QMP poll period for the device views (seconds, at least 0.1).
    public var qmpInterval: Double
    /// When set, only these queues (`net0.rx`) are queried and read: a virtio-serial device
    /// has 64 queues, and each QMP query costs the guest.
    public var queueFilter: Set<String>?
    /// Device/feature rediscovery period (seconds).
    public var discoveryInterval = 2.0
    private var qmp: QMPClient?
    private var views: [String: GuestQueueDeviceView] = [:]
    private var elements: [String: GuestQueueElementView] = [:]
    /// Each queue's last memory read (by queue name): an unchanged ring is compared, not re-derived.
    private var ringCaches: [String: GuestRingCache] = [:]
    /// Whether ring snapshots keep their chains (`GuestRingReader.keepsChains`): a caller that
    /// shows only indices, states and problems (plain `watch`) turns it off.
    public var keepsChains = true
    /// What a sample reads, queue by queue (names, readers, caches, the last QMP views), made
    /// again when the devices, the filter or the QMP views change: a sample then costs no
    /// string building, dictionary lookups or feature-name searches per queue.
    private struct PlannedQueue {
        var key: String
        var device: String
        var queue: Int
        var reader: GuestRingReader
        var cache: GuestRingCache
        var view: GuestQueueDeviceView?
        var element: GuestQueueElementView?
        var role: NotificationQueueRole
    }
    private var plan: [PlannedQueue] = []
    private var planValid = false
    private var lastQMP = -1e9
    private var lastDiscovery = -1e9
    private var seenEvents: UInt64 = 0
    private var number = 0
    private var qmpError: String?
    /// MAC addresses by device name (read once per device: QOM `mac`).
    public private(set) var macs: [String: String] = [:]
    /// Times the ring addresses or features were re-read because of a reset or a change.
    public private(set) var rediscoveries = 0

    /// Connects to QMP and maps `memoryPath` (when given), then discovers the devices.
    public init(qmpPath: String, memoryPath: String?, qmpInterval: Double = 0.5, timeout: Double = 10,
                queueFilter: Set<String>? = nil) throws(RingsideError) {
        self.queueFilter = queueFilter
        self.qmpPath = qmpPath
        self.memoryPath = memoryPath
        self.qmpInterval = max(0.1, qmpInterval)
        let client = try QMPClient(path: qmpPath, timeout: timeout)
        qmp = client
        if let memoryPath {
            let probe = try GuestMemory(path: memoryPath)
            let (layout, source) = GuestDiscovery.layout(client, memoryPath: memoryPath, fileSize: UInt64(probe.size))
            memory = try GuestMemory(path: memoryPath, layout: layout)
            layoutSource = source
        } else {
            memory = nil
        }
        try discover()
        try pollQMP()
    }

    public func close() { qmp?.close(); qmp = nil }

    /// The QMP client (one command at a time; shared with `dump` and friends).
    public var client: QMPClient? { qmp }

    private func discover() throws(RingsideError) {
        guard let qmp else { throw RingsideError("QMP is not connected") }
        let found = try GuestDiscovery.devices(qmp)
        if found != devices, !devices.isEmpty { rediscoveries += 1 }
        if found != devices { planValid = false }
        devices = found
        for d in found where d.type == "virtio-net" && macs[d.name] == nil {
            macs[d.name] = GuestDiscovery.macAddress(qmp, path: d.path)
        }
        lastDiscovery = monotonicSeconds()
    }

    /// Polls every queue's status; returns whether any queue's ring addresses changed (a driver
    /// set its queues up, or set them up again).
    @discardableResult
    private func pollQMP() throws(RingsideError) -> Bool {
        guard let qmp else { throw RingsideError("QMP is not connected") }
        var moved = false
        var newViews: [String: GuestQueueDeviceView] = [:]
        var newElements: [String: GuestQueueElementView] = [:]
        for d in devices {
            for (i, qn) in d.queueNames.enumerated() {
                let key = "\(d.name).\(qn)"
                if let queueFilter, !queueFilter.contains(key) { continue }
                let v = try GuestDiscovery.queueStatus(qmp, path: d.path, queue: i)
                if let old = views[key], old.addresses != v.addresses { rediscoveries += 1; moved = true }
                newViews[key] = v
                if memory == nil, v.addresses.isSetUp {
                    newElements[key] = try? GuestDiscovery.queueElement(qmp, path: d.path, queue: i)
                }
            }
        }
        views = newViews
        elements = newElements
        planValid = false
        lastQMP = monotonicSeconds()
        return moved
    }

    /// A reset (QMP `RESET` event) since we last looked: the driver will renegotiate.
    private func sawReset() -> Bool {
        guard let qmp else { return false }
        let total = UInt64(qmp.events.count) &+ qmp.droppedEvents
        defer { seenEvents = total }
        guard total != seenEvents else { return false }
        let fresh = Int(min(total &- seenEvents, UInt64(qmp.events.count)))
        return qmp.events.suffix(fresh).contains { ($0["event"] as? String) == "RESET" }
    }

    /// Takes one sample: guest memory now; QMP when `qmpInterval` has passed (or `forceQMP`).
    public func sample(forceQMP: Bool = false) -> GuestSample {
        let now = monotonicSeconds()
        var notes: [String] = []
        if qmp == nil { qmp = try? QMPClient(path: qmpPath, timeout: 0.2) }
        if qmp != nil {
            do {
                if sawReset() || now - lastDiscovery >= discoveryInterval { try discover() }
                // New ring addresses: the driver has negotiated (FEATURES_OK comes before queue
                // setup, virtio 1.2 §3.1.1), so the features that say how to read the rings
                // (VIRTIO_F_RING_PACKED, EVENT_IDX) are read again before the rings are.
                if forceQMP || now - lastQMP >= qmpInterval, try pollQMP() { try discover() }
                qmpError = nil
            } catch {
                qmp?.close(); qmp = nil
                qmpError = error.description
            }
        }
        if let qmpError { notes.append("QMP unavailable: \(qmpError)") }
        if memory == nil { notes.append("no guest memory file: QMP only (indices, inuse, one element per queue) at \(String(format: "%.1f", 1 / qmpInterval)) Hz") }
        number += 1
        // The time of the memory read (after any QMP poll above): comparisons order by it.
        let readTime = monotonicSeconds()
        if !planValid || plannedFilter != queueFilter || plannedKeepsChains != keepsChains { makePlan() }
        var queues: [GuestQueueSample] = []
        queues.reserveCapacity(plan.count)
        var k = 0
        while k < plan.count {
            let q = plan[k]
            var ring: GuestRingSnapshot?
            if let memory, let a = q.view?.addresses, a.isSetUp {
                ring = q.reader.read(memory, a, cache: q.cache, sample: number)
            }
            queues.append(GuestQueueSample(name: q.key, device: q.device, queue: q.queue, deviceView: q.view, element: q.element, ring: ring,
                                           role: q.role))
            k += 1
        }
        var sample = GuestSample(time: readTime, number: number, source: memory == nil ? .qmp : .memory, devices: devices,
                                 queues: queues, qmpAge: max(0, readTime - lastQMP), notes: notes)
        sample.macs = macs
        return sample
    }

    private var plannedFilter: Set<String>?
    private var plannedKeepsChains = true

    private func makePlan() {
        plan = []
        for d in devices {
            var reader = d.ringReader
            reader.keepsChains = keepsChains
            for (i, qn) in d.queueNames.enumerated() {
                let key = "\(d.name).\(qn)"
                if let queueFilter, !queueFilter.contains(key) { continue }
                let cache = ringCaches[key] ?? GuestRingCache()
                ringCaches[key] = cache
                plan.append(PlannedQueue(key: key, device: d.name, queue: i, reader: reader, cache: cache,
                                         view: views[key], element: elements[key], role: NotificationQueueRole(queueName: key)))
            }
        }
        plannedFilter = queueFilter
        plannedKeepsChains = keepsChains
        planValid = true
    }

    /// A consistent sample: QMP `stop`, every queue read from QMP and from memory, `cont` (only
    /// when the guest was running: a guest already paused stays paused). Returns the sample and
    /// how long the guest was stopped (seconds: from before `stop` was sent until `cont`'s
    /// answer, an upper bound).
    public func consistentSample() throws(RingsideError) -> (sample: GuestSample, stoppedSeconds: Double, wasRunning: Bool) {
        if qmp == nil { qmp = try QMPClient(path: qmpPath, timeout: 1) }
        guard let qmp else { throw RingsideError("QMP is not connected") }
        let status = try qmp.execute("query-status", timeout: 2)
        let running = (status as? [String: Any])?["running"] as? Bool ?? true
        let t0 = monotonicSeconds()
        if running { _ = try qmp.execute("stop", timeout: 2) }
        var s: GuestSample?
        var failure: RingsideError?
        do {
            try pollQMP()
            s = sample()
        } catch {
            failure = error
        }
        if running {
            do { _ = try qmp.execute("cont", timeout: 2) } catch {
                // Try once more on a fresh connection: leaving the guest stopped is the worst outcome.
                let c = try? QMPClient(path: qmpPath, timeout: 1)
                _ = try? c?.execute("cont", timeout: 2)
                c?.close()
                if failure == nil { failure = error }
            }
        }
        let stopped = monotonicSeconds() - t0
        if let failure { throw failure }
        return (s!, running ? stopped : 0, running)
    }

    /// The device whose queue is called `name` (`net0.rx`), and the queue's index.
    public func resolve(queue name: String) -> (GuestDeviceInfo, Int)? {
        for d in devices { for (i, qn) in d.queueNames.enumerated() where "\(d.name).\(qn)" == name { return (d, i) } }
        return nil
    }

    public var queueNames: [String] { devices.flatMap { d in d.queueNames.map { "\(d.name).\($0)" } } }
}

// MARK: - JSON

extension GuestSample {
    /// The sample as one JSON line (keys sorted; written by GuestSampleJSON). Numbers are
    /// decimal; ring indices raw 16-bit.
    public func json() -> String {
        var encoder = GuestSampleJSON()
        return String(decoding: encoder.line(self).dropLast(), as: UTF8.self)
    }
}

// MARK: - Buffers

/// A buffer picked out of a ring for a dump.
public struct GuestBuffer: Sendable {
    public var head: Int
    /// The used element's length, when the buffer came back through the used ring.
    public var usedLength: UInt32?
    public var chain: GuestChain
    public var bytes: [UInt8]
    /// How it was found: "used[3] (idx 1027) → descriptor 17, len 60" or "descriptor 17".
    public var what: String
    /// Bytes of virtio-net header at the front (0 for queues that carry none).
    public var headerBytes: Int
    /// The bytes after the virtio-net header (the Ethernet frame), or all bytes.
    public var frame: [UInt8] { Array(bytes.dropFirst(headerBytes)) }

    /// The header's `num_buffers` (virtio 1.2 §5.1.6.3.2) when it says the frame spans more used
    /// elements than this one (VIRTIO_NET_F_MRG_RXBUF): the dump then holds the frame's first
    /// buffer only, and says so.
    public var mergedBuffers: Int? {
        guard headerBytes >= 12, bytes.count >= 12 else { return nil }
        let n = Int(bytes[10]) | Int(bytes[11]) << 8
        return n > 1 ? n : nil
    }
}

public enum GuestBufferSelector: Equatable, Sendable {
    case descriptor(Int)
    /// The oldest used element the driver has not consumed (needs its position: used_event).
    case next
    /// The newest used element.
    case last
}

extension GuestSample {
    /// Reads the buffer `selector` names in queue `name` from `memory`, using this sample's
    /// ring (ids validated again: the sample may be torn).
    public func buffer(queue name: String, _ selector: GuestBufferSelector, memory: GuestMemory) throws(RingsideError) -> GuestBuffer {
        guard let q = queue(named: name), let device = device(named: q.device) else { throw RingsideError("no queue '\(name)'") }
        guard let ring = q.ring else { throw RingsideError("\(name): no ring read from memory (not set up, or no memory file)") }
        if let u = ring.unreadable { throw RingsideError("\(name): \(u)") }
        let isNet = device.type == "virtio-net" && device.queueNames.indices.contains(q.queue) && device.queueNames[q.queue] != "ctrl"
        let headerBytes = isNet ? device.netHeaderBytes : 0
        // A packed ring's used slot names a buffer id, not where the buffer is (the slot's addr
        // may be another buffer's): the address comes from the record of offers, when trusted.
        if let p = ring.packed {
            let b = try Self.packedBuffer(name, ring: ring, p, selector)
            guard let bytes = GuestRingReader.buffer(of: b.offer.chain, usedLength: b.usedLength, memory: memory) else {
                throw RingsideError("\(name) buffer id \(b.offer.chain.head): buffer outside guest memory")
            }
            return GuestBuffer(head: Int(b.offer.chain.head), usedLength: b.usedLength, chain: b.offer.chain, bytes: bytes, what: b.what,
                               headerBytes: headerBytes)
        }
        let n = ring.addresses.size
        let head: Int
        var usedLength: UInt32?
        let what: String
        switch selector {
        case .descriptor(let id):
            guard id >= 0, id < n else { throw RingsideError("descriptor \(id) ≥ queue size \(n)") }
            head = id
            for k in 0..<n {
                let e = ring.usedRing[Int(ring.usedIdx &- 1 &- UInt16(truncatingIfNeeded: k)) & (n - 1)]
                if e.id == UInt32(id) { usedLength = e.len; break }
            }
            what = "descriptor \(id)"
        case .next, .last:
            let idx: UInt16
            if selector == .next {
                guard let l = ring.driverLastUsed, l != ring.usedIdx else {
                    throw RingsideError("\(name): no pending used element known (needs EVENT_IDX's used_event)")
                }
                idx = l
            } else {
                guard ring.usedIdx != 0 || ring.usedRing.contains(where: { $0.len != 0 }) else { throw RingsideError("\(name): nothing used yet") }
                idx = ring.usedIdx &- 1
            }
            let slot = Int(idx) & (n - 1)
            let e = ring.usedRing[slot]
            guard e.id < UInt32(n) else { throw RingsideError("\(name): used slot \(slot) holds id \(e.id) ≥ size \(n) (torn read? try again)") }
            head = Int(e.id)
            usedLength = e.len
            what = "used[\(slot)] (idx \(idx)) → descriptor \(head), len \(e.len)"
        }
        let chain = device.ringReader.walk(head: UInt16(head), table: ring.descriptors, memory: memory)
        guard let bytes = GuestRingReader.buffer(of: chain, usedLength: usedLength, memory: memory) else {
            throw RingsideError("\(name) descriptor \(head): buffer outside guest memory")
        }
        return GuestBuffer(head: head, usedLength: usedLength, chain: chain, bytes: bytes, what: what, headerBytes: headerBytes)
    }
}
