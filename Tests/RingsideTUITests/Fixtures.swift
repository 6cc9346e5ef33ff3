import Foundation
@testable import RingsideTUI
import Wire

/// The kernel's memory as a 32 MiB guest reports it: "heap 1.7/30.5M".
let sampleMemory = WireMemory(heapTotal: 31_936_512, heapUsed: 1_763_008, heapFree: 30_158_848, netReserved: 0, netLimit: 25_178_112)

/// A state as the TUI holds it after a hello and one full snapshot of four queues.
func sampleState(rxPaused: Bool = false, rxPending: UInt16 = 0, now: Double = 100, accel: String = "tcg",
                 rateHz: UInt16 = 10, droppedFrames: UInt64 = 0, memory: WireMemory = sampleMemory) -> TUIState {
    var state = TUIState(title: "Ringside", accel: accel)
    state.startedAt = 90
    state.now = now
    let queues = [
        WireQueueInfo(queue: 0, name: "net0.rx", size: 256),
        WireQueueInfo(queue: 1, name: "net0.tx", size: 256),
        WireQueueInfo(queue: 2, name: "con0.rx", size: 64),
        WireQueueInfo(queue: 3, name: "con0.tx", size: 64),
    ]
    let hello = WireHello(kernelVersion: "ringside 0.1.0", mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
                          devices: [WireDeviceInfo(name: "net0", deviceType: 1, features: 1 << 32),
                                    WireDeviceInfo(name: "con0", deviceType: 3, features: 1 << 32)],
                          queues: queues)
    state.apply(.connected)
    state.apply(.message(.hello(hello), seq: 1))
    var snaps: [WireQueueSnapshot] = []
    for q in queues {
        let n = Int(q.size)
        var table: [WireDescriptor] = []
        for i in 0..<n {
            let st: WireDescriptorState = q.name.hasSuffix("rx") ? (i < Int(rxPending) && q.queue == 0 ? .used : .avail) : .free
            table.append(WireDescriptor(state: st, addr: 0x14a000 + UInt64(i) * 0x800, len: 2048,
                                        flags: q.name.hasSuffix("rx") ? 2 : 0, next: 0))
        }
        let rx = q.name.hasSuffix("rx")
        let status = WireQueueStatus(queue: q.queue, availIdx: rx ? q.size &+ rxPending : 0, usedIdx: q.queue == 0 ? rxPending : 0,
                                     lastUsedIdx: 0, freeCount: rx ? 0 : q.size, pendingUsed: q.queue == 0 ? rxPending : 0,
                                     paused: q.queue == 0 && rxPaused,
                                     counters: WireQueueCounters(packets: 10, bytes: 1000, drops: 0, kicks: 3, interrupts: 4))
        snaps.append(WireQueueSnapshot(status: status, descriptors: .full(table)))
    }
    state.apply(.message(.snapshot(WireSnapshot(snapshotNumber: 1, uptimeNs: 83_000_000_000, rateHz: rateHz,
                                                    droppedFrames: droppedFrames, memory: memory, queues: snaps)), seq: 2))
    return state
}

/// A UDP frame as the kernel's RX buffer holds it: virtio-net header (12), Ethernet, IPv4, UDP.
func sampleFrame(payload: [UInt8]) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 12)
    b += [0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0a, 0, 2, 2, 0x08, 0x00]
    let total = 20 + 8 + payload.count
    b += [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 2, 2, 10, 0, 2, 15]
    b += [0x92, 0xc7, 0, 7, UInt8((8 + payload.count) >> 8), UInt8((8 + payload.count) & 0xff), 0, 0]
    return b + payload
}
