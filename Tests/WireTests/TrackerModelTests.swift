import XCTest
@testable import Wire

/// Kernel-side tracker → frames → decoder → host model, as in the real system.
final class TrackerModelTests: XCTestCase {
    struct KernelSim {
        var tables: [[WireDescriptor]]
        var tracker: TelemetryDescriptorTracker
        var encoder = WireFrameEncoder(firstSeq: 0)
        var out: [UInt8] = []

        init(sizes: [Int]) {
            tables = sizes.map { [WireDescriptor](repeating: .zero, count: $0) }
            tracker = TelemetryDescriptorTracker(queueSizes: sizes)
            out.reserveCapacity(64 * 1024)
        }

        mutating func mutate(_ rng: inout SplitMix64) {
            for q in 0..<tables.count {
                let changes = Int(rng.next() % 12)
                for _ in 0..<changes {
                    let id = Int(rng.next() % UInt64(tables[q].count))
                    tables[q][id] = Fixtures.randomDescriptor(&rng)
                }
            }
        }

        /// The heap as the simulated kernel reports it at `uptime`.
        static func memory(uptime: UInt64) -> WireMemory {
            WireMemory(heapTotal: 30 << 20, heapUsed: (1 << 20) + uptime * 4096, heapFree: (29 << 20) - uptime * 4096,
                       netReserved: uptime % 3 * 83_968, netLimit: 24 << 20)
        }

        /// Encodes one snapshot; returns the frame bytes.
        mutating func snapshot(uptime: UInt64) throws -> [UInt8] {
            out.removeAll(keepingCapacity: true)
            tracker.beginSnapshot(into: &encoder, uptimeNs: uptime, rateHz: 10, droppedFrames: 0, memory: KernelSim.memory(uptime: uptime))
            for q in 0..<tables.count {
                let status = WireQueueStatus(queue: UInt8(q), availIdx: UInt16(uptime & 0xFFFF), usedIdx: 1, lastUsedIdx: 1, freeCount: 2, pendingUsed: 0, paused: false, counters: .init(packets: uptime))
                let table = tables[q]
                try tracker.appendQueue(status, into: &encoder) { table[$0] }
            }
            try encoder.finish(into: &out)
            return out
        }
    }

    func hello(sizes: [Int]) -> WireMessage {
        .hello(WireHello(kernelVersion: "t", mac: [], devices: [], queues: sizes.enumerated().map {
            WireQueueInfo(queue: UInt8($0.offset), name: "q\($0.offset)", size: UInt16($0.element))
        }))
    }

    func testHostTableEqualsKernelTableAfterEverySnapshot() throws {
        let sizes = [256, 256, 64, 64]
        var kernel = KernelSim(sizes: sizes)
        var decoder = WireFrameDecoder()
        var model = TelemetryModel()
        XCTAssertNil(model.apply(hello(sizes: sizes), seq: 0))
        var rng = SplitMix64(seed: 2024)
        var deltaBytes = 0
        for i in 0..<500 {
            if i > 0 { kernel.mutate(&rng) }
            let frame = try kernel.snapshot(uptime: UInt64(i))
            if i > 0 { deltaBytes += frame.count }
            decoder.feed(frame)
            guard case .message(let m, let seq)? = decoder.next() else { return XCTFail("no frame") }
            if i == 0 {
                guard case .snapshot(let s) = m, case .full = s.queues[0].descriptors else { return XCTFail("first is full") }
            } else {
                guard case .snapshot(let s) = m, case .delta = s.queues[0].descriptors else { return XCTFail("then deltas") }
            }
            XCTAssertNil(model.apply(m, seq: seq))
            for q in 0..<sizes.count {
                XCTAssertEqual(model.queues[q].descriptors, kernel.tables[q], "snapshot \(i) queue \(q)")
                XCTAssertFalse(model.queues[q].isStale)
            }
            XCTAssertEqual(model.queues[0].status?.counters.packets, UInt64(i))
            XCTAssertEqual(model.memory, KernelSim.memory(uptime: UInt64(i)), "snapshot \(i): the kernel's memory")
        }
        // Deltas are far smaller than the ~11 KiB full snapshot.
        XCTAssertLessThan(deltaBytes / 499, 1200)
    }

