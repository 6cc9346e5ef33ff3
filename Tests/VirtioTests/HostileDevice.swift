// What a lying device can do to a split virtqueue beyond returning bad used elements
// (`SimulatedDevice.addUsed(id:len:)` already writes any id and len): write the descriptor
// table, which only the driver should write (2.7.5). A real device can DMA anywhere the
// driver lets it; these are the writes a driver must survive without trusting them.

import RingAtomics

extension SimulatedDevice {
    /// Overwrites fields of descriptor `id` in the table; nil leaves a field alone.
    func rewriteDescriptor(_ id: UInt16, addr: UInt64? = nil, len: UInt32? = nil, flags: UInt16? = nil,
                           next: UInt16? = nil) {
        let p = memory.desc + 16 * Int(id)
        if let addr { ring_store64(p, addr) }
        if let len { ring_store32(p + 8, len) }
        if let flags { ring_store16(p + 12, flags) }
        if let next { ring_store16(p + 14, next) }
        ring_wmb()
    }
}
