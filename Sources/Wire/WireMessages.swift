// The messages, as values. Their byte layout is in WireMessageCoding.swift and docs/protocol.md.
// Over 400 lines on purpose: every message type of the protocol in one file (mostly fields and
// their documentation), the vocabulary WireMessageCoding.swift and protocol.md follow.

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

/// A virtio device, the feature bits it offered and the driver accepted, and its status.
public struct WireDeviceInfo: Equatable, Sendable {
    /// "net0", "con0".
    public var name: String
    /// Virtio device ID (virtio 1.x §5): 1 = network, 3 = console.
    public var deviceType: UInt16
    /// Negotiated feature bits: what the driver accepted (bit n = feature n, as in the spec).
    public var features: UInt64
    /// The feature bits the device offered (device_feature, read during negotiation).
    public var offeredFeatures: UInt64
    /// The device status byte (VIRTIO_CONFIG_S_*) when the hello was sent; snapshots carry it too.
    public var status: UInt8

    public init(name: String, deviceType: UInt16, features: UInt64, offeredFeatures: UInt64 = 0, status: UInt8 = 0) {
        self.name = name
        self.deviceType = deviceType
        self.features = features
        self.offeredFeatures = offeredFeatures
        self.status = status
    }
}

/// One monitored virtqueue.
public struct WireQueueInfo: Equatable, Sendable {
    /// The index every snapshot, event and command uses for this queue.
    public var queue: UInt8
    /// "net0.rx", "net0.tx", "con0.rx", "con0.tx".
    public var name: String
    /// Queue size (descriptor count).
    public var size: UInt16
    /// Since version 4: the ring format the queue uses (split, or packed with
    /// VIRTIO_F_RING_PACKED): it says how the queue's snapshot fields read (docs/protocol.md §4).
    public var format: WireRingFormat

    public init(queue: UInt8, name: String, size: UInt16, format: WireRingFormat = .split) {
        self.queue = queue
        self.name = name
        self.size = size
        self.format = format
    }
}

/// A virtqueue's ring format (virtio 1.2, 2.7 split, 2.8 packed).
public enum WireRingFormat: UInt8, Equatable, Sendable {
    case split = 0
    case packed = 1
}

/// How many ring positions `to` is past `from` (two of a queue status's indices) on a queue of
/// `size` in `format`. Split indices are free-running 16-bit counters (2.7.6): their difference
/// modulo 2^16. Packed positions are offset | wrap counter << 15 (2.8.14, docs/protocol.md §4)
/// and count modulo two laps (the wrap counter starts at 1, 2.8.1): exact while the two are at
/// most one lap apart, which the positions of one snapshot always are.
public func wireRingDistance(from: UInt16, to: UInt16, size: UInt16, format: WireRingFormat) -> Int {
    guard format == .packed, size > 0 else { return Int(to &- from) }
    let n = Int(size)
    func lapPosition(_ offWrap: UInt16) -> Int { Int(offWrap & 0x7FFF) % n + (offWrap & 0x8000 != 0 ? 0 : n) }
    return (lapPosition(to) - lapPosition(from) + 2 * n) % (2 * n)
}

/// Sent at boot and on the `hello` command, followed by a full snapshot.
public struct WireHello: Equatable, Sendable {
    public var kernelVersion: String
    /// The highest protocol version the kernel speaks.
    public var protocolVersion: UInt8
    /// Kernel uptime when the hello was built: the host maps kernel times to its wall clock
    /// with it (boot = host time at hello − uptimeNs).
    public var uptimeNs: UInt64
    /// The virtio-net MAC address, 6 bytes (shorter is zero-padded, longer cut, on encode).
    public var mac: [UInt8]
    public var devices: [WireDeviceInfo]
    public var queues: [WireQueueInfo]

    public init(kernelVersion: String, protocolVersion: UInt8 = WireProtocol.version, uptimeNs: UInt64 = 0, mac: [UInt8],
                devices: [WireDeviceInfo], queues: [WireQueueInfo]) {
        self.kernelVersion = kernelVersion
        self.protocolVersion = protocolVersion
        self.uptimeNs = uptimeNs
        self.mac = mac
        self.devices = devices
        self.queues = queues
    }
}