    func testGapIsDetectedAndFullRequestHeals() throws {
        let sizes = [32, 32]
        var kernel = KernelSim(sizes: sizes)
        var decoder = WireFrameDecoder()
        var model = TelemetryModel()
        _ = model.apply(hello(sizes: sizes), seq: 0)
        var rng = SplitMix64(seed: 7)

        func deliver(_ frame: [UInt8]) -> TelemetryModelAction? {
            decoder.feed(frame)
            guard case .message(let m, let seq)? = decoder.next() else { XCTFail("no frame"); return nil }
            return model.apply(m, seq: seq)
        }

        XCTAssertNil(deliver(try kernel.snapshot(uptime: 1)))
        kernel.mutate(&rng)
        _ = try kernel.snapshot(uptime: 2)          // lost in transit: kernel does not know
        kernel.mutate(&rng)
        XCTAssertEqual(deliver(try kernel.snapshot(uptime: 3)), .requestFull)
        XCTAssertTrue(model.queues[0].isStale)
        XCTAssertEqual(decoder.statistics.sequenceGaps[WireDirection.kernelToHost.rawValue], 1)
        // Still stale on the next delta: it has no base.
        kernel.mutate(&rng)
        XCTAssertEqual(deliver(try kernel.snapshot(uptime: 4)), .requestFull)
        // The host sends requestFull; the kernel obeys.
        kernel.tracker.requestFull()
        kernel.mutate(&rng)
        XCTAssertNil(deliver(try kernel.snapshot(uptime: 5)))
        XCTAssertEqual(model.queues[0].descriptors, kernel.tables[0])
        XCTAssertEqual(model.queues[1].descriptors, kernel.tables[1])
        kernel.mutate(&rng)
        XCTAssertNil(deliver(try kernel.snapshot(uptime: 6)))
        XCTAssertEqual(model.queues[1].descriptors, kernel.tables[1])
    }

    func testMidStreamHostAsksForHelloThenFull() throws {
        var kernel = KernelSim(sizes: [16])
        _ = try kernel.snapshot(uptime: 1)
        var model = TelemetryModel()
        var decoder = WireFrameDecoder()
        decoder.feed(try kernel.snapshot(uptime: 2))
        guard case .message(let m, let seq)? = decoder.next() else { return XCTFail() }
        XCTAssertEqual(model.apply(m, seq: seq), .requestHello)
        _ = model.apply(hello(sizes: [16]), seq: 0)
        decoder.feed(try kernel.snapshot(uptime: 3))
        guard case .message(let m2, let seq2)? = decoder.next() else { return XCTFail() }
        XCTAssertEqual(model.apply(m2, seq: seq2), .requestFull)
        var rng = SplitMix64(seed: 1)
        var q = TelemetryQueueModel(info: WireQueueInfo(queue: 0, name: "x", size: 4))
        let delta = WireQueueSnapshot(status: Fixtures.status(0, &rng), descriptors: .delta([]))
        XCTAssertEqual(q.apply(delta, snapshotNumber: 3), .needsFull(.noBase))
        let full = WireQueueSnapshot(status: delta.status, descriptors: .full([.zero, .zero, .zero, .zero]))
        XCTAssertEqual(q.apply(full, snapshotNumber: 3), .applied)
        let bad = WireQueueSnapshot(status: delta.status, descriptors: .delta([WireDescriptorChange(id: 9, descriptor: .zero)]))
        XCTAssertEqual(q.apply(bad, snapshotNumber: 4), .needsFull(.descriptorOutOfRange(9)))
    }

