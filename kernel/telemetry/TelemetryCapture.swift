import Arch

// Capture mode (docs/protocol.md §7 `capture`, §6a `capturedFrame`): while it is on, a copy of
// every frame through a network queue goes to the host with the ring context it had. Off by
// default: a copy per frame costs console bandwidth that watching alone does not need.
//
// Frames are not sent one console buffer each: they are encoded back to back into one batch
// (wire frames are self-delimiting, so a batch is just a stream) and the batch goes out when
// the next frame would not fit a console buffer, with the counts after a snapshot, or when its
// oldest frame has waited `flushAfterNs`. Each batch handed over is a notification QEMU answers
// with a write to the socket; under TCG that costs about as much as the echo itself, so one per
// frame would halve the echo rate, and one per few milliseconds costs little. A batch the console cannot take (every buffer in flight: the host is not
// keeping up) is dropped whole, never waited for, and each frame in it is counted as missed on
// its queue. The counts go to the host in `captureCounts` events, so nothing is silently missing.

/// Capture mode's state: the batch being filled and, per queue (by wire index), the frames
/// numbered since capture was turned on and those the console could not take.
final class TelemetryCapture {
    private(set) var on = false
    /// Frames through each queue since capture was turned on: the next frame's number.
    private(set) var frames: [UInt64]
    /// Frames the kernel could not send, per queue.
    private(set) var missed: [UInt64]
    /// Frames per queue in `batch`, to count as missed if the console refuses it.
    private var batched: [UInt64]
    /// Encoded frames waiting for a console buffer. Its capacity is reserved at boot (the limit),
    /// so capturing allocates nothing: Swift traps on allocation failure, the kernel must not.
    var batch: [UInt8] = []
    /// A console buffer's size: a batch never grows past it.
    let limit: Int
    /// When the batch's oldest frame was added (meaningful while the batch is not empty).
    private(set) var batchStartNs: UInt64 = 0
    /// How long a frame may wait in the batch before it goes out.
    static let flushAfterNs: UInt64 = 5_000_000

    init(queueCount: Int, limit: Int) {
        frames = [UInt64](repeating: 0, count: queueCount)
        missed = frames
        batched = frames
        self.limit = limit
        batch.reserveCapacity(limit)
    }

    /// Turns capture on or off. Turning it on from off starts the counts (and numbers) afresh;
    /// a second `capture on` keeps them, so a capture that joins does not disturb one running.
    func set(on: Bool) {
        if on && !self.on {
            for i in frames.indices { frames[i] = 0; missed[i] = 0 }
        }
        self.on = on
    }

    /// Numbers the next frame of queue `index`.
    func number(_ index: Int) -> UInt32 {
        let n = UInt32(truncatingIfNeeded: frames[index])
        frames[index] &+= 1
        return n
    }

    /// Frame `index` went into the batch at `nowNs`, `first` if the batch was empty before it.
    func noteBatched(_ index: Int, nowNs: UInt64, first: Bool) {
        batched[index] &+= 1
        if first { batchStartNs = nowNs }
    }

    /// When the batch must go out (UInt64.max while it is empty).
    var flushDeadlineNs: UInt64 { batch.isEmpty ? UInt64.max : batchStartNs &+ TelemetryCapture.flushAfterNs }
    func noteMissed(_ index: Int) { missed[index] &+= 1 }

    /// The batch went out (`sent`) or was dropped; either way it is empty after. Returns the
    /// frames dropped.
    func batchDone(sent: Bool) -> UInt64 {
        var dropped: UInt64 = 0
        for i in batched.indices {
            if !sent { missed[i] &+= batched[i]; dropped &+= batched[i] }
            batched[i] = 0
        }
        batch.removeAll(keepingCapacity: true)
        return dropped
    }
}

extension Telemetry {
    /// Copies one frame of network queue `q` to the host if capture is on: `bytes` is the whole
    /// buffer (virtio-net header, then the frame) as the device wrote it (RX) or will read it (TX).
    func captureFrame(_ q: MonitoredQueue, descriptor: UInt16, bytes: UnsafeRawBufferPointer) {
        guard capture.on else { return }
        let index = Int(q.wireIndex)
        let number = capture.number(index)
        let count = min(bytes.count, WireProtocol.maxCaptureBytes)
        if capture.batch.count + WireFrameEncoder.maxCapturedFrameOutputBytes(byteCount: count) > capture.limit {
            flushCapture()
        }
        let positions = q.ring.positions
        let first = capture.batch.isEmpty
        let nowNs = Clock.nowNs
        do {
            try encoder.encodeCapturedFrame(
                uptimeNs: nowNs, queue: q.wireIndex, descriptor: descriptor, availIdx: positions.avail,
                usedIdx: positions.used, number: number, bufferLength: UInt32(truncatingIfNeeded: bytes.count),
                headerBytes: UInt8(VirtioNetDriver.headerSize), bytes: UnsafeRawBufferPointer(rebasing: bytes[0..<count]),
                into: &capture.batch)
            capture.noteBatched(index, nowNs: nowNs, first: first)
        } catch {
            capture.noteMissed(index)
        }
    }

    /// Hands the batch to the console, never waiting: a refused batch is counted, frame by
    /// frame, as missed on its queues and as telemetry frames dropped.
    func flushCapture() {
        guard !capture.batch.isEmpty else { return }
        let sent = console.send(capture.batch, waitNs: 0)
        droppedFrames &+= capture.batchDone(sent: sent)
    }

    /// `captureCounts` for every network queue (the pausable ones: capture copies their frames).
    /// After a `capture` command they wait for a console buffer (the host's final accounting);
    /// with snapshots they do not.
    func sendCaptureCounts(reliable: Bool) {
        flushCapture()
        for q in queues where q.pausable {
            let index = Int(q.wireIndex)
            event(.captureCounts(queue: q.wireIndex, frames: capture.frames[index], missed: capture.missed[index]),
                  reliable: reliable)
        }
    }

    func handleCapture(on: Bool, seq: UInt32) {
        flushCapture()
        let was = capture.on
        capture.set(on: on)
        if on != was { log("telemetry: capture \(on ? "on" : "off")") }
        reply(seq, .ok)
        sendCaptureCounts(reliable: true)
    }
}
