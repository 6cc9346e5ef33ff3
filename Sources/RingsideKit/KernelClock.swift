import Foundation
import Wire

/// Maps kernel uptimes (ns since boot, as in events, snapshots and dump stamps) to host wall-
/// clock time. Each hello and snapshot gives a candidate for the host's time at the kernel's
/// uptime 0: the host time it arrived minus the uptime it carries. Transit only ever makes a
/// message late, so the smallest recent candidate is the best estimate (as NTP keeps the
/// sample with the least delay), and keeping only recent ones follows the drift between the
/// guest's clock and the host's (the kernel calibrates its TSC over 10 ms at boot: on a busy
/// host that can be off by a percent, half a second over a minute).
public struct KernelClock: Equatable, Sendable {
    /// Host wall-clock seconds since the epoch at the kernel's uptime 0.
    public private(set) var bootWallTime: Double
    /// The latest candidates, oldest first.
    private var recent: [Double]
    /// How many candidates count: at 10 snapshots a second, the last ~3 s.
    static let window = 32

    public init(bootWallTime: Double) {
        self.bootWallTime = bootWallTime
        recent = [bootWallTime]
    }

    /// The mapping from a hello received at `receivedAt` (host wall-clock seconds).
    public init(hello: WireHello, receivedAt: Double) {
        self.init(bootWallTime: receivedAt - Double(hello.uptimeNs) / 1e9)
    }

    /// Refines the mapping with a message carrying `uptimeNs` that arrived at `receivedAt`.
    public mutating func observe(uptimeNs: UInt64, receivedAt: Double) {
        guard uptimeNs > 0 else { return }
        recent.append(receivedAt - Double(uptimeNs) / 1e9)
        if recent.count > KernelClock.window { recent.removeFirst(recent.count - KernelClock.window) }
        bootWallTime = recent.min() ?? bootWallTime
    }

    /// Host wall-clock seconds of kernel uptime `ns`; nil for 0 (the protocol's "unknown").
    public func wallTime(uptimeNs ns: UInt64) -> Double? {
        ns == 0 ? nil : bootWallTime + Double(ns) / 1e9
    }
}

/// Host wall-clock seconds since the epoch.
public func wallClockSeconds() -> Double { Date().timeIntervalSince1970 }
