import Arch

/// The virtio-net driver (virtio 1.2, 5.1): one receive and one transmit queue, each
/// descriptor pointing at one 2 KiB buffer that starts with the 12-byte virtio_net_hdr.
///
/// Receive buffers are kept posted: every buffer the stack is done with goes straight back
/// on the ring. Transmit buffers come from a free stack and return to it when the device
/// reports them used, so the TX ring can never be overrun (Toro's round-robin bug).
final class VirtioNetDriver {
    /// Big enough for a virtio_net_hdr and a 1514-byte frame without VIRTIO_NET_F_MRG_RXBUF (5.1.6.3.1).
    static let bufferSize = 2048
    static let headerSize = VirtioNetHeader.size
    /// What we accept and why (docs/architecture.md has the full table):
    /// VERSION_1 (required: modern device, little-endian, 12-byte header), MAC (our
    /// address), STATUS (link state). No checksum offload or TSO: the stack computes every
    /// checksum itself, so the bytes in the rings are exactly the bytes on the wire.
    static let wantedFeatures = VirtioFeatures(bits: [VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS])
    static let requiredFeatures = VirtioFeatures(bits: [VIRTIO_F_VERSION_1])

    static let rxVector: UInt8 = 33
    static let txVector: UInt8 = 34
    static let configVector: UInt8 = 35

    let transport: VirtioPCITransport
    let features: VirtioFeatures
    let rx: DeviceQueue
    let tx: DeviceQueue
    let mac: [UInt8]
    private(set) var linkUp: Bool
    private(set) var rxBuffers: BufferPool
    private(set) var txBuffers: BufferPool
    /// Frames the stack produced that found no free TX descriptor.
    private(set) var txRingFullDrops: UInt64 = 0

    init?(function: PCIFunction, apicID: UInt32) {
        guard let transport = VirtioPCITransport(function: function),
              let features = transport.negotiate(wanted: Self.wantedFeatures, required: Self.requiredFeatures)
        else { return nil }
        guard transport.routeConfigInterrupt(entry: 2, vector: Self.configVector, apicID: apicID),
              let rx = transport.setUpQueue(index: VIRTIO_NET_RX_QUEUE, msixEntry: 0, vector: Self.rxVector,
                                            apicID: apicID, eventIdx: false),
              let tx = transport.setUpQueue(index: VIRTIO_NET_TX_QUEUE, msixEntry: 1, vector: Self.txVector,
                                            apicID: apicID, eventIdx: false)
        else {
            transport.addStatus(VIRTIO_CONFIG_S_FAILED)
            return nil
        }
        guard let rxPool = BufferPool(count: Int(rx.ring.size), bufferSize: Self.bufferSize),
              let txPool = BufferPool(count: Int(tx.ring.size), bufferSize: Self.bufferSize) else {
            log("virtio-net: out of memory for buffers")
            transport.addStatus(VIRTIO_CONFIG_S_FAILED)
            return nil
        }
        self.transport = transport
        self.features = features
        self.rx = rx
        self.tx = tx
        self.rxBuffers = rxPool
        self.txBuffers = txPool
        var mac: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
        if features.contains(VIRTIO_NET_F_MAC) {
            for i in 0..<6 { mac[i] = transport.config8(VIRTIO_NET_CONFIG_MAC_OFFSET + i) }
        }
        self.mac = mac
        self.linkUp = true
        refreshLinkStatus()
        // Buffers must be posted before DRIVER_OK? No: the spec allows either order (3.1.1
        // step 7 is "perform device-specific setup"); posting first means no frame arriving
        // right after DRIVER_OK finds an empty ring.
        refillReceive()
        transport.driverOK()
        rx.publishAndNotify()
    }

    /// VIRTIO_NET_S_LINK_UP from the device configuration (5.1.4), when STATUS was negotiated.
    @discardableResult
    func refreshLinkStatus() -> Bool {
        if features.contains(VIRTIO_NET_F_STATUS) {
            linkUp = transport.config16(VIRTIO_NET_CONFIG_STATUS_OFFSET) & VIRTIO_NET_S_LINK_UP != 0
        }
        return linkUp
    }

