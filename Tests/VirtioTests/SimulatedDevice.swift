// The DEVICE side of a split virtqueue (virtio 1.2, 2.7), written from the spec on its own:
// it computes every offset itself rather than using the Virtio module's layout constants, so
// a layout mistake in the driver shows up as a disagreement here.
//
// It reads avail.idx and the avail ring, follows NEXT chains, writes used elements and
// used.idx, honours the driver's interrupt suppression (flags or used_event), and can set its
// own notification suppression (used.flags or avail_event) for the driver to honour.

import RingAtomics
import Virtio

struct DeviceChain: DeviceBuffers {
    struct Element {
        var addr: UInt64
        var len: UInt32
        var writable: Bool
    }
    var head: UInt16
    var ids: [UInt16]
    var elements: [Element]
}

/// A chain's buffers as a device sees them, split or packed: what it may write and what it reads.
protocol DeviceBuffers {
    var elements: [DeviceChain.Element] { get }
}

extension DeviceBuffers {
    var writableCapacity: Int { elements.filter(\.writable).reduce(0) { $0 + Int($1.len) } }

    /// Writes `bytes` across the device-writable buffers; returns how many fit.
    func write(_ bytes: [UInt8]) -> Int {
        var written = 0
        for element in elements where element.writable && written < bytes.count {
            let n = min(Int(element.len), bytes.count - written)
            let p = UnsafeMutableRawPointer(bitPattern: UInt(element.addr))!
            bytes[written..<written + n].withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: n) }
            written += n
        }
        return written
    }
}

enum DeviceError: Error, Equatable {
    case availIdxTooFarAhead(UInt16)
    case headOutOfRange(UInt16)
    case nextOutOfRange(UInt16)
    case chainLoop
    case readableAfterWritable
}

final class SimulatedDevice: @unchecked Sendable {
    let memory: RingMemory
    let size: UInt16
    let eventIdx: Bool
    /// Next avail ring entry the device will read (its private counter, 2.7.6).
    private(set) var lastAvailIdx: UInt16 = 0
    /// The device's shadow of used.idx: entries written, published or not.
    private(set) var usedIdxShadow: UInt16 = 0
    /// used.idx as last published.
    private(set) var publishedUsedIdx: UInt16 = 0
    /// used.idx when the device last decided whether to interrupt (the `old` of vring_need_event).
    private var usedIdxAtLastSignalCheck: UInt16 = 0
    /// Interrupts the device raised.
    private(set) var interruptsRaised = 0

    init(memory: RingMemory, eventIdx: Bool) {
        self.memory = memory
        self.size = memory.size
        self.eventIdx = eventIdx
    }

    // MARK: Raw field access, offsets straight from 2.7.5, 2.7.6, 2.7.8.

    var availFlags: UInt16 { ring_load16(memory.avail) }
    var availIdx: UInt16 { ring_load16(memory.avail + 2) }
    func availRing(_ slot: UInt16) -> UInt16 { ring_load16(memory.avail + 4 + 2 * Int(slot)) }
    var usedEvent: UInt16 { ring_load16(memory.avail + 4 + 2 * Int(size)) }
    var usedFlags: UInt16 { ring_load16(memory.used) }
    var usedIdxInMemory: UInt16 { ring_load16(memory.used + 2) }
    var availEvent: UInt16 { ring_load16(memory.used + 4 + 8 * Int(size)) }

    func rawDescriptor(_ id: UInt16) -> (addr: UInt64, len: UInt32, flags: UInt16, next: UInt16) {
        let p = memory.desc + 16 * Int(id)
        return (ring_load64(p), ring_load32(p + 8), ring_load16(p + 12), ring_load16(p + 14))
    }

    /// Device-side suppression of driver notifications without event idx (2.7.10).
    func setNoNotify(_ on: Bool) { ring_store16(memory.used, on ? 1 : 0); ring_mb() }
    /// With event idx: "notify me when avail.idx passes `value`" (2.7.10).
    func setAvailEvent(_ value: UInt16) { ring_store16(memory.used + 4 + 8 * Int(size), value); ring_mb() }

