// `watch --qmp --json`: a guest sample as one JSON line, written by hand instead of through
// Foundation's JSONSerialization (which cost the 60 Hz watcher half a core: a dictionary per
// descriptor, boxed numbers, a sort of every object's keys). The text is what JSONSerialization
// made with `.sortedKeys` (keys in the same sorted order; GuestSampleJSONTests compares the two),
// in plain ASCII: every control character and every non-ASCII character is escaped (\uXXXX), so
// the line is safe on a terminal as it is.
//
// A queue whose sample equals the last one (an idle queue: the ring cache returns the very same
// snapshot) is not encoded again: its bytes are kept from the last line.

import Wire

/// Encodes samples; keeps the last encoding of each queue and device.
public struct GuestSampleJSON {
    private var queues: [String: (sample: GuestQueueSample, bytes: [UInt8])] = [:]
    private var devices: [String: (info: GuestDeviceInfo, head: [UInt8], tail: [UInt8])] = [:]

    public init() {}

    /// The sample as one JSON object and a newline. With the detector that has just observed
    /// it (`watch`), also `alarm_events` (what this sample raised or cleared) and `alarms` (what
    /// is up), in the form of `watch SOCKET --json` (Sources/Wire/TelemetryJSON.swift).
    public mutating func line(_ s: GuestSample, notifications: (detector: NotificationDetector, changes: [NotificationChange])? = nil) -> [UInt8] {
        var w = JSONWriter()
        w.raw("{")
        if let n = notifications {
            func alarm(_ a: NotificationAlarm, event: String?) {
                w.raw("{")
                if let event { w.raw("\"event\":"); w.string(event); w.raw(",") }
                w.raw("\"queue\":")
                w.string(a.queue < s.queues.count ? s.queues[a.queue].name : "?")
                w.raw(",")
                w.bytes(Array(notificationAlarmFieldsJSON(a).utf8))
                w.raw("}")
            }
            w.raw("\"alarm_events\":[")
            for (k, change) in n.changes.enumerated() {
                if k > 0 { w.byte(0x2C) }
                switch change {
                case .raised(let a): alarm(a, event: "raised")
                case .cleared(let a): alarm(a, event: "cleared")
                }
            }
            w.raw("],\"alarms\":[")
            for (k, a) in n.detector.activeAlarms.enumerated() {
                if k > 0 { w.byte(0x2C) }
                alarm(a, event: nil)
            }
            w.raw("],")
        }
        w.raw("\"devices\":[")
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
        let parts = (head: h.out, tail: t.out)
        devices[d.name] = (d, parts.head, parts.tail)
        return parts
    }

    private mutating func queueBytes(_ q: GuestQueueSample) -> [UInt8] {
        if let c = queues[q.name], c.sample == q { return c.bytes }
        var w = JSONWriter()
        Self.queue(q, into: &w)
        let bytes = w.out
        queues[q.name] = (q, bytes)
        return bytes
    }

    /// Keys in sorted order: addresses, avail, chains, descriptors, device, driver_last_used,
    /// format, moving, name, outstanding, packed, problems, queue, size, unreadable, used. A
    /// packed ring has no avail or used (its split words do not exist), chains in its own form
    /// (by buffer id and ring slots), and a packed object.
    static func queue(_ q: GuestQueueSample, into w: inout JSONWriter) {
        let ring = q.ring.flatMap { $0.unreadable == nil ? $0 : nil }
        w.byte(0x7B)
        w.needsComma = false
        let v = q.deviceView
        if let v {
            w.key("addresses")
            w.raw("{\"avail\":"); w.uint(v.addresses.avail)
            w.raw(",\"desc\":"); w.uint(v.addresses.desc)
            w.raw(",\"used\":"); w.uint(v.addresses.used); w.byte(0x7D)
        }
        if let r = ring, r.packed != nil {
            chains(r, packed: true, into: &w)
            descriptors(r, into: &w)
        } else if let r = ring {
            w.key("avail")
            w.raw("{\"flags\":"); w.uint(UInt64(r.availFlags))
            w.raw(",\"idx\":"); w.uint(UInt64(r.availIdx))
            w.raw(",\"ring\":["); w.uints16(r.availRing); w.byte(0x5D)
            if let e = r.usedEvent { w.raw(",\"used_event\":"); w.uint(UInt64(e)) }
            w.byte(0x7D)
            chains(r, packed: false, into: &w)
            descriptors(r, into: &w)
        } else if let e = q.element {
            w.key("avail")
            w.raw("{\"flags\":"); w.uint(UInt64(e.availFlags))
            w.raw(",\"idx\":"); w.uint(UInt64(e.availIdx)); w.byte(0x7D)
        }
        if let v {
            w.key("device")
            w.raw("{\"inuse\":"); w.int(v.inuse)
            w.raw(",\"last_avail_idx\":"); w.uint(UInt64(v.lastAvailIdx))
            w.raw(",\"shadow_avail_idx\":"); w.uint(UInt64(v.shadowAvailIdx))
            w.raw(",\"signalled_used\":"); w.uint(UInt64(v.signalledUsed))
            w.raw(",\"signalled_used_valid\":"); w.raw(v.signalledUsedValid ? "true" : "false")
            w.raw(",\"used_idx\":"); w.uint(UInt64(v.usedIdx)); w.byte(0x7D)
        }
        if let r = ring {
            if let l = r.driverLastUsed { w.key("driver_last_used"); w.uint(UInt64(l)) }
            w.key("format"); w.raw(r.packed != nil ? "\"packed\"" : "\"split\"")
            w.key("moving"); w.raw(r.moving ? "true" : "false")
        }
        w.key("name"); w.string(q.name)
        if let r = ring {
            if let o = r.outstanding { w.key("outstanding"); w.int(o) }
            if let p = r.packed { packed(p, into: &w) }
            w.key("problems"); w.strings(r.problems)
        }
        w.key("queue"); w.int(q.queue)
        if let v { w.key("size"); w.int(v.addresses.size) }
        if let u = q.ring?.unreadable { w.key("unreadable"); w.string(u) }
        if let r = ring, r.packed == nil {
            w.key("used")
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
        } else if ring == nil, let e = q.element {
            w.key("used")
            w.raw("{\"flags\":"); w.uint(UInt64(e.usedFlags))
            w.raw(",\"idx\":"); w.uint(UInt64(e.usedIdx)); w.byte(0x7D)
        }
        w.byte(0x7D)
    }

