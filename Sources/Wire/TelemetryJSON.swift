// The JSON form of a snapshot, one object per line, used by `ringside watch --json` and
// `ringside ctl stats`:
//
//   {"seq":…,"uptime_ns":…,"memory":{"heap_total":…,"heap_used":…,"heap_free":…,"net_reserved":…,
//    "net_limit":…},"queues":[{"name":"net0.rx","size":256,"avail_idx":…,"used_idx":…,
//    "last_used_idx":…,"free":…,"paused":false,"counters":{"packets":…,"bytes":…,"drops":…,
//    "kicks":…,"interrupts":…},"descriptors":[{"id":0,"state":"avail","addr":…,"len":…,
//    "flags":…,"next":…},…]},…]}
//
// Written by hand into bytes (no Foundation, so it lives here beside the format). Numbers are
// decimal integers (addr too: u64 values fit jq's integers exactly up to 2^53, and guest
// addresses are far below), indices are raw 16-bit ring values.

//   Since protocol 2 also "devices":[{"name":"net0","type":1,"status":15,"status_names":[…],
//   "offered":…,"offered_names":[…],"accepted":…,"accepted_names":[…]},…] (feature bits by
//   spec name, unknown ones as "bit N"; names from Sources/Virtio/VirtioFeatureNames.swift), and
//   per queue "ring":{"event_idx":false,"avail_flags":…,"avail_flags_names":[…],"used_flags":…,
//   "used_flags_names":[…],"used_event":null,"avail_event":null,"avail":{"start":…,"entries":[
//   {"idx":…,"slot":…,"id":…},…]},"used":{"start":…,"entries":[{"idx":…,"slot":…,"id":…,"len":…},…]}}
//   (used_event/avail_event are numbers only when VIRTIO_F_RING_EVENT_IDX is in use on the queue).
//
//   The lost-notification detector's findings (NotificationDetector.swift): per queue
//   "alarms":[{"alarm":"kick_lost"|"irq_lost"|"starved","label":"KICK LOST?","for_ms":…,
//   "waiting":…,"avail_idx":…,"used_idx":…,"consumed":…,"consumed_source":"used.idx",
//   "event_word":…|null (avail_event or used_event; null without EVENT_IDX),"detail":"…"}] while they are up (empty otherwise), and at the top level
//   "alarm_events":[{"event":"raised"|"cleared","queue":"net0.tx",<the alarm's fields>},…] for
//   what this very snapshot raised or cleared (empty otherwise).

//   Since protocol 3 each queue's "counters" also has "kicks_suppressed", "interrupts_suppressed",
//   "injected_drops", "injected_corruptions", "kicks_withheld", "interrupts_ignored", and each
//   queue has "faults":{"drop":…,"corrupt":…,"nokick":…,"starving":false,"noirq":false} (the
//   faults injected and still active: counts still to go).

//   Since protocol 4 each queue has "format":"split"|"packed". A packed queue's avail_idx,
//   used_idx and last_used_idx are positions (offset | wrap counter << 15, docs/protocol.md §4),
//   and its "ring" is {"format":"packed","event_idx":…,"driver_event":{"flags":…,"flags_name":
//   "ENABLE"|"DISABLE"|"DESC","offset":…,"wrap":0|1},"device_event":{…},"slots":[{"slot":…,
//   "flags":…,"avail":0|1,"used":0|1,"id":…,"len":…},…]} (no split-ring words).

// Host only: the kernel never models its own telemetry, so keep this out of its image.
#if !hasFeature(Embedded)
#if canImport(Virtio)
import Virtio   // SwiftPM; scripts/fuzz-wire.sh compiles the names into the same module
#endif

