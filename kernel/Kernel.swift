import Arch

/// Kernel version reported in the boot log (and, later, the telemetry hello).
let kernelVersion = "0.1.0"

/// The entry from boot.S, in long mode on the boot stack, interrupts off.
@_cdecl("kmain")
func kmain(_ startInfo: UInt32) {
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
    log("clock: tsc \(Clock.tscHz / 1_000_000) MHz, lapic timer \(Clock.lapicHz / 1000) kHz, apic id \(apicID)")
    var cmdline = [CChar](repeating: 0, count: 512)
    let length = boot_cmdline(&cmdline, cmdline.count)
    let cmdBytes = cmdline[0..<length].map { UInt8(bitPattern: $0) }
    log("cmdline: \(String(decoding: cmdBytes, as: UTF8.self))")
    irq_enable()
    log("ringside: ready")
    while true {
        Clock.wake(afterNs: 1_000_000_000)
        cpu_idle()
        _ = irq_take_pending()
    }
}
