import Arch

/// What a driver asks of one of its queues: which queue (the device's numbering), its
/// interrupt vector on PCI (arch/include/vectors.h; MSI-X routes each queue separately, an
/// MMIO device has one line for all, `VirtioTransport.open`), and its buffers.
struct QueueRequest {
    let index: UInt16
    let vector: UInt8
    let bufferSize: Int
    /// At most the ring size; nil: one buffer per descriptor.
    var bufferCount: Int? = nil
}

/// The guest-physical addresses of a queue's three areas, as both transports take them
/// (PCI: queue_desc/queue_driver/queue_device, 4.1.4.3; MMIO: QueueDesc/QueueDriver/QueueDevice
/// Low and High, 4.2.2): split, the descriptor table, the available ring and the used ring;
/// packed, the descriptor ring, the driver and the device event suppression structures (2.8.10).
typealias RingAreas = (desc: UInt64, driver: UInt64, device: UInt64)

/// The memory of a queue, whatever the transport: the ring in the negotiated format and the
/// buffers its descriptors carry. A transport finds the size the device offers, hands the
/// areas to the device its own way, and this does the rest.
enum QueueMemory {
    /// Allocates the ring (`features`: VIRTIO_F_RING_PACKED, VIRTIO_F_RING_EVENT_IDX) and the
    /// buffers of `request` for a queue of `size`, calls `enable` with the areas (the transport
    /// tells the device and enables the queue; false refuses), and returns the queue bound to
    /// `doorbell`. nil, logged, when memory runs out or the transport refused.
    static func makeQueue(_ request: QueueRequest, size: UInt16, features: VirtioFeatures, deviceWritable: Bool,
                          doorbell: Doorbell, enable: (RingAreas) -> Bool) -> DeviceQueue? {
        let eventIdx = features.contains(VIRTIO_F_RING_EVENT_IDX)
        guard let (ring, areas) = features.contains(VIRTIO_F_RING_PACKED)
                ? packedRing(size: size, eventIdx: eventIdx) : splitRing(size: size, eventIdx: eventIdx)
        else {
            log("virtio: queue \(request.index): no memory for a ring of \(size)")
            return nil
        }
        guard let pool = BufferPool(count: min(request.bufferCount ?? Int(size), Int(size)), bufferSize: request.bufferSize) else {
            log("virtio: out of memory for queue \(request.index)'s buffers")
            return nil
        }
        guard enable(areas) else { return nil }
        return DeviceQueue(index: request.index, ring: ring, doorbell: doorbell, pool: pool, deviceWritable: deviceWritable)
    }

    /// A split ring (2.7): descriptor table, available ring and used ring, each on its own
    /// pages (page alignment satisfies every area's alignment, 2.7.2).
    static func splitRing(size: UInt16, eventIdx: Bool) -> (DeviceRing, RingAreas)? {
        guard let desc = heap_alloc_pages((SplitVirtqueue.descTableBytes(size: size) + 4095) / 4096),
              let avail = heap_alloc_pages((SplitVirtqueue.availRingBytes(size: size) + 4095) / 4096),
              let used = heap_alloc_pages((SplitVirtqueue.usedRingBytes(size: size) + 4095) / 4096),
              let ring = try? SplitVirtqueue(size: size, descTable: desc, availRing: avail, usedRing: used,
                                             eventIdx: eventIdx)
        else { return nil }
        return (.split(ring), (address(desc), address(avail), address(used)))
    }

    /// A packed ring (2.8): the descriptor ring on its own pages, and one page for the two
    /// event suppression structures, the driver's at its start and the device's a cache line
    /// further (each 4-aligned, 2.8.10.1; apart, so the device's writes do not share a line with
    /// the driver's). Two pages for a 256-entry ring where the split format takes three.
    static func packedRing(size: UInt16, eventIdx: Bool) -> (DeviceRing, RingAreas)? {
        guard let desc = heap_alloc_pages((PackedVirtqueue.descRingBytes(size: size) + 4095) / 4096),
              let events = heap_alloc_pages(1),
              let ring = try? PackedVirtqueue(size: size, descRing: desc, driverEvent: events,
                                              deviceEvent: events + deviceEventOffset, eventIdx: eventIdx)
        else { return nil }
        return (.packed(ring), (address(desc), address(events), address(events + deviceEventOffset)))
    }

    static let deviceEventOffset = 64

    static func address(_ pointer: UnsafeMutableRawPointer) -> UInt64 { UInt64(UInt(bitPattern: pointer)) }
}
