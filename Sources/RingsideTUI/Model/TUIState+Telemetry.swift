// The kernel's telemetry applied to the TUI state: link events (a replay's recorded commands
// among them), hello and snapshots, events and command replies (dumps among them), each logged
// as it happens.

import RingsideKit
import Wire

extension TUIState {
    /// Applies one link event. The hello on connect, and the hello or full tables the model asks
    /// for when it falls out of step, are the connection's business (TelemetryConnection sends
    /// them), so nothing here is sent back.
    public mutating func apply(_ event: LinkEvent) {
        switch event {
        case .connected:
            link = .connected
            addLog(.info, "connected")
            awaiting.removeAll()
        case .disconnected(let reason):
            link = .reconnecting(reason: reason)
            addLog(.error, "disconnected: \(reason)")
            awaiting.removeAll()
            awaitingDumps.removeAll()
            pendingRateHz = nil
        case .decodeError(let message):
            live.decoderErrors += 1
            addLog(.error, "telemetry: \(message)")
        case .message(let message, let seq):
            apply(message, seq: seq)
        case .sentCommand(let command, let seq):
            let label = commandLabel(command)
            noteSent(command, seq: seq, label: label)
            addLog(.command, "→ \(label) (recorded)")
        }
    }

    /// A command in the words of the `:` command line.
    func commandLabel(_ command: WireCommand) -> String {
        switch command {
        case .hello: return "hello"
        case .pause(let q): return "pause \(queueName(q))"
        case .resume(let q): return "resume \(queueName(q))"
        case .step(let q, let n): return "step \(queueName(q)) \(n)"
        case .dump(let q, .next): return "dump \(queueName(q)) next"
        case .dump(let q, .last): return "dump \(queueName(q)) last"
        case .dump(let q, .descriptor(let id)): return "dump \(queueName(q)) desc \(id)"
        case .setSnapshotRate(let hz): return "rate \(hz) Hz"
        case .resetCounters: return "reset"
        case .requestFull: return "full tables"
        case .stats: return "stats"
        case .inject(let q, let fault): return "inject \(queueName(q)) \(fault)"
        case .kick(let q): return "kick \(queueName(q))"
        case .poll(let q): return "poll \(queueName(q))"
        case .capture(let on): return "capture \(on ? "on" : "off")"
        }
    }

    mutating func apply(_ message: WireMessage, seq: UInt32) {
        let hadHello = live.model.hello != nil
        _ = live.model.apply(message, seq: seq)
        switch message {
        case .hello(let h):
            if !hadHello {
                // net0.rx is selected at start.
                selectedQueue = live.model.position(ofQueueNamed: "net0.rx") ?? 0
            }
            live.activity = [:]
            live.kernelClock = KernelClock(hello: h, receivedAt: wallClock())
            addLog(.event, "hello: \(h.kernelVersion), \(h.queues.count) queues")
        case .snapshot(let s):
            live.lastSnapshotAt = now
            live.kernelClock?.observe(uptimeNs: s.uptimeNs, receivedAt: wallClock())
            noteDriverViews(uptimeNs: s.uptimeNs)
            if pendingRateHz == s.rateHz { pendingRateHz = nil }
            let uptime = Double(s.uptimeNs) / 1e9
            for q in s.queues {
                live.activity[q.status.queue, default: QueueActivity()].note(q.status, uptime: uptime, now: now)
            }
            logNotificationChanges()
        case .event(let e):
            logEvent(e)
        case .reply(let r):
            handleReply(r)
        case .command, .capturedFrame:
            break   // capture mode's frames are `ringside capture`'s business
        }
        if selectedQueue >= live.model.queues.count { selectedQueue = 0 }
    }

    /// The lost-notification detector's verdicts on this snapshot, with the numbers behind them.
    mutating func logNotificationChanges() {
        for change in live.model.notificationChanges {
            switch change {
            case .raised(let a):
                addLog(.error, "\(queueNameAt(a.queue)) \(a.kind.label) \(a.detail)")
            case .cleared(let a):
                addLog(.event, "\(queueNameAt(a.queue)) \(a.kind.label) cleared after \(formatTenths(a.age)) s: the queue moved")
            }
        }
    }

    func queueNameAt(_ position: Int) -> String {
        position < live.model.queues.count ? live.model.queues[position].info.name : "queue \(position)"
    }