/// Why a packet was dropped. An open set: unknown codes decode and print as numbers.
public struct WireDropReason: RawRepresentable, Equatable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// No free descriptor / buffer to post or transmit into.
    public static let noBuffer = WireDropReason(rawValue: 1)
    /// The frame failed to parse (bad header, bad checksum).
    public static let malformed = WireDropReason(rawValue: 2)
    /// Nothing handles this protocol/port.
    public static let unhandled = WireDropReason(rawValue: 3)
    /// The hold queue of a paused queue is full.
    public static let pausedOverflow = WireDropReason(rawValue: 4)
    /// Frame too large for the buffer.
    public static let tooLarge = WireDropReason(rawValue: 5)
    /// The device broke the ring protocol: a used element with a bad id, for a chain it did
    /// not own, or too long, or descriptors it rewrote. The driver skipped or emptied it.
    public static let deviceError = WireDropReason(rawValue: 6)
    /// Since version 3: a checksum (IPv4 header, ICMP, UDP, TCP) did not match (was `malformed`).
    public static let badChecksum = WireDropReason(rawValue: 7)
    /// Since version 3: the driver dropped the frame on purpose (`inject Q drop N`).
    public static let injected = WireDropReason(rawValue: 8)

    public var name: String {
        switch rawValue {
        case 1: return "noBuffer"
        case 2: return "malformed"
        case 3: return "unhandled"
        case 4: return "pausedOverflow"
        case 5: return "tooLarge"
        case 6: return "deviceError"
        case 7: return "badChecksum"
        case 8: return "injected"
        default: return "reason\(rawValue)"
        }
    }
}

public enum WireEventKind: Equatable, Sendable {
    /// The driver consumed a used element: descriptor chain head `descriptor`, `length` bytes.
    case usedConsumed(queue: UInt8, descriptor: UInt16, length: UInt32)
    case drop(queue: UInt8, reason: WireDropReason)
    /// The driver notified the device.
    case kick(queue: UInt8)
    /// The device interrupted for this queue.
    case interrupt(queue: UInt8)
    /// A step command delivered `count` elements.
    case stepped(queue: UInt8, count: UInt16)
    case paused(queue: UInt8)
    case resumed(queue: UInt8)
    case countersReset
    case link(up: Bool)
    /// Used elements a step delivered, in ring order: `elements[k]` was at used ring index
    /// `firstUsedIdx + k`. A step of many is split over several events, each self-describing.
    case usedBatch(queue: UInt8, firstUsedIdx: UInt16, elements: [WireUsedElement])
    /// Since version 4: capture mode's accounting for a network queue since capture was last
    /// turned on: `frames` passed through the queue (numbered 0 … frames − 1 in
    /// `WireCapturedFrame.number`), of which the kernel could not send `missed` (no console
    /// buffer free). Sent after every `capture` command and with every snapshot while capturing.
    case captureCounts(queue: UInt8, frames: UInt64, missed: UInt64)
}

public struct WireEvent: Equatable, Sendable {
    public var uptimeNs: UInt64
    public var kind: WireEventKind

    public init(uptimeNs: UInt64, kind: WireEventKind) {
        self.uptimeNs = uptimeNs
        self.kind = kind
    }
}

/// A command's outcome. 0 is success; the rest are errors with a name a user can act on.
public struct WireReplyStatus: RawRepresentable, Equatable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let ok = WireReplyStatus(rawValue: 0)
    /// No queue with that index.
    public static let unknownQueue = WireReplyStatus(rawValue: 1)
    /// Descriptor id ≥ queue size.
    public static let descriptorOutOfRange = WireReplyStatus(rawValue: 2)
    /// The buffer is not the queue's to show (free descriptor, or held by the device).
    public static let notOwned = WireReplyStatus(rawValue: 3)
    /// `dump next` / `step` with nothing pending, `dump last` with nothing delivered yet.
    public static let nothingPending = WireReplyStatus(rawValue: 4)
    /// The command frame was malformed; nothing was changed.
    public static let badCommand = WireReplyStatus(rawValue: 5)
    /// A command this kernel does not implement.
    public static let unsupported = WireReplyStatus(rawValue: 6)

    public var isOK: Bool { rawValue == 0 }

    public var name: String {
        switch rawValue {
        case 0: return "ok"
        case 1: return "unknownQueue"
        case 2: return "descriptorOutOfRange"
        case 3: return "notOwned"
        case 4: return "nothingPending"
        case 5: return "badCommand"
        case 6: return "unsupported"
        default: return "error\(rawValue)"
        }
    }
}

/// A buffer's bytes, exactly as in guest memory.
public struct WireDump: Equatable, Sendable {
    public var queue: UInt8
    public var descriptor: UInt16
    /// Guest-physical address of the buffer.
    public var guestAddress: UInt64
    /// The length the buffer holds (the used length for a received frame). `bytes` has
    /// min(bufferLength, WireProtocol.maxDumpBytes) bytes.
    public var bufferLength: UInt32
    /// Kernel uptime (ns) when the frame arrived in the guest: RX, when the driver first saw the
    /// device's used element for it; TX, when the driver put it in the ring. 0: unknown.
    public var stampNs: UInt64
    public var bytes: [UInt8]

    public init(queue: UInt8, descriptor: UInt16, guestAddress: UInt64, bufferLength: UInt32, stampNs: UInt64 = 0, bytes: [UInt8]) {
        self.queue = queue
        self.descriptor = descriptor
        self.guestAddress = guestAddress
        self.bufferLength = bufferLength
        self.stampNs = stampNs
        self.bytes = bytes
    }
}

