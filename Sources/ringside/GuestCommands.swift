// `watch`, `ctl stats` and `ctl dump` on any QEMU guest: QMP for the devices and ring addresses,
// the guest's memory file for the rings and buffers (RingsideKit's GuestSession).

import ArgumentParser
import Foundation
import RingsideKit

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
    var printed = 0
    let period = 1 / rate
    var next = monotonicSeconds()
    var lastNotes: [String] = []
    while true {
        let s = session.sample()
        if s.notes != lastNotes { for n in s.notes where !lastNotes.contains(n) { warn(n) }; lastNotes = s.notes }
        if json {
            guard writeLine(s.json()) else { throw ExitCode.failure }
        } else {
            for line in guestHumanLines(s) { guard writeLine(line) else { throw ExitCode.failure } }
        }
        printed += 1
        if let count, printed >= count { return }
        next += period
        let wait = next - monotonicSeconds()
        if wait > 0 { usleep(UInt32(wait * 1e6)) } else { next = monotonicSeconds() }
    }
}

/// A line per queue: the rings' indices from memory beside the device's from QMP.
func guestHumanLines(_ s: GuestSample) -> [String] {
    var lines = ["# sample \(s.number) source=\(s.source.rawValue)" + (s.notes.isEmpty ? "" : " (" + s.notes.joined(separator: "; ") + ")")]
    for q in s.queues {
        var l = "  " + q.name.escapingTerminalControls().padding(toLength: 14, withPad: " ", startingAt: 0)
        if let r = q.ring {
            if let u = r.unreadable { l += " " + u } else {
                l += " avail.idx=\(r.availIdx) used.idx=\(r.usedIdx)"
                if let e = r.usedEvent { l += " used_event=\(e)" }
                if let e = r.availEvent { l += " avail_event=\(e)" }
                if r.moving { l += " (moving)" }
                if !r.problems.isEmpty && !r.moving { l += " problems=\(r.problems.count)" }
            }
        } else if let e = q.element {
            l += " avail.idx=\(e.availIdx) used.idx=\(e.usedIdx)"
        }
        if let v = q.deviceView {
            l += v.addresses.isSetUp ? " | device last_avail=\(v.lastAvailIdx) used=\(v.usedIdx) inuse=\(v.inuse) size=\(v.addresses.size)" : " | not set up"
        }
        lines.append(l)
    }
    return lines
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
    guard let (device, index) = session.resolve(queue: dump.queue) else {
        throw RingsideError("no queue '\(dump.queue.escapingTerminalControls())' (queues: \(session.queueNames.joined(separator: ", ")))")
    }
    let s = session.sample(forceQMP: true)
    guard let q = s.queues.first(where: { $0.device == device.name && $0.queue == index }), let ring = q.ring else {
        throw RingsideError("\(dump.queue): no ring (QMP did not report its addresses)")
    }
    if let u = ring.unreadable { throw RingsideError("\(q.name): \(u)") }
    let n = ring.addresses.size
    let head: Int
    var usedLength: UInt32?
    var what: String
    if let id = dump.descriptor {
        guard id < n else { throw RingsideError("descriptor \(id) ≥ queue size \(n)") }
        head = id
        // The length the device wrote, if the newest use of this head is still in the used ring.
        for k in 0..<n {
            let e = ring.usedRing[Int(ring.usedIdx &- 1 &- UInt16(k)) & (n - 1)]
            if e.id == UInt32(id) { usedLength = e.len; break }
        }
        what = "descriptor \(id)"
    } else {
        let idx: UInt16
        if dump.next {
            guard let l = ring.driverLastUsed, l != ring.usedIdx else {
                throw RingsideError("\(q.name): no pending used element known (needs EVENT_IDX's used_event)")
            }
            idx = l
        } else {
            guard ring.usedIdx != 0 || ring.usedRing.contains(where: { $0.len != 0 }) else { throw RingsideError("\(q.name): nothing used yet") }
            idx = ring.usedIdx &- 1
        }
        let slot = Int(idx) & (n - 1)
        let e = ring.usedRing[slot]
        guard e.id < UInt32(n) else { throw RingsideError("\(q.name): used slot \(slot) holds id \(e.id) ≥ size \(n) (torn read? try again)") }
        head = Int(e.id)
        usedLength = e.len
        what = "used[\(slot)] (idx \(idx)) → descriptor \(head), len \(e.len)"
    }
    let chain = device.ringReader.walk(head: UInt16(head), table: ring.descriptors, memory: memory)
    guard let bytes = GuestRingReader.buffer(of: chain, usedLength: usedLength, memory: memory) else {
        throw RingsideError("\(q.name) descriptor \(head): buffer outside guest memory")
    }
    let queueName = device.queueNames[index]
    let isNet = device.type == "virtio-net" && queueName != "ctrl"
    let header = isNet ? device.netHeaderBytes : 0
    let frame = Array(bytes.dropFirst(header))
    if dump.raw {
        if isatty(STDOUT_FILENO) != 0 { throw RingsideError("--raw writes binary: redirect standard output to a file or a pipe") }
        guard writeStandardOutput(frame) else { throw RingsideError("cannot write to standard output") }
        return
    }
    if let pcap = dump.pcap {
        try PcapWriter.write(PcapWriter.file(frames: [frame]), to: pcap)
        writeLine("wrote \(pcap): 1 frame, \(frame.count) bytes (\(q.name) \(what))")
        return
    }
    var text = "\(q.name) \(what), chain \(chain.ids.map(String.init).joined(separator: "→"))"
    if chain.indirectAddress != 0 { text += " + indirect table at 0x\(String(chain.indirectAddress, radix: 16)) (\(chain.indirect.count) entries)" }
    text += ", \(bytes.count) bytes"
    if let p = chain.problem { text += " (\(p))" }
    text += "\n" + hexDumpC(bytes)
    if isNet { text += "\n" + FrameDecoder.describe(bytes, virtioHeaderBytes: header).text }
    guard writeText(text) else { throw RingsideError("cannot write to standard output") }
}