    mutating func logEvent(_ e: WireEvent) {
        switch e.kind {
        case .paused(let q): addLog(.event, "\(queueName(q)) paused")
        case .resumed(let q): addLog(.event, "\(queueName(q)) resumed")
        case .stepped(let q, let n): addLog(.event, "\(queueName(q)) stepped \(n)")
        case .drop(let q, let reason): addLog(.event, "\(queueName(q)) drop: \(reason.name)")
        case .countersReset: addLog(.event, "counters reset")
        case .link(let up):
            live.linkUp = up
            addLog(.event, "link \(up ? "up" : "down")")
        case let .usedBatch(q, first, elements):
            let format = live.model.position(ofQueue: q).map { live.model.queues[$0].info.format } ?? .split
            addLog(.event, usedBatchLogText(queue: queueName(q), firstUsedIdx: first, elements: elements, format: format))
        case .usedConsumed, .kick, .interrupt, .captureCounts:
            break   // many per packet: the counters and rates show them
        }
    }

    /// The app sent `command` as frame `seq`: remember what to call its reply, and for a dump
    /// which buffer was asked for; for a rate, that it is pending.
    public mutating func noteSent(_ command: WireCommand, seq: UInt32, label: String) {
        awaiting[seq] = label
        switch command {
        case .dump(_, let selector): awaitingDumps[seq] = selector
        case .setSnapshotRate(let hz):
            pendingRateHz = hz
            pendingRateSeq = seq
        default: break
        }
    }

    /// Who owned the dumped buffer: `next` picks a used element or a held-back one, `last` is
    /// the kernel's copy; a descriptor by id is whatever the latest table says it is.
    func ownership(of d: WireDump, selector: WireDumpSelector?) -> DumpOwnership {
        switch selector {
        case .next?, .last?: return .driver
        case .descriptor?, nil: break
        }
        guard let p = live.model.position(ofQueue: d.queue) else { return .unknown }
        let q = live.model.queues[p]
        guard !q.isStale, q.descriptors.indices.contains(Int(d.descriptor)) else { return .unknown }
        let desc = q.descriptors[Int(d.descriptor)]
        switch desc.state {
        case .used, .held: return .driver
        case .avail: return desc.flags & 2 != 0 ? .deviceWrites : .deviceReads
        case .free: return .unknown
        }
    }

    mutating func handleReply(_ r: WireReply) {
        let what = awaiting.removeValue(forKey: r.commandSeq)
        let selector = awaitingDumps.removeValue(forKey: r.commandSeq)
        guard let what else { return }   // someone else's command (ringside ctl), or an automatic one
        if r.status.isOK {
            if case .dump(let d) = r.body {
                let name = queueName(d.queue)
                var record = DumpRecord(dump: d, queueName: name, selector: what, wallTime: wallClock())
                record.ownership = ownership(of: d, selector: selector)
                record.arrivalWallTime = live.kernelClock?.wallTime(uptimeNs: d.stampNs)
                if let status = live.model.position(ofQueue: d.queue).flatMap({ live.model.queues[$0].status }) {
                    record.availIdx = status.availIdx
                    record.usedIdx = status.usedIdx
                }
                dumps.append(record)
                if dumps.count > 256 { dumps.removeFirst() }
                shownDump = dumps.count - 1
                panes.top[.dump] = nil
                addLog(.reply, "\(what): \(d.bytes.count) bytes of \(name) desc \(d.descriptor) @0x\(hexDigits(d.guestAddress, width: 1))"
                       + (record.ownership == .deviceWrites ? " (device-owned: stale)" : record.ownership == .unknown ? " (owner unknown)" : ""))
            } else {
                addLog(.reply, "\(what): ok\(r.message.isEmpty ? "" : " (\(r.message))")")
            }
        } else {
            if r.commandSeq == pendingRateSeq { pendingRateHz = nil }
            addLog(.error, "\(what): " + (r.message.isEmpty ? replyStatusText(r.status) : r.message))
        }
    }
}

/// A failed reply's status in words, for when the kernel sent no message.
func replyStatusText(_ status: WireReplyStatus) -> String {
    switch status {
    case .unknownQueue: return "no such queue"
    case .descriptorOutOfRange: return "descriptor out of range"
    case .notOwned: return "not a buffer this queue can show"
    case .nothingPending: return "nothing pending"
    case .badCommand: return "refused (malformed command)"
    case .unsupported: return "not supported by this kernel"
    default: return "failed (status \(status.rawValue))"
    }
}
