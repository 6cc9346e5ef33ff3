// Any guest's sample as the messages our kernel's telemetry sends (hello + full snapshot), so the
// TUI's panels (descriptor table, ring cells, indices) draw a guest Ringside did not build the same
// way they draw our kernel.

import Wire

public enum GuestTelemetry {
    /// Virtio device ids (virtio 1.2 §5) by QEMU's device name.
    public static func deviceID(type: String) -> UInt16 {
        switch type {
        case "virtio-net": return 1
        case "virtio-blk": return 2
        case "virtio-serial": return 3
        case "virtio-rng": return 4
        case "virtio-balloon": return 5
        case "virtio-scsi": return 8
        case "virtio-9p": return 9
        case "virtio-gpu": return 16
        case "virtio-input": return 18
        case "vhost-vsock", "vhost-user-vsock", "virtio-vsock": return 19
        default: return 0
        }
    }

    /// Feature bit numbers of the names QEMU prints (transport bits for every device; device
    /// bits for virtio-net). Names not listed are left out of the bit mask.
    public static let transportBits: [String: Int] = [
        "VIRTIO_F_NOTIFY_ON_EMPTY": 24, "VIRTIO_F_ANY_LAYOUT": 27, "VIRTIO_RING_F_INDIRECT_DESC": 28,
        "VIRTIO_RING_F_EVENT_IDX": 29, "VIRTIO_F_BAD_FEATURE": 30, "VIRTIO_F_VERSION_1": 32,
        "VIRTIO_F_IOMMU_PLATFORM": 33, "VIRTIO_F_RING_PACKED": 34, "VIRTIO_F_IN_ORDER": 35,
        "VIRTIO_F_ORDER_PLATFORM": 36, "VIRTIO_F_SR_IOV": 37, "VIRTIO_F_NOTIFICATION_DATA": 38,
    ]
    public static let netBits: [String: Int] = [
        "VIRTIO_NET_F_CSUM": 0, "VIRTIO_NET_F_GUEST_CSUM": 1, "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS": 2, "VIRTIO_NET_F_MTU": 3,
        "VIRTIO_NET_F_MAC": 5, "VIRTIO_NET_F_GSO": 6, "VIRTIO_NET_F_GUEST_TSO4": 7, "VIRTIO_NET_F_GUEST_TSO6": 8,
        "VIRTIO_NET_F_GUEST_ECN": 9, "VIRTIO_NET_F_GUEST_UFO": 10, "VIRTIO_NET_F_HOST_TSO4": 11, "VIRTIO_NET_F_HOST_TSO6": 12,
        "VIRTIO_NET_F_HOST_ECN": 13, "VIRTIO_NET_F_HOST_UFO": 14, "VIRTIO_NET_F_MRG_RXBUF": 15, "VIRTIO_NET_F_STATUS": 16,
        "VIRTIO_NET_F_CTRL_VQ": 17, "VIRTIO_NET_F_CTRL_RX": 18, "VIRTIO_NET_F_CTRL_VLAN": 19, "VIRTIO_NET_F_CTRL_RX_EXTRA": 20,
        "VIRTIO_NET_F_GUEST_ANNOUNCE": 21, "VIRTIO_NET_F_MQ": 22, "VIRTIO_NET_F_CTRL_MAC_ADDR": 23,
        "VIRTIO_NET_F_HASH_REPORT": 57, "VIRTIO_NET_F_RSS": 60, "VIRTIO_NET_F_RSC_EXT": 61, "VIRTIO_NET_F_STANDBY": 62,
        "VIRTIO_NET_F_SPEED_DUPLEX": 63,
    ]

    /// The accepted (guest) features of `device` as a bit mask.
    public static func featureBits(_ device: GuestDeviceInfo) -> UInt64 {
        bits(of: device.guestFeatures, type: device.type)
    }

    /// The offered (host) features of `device` as a bit mask (the same names left out).
    public static func offeredFeatureBits(_ device: GuestDeviceInfo) -> UInt64 {
        bits(of: device.hostFeatures, type: device.type)
    }

    static func bits(of list: GuestFeatureList, type: String) -> UInt64 {
        var bits: UInt64 = 0
        for n in list.names {
            if let b = transportBits[n] ?? (type == "virtio-net" ? netBits[n] : nil) { bits |= 1 << UInt64(b) }
        }
        return bits
    }

    /// The device status byte from QMP's status names (VIRTIO_CONFIG_S_*, virtio 1.2 §2.1).
    public static func statusByte(_ device: GuestDeviceInfo) -> UInt8 {
        let values: [String: UInt8] = [
            "VIRTIO_CONFIG_S_ACKNOWLEDGE": 1, "VIRTIO_CONFIG_S_DRIVER": 2, "VIRTIO_CONFIG_S_DRIVER_OK": 4,
            "VIRTIO_CONFIG_S_FEATURES_OK": 8, "VIRTIO_CONFIG_S_NEEDS_RESET": 64, "VIRTIO_CONFIG_S_FAILED": 128,
        ]
        return device.statuses.reduce(0) { $0 | (values[$1] ?? 0) }
    }

