// The snapshot (docs/protocol.md §4) as values: each queue's status, counters, faults, ring view
// and descriptor table, the kernel's memory, and the snapshot around them. Their byte layout is in
// WireSnapshotCoding.swift; the other messages are in WireMessages.swift.

#if canImport(Virtio)
import Virtio   // SwiftPM; the kernel and scripts/fuzz-wire.sh compile Virtio into the same module
#endif

/// A descriptor's state as the driver accounts for it. Mirrors the kernel's descriptor
/// bookkeeping without depending on the Virtio module (so the host needs none of it).
public enum WireDescriptorState: UInt8, Equatable, CaseIterable, Sendable {
    /// On the free list: owned by the driver, not in use.
    case free = 0
    /// Made available to the device (in the available ring), not yet returned.
    case avail = 1
    /// Returned by the device in the used ring, not yet consumed by the driver.
    case used = 2
    /// Consumed from the used ring but still held by the driver (e.g. a paused queue's frame
    /// awaiting a step, or a TX frame held back).
    case held = 3

    /// The name used in JSON and the TUI.
    public var name: String {
        switch self {
        case .free: return "free"
        case .avail: return "avail"
        case .used: return "used"
        case .held: return "held"
        }
    }
}

/// One entry of a descriptor table (virtio 1.x §2.7.5 `struct virtq_desc`) plus its state.
public struct WireDescriptor: Equatable, Sendable {
    public var state: WireDescriptorState
    /// Guest-physical buffer address.
    public var addr: UInt64
    public var len: UInt32
    /// VIRTQ_DESC_F_NEXT (1), VIRTQ_DESC_F_WRITE (2), VIRTQ_DESC_F_INDIRECT (4).
    public var flags: UInt16
    public var next: UInt16

    public init(state: WireDescriptorState, addr: UInt64, len: UInt32, flags: UInt16, next: UInt16) {
        self.state = state
        self.addr = addr
        self.len = len
        self.flags = flags
        self.next = next
    }

    public static let zero = WireDescriptor(state: .free, addr: 0, len: 0, flags: 0, next: 0)
}

/// A changed descriptor in a delta snapshot.
public struct WireDescriptorChange: Equatable, Sendable {
    public var id: UInt16
    public var descriptor: WireDescriptor

    public init(id: UInt16, descriptor: WireDescriptor) {
        self.id = id
        self.descriptor = descriptor
    }
}

/// A queue's descriptor section: the whole table, or only what changed since the previous
/// snapshot (`snapshotNumber - 1`).
public enum WireDescriptorUpdate: Equatable, Sendable {
    case full([WireDescriptor])
    case delta([WireDescriptorChange])
}

/// Per-queue counters, monotonic until a `resetCounters` command.
public struct WireQueueCounters: Equatable, Sendable {
    public var packets: UInt64
    public var bytes: UInt64
    public var drops: UInt64
    public var kicks: UInt64
    public var interrupts: UInt64
    /// Since version 3. Publications after which the device wanted no notification
    /// (VIRTQ_USED_F_NO_NOTIFY, or `avail_event` not crossed with VIRTIO_F_RING_EVENT_IDX): kicks saved.
    public var kicksSuppressed: UInt64
    /// Since version 3. Used elements the device published that the driver had not asked to be
    /// interrupted for: with VIRTIO_F_RING_EVENT_IDX every element but the one at `used_event`,
    /// without it every element published while VIRTQ_AVAIL_F_NO_INTERRUPT was set. Counted
    /// when the driver first sees the element, which is before it changes its request again.
    public var interruptsSuppressed: UInt64
    /// Since version 3. Frames the driver threw away on purpose (`inject Q drop N`).
    public var injectedDrops: UInt64
    /// Since version 3. Frames the driver flipped a byte in on purpose (`inject Q corrupt N`).
    public var injectedCorruptions: UInt64
    /// Since version 3. Kicks the device wanted that the driver withheld (`inject Q nokick N`).
    public var kicksWithheld: UInt64
    /// Since version 3. Interrupts for the queue the driver ignored (`inject Q noirq`).
    public var interruptsIgnored: UInt64

