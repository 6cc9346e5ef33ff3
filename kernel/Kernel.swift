import Arch

/// Kernel version reported in the boot log and the telemetry hello.
let kernelVersion = "0.1.0"

/// The entry from boot.S, in long mode on the boot stack, interrupts off. The PVH start
/// info boot.S was handed is in `pvh_start_info` (read by boot/BootMemory.swift).
@_cdecl("kmain")
func kmain() {
    let resetToEntryTSC = Clock.markBoot()
    BootTimeline.mark("firmware+loader", tsc: resetToEntryTSC)
    serial_init()
    arch_init()
    BootTimeline.mark("serial+idt")
    if let problem = BootMemory.startHeap() {
        serial_puts("ringside: no usable memory in the PVH memory map (")
        problem.withUTF8Buffer { for byte in $0 { serial_putc(CChar(bitPattern: byte)) } }
        serial_puts("); halting\n")
        qemu_debug_exit(0x7e)
        return
    }
    bootLog("ringside kernel \(kernelVersion) booting")
    bootLog("memory: \(BootMemory.ramBytes / 1024) KiB RAM, kernel image \(BootMemory.imageBytes / 1024) KiB, heap \(heap_bytes_total() / 1024) KiB")
    BootTimeline.mark("memory")
    let apicID = lapic_init()
    let calibrated = Clock.calibrate()
    BootTimeline.mark("calibration")
    if Clock.refinement != nil {
        bootLog("clock: boot estimate: tsc \(calibrated.tscHz / 1_000_000) MHz, lapic timer \(calibrated.lapicHz / 1000) kHz, against \(calibrated.source) over \(calibrated.windowUs) us in \(calibrated.windows) windows (error at most \(calibrated.errorPPM) ppm); the TSC is measured again over \(CalibrationRefinement.spanNs / 1_000_000) ms once ready; apic id \(apicID), firmware+loader \(resetToEntryTSC / (calibrated.tscHz / 1000)) ms")
    } else {
        logClock(calibrated)
    }
    let commandLine = readCommandLine()
    bootLog("cmdline: \(String(decoding: commandLine, as: UTF8.self))")
    if commandLineHasWord(commandLine, "ringside.fault=page") {
        log("self-test: taking a page fault on purpose")
        BootLog.writeAll()
        arch_selftest_fault()
    }

    let devices = findVirtioDevices(commandLine: commandLine)
    BootTimeline.mark("discovery")
    guard let netLocation = devices.net else {
        log("ringside: no virtio-net device found; halting")
        halt()
    }
    let ringFeatures = allowedRingFeatures(commandLine: commandLine)
    guard let net = VirtioNetDriver(location: netLocation, apicID: apicID, ringFeatures: ringFeatures) else {
        log("ringside: virtio-net initialisation failed; halting")
        halt()
    }
    BootTimeline.mark("net0")
    let linkUp = net.linkUp   // as it was now: the line may be written later (BootLog)
    bootLog("net0: virtio-net at \(net.transport.name), features \(hex(net.features.rawValue)), \(net.rx.ring.isPacked ? "packed" : "split") rings, rx queue \(net.rx.ring.size), tx queue \(net.tx.ring.size), link \(linkUp ? "up" : "down")")

    // The stack next, and its announcement sent at once: QEMU's user networking holds a
    // forwarded datagram until it knows our MAC (it reads at most a few more from the host
    // meanwhile), and learns it from this gratuitous ARP, so the first frames can arrive
    // while the rest of the kernel sets up.
    let mac = MACAddress(net.mac[0], net.mac[1], net.mac[2], net.mac[3], net.mac[4], net.mac[5])
    let parsed = NetConfig.parse(commandLine: commandLine, mac: mac)
    for error in parsed.errors { log("cmdline: \(error)") }
    let stack = NetStack(config: parsed.config)
    bootLog("net0: \(parsed.config.summary)")
    stack.announce()
    net.transmitQueued(from: stack)
    BootTimeline.mark("stack")

    var console: VirtioConsoleDriver?
    if let consoleLocation = devices.console {
        console = VirtioConsoleDriver(location: consoleLocation, apicID: apicID, ringFeatures: ringFeatures)
        if let console {
            bootLog("con0: virtio-console at \(console.transport.name), \(console.rx.ring.isPacked ? "packed" : "split") rings, rx queue \(console.rx.ring.size), tx queue \(console.tx.ring.size)")
        } else {
            log("con0: virtio-console initialisation failed; running without telemetry")
        }
    } else {
        log("con0: no virtio-console; running without telemetry")
    }

    BootTimeline.mark("con0")
    // TCP and the HTTP server on port 80 (kernel/net/HTTPService.swift); it lives as long as the stack.
    let http = HTTPService.start(stack: stack, net: net, console: console)
    BootTimeline.mark("http")

    let telemetry = console.map { makeTelemetry(net: net, console: $0, stack: stack) }
    if let offset = commandLineInteger(commandLine, "ringside.test.misreport-used="), offset != 0 {
        // Test only: see Telemetry.misreportUsed.
        log("telemetry: TEST SWITCH: reporting net used_idx off by \(offset)")
        telemetry?.misreportUsed = UInt16(truncatingIfNeeded: offset)
    }
    // Every drop is counted by the stack; the first 20 a second are also logged and sent to
    // the monitor as events (net0.rx: they arrived there).
    let dropLog = DropLog()
    stack.onDrop = { reason in
        if dropLog.note(reason.name, total: stack.counters.totalDrops) {
            telemetry?.noteDrop(on: net.rx, reason: wireDropReason(reason))
        }
    }
    net.onInjectedDrop = { rx in telemetry?.noteDrop(on: rx ? net.rx : net.tx, reason: .injected) }
    BootTimeline.mark("telemetry")
    let loop = MainLoop(net: net, stack: stack, telemetry: telemetry)
    // Polling before halting (MainLoop.pollForWork): `ringside.haltpoll=US`, at most 10 ms; 0 off.
    if let us = commandLineInteger(commandLine, "ringside.haltpoll=") {
        if us >= 0 && us <= 10_000 {
            Clock.pollWindow = PollWindow(maxNs: UInt64(us) * 1000)
        } else {
            log("cmdline: ringside.haltpoll=\(us): not 0-10000 us; keeping \(Clock.pollWindow.maxNs / 1000) us")
        }
    }
    bootLog("idle: poll up to \(Clock.pollWindow.maxNs / 1000) us for work before hlt (adaptive; ringside.haltpoll=US, 0 off)")
    http?.sizeMemory()
    irq_enable()
    BootTimeline.mark("memory budget")
    log("ringside: ready")
    BootLog.writeAfterNs = Clock.nowNs &+ BootLog.holdNs
    bootLog(BootTimeline.summary)
    telemetry?.sendHello()
    loop.run()
}