extension TelemetryModel {
    /// The latest snapshot as one line of JSON (no trailing newline). `queueExtra(position)` may
    /// add members to a queue's object (`"device":{…}` for `watch --qmp`): raw JSON, after
    /// `alarms`.
    public func snapshotJSON(queueExtra: ((Int) -> String?)? = nil) -> String {
        var j = WireJSONWriter()
        j.raw("{\"seq\":"); j.number(UInt64(snapshotSeq ?? 0))
        j.raw(",\"uptime_ns\":"); j.number(uptimeNs)
        j.raw(",\"memory\":{\"heap_total\":"); j.number(memory.heapTotal)
        j.raw(",\"heap_used\":"); j.number(memory.heapUsed)
        j.raw(",\"heap_free\":"); j.number(memory.heapFree)
        j.raw(",\"net_reserved\":"); j.number(memory.netReserved)
        j.raw(",\"net_limit\":"); j.number(memory.netLimit)
        j.raw("}")
        j.raw(",\"devices\":[")
        for (di, d) in (hello?.devices ?? []).enumerated() {
            if di > 0 { j.raw(",") }
            let status = di < deviceStatus.count ? deviceStatus[di] : d.status
            j.raw("{\"name\":"); j.string(d.name)
            j.raw(",\"type\":"); j.number(UInt64(d.deviceType))
            j.raw(",\"status\":"); j.number(UInt64(status))
            j.raw(",\"status_names\":"); j.strings(virtioStatusNames(status))
            j.raw(",\"offered\":"); j.number(d.offeredFeatures)
            j.raw(",\"offered_names\":"); j.strings(virtioFeatureNames(d.offeredFeatures, deviceType: d.deviceType))
            j.raw(",\"accepted\":"); j.number(d.features)
            j.raw(",\"accepted_names\":"); j.strings(virtioFeatureNames(d.features, deviceType: d.deviceType))
            j.raw("}")
        }
        j.raw("]")
        j.raw(",\"alarm_events\":[")
        for (k, change) in notificationChanges.enumerated() {
            if k > 0 { j.raw(",") }
            let (event, alarm): (StaticString, NotificationAlarm)
            switch change {
            case .raised(let a): (event, alarm) = ("raised", a)
            case .cleared(let a): (event, alarm) = ("cleared", a)
            }
            j.raw("{\"event\":\""); j.raw(event)
            j.raw("\",\"queue\":"); j.string(alarm.queue < queues.count ? queues[alarm.queue].info.name : "?")
            j.raw(","); j.alarmFields(alarm)
            j.raw("}")
        }
        j.raw("]")
        j.raw(",\"queues\":[")
        for (qi, q) in queues.enumerated() {
            if qi > 0 { j.raw(",") }
            let s = q.status
            j.raw("{\"name\":"); j.string(q.info.name)
            j.raw(",\"size\":"); j.number(UInt64(q.info.size))
            j.raw(q.info.format == .packed ? ",\"format\":\"packed\"" : ",\"format\":\"split\"")
            j.raw(",\"avail_idx\":"); j.number(UInt64(s?.availIdx ?? 0))
            j.raw(",\"used_idx\":"); j.number(UInt64(s?.usedIdx ?? 0))
            j.raw(",\"last_used_idx\":"); j.number(UInt64(s?.lastUsedIdx ?? 0))
            j.raw(",\"free\":"); j.number(UInt64(s?.freeCount ?? 0))
            j.raw(",\"paused\":"); j.raw(s?.paused == true ? "true" : "false")
            let c = s?.counters ?? WireQueueCounters()
            j.raw(",\"counters\":{\"packets\":"); j.number(c.packets)
            j.raw(",\"bytes\":"); j.number(c.bytes)
            j.raw(",\"drops\":"); j.number(c.drops)
            j.raw(",\"kicks\":"); j.number(c.kicks)
            j.raw(",\"interrupts\":"); j.number(c.interrupts)
            j.raw(",\"kicks_suppressed\":"); j.number(c.kicksSuppressed)
            j.raw(",\"interrupts_suppressed\":"); j.number(c.interruptsSuppressed)
            j.raw(",\"injected_drops\":"); j.number(c.injectedDrops)
            j.raw(",\"injected_corruptions\":"); j.number(c.injectedCorruptions)
            j.raw(",\"kicks_withheld\":"); j.number(c.kicksWithheld)
            j.raw(",\"interrupts_ignored\":"); j.number(c.interruptsIgnored)
            j.raw("}")
            let f = s?.faults ?? .none
            j.raw(",\"faults\":{\"drop\":"); j.number(UInt64(f.drop))
            j.raw(",\"corrupt\":"); j.number(UInt64(f.corrupt))
            j.raw(",\"nokick\":"); j.number(UInt64(f.nokick))
            j.raw(",\"starving\":"); j.raw(f.starving ? "true" : "false")
            j.raw(",\"noirq\":"); j.raw(f.noirq ? "true" : "false")
            j.raw("}")
            if let ring = q.ring {
                if ring.packed { j.packedRing(ring, size: q.info.size) } else { j.ring(ring, size: q.info.size) }
            } else {
                j.raw(",\"ring\":null")
            }
            j.raw(",\"alarms\":[")
            for (k, alarm) in alarms(queue: qi).enumerated() {
                if k > 0 { j.raw(",") }
                j.raw("{"); j.alarmFields(alarm); j.raw("}")
            }
            j.raw("]")
            if let extra = queueExtra?(qi) { j.raw(","); j.raw(extra) }
            j.raw(",\"descriptors\":[")
            for (id, d) in q.descriptors.enumerated() {
                if id > 0 { j.raw(",") }
                j.raw("{\"id\":"); j.number(UInt64(id))
                j.raw(",\"state\":\""); j.raw(d.state.name)
                j.raw("\",\"addr\":"); j.number(d.addr)
                j.raw(",\"len\":"); j.number(UInt64(d.len))
                j.raw(",\"flags\":"); j.number(UInt64(d.flags))
                j.raw(",\"next\":"); j.number(UInt64(d.next))
                j.raw("}")
            }
            j.raw("]}")
        }
        j.raw("]}")
        return j.string
    }
}

