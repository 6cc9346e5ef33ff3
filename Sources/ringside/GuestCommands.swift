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
    guard session.resolve(queue: dump.queue) != nil else {
        throw RingsideError("no queue '\(dump.queue.escapingTerminalControls())' (queues: \(session.queueNames.joined(separator: ", ")))")
    }
    let selector: GuestBufferSelector = dump.descriptor.map { .descriptor($0) } ?? (dump.next ? .next : .last)
    let b = try session.sample(forceQMP: true).buffer(queue: dump.queue, selector, memory: memory)
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
    var text = "\(dump.queue) \(b.what), chain \(b.chain.ids.map(String.init).joined(separator: "→"))"
    if b.chain.indirectAddress != 0 { text += " + indirect table at 0x\(String(b.chain.indirectAddress, radix: 16)) (\(b.chain.indirect.count) entries)" }
    text += ", \(b.bytes.count) bytes"
    if let p = b.chain.problem { text += " (\(p))" }
    text += "\n" + hexDumpC(b.bytes)
    if b.headerBytes > 0 { text += "\n" + FrameDecoder.describe(b.bytes, virtioHeaderBytes: b.headerBytes).text }
    guard writeText(text) else { throw RingsideError("cannot write to standard output") }
}