/// The clock line of the boot log (KernelCalibrationTests read it): the rates in use and how
/// good they are.
func logClock(_ c: Calibration.Result) {
    bootLog("clock: tsc \(c.tscHz / 1_000_000) MHz, lapic timer \(c.lapicHz / 1000) kHz, against \(c.source) over \(c.windowUs) us in \(c.windows) windows (error at most \(c.errorPPM) ppm)")
}

/// Where the virtio-net and virtio-console devices are. When the command line names
/// virtio-mmio windows (`virtio_mmio.device=`, what QEMU microvm appends with acpi=off), they
/// are the devices: each is mapped and probed (4.2.3.1.1) and the first of each DeviceID taken;
/// there is no PCI bus to scan. Otherwise PCI bus 0 is enumerated (the `pc` machine).
func findVirtioDevices(commandLine: [UInt8]) -> (net: VirtioDeviceLocation?, console: VirtioDeviceLocation?) {
    let (arguments, errors) = virtioMMIODevices(commandLine: commandLine)
    for error in errors { log("cmdline: virtio_mmio.device: \(error.message)") }
    if !arguments.isEmpty {
        var net: VirtioDeviceLocation?
        var console: VirtioDeviceLocation?
        for argument in arguments {
            guard let device = probeVirtioMMIO(argument) else { continue }
            bootLog("virtio-mmio: \(device.name) device type \(device.deviceID)")
            switch device.deviceID {
            case VIRTIO_ID_NET where net == nil: net = .mmio(device)
            case VIRTIO_ID_CONSOLE where console == nil: console = .mmio(device)
            default: break
            }
        }
        return (net, console)
    }
    let functions = PCIBus.enumerate()
    return (firstVirtioFunction(ofType: VIRTIO_ID_NET, in: functions).map { .pci($0) },
            firstVirtioFunction(ofType: VIRTIO_ID_CONSOLE, in: functions).map { .pci($0) })
}

/// The first virtio function of device type `type` (VIRTIO_ID_*) on the bus.
func firstVirtioFunction(ofType type: UInt16, in functions: [PCIFunction]) -> PCIFunction? {
    functions.first { $0.vendorID == VIRTIO_PCI_VENDOR_ID && virtioPCIDeviceType(deviceID: $0.deviceID) == type }
}

