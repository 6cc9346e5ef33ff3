// Where virtio-mmio devices are: the `virtio_mmio.device=` kernel command-line argument.
//
// MMIO has no bus to enumerate (4.2): the platform must say where each device's register
// window is and which interrupt line it raises. Linux takes that from the command line
// (drivers/virtio/virtio_mmio.c, "virtio_mmio.device=<size>@<baseaddr>:<irq>[:<id>]"), and
// QEMU's microvm machine with acpi=off appends exactly that, e.g.
// `virtio_mmio.device=512@0xfeb00e00:12`, once per device. This parser accepts what Linux
// accepts: <size> through memparse (a C-style number, decimal, 0x hex or 0 octal, with an
// optional K/M/G/T/P/E suffix), <baseaddr> a C-style number without suffix, <irq> a
// non-zero decimal, <id> an optional platform device id. Unlike Linux it refuses numbers that
// overflow 64 bits and windows that wrap the address space. The command line comes from
// outside the kernel: nothing here traps on any input.

/// One `virtio_mmio.device=` argument: a register window and its interrupt line.
public struct VirtioMMIODeviceArgument: Equatable, Sendable {
    /// Physical address of the register window.
    public var base: UInt64
    /// Length of the register window in bytes.
    public var size: UInt64
    /// The interrupt line (GSI) the device raises.
    public var irq: UInt32
    /// Linux's optional platform device id; unused by Ringside, kept so nothing is lost.
    public var platformID: Int32?

    public init(base: UInt64, size: UInt64, irq: UInt32, platformID: Int32? = nil) {
        self.base = base
        self.size = size
        self.irq = irq
        self.platformID = platformID
    }
}

/// Why a `virtio_mmio.device=` value was refused.
public enum VirtioMMIOArgumentError: Error, Equatable, Sendable {
    /// <size> is missing or not a number.
    case badSize
    /// <size> (with its suffix) does not fit in 64 bits.
    case sizeOverflow
    /// <size> is 0.
    case zeroSize
    /// No '@' after <size>.
    case missingBase
    /// <baseaddr> is missing or not a number.
    case badBase
    /// <baseaddr> does not fit in 64 bits.
    case baseOverflow
    /// base + size runs past the end of the 64-bit address space.
    case windowWraps
    /// No ':' after <baseaddr>.
    case missingIRQ
    /// <irq> is missing, not a decimal number, or does not fit in 32 bits.
    case badIRQ
    /// <irq> is 0, which Linux refuses too.
    case zeroIRQ
    /// <id> after the second ':' is not a 32-bit decimal number.
    case badPlatformID
    /// Characters after the last field.
    case trailingCharacters
    /// More devices than `virtioMMIOMaxDevices`.
    case tooManyDevices

    /// A line for the log.
    public var message: String {
        switch self {
        case .badSize: return "size is missing or not a number"
        case .sizeOverflow: return "size does not fit in 64 bits"
        case .zeroSize: return "size is 0"
        case .missingBase: return "no '@<baseaddr>' after the size"
        case .badBase: return "base address is missing or not a number"
        case .baseOverflow: return "base address does not fit in 64 bits"
        case .windowWraps: return "base + size wraps around the address space"
        case .missingIRQ: return "no ':<irq>' after the base address"
        case .badIRQ: return "irq is missing or not a 32-bit decimal number"
        case .zeroIRQ: return "irq 0 is not a device interrupt"
        case .badPlatformID: return "device id after the irq is not a number"
        case .trailingCharacters: return "unexpected characters after the last field"
        case .tooManyDevices: return "more than \(virtioMMIOMaxDevices) virtio-mmio devices"
        }
    }
}

/// The most `virtio_mmio.device=` arguments taken from one command line (QEMU microvm
/// creates at most 24 virtio-mmio windows); more are reported, not stored, so a hostile
/// command line cannot make the kernel allocate without bound.
public let virtioMMIOMaxDevices = 32

/// Every `virtio_mmio.device=` argument of a kernel command line, in order, and the reason
/// for each one refused. Arguments are separated by spaces, tabs or newlines; like Linux,
/// `virtio-mmio.device=` (dash for underscore) is the same parameter.
public func virtioMMIODevices(commandLine: [UInt8])
    -> (devices: [VirtioMMIODeviceArgument], errors: [VirtioMMIOArgumentError])
{
    var devices: [VirtioMMIODeviceArgument] = []
    var errors: [VirtioMMIOArgumentError] = []
    let key = Array("virtio_mmio.device=".utf8)
    var start = 0
    while start < commandLine.count {
        var end = start
        while end < commandLine.count, !isSpace(commandLine[end]) { end += 1 }
        if end - start > key.count, hasKey(commandLine[start..<end], key) {
            let value = commandLine[(start + key.count)..<end]
            if devices.count + errors.count >= virtioMMIOMaxDevices {
                errors.append(.tooManyDevices)
                break
            }
            do {
                devices.append(try parseVirtioMMIODeviceArgument(value))
            } catch {
                errors.append(error)
            }
        }
        start = end + 1
    }
    return (devices, errors)
}

