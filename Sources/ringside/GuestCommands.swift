// `watch`, `ctl stats` and `ctl dump` on any QEMU guest: QMP for the devices and ring addresses,
// the guest's memory file for the rings and buffers (RingsideKit's GuestSession).

import ArgumentParser
import Foundation
import RingsideKit
import Wire

/// `--qmp QMP [--memory FILE]`: watch a guest Ringside did not build.
struct GuestTarget: ParsableArguments {
    @Option(help: "QEMU's QMP socket: watch any guest's virtio devices (no telemetry needed).")
    var qmp: String?

    @Option(help: "With --qmp: the guest RAM file (memory-backend-file mem-path, share=on); without it, QMP only.")
    var memory: String?

    func validate(socket: String?) throws {
        if qmp == nil, memory != nil { throw ValidationError("--memory needs --qmp") }
        if qmp != nil, memory == nil, socket != nil, socket!.hasPrefix("/") {
            throw ValidationError("give either SOCKET or --qmp, not both")
        }
    }
}

func openGuest(qmp: String, memory: String?, timeout: Double = 10) throws -> GuestSession {
    do {
        return try GuestSession(qmpPath: qmp, memoryPath: memory, timeout: timeout)
    } catch {
        warn("\(error)")
        throw ExitCode.failure
    }
}

func watchGuest(qmp: String, memory: String?, json: Bool, rate: Double, count: Int?, timeout: Double?) throws {
    let session = try openGuest(qmp: qmp, memory: memory, timeout: timeout ?? 10)
    if memory == nil { warn("no --memory: QMP only (indices, inuse, one element per queue) at \(Int(1 / session.qmpInterval)) Hz") }
    // The plain lines show no chains: the reader still walks and checks every one, without
    // keeping a list of them.
    session.keepsChains = json
    var printed = 0
    let period = 1 / rate
    var next = monotonicSeconds()
    var lastNotes: [String] = []
    var human = GuestHumanLines()
    var encoder = GuestSampleJSON()
    // The lost-notification detector on every sample (the rings' flags and event words from
    // memory, the device's last-avail-idx from QMP): alarms in the JSON, and as lines.
    var detector = NotificationDetector()
    while true {
        let s = session.sample()
        if s.notes != lastNotes { for n in s.notes where !lastNotes.contains(n) { warn(n) }; lastNotes = s.notes }
        let changes = detector.observe(GuestTelemetry.notificationSamples(s), time: s.time)
        // One write per sample. Both texts are safe for a terminal as made: the JSON is ASCII with
        // every control character escaped, and the lines escape each name and note they quote.
        let out = json ? encoder.line(s, notifications: (detector, changes))
                       : Array((human.text(s) + GuestHumanLines.alarmLines(changes, s)).utf8)
        guard writeStandardOutput(out) else { throw ExitCode.failure }
        printed += 1
        if let count, printed >= count { return }
        next += period
        let wait = next - monotonicSeconds()
        if wait > 0 { usleep(UInt32(wait * 1e6)) } else { next = monotonicSeconds() }
    }
}

/// The plain `watch --qmp` output: per sample, a header line and a line per queue with the rings'
/// indices from memory beside the device's from QMP. QMP is polled at a lower rate than memory is
/// read, so the device's part says how old it is (`device 0.32s ago`): never shown as live.
struct GuestHumanLines {
    /// `0.32s`: seconds with two decimals (no Foundation formatting: this runs per queue per sample).
    func secondsText(_ seconds: Double) -> String {
        let cs = Int((max(0, seconds) * 100).rounded())
        let frac = cs % 100
        return String(cs / 100) + (frac < 10 ? ".0" : ".") + String(frac) + "s"
    }

    /// `# KICK LOST? net0.tx: …` for each alarm the sample raised, `# cleared …` for each it cleared.
    static func alarmLines(_ changes: [NotificationChange], _ s: GuestSample) -> String {
        var t = ""
        for change in changes {
            switch change {
            case .raised(let a):
                t += "# \(a.kind.label) \(name(a, s)): \(a.detail)\n"
            case .cleared(let a):
                t += "# cleared \(a.kind.label) \(name(a, s)) after \(formatTenths(a.age)) s: the queue moved\n"
            }
        }
        return t
    }