    public init(packets: UInt64 = 0, bytes: UInt64 = 0, drops: UInt64 = 0, kicks: UInt64 = 0, interrupts: UInt64 = 0,
                kicksSuppressed: UInt64 = 0, interruptsSuppressed: UInt64 = 0, injectedDrops: UInt64 = 0,
                injectedCorruptions: UInt64 = 0, kicksWithheld: UInt64 = 0, interruptsIgnored: UInt64 = 0) {
        self.packets = packets
        self.bytes = bytes
        self.drops = drops
        self.kicks = kicks
        self.interrupts = interrupts
        self.kicksSuppressed = kicksSuppressed
        self.interruptsSuppressed = interruptsSuppressed
        self.injectedDrops = injectedDrops
        self.injectedCorruptions = injectedCorruptions
        self.kicksWithheld = kicksWithheld
        self.interruptsIgnored = interruptsIgnored
    }

    /// Every counter minus `base`'s (wrapping): what happened since `base` was taken.
    public func subtracting(_ base: WireQueueCounters) -> WireQueueCounters {
        WireQueueCounters(packets: packets &- base.packets, bytes: bytes &- base.bytes, drops: drops &- base.drops,
                          kicks: kicks &- base.kicks, interrupts: interrupts &- base.interrupts,
                          kicksSuppressed: kicksSuppressed &- base.kicksSuppressed,
                          interruptsSuppressed: interruptsSuppressed &- base.interruptsSuppressed,
                          injectedDrops: injectedDrops &- base.injectedDrops,
                          injectedCorruptions: injectedCorruptions &- base.injectedCorruptions,
                          kicksWithheld: kicksWithheld &- base.kicksWithheld,
                          interruptsIgnored: interruptsIgnored &- base.interruptsIgnored)
    }
}

/// The faults injected on a queue and still active (protocol version 3): what the driver is
/// doing wrong on purpose (docs/protocol.md §7, `inject`).
public struct WireQueueFaults: Equatable, Sendable {
    /// Frames still to drop / corrupt, kicks still to withhold.
    public var drop: UInt16
    public var corrupt: UInt16
    public var nokick: UInt16
    /// RX buffers are not reposted (`starve`).
    public var starving: Bool
    /// The queue's interrupts are ignored and it is not polled (`noirq`).
    public var noirq: Bool

    public init(drop: UInt16 = 0, corrupt: UInt16 = 0, nokick: UInt16 = 0, starving: Bool = false, noirq: Bool = false) {
        self.drop = drop
        self.corrupt = corrupt
        self.nokick = nokick
        self.starving = starving
        self.noirq = noirq
    }

    public static let none = WireQueueFaults()

    /// Whether any fault is active.
    public var isActive: Bool { self != .none }

    /// Bit 0 of the flags byte: starving.
    public static let starvingFlag: UInt8 = 1
    /// Bit 1 of the flags byte: noirq.
    public static let noirqFlag: UInt8 = 2
}

/// A fault to inject on one queue (`inject` command, protocol version 3): the virtqueue's own
/// fault requests (Sources/Virtio/virtqueue/VirtqueueFaults.swift), carried as they are.
public typealias WireFault = VirtqueueFault

extension VirtqueueFault {
    /// The words of the command language: "drop 3", "starve", …
    public var text: String {
        switch self {
        case .drop(let n): return "drop \(n)"
        case .corrupt(let n): return "corrupt \(n)"
        case .starve: return "starve"
        case .unstarve: return "unstarve"
        case .nokick(let n): return "nokick \(n)"
        case .noirq: return "noirq"
        case .clear: return "clear"
        }
    }
}

/// The scalar state of one queue in a snapshot. Indices are raw 16-bit ring values.
public struct WireQueueStatus: Equatable, Sendable {
    /// Queue index as listed in the hello.
    public var queue: UInt8
    /// avail->idx: where the driver will write the next available entry.
    public var availIdx: UInt16
    /// used->idx: where the device will write the next used element.
    public var usedIdx: UInt16
    /// The driver's last-seen used index: how far it has consumed the used ring.
    public var lastUsedIdx: UInt16
    /// Descriptors on the free list.
    public var freeCount: UInt16
    /// Used elements (RX) or frames (TX) waiting because the queue is paused.
    public var pendingUsed: UInt16
    public var paused: Bool
    public var counters: WireQueueCounters
    /// Since version 3: the faults injected on the queue and still active.
    public var faults: WireQueueFaults

