import Foundation
import Wire

/// Maps kernel uptimes (ns since boot, as in events, snapshots and dump stamps) to host wall-
/// clock time: boot = the host's time when a hello arrived minus the uptime the hello carries.
/// The error is the hello's transit time (the console socket: well under a millisecond when the
/// host is reading) plus any drift between the guest's clock and the host's since the hello.
public struct KernelClock: Equatable, Sendable {
    /// Host wall-clock seconds since the epoch at the kernel's uptime 0.
    public var bootWallTime: Double

    public init(bootWallTime: Double) {
        self.bootWallTime = bootWallTime
    }

    /// The mapping from a hello received at `receivedAt` (host wall-clock seconds).
    public init(hello: WireHello, receivedAt: Double) {
        bootWallTime = receivedAt - Double(hello.uptimeNs) / 1e9
    }

    /// Host wall-clock seconds of kernel uptime `ns`; nil for 0 (the protocol's "unknown").
    public func wallTime(uptimeNs ns: UInt64) -> Double? {
        ns == 0 ? nil : bootWallTime + Double(ns) / 1e9
    }
}

/// Host wall-clock seconds since the epoch.
public func wallClockSeconds() -> Double { Date().timeIntervalSince1970 }
