// What the host derives over time for a queue: rates, a short history, and whether the ring
// is stuck (used entries the driver does not consume while it is not paused).

import Wire

/// Health flags, shown in red on the queue's panel.
public struct QueueHealth: Equatable, Sendable {
    /// No free descriptor: the driver cannot post or send (shown for driver-filled queues;
    /// on RX every buffer is posted by design, so free == 0 is the healthy state there).
    public var full = false
    /// Used entries pending, the queue not paused, and the driver's last-seen index has not
    /// moved for more than `QueueActivity.stuckAfter` seconds. (Whether an interrupt was owed
    /// for them — IRQ LOST? — and starvation are the notification detector's, in the model.)
    public var stuck = false

    public init(full: Bool = false, stuck: Bool = false) {
        self.full = full
        self.stuck = stuck
    }
}

public struct QueueActivity: Equatable, Sendable {
    public static let stuckAfter = 1.0
    public static let historyLength = 64

    struct Sample: Equatable, Sendable {
        var time: Double
        var packets: UInt64
        var bytes: UInt64
    }

    var samples: [Sample] = []
    /// Packets per second, one value per second, oldest first.
    public private(set) var packetHistory: [Double] = []
    public private(set) var packetsPerSecond: Double = 0
    public private(set) var bytesPerSecond: Double = 0
    var lastSeen: UInt16?
    /// Host time the driver was last seen making progress (or had nothing to do).
    public private(set) var lastProgress: Double = 0
    var historyBucketStart: Double?

    public init() {}

    /// Folds in one snapshot of the queue, taken at kernel time `uptime` seconds, received at
    /// host time `now`.
    public mutating func note(_ status: WireQueueStatus, uptime: Double, now: Double) {
        if let last = samples.last, status.counters.packets < last.packets || status.counters.bytes < last.bytes || uptime < last.time {
            samples.removeAll()   // counters reset or kernel restarted
        }
        samples.append(Sample(time: uptime, packets: status.counters.packets, bytes: status.counters.bytes))
        // Keep about two seconds; rate over the newest second (or what there is).
        while samples.count > 2, let first = samples.first, uptime - first.time > 2.0 { samples.removeFirst() }
        if let base = samples.first(where: { uptime - $0.time <= 1.05 }) ?? samples.first, uptime - base.time > 0.05 {
            let dt = uptime - base.time
            packetsPerSecond = Double(status.counters.packets &- base.packets) / dt
            bytesPerSecond = Double(status.counters.bytes &- base.bytes) / dt
        } else if samples.count == 1 {
            packetsPerSecond = 0
            bytesPerSecond = 0
        }
        if let start = historyBucketStart {
            if uptime - start >= 1.0 || uptime < start {
                packetHistory.append(packetsPerSecond)
                if packetHistory.count > Self.historyLength { packetHistory.removeFirst(packetHistory.count - Self.historyLength) }
                historyBucketStart = uptime
            }
        } else {
            historyBucketStart = uptime
        }
        if status.lastUsedIdx != lastSeen || status.pendingUsed == 0 || status.paused || lastProgress == 0 {
            lastProgress = now
        }
        lastSeen = status.lastUsedIdx
    }

    /// Flags for `status` of a queue of `size` descriptors, at host time `now`.
    public func health(_ status: WireQueueStatus, size: UInt16, format: WireRingFormat = .split, isReceive: Bool,
                       now: Double) -> QueueHealth {
        let ring = RingIndices(size: size, status: status, format: format)
        var h = QueueHealth()
        h.full = !isReceive && status.freeCount == 0
        h.stuck = !status.paused && ring.pending > 0 && now - lastProgress > Self.stuckAfter
        return h
    }
}

/// A sparkline of `values` in `width` cells (the newest at the right), scaled to the maximum.
public func sparkline(_ values: [Double], width: Int) -> String {
    let bars: [Unicode.Scalar] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
    guard width > 0 else { return "" }
    let shown = values.suffix(width)
    let peak = shown.max() ?? 0
    var s = String.UnicodeScalarView()
    for _ in 0..<(width - shown.count) { s.append(" ") }
    for v in shown {
        if peak <= 0 || v <= 0 { s.append(bars[0]); continue }
        let level = min(7, max(0, Int((v / peak * 7).rounded())))
        s.append(bars[level])
    }
    return String(s)
}

/// 1234 → "1234", 12345 → "12.3k", 1.5e6 → "1.5M".
public func compactNumber(_ v: Double) -> String {
    let a = abs(v)
    if a < 1000 { return a < 10 && a != a.rounded() ? fmt1(v) : String(Int(v.rounded())) }
    if a < 1e6 { return fmt1(v / 1e3) + "k" }
    if a < 1e9 { return fmt1(v / 1e6) + "M" }
    return fmt1(v / 1e9) + "G"
}

/// Bytes per second as "512 B/s", "1.2 KB/s" (10^3 units, as network tools count).
public func byteRate(_ v: Double) -> String {
    let a = abs(v)
    if a < 1000 { return "\(Int(v.rounded())) B/s" }
    if a < 1e6 { return fmt1(v / 1e3) + " KB/s" }
    if a < 1e9 { return fmt1(v / 1e6) + " MB/s" }
    return fmt1(v / 1e9) + " GB/s"
}

func fmt1(_ v: Double) -> String {
    let tenths = Int((v * 10).rounded())
    let sign = tenths < 0 ? "-" : ""
    let t = abs(tenths)
    return "\(sign)\(t / 10).\(t % 10)"
}
