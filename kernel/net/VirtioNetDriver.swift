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
    /// The ring features `ringFeatures` allows, when the device offers them: RING_EVENT_IDX
    /// (2.7.10, 2.8.10) and RING_PACKED (2.8), each unless the command line says no (kmain).
    static let wantedFeatures = VirtioFeatures(bits: [VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS])
    static let requiredFeatures = VirtioFeatures(bits: [VIRTIO_F_VERSION_1])

    /// Interrupt vectors (arch/include/vectors.h, where isr.S takes them from too).
    static let vectors = DeviceVectors(rx: UInt8(IRQ_VECTOR_NET_RX), tx: UInt8(IRQ_VECTOR_NET_TX),
                                       config: UInt8(IRQ_VECTOR_NET_CONFIG), line: UInt8(IRQ_VECTOR_NET_LINE))

    let transport: VirtioTransport
    let features: VirtioFeatures
    let rx: DeviceQueue
    let tx: DeviceQueue
    let mac: [UInt8]
    private(set) var linkUp: Bool
    /// Frames the stack produced that found no free TX descriptor.
    private(set) var txRingFullDrops: UInt64 = 0
    /// Told of every frame dropped on purpose (`inject Q drop N`): true for RX, false for TX.
    var onInjectedDrop: (Bool) -> Void = { _ in }

    init?(location: VirtioDeviceLocation, apicID: UInt32, ringFeatures: VirtioFeatures) {
        // The configuration holds at least mac and status (5.1.4): every field this driver reads.
        guard let device = QueuePairDevice(
            location: location, deviceConfigBytes: UInt32(VIRTIO_NET_CONFIG_STATUS_OFFSET + 2), vectors: Self.vectors,
            apicID: apicID, wanted: Self.wantedFeatures.union(ringFeatures), required: Self.requiredFeatures,
            configInterrupt: .required,
            receive: QueueRequest(index: VIRTIO_NET_RX_QUEUE, vector: Self.vectors.rx, bufferSize: Self.bufferSize),
            transmit: QueueRequest(index: VIRTIO_NET_TX_QUEUE, vector: Self.vectors.tx, bufferSize: Self.bufferSize))
        else { return nil }
        (transport, features, rx, tx) = (device.transport, device.features, device.rx, device.tx)
        var mac: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
        if features.contains(VIRTIO_NET_F_MAC) {
            for i in 0..<6 { mac[i] = transport.config8(VIRTIO_NET_CONFIG_MAC_OFFSET + i) }
        }
        self.mac = mac
        self.linkUp = true
        refreshLinkStatus()
        transport.start(receiveQueue: rx)
    }

    /// VIRTIO_NET_S_LINK_UP from the device configuration (5.1.4), when STATUS was negotiated.
    @discardableResult
    func refreshLinkStatus() -> Bool {
        if features.contains(VIRTIO_NET_F_STATUS) {
            linkUp = transport.config16(VIRTIO_NET_CONFIG_STATUS_OFFSET) & VIRTIO_NET_S_LINK_UP != 0
        }
        return linkUp
    }

    /// What the interrupts in `pending` mean for this device (`VirtioTransport.interrupts`).
    func takeInterrupts(_ pending: UInt64) -> DeviceInterrupts {
        transport.interrupts(pending: pending, vectors: Self.vectors, rx: rx, tx: tx)
    }

    /// Whether `pending` may hold this device's RX used-buffer interrupt, without taking it
    /// (an MMIO device's one line also carries TX and configuration reasons): the idle loop's
    /// test of whether a frame woke it (`PollWindow.halted(byWork:)`).
    func mayHaveReceiveInterrupt(_ pending: UInt64) -> Bool {
        switch transport {
        case .pci: return pending & Self.vectors.rx.irqBit != 0
        case .mmio: return pending & Self.vectors.line.irqBit != 0
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

    /// Hands up to `limit` received frames to `deliver`, oldest first. Returns how many used
    /// elements were consumed (runts are consumed, not delivered). The buffers go back to the
    /// device with `repostReceiveBuffers`, which the caller runs after sending the answers:
    /// an echo's TX kick then waits for no RX ring work.
    /// `taken` sees every used element consumed, runts too: its head and the bytes the device
    /// wrote (before any injected fault).
    func receive(limit: Int = Int.max, taken noteTaken: (UInt16, UnsafeRawBufferPointer) -> Void = { _, _ in },
                 _ deliver: (Received) -> Void) -> Int {
        let taken = rx.drain(limit: limit) { head, address, bytes in
            noteTaken(head, bytes)
            guard bytes.count > Self.headerSize else { return }
            // Injected faults act on frames, before the stack sees them.
            if rx.faults.takeDrop() {
                onInjectedDrop(true)
                return
            }
            if rx.faults.takeCorruption(), let base = bytes.baseAddress {
                VirtqueueFaults.corrupt(frame: UnsafeMutableRawBufferPointer(
                    start: UnsafeMutableRawPointer(mutating: base) + Self.headerSize, count: bytes.count - Self.headerSize))
            }
            deliver(Received(head: head, address: address, buffer: bytes))
        }
        return taken
    }

    /// Posts every free receive buffer again and publishes them (nothing when none is free).
    func repostReceiveBuffers() {
        rx.refill()
        rx.publishAndNotify()
    }

    /// Returns completed transmit buffers to the pool (2.7.14); how many.
    @discardableResult
    func reclaimTransmit() -> Int { tx.drain() }

    var canTransmit: Bool { tx.canEnqueue }

    /// TX used-buffer notification suppression (as Linux's virtio-net): completions are
    /// reclaimed on the transmit path, every loop pass, so the TX queue asks the device for no
    /// interrupts (2.7.7, 2.8.10) — one per frame would only wake the CPU from `hlt` for work
    /// the next pass does anyway. The one time the driver must wait for the device is when
    /// frames are `waiting` and no TX buffer or descriptor is free: then it asks for an
    /// interrupt at the next used buffer, and since the device may have used buffers while
    /// interrupts were off without notifying (the classic race), checks the ring once more
    /// after asking. Returns true when that check reclaimed buffers: transmit again now rather
    /// than sleep. Once space is back the next pass turns interrupts off again.
    /// Under `inject net0.tx noirq` the driver asks for interrupts and then ignores them (the
    /// fault is a driver losing the interrupts it asked for, which the detector can see).
    func armTransmitInterrupt(waiting: Bool) -> Bool {
        if tx.faults.noirq {
            if !tx.ring.interruptsEnabled { tx.ring.enableInterrupts() }
            return false
        }
        guard waiting && !canTransmit else {
            tx.ring.disableInterrupts()
            return false
        }
        return tx.ring.enableInterrupts() && reclaimTransmit() > 0
    }

    /// Queues one Ethernet frame (without virtio header) for transmission; not yet published.
    /// `sent` sees the descriptor, the buffer address and the bytes handed to the device.
    func enqueueTransmit(_ frame: [UInt8], _ sent: (UInt16, UInt64, UnsafeRawBufferPointer) -> Void = { _, _, _ in }) -> Bool {
        // Under noirq the driver does not look at the used ring unless asked (`poll`).
        if !canTransmit && !tx.faults.noirq { reclaimTransmit() }
        if tx.faults.takeDrop() {
            onInjectedDrop(false)
            return true   // silently: the stack thinks it went out
        }
        // virtio_net_hdr: all zero = no offloads, GSO_NONE (5.1.6.2); num_buffers is 0 on TX.
        guard let (head, address) = tx.enqueue(zeroHeader: Self.headerSize, frame) else {
            txRingFullDrops &+= 1
            return false
        }
        let length = Self.headerSize + frame.count
        if tx.faults.takeCorruption(), let base = tx.pool.pointer(address) {
            VirtqueueFaults.corrupt(frame: UnsafeMutableRawBufferPointer(start: base + Self.headerSize, count: frame.count))
        }
        sent(head, address, tx.pool.bytes(address, count: length))
        return true
    }

    func flushTransmit() { tx.publishAndNotify() }

    /// Sends what `stack` has queued, as far as the ring takes it: for the boot, before the
    /// main loop (which does the same each pass, with the telemetry's bookkeeping) exists.
    func transmitQueued(from stack: NetStack) {
        while stack.hasPendingTransmit && canTransmit, let frame = stack.nextTransmitFrame() {
            _ = enqueueTransmit(frame)
        }
        flushTransmit()
    }
}
