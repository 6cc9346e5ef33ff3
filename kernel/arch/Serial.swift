import Arch

/// The boot log: COM1, which QEMU writes to the run directory's serial.log.
enum Serial {
    static func write(_ text: String) {
        for byte in text.utf8 { serial_putc(CChar(bitPattern: byte)) }
    }
}

/// One line on the boot log, stamped with the time since boot: `[    1.234567] text`.
func log(_ text: String) {
    let us = Clock.nowNs / 1000
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
