// `ringside capture --qmp QMP --memory FILE`: the kernel capture's file, from any QEMU guest's
// memory (RingsideKit's GuestCapture samples the rings; GuestSession reads them).

import ArgumentParser
import Foundation
import RingsideKit

extension Capture {
    func captureGuest(qmp: String, memory memoryPath: String, filter frameFilter: CaptureFilter) throws {
        let session = try openGuest(qmp: qmp, memory: memoryPath)
        defer { session.close() }
        guard let memory = session.memory else { throw RingsideError("\(memoryPath): guest memory not mapped") }
        let network = session.devices.filter { $0.type == "virtio-net" }.flatMap { d in
            d.queueNames.filter { GuestCapture.direction(queueName: $0) != nil }.map { "\(d.name).\($0)" }
        }
        var selected: [String] = []
        for name in queues {
            guard network.contains(name) else {
                throw RingsideError("no network queue \"\(name.escapingTerminalControls())\" (network queues: \(network.joined(separator: ", ")))")
            }
            if !selected.contains(name) { selected.append(name) }
        }
        if selected.isEmpty { selected = network }
        guard !selected.isEmpty else { throw RingsideError("the guest has no virtio-net queue to capture") }
        // Packed rings (VIRTIO_F_RING_PACKED accepted) are not read as split ones: skipped, or
        // refused when nothing else is left. (A driver that negotiates them later: see `take`.)
        let packed = Set(session.devices.filter { $0.type == "virtio-net" && $0.packedRings }.flatMap { d in
            d.queueNames.map { "\(d.name).\($0)" }
        })
        let skipped = selected.filter(packed.contains)
        if !skipped.isEmpty {
            let why = "\(skipped.joined(separator: ", ")): packed ring\(skipped.count > 1 ? "s" : "") (VIRTIO_F_RING_PACKED); "
                + "capture --memory reads split rings only"
            selected.removeAll(where: packed.contains)
            guard !selected.isEmpty else { throw RingsideError(why + ": nothing to capture") }
            warn(why + ": skipped")
        }
        // Only the network queues are queried and read (all of them: a copy that shares memory with
        // another queue's buffer is not trusted, GuestCapture); their chains are kept (an RX buffer
        // is read through the chain the device held at the previous sample).
        session.queueFilter = Set(network)
        session.keepsChains = true

        let file = try PcapngFile(path: output)
        var interface: [String: UInt32] = [:]
        for q in selected { interface[q] = file.writer.addInterface(name: q) }
        try file.flush()
        let capture = GuestCapture(queues: network)
        let startNs = wallClockNanoseconds()
        warn("capturing \(selected.joined(separator: ", ")) from \(memoryPath) at \(rate.formatted()) Hz to \(output)"
             + (filter.map { " (filter: \($0))" } ?? "") + " (Ctrl-C to stop)")

        var written: [String: UInt64] = [:]
        var packedWarned: Set<String> = []
        var total = 0
        var lastNotes: [String] = []
        let period = 1 / rate
        var next = monotonicSeconds()
        func take(final: Bool = false) {
            let s = session.sample()
            if s.notes != lastNotes { for n in s.notes where !lastNotes.contains(n) { warn(n) }; lastNotes = s.notes }
            let now = wallClockNanoseconds()
            let frames = capture.observe(s, memory: memory, final: final)
            for q in capture.packedQueues where selected.contains(q) && !packedWarned.contains(q) {
                packedWarned.insert(q)
                warn("\(q): now a packed ring (VIRTIO_F_RING_PACKED): not captured from here on (capture --memory reads split rings only)")
            }
            for f in frames {
                guard let id = interface[f.queue], count.map({ total < $0 }) ?? true, frameFilter.matches(f.frame) else { continue }
                file.writer.addPacket(interface: id, timestampNs: now, data: f.frame, originalLength: max(f.originalLength, f.frame.count),
                                      comment: pcapngFrameComment(descriptor: f.head, availIdx: f.availIdx, usedIdx: f.usedIdx,
                                                                  header: f.header, number: f.number))
                written[f.queue, default: 0] += 1
                total += 1
            }
        }
        while receivedStopSignal.load(ordering: .relaxed) == 0 {
            take()
            try file.flush()
            if let count, total >= count { break }
            next += period
            let wait = next - monotonicSeconds()
            if wait > 0 { usleep(UInt32(min(wait, 1) * 1e6)) } else { next = monotonicSeconds() }
        }
        if count.map({ total < $0 }) ?? true { take(final: true) }   // what went through since the last sample
        let endNs = wallClockNanoseconds()
        var lines: [String] = []
        for q in selected {
            guard let id = interface[q] else { continue }
            let c = capture.counts(q), w = written[q, default: 0]
            var line = "\(q): \(w) frames written, \(c.missed) missed"
            if c.missed > 0 { line += " (\(c.missedReasons))" }
            if filter != nil { line += " (\(c.captured) copied, \(c.captured - w) filtered out)" }
            if packedWarned.contains(q) { line += " (skipped while a packed ring: frames then are not counted)" }
            if c.restarts > 0 { line += " (the rings were reset \(c.restarts) time(s): frames during a reset are not counted)" }
            lines.append(line)
            file.writer.addStatistics(interface: id, timestampNs: endNs, startNs: startNs, received: c.frames, dropped: c.missed,
                                      filterAccepted: w, comment: "ringside capture: " + line)
        }
        try file.flush()
        for line in lines { writeLine(line) }
    }

    private func wallClockNanoseconds() -> UInt64 { UInt64(max(0, wallClockSeconds() * 1e9)) }
}