    /// Posts every free receive buffer (device-writable) and tells the device.
    func refillReceive() {
        while let buffer = rxBuffers.take() {
            guard rx.ring.addBuffer(addr: buffer, len: UInt32(Self.bufferSize), deviceWritable: true) != nil else {
                rxBuffers.give(buffer)
                break
            }
        }
    }

    /// One completed receive buffer, as the driver hands it up.
    struct Received {
        let head: UInt16
        let address: UInt64
        /// The bytes the device wrote: virtio_net_hdr, then the frame.
        let buffer: UnsafeRawBufferPointer
        /// The Ethernet frame alone.
        var frame: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buffer[VirtioNetDriver.headerSize...]) }
    }

    /// Hands up to `limit` received frames to `deliver`, oldest first, then recycles the
    /// buffers. Returns how many used elements were consumed.
    func receive(limit: Int = Int.max, _ deliver: (Received) -> Void) -> Int {
        var delivered = 0
        while delivered < limit, let used = rx.ring.popUsed() {
            let head = UInt16(truncatingIfNeeded: used.id)
            let buffer = rx.ring.descriptor(head).addr
            let length = Int(used.len)
            if length > Self.headerSize, length <= Self.bufferSize, rxBuffers.owns(buffer) {
                let base = UnsafeRawPointer(BufferPool.pointer(buffer))
                deliver(Received(head: head, address: buffer, buffer: UnsafeRawBufferPointer(start: base, count: length)))
            }
            if rx.ring.release(head: head) { rxBuffers.give(buffer) }
            delivered += 1
        }
        if delivered > 0 {
            refillReceive()
            rx.publishAndNotify()
        }
        return delivered
    }

    /// Returns completed transmit buffers to the free stack (2.7.14).
    func reclaimTransmit() {
        while let used = tx.ring.popUsed() {
            let head = UInt16(truncatingIfNeeded: used.id)
            let buffer = tx.ring.descriptor(head).addr
            if tx.ring.release(head: head) { txBuffers.give(buffer) }
        }
    }

    var canTransmit: Bool { !txBuffers.isEmpty && tx.ring.freeCount > 0 }

    /// Queues one Ethernet frame (without virtio header) for transmission; not yet published.
    /// `sent` sees the descriptor, the buffer address and the bytes handed to the device.
    func enqueueTransmit(_ frame: [UInt8], _ sent: (UInt16, UInt64, UnsafeRawBufferPointer) -> Void = { _, _, _ in }) -> Bool {
        if !canTransmit { reclaimTransmit() }
        guard frame.count + Self.headerSize <= Self.bufferSize, let buffer = txBuffers.take() else {
            txRingFullDrops &+= 1
            return false
        }
        let base = BufferPool.pointer(buffer)
        // virtio_net_hdr: all zero = no offloads, GSO_NONE (5.1.6.2); num_buffers is 0 on TX.
        memset(base, 0, Self.headerSize)
        frame.withUnsafeBytes { bytes in
            if let src = bytes.baseAddress { memcpy(base + Self.headerSize, src, bytes.count) }
        }
        let length = Self.headerSize + frame.count
        guard let head = tx.ring.addBuffer(addr: buffer, len: UInt32(length), deviceWritable: false) else {
            txBuffers.give(buffer)
            txRingFullDrops &+= 1
            return false
        }
        sent(head, buffer, UnsafeRawBufferPointer(start: UnsafeRawPointer(base), count: length))
        return true
    }

    func flushTransmit() { tx.publishAndNotify() }

    var macDescription: String {
        var text = ""
        for (i, byte) in mac.enumerated() {
            if i > 0 { text += ":" }
            text += hex(byte, digits: 2)
        }
        return text
    }
}