    static func name(_ a: NotificationAlarm, _ s: GuestSample) -> String {
        (a.queue < s.queues.count ? s.queues[a.queue].name : "?").escapingTerminalControls()
    }

    /// Queue names as printed (escaped, padded), made once per name.
    private var names: [String: String] = [:]

    /// What one queue's line was made from last time, and the text: most queues are idle and the
    /// device's values change at the QMP rate, so only the age is made at every sample.
    private struct LineParts {
        struct RingKey: Equatable {
            var unreadable: String?
            var availIdx: UInt16, usedIdx: UInt16
            var usedEvent: UInt16?, availEvent: UInt16?
            var moving: Bool
            var problems: Int
            var element: GuestQueueElementView?
            /// Packed rings: the event structures' flags and the driver's used position.
            var eventFlags: UInt32 = 0
            var driverLastUsed: UInt16?
        }
        var name: String
        var head: String
        var ring: RingKey?
        var ringText = ""
        var view: GuestQueueDeviceView?
        var viewText = ""
    }
    private var parts: [LineParts] = []

    mutating func text(_ s: GuestSample) -> String {
        var t = "# sample " + String(s.number) + " source=" + s.source.rawValue
        if !s.notes.isEmpty { t += " (" + s.notes.joined(separator: "; ").escapingTerminalControls() + ")" }
        t += "\n"
        var i = 0
        while i < s.queues.count {
            let q = s.queues[i]
            if i == parts.count || parts[i].name != q.name {
                if names[q.name] == nil { names[q.name] = "  " + q.name.escapingTerminalControls().padding(toLength: 14, withPad: " ", startingAt: 0) }
                let p = LineParts(name: q.name, head: names[q.name]!)
                if i == parts.count { parts.append(p) } else { parts[i] = p }
            }
            var key: LineParts.RingKey?
            if let r = q.ring {
                key = LineParts.RingKey(unreadable: r.unreadable, availIdx: r.availIdx, usedIdx: r.usedIdx, usedEvent: r.usedEvent,
                                        availEvent: r.availEvent, moving: r.moving, problems: r.problems.count, element: nil,
                                        eventFlags: UInt32(r.availFlags) << 16 | UInt32(r.usedFlags), driverLastUsed: r.driverLastUsed)
            } else if let e = q.element {
                key = LineParts.RingKey(unreadable: nil, availIdx: e.availIdx, usedIdx: e.usedIdx, usedEvent: nil, availEvent: nil,
                                        moving: false, problems: 0, element: e)
            }
            if key != parts[i].ring || parts[i].ring == nil {
                parts[i].ring = key
                parts[i].ringText = Self.ringText(q)
            }
            if q.deviceView != parts[i].view || (q.deviceView != nil && parts[i].viewText.isEmpty) {
                parts[i].view = q.deviceView
                parts[i].viewText = ""
                if let v = q.deviceView {
                    parts[i].viewText = v.addresses.isSetUp
                        ? " ago last_avail=" + String(v.lastAvailIdx) + " used=" + String(v.usedIdx) + " inuse=" + String(v.inuse)
                            + " size=" + String(v.addresses.size) + "\n"
                        : " | not set up\n"
                }
            }
            t += parts[i].head
            t += parts[i].ringText
            if let v = q.deviceView {
                if v.addresses.isSetUp { t += " | device " + secondsText(s.time - v.time) }
                t += parts[i].viewText
            } else {
                t += "\n"
            }
            i += 1
        }
        return t
    }

    /// The ring's part of a queue's line (from memory, or QMP's element view).
    static func ringText(_ q: GuestQueueSample) -> String {
        var t = ""
        if let r = q.ring {
            if let u = r.unreadable { t += " " + u.escapingTerminalControls() } else if let p = r.packed {
                // A packed ring (virtio 1.2 §2.8): positions as offset/wrap counter, the event structures.
                t += " packed driver=" + p.driver.text + " device=" + p.device.text
                if let u = p.driverUsed { t += " driver_used=" + u.text }
                t += " driver_event=" + p.driverEvent.text + " device_event=" + p.deviceEvent.text
                if r.moving { t += " (moving)" }
                if !r.problems.isEmpty && !r.moving { t += " problems=" + String(r.problems.count) }
            } else {
                t += " avail.idx=" + String(r.availIdx) + " used.idx=" + String(r.usedIdx)
                if let e = r.usedEvent { t += " used_event=" + String(e) }
                if let e = r.availEvent { t += " avail_event=" + String(e) }
                if r.moving { t += " (moving)" }
                if !r.problems.isEmpty && !r.moving { t += " problems=" + String(r.problems.count) }
            }
        } else if let e = q.element {
            t += " avail.idx=" + String(e.availIdx) + " used.idx=" + String(e.usedIdx)
        }
        return t
    }
}

