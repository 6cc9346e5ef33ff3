// One virtqueue as the status page and /metrics show it, and its Prometheus families.
// Kernel-side: the numbers come from DeviceQueue (HTTPService.status), and the HTTP module
// (Sources/HTTP) knows nothing of virtqueues — it only writes families and samples.

/// One virtqueue as the status page and /metrics show it.
struct HTTPQueueStatus {
    var name: String
    var size: UInt16
    var availIdx: UInt16
    var usedIdx: UInt16
    var lastUsedIdx: UInt16
    var freeDescriptors: UInt16
    var packets: UInt64
    var bytes: UInt64
    var kicks: UInt64
    var interrupts: UInt64
    var drops: UInt64
    /// Publications that needed no kick (the device said so, by flag or `avail_event`).
    var kicksSuppressed: UInt64 = 0
    /// Whether VIRTIO_F_RING_EVENT_IDX governs the queue's notifications.
    var eventIdx = false
    /// Whether the queue is a packed ring (2.8): then the three indices are positions with
    /// their wrap counter in bit 15 (DeviceRing.positions).
    var packed = false
    /// Used elements published without the driver asking for an interrupt for them (see
    /// `VirtqueueCounters.interruptsSuppressed`).
    var interruptsSuppressed: UInt64 = 0
    /// Injected faults' counters: frames dropped, frames corrupted, kicks withheld, interrupts ignored.
    var injectedDrops: UInt64 = 0
    var injectedCorruptions: UInt64 = 0
    var kicksWithheld: UInt64 = 0
    var interruptsIgnored: UInt64 = 0
    /// Injected faults still active: frames still to drop / corrupt, kicks still to withhold,
    /// whether RX buffers are not reposted, whether interrupts are ignored.
    var faultDrop: UInt16 = 0
    var faultCorrupt: UInt16 = 0
    var faultNokick: UInt16 = 0
    var starving = false
    var noirq = false
}

extension HTTPMetricsWriter {
    /// Per-queue families, labelled `queue="net0.rx"`.
    mutating func queues(_ queues: [HTTPQueueStatus]) {
        func perQueue(_ name: StaticString, _ type: StaticString, _ help: StaticString, _ value: (HTTPQueueStatus) -> UInt64) {
            family(name, type, help)
            for queue in queues { sample(name, label: "queue", queue.name, value(queue)) }
        }
        perQueue("ringside_queue_size", "gauge", "Descriptors in the virtqueue.") { UInt64($0.size) }
        perQueue("ringside_queue_packed", "gauge", "1 if the queue is a packed ring (VIRTIO_F_RING_PACKED): then the three index gauges are ring positions with the wrap counter in bit 15.") { $0.packed ? 1 : 0 }
        perQueue("ringside_queue_avail_idx", "gauge", "The driver's avail.idx (wraps at 65536); packed: its next available position.") { UInt64($0.availIdx) }
        perQueue("ringside_queue_used_idx", "gauge", "The device's used.idx (wraps at 65536); packed: its next used position as the ring shows it.") { UInt64($0.usedIdx) }
        perQueue("ringside_queue_last_used_idx", "gauge", "The driver's last seen used index; packed: its next used position.") { UInt64($0.lastUsedIdx) }
        perQueue("ringside_queue_free_descriptors", "gauge", "Descriptors on the free list.") { UInt64($0.freeDescriptors) }
        perQueue("ringside_queue_packets_total", "counter", "Buffers completed by the device.") { $0.packets }
        perQueue("ringside_queue_bytes_total", "counter", "Bytes in completed buffers.") { $0.bytes }
        perQueue("ringside_queue_kicks_total", "counter", "Notifications sent to the device.") { $0.kicks }
        perQueue("ringside_queue_kicks_suppressed_total", "counter", "Publications the device wanted no notification for.") { $0.kicksSuppressed }
        perQueue("ringside_queue_event_idx", "gauge", "1 if VIRTIO_F_RING_EVENT_IDX governs the queue's notifications.") { $0.eventIdx ? 1 : 0 }
        perQueue("ringside_queue_interrupts_total", "counter", "Interrupts taken for the queue.") { $0.interrupts }
        perQueue("ringside_queue_drops_total", "counter", "Packets dropped at the queue.") { $0.drops }
        perQueue("ringside_queue_interrupts_suppressed_total", "counter",
                 "Used elements the device published that the driver had not asked to be interrupted for (with EVENT_IDX: every element but the one at used_event; without: those published while VIRTQ_AVAIL_F_NO_INTERRUPT was set).") { $0.interruptsSuppressed }
        perQueue("ringside_queue_injected_drops_total", "counter", "Frames the driver dropped on purpose (inject Q drop N).") { $0.injectedDrops }
        perQueue("ringside_queue_injected_corruptions_total", "counter", "Frames the driver flipped a byte in on purpose (inject Q corrupt N).") { $0.injectedCorruptions }
        perQueue("ringside_queue_kicks_withheld_total", "counter", "Kicks the device wanted that the driver withheld (inject Q nokick N).") { $0.kicksWithheld }
        perQueue("ringside_queue_interrupts_ignored_total", "counter", "Interrupts the driver ignored (inject Q noirq).") { $0.interruptsIgnored }
        perQueue("ringside_queue_inject_drop_remaining", "gauge", "Frames inject Q drop N will still drop.") { UInt64($0.faultDrop) }
        perQueue("ringside_queue_inject_corrupt_remaining", "gauge", "Frames inject Q corrupt N will still corrupt.") { UInt64($0.faultCorrupt) }
        perQueue("ringside_queue_inject_nokick_remaining", "gauge", "Kicks inject Q nokick N will still withhold.") { UInt64($0.faultNokick) }
        perQueue("ringside_queue_starving", "gauge", "1 while RX buffers are not reposted (inject Q starve).") { $0.starving ? 1 : 0 }
        perQueue("ringside_queue_noirq", "gauge", "1 while the queue's interrupts are ignored (inject Q noirq).") { $0.noirq ? 1 : 0 }
    }
}