extension WireJSONWriter {
    /// `,"ring":{…}` for one queue (see the format at the top of this file).
    mutating func ring(_ r: WireRingView, size: UInt16) {
        let mask = UInt64(max(1, size)) - 1
        raw(",\"ring\":{\"event_idx\":"); raw(r.eventIdx ? "true" : "false")
        raw(",\"avail_flags\":"); number(UInt64(r.availFlags))
        raw(",\"avail_flags_names\":"); strings(ringFlagNames(r.availFlags, known: "VIRTQ_AVAIL_F_NO_INTERRUPT"))
        raw(",\"used_flags\":"); number(UInt64(r.usedFlags))
        raw(",\"used_flags_names\":"); strings(ringFlagNames(r.usedFlags, known: "VIRTQ_USED_F_NO_NOTIFY"))
        raw(",\"used_event\":"); if r.eventIdx { number(UInt64(r.usedEvent)) } else { raw("null") }
        raw(",\"avail_event\":"); if r.eventIdx { number(UInt64(r.availEvent)) } else { raw("null") }
        raw(",\"avail\":{\"start\":"); number(UInt64(r.availStart))
        ringEntries(r.availEntries, start: r.availStart, mask: mask) { json, id in
            json.raw(",\"id\":"); json.number(UInt64(id))
        }
        raw("},\"used\":{\"start\":"); number(UInt64(r.usedStart))
        ringEntries(r.usedEntries, start: r.usedStart, mask: mask) { json, e in
            json.raw(",\"id\":"); json.number(UInt64(e.id))
            json.raw(",\"len\":"); json.number(UInt64(e.len))
        }
        raw("}}")
    }

    /// `,"entries":[{"idx":…,"slot":…` + `fields` + `}, …]`: ring entries numbered from `start`.
    private mutating func ringEntries<Entry>(_ entries: [Entry], start: UInt16, mask: UInt64,
                                             _ fields: (inout WireJSONWriter, Entry) -> Void) {
        raw(",\"entries\":[")
        for (k, entry) in entries.enumerated() {
            if k > 0 { raw(",") }
            let idx = UInt64(start &+ UInt16(truncatingIfNeeded: k))
            raw("{\"idx\":"); number(idx)
            raw(",\"slot\":"); number(idx & mask)
            fields(&self, entry)
            raw("}")
        }
        raw("]")
    }

    /// `,"ring":{…}` for a packed queue (virtio 1.2, 2.8; see the format at the top of this file).
    mutating func packedRing(_ r: WireRingView, size: UInt16) {
        raw(",\"ring\":{\"format\":\"packed\",\"event_idx\":"); raw(r.eventIdx ? "true" : "false")
        raw(",\"driver_event\":"); packedEvent(r.driverEvent)
        raw(",\"device_event\":"); packedEvent(r.deviceEvent)
        raw(",\"slots\":[")
        for k in 0..<min(r.availEntries.count, r.usedEntries.count) {
            if k > 0 { raw(",") }
            let flags = r.availEntries[k]
            raw("{\"slot\":"); number(UInt64((Int(r.availStart) + k) % max(1, Int(size))))
            raw(",\"flags\":"); number(UInt64(flags))
            raw(",\"avail\":"); number(UInt64(flags >> 7 & 1))
            raw(",\"used\":"); number(UInt64(flags >> 15))
            raw(",\"id\":"); number(UInt64(r.usedEntries[k].id))
            raw(",\"len\":"); number(UInt64(r.usedEntries[k].len))
            raw("}")
        }
        raw("]}")
    }