/// The telemetry channel over `console`, watching the network queues and its own, and
/// reporting the heap and `stack`'s memory budget in every snapshot.
func makeTelemetry(net: VirtioNetDriver, console: VirtioConsoleDriver, stack: NetStack) -> Telemetry {
    let queues = [
        MonitoredQueue(name: "net0.rx", queue: net.rx, pausable: true),
        MonitoredQueue(name: "net0.tx", queue: net.tx, pausable: true),
        MonitoredQueue(name: "con0.rx", queue: console.rx, pausable: false),
        MonitoredQueue(name: "con0.tx", queue: console.tx, pausable: false),
    ]
    let hello = WireHello(
        kernelVersion: kernelVersion, mac: net.mac,
        devices: [WireDeviceInfo(name: "net0", deviceType: VIRTIO_ID_NET, features: net.features.rawValue,
                                 offeredFeatures: net.transport.offeredFeatures.rawValue),
                  WireDeviceInfo(name: "con0", deviceType: VIRTIO_ID_CONSOLE, features: console.features.rawValue,
                                 offeredFeatures: console.transport.offeredFeatures.rawValue)],
        queues: [])   // filled in by Telemetry, which numbers the queues
    // Read at each snapshot: the budget's limit is only sized once HTTP is up (sizeMemory).
    let memory = stack.memory
    let telemetry = Telemetry(console: console, queues: queues, hello: hello, transports: [net.transport, console.transport]) {
        WireMemory(heapTotal: heap_bytes_total(), heapUsed: heap_bytes_used(), heapFree: heap_bytes_free(),
                   netReserved: UInt64(clamping: memory.reservedBytes), netLimit: UInt64(clamping: memory.limitBytes))
    }
    telemetry.linkUp = net.linkUp
    return telemetry
}

extension UInt8 {
    /// The bit a vector sets in `irq_pending` (isr.S): one per vector from IRQ_VECTOR_BASE on.
    var irqBit: UInt64 {
        let bit = Int(self) - Int(IRQ_VECTOR_BASE)
        return bit >= 0 && bit < Int(IRQ_PENDING_VECTORS) ? 1 << UInt64(bit) : 0
    }
}

func readCommandLine() -> [UInt8] {
    let (bytes, problem) = BootMemory.commandLine()
    if let problem { bootLog("cmdline: ignored: \(problem)") }
    return bytes
}

/// Logs dropped packets on the serial console, at most `linesPerSecond` lines a second: a
/// flood of bad packets must not turn into a flood of slow serial output. What is not logged
/// is summed up when logging resumes; the counters themselves are always exact.
final class DropLog {
    static let linesPerSecond = 20
    private var windowStartMs: UInt64 = 0
    private var linesInWindow = 0
    private var suppressed: UInt64 = 0

    /// Returns whether this drop was logged (false: over the rate, only counted).
    @discardableResult
    func note(_ reason: StaticString, total: UInt64) -> Bool {
        let now = Clock.nowMs
        if now &- windowStartMs >= 1000 {
            windowStartMs = now
            linesInWindow = 0
            if suppressed > 0 {
                log("net: \(self.suppressed) more drops not logged")
                suppressed = 0
            }
        }
        guard linesInWindow < Self.linesPerSecond else {
            suppressed &+= 1
            return false
        }
        linesInWindow += 1
        log("net: drop \(reason) total=\(total)")
        return true
    }
}

/// Whether `word` appears as a space-separated word of the command line.
/// The ring features every driver takes when its device offers them, each unless the
/// command line turns it off: VIRTIO_F_RING_EVENT_IDX (`virtio.event_idx=off`: flag-based
/// suppression instead, 2.7.7.1, 2.8.10) and VIRTIO_F_RING_PACKED (`virtio.packed=off`: split
/// rings, 2.7). With both, packed rings use the descriptor event (off_wrap, 2.8.10).
func allowedRingFeatures(commandLine: [UInt8]) -> VirtioFeatures {
    var features = VirtioFeatures()
    if !commandLineHasWord(commandLine, "virtio.event_idx=off") { features.insert(VIRTIO_F_RING_EVENT_IDX) }
    if !commandLineHasWord(commandLine, "virtio.packed=off") { features.insert(VIRTIO_F_RING_PACKED) }
    return features
}

func commandLineHasWord(_ commandLine: [UInt8], _ word: StaticString) -> Bool {
    let wanted = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
    return commandLine.split(separator: UInt8(ascii: " ")).contains { $0.elementsEqual(wanted) }
}

/// The integer after `prefix` in a space-separated word of the command line (`key=-5`), or nil.
func commandLineInteger(_ commandLine: [UInt8], _ prefix: StaticString) -> Int? {
    let wanted = UnsafeBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount)
    for word in commandLine.split(separator: UInt8(ascii: " ")) where word.starts(with: wanted) {
        var digits = word.dropFirst(wanted.count)
        let negative = digits.first == UInt8(ascii: "-")
        if negative { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        let value = digits.reduce(0) { $0 * 10 + Int($1 - 48) }
        return negative ? -value : value
    }
    return nil
}

func halt() -> Never {
    // The clock line still belongs in the log (KernelCalibrationTests boot without devices).
    if Clock.refinement != nil {
        var refined: Calibration.Result?
        let giveUp = rdtsc() &+ Clock.tscHz   // a second: the span is 250 ms
        while refined == nil && Clock.refinement != nil && rdtsc() < giveUp { refined = Clock.finishRefinement() }
        if let refined { logClock(refined) }
    }
    BootLog.writeAll()
    qemu_debug_exit(0x7d)
    while true { cpu_idle() }
}