    public init(
        queue: UInt8, availIdx: UInt16, usedIdx: UInt16, lastUsedIdx: UInt16, freeCount: UInt16,
        pendingUsed: UInt16, paused: Bool, counters: WireQueueCounters, faults: WireQueueFaults = .none
    ) {
        self.queue = queue
        self.availIdx = availIdx
        self.usedIdx = usedIdx
        self.lastUsedIdx = lastUsedIdx
        self.freeCount = freeCount
        self.pendingUsed = pendingUsed
        self.paused = paused
        self.counters = counters
        self.faults = faults
    }
}

/// One used ring element as read from the ring (virtio 1.x §2.7.8 `struct virtq_used_elem`).
public struct WireUsedElement: Equatable, Sendable {
    /// The chain head id the device wrote (u32 in the ring: shown as written, even if out of range).
    public var id: UInt32
    /// Bytes the device wrote into the chain.
    public var len: UInt32

    public init(id: UInt32, len: UInt32) {
        self.id = id
        self.len = len
    }
}

/// The rings' own contents around their indices (protocol version 2, "ring" section): the
/// flags words, the event-index words, a window of avail ring slots (slot → descriptor id) and
/// a window of used ring slots (slot → id, len), read from ring memory when the snapshot was built.
public struct WireRingView: Equatable, Sendable {
    /// Bit 0: VIRTIO_F_RING_EVENT_IDX is in use on this queue, so `usedEvent`/`availEvent` are
    /// meaningful (and the flags words are not used for suppression). Other bits reserved (0).
    public var flags: UInt8
    /// avail->flags: VIRTQ_AVAIL_F_NO_INTERRUPT (1).
    public var availFlags: UInt16
    /// used->flags: VIRTQ_USED_F_NO_NOTIFY (1).
    public var usedFlags: UInt16
    /// used_event (after the avail ring's entries): written by the driver; meaningful only with event idx.
    public var usedEvent: UInt16
    /// avail_event (after the used ring's entries): written by the device; meaningful only with event idx.
    public var availEvent: UInt16
    /// Free-running ring index of `availEntries[0]` (slot = index mod size).
    public var availStart: UInt16
    /// avail->ring[] from `availStart` on: descriptor ids (chain heads).
    public var availEntries: [UInt16]
    /// Free-running ring index of `usedEntries[0]`.
    public var usedStart: UInt16
    /// used->ring[] from `usedStart` on.
    public var usedEntries: [WireUsedElement]

    public static let eventIdxFlag: UInt8 = 1
    /// Bit 1 (since version 4): a packed ring (2.8). Then `availFlags`/`usedEvent` are the driver
    /// event suppression structure's desc_event_flags/desc_event_off_wrap, `usedFlags`/`availEvent`
    /// the device's (2.8.14), and both windows cover the same ring slots from `availStart`
    /// (= `usedStart`, a slot number): `availEntries[k]` is the slot's flags, `usedEntries[k]`
    /// its buffer id and len, as in ring memory.
    public static let packedFlag: UInt8 = 2

    /// Whether the view is of a packed ring (`packedFlag`).
    public var packed: Bool { flags & WireRingView.packedFlag != 0 }
    /// Packed: the driver event suppression structure (desc_event_off_wrap, desc_event_flags).
    public var driverEvent: (offWrap: UInt16, flags: UInt16) { (usedEvent, availFlags) }
    /// Packed: the device event suppression structure (desc_event_off_wrap, desc_event_flags).
    public var deviceEvent: (offWrap: UInt16, flags: UInt16) { (availEvent, usedFlags) }

    public init(flags: UInt8 = 0, availFlags: UInt16 = 0, usedFlags: UInt16 = 0, usedEvent: UInt16 = 0, availEvent: UInt16 = 0,
                availStart: UInt16 = 0, availEntries: [UInt16] = [], usedStart: UInt16 = 0, usedEntries: [WireUsedElement] = []) {
        self.flags = flags
        self.availFlags = availFlags
        self.usedFlags = usedFlags
        self.usedEvent = usedEvent
        self.availEvent = availEvent
        self.availStart = availStart
        self.availEntries = availEntries
        self.usedStart = usedStart
        self.usedEntries = usedEntries
    }