    /// `"descriptors":[…]`: the descriptor table (split) or each buffer id (packed), with states.
    static func descriptors(_ r: GuestRingSnapshot, into w: inout JSONWriter) {
            w.key("descriptors")
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
    }

    /// `"chains":[…]`: each buffer's `head` and descriptor `ids` (split), or its buffer `id` and
    /// ring `slots` (packed); an indirect table's entries (`addr`, `flags`, `len`, and `next` in a
    /// split table: a packed one has no links) and address; why a walk stopped (`problem`).
    static func chains(_ r: GuestRingSnapshot, packed: Bool, into w: inout JSONWriter) {
        w.key("chains")
        w.byte(0x5B)
        for (i, c) in r.chains.enumerated() {
            if i > 0 { w.byte(0x2C) }
            w.raw(packed ? "{\"id\":" : "{\"head\":"); w.uint(UInt64(c.head))
            if !packed { w.raw(",\"ids\":["); w.uints16(c.ids); w.byte(0x5D) }
            if c.indirectAddress != 0 {
                w.raw(",\"indirect\":[")
                for (k, e) in c.indirect.enumerated() {
                    if k > 0 { w.byte(0x2C) }
                    w.raw("{\"addr\":"); w.uint(e.addr)
                    w.raw(",\"flags\":"); w.uint(UInt64(e.flags))
                    w.raw(",\"len\":"); w.uint(UInt64(e.len))
                    if !packed { w.raw(",\"next\":"); w.uint(UInt64(e.next)) }
                    w.byte(0x7D)
                }
                w.raw("],\"indirect_addr\":"); w.uint(c.indirectAddress)
            }
            if let p = c.problem { w.raw(",\"problem\":"); w.string(p) }
            if packed { w.raw(",\"slots\":["); w.uints16(c.ids); w.byte(0x5D) }
            w.byte(0x7D)
        }
        w.byte(0x5D)
    }

    /// `"packed":{…}`: a packed ring's positions (offset, wrap counter), its two event
    /// suppression structures (as `watch SOCKET --json` writes them, TelemetryJSON.swift) and
    /// every slot with its state. Keys sorted.
    static func packed(_ p: GuestPackedRing, into w: inout JSONWriter) {
        func position(_ x: GuestPackedPosition) {
            w.raw("{\"offset\":"); w.uint(UInt64(x.offset)); w.raw(",\"wrap\":"); w.raw(x.wrap ? "1}" : "0}")
        }
        func event(_ e: GuestPackedEvent) {
            w.raw("{\"flags\":"); w.uint(UInt64(e.flags))
            w.raw(",\"flags_name\":"); w.string(e.flagsName)
            w.raw(",\"offset\":"); w.uint(UInt64(e.offWrap & 0x7FFF))
            w.raw(",\"wrap\":"); w.uint(UInt64(e.offWrap >> 15)); w.byte(0x7D)
        }
        w.key("packed")
        w.raw("{\"device\":"); position(p.device)
        w.raw(",\"device_event\":"); event(p.deviceEvent)
        w.raw(",\"driver\":"); position(p.driver)
        w.raw(",\"driver_event\":"); event(p.driverEvent)
        if let u = p.driverUsed { w.raw(",\"driver_used\":"); position(u) }
        w.raw(",\"slots\":[")
        var k = 0
        while k < p.slots.count {
            let s = p.slots[k]
            if k > 0 { w.byte(0x2C) }
            w.raw("{\"addr\":"); w.uint(s.addr)
            w.raw(",\"avail\":"); w.raw(s.availBit ? "1" : "0")
            w.raw(",\"flags\":"); w.uint(UInt64(s.flags))
            w.raw(",\"id\":"); w.uint(UInt64(s.id))
            w.raw(",\"len\":"); w.uint(UInt64(s.len))
            w.raw(",\"slot\":"); w.uint(UInt64(k))
            w.raw(",\"state\":"); w.string(k < p.slotStates.count ? p.slotStates[k].name : "free")
            w.raw(",\"used\":"); w.raw(s.usedBit ? "1}" : "0}")
            k += 1
        }
        w.raw("]}")
    }
}
