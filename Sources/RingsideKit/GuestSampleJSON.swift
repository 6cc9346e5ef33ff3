// `watch --qmp --json`: a guest sample as one JSON line, written by hand instead of through
// Foundation's JSONSerialization (which cost the 60 Hz watcher half a core: a dictionary per
// descriptor, boxed numbers, a sort of every object's keys). The text is what JSONSerialization
// made with `.sortedKeys` (keys in the same sorted order; GuestSampleJSONTests compares the two),
// in plain ASCII: every control character and every non-ASCII character is escaped (\uXXXX), so
// the line is safe on a terminal as it is.
//
// A queue whose sample equals the last one (an idle queue: the ring cache returns the very same
// snapshot) is not encoded again: its bytes are kept from the last line.

/// Encodes samples; keeps the last encoding of each queue and device.
public struct GuestSampleJSON {
    private var queues: [String: (sample: GuestQueueSample, bytes: [UInt8])] = [:]
    private var devices: [String: (info: GuestDeviceInfo, head: [UInt8], tail: [UInt8])] = [:]

    public init() {}

    /// The sample as one JSON object and a newline.
    public mutating func line(_ s: GuestSample) -> [UInt8] {
        var w = JSONWriter()
        w.raw("{\"devices\":[")
        for (i, d) in s.devices.enumerated() {
            if i > 0 { w.byte(0x2C) }
            let parts = deviceParts(d)
            w.bytes(parts.head)
            var first = true
            for q in s.queues where q.device == d.name {
                if !first { w.byte(0x2C) }
                first = false
                w.bytes(queueBytes(q))
            }
            w.bytes(parts.tail)
        }
        w.raw("],\"notes\":")
        w.strings(s.notes)
        w.raw(",\"qmp_age_s\":")
        w.double((s.qmpAge * 1000).rounded() / 1000)
        w.raw(",\"sample\":")
        w.int(s.number)
        w.raw(",\"source\":")
        w.string(s.source.rawValue)
        w.raw("}\n")
        return w.out
    }

    /// A device object up to its queues' array, and from after it.
    private mutating func deviceParts(_ d: GuestDeviceInfo) -> (head: [UInt8], tail: [UInt8]) {
        if let c = devices[d.name], c.info == d { return (c.head, c.tail) }
        var h = JSONWriter()
        h.raw("{\"features\":{\"accepted\":")
        h.strings(d.guestFeatures.names)
        h.raw(",\"accepted_unknown_bits\":")
        h.uint(d.guestFeatures.unknownBits)
        h.raw(",\"offered\":")
        h.strings(d.hostFeatures.names)
        h.raw(",\"offered_unknown_bits\":")
        h.uint(d.hostFeatures.unknownBits)
        h.raw("},\"name\":")
        h.string(d.name)
        h.raw(",\"path\":")
        h.string(d.path)
        h.raw(",\"queues\":[")
        var t = JSONWriter()
        t.raw("],\"status\":")
        t.strings(d.statuses)
        t.raw(",\"type\":")
        t.string(d.type)
        t.byte(0x7D)
        devices[d.name] = (d, h.out, t.out)
        return (h.out, t.out)
    }

    private mutating func queueBytes(_ q: GuestQueueSample) -> [UInt8] {
        if let c = queues[q.name], c.sample == q { return c.bytes }
        var w = JSONWriter()
        Self.queue(q, into: &w)
        queues[q.name] = (q, w.out)
        return w.out
    }

