// Writes the seed corpus for WireDecoderFuzz (scripts/fuzz-wire.sh --seed): one file per
// message variant in each harness mode; then brings the kept inputs (found-*, regression-*)
// given after the directory to this protocol version, so that they still reach the payload
// parsers (a frame of another version stops at the version check). Compiled with the Wire and
// Virtio sources, no fuzzer.

#if canImport(Glibc)
import Glibc
#endif

func writeFile(_ path: String, _ bytes: [UInt8]) {
    guard let f = fopen(path, "wb") else { fatalError("cannot write \(path)") }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
    fclose(f)
}

func readFile(_ path: String) -> [UInt8] {
    guard let f = fopen(path, "rb") else { fatalError("cannot read \(path)") }
    defer { fclose(f) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
        if n <= 0 { return out }
        out += chunk[0..<n]
    }
}

/// A kept input at this protocol version. Body mode (odd first byte): the version is the next
/// byte. Stream mode: each delimited chunk that is a well-formed frame of an older version gets
/// this version and its CRC again; anything else stays as it was (any bytes are fair input).
func converted(_ input: [UInt8]) -> [UInt8] {
    guard let mode = input.first else { return input }
    let older: ClosedRange<UInt8> = 1...(WireProtocol.version - 1)
    if mode & 1 == 1 {
        var out = input
        if out.count > 1, older.contains(out[1]) { out[1] = WireProtocol.version }
        return out
    }
    var out: [UInt8] = [mode]
    for (k, chunk) in input.dropFirst().split(separator: 0, omittingEmptySubsequences: false).enumerated() {
        if k > 0 { out.append(0) }
        guard chunk.count > 4, var body = WireCOBS.decode(Array(chunk)), body.count > 4 else { out += chunk; continue }
        let payload = body.count - 4
        let crc = body[payload...].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
        guard WireCRC32C.checksum(body, in: 0..<payload) == crc, older.contains(body[0]) else { out += chunk; continue }
        body[0] = WireProtocol.version
        body.removeLast(4)
        let fresh = WireCRC32C.checksum(body)
        for i in 0..<4 { body.append(UInt8(truncatingIfNeeded: fresh >> (8 * UInt32(i)))) }
        WireCOBS.encode(body, appendingTo: &out)
    }
    return out
}

