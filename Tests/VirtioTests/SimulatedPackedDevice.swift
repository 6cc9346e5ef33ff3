// The DEVICE side of a packed virtqueue (virtio 1.2, 2.8), written from the spec on its own:
// every offset, flag bit and the event rule are computed here rather than taken from the
// Virtio module, so a layout or wrap-counter mistake in the driver shows up as a disagreement.
//
// It reads available descriptors in ring order (AVAIL == its copy of the driver's wrap
// counter, USED != it), follows NEXT chains (taking the buffer id from the last descriptor),
// writes used descriptors in place at its own next used position with AVAIL = USED = its wrap
// counter, skipping the chain's length (2.8.20–2.8.22), honours the driver event suppression
// structure when deciding to interrupt, and writes its own device event suppression structure.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import RingAtomics
import Virtio

/// The three areas of a packed virtqueue, posix_memalign'ed as the kernel would hand in DMA memory.
final class PackedRingMemory: @unchecked Sendable {
    let size: UInt16
    let desc: UnsafeMutableRawPointer
    let driverEvent: UnsafeMutableRawPointer
    let deviceEvent: UnsafeMutableRawPointer

    init(size: UInt16) {
        self.size = size
        // Garbage, so a test notices if the queue does not zero the areas.
        desc = RingMemory.allocateGarbage(16 * Int(size), alignment: 4096)
        driverEvent = RingMemory.allocateGarbage(4, alignment: 64)
        deviceEvent = RingMemory.allocateGarbage(4, alignment: 64)
    }

    func makeQueue(eventIdx: Bool = false) -> PackedVirtqueue {
        try! PackedVirtqueue(size: size, descRing: desc, driverEvent: driverEvent, deviceEvent: deviceEvent,
                             eventIdx: eventIdx)
    }

    func makeDevice() -> SimulatedPackedDevice { SimulatedPackedDevice(memory: self) }

    deinit {
        free(desc)
        free(driverEvent)
        free(deviceEvent)
    }
}

struct PackedDeviceChain: DeviceBuffers {
    /// Buffer id, from the chain's last descriptor (2.8.13).
    var id: UInt16
    /// Ring positions the chain took.
    var count: UInt16
    var elements: [DeviceChain.Element]
}

enum PackedDeviceError: Error, Equatable {
    case chainNotAvailable(position: UInt16)
    case chainTooLong
    case readableAfterWritable
}

final class SimulatedPackedDevice: @unchecked Sendable {
    let memory: PackedRingMemory
    let size: UInt16
    /// Next ring position the device reads, and its copy of the driver's wrap counter (2.8.1).
    private(set) var nextAvail: UInt16 = 0
    private(set) var availWrap = true
    /// Next ring position the device writes a used descriptor to, and its wrap counter.
    private(set) var nextUsed: UInt16 = 0
    private(set) var usedWrap = true
    /// Times each counter flipped.
    private(set) var availWrapFlips = 0
    private(set) var usedWrapFlips = 0
    /// Used positions written since the last interrupt decision (the window [old, new)).
    private var usedSinceSignalCheck = 0
    private(set) var interruptsRaised = 0

    init(memory: PackedRingMemory) {
        self.memory = memory
        self.size = memory.size
    }

    // MARK: Raw fields, offsets straight from 2.8.13 and 2.8.14

    func raw(_ slot: UInt16) -> (addr: UInt64, len: UInt32, id: UInt16, flags: UInt16) {
        let p = memory.desc + 16 * Int(slot)
        return (ring_load64(p), ring_load32(p + 8), ring_load16(p + 12), ring_load16(p + 14))
    }

    var driverEventOffWrap: UInt16 { ring_load16(memory.driverEvent) }
    var driverEventFlags: UInt16 { ring_load16(memory.driverEvent + 2) }

    /// Writes the device event suppression structure (off_wrap first, then flags).
    func setDeviceEvent(flags: UInt16, offset: UInt16 = 0, wrap: Bool = false) {
        ring_store16(memory.deviceEvent, offset | (wrap ? 0x8000 : 0))
        ring_store16(memory.deviceEvent + 2, flags)
        ring_mb()
    }

    /// Whether the descriptor at `slot` is available under wrap counter `wrap` (2.8.1).
    private func isAvailable(_ flags: UInt16, wrap: Bool) -> Bool {
        (flags & 0x80 != 0) == wrap && (flags & 0x8000 != 0) != wrap
    }

