// The DEVICE side of a virtio-mmio register window (virtio 1.2, 4.2.2), written from the
// spec's register table on its own: every offset below is a literal from the table, not the
// Virtio module's VIRTIO_MMIO_* constants, so a wrong offset in the driver shows up as a
// disagreement here.
//
// It keeps the state the table describes: feature windows behind their Sel registers,
// per-queue size/addresses/ready behind QueueSel, InterruptStatus cleared by InterruptACK,
// Status with reset on 0 and a device that clears FEATURES_OK when it dislikes the features,
// and a configuration space with ConfigGeneration. It records every access and flags the
// ones the spec forbids (4.2.2.2: control registers only with aligned 32-bit accesses).

import Virtio

final class SimulatedMMIODevice: MMIORegisters, @unchecked Sendable {
    struct Queue: Equatable {
        var numMax: UInt32
        var num: UInt32 = 0
        var ready: UInt32 = 0
        var descLow: UInt32 = 0, descHigh: UInt32 = 0
        var driverLow: UInt32 = 0, driverHigh: UInt32 = 0
        var deviceLow: UInt32 = 0, deviceHigh: UInt32 = 0

        var desc: UInt64 { UInt64(descHigh) << 32 | UInt64(descLow) }
        var driver: UInt64 { UInt64(driverHigh) << 32 | UInt64(driverLow) }
        var device: UInt64 { UInt64(deviceHigh) << 32 | UInt64(deviceLow) }
    }

    enum Access: Equatable {
        case read(offset: Int, width: Int)
        case write(offset: Int, value: UInt32)
    }

    // Identity.
    var magic: UInt32 = 0x7472_6976
    var version: UInt32 = 2
    var deviceID: UInt32 = 1
    var vendorID: UInt32 = 0x554d_4551 // "QEMU", as QEMU reports it

    // Features (2.2).
    var offeredFeatures: UInt64 = 0
    private(set) var deviceFeaturesSel: UInt32 = 0
    private(set) var driverFeaturesSel: UInt32 = 0
    /// What the driver wrote into each window; windows never written stay nil.
    private(set) var driverFeatureWindows: [UInt32: UInt32] = [:]
    var driverFeatures: UInt64 {
        UInt64(driverFeatureWindows[1] ?? 0) << 32 | UInt64(driverFeatureWindows[0] ?? 0)
    }
    /// When true the device refuses any feature set: it will not let FEATURES_OK stick.
    var refuseFeatures = false

    // Status (2.1).
    private(set) var status: UInt32 = 0
    private(set) var resets = 0

    // Queues.
    var queues: [Queue]
    private(set) var queueSel: UInt32 = 0
    private(set) var notifications: [UInt32] = []

    // Interrupts.
    var interruptStatus: UInt32 = 0

    // Configuration space (starts at 0x100) and its generation counter (2.5.1).
    var config: [UInt8]
    var configGeneration: UInt32 = 0
    /// Called before each configuration-space read: lets a test change the configuration
    /// mid-read, as a device may at any time.
    var beforeConfigRead: ((SimulatedMMIODevice, Int) -> Void)?

    private(set) var accesses: [Access] = []
    /// Accesses the spec forbids, in words.
    private(set) var violations: [String] = []

    init(queueNumMax: [UInt32] = [256, 256], config: [UInt8] = Array(repeating: 0, count: 16)) {
        self.queues = queueNumMax.map { Queue(numMax: $0) }
        self.config = config
    }

    /// The device changes its configuration: byte `offset` becomes `value`, generation moves on.
    func changeConfig(at offset: Int, to value: UInt8) {
        config[offset] = value
        configGeneration &+= 1
    }

    private var selectedQueue: Queue? {
        Int(queueSel) < queues.count ? queues[Int(queueSel)] : nil
    }

    private func updateSelectedQueue(_ change: (inout Queue) -> Void) {
        guard Int(queueSel) < queues.count else { return }
        // 4.2.2.2: the queue's size and addresses may not change while it is ready.
        let wasReady = queues[Int(queueSel)].ready != 0
        var queue = queues[Int(queueSel)]
        change(&queue)
        if wasReady && queue.ready != 0 && queue != queues[Int(queueSel)] {
            violations.append("queue \(queueSel) reconfigured while ready")
        }
        queues[Int(queueSel)] = queue
    }

