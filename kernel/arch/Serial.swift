import Arch

/// The boot log: COM1, which QEMU writes to the run directory's serial.log.
enum Serial {
    static func write(_ text: String) {
        for byte in text.utf8 { serial_putc(CChar(bitPattern: byte)) }
    }
}

/// One line on the boot log, stamped with the time since boot: `[    1.234567] text`. While
/// booting (`BootLog.deferring`) the line is kept and written once the kernel serves.
func log(_ text: String) {
    if BootLog.deferring {
        BootLog.pending.append((rdtsc(), { text }))
        return
    }
    writeLine(stampNs: Clock.nowNs, text)
}

/// A line logged on the boot path: while booting, only noted (the TSC, and how to say it) and
/// formatted when the main loop writes it (`BootLog`): formatting runs Swift's String code, which
/// TCG translates on its first use (~4–7 ms of the boot here), and every byte on the emulated
/// UART is an exit into QEMU. The stamp is the event's time. What a deferred line says must not
/// change before it is written: callers pass values fixed by then (copied into locals if need be).
func bootLog(_ text: @autoclosure @escaping () -> String) {
    if BootLog.deferring {
        BootLog.pending.append((rdtsc(), text))
        return
    }
    writeLine(stampNs: Clock.nowNs, text())
}

/// The lines logged while booting, written once the kernel serves (the main loop, one per idle
/// pass; everything at once before a halt or a fatal error).
enum BootLog {
    nonisolated(unsafe) static var deferring = true
    /// When the main loop may start writing (ns since boot): the first line formatted costs
    /// ~10–20 ms of TCG translation, which a packet arriving meanwhile would wait for. So the
    /// log waits until the first frame has been answered (`frameHandled`) or this deadline
    /// (kmain: ready + `holdNs`), whichever comes first.
    nonisolated(unsafe) static var writeAfterNs: UInt64 = 0
    nonisolated(unsafe) static var frameHandled = false
    static let holdNs: UInt64 = 250_000_000

    /// Whether the main loop should write a line now rather than sleep.
    static func due(nowNs: UInt64) -> Bool { deferring && (frameHandled || nowNs >= writeAfterNs) }
    nonisolated(unsafe) static var pending: [(tsc: UInt64, text: () -> String)] = []
    nonisolated(unsafe) private static var written = 0

    /// Writes the next pending line; false when there was none (and logging is direct from now on).
    static func writeNext() -> Bool {
        guard deferring else { return false }
        guard written < pending.count else {
            deferring = false
            pending = []
            return false
        }
        let (tsc, text) = pending[written]
        written += 1
        writeLine(stampNs: Clock.nanoseconds(sinceBootTSC: tsc), text())
        return true
    }

    static func writeAll() { while writeNext() {} }
}

/// Before Embedded Swift's fatal-error message (libc.c's putchar): what was logged comes first.
@_cdecl("boot_log_write_all")
func bootLogWriteAll() {
    guard BootLog.deferring else { return }
    BootLog.writeAll()
}

private func writeLine(stampNs: UInt64, _ text: String) {
    let us = stampNs / 1000
    let fraction = String(us % 1_000_000)
    let seconds = String(us / 1_000_000)
    Serial.write("[" + String(repeating: " ", count: max(0, 5 - seconds.utf8.count)) + seconds + "."
                 + String(repeating: "0", count: 6 - fraction.utf8.count) + fraction + "] ")
    Serial.write(text)
    serial_putc(10)
}

/// Formats `value` as hexadecimal with at least `digits` digits.
func hex<T: BinaryInteger>(_ value: T, digits: Int = 0) -> String {
    let text = String(value, radix: 16)
    let pad = digits - text.utf8.count
    return pad > 0 ? String(repeating: "0", count: pad) + text : text
}