    /// Keys in sorted order: addresses, avail, chains, descriptors, device, driver_last_used,
    /// moving, name, outstanding, problems, queue, size, unreadable, used.
    static func queue(_ q: GuestQueueSample, into w: inout JSONWriter) {
        let ring = q.ring.flatMap { $0.unreadable == nil ? $0 : nil }
        w.byte(0x7B)
        var comma = false
        func key(_ k: StaticString) {
            if comma { w.byte(0x2C) }
            comma = true
            w.byte(0x22); w.raw(k); w.raw("\":")
        }
        let v = q.deviceView
        if let v {
            key("addresses")
            w.raw("{\"avail\":"); w.uint(v.addresses.avail)
            w.raw(",\"desc\":"); w.uint(v.addresses.desc)
            w.raw(",\"used\":"); w.uint(v.addresses.used); w.byte(0x7D)
        }
        if let r = ring {
            key("avail")
            w.raw("{\"flags\":"); w.uint(UInt64(r.availFlags))
            w.raw(",\"idx\":"); w.uint(UInt64(r.availIdx))
            w.raw(",\"ring\":["); w.uints16(r.availRing); w.byte(0x5D)
            if let e = r.usedEvent { w.raw(",\"used_event\":"); w.uint(UInt64(e)) }
            w.byte(0x7D)
            key("chains")
            w.byte(0x5B)
            for (i, c) in r.chains.enumerated() {
                if i > 0 { w.byte(0x2C) }
                w.raw("{\"head\":"); w.uint(UInt64(c.head))
                w.raw(",\"ids\":["); w.uints16(c.ids); w.byte(0x5D)
                if c.indirectAddress != 0 {
                    w.raw(",\"indirect\":[")
                    for (k, e) in c.indirect.enumerated() {
                        if k > 0 { w.byte(0x2C) }
                        w.raw("{\"addr\":"); w.uint(e.addr)
                        w.raw(",\"flags\":"); w.uint(UInt64(e.flags))
                        w.raw(",\"len\":"); w.uint(UInt64(e.len))
                        w.raw(",\"next\":"); w.uint(UInt64(e.next)); w.byte(0x7D)
                    }
                    w.raw("],\"indirect_addr\":"); w.uint(c.indirectAddress)
                }
                if let p = c.problem { w.raw(",\"problem\":"); w.string(p) }
                w.byte(0x7D)
            }
            w.byte(0x5D)
            key("descriptors")
            w.byte(0x5B)
            var i = 0
            while i < r.descriptors.count {
                let d = r.descriptors[i]
                if i > 0 { w.byte(0x2C) }
                w.raw("{\"addr\":"); w.uint(d.addr)
                w.raw(",\"flags\":"); w.uint(UInt64(d.flags))
                w.raw(",\"id\":"); w.uint(UInt64(i))
                w.raw(",\"len\":"); w.uint(UInt64(d.len))
                w.raw(",\"next\":"); w.uint(UInt64(d.next))
                w.raw(",\"state\":\"")
                switch r.states[i] {
                case .free: w.raw("free")
                case .avail: w.raw("avail")
                case .used: w.raw("used")
                case .held: w.raw("held")
                }
                w.raw("\"}")
                i += 1
            }
            w.byte(0x5D)
        } else if let e = q.element {
            key("avail")
            w.raw("{\"flags\":"); w.uint(UInt64(e.availFlags))
            w.raw(",\"idx\":"); w.uint(UInt64(e.availIdx)); w.byte(0x7D)
        }
        if let v {
            key("device")
            w.raw("{\"inuse\":"); w.int(v.inuse)
            w.raw(",\"last_avail_idx\":"); w.uint(UInt64(v.lastAvailIdx))
            w.raw(",\"shadow_avail_idx\":"); w.uint(UInt64(v.shadowAvailIdx))
            w.raw(",\"signalled_used\":"); w.uint(UInt64(v.signalledUsed))
            w.raw(",\"signalled_used_valid\":"); w.raw(v.signalledUsedValid ? "true" : "false")
            w.raw(",\"used_idx\":"); w.uint(UInt64(v.usedIdx)); w.byte(0x7D)
        }
        if let r = ring {
            if let l = r.driverLastUsed { key("driver_last_used"); w.uint(UInt64(l)) }
            key("moving"); w.raw(r.moving ? "true" : "false")
        }
        key("name"); w.string(q.name)
        if let r = ring {
            if let o = r.outstanding { key("outstanding"); w.int(o) }
            key("problems"); w.strings(r.problems)
        }
        key("queue"); w.int(q.queue)
        if let v { key("size"); w.int(v.addresses.size) }
        if let u = q.ring?.unreadable { key("unreadable"); w.string(u) }
        if let r = ring {
            key("used")
            w.raw("{")
            if let e = r.availEvent { w.raw("\"avail_event\":"); w.uint(UInt64(e)); w.byte(0x2C) }
            w.raw("\"flags\":"); w.uint(UInt64(r.usedFlags))
            w.raw(",\"idx\":"); w.uint(UInt64(r.usedIdx))
            w.raw(",\"ring\":[")
            var k = 0
            while k < r.usedRing.count {
                if k > 0 { w.byte(0x2C) }
                w.byte(0x5B); w.uint(UInt64(r.usedRing[k].id)); w.byte(0x2C); w.uint(UInt64(r.usedRing[k].len)); w.byte(0x5D)
                k += 1
            }
            w.raw("]}")
        } else if let e = q.element {
            key("used")
            w.raw("{\"flags\":"); w.uint(UInt64(e.usedFlags))
            w.raw(",\"idx\":"); w.uint(UInt64(e.usedIdx)); w.byte(0x7D)
        }
        w.byte(0x7D)
    }
}

/// JSON text into a byte array.
struct JSONWriter {
    var out: [UInt8] = []

    init() { out.reserveCapacity(4096) }

    mutating func byte(_ b: UInt8) { out.append(b) }

    mutating func bytes(_ b: [UInt8]) { out.append(contentsOf: b) }

    mutating func raw(_ s: StaticString) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    mutating func uint(_ v: UInt64) {
        if v < 10 { out.append(0x30 + UInt8(v)); return }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // room for 20 digits, filled from the end
        var n = 0
        var x = v
        withUnsafeMutableBytes(of: &digits) { d in
            while x > 0 {
                n += 1
                d[24 - n] = 0x30 + UInt8(x % 10)
                x /= 10
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(24 - n)...]))
        }
    }

    mutating func int(_ v: Int) {
        if v < 0 { out.append(0x2D); uint(UInt64(v.magnitude)) } else { uint(UInt64(v)) }
    }

    /// A Double as Swift prints it (the shortest text that reads back the same).
    mutating func double(_ v: Double) {
        guard v.isFinite else { raw("null"); return }
        out.append(contentsOf: Array(v.description.utf8))
    }

    mutating func uints16(_ a: [UInt16]) {
        var i = 0
        while i < a.count {
            if i > 0 { out.append(0x2C) }
            uint(UInt64(a[i]))
            i += 1
        }
    }

    mutating func strings(_ a: [String]) {
        out.append(0x5B)
        for (i, s) in a.enumerated() {
            if i > 0 { out.append(0x2C) }
            string(s)
        }
        out.append(0x5D)
    }

    /// A string, quoted; `"` and `\` escaped, everything outside printable ASCII as \uXXXX
    /// (UTF-16, surrogate pairs above U+FFFF).
    mutating func string(_ s: String) {
        out.append(0x22)
        for u in s.utf16 {
            switch u {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x20..<0x7F: out.append(UInt8(u))
            default:
                out.append(0x5C); out.append(0x75)
                for shift in [12, 8, 4, 0] {
                    let nibble = UInt8((u >> UInt16(shift)) & 0xF)
                    out.append(nibble < 10 ? 0x30 + nibble : 0x61 + nibble - 10)
                }
            }
        }
        out.append(0x22)
    }
}