    func testJSONShape() throws {
        var model = TelemetryModel()
        let net = WireDeviceInfo(name: "net0", deviceType: 1, features: 1 << 32 | 1 << 5,
                                 offeredFeatures: 1 << 32 | 1 << 29 | 1 << 5 | 1 << 50, status: 0x4f)
        _ = model.apply(.hello(WireHello(kernelVersion: "k", mac: [], devices: [net], queues: [
            WireQueueInfo(queue: 0, name: "net0.rx", size: 2), WireQueueInfo(queue: 1, name: "we\"ird\\", size: 0),
        ])), seq: 0)
        let status = WireQueueStatus(queue: 0, availIdx: 65535, usedIdx: 3, lastUsedIdx: 2, freeCount: 1, pendingUsed: 1, paused: true,
                                     counters: WireQueueCounters(packets: 5, bytes: 300, drops: 0, kicks: 7, interrupts: 18_446_744_073_709_551_615))
        let memory = WireMemory(heapTotal: 15_204_352, heapUsed: 1_179_648, heapFree: 13_959_168, netReserved: 83_968,
                                netLimit: 9_223_372_036_854_775_807)
        let snap = WireSnapshot(snapshotNumber: 0, uptimeNs: 1_500_000_000, rateHz: 10, droppedFrames: 0, memory: memory, queues: [
            WireQueueSnapshot(status: status, ring: WireRingView(
                flags: 1, availFlags: 1, usedFlags: 3, usedEvent: 9, availEvent: 10, availStart: 65535, availEntries: [1, 0],
                usedStart: 1, usedEntries: [WireUsedElement(id: 1, len: 60)]), descriptors: .full([
                WireDescriptor(state: .avail, addr: 0x20_0000, len: 2048, flags: 2, next: 1),
                WireDescriptor(state: .held, addr: 0, len: 0, flags: 0, next: 0),
            ])),
        ])
        XCTAssertNil(model.apply(.snapshot(snap), seq: 77))
        XCTAssertEqual(model.snapshotJSON(), """
        {"seq":77,"uptime_ns":1500000000,"memory":{"heap_total":15204352,"heap_used":1179648,"heap_free":13959168,"net_reserved":83968,"net_limit":9223372036854775807},"devices":[{"name":"net0","type":1,"status":79,"status_names":["ACKNOWLEDGE","DRIVER","DRIVER_OK","FEATURES_OK","NEEDS_RESET"],"offered":1125904738680864,"offered_names":["VIRTIO_NET_F_MAC","VIRTIO_F_RING_EVENT_IDX","VIRTIO_F_VERSION_1","bit 50"],"accepted":4294967328,"accepted_names":["VIRTIO_NET_F_MAC","VIRTIO_F_VERSION_1"]}],"alarm_events":[],"queues":[{"name":"net0.rx","size":2,"format":"split","avail_idx":65535,"used_idx":3,"last_used_idx":2,"free":1,"paused":true,"counters":{"packets":5,"bytes":300,"drops":0,"kicks":7,"interrupts":18446744073709551615,"kicks_suppressed":0,"interrupts_suppressed":0,"injected_drops":0,"injected_corruptions":0,"kicks_withheld":0,"interrupts_ignored":0},"faults":{"drop":0,"corrupt":0,"nokick":0,"starving":false,"noirq":false},"ring":{"event_idx":true,"avail_flags":1,"avail_flags_names":["VIRTQ_AVAIL_F_NO_INTERRUPT"],"used_flags":3,"used_flags_names":["VIRTQ_USED_F_NO_NOTIFY","bit 1"],"used_event":9,"avail_event":10,"avail":{"start":65535,"entries":[{"idx":65535,"slot":1,"id":1},{"idx":0,"slot":0,"id":0}]},"used":{"start":1,"entries":[{"idx":1,"slot":1,"id":1,"len":60}]}},"alarms":[],"descriptors":[{"id":0,"state":"avail","addr":2097152,"len":2048,"flags":2,"next":1},{"id":1,"state":"held","addr":0,"len":0,"flags":0,"next":0}]},{"name":"we\\"ird\\\\","size":0,"format":"split","avail_idx":0,"used_idx":0,"last_used_idx":0,"free":0,"paused":false,"counters":{"packets":0,"bytes":0,"drops":0,"kicks":0,"interrupts":0,"kicks_suppressed":0,"interrupts_suppressed":0,"injected_drops":0,"injected_corruptions":0,"kicks_withheld":0,"interrupts_ignored":0},"faults":{"drop":0,"corrupt":0,"nokick":0,"starving":false,"noirq":false},"ring":null,"alarms":[],"descriptors":[]}]}
        """)
    }

