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
    /// Interrupt vectors (arch/include/vectors.h, where isr.S takes them from too).
    static let vectors = DeviceVectors(rx: UInt8(IRQ_VECTOR_CONSOLE_RX), tx: UInt8(IRQ_VECTOR_CONSOLE_TX),
                                       config: UInt8(IRQ_VECTOR_CONSOLE_CONFIG), line: UInt8(IRQ_VECTOR_CONSOLE_LINE))
    /// Host → guest buffers: commands are small.
    static let rxBufferSize = 512
    static let rxBufferCount = 16
    /// Guest → host buffers: one telemetry frame each (a full snapshot of a 1024-entry queue fits).
    static let txBufferSize = 32 * 1024
    static let txBufferCount = 16

    let transport: VirtioTransport
    let features: VirtioFeatures
    let rx: DeviceQueue
    let tx: DeviceQueue

    /// `ringFeatures`: the ring features to ask for (event idx, packed), as the net driver does.
    init?(location: VirtioDeviceLocation, apicID: UInt32, ringFeatures: VirtioFeatures) {
        // Port 0 without MULTIPORT reads nothing from the device configuration.
        guard let device = QueuePairDevice(
            location: location, deviceConfigBytes: 0, vectors: Self.vectors, apicID: apicID,
            wanted: Self.wantedFeatures.union(ringFeatures), required: Self.requiredFeatures,
            configInterrupt: .optional(deviceName: "con0"),
            receive: QueueRequest(index: VIRTIO_CONSOLE_PORT0_RX_QUEUE, vector: Self.vectors.rx,
                                  bufferSize: Self.rxBufferSize, bufferCount: Self.rxBufferCount),
            transmit: QueueRequest(index: VIRTIO_CONSOLE_PORT0_TX_QUEUE, vector: Self.vectors.tx,
                                   bufferSize: Self.txBufferSize, bufferCount: Self.txBufferCount))
        else { return nil }
        (transport, features, rx, tx) = (device.transport, device.features, device.rx, device.tx)
        transport.start(receiveQueue: rx)
    }

    /// What the interrupts in `pending` mean for this device (`VirtioTransport.interrupts`).
    func takeInterrupts(_ pending: UInt64) -> DeviceInterrupts {
        transport.interrupts(pending: pending, vectors: Self.vectors, rx: rx, tx: tx)
    }

    /// Hands every chunk of bytes the host sent to `deliver`, then reposts the buffers.
    @discardableResult
    func receive(_ deliver: (UnsafeRawBufferPointer) -> Void) -> Int {
        let chunks = rx.drain { _, _, bytes in deliver(bytes) }
        if chunks > 0 {
            rx.refill()
            rx.publishAndNotify()
        }
        return chunks
    }

    /// Queues `bytes` for the host and notifies it. false: no buffer free (the host is not
    /// reading) or too big; nothing was sent.
    ///
    /// `waitNs` > 0: when every buffer is in flight, polls the used ring for up to that long for
    /// one to come back before giving up. QEMU completes console buffers as it writes them to
    /// the socket (or discards them, for a console port whose host side is not reading), so a
    /// burst of frames waits only as long as QEMU takes to catch up: how step reports and
    /// replies get through without loss (docs/protocol.md §1).
    func send(_ bytes: [UInt8], waitNs: UInt64 = 0) -> Bool {
        tx.drain()
        if tx.enqueue(bytes) == nil {
            guard waitNs > 0, bytes.count <= Self.txBufferSize else { return false }
            let deadline = Clock.nowNs &+ waitNs
            while true {
                cpu_pause()
                if tx.drain() > 0, tx.enqueue(bytes) != nil { break }
                if Clock.nowNs >= deadline { return false }
            }
        }
        tx.publishAndNotify()
        return true
    }
}