    /// Whether VIRTIO_F_RING_EVENT_IDX is in use (used_event / avail_event mean something).
    public var eventIdx: Bool { flags & WireRingView.eventIdxFlag != 0 }

    /// Nothing read (no entries, all zero).
    public static let empty = WireRingView()

    /// Slots of each ring a snapshot carries.
    public static let window: UInt16 = 16

    /// Where the two windows start for a ring of `size` slots, and how many slots each has:
    /// the avail window holds the most recent entries before `availIdx` and a quarter of the
    /// window after it; the used window a quarter already consumed, then what the driver takes
    /// next from `lastUsedIdx`. The kernel and the guest-memory view place them the same way.
    public static func windows(size: UInt16, availIdx: UInt16, lastUsedIdx: UInt16)
        -> (count: UInt16, availStart: UInt16, usedStart: UInt16) {
        let n = Swift.min(window, size)
        return (n, availIdx &- (n - n / 4), lastUsedIdx &- n / 4)
    }
}

public struct WireQueueSnapshot: Equatable, Sendable {
    public var status: WireQueueStatus
    /// The rings' flags, event words and windows of entries.
    public var ring: WireRingView
    public var descriptors: WireDescriptorUpdate

    public init(status: WireQueueStatus, ring: WireRingView = .empty, descriptors: WireDescriptorUpdate) {
        self.status = status
        self.ring = ring
        self.descriptors = descriptors
    }
}

/// The kernel's memory as of a snapshot (protocol version 2): its heap, and the network
/// stack's budget (`NetMemory`). All in bytes.
public struct WireMemory: Equatable, Sendable {
    /// Heap size.
    public var heapTotal: UInt64
    /// Heap handed out: page runs, and small blocks at their size class.
    public var heapUsed: UInt64
    /// Heap in pages not handed out (a slab's pages are taken even where its blocks are not).
    public var heapFree: UInt64
    /// What the network stack has reserved now (each connection reserves its worst case).
    public var netReserved: UInt64
    /// What the network stack may reserve at once.
    public var netLimit: UInt64

    public init(heapTotal: UInt64, heapUsed: UInt64, heapFree: UInt64, netReserved: UInt64, netLimit: UInt64) {
        self.heapTotal = heapTotal
        self.heapUsed = heapUsed
        self.heapFree = heapFree
        self.netReserved = netReserved
        self.netLimit = netLimit
    }

    /// Nothing known (all zero).
    public static let zero = WireMemory(heapTotal: 0, heapUsed: 0, heapFree: 0, netReserved: 0, netLimit: 0)
}

/// Periodic state of every queue.
public struct WireSnapshot: Equatable, Sendable {
    /// Counts snapshots (not frames): a delta applies to snapshot `snapshotNumber - 1`.
    public var snapshotNumber: UInt32
    public var uptimeNs: UInt64
    /// The current snapshot rate in Hz.
    public var rateHz: UInt16
    /// Telemetry frames the kernel dropped because the host did not read (since boot).
    public var droppedFrames: UInt64
    /// The kernel's heap and network memory budget when the snapshot was taken.
    public var memory: WireMemory
    /// Each device's status byte (virtio 1.x §2.1, VIRTIO_CONFIG_S_*), read when the snapshot
    /// was built, in hello device order.
    public var deviceStatus: [UInt8]
    public var queues: [WireQueueSnapshot]

    public init(snapshotNumber: UInt32, uptimeNs: UInt64, rateHz: UInt16, droppedFrames: UInt64, memory: WireMemory = .zero,
                deviceStatus: [UInt8] = [], queues: [WireQueueSnapshot]) {
        self.snapshotNumber = snapshotNumber
        self.uptimeNs = uptimeNs
        self.rateHz = rateHz
        self.droppedFrames = droppedFrames
        self.memory = memory
        self.deviceStatus = deviceStatus
        self.queues = queues
    }
}