func seedMessages() -> [WireMessage] {
    let queues = [
        WireQueueInfo(queue: 0, name: "net0.rx", size: 8), WireQueueInfo(queue: 1, name: "net0.tx", size: 8),
    ]
    let hello = WireHello(kernelVersion: "ringside 0.1", uptimeNs: 1_000_000_000, mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
                          devices: [WireDeviceInfo(name: "net0", deviceType: 1, features: 1 << 32 | 1 << 5,
                                                   offeredFeatures: 1 << 32 | 1 << 29 | 1 << 28 | 1 << 16 | 1 << 5, status: 0x0f)],
                          queues: queues)
    let ring = WireRingView(flags: 1, availFlags: 1, usedFlags: 1, usedEvent: 7, availEvent: 300, availStart: 65530,
                            availEntries: [0, 1, 2, 300], usedStart: 1, usedEntries: [WireUsedElement(id: 2, len: 98), WireUsedElement(id: 70000, len: 1 << 31)])
    let d = WireDescriptor(state: .avail, addr: 0x20_0000, len: 2048, flags: 2, next: 1)
    let status = WireQueueStatus(queue: 0, availIdx: 8, usedIdx: 3, lastUsedIdx: 2, freeCount: 0, pendingUsed: 1, paused: true,
                                 counters: WireQueueCounters(packets: 3, bytes: 300, drops: 1, kicks: 4, interrupts: 3,
                                                             kicksSuppressed: 200, interruptsSuppressed: 2, injectedDrops: 3,
                                                             injectedCorruptions: 1, kicksWithheld: 1, interruptsIgnored: 2),
                                 faults: WireQueueFaults(drop: 2, corrupt: 0, nokick: 4, starving: true, noirq: true))
    let memory = WireMemory(heapTotal: 15_204_352, heapUsed: 1_179_648, heapFree: 13_959_168, netReserved: 83_968, netLimit: 11_272_192)
    let full = WireSnapshot(snapshotNumber: 0, uptimeNs: 1_000_000, rateHz: 10, droppedFrames: 0, memory: memory, deviceStatus: [0x0f, 0x4f], queues: [
        WireQueueSnapshot(status: status, ring: ring, descriptors: .full([WireDescriptor](repeating: d, count: 8))),
    ])
    let delta = WireSnapshot(snapshotNumber: 1, uptimeNs: 2_000_000, rateHz: 10, droppedFrames: 200, memory: memory, queues: [
        WireQueueSnapshot(status: status, ring: ring, descriptors: .delta([WireDescriptorChange(id: 3, descriptor: d)])),
    ])
    var m: [WireMessage] = [.hello(hello), .snapshot(full), .snapshot(delta)]
    let events: [WireEventKind] = [.usedConsumed(queue: 0, descriptor: 3, length: 98), .drop(queue: 0, reason: .noBuffer),
                                   .kick(queue: 1), .interrupt(queue: 0), .stepped(queue: 0, count: 1), .paused(queue: 0),
                                   .resumed(queue: 0), .countersReset, .link(up: true), .drop(queue: 0, reason: .badChecksum),
                                   .drop(queue: 1, reason: .injected),
                                   .usedBatch(queue: 0, firstUsedIdx: 65535, elements: [WireUsedElement(id: 3, len: 98), WireUsedElement(id: 4, len: 60)]),
                                   .captureCounts(queue: 1, frames: 300, missed: 2)]
    m += events.map { .event(WireEvent(uptimeNs: 1_500_000_000, kind: $0)) }
    m.append(.reply(WireReply(commandSeq: 1, status: .ok)))
    m.append(.reply(WireReply(commandSeq: 2, status: .notOwned, message: "descriptor 4 is free")))
    m.append(.reply(WireReply(commandSeq: 3, status: .ok, body: .dump(WireDump(queue: 0, descriptor: 3, guestAddress: 0x20_0000,
                                                                              bufferLength: 60, stampNs: 1_234_567_890,
                                                                              bytes: (0..<60).map { UInt8($0) })))))
    m.append(.capturedFrame(WireCapturedFrame(uptimeNs: 1_500_000_000, queue: 0, descriptor: 202, availIdx: 458, usedIdx: 204,
                                              number: 7, bufferLength: 72, headerBytes: 12, bytes: (0..<72).map { UInt8($0) })))
    let commands: [WireCommand] = [.hello, .pause(queue: 0), .resume(queue: 0), .step(queue: 0, count: 1),
                                   .dump(queue: 0, selector: .descriptor(3)), .dump(queue: 0, selector: .next),
                                   .dump(queue: 0, selector: .last), .setSnapshotRate(hz: 60), .resetCounters, .requestFull, .stats,
                                   .inject(queue: 0, fault: .drop(3)), .inject(queue: 0, fault: .corrupt(1)),
                                   .inject(queue: 0, fault: .starve), .inject(queue: 0, fault: .unstarve),
                                   .inject(queue: 1, fault: .nokick(5)), .inject(queue: 0, fault: .noirq),
                                   .inject(queue: 0, fault: .clear), .kick(queue: 1), .poll(queue: 0),
                                   .capture(on: true)]
    m += commands.map { .command($0) }
    return m
}

@main
struct WireCorpusSeed {
    static func main() {
        let dir = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Tests/Fuzz/corpus"
        var encoder = WireFrameEncoder(firstSeq: 0)
        var stream: [UInt8] = []
        for (i, message) in seedMessages().enumerated() {
            var frame: [UInt8] = []
            do { try encoder.encode(message, into: &frame) } catch { fatalError("encode") }
            stream += frame
            // Mode 0 (even first byte): the framed bytes.
            writeFile("\(dir)/frame-\(i)", [UInt8(2 * (i % 8))] + frame)
            // Mode 1 (odd first byte): the body without CRC.
            var body = WireWriter()
            body.writeU8(WireProtocol.version)
            body.writeU8(message.type.rawValue)
            body.writeU32(UInt32(i))
            message.writePayload(to: &body)
            writeFile("\(dir)/body-\(i)", [1] + body.bytes)
        }
        writeFile("\(dir)/stream-all", [0x10] + stream)
        writeFile("\(dir)/stream-garbage", [0x04] + [0x41, 0x42, 0x00, 0x02, 0xFF] + stream.prefix(100) + stream)
        print("seeded \(dir)")
        var changed = 0
        for path in CommandLine.arguments.dropFirst(2) {
            let before = readFile(path), after = converted(before)
            if after != before { writeFile(path, after); changed += 1 }
        }
        if CommandLine.arguments.count > 2 { print("\(changed) of \(CommandLine.arguments.count - 2) kept inputs brought to protocol version \(WireProtocol.version)") }
    }
}
