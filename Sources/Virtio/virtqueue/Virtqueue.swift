// What every virtqueue format shares (virtio 1.2, 2.6): the buffers a driver hands over, the
// life cycle of a descriptor as a monitor shows it, the counters, and the event-index rule.
// The split ring (2.7) lives in split/, the packed ring (2.8) beside it in packed/; both use
// these types and conform to `Virtqueue`, the interface a driver is generic over.

/// One buffer of a chain the driver makes available (2.7.13.1).
public struct VirtqBuffer: Equatable, Sendable {
    /// Guest-physical (DMA) address.
    public var addr: UInt64
    /// Length in bytes.
    public var len: UInt32
    /// true: the device writes it (receive); false: the device reads it (transmit).
    public var deviceWritable: Bool

    public init(addr: UInt64, len: UInt32, deviceWritable: Bool) {
        self.addr = addr
        self.len = len
        self.deviceWritable = deviceWritable
    }
}

/// Where a descriptor is in its life cycle, from the driver's point of view.
public enum VirtqDescriptorState: UInt8, Sendable {
    /// On the driver's free list.
    case free = 0
    /// Part of a chain made available to the device (published or not yet): the device owns it.
    case available = 1
    /// The device returned its chain in the used ring; the driver has not popped it yet.
    case used = 2
    /// The driver popped its chain and still holds it (processing, or waiting to release).
    case held = 3
}

/// How many descriptors are in each state.
public struct VirtqStateCounts: Equatable, Sendable {
    public var free: Int = 0
    public var available: Int = 0
    public var used: Int = 0
    public var held: Int = 0

    public init(free: Int = 0, available: Int = 0, used: Int = 0, held: Int = 0) {
        self.free = free
        self.available = available
        self.used = used
        self.held = held
    }

    /// Counts one more descriptor (split) or buffer id (packed) in `state`.
    public mutating func count(_ state: VirtqDescriptorState) {
        switch state {
        case .free: free += 1
        case .available: available += 1
        case .used: used += 1
        case .held: held += 1
        }
    }
}

/// Counters a monitor reads to see the queue's traffic and health.
public struct VirtqueueCounters: Equatable, Sendable {
    /// Available-buffer notifications the driver sent (see `noteKick()`).
    public var kicks: UInt64 = 0
    /// Publications after which the device did not want a notification (VIRTQ_USED_F_NO_NOTIFY,
    /// or `avail_event` not crossed with VIRTIO_F_RING_EVENT_IDX): kicks saved.
    public var kicksSuppressed: UInt64 = 0
    /// Used-buffer notifications the driver received (see `noteInterrupt()`).
    public var interrupts: UInt64 = 0
    /// Used elements the device published that the driver had not asked to be interrupted
    /// for (see `observeUsed()`): with VIRTIO_F_RING_EVENT_IDX every element but the one at
    /// `used_event` (the device interrupts once per batch that crosses it, 2.7.7.2), without it
    /// every element published while avail.flags had VIRTQ_AVAIL_F_NO_INTERRUPT (2.7.7.1).
    public var interruptsSuppressed: UInt64 = 0
    /// Chains the driver popped from the used ring.
    public var packets: UInt64 = 0
    /// Bytes moved: the `len` the device reported for chains with device-writable buffers
    /// (RX), the bytes of the device-readable buffers for chains it only read (TX).
    public var bytes: UInt64 = 0
    /// Used elements whose id is out of range or names a descriptor in the middle of a chain.
    /// Consumed and skipped.
    public var usedBadID: UInt64 = 0
    /// Used elements for a chain the device does not own: a free descriptor, one already
    /// returned (a duplicate), or one not yet published. Consumed and skipped.
    public var usedNotOwned: UInt64 = 0
    /// Used elements whose len is longer than the chain's device-writable buffers. The len is
    /// clamped to them (2.7.8.2).
    public var usedBadLength: UInt64 = 0
    /// Descriptors that, when their chain came back, no longer held what the driver wrote
    /// (the device must not write the table, 2.7.5). The chain is returned with len 0: the
    /// device may have written somewhere else, so none of its bytes is trusted.
    public var descriptorsRewritten: UInt64 = 0

    /// Every protocol violation above.
    public var deviceErrors: UInt64 { usedBadID &+ usedNotOwned &+ usedBadLength &+ descriptorsRewritten }

    public init() {}
}

/// The event-index rule both sides use (2.7.7.2, 2.7.10, and 2.8.10 for packed rings; Linux
/// `vring_need_event`):
/// notify if `eventIdx` lies in the window of indices [oldIdx, newIdx) that was just
/// published, i.e. the other side asked to hear about reaching `eventIdx + 1`.
/// All arithmetic is modulo 2^16.
@inline(__always)
public func virtqNeedEvent(eventIdx: UInt16, newIdx: UInt16, oldIdx: UInt16) -> Bool {
    newIdx &- eventIdx &- 1 < newIdx &- oldIdx
}

/// What a driver does with a virtqueue of either format (2.7 split, 2.8 packed). The kernel's
/// queue can be generic over it (Embedded Swift has no existentials: `DeviceQueue<Ring:
/// Virtqueue>`, or an enum of the two). A "head" is the split ring's head descriptor id or the
/// packed ring's buffer id: what `add…` returns, `popUsed()` hands back as `id`, and
/// `release(head:)` / `buffer(_:)` take.
public protocol Virtqueue: AnyObject {
    /// Descriptors (split) or ring positions and buffer ids (packed).
    var size: UInt16 { get }
    /// How many single-buffer chains could be added now.
    var freeCount: UInt16 { get }
    /// Chains added but not yet published.
    var unpublishedCount: UInt16 { get }
    var counters: VirtqueueCounters { get }
    var interruptsEnabled: Bool { get }

    func addBuffer(addr: UInt64, len: UInt32, deviceWritable: Bool) -> UInt16?
    func addChain<Buffers: Collection>(_ buffers: Buffers) -> UInt16? where Buffers.Element == VirtqBuffer
    func publish()
    @discardableResult func publish(count: UInt16) -> UInt16
    func needsNotify() -> Bool
    /// Record that the driver notified the device.
    func noteKick()
    /// Record that a publication needed no notification (`needsNotify()` said no).
    func noteKickSuppressed()
    /// Record that a used-buffer notification (interrupt) arrived for this queue.
    func noteInterrupt()
    func popUsed() -> VirtqUsedElement?
    @discardableResult func release(head: UInt16) -> Bool
    func buffer(_ head: UInt16) -> VirtqBuffer?
    func state(of head: UInt16) -> VirtqDescriptorState
    func stateCounts() -> VirtqStateCounts
    func observeUsed()
    func disableInterrupts()
    @discardableResult func enableInterrupts() -> Bool
}

extension SplitVirtqueue: Virtqueue {}
extension PackedVirtqueue: Virtqueue {}
