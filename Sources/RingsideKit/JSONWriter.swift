// The byte-level JSON writer behind `watch --json`'s lines (GuestSampleJSON, WatchDeviceTruth):
// plain ASCII out, every control and non-ASCII character escaped (\uXXXX).

/// JSON text into a growable buffer written through a pointer (plain pointer writes and
/// memcpy: cheap in debug builds too, where generic Array code is not specialised).
struct JSONWriter: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity = 4096
    /// Whether the current object already has a member (`key` writes the comma).
    var needsComma = false

    init() { base = .allocate(capacity: 4096) }

    deinit { base.deallocate() }

    /// The text so far.
    var out: [UInt8] { [UInt8](UnsafeBufferPointer(start: base, count: count)) }

    private mutating func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        var c = capacity * 2
        while c < count + extra { c *= 2 }
        let b = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        b.update(from: base, count: count)
        base.deallocate()
        base = b
        capacity = c
    }

    mutating func byte(_ b: UInt8) {
        if count == capacity { reserve(1) }
        base[count] = b
        count += 1
    }

    mutating func bytes(_ b: [UInt8]) {
        b.withUnsafeBufferPointer { append($0.baseAddress, $0.count) }
    }

    mutating func raw(_ s: StaticString) { append(s.utf8Start, s.utf8CodeUnitCount) }

    /// `"k":` in an object, after a comma unless it is the object's first member.
    mutating func key(_ k: StaticString) {
        if needsComma { byte(0x2C) }
        needsComma = true
        byte(0x22)
        raw(k)
        byte(0x22)
        byte(0x3A)
    }

    private mutating func append(_ p: UnsafePointer<UInt8>?, _ n: Int) {
        guard let p, n > 0 else { return }
        reserve(n)
        (base + count).update(from: p, count: n)
        count += n
    }

    mutating func uint(_ v: UInt64) {
        var digits = 1
        var x = v / 10
        while x > 0 { digits += 1; x /= 10 }
        reserve(digits)
        let end = base + count + digits
        x = v
        var k = 1
        while k <= digits {
            end[-k] = 0x30 + UInt8(truncatingIfNeeded: x % 10)
            x /= 10
            k += 1
        }
        count += digits
    }

    mutating func int(_ v: Int) {
        if v < 0 { byte(0x2D); uint(UInt64(v.magnitude)) } else { uint(UInt64(v)) }
    }

    /// A Double as Swift prints it (the shortest text that reads back the same).
    mutating func double(_ v: Double) {
        guard v.isFinite else { raw("null"); return }
        bytes(Array(v.description.utf8))
    }

    mutating func uints16(_ a: [UInt16]) {
        var i = 0
        while i < a.count {
            if i > 0 { byte(0x2C) }
            uint(UInt64(a[i]))
            i += 1
        }
    }

    mutating func strings(_ a: [String]) {
        byte(0x5B)
        var i = 0
        while i < a.count {
            if i > 0 { byte(0x2C) }
            string(a[i])
            i += 1
        }
        byte(0x5D)
    }

    /// A string, quoted; `"` and `\` escaped, everything outside printable ASCII as \uXXXX
    /// (UTF-16, surrogate pairs above U+FFFF).
    mutating func string(_ s: String) {
        byte(0x22)
        for u in s.utf16 {
            switch u {
            case 0x22: byte(0x5C); byte(0x22)
            case 0x5C: byte(0x5C); byte(0x5C)
            case 0x20..<0x7F: byte(UInt8(u))
            default:
                byte(0x5C); byte(0x75)
                var shift: UInt16 = 12
                while true {
                    let nibble = UInt8((u >> shift) & 0xF)
                    byte(nibble < 10 ? 0x30 + nibble : 0x61 + nibble - 10)
                    if shift == 0 { break }
                    shift -= 4
                }
            }
        }
        byte(0x22)
    }
}
