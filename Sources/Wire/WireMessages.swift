// The messages, as values: hello, event, reply, captured frame, command, and `WireMessage`, which
// names them all. The snapshot, the largest, is in WireSnapshot.swift. Their byte layout is in
// WireMessageCoding.swift (WireSnapshotCoding.swift for the snapshot) and docs/protocol.md.

#if canImport(Virtio)
import Virtio   // SwiftPM; the kernel and scripts/fuzz-wire.sh compile Virtio into the same module
#endif

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