    private func reset() {
        resets += 1
        status = 0
        deviceFeaturesSel = 0
        driverFeaturesSel = 0
        driverFeatureWindows = [:]
        interruptStatus = 0
        for i in queues.indices { queues[i] = Queue(numMax: queues[i].numMax) }
    }

    // MARK: MMIORegisters

    func read32(_ offset: Int) -> UInt32 {
        accesses.append(.read(offset: offset, width: 4))
        if offset >= 0x100 { return readConfig(offset, width: 4) }
        guard offset % 4 == 0 else {
            violations.append("unaligned 32-bit read at 0x\(String(offset, radix: 16))")
            return 0
        }
        switch offset {
        case 0x000: return magic
        case 0x004: return version
        case 0x008: return deviceID
        case 0x00c: return vendorID
        case 0x010:
            switch deviceFeaturesSel {
            case 0: return UInt32(truncatingIfNeeded: offeredFeatures)
            case 1: return UInt32(truncatingIfNeeded: offeredFeatures >> 32)
            default: return 0
            }
        case 0x034: return selectedQueue?.numMax ?? 0
        case 0x044: return selectedQueue?.ready ?? 0
        case 0x060: return interruptStatus
        case 0x070: return status
        case 0x0fc: return configGeneration
        default:
            violations.append("read of write-only or reserved register 0x\(String(offset, radix: 16))")
            return 0
        }
    }

    func write32(_ offset: Int, _ value: UInt32) {
        accesses.append(.write(offset: offset, value: value))
        guard offset < 0x100, offset % 4 == 0 else {
            violations.append("write at 0x\(String(offset, radix: 16)) (unaligned, or configuration space)")
            return
        }
        switch offset {
        case 0x014: deviceFeaturesSel = value
        case 0x020:
            if status & 8 != 0 { violations.append("DriverFeatures written after FEATURES_OK") }
            driverFeatureWindows[driverFeaturesSel] = value
        case 0x024: driverFeaturesSel = value
        case 0x030: queueSel = value
        case 0x038: updateSelectedQueue { $0.num = value }
        case 0x044: updateSelectedQueue { $0.ready = value & 1 }
        case 0x050: notifications.append(value)
        case 0x064: interruptStatus &= ~value
        case 0x070:
            if value == 0 { reset(); return }
            // FEATURES_OK sticks only if the driver accepted a subset of what was offered (3.1.1 step 5-6).
            var newStatus = value
            if value & 8 != 0 && status & 8 == 0 {
                if refuseFeatures || driverFeatures & ~offeredFeatures != 0 { newStatus &= ~8 }
            }
            status = newStatus
        case 0x080: updateSelectedQueue { $0.descLow = value }
        case 0x084: updateSelectedQueue { $0.descHigh = value }
        case 0x090: updateSelectedQueue { $0.driverLow = value }
        case 0x094: updateSelectedQueue { $0.driverHigh = value }
        case 0x0a0: updateSelectedQueue { $0.deviceLow = value }
        case 0x0a4: updateSelectedQueue { $0.deviceHigh = value }
        default: violations.append("write of read-only or reserved register 0x\(String(offset, radix: 16))")
        }
    }

    func read16(_ offset: Int) -> UInt16 {
        accesses.append(.read(offset: offset, width: 2))
        guard offset >= 0x100 else {
            violations.append("16-bit read of control register 0x\(String(offset, radix: 16))")
            return 0
        }
        return UInt16(truncatingIfNeeded: readConfig(offset, width: 2))
    }

    func read8(_ offset: Int) -> UInt8 {
        accesses.append(.read(offset: offset, width: 1))
        guard offset >= 0x100 else {
            violations.append("8-bit read of control register 0x\(String(offset, radix: 16))")
            return 0
        }
        return UInt8(truncatingIfNeeded: readConfig(offset, width: 1))
    }

    /// Little-endian read of `width` configuration bytes at register offset `offset`.
    private func readConfig(_ offset: Int, width: Int) -> UInt32 {
        let start = offset - 0x100
        beforeConfigRead?(self, start)
        guard start % width == 0 else {
            violations.append("unaligned \(width * 8)-bit configuration read at \(start)")
            return 0
        }
        guard start + width <= config.count else {
            violations.append("configuration read past the end at \(start)")
            return 0
        }
        var value: UInt32 = 0
        for i in 0..<width { value |= UInt32(config[start + i]) << (8 * UInt32(i)) }
        return value
    }
}