func runGuestAction(_ action: any CtlAction, name: String, qmp: String, memory: String?) throws {
    let timeout = action.common.timeout
    let session = try openGuest(qmp: qmp, memory: memory, timeout: timeout)
    defer { session.close() }
    do {
        switch action {
        case is CtlStats:
            writeLine(session.sample(forceQMP: true).json())
        case let dump as CtlDump:
            try guestDump(dump, session: session)
        default:
            throw RingsideError("\(name) needs the kernel's telemetry: with --qmp only stats and dump work")
        }
    } catch let e as RingsideError {
        warn(e.description)
        throw ExitCode.failure
    }
}

/// The bytes a descriptor's chain holds (with --last: the newest used element's, as long as the
/// device said it wrote), its headers decoded, or the bare frame, or a pcap.
func guestDump(_ dump: CtlDump, session: GuestSession) throws {
    guard let memory = session.memory else { throw RingsideError("dump reads guest memory: give --memory FILE") }
    guard session.resolve(queue: dump.queue) != nil else {
        throw RingsideError("no queue '\(dump.queue.escapingTerminalControls())' (queues: \(session.queueNames.joined(separator: ", ")))")
    }
    let selector: GuestBufferSelector = dump.descriptor.map { .descriptor($0) } ?? (dump.next ? .next : .last)
    // With --wait, the one queue is sampled again and again (a packed ring's record of offers
    // grows with every sample) until the buffer is known or the time is up.
    let deadline = monotonicSeconds() + (dump.wait ?? 0)
    session.queueFilter = [dump.queue]
    var sample = session.sample(forceQMP: true)
    var found: GuestBuffer?
    while found == nil {
        do {
            found = try sample.buffer(queue: dump.queue, selector, memory: memory)
        } catch {
            if monotonicSeconds() >= deadline { throw error }
            usleep(500)
            sample = session.sample()
        }
    }
    guard let b = found else { return }
    let merged = b.mergedBuffers.map { "num_buffers \($0): the frame continues in \($0 - 1) more used element(s) (MRG_RXBUF); this is its first buffer only" }
    if let merged, dump.raw || dump.pcap != nil { warn(merged) }
    if dump.raw {
        if isatty(STDOUT_FILENO) != 0 { throw RingsideError("--raw writes binary: redirect standard output to a file or a pipe") }
        guard writeStandardOutput(b.frame) else { throw RingsideError("cannot write to standard output") }
        return
    }
    if let pcap = dump.pcap {
        try PcapWriter.write(PcapWriter.file(frames: [b.frame]), to: pcap)
        writeLine("wrote \(pcap): 1 frame, \(b.frame.count) bytes (\(dump.queue) \(b.what))")
        return
    }
    // A packed ring's chain is a list of ring slots; a split ring's, of descriptor ids.
    let packed = sample.queue(named: dump.queue)?.ring?.packed != nil
    var text = "\(dump.queue) \(b.what), \(packed ? "slots" : "chain") \(b.chain.ids.map(String.init).joined(separator: "→"))"
    if b.chain.indirectAddress != 0 { text += " + indirect table at 0x\(String(b.chain.indirectAddress, radix: 16)) (\(b.chain.indirect.count) entries)" }
    text += ", \(b.bytes.count) bytes"
    if let p = b.chain.problem { text += " (\(p))" }
    if let merged { text += "\n" + merged }
    text += "\n" + hexDumpC(b.bytes)
    if b.headerBytes > 0 { text += "\n" + FrameDecoder.describe(b.bytes, virtioHeaderBytes: b.headerBytes).text }
    guard writeText(text) else { throw RingsideError("cannot write to standard output") }
}