    /// The model runs the detector on every snapshot it applies; the JSON carries the alarms up
    /// on each queue and, in the snapshot that raised or cleared one, the change.
    func testModelRunsTheDetectorAndTheJSONCarriesItsFindings() throws {
        var model = TelemetryModel()
        _ = model.apply(.hello(WireHello(kernelVersion: "k", mac: [], devices: [], queues: [
            WireQueueInfo(queue: 0, name: "net0.rx", size: 256), WireQueueInfo(queue: 1, name: "net0.tx", size: 256),
        ])), seq: 0)
        let table = [WireDescriptor](repeating: .zero, count: 256)
        func snapshot(_ n: UInt32, seconds: Double, txUsed: UInt16) -> WireMessage {
            let ring = WireRingView(flags: WireRingView.eventIdxFlag, usedEvent: 0, availEvent: 100, availStart: 100,
                                    availEntries: [0], usedStart: 100, usedEntries: [WireUsedElement(id: 0, len: 0)])
            func status(_ q: UInt8, avail: UInt16, used: UInt16) -> WireQueueStatus {
                WireQueueStatus(queue: q, availIdx: avail, usedIdx: used, lastUsedIdx: used, freeCount: 0, pendingUsed: 0,
                                paused: false, counters: WireQueueCounters())
            }
            return .snapshot(WireSnapshot(snapshotNumber: n, uptimeNs: UInt64(seconds * 1e9), rateHz: 10, droppedFrames: 0, queues: [
                WireQueueSnapshot(status: status(0, avail: 356, used: 100), ring: ring, descriptors: .full(table)),
                WireQueueSnapshot(status: status(1, avail: 102, used: txUsed), ring: ring, descriptors: .full(table)),
            ]))
        }
        _ = model.apply(snapshot(0, seconds: 10, txUsed: 100), seq: 1)
        XCTAssertTrue(model.notificationChanges.isEmpty)
        _ = model.apply(snapshot(1, seconds: 10.6, txUsed: 100), seq: 2)
        XCTAssertEqual(model.alarms(queue: 1).map(\.kind), [.kickLost])
        XCTAssertTrue(model.alarms(queue: 0).isEmpty)
        let json = model.snapshotJSON()
        XCTAssertTrue(json.contains(#""alarm_events":[{"event":"raised","queue":"net0.tx","alarm":"kick_lost","label":"KICK LOST?","for_ms":600,"waiting":2,"avail_idx":102,"used_idx":100,"consumed":100,"consumed_source":"used.idx","event_word":100,"detail":"#), json)
        XCTAssertTrue(json.contains(#""alarms":[{"alarm":"kick_lost""#), json)
        _ = model.apply(snapshot(2, seconds: 10.7, txUsed: 100), seq: 3)
        XCTAssertTrue(model.snapshotJSON().contains(#""alarm_events":[],"#), "a change is reported once")
        _ = model.apply(snapshot(3, seconds: 10.8, txUsed: 102), seq: 4)
        XCTAssertTrue(model.snapshotJSON().contains(#""alarm_events":[{"event":"cleared","queue":"net0.tx","alarm":"kick_lost""#))
        XCTAssertFalse(model.snapshotJSON().contains(#""alarms":[{"#))
    }
}
