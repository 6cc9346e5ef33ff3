import Wire
// SplitMix64: shared by every host test target.
@_exported import RingsideTestSupport


enum Fixtures {
    static let queueInfos = [
        WireQueueInfo(queue: 0, name: "net0.rx", size: 256),
        WireQueueInfo(queue: 1, name: "net0.tx", size: 256),
        WireQueueInfo(queue: 2, name: "con0.rx", size: 64, format: .packed),
        WireQueueInfo(queue: 3, name: "con0.tx", size: 64, format: .packed),
    ]

    static let hello = WireHello(
        kernelVersion: "ringside 0.1.0 (embedded swift)", uptimeNs: 1_234_567_890,
        mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56],
        devices: [
            WireDeviceInfo(name: "net0", deviceType: 1, features: 0x0000_0001_0001_0020,
                           offeredFeatures: 0x0000_0001_3079_bfe7, status: 0x0f),
            WireDeviceInfo(name: "con0", deviceType: 3, features: 0x0000_0001_0000_0000,
                           offeredFeatures: 0x0000_0001_3000_0007, status: 0x4f),
        ],
        queues: queueInfos)

    static func randomDescriptor(_ rng: inout SplitMix64) -> WireDescriptor {
        WireDescriptor(
            state: WireDescriptorState(rawValue: UInt8(rng.next() % 4))!,
            addr: rng.next() % 2 == 0 ? 0 : 0x10_0000 + (rng.next() % 0x100_0000),
            len: UInt32(rng.next() % 2100), flags: UInt16(rng.next() % 8), next: UInt16(rng.next() % 256))
    }

    static func status(_ queue: UInt8, _ rng: inout SplitMix64) -> WireQueueStatus {
        WireQueueStatus(
            queue: queue, availIdx: UInt16(truncatingIfNeeded: rng.next()),
            usedIdx: UInt16(truncatingIfNeeded: rng.next()), lastUsedIdx: UInt16(truncatingIfNeeded: rng.next()),
            freeCount: UInt16(rng.next() % 257), pendingUsed: UInt16(rng.next() % 10), paused: rng.next() % 2 == 0,
            counters: WireQueueCounters(
                packets: rng.next() % 1_000_000, bytes: rng.next(), drops: rng.next() % 3,
                kicks: rng.next() % 100_000, interrupts: UInt64.max, kicksSuppressed: rng.next() >> (rng.next() % 64),
                interruptsSuppressed: rng.next() >> (rng.next() % 64), injectedDrops: rng.next() % 70_000,
                injectedCorruptions: rng.next() % 3, kicksWithheld: rng.next() % 200, interruptsIgnored: UInt64.max - 1),
            faults: WireQueueFaults(drop: UInt16(truncatingIfNeeded: rng.next()), corrupt: UInt16(rng.next() % 3),
                                    nokick: UInt16(truncatingIfNeeded: rng.next() >> 48), starving: rng.next() % 2 == 0,
                                    noirq: rng.next() % 2 == 0))
    }

    static func snapshot(number: UInt32, _ rng: inout SplitMix64, full: Bool = true) -> WireSnapshot {
        var queues: [WireQueueSnapshot] = []
        for info in queueInfos {
            let update: WireDescriptorUpdate
            if full {
                update = .full((0..<Int(info.size)).map { _ in randomDescriptor(&rng) })
            } else {
                update = .delta((0..<5).map { _ in
                    WireDescriptorChange(id: UInt16(rng.next() % UInt64(info.size)), descriptor: randomDescriptor(&rng))
                })
            }
            queues.append(WireQueueSnapshot(status: status(info.queue, &rng), ring: ring(size: info.size, &rng), descriptors: update))
        }
        return WireSnapshot(snapshotNumber: number, uptimeNs: rng.next() >> 4, rateHz: 10, droppedFrames: 3,
                            memory: memory(&rng), deviceStatus: [0x0f, UInt8(truncatingIfNeeded: rng.next())], queues: queues)
    }

    /// A ring section with windows of 0…16 entries and ids/lengths of every varint size.
    static func ring(size: UInt16, _ rng: inout SplitMix64) -> WireRingView {
        let n = Int(rng.next() % 17)
        return WireRingView(
            flags: UInt8(rng.next() % 2), availFlags: UInt16(rng.next() % 2), usedFlags: UInt16(rng.next() % 2),
            usedEvent: UInt16(truncatingIfNeeded: rng.next()), availEvent: UInt16(truncatingIfNeeded: rng.next()),
            availStart: UInt16(truncatingIfNeeded: rng.next()),
            availEntries: (0..<n).map { _ in UInt16(truncatingIfNeeded: rng.next() >> (rng.next() % 64)) },
            usedStart: UInt16(truncatingIfNeeded: rng.next()),
            usedEntries: (0..<n).map { _ in
                WireUsedElement(id: UInt32(truncatingIfNeeded: rng.next() >> (rng.next() % 64)),
                                len: UInt32(truncatingIfNeeded: rng.next() >> (rng.next() % 64)))
            })
    }

    /// Heap and budget figures of every varint length, from 1 byte to 10.
    static func memory(_ rng: inout SplitMix64) -> WireMemory {
        func value() -> UInt64 { rng.next() >> (rng.next() % 64) }
        return WireMemory(heapTotal: value(), heapUsed: value(), heapFree: value(), netReserved: value(), netLimit: value())
    }

    static let extremeMemory = WireMemory(heapTotal: .max, heapUsed: .max - 1, heapFree: 0, netReserved: 127, netLimit: 128)

    /// One of every message type and variant.
    static func allMessages() -> [WireMessage] {
        var rng = SplitMix64(seed: 1)
        var m: [WireMessage] = [.hello(hello)]
        m.append(.snapshot(snapshot(number: 0, &rng)))
        m.append(.snapshot(snapshot(number: 1, &rng, full: false)))
        m.append(.snapshot(WireSnapshot(snapshotNumber: .max, uptimeNs: 0, rateHz: 60, droppedFrames: 0,
                                        memory: extremeMemory, queues: [])))
        let kinds: [WireEventKind] = [
            .usedConsumed(queue: 0, descriptor: 3, length: 98), .drop(queue: 1, reason: .noBuffer),
            .drop(queue: 1, reason: WireDropReason(rawValue: 200)), .drop(queue: 0, reason: .badChecksum),
            .drop(queue: 1, reason: .injected), .kick(queue: 1), .interrupt(queue: 0),
            .stepped(queue: 0, count: 1), .paused(queue: 0), .resumed(queue: 0), .countersReset,
            .link(up: true), .link(up: false),
            .usedBatch(queue: 0, firstUsedIdx: 65534, elements: [WireUsedElement(id: 3, len: 98), WireUsedElement(id: 4, len: 60)]),
            .usedBatch(queue: 0, firstUsedIdx: 0, elements: []),
            .captureCounts(queue: 0, frames: 0, missed: 0), .captureCounts(queue: 1, frames: .max, missed: 1 << 40),
        ]
        m += kinds.map { .event(WireEvent(uptimeNs: 1_500_000_000, kind: $0)) }
        m.append(.reply(WireReply(commandSeq: 7, status: .ok)))
        m.append(.reply(WireReply(commandSeq: 8, status: .unknownQueue, message: "no queue 9")))
        m.append(.reply(WireReply(commandSeq: 9, status: .ok, body: .dump(WireDump(
            queue: 0, descriptor: 17, guestAddress: 0x20_1000, bufferLength: 2060, stampNs: 1_500_000_123,
            bytes: (0..<2060).map { UInt8(truncatingIfNeeded: $0 * 7) })))))
        m.append(.reply(WireReply(commandSeq: 10, status: .notOwned, message: "descriptor 4 is free")))
        m.append(.capturedFrame(WireCapturedFrame(uptimeNs: 1_500_000_123, queue: 0, descriptor: 202, availIdx: 458, usedIdx: 204,
                                                  number: 7, bufferLength: 110, headerBytes: 12,
                                                  bytes: (0..<110).map { UInt8(truncatingIfNeeded: $0 * 3) })))
        m.append(.capturedFrame(WireCapturedFrame(uptimeNs: 0, queue: 1, descriptor: 0, availIdx: 65535, usedIdx: 0,
                                                  number: .max, bufferLength: 9000, headerBytes: 12,
                                                  bytes: [UInt8](repeating: 0, count: WireProtocol.maxCaptureBytes))))
        let commands: [WireCommand] = [
            .hello, .pause(queue: 0), .resume(queue: 0), .step(queue: 0, count: 3),
            .dump(queue: 0, selector: .descriptor(17)), .dump(queue: 1, selector: .next),
            .dump(queue: 0, selector: .last), .setSnapshotRate(hz: 60), .resetCounters, .requestFull, .stats,
            .inject(queue: 0, fault: .drop(3)), .inject(queue: 1, fault: .corrupt(65535)), .inject(queue: 0, fault: .starve),
            .inject(queue: 0, fault: .unstarve), .inject(queue: 1, fault: .nokick(5)), .inject(queue: 0, fault: .noirq),
            .inject(queue: 255, fault: .clear), .inject(queue: 0, fault: .drop(0)), .kick(queue: 1), .poll(queue: 0),
            .kick(queue: 200), .capture(on: true), .capture(on: false),
        ]
        m += commands.map { .command($0) }
        return m
    }
}

extension WireFrameDecoder {
    /// Every result currently decodable.
    mutating func drain() -> [WireDecodeResult] {
        var out: [WireDecodeResult] = []
        while let r = next() { out.append(r) }
        return out
    }
}

/// `0x00 COBS(body + CRC) 0x00` for a hand-made body (a frame the encoder would not write).
func wireFrame(body: [UInt8]) -> [UInt8] {
    let crc = WireCRC32C.checksum(body)
    var wire: [UInt8] = [0]
    WireCOBS.encode(body + [UInt8(crc & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 24)], appendingTo: &wire)
    wire.append(0)
    return wire
}

func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return bytes.map { "\(digits[Int($0 >> 4)])\(digits[Int($0 & 0xF)])" }.joined(separator: " ")
}