public enum WireReplyBody: Equatable, Sendable {
    case none
    case dump(WireDump)
}

/// The answer to one command.
public struct WireReply: Equatable, Sendable {
    /// The host→kernel seq of the command frame answered.
    public var commandSeq: UInt32
    public var status: WireReplyStatus
    /// Empty on success; a short human explanation otherwise.
    public var message: String
    public var body: WireReplyBody

    public init(commandSeq: UInt32, status: WireReplyStatus, message: String = "", body: WireReplyBody = .none) {
        self.commandSeq = commandSeq
        self.status = status
        self.message = message
        self.body = body
    }
}

/// A copy of one frame that passed through a network queue while capture mode was on
/// (protocol version 4, message type 0x05): RX when the driver took the device's used element,
/// TX when the driver put the frame in the ring.
public struct WireCapturedFrame: Equatable, Sendable {
    /// Kernel uptime when the driver took (RX) or queued (TX) the frame.
    public var uptimeNs: UInt64
    public var queue: UInt8
    /// The descriptor (chain head) that carried the frame.
    public var descriptor: UInt16
    /// avail->idx and used->idx of the queue's rings at that moment (raw, free-running).
    public var availIdx: UInt16
    public var usedIdx: UInt16
    /// This frame's number on its queue since capture was turned on (0, 1, …; wrapping): a
    /// number the host did not see is a frame it missed, whoever lost it.
    public var number: UInt32
    /// The bytes in the buffer (virtio-net header included): `bytes` holds at most
    /// `WireProtocol.maxCaptureBytes` of them.
    public var bufferLength: UInt32
    /// How many of `bytes` are the virtio-net header (virtio 1.2 §5.1.6: 12 with VIRTIO_F_VERSION_1).
    public var headerBytes: UInt8
    /// The buffer's bytes as the device wrote (RX) or will read (TX) them, header first.
    public var bytes: [UInt8]

    public init(uptimeNs: UInt64, queue: UInt8, descriptor: UInt16, availIdx: UInt16, usedIdx: UInt16, number: UInt32,
                bufferLength: UInt32, headerBytes: UInt8, bytes: [UInt8]) {
        self.uptimeNs = uptimeNs
        self.queue = queue
        self.descriptor = descriptor
        self.availIdx = availIdx
        self.usedIdx = usedIdx
        self.number = number
        self.bufferLength = bufferLength
        self.headerBytes = headerBytes
        self.bytes = bytes
    }

    /// The virtio-net header (the first `headerBytes` bytes; empty when the buffer is shorter).
    public var header: ArraySlice<UInt8> { bytes.count >= Int(headerBytes) ? bytes[0..<Int(headerBytes)] : [] }
    /// The Ethernet frame after the header.
    public var frame: ArraySlice<UInt8> { bytes.count >= Int(headerBytes) ? bytes[Int(headerBytes)...] : [] }
}

/// Which buffer a dump shows.
public enum WireDumpSelector: Equatable, Sendable {
    /// The buffer of descriptor `id`.
    case descriptor(UInt16)
    /// The oldest pending used element (what the next step would deliver).
    case next
    /// The most recently delivered frame.
    case last
}

/// Host → kernel.
public enum WireCommand: Equatable, Sendable {
    /// Send a hello and a full snapshot.
    case hello
    case pause(queue: UInt8)
    case resume(queue: UInt8)
    /// Deliver exactly `count` pending elements (RX) / release `count` held frames (TX).
    case step(queue: UInt8, count: UInt16)
    case dump(queue: UInt8, selector: WireDumpSelector)
    case setSnapshotRate(hz: UInt16)
    case resetCounters
    /// Make the next snapshot carry full descriptor tables.
    case requestFull
    /// Reply, then send a full snapshot at once.
    case stats
    /// Since version 3: inject a fault on a queue (or end them: `.clear`).
    case inject(queue: UInt8, fault: WireFault)
    /// Since version 3: notify the device about the queue now (write its doorbell).
    case kick(queue: UInt8)
    /// Since version 3: service the queue once as if its interrupt had arrived.
    case poll(queue: UInt8)
    /// Since version 4: capture mode on or off. While on, the kernel sends a `capturedFrame`
    /// for every frame through a network queue; each `capture` restarts the counts.
    case capture(on: Bool)
}

/// Every message of the protocol.
public enum WireMessage: Equatable, Sendable {
    case hello(WireHello)
    case snapshot(WireSnapshot)
    case event(WireEvent)
    case reply(WireReply)
    case capturedFrame(WireCapturedFrame)
    case command(WireCommand)

    public var type: WireMessageType {
        switch self {
        case .hello: return .hello
        case .snapshot: return .snapshot
        case .event: return .event
        case .reply: return .reply
        case .capturedFrame: return .capturedFrame
        case .command: return .command
        }
    }
}
