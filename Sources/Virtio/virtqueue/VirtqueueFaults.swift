// Faults a driver injects into its own queue on purpose (issue 11, "Notifications made
// visible"): lose frames, damage them, stop reposting receive buffers, forget a kick, ignore
// an interrupt. The rules (what applies where, how counts run down, what is counted) live
// here so the host tests check them; the kernel's DeviceQueue and VirtioNetDriver only ask
// at the right places (`takeDrop`, `takeCorruption`, `withholdKick`, `noteInterrupt`).

/// One request of the `inject` command (the wire carries it as `WireFault`, the same type).
public enum VirtqueueFault: Equatable, Sendable {
    /// Silently drop the next N frames (RX: before the stack; TX: instead of publishing them).
    case drop(UInt16)
    /// Flip a byte in each of the next N frames (RX: before the stack; TX: before publishing).
    case corrupt(UInt16)
    /// Stop reposting receive buffers.
    case starve
    /// Repost receive buffers again (and post every free one now).
    case unstarve
    /// Withhold the next N kicks the device wanted (publish without notifying).
    case nokick(UInt16)
    /// Ignore the queue's interrupts and do not poll it until `clear`.
    case noirq
    /// End every fault on the queue.
    case clear
}

/// Why an `inject` request was refused; nothing changed.
public enum VirtqueueFaultRefusal: Equatable, Sendable {
    /// The fault makes no sense on this queue (starve on a transmit queue).
    case unsupported(String)
    /// The request itself is wrong (a count of 0).
    case invalid(String)

    public var message: String {
        switch self {
        case .unsupported(let m), .invalid(let m): return m
        }
    }
}

/// The faults active on one queue and what they did. Counts run down by one per frame (drop,
/// corrupt) or per withheld kick (nokick); `starving` and `noirq` last until `unstarve` /
/// `clear`. The counters only grow (a monitor subtracts its own base to reset them).
public struct VirtqueueFaults: Equatable, Sendable {
    /// Frames still to drop.
    public private(set) var drop: UInt16 = 0
    /// Frames still to corrupt.
    public private(set) var corrupt: UInt16 = 0
    /// Kicks still to withhold.
    public private(set) var nokick: UInt16 = 0
    /// Receive buffers are not reposted.
    public private(set) var starving = false
    /// Interrupts are ignored and the queue is not polled.
    public private(set) var noirq = false

    /// Frames dropped on purpose.
    public private(set) var dropped: UInt64 = 0
    /// Frames corrupted on purpose.
    public private(set) var corrupted: UInt64 = 0
    /// Kicks the device wanted that were withheld.
    public private(set) var kicksWithheld: UInt64 = 0
    /// Interrupts that arrived while `noirq` was on.
    public private(set) var interruptsIgnored: UInt64 = 0

    public init() {}

    /// Whether any fault is active.
    public var isActive: Bool { drop > 0 || corrupt > 0 || nokick > 0 || starving || noirq }

    /// Applies `fault` to a receive (`receive`, device-writable) or transmit queue. A count
    /// replaces the one active (`drop 3` after `drop 5` leaves 3); `clear` ends everything.
    /// Returns nil when applied, or why not (nothing changed).
    public mutating func apply(_ fault: VirtqueueFault, receive: Bool) -> VirtqueueFaultRefusal? {
        switch fault {
        case .drop(let n):
            guard n > 0 else { return .invalid("drop count must be 1…65535") }
            drop = n
        case .corrupt(let n):
            guard n > 0 else { return .invalid("corrupt count must be 1…65535") }
            corrupt = n
        case .nokick(let n):
            guard n > 0 else { return .invalid("nokick count must be 1…65535") }
            nokick = n
        case .starve:
            guard receive else { return .unsupported("starve applies to receive queues (buffers the device fills)") }
            starving = true
        case .unstarve:
            guard receive else { return .unsupported("unstarve applies to receive queues (buffers the device fills)") }
            starving = false
        case .noirq:
            noirq = true
        case .clear:
            drop = 0
            corrupt = 0
            nokick = 0
            starving = false
            noirq = false
        }
        return nil
    }

    /// Whether the next frame is to be dropped (and counts it).
    public mutating func takeDrop() -> Bool {
        guard drop > 0 else { return false }
        drop -= 1
        dropped &+= 1
        return true
    }

    /// Whether the next frame is to be corrupted (and counts it).
    public mutating func takeCorruption() -> Bool {
        guard corrupt > 0 else { return false }
        corrupt -= 1
        corrupted &+= 1
        return true
    }

    /// Called when a publication needs a notification: whether to withhold it (and counts it).
    public mutating func withholdKick() -> Bool {
        guard nokick > 0 else { return false }
        nokick -= 1
        kicksWithheld &+= 1
        return true
    }

    /// Called for every interrupt that arrives for the queue: whether to ignore it (counted).
    public mutating func noteInterrupt() -> Bool {
        guard noirq else { return false }
        interruptsIgnored &+= 1
        return true
    }

    /// The byte `corrupt` flips in an Ethernet frame of `frame.count` bytes: for IPv4, the last
    /// byte of the IP datagram (its total length, within the frame), which the transport's
    /// checksum covers (UDP, TCP, ICMP; the header checksum when there is no payload), so the
    /// receiver's checksum check must catch it even in a padded frame; otherwise the frame's
    /// last byte. nil for an empty frame.
    public static func corruptionOffset(frame: UnsafeRawBufferPointer) -> Int? {
        guard frame.count > 0 else { return nil }
        let ethernetHeader = 14
        if frame.count >= ethernetHeader + 20, frame[12] == 0x08, frame[13] == 0x00 {
            let totalLength = Int(frame[16]) << 8 | Int(frame[17])
            if totalLength >= 20 {
                return ethernetHeader + min(totalLength, frame.count - ethernetHeader) - 1
            }
        }
        return frame.count - 1
    }

    /// Flips (XOR 0xFF) the byte `corruptionOffset` picks; returns its offset, nil if none.
    @discardableResult
    public static func corrupt(frame: UnsafeMutableRawBufferPointer) -> Int? {
        guard let offset = corruptionOffset(frame: UnsafeRawBufferPointer(frame)) else { return nil }
        frame[offset] ^= 0xFF
        return offset
    }
}