    /// An event suppression structure (2.8.14): its flags by name, and the offset and wrap
    /// counter of desc_event_off_wrap.
    mutating func packedEvent(_ e: (offWrap: UInt16, flags: UInt16)) {
        raw("{\"flags\":"); number(UInt64(e.flags))
        raw(",\"flags_name\":")
        switch e.flags & 0x3 {
        case 0: string("ENABLE")
        case 1: string("DISABLE")
        case 2: string("DESC")
        default: string("reserved")
        }
        raw(",\"offset\":"); number(UInt64(e.offWrap & 0x7FFF))
        raw(",\"wrap\":"); number(UInt64(e.offWrap >> 15))
        raw("}")
    }

    /// An alarm's fields, without braces (see the format at the top of this file).
    mutating func alarmFields(_ a: NotificationAlarm) {
        raw("\"alarm\":"); string(a.kind.key)
        raw(",\"label\":"); string(a.kind.label)
        raw(",\"for_ms\":"); number(UInt64((a.age * 1000).rounded()))
        raw(",\"waiting\":"); number(UInt64(max(0, a.waiting)))
        raw(",\"avail_idx\":"); number(UInt64(a.availIdx))
        raw(",\"used_idx\":"); number(UInt64(a.usedIdx))
        raw(",\"consumed\":"); number(UInt64(a.consumed))
        raw(",\"consumed_source\":"); string(a.consumedSource)
        raw(",\"event_word\":"); if let e = a.eventWord { number(UInt64(e)) } else { raw("null") }
        raw(",\"detail\":"); string(a.detail)
    }

    /// A JSON array of strings.
    mutating func strings(_ list: [String]) {
        raw("[")
        for (i, s) in list.enumerated() {
            if i > 0 { raw(",") }
            string(s)
        }
        raw("]")
    }
}

/// An alarm's fields without braces (the format at the top of this file), for writers of other
/// samples (`watch --qmp --json`). Plain ASCII: labels, numbers and a detail made of them.
public func notificationAlarmFieldsJSON(_ a: NotificationAlarm) -> String {
    var j = WireJSONWriter()
    j.alarmFields(a)
    return j.string
}

/// Names of a ring flags word: bit 0 as `known`, any other set bit as "bit N".
public func ringFlagNames(_ flags: UInt16, known: String) -> [String] {
    var names: [String] = []
    for bit in 0..<16 where flags & (1 << UInt16(bit)) != 0 {
        names.append(bit == 0 ? known : "bit \(bit)")
    }
    return names
}

/// Minimal JSON byte writer.
struct WireJSONWriter: Sendable {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(4096) }

    var string: String { String(decoding: bytes, as: UTF8.self) }

    mutating func raw(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func raw(_ s: String) {
        bytes.append(contentsOf: s.utf8)
    }

    mutating func number(_ value: UInt64) {
        if value == 0 { bytes.append(0x30); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = value
        var count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            while n > 0 {
                d[count] = 0x30 + UInt8(n % 10)
                n /= 10
                count += 1
            }
            while count > 0 {
                count -= 1
                bytes.append(d[count])
            }
        }
    }

    /// A quoted JSON string: `"` and `\` escaped, every terminal control (C0, DEL, C1, bidi
    /// marks: `Unicode.Scalar.isTerminalControl`) as \uXXXX, so no raw control reaches a terminal.
    mutating func string(_ s: String) {
        bytes.append(0x22)
        let hexDigits: StaticString = "0123456789abcdef"
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": bytes.append(0x5C); bytes.append(0x22)
            case "\\": bytes.append(0x5C); bytes.append(0x5C)
            case "\n": bytes.append(0x5C); bytes.append(0x6E)
            case "\r": bytes.append(0x5C); bytes.append(0x72)
            case "\t": bytes.append(0x5C); bytes.append(0x74)
            case _ where scalar.isTerminalControl:
                raw("\\u")
                hexDigits.withUTF8Buffer { h in
                    for shift in stride(from: 12, through: 0, by: -4) {
                        bytes.append(h[Int(scalar.value >> UInt32(shift) & 0xF)])
                    }
                }
            default: UTF8.encode(scalar) { bytes.append($0) }
            }
        }
        bytes.append(0x22)
    }
}

#endif
