import Arch

/// One virtqueue as the host sees it: its name, its ring, the buffers it owns (so a dump
/// can be bounds-checked), whether it is paused, and what the driver dropped on it.
final class MonitoredQueue {
    let name: String
    let queue: DeviceQueue
    /// The number the hello gives this queue, which every snapshot, event and command uses
    /// (set by `Telemetry`, which numbers its queues in order).
    var wireIndex: UInt8 = 0
    /// Only the network queues can be paused: pausing the telemetry channel would cut the
    /// host off from the very commands that resume it.
    let pausable: Bool
    var paused = false
    var drops: UInt64 = 0
    /// A copy of the most recently delivered (RX) or sent (TX) buffer, for `dump --last`.
    var lastBuffer: [UInt8] = []
    var lastDescriptor: UInt16 = 0
    var lastAddress: UInt64 = 0
    /// Counter values at the last `resetCounters`, subtracted when reporting.
    var countersBase = WireQueueCounters()
    /// The ring's `deviceErrors` when last reported, and when last logged.
    var reportedDeviceErrors: UInt64 = 0
    var deviceErrorsLoggedNs: UInt64?
    /// Per descriptor (chain head): kernel uptime when its frame arrived in the guest. RX: when
    /// the driver first saw the device's used element for it (`noteArrivals`); TX: when the
    /// driver put the frame in the ring. For dumps (pcap timestamps).
    private var stamps: [UInt64]
    /// How far `noteArrivals` has stamped: split, the used index; packed, the device's used
    /// position (offset | wrap << 15).
    private var stampedUsed: UInt16 = 0
    var lastStampNs: UInt64 = 0
    /// This queue's rings as the last snapshot read them (reused: no allocation per snapshot).
    var ringView = WireRingView()

    init(name: String, queue: DeviceQueue, pausable: Bool) {
        self.name = name
        self.queue = queue
        self.pausable = pausable
        stamps = [UInt64](repeating: 0, count: Int(queue.ring.size))
        stampedUsed = queue.ring.positions.used
        ringView.availEntries.reserveCapacity(Int(WireRingView.window))
        ringView.usedEntries.reserveCapacity(Int(WireRingView.window))
    }

    /// Stamps every used element the device added since the last call with `nowNs` (only new
    /// ones: O(new elements)). Call before taking used elements off the ring.
    func noteArrivals(nowNs: UInt64) {
        switch ring {
        case .split(let ring):
            let usedIdx = ring.usedIdx
            var index = stampedUsed
            // A confused device can move used.idx anywhere: look at most one ring's worth back.
            if usedIdx &- index > ring.size { index = usedIdx &- ring.size }
            while index != usedIdx {
                let element = ring.usedRingSlot(index)
                if element.id < UInt32(ring.size) { stamps[Int(element.id)] = nowNs }
                index &+= 1
            }
            stampedUsed = usedIdx
        case .packed(let ring):
            // Positions count modulo two laps (offset, and the wrap counter as the lap, 2.8.1):
            // those between the driver's used position and the stamped one are stamped already.
            let lap = 2 * Int(ring.size)
            func absolute(_ offWrap: UInt16) -> Int {
                Int(offWrap & 0x7FFF) + (offWrap & 0x8000 != 0 ? 0 : Int(ring.size))
            }
            var stamped = (absolute(stampedUsed) - absolute(ring.nextUsedOffWrap) + lap) % lap
            if stamped > Int(ring.positionsOwnedByDevice) { stamped = 0 }
            ring.forEachPendingUsed { ahead, id in
                if Int(ahead) >= stamped { stamps[Int(id)] = nowNs }
            }
            stampedUsed = ring.deviceUsedOffWrap
        }
    }

    func stamp(_ head: UInt16, nowNs: UInt64) {
        if Int(head) < stamps.count { stamps[Int(head)] = nowNs }
    }

    /// When the buffer of descriptor `id` arrived, if it holds a frame now (RX: used or held;
    /// TX: in the ring); 0 (unknown) otherwise.
    func stampNs(of id: UInt16) -> UInt64 {
        guard Int(id) < stamps.count else { return 0 }
        switch ring.state(of: id) {
        case .free: return 0
        case .available: return queue.deviceWritable ? 0 : stamps[Int(id)]
        case .used, .held: return stamps[Int(id)]
        }
    }