    // MARK: Consuming the available ring (2.7.6, 2.7.5)

    /// Chains the driver published that the device has not taken yet.
    var pendingAvail: UInt16 { availIdx &- lastAvailIdx }

    /// Takes the next published chain, walking NEXT links with loop detection.
    func takeAvailable() throws(DeviceError) -> DeviceChain? {
        let published = availIdx  // acquire: ring entries before it are visible
        guard published != lastAvailIdx else { return nil }
        guard published &- lastAvailIdx <= size else { throw .availIdxTooFarAhead(published) }
        let head = availRing(lastAvailIdx % size)
        lastAvailIdx &+= 1
        guard head < size else { throw .headOutOfRange(head) }
        var chain = DeviceChain(head: head, ids: [], elements: [])
        var id = head
        var sawWritable = false
        while true {
            guard chain.ids.count < Int(size) else { throw .chainLoop }
            let d = rawDescriptor(id)
            let writable = d.flags & 2 != 0
            if writable { sawWritable = true } else if sawWritable { throw .readableAfterWritable }
            chain.ids.append(id)
            chain.elements.append(.init(addr: d.addr, len: d.len, writable: writable))
            guard d.flags & 1 != 0 else { break }
            guard d.next < size else { throw .nextOutOfRange(d.next) }
            id = d.next
        }
        return chain
    }

    /// Takes every published chain.
    func takeAllAvailable() -> [DeviceChain] {
        var chains: [DeviceChain] = []
        while let chain = try! takeAvailable() { chains.append(chain) }
        return chains
    }

    // MARK: Data

    /// Writes `bytes` across the chain's device-writable buffers; returns how many fit.
    @discardableResult
    func write(_ bytes: [UInt8], into chain: DeviceChain) -> Int {
        chain.write(bytes)
    }

    /// Reads the chain's device-readable buffers (what the driver transmits).
    func read(_ chain: DeviceChain) -> [UInt8] {
        var out: [UInt8] = []
        for element in chain.elements where !element.writable {
            let p = UnsafeRawPointer(bitPattern: UInt(element.addr))!
            out += UnsafeRawBufferPointer(start: p, count: Int(element.len))
        }
        return out
    }

    // MARK: Returning used buffers (2.7.8)

    /// Writes a used element (any id, even a bogus one) without publishing it.
    func addUsed(id: UInt32, len: UInt32) {
        let p = memory.used + 4 + 8 * Int(usedIdxShadow % size)
        ring_store32(p, id)
        ring_store32(p + 4, len)
        usedIdxShadow &+= 1
    }

    func addUsed(_ chain: DeviceChain, len: UInt32) { addUsed(id: UInt32(chain.head), len: len) }

    /// Publishes used.idx and decides, as a device must, whether to interrupt (2.7.7):
    /// avail.flags NO_INTERRUPT, or with event idx the vring_need_event rule on used_event.
    @discardableResult
    func publishUsed() -> Bool {
        ring_wmb()
        ring_store16(memory.used + 2, usedIdxShadow)
        publishedUsedIdx = usedIdxShadow
        ring_mb()
        let old = usedIdxAtLastSignalCheck
        let new = publishedUsedIdx
        usedIdxAtLastSignalCheck = new
        guard new != old else { return false }
        let interrupt: Bool
        if eventIdx {
            interrupt = UInt16(new &- usedEvent &- 1) < UInt16(new &- old)
        } else {
            interrupt = availFlags & 1 == 0
        }
        if interrupt { interruptsRaised += 1 }
        return interrupt
    }

    /// Completes chains in the given order with the given lengths, then publishes once.
    @discardableResult
    func complete(_ chains: [DeviceChain], len: (DeviceChain) -> UInt32 = { _ in 0 }) -> Bool {
        for chain in chains { addUsed(chain, len: len(chain)) }
        return publishUsed()
    }
}