    /// The queues as the TUI numbers them (at most 255; zero-size queues keep a 1-entry table).
    public static func hello(_ s: GuestSample) -> WireHello {
        let version = "QEMU guest, " + (s.source == .memory ? "rings from guest memory" : "QMP only (no memory file)")
        let queues = s.queues.prefix(255).enumerated().map { (i, q) in
            WireQueueInfo(queue: UInt8(i), name: q.name, size: UInt16(clamping: max(1, q.deviceView?.addresses.size ?? q.ring?.addresses.size ?? 1)),
                          format: s.device(named: q.device)?.packedRings == true ? .packed : .split)
        }
        return WireHello(kernelVersion: version, mac: [0, 0, 0, 0, 0, 0],
                         devices: s.devices.map {
                             WireDeviceInfo(name: $0.name, deviceType: deviceID(type: $0.type), features: featureBits($0),
                                            offeredFeatures: offeredFeatureBits($0), status: statusByte($0))
                         },
                         queues: Array(queues))
    }

    /// One full snapshot: each queue's indices (memory, else QMP's element view, else the
    /// device's), the driver's last-seen used index where known (used_event), and the descriptor
    /// table with the states derived from the rings.
    public static func snapshot(_ s: GuestSample, number: UInt32, startedAt: Double, rateHz: UInt16) -> WireSnapshot {
        let uptime = UInt64(max(0, s.time - startedAt) * 1e9)
        let queues = s.queues.prefix(255).enumerated().map { (i, q) -> WireQueueSnapshot in
            let size = max(1, q.deviceView?.addresses.size ?? q.ring?.addresses.size ?? 1)
            var avail: UInt16 = 0, used: UInt16 = 0, lastUsed: UInt16 = 0
            var table = [WireDescriptor](repeating: .zero, count: size)
            if let r = q.ring, r.unreadable == nil {
                avail = r.availIdx
                used = r.usedIdx
                lastUsed = r.driverLastUsed ?? r.usedIdx
                for (id, d) in r.descriptors.enumerated() where id < size {
                    table[id] = WireDescriptor(state: r.states[id], addr: d.addr, len: d.len, flags: d.flags, next: d.next)
                }
            } else if let e = q.element {
                avail = e.availIdx
                used = e.usedIdx
                lastUsed = e.usedIdx
            } else if let v = q.deviceView {
                avail = v.shadowAvailIdx
                used = v.usedIdx
                lastUsed = v.usedIdx
            }
            var ringView = WireRingView.empty
            var pending = used &- lastUsed
            if let r = q.ring, r.unreadable == nil {
                if let p = r.packed {
                    ringView = packedWindow(p, size: size, lastUsed: lastUsed, eventIdx: r.usedEvent != nil)
                    pending = UInt16(clamping: wireRingDistance(from: lastUsed, to: used, size: UInt16(clamping: size), format: .packed))
                } else {
                    ringView = ringWindows(r, size: size, lastUsed: lastUsed)
                }
            }
            let free = UInt16(clamping: table.filter { $0.state == .free }.count)
            let status = WireQueueStatus(queue: UInt8(i), availIdx: avail, usedIdx: used, lastUsedIdx: lastUsed, freeCount: free,
                                         pendingUsed: pending, paused: false, counters: WireQueueCounters())
            return WireQueueSnapshot(status: status, ring: ringView, descriptors: .full(table))
        }
        // A queue read through QMP alone has no ring section (both windows empty), and the
        // monitor says so rather than show flags it does not know.
        return WireSnapshot(snapshotNumber: number, uptimeNs: uptime, rateHz: rateHz, droppedFrames: 0,
                            deviceStatus: s.devices.map { statusByte($0) }, queues: Array(queues))
    }

    /// The rings as read from guest memory, in the snapshot's ring section: flags, event words
    /// (when the guest uses EVENT_IDX) and the same windows the kernel sends.
    static func ringWindows(_ r: GuestRingSnapshot, size: Int, lastUsed: UInt16) -> WireRingView {
        let slots = UInt16(clamping: size)
        let (n, availStart, usedStart) = WireRingView.windows(size: slots, availIdx: r.availIdx, lastUsedIdx: lastUsed)
        var v = WireRingView(flags: r.usedEvent != nil || r.availEvent != nil ? WireRingView.eventIdxFlag : 0,
                             availFlags: r.availFlags, usedFlags: r.usedFlags,
                             usedEvent: r.usedEvent ?? 0, availEvent: r.availEvent ?? 0,
                             availStart: availStart, usedStart: usedStart)
        guard r.availRing.count >= size, r.usedRing.count >= size, size > 0 else { return v }
        for k in 0..<n {
            v.availEntries.append(r.availRing[Int((availStart &+ k) % slots)])
            v.usedEntries.append(r.usedRing[Int((usedStart &+ k) % slots)])
        }
        return v
    }