    /// Reads the rings into `ringView`: flags, event words, and `WireRingView.window` slots
    /// of each ring around its index. For a packed ring (docs/protocol.md §4) the event words
    /// are the two event suppression structures and the window is one of ring slots (flags,
    /// buffer id, len) from a quarter window before the driver's used position.
    func readRing() {
        var v = ringView
        ringView = WireRingView()   // keep `v` uniquely referenced: refilled in place
        v.availEntries.removeAll(keepingCapacity: true)
        v.usedEntries.removeAll(keepingCapacity: true)
        switch ring {
        case .split(let ring):
            let (n, availStart, usedStart) = WireRingView.windows(size: ring.size, availIdx: ring.availIdx,
                                                                  lastUsedIdx: ring.lastUsedIdx)
            v.flags = ring.eventIdx ? WireRingView.eventIdxFlag : 0
            v.availFlags = ring.availFlags
            v.usedFlags = ring.usedFlags
            v.usedEvent = ring.usedEvent
            v.availEvent = ring.availEvent
            v.availStart = availStart
            for k in 0..<n { v.availEntries.append(ring.availRingSlot(v.availStart &+ k)) }
            v.usedStart = usedStart
            for k in 0..<n {
                let e = ring.usedRingSlot(v.usedStart &+ k)
                v.usedEntries.append(WireUsedElement(id: e.id, len: e.len))
            }
        case .packed(let ring):
            let n = min(WireRingView.window, ring.size)
            let driver = ring.driverEventSuppression
            let device = ring.deviceEventSuppression
            v.flags = (ring.eventIdx ? WireRingView.eventIdxFlag : 0) | WireRingView.packedFlag
            v.availFlags = driver.flags
            v.usedFlags = device.flags
            v.usedEvent = driver.offWrap
            v.availEvent = device.offWrap
            let start = UInt16((Int(ring.nextUsed) + Int(ring.size) - Int(n / 4)) % Int(ring.size))
            v.availStart = start
            v.usedStart = start
            for k in 0..<n {
                let d = ring.descriptor(UInt16((Int(start) + Int(k)) % Int(ring.size)))
                v.availEntries.append(d.flags)
                v.usedEntries.append(WireUsedElement(id: UInt32(d.id), len: d.len))
            }
        }
        ringView = v
    }

    var ring: DeviceRing { queue.ring }
    var pool: BufferPool { queue.pool }

    func remember(descriptor: UInt16, address: UInt64, bytes: UnsafeRawBufferPointer) {
        lastDescriptor = descriptor
        lastAddress = address
        lastStampNs = Int(descriptor) < stamps.count ? stamps[Int(descriptor)] : 0
        lastBuffer.removeAll(keepingCapacity: true)
        lastBuffer.append(contentsOf: bytes)
    }

    /// What the driver dropped on this queue, and the used elements the device got wrong.
    private var allDrops: UInt64 { drops &+ ring.counters.deviceErrors }

    /// Every counter since boot (the ring's, the injected faults', the driver's drops).
    var rawCounters: WireQueueCounters {
        ring.observeUsed()
        let c = ring.counters
        let f = queue.faults
        return WireQueueCounters(packets: c.packets, bytes: c.bytes, drops: allDrops, kicks: c.kicks,
                                 interrupts: c.interrupts, kicksSuppressed: c.kicksSuppressed,
                                 interruptsSuppressed: c.interruptsSuppressed, injectedDrops: f.dropped,
                                 injectedCorruptions: f.corrupted, kicksWithheld: f.kicksWithheld,
                                 interruptsIgnored: f.interruptsIgnored)
    }

    /// Counters since boot or the last `resetCounters`.
    var counters: WireQueueCounters { rawCounters.subtracting(countersBase) }

    func resetCounters() {
        countersBase = rawCounters
    }

    /// The faults active on the queue, as snapshots carry them.
    var wireFaults: WireQueueFaults {
        let f = queue.faults
        return WireQueueFaults(drop: f.drop, corrupt: f.corrupt, nokick: f.nokick, starving: f.starving, noirq: f.noirq)
    }
}
