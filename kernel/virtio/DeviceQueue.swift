import Arch

/// A virtqueue bound to its device: the ring bookkeeping, the doorbell, and the buffers its
/// descriptors point at. Both drivers use it the same way: every descriptor carries one
/// buffer of the pool. A device-writable (receive) queue keeps every free buffer posted; a
/// device-readable (transmit) queue takes a buffer per message and gets it back when the
/// device has used it.
final class DeviceQueue {
    let index: UInt16
    /// Split or packed, as negotiated (VIRTIO_F_RING_PACKED).
    let ring: DeviceRing
    let doorbell: Doorbell
    private(set) var pool: BufferPool
    let deviceWritable: Bool
    /// Faults injected on purpose (`inject`): consulted where the driver kicks and reposts here,
    /// and by the drivers where they hand frames up or out and take interrupts.
    var faults = VirtqueueFaults()

    init(index: UInt16, ring: DeviceRing, doorbell: Doorbell, pool: BufferPool, deviceWritable: Bool) {
        self.index = index
        self.ring = ring
        self.doorbell = doorbell
        self.pool = pool
        self.deviceWritable = deviceWritable
    }

    /// Publishes what was added and rings the doorbell if the device wants it (2.7.13.3-4, 2.8.21.2-3).
    func publishAndNotify() {
        guard ring.unpublishedCount > 0 else { return }
        ring.publish()
        notifyIfNeeded()
    }

    /// After a publication: rings the doorbell if the device asked for it (2.7.13.4,
    /// VIRTQ_USED_F_NO_NOTIFY or `avail_event`), else counts the kick saved. Under `nokick` a
    /// kick the device asked for is withheld (a lost kick) and counted.
    func notifyIfNeeded() {
        if ring.needsNotify() {
            if faults.withholdKick() { return }
            kick()
        } else {
            ring.noteKickSuppressed()
        }
    }

    /// Rings the doorbell: writes the queue index where the transport says, at its width.
    func kick() {
        doorbell.ring(queue: index)
        ring.noteKick()
    }

    /// Posts every free buffer for the device to fill (receive queues); not yet published.
    /// Nothing while starving (`inject Q starve`): the buffers stay in the pool.
    func refill() {
        if faults.starving { return }
        while let buffer = pool.take() {
            guard ring.addBuffer(addr: buffer, len: UInt32(pool.bufferSize), deviceWritable: true) != nil else {
                pool.give(buffer)
                return
            }
        }
    }

    /// Takes up to `limit` used buffers, oldest first. `body` sees each one's head, address and
    /// the bytes the device wrote (receive queues; empty for transmit queues, and when the
    /// device broke the protocol for it), then the buffer goes back to the pool. The address
    /// is the driver's own record of the descriptor or buffer id (`buffer(_:)`), never the
    /// ring memory the device can write. Returns how many were taken.
    @discardableResult
    func drain(limit: Int = Int.max, _ body: (UInt16, UInt64, UnsafeRawBufferPointer) -> Void = { _, _, _ in }) -> Int {
        var taken = 0
        while taken < limit, let used = ring.popUsed() {
            let head = used.head
            let buffer = ring.buffer(head)?.addr ?? 0
            body(head, buffer, pool.bytes(buffer, count: deviceWritable ? Int(used.len) : 0))
            if ring.release(head: head) { pool.give(buffer) }
            taken += 1
        }
        return taken
    }

    /// Whether `enqueue` can take a message now.
    var canEnqueue: Bool { !pool.isEmpty && ring.freeCount > 0 }

    /// Copies `headerBytes` zero bytes and then `bytes` into a free buffer and makes it
    /// available to the device (not yet published). Returns the head and the buffer's
    /// address, or nil — nothing taken — when no buffer is free or the message is too big.
    func enqueue(zeroHeader headerBytes: Int = 0, _ bytes: [UInt8]) -> (head: UInt16, address: UInt64)? {
        let length = headerBytes + bytes.count
        guard length > 0, length <= pool.bufferSize, let buffer = pool.take(), let base = pool.pointer(buffer) else {
            return nil
        }
        if headerBytes > 0 { memset(base, 0, headerBytes) }
        bytes.withUnsafeBytes { source in
            if let from = source.baseAddress { memcpy(base + headerBytes, from, source.count) }
        }
        guard let head = ring.addBuffer(addr: buffer, len: UInt32(length), deviceWritable: false) else {
            pool.give(buffer)
            return nil
        }
        return (head, buffer)
    }
}

/// Where and how a queue's notification (its "kick") is written: the one thing about a
/// queue's data path that differs between the transports.
enum Doorbell {
    /// PCI: the queue's own address in the notification structure, `cap.offset +
    /// queue_notify_off × notify_off_multiplier`; the queue index written as 16 bits (4.1.5.2).
    case pci(address: UInt64)
    /// MMIO: the device's one QueueNotify register, shared by every queue; the queue index
    /// written as 32 bits, as every MMIO control register is (4.2.2.2, 4.2.3.3).
    case mmio(register: UInt64)

    func ring(queue index: UInt16) {
        switch self {
        case .pci(let address): mmio_write16(address, index)
        case .mmio(let register): mmio_write32(register, UInt32(index))
        }
    }
}
