// Decoder throughput: MB/s of wire bytes (COBS frames) turned into messages, for a stream of
// full snapshots (4 queues: 256, 256, 64, 64 descriptors) and a stream of delta snapshots.
// Built with -O by `scripts/fuzz-wire.sh --bench` together with Sources/Wire/*.swift.

#if canImport(Glibc)
import Glibc
#endif

func nowSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

struct BenchRNG {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `count` snapshot frames from a tracker over tables that change a little each time.
func snapshotStream(count: Int, full: Bool) -> [UInt8] {
    let sizes = [256, 256, 64, 64]
    var rng = BenchRNG(state: 1)
    var tables = sizes.map { n in (0..<n).map { i in
        WireDescriptor(state: .avail, addr: 0x20_0000 + UInt64(i) * 2048, len: 2048, flags: 2, next: UInt16((i + 1) % n)) } }
    var tracker = TelemetryDescriptorTracker(queueSizes: sizes)
    var encoder = WireFrameEncoder()
    var out: [UInt8] = []
    for s in 0..<count {
        if full { tracker.requestFull() }
        for q in 0..<tables.count {
            for _ in 0..<8 {
                let id = Int(rng.next() % UInt64(tables[q].count))
                tables[q][id].state = WireDescriptorState(rawValue: UInt8(rng.next() % 4))!
                tables[q][id].len = UInt32(rng.next() % 1514)
            }
        }
        tracker.beginSnapshot(into: &encoder, uptimeNs: UInt64(s) * 16_666_667, rateHz: 60, droppedFrames: 0,
                              memory: WireMemory(heapTotal: 30 << 20, heapUsed: 1 << 20, heapFree: 29 << 20, netReserved: 83_968, netLimit: 24 << 20))
        for q in 0..<tables.count {
            let status = WireQueueStatus(queue: UInt8(q), availIdx: UInt16(truncatingIfNeeded: s * 3), usedIdx: UInt16(truncatingIfNeeded: s * 3 - 1),
                                         lastUsedIdx: UInt16(truncatingIfNeeded: s * 3 - 2), freeCount: 10, pendingUsed: 0, paused: false,
                                         counters: WireQueueCounters(packets: UInt64(s) * 3, bytes: UInt64(s) * 300, drops: 0, kicks: UInt64(s), interrupts: UInt64(s)))
            let table = tables[q]
            do { try tracker.appendQueue(status, into: &encoder) { table[$0] } } catch { fatalError("encode") }
        }
        do { try encoder.finish(into: &out) } catch { fatalError("finish") }
    }
    return out
}

func measure(_ label: String, _ stream: [UInt8], frames: Int) {
    var best = 0.0
    for _ in 0..<5 {
        var decoder = WireFrameDecoder()
        var decoded = 0
        let t0 = nowSeconds()
        var i = 0
        // Feed in 64 KiB reads, as from a socket.
        while i < stream.count {
            let n = min(65536, stream.count - i)
            stream.withUnsafeBytes { decoder.feed(UnsafeRawBufferPointer(rebasing: $0[i..<(i + n)])) }
            i += n
            while let r = decoder.next() {
                if case .message = r { decoded += 1 } else { fatalError("decode error") }
            }
        }
        let dt = nowSeconds() - t0
        precondition(decoded == frames)
        best = max(best, Double(stream.count) / dt / 1e6)
    }
    let perFrame = stream.count / frames
    print("\(label): \(frames) frames, \(perFrame) bytes/frame, decode \(Int(best)) MB/s (\(Int(best * 1e6 / Double(perFrame))) frames/s)")
}

func measureEncode(frames: Int) {
    let t0 = nowSeconds()
    let s = snapshotStream(count: frames, full: false)
    let dt = nowSeconds() - t0
    print("encode (tracker + delta, incl. table mutation): \(Int(Double(frames) / dt)) snapshots/s, \(Int(Double(s.count) / dt / 1e6)) MB/s")
}

@main
struct WireDecoderBench {
    static func main() {
        let fullFrames = 2000, deltaFrames = 20000
        measure("full snapshots ", snapshotStream(count: fullFrames, full: true), frames: fullFrames)
        measure("delta snapshots", snapshotStream(count: deltaFrames, full: false), frames: deltaFrames)
        measureEncode(frames: deltaFrames)
    }
}
