// What a capture missed, per queue, from the kernel's frame numbers (WireCapturedFrame.number):
// the kernel numbers every frame through a queue while capture is on, so a number the host
// never saw is a frame lost on the way — in the kernel (no console buffer), in QEMU, in a hub
// that dropped it for a slow client — wherever it was lost.

import Wire

public struct CaptureAccounting: Equatable, Sendable {
    /// The number the next frame should have; nil before the first frame or count.
    public private(set) var expected: UInt32?
    /// Frames the host did not receive.
    public private(set) var missed: UInt64 = 0
    /// Frames received.
    public private(set) var received: UInt64 = 0
    /// The kernel's latest `captureCounts` for the queue: frames numbered, and how many of them
    /// it could not send.
    public private(set) var kernelFrames: UInt64?
    public private(set) var kernelMissed: UInt64?

    public init() {}

    /// A frame numbered `number` arrived. A number ahead of the expected one means the ones in
    /// between were missed; one behind (a frame from before this capture began) is not counted.
    public mutating func frame(number: UInt32) {
        received &+= 1
        guard let e = expected else { expected = number &+ 1; return }
        let ahead = number &- e
        guard ahead < 1 << 31 else { return }
        missed &+= UInt64(ahead)
        expected = number &+ 1
    }

    /// The kernel's counts: `frames` numbered so far. The first one fixes where this capture
    /// starts (the kernel sends one right after answering `capture on`).
    public mutating func counts(frames: UInt64, missed kernelMissed: UInt64) {
        if expected == nil { expected = UInt32(truncatingIfNeeded: frames) }
        kernelFrames = frames
        self.kernelMissed = kernelMissed
    }

    /// At the end of a capture that wanted everything: frames numbered after the last one
    /// received (per the kernel's final counts) were missed too.
    public mutating func finish() {
        guard let frames = kernelFrames, let e = expected else { return }
        let behind = UInt32(truncatingIfNeeded: frames) &- e
        if behind < 1 << 31 {
            missed &+= UInt64(behind)
            expected = UInt32(truncatingIfNeeded: frames)
        }
    }
}