    /// A packed ring as read from guest memory, in the snapshot's ring section as the kernel
    /// sends a packed queue's (docs/protocol.md §4 "Packed queues"): both event suppression
    /// structures, and a window of slots (flags; id, len) from 4 slots before the driver's used
    /// position.
    static func packedWindow(_ p: GuestPackedRing, size: Int, lastUsed: UInt16, eventIdx: Bool) -> WireRingView {
        let count = min(Int(WireRingView.window), size, p.slots.count)
        let start = (Int(lastUsed & 0x7FFF) % max(1, size) + size - count / 4) % max(1, size)
        var v = WireRingView(flags: WireRingView.packedFlag | (eventIdx ? WireRingView.eventIdxFlag : 0),
                             availFlags: p.driverEvent.flags, usedFlags: p.deviceEvent.flags,
                             usedEvent: p.driverEvent.offWrap, availEvent: p.deviceEvent.offWrap,
                             availStart: UInt16(start), usedStart: UInt16(start))
        for k in 0..<count {
            let slot = p.slots[(start + k) % size]
            v.availEntries.append(slot.flags)
            v.usedEntries.append(WireUsedElement(id: UInt32(slot.id), len: slot.len))
        }
        return v
    }

    /// What the lost-notification detector needs of each queue (NotificationDetector.swift): the
    /// indices and the rings' flags and event words as read from memory, the driver's position
    /// as used_event shows it (when the guest uses EVENT_IDX), the device's last-avail-idx from
    /// QMP. Nil for a queue whose rings were not read, or were read while they moved (torn).
    public static func notificationSamples(_ s: GuestSample) -> [NotificationSample?] {
        s.queues.map { q -> NotificationSample? in
            guard let r = q.ring, r.unreadable == nil, !r.moving else { return nil }
            if let p = r.packed {
                // Positions and both event suppression structures (§2.8.10); the driver's used
                // position only when its event structure shows it (else nothing is judged owed
                // to the driver: pending 0).
                let status = WireQueueStatus(queue: 0, availIdx: r.availIdx, usedIdx: r.usedIdx, lastUsedIdx: r.driverLastUsed ?? r.usedIdx,
                                             freeCount: 0, pendingUsed: 0, paused: false, counters: WireQueueCounters())
                let ring = WireRingView(flags: WireRingView.packedFlag | (r.usedEvent != nil ? WireRingView.eventIdxFlag : 0),
                                        availFlags: p.driverEvent.flags, usedFlags: p.deviceEvent.flags,
                                        usedEvent: p.driverEvent.offWrap, availEvent: p.deviceEvent.offWrap)
                return NotificationSample(role: q.role ?? NotificationQueueRole(queueName: q.name), size: UInt16(clamping: r.addresses.size),
                                          status: status, ring: ring, format: .packed)
            }
            let status = WireQueueStatus(queue: 0, availIdx: r.availIdx, usedIdx: r.usedIdx,
                                         lastUsedIdx: r.driverLastUsed ?? r.usedIdx, freeCount: 0, pendingUsed: 0,
                                         paused: false, counters: WireQueueCounters())
            let ring = WireRingView(flags: r.usedEvent != nil || r.availEvent != nil ? WireRingView.eventIdxFlag : 0,
                                    availFlags: r.availFlags, usedFlags: r.usedFlags,
                                    usedEvent: r.usedEvent ?? 0, availEvent: r.availEvent ?? 0)
            return NotificationSample(role: q.role ?? NotificationQueueRole(queueName: q.name), size: UInt16(clamping: r.addresses.size),
                                      status: status, ring: ring, deviceLastAvailIdx: q.deviceView?.lastAvailIdx)
        }
    }

    /// The device's own indices (QMP) of every queue, numbered as `hello` numbers the queues,
    /// in DeviceTruth's form (the kernel view's `dev: A … U … inuse …` and its comparison rule),
    /// and each number's queue name. Nil when QMP has not answered for any queue.
    public static func deviceTruth(_ s: GuestSample) -> (names: [Int: String], sample: DeviceTruthSample)? {
        var names: [Int: String] = [:]
        var views: [DeviceQueueView] = []
        var newest = 0.0
        for (i, q) in s.queues.prefix(255).enumerated() {
            names[i] = q.name
            guard let v = q.deviceView, v.addresses.isSetUp else { continue }
            views.append(DeviceQueueView(queue: i, lastAvailIdx: v.lastAvailIdx, usedIdx: v.usedIdx, inuse: v.inuse,
                                         vringNum: v.addresses.size, shadowAvailIdx: v.shadowAvailIdx,
                                         time: v.time, requestTime: v.requestTime))
            newest = max(newest, v.time)
        }
        guard !views.isEmpty else { return nil }
        // Counts up with each QMP poll (the answer's time changes only then).
        return (names, DeviceTruthSample(time: newest, number: Int(newest * 1000), queues: views))
    }

    /// The MAC address the header shows for a guest: the first virtio-net device's, from QMP.
    public static func macAddress(_ s: GuestSample) -> String? {
        s.devices.first { $0.type == "virtio-net" }.flatMap { s.macs[$0.name] }
    }
}