/// Parses the value of one `virtio_mmio.device=` argument: `<size>@<baseaddr>:<irq>[:<id>]`.
public func parseVirtioMMIODeviceArgument(_ text: ArraySlice<UInt8>) throws(VirtioMMIOArgumentError)
    -> VirtioMMIODeviceArgument
{
    var cursor = text.startIndex
    // <size>: memparse.
    var size: UInt64
    switch parseCNumber(text, &cursor) {
    case .none: throw .badSize
    case .overflow: throw .sizeOverflow
    case .value(let value): size = value
    }
    if cursor < text.endIndex, let shift = memparseShift(text[cursor]) {
        guard size <= UInt64.max >> shift else { throw .sizeOverflow }
        size <<= shift
        cursor += 1
    }
    guard size != 0 else { throw .zeroSize }
    // @<baseaddr>
    guard cursor < text.endIndex, text[cursor] == UInt8(ascii: "@") else { throw .missingBase }
    cursor += 1
    let base: UInt64
    switch parseCNumber(text, &cursor) {
    case .none: throw .badBase
    case .overflow: throw .baseOverflow
    case .value(let value): base = value
    }
    guard base <= UInt64.max - (size - 1) else { throw .windowWraps }
    // :<irq>
    guard cursor < text.endIndex, text[cursor] == UInt8(ascii: ":") else { throw .missingIRQ }
    cursor += 1
    guard let irq = parseDecimal(text, &cursor, limit: UInt64(UInt32.max)) else { throw .badIRQ }
    guard irq != 0 else { throw .zeroIRQ }
    // [:<id>]
    var platformID: Int32?
    if cursor < text.endIndex, text[cursor] == UInt8(ascii: ":") {
        cursor += 1
        var negative = false
        if cursor < text.endIndex, text[cursor] == UInt8(ascii: "-") { negative = true; cursor += 1 }
        guard let magnitude = parseDecimal(text, &cursor, limit: negative ? 0x8000_0000 : 0x7fff_ffff) else {
            throw .badPlatformID
        }
        platformID = negative ? Int32(truncatingIfNeeded: 0 &- magnitude) : Int32(magnitude)
    }
    guard cursor == text.endIndex else { throw .trailingCharacters }
    return VirtioMMIODeviceArgument(base: base, size: size, irq: UInt32(irq), platformID: platformID)
}

// MARK: Number parsing

private enum ParsedNumber {
    case none
    case overflow
    case value(UInt64)
}

/// A C-style unsigned number, as strtoull with base 0: "0x"/"0X" then hex digits, "0" then
/// octal digits, else decimal. Advances `cursor` past it.
private func parseCNumber(_ text: ArraySlice<UInt8>, _ cursor: inout Int) -> ParsedNumber {
    var radix: UInt64 = 10
    var position = cursor
    if position < text.endIndex, text[position] == UInt8(ascii: "0") {
        if position + 1 < text.endIndex, text[position + 1] | 0x20 == UInt8(ascii: "x") {
            radix = 16
            position += 2
        } else {
            radix = 8
        }
    }
    var value: UInt64 = 0
    var digits = 0
    while position < text.endIndex, let digit = digitValue(text[position]), digit < radix {
        let (times, overflow1) = value.multipliedReportingOverflow(by: radix)
        let (sum, overflow2) = times.addingReportingOverflow(digit)
        if overflow1 || overflow2 { return .overflow }
        value = sum
        digits += 1
        position += 1
    }
    // "0" alone is an octal zero; "0x" with no hex digit is not a number.
    guard digits > 0 || radix == 8 else { return .none }
    cursor = position
    return .value(value)
}

/// A decimal number no greater than `limit`; nil if there is no digit or it is larger.
private func parseDecimal(_ text: ArraySlice<UInt8>, _ cursor: inout Int, limit: UInt64) -> UInt64? {
    var value: UInt64 = 0
    var position = cursor
    while position < text.endIndex, let digit = digitValue(text[position]), digit < 10 {
        value = value * 10 + digit
        guard value <= limit else { return nil }
        position += 1
    }
    guard position > cursor else { return nil }
    cursor = position
    return value
}

private func digitValue(_ byte: UInt8) -> UInt64? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt64(byte - UInt8(ascii: "0"))
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt64(byte - UInt8(ascii: "a") + 10)
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt64(byte - UInt8(ascii: "A") + 10)
    default: return nil
    }
}

/// memparse's suffixes (lib/cmdline.c): K, M, G, T, P, E, either case, each a factor of 1024.
private func memparseShift(_ byte: UInt8) -> UInt64? {
    switch byte | 0x20 {
    case UInt8(ascii: "k"): return 10
    case UInt8(ascii: "m"): return 20
    case UInt8(ascii: "g"): return 30
    case UInt8(ascii: "t"): return 40
    case UInt8(ascii: "p"): return 50
    case UInt8(ascii: "e"): return 60
    default: return nil
    }
}

private func isSpace(_ byte: UInt8) -> Bool {
    byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") || byte == 0
}

/// Whether `argument` starts with `key`, counting '-' and '_' in the parameter name as the
/// same character (Linux's parameq).
private func hasKey(_ argument: ArraySlice<UInt8>, _ key: [UInt8]) -> Bool {
    var position = argument.startIndex
    for expected in key {
        let byte = argument[position]
        let same = byte == expected || (expected == UInt8(ascii: "_") && byte == UInt8(ascii: "-"))
        guard same else { return false }
        position += 1
    }
    return true
}