    // MARK: Consuming available descriptors (2.8.21 from the device's side)

    /// Whether a chain is available at the device's next position.
    var hasAvailable: Bool { isAvailable(raw(nextAvail).flags, wrap: availWrap) }

    func takeAvailable() throws(PackedDeviceError) -> PackedDeviceChain? {
        guard hasAvailable else { return nil }
        var elements: [DeviceChain.Element] = []
        var slot = nextAvail
        var wrap = availWrap
        var sawWritable = false
        var id: UInt16 = 0
        while true {
            guard elements.count < Int(size) else { throw .chainTooLong }
            let d = raw(slot)
            // Every descriptor of the chain carries the available bits of its own lap.
            guard isAvailable(d.flags, wrap: wrap) else { throw .chainNotAvailable(position: slot) }
            let writable = d.flags & 2 != 0
            if writable { sawWritable = true } else if sawWritable { throw .readableAfterWritable }
            elements.append(.init(addr: d.addr, len: d.len, writable: writable))
            id = d.id
            slot += 1
            if slot == size {
                slot = 0
                wrap.toggle()
            }
            if d.flags & 1 == 0 { break }
        }
        if wrap != availWrap { availWrapFlips += 1 }
        nextAvail = slot
        availWrap = wrap
        return PackedDeviceChain(id: id, count: UInt16(elements.count), elements: elements)
    }

    func takeAllAvailable() -> [PackedDeviceChain] {
        var chains: [PackedDeviceChain] = []
        while let chain = try! takeAvailable() { chains.append(chain) }
        return chains
    }

    // MARK: Data

    @discardableResult
    func write(_ bytes: [UInt8], into chain: PackedDeviceChain) -> Int {
        chain.write(bytes)
    }

    // MARK: Writing used descriptors (2.8.22 from the device's side)

    /// Writes one used descriptor at the next used position — any id and len, even bogus —
    /// then skips `skip` positions (the chain's length for an honest device). id and len
    /// first, flags (AVAIL = USED = wrap counter) last with release order.
    func addUsed(id: UInt16, len: UInt32, skip: UInt16 = 1, flagsOverride: UInt16? = nil) {
        let p = memory.desc + 16 * Int(nextUsed)
        ring_store32(p + 8, len)
        ring_store16(p + 12, id)
        ring_wmb()
        ring_store16(p + 14, flagsOverride ?? (usedWrap ? 0x8080 : 0))
        var next = Int(nextUsed) + Int(skip)
        if next >= Int(size) {
            next -= Int(size)
            usedWrap.toggle()
            usedWrapFlips += 1
        }
        nextUsed = UInt16(next)
        usedSinceSignalCheck += Int(skip)
    }

    func addUsed(_ chain: PackedDeviceChain, len: UInt32) { addUsed(id: chain.id, len: len, skip: chain.count) }

    /// Decides, as a device must after writing used descriptors, whether to interrupt (2.8.10):
    /// driver flags DISABLE no, ENABLE yes, DESC yes iff the positions just written cover the
    /// driver's desc_event_off_wrap.
    @discardableResult
    func signal() -> Bool {
        ring_mb()
        let window = usedSinceSignalCheck
        usedSinceSignalCheck = 0
        guard window > 0 else { return false }
        let interrupt: Bool
        switch driverEventFlags & 3 {
        case 1: interrupt = false
        case 2:
            // Unwrap both ends onto absolute positions of the current and previous lap.
            let newPos = Int(nextUsed)
            let oldPos = newPos - window  // may be negative: the window crossed the ring's end
            let offWrap = driverEventOffWrap
            var event = Int(offWrap & 0x7FFF)
            if (offWrap & 0x8000 != 0) != usedWrap { event -= Int(size) }
            interrupt = window >= Int(size) || (oldPos <= event && event < newPos)
        default: interrupt = true
        }
        if interrupt { interruptsRaised += 1 }
        return interrupt
    }

    /// Completes chains in the given order with the given lengths, then decides whether to interrupt.
    @discardableResult
    func complete(_ chains: [PackedDeviceChain], len: (PackedDeviceChain) -> UInt32 = { _ in 0 }) -> Bool {
        for chain in chains { addUsed(chain, len: len(chain)) }
        return signal()
    }
}
