import Arch

/// The virtio console (virtio 1.2, 5.3), port 0 only: the telemetry channel to the host.
/// Without VIRTIO_CONSOLE_F_MULTIPORT the device has exactly two queues, receiveq (0) and
/// transmitq (1), both for port 0 (5.3.2).
///
/// Sending never blocks: when the host stops reading, QEMU stops completing transmit
/// buffers; once every buffer is in flight, `send` refuses and the caller counts a drop.
/// The network data path never waits for the console.
final class VirtioConsoleDriver {
    static let wantedFeatures = VirtioFeatures(bits: [VIRTIO_F_VERSION_1])
    static let requiredFeatures = VirtioFeatures(bits: [VIRTIO_F_VERSION_1])
    static let rxVector: UInt8 = 36
    static let txVector: UInt8 = 37
    static let configVector: UInt8 = 38
    /// Host → guest buffers: commands are small.
    static let rxBufferSize = 512
    static let rxBufferCount = 16
    /// Guest → host buffers: one telemetry frame each (a full snapshot of a 1024-entry queue fits).
    static let txBufferSize = 32 * 1024
    static let txBufferCount = 16

    let transport: VirtioPCITransport
    let features: VirtioFeatures
    let rx: DeviceQueue
    let tx: DeviceQueue
    private(set) var rxBuffers: BufferPool
    private(set) var txBuffers: BufferPool

    init?(function: PCIFunction, apicID: UInt32) {
        guard let transport = VirtioPCITransport(function: function),
              let features = transport.negotiate(wanted: Self.wantedFeatures, required: Self.requiredFeatures)
        else { return nil }
        if !transport.routeConfigInterrupt(entry: 2, vector: Self.configVector, apicID: apicID) {
            log("con0: device refused a configuration-change vector; continuing without it")
        }
        guard let rx = transport.setUpQueue(index: VIRTIO_CONSOLE_PORT0_RX_QUEUE, msixEntry: 0,
                                            vector: Self.rxVector, apicID: apicID, eventIdx: false),
              let tx = transport.setUpQueue(index: VIRTIO_CONSOLE_PORT0_TX_QUEUE, msixEntry: 1,
                                            vector: Self.txVector, apicID: apicID, eventIdx: false),
              let rxPool = BufferPool(count: min(Self.rxBufferCount, Int(rx.ring.size)), bufferSize: Self.rxBufferSize),
              let txPool = BufferPool(count: min(Self.txBufferCount, Int(tx.ring.size)), bufferSize: Self.txBufferSize)
        else { return nil }
        self.transport = transport
        self.features = features
        self.rx = rx
        self.tx = tx
        self.rxBuffers = rxPool
        self.txBuffers = txPool
        refillReceive()
        transport.driverOK()
        rx.publishAndNotify()
    }

    private func refillReceive() {
        while let buffer = rxBuffers.take() {
            guard rx.ring.addBuffer(addr: buffer, len: UInt32(Self.rxBufferSize), deviceWritable: true) != nil else {
                rxBuffers.give(buffer)
                return
            }
        }
    }

    /// Hands every chunk of bytes the host sent to `deliver`, then reposts the buffers.
    @discardableResult
    func receive(_ deliver: (UnsafeRawBufferPointer) -> Void) -> Int {
        var chunks = 0
        while let used = rx.ring.popUsed() {
            let head = UInt16(truncatingIfNeeded: used.id)
            let buffer = rx.ring.descriptor(head).addr
            if rxBuffers.owns(buffer), used.len <= UInt32(Self.rxBufferSize) {
                deliver(UnsafeRawBufferPointer(start: UnsafeRawPointer(BufferPool.pointer(buffer)), count: Int(used.len)))
            }
            if rx.ring.release(head: head) { rxBuffers.give(buffer) }
            chunks += 1
        }
        if chunks > 0 {
            refillReceive()
            rx.publishAndNotify()
        }
        return chunks
    }

    func reclaimTransmit() {
        while let used = tx.ring.popUsed() {
            let head = UInt16(truncatingIfNeeded: used.id)
            let buffer = tx.ring.descriptor(head).addr
            if tx.ring.release(head: head) { txBuffers.give(buffer) }
        }
    }

    /// Queues `bytes` for the host and notifies it. false: no buffer free (the host is not
    /// reading) or too big; nothing was sent.
    func send(_ bytes: [UInt8]) -> Bool {
        reclaimTransmit()
        guard !bytes.isEmpty, bytes.count <= Self.txBufferSize, let buffer = txBuffers.take() else { return false }
        bytes.withUnsafeBytes { source in
            if let from = source.baseAddress { memcpy(BufferPool.pointer(buffer), from, source.count) }
        }
        guard tx.ring.addBuffer(addr: buffer, len: UInt32(bytes.count), deviceWritable: false) != nil else {
            txBuffers.give(buffer)
            return false
        }
        tx.publishAndNotify()
        return true
    }
}
