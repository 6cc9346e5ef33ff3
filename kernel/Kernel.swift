import Arch

/// Kernel version reported in the boot log (and, later, the telemetry hello).
let kernelVersion = "0.1.0"

/// The entry from boot.S, in long mode on the boot stack, interrupts off.
@_cdecl("kmain")
func kmain(_ startInfo: UInt32) {
    let resetToEntryTSC = Clock.markBoot()
    serial_init()
    arch_init()
    guard boot_memory_init() == 0 else {
        serial_puts("ringside: no usable memory in the PVH memory map; halting\n")
        qemu_debug_exit(0x7e)
        return
    }
    log("ringside kernel \(kernelVersion) booting")
    log("memory: \(boot_ram_bytes() / 1024) KiB RAM, kernel image \(kernel_image_bytes() / 1024) KiB, heap \(heap_bytes_total() / 1024) KiB")
    let apicID = lapic_init()
    Clock.calibrate()
    log("clock: tsc \(Clock.tscHz / 1_000_000) MHz, lapic timer \(Clock.lapicHz / 1000) kHz, apic id \(apicID), firmware+loader \(resetToEntryTSC / (Clock.tscHz / 1000)) ms")
    let commandLine = readCommandLine()
    log("cmdline: \(String(decoding: commandLine, as: UTF8.self))")

    let functions = PCIBus.enumerate()
    guard let netFunction = functions.first(where: {
        $0.vendorID == VIRTIO_PCI_VENDOR_ID && virtioPCIDeviceType(deviceID: $0.deviceID) == VIRTIO_ID_NET
    }) else {
        log("ringside: no virtio-net device found; halting")
        halt()
    }
    guard let net = VirtioNetDriver(function: netFunction, apicID: apicID) else {
        log("ringside: virtio-net initialisation failed; halting")
        halt()
    }
    log("net0: virtio-net at \(netFunction.address.description), features \(hex(net.features.rawValue)), rx queue \(net.rx.ring.size), tx queue \(net.tx.ring.size), link \(net.linkUp ? "up" : "down")")

    var console: VirtioConsoleDriver?
    if let consoleFunction = functions.first(where: {
        $0.vendorID == VIRTIO_PCI_VENDOR_ID && virtioPCIDeviceType(deviceID: $0.deviceID) == VIRTIO_ID_CONSOLE
    }) {
        console = VirtioConsoleDriver(function: consoleFunction, apicID: apicID)
        if let console {
            log("con0: virtio-console at \(consoleFunction.address.description), rx queue \(console.rx.ring.size), tx queue \(console.tx.ring.size)")
        } else {
            log("con0: virtio-console initialisation failed; running without telemetry")
        }
    } else {
        log("con0: no virtio-console; running without telemetry")
    }

    let mac = MACAddress(net.mac[0], net.mac[1], net.mac[2], net.mac[3], net.mac[4], net.mac[5])
    let parsed = NetConfig.parse(commandLine: commandLine, mac: mac)
    for error in parsed.errors { log("cmdline: \(error)") }
    let stack = NetStack(config: parsed.config)
    stack.onDrop = { reason in
        log("net: drop \(reason.name) total=\(stack.counters.totalDrops)")
    }
    log("net0: \(parsed.config.summary)")

    stack.announce()
    let loop = MainLoop(net: net, stack: stack)
    irq_enable()
    log("ringside: ready")
    loop.run()
}

/// The kernel's one thread. Interrupt stubs only set bits in `irq_pending`; everything
/// happens here, then the CPU sleeps in `hlt` until the next interrupt or deadline.
final class MainLoop {
    let net: VirtioNetDriver
    let stack: NetStack
    /// Longest sleep when nothing is scheduled: bounds how stale time-driven work can get.
    static let maxSleepNs: UInt64 = 1_000_000_000

    init(net: VirtioNetDriver, stack: NetStack) {
        self.net = net
        self.stack = stack
    }

    func run() -> Never {
        while true {
            let pending = irq_take_pending()
            if pending & VirtioNetDriver.rxVector.irqBit != 0 { net.rx.ring.noteInterrupt() }
            if pending & VirtioNetDriver.txVector.irqBit != 0 { net.tx.ring.noteInterrupt() }
            if pending & VirtioNetDriver.configVector.irqBit != 0 {
                let wasUp = net.linkUp
                if net.refreshLinkStatus() != wasUp { log("net0: link \(net.linkUp ? "up" : "down")") }
            }

            let now = Clock.nowMs
            let received = net.receive { frame in stack.receive(frame: frame, nowMs: now) }
            stack.poll(nowMs: now)
            transmitPending()

            if received == 0 && irq_pending == 0 {
                sleepUntilNextDeadline(nowMs: now)
            }
        }
    }

    private func transmitPending() {
        net.reclaimTransmit()
        var queued = 0
        while stack.hasPendingTransmit && net.canTransmit, let frame = stack.nextTransmitFrame() {
            if net.enqueueTransmit(frame) { queued += 1 }
        }
        if queued > 0 { net.flushTransmit() }
    }

    private func sleepUntilNextDeadline(nowMs: UInt64) {
        var sleepNs = Self.maxSleepNs
        if let deadline = stack.nextDeadlineMs() {
            sleepNs = deadline > nowMs ? min(sleepNs, (deadline - nowMs) * 1_000_000) : 0
        }
        if sleepNs == 0 { return }
        Clock.wake(afterNs: sleepNs)
        cpu_idle()
    }
}

extension UInt8 {
    /// The bit a vector sets in `irq_pending`.
    var irqBit: UInt64 { self >= 32 && self < 96 ? 1 << UInt64(self - 32) : 0 }
}

func readCommandLine() -> [UInt8] {
    var buffer = [CChar](repeating: 0, count: 1024)
    let length = boot_cmdline(&buffer, buffer.count)
    return buffer[0..<length].map { UInt8(bitPattern: $0) }
}

func halt() -> Never {
    qemu_debug_exit(0x7d)
    while true { cpu_idle() }
}
