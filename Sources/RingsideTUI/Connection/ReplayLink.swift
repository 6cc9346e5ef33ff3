// A recording (`ringside record`, `run --record`) played back as a link: the recorded bytes go
// through a decoder on a playback clock (pause, ¼× to 16×, seek), so the TUI shows what the
// live one did. Read-only: `send` refuses everything.

import RingsideKit
import Wire

/// What the app asks the replay to do (keys in replay mode, Actions.swift).
public enum ReplayControl: Equatable, Sendable {
    case togglePause
    case faster
    case slower
    /// To the next record that holds an event, a reply, a hello or a command.
    case nextEvent
    /// To a time in seconds from the start of the recording.
    case seek(Double)
}

/// The playback state the header shows.
public struct ReplayStatus: Equatable, Sendable {
    public var name: String
    public var position: Double
    public var duration: Double
    public var speed: Double
    public var paused: Bool
    public var ended: Bool

    public var headerText: String {
        var s = "REPLAY \(name) t=\(fmtSeconds(position))s/\(fmtSeconds(duration))s ×\(speedText(speed))"
        if ended { s += " END" } else if paused { s += " PAUSED" }
        return s
    }
}

func fmtSeconds(_ s: Double) -> String {
    let tenths = (max(0, s) * 10).rounded(.down) / 10
    return String(Int(tenths)) + "." + String(Int((tenths * 10).rounded()) % 10)
}

/// ¼×, ½×, 1× … 16×.
public func speedText(_ s: Double) -> String {
    switch s {
    case 0.25: return "¼"
    case 0.5: return "½"
    default: return String(Int(s))
    }
}

public final class ReplayLink: TUILink {
    public static let speeds: [Double] = [0.25, 0.5, 1, 2, 4, 8, 16]
    public let path: String
    public let name: String
    public let header: RecordingHeader?
    /// Why the file could not be read to its end (damaged or truncated), nil when it could.
    public let stopReason: String?
    let entries: [RecordingEntry]
    public let durationNs: UInt64
    /// The next entry to deliver.
    private var index = 0
    private var decoder = WireFrameDecoder()
    /// The recorded host's command frames (their seqs name the replies).
    private var commandDecoder = WireFrameDecoder()
    /// Playback clock: recording time `anchorNs` at monotonic `anchorReal`.
    private var anchorNs: Double = 0
    private var anchorReal: Double?
    public var speed: Double = 1 {
        didSet { if !Self.speeds.contains(speed) { speed = 1 } }
    }
    public private(set) var paused = false
    /// Set when playback went backwards: the app starts from a fresh screen state.
    public private(set) var needsReset = false
    private var saidStop = false
    /// Notes for the log (seek results, the end).
    private var notes: [String] = []

    public init(reader: RecordingReader, name: String) {
        var r = reader
        var all: [RecordingEntry] = []
        while let e = r.next() { all.append(e) }
        entries = all
        header = r.header
        stopReason = r.stopReason
        durationNs = all.last?.timeNs ?? 0
        path = name
        self.name = name.split(separator: "/").last.map(String.init) ?? name
    }

    public var pollDescriptor: Int32? { nil }

    public func positionNs(now: Double) -> Double {
        guard let anchorReal else { return anchorNs }
        if paused { return anchorNs }
        return min(Double(durationNs), anchorNs + (now - anchorReal) * speed * 1e9)
    }

    public func status(now: Double) -> ReplayStatus {
        let p = positionNs(now: now)
        return ReplayStatus(name: name, position: p / 1e9, duration: Double(durationNs) / 1e9, speed: speed,
                            paused: paused, ended: index >= entries.count && p >= Double(durationNs))
    }

    /// Takes the reset flag (the app rebuilds its state when it was set).
    public func takeReset() -> Bool {
        defer { needsReset = false }
        return needsReset
    }

    public func takeNotes() -> [String] {
        defer { notes = [] }
        return notes
    }

    public func service(now: Double) -> [LinkEvent] {
        if anchorReal == nil { anchorReal = now }
        let position = positionNs(now: now)
        var events: [LinkEvent] = []
        while index < entries.count, Double(entries[index].timeNs) <= position {
            deliver(entries[index], into: &events)
            index += 1
        }
        if index >= entries.count && !saidStop && position >= Double(durationNs) {
            saidStop = true
            notes.append("end of the recording" + (stopReason.map { ": " + $0 } ?? ""))
        }
        return events
    }

    private func deliver(_ e: RecordingEntry, into events: inout [LinkEvent]) {
        switch e.direction {
        case .fromKernel:
            decoder.feed(e.bytes)
            while let r = decoder.next() {
                switch r {
                case .message(let m, let seq): events.append(.message(m, seq: seq))
                case .error(let err): events.append(.decodeError(err.message))
                }
            }
        case .note:
            let text = String(decoding: e.bytes.prefix(200), as: UTF8.self)
            if text.hasPrefix("connected") {
                decoder.reset()
                commandDecoder.reset()
                events.append(.connected)
            } else if text.hasPrefix("disconnected") {
                events.append(.disconnected(reason: "the recorded guest went away"))
            }
        case .toKernel:
            commandDecoder.feed(e.bytes)
            while let r = commandDecoder.next() {
                // The automatic ones (on connect, when a table went stale) are not the user's.
                if case .message(.command(let c), let seq) = r, c != .hello, c != .requestFull {
                    events.append(.sentCommand(c, seq: seq))
                }
            }
        }
    }

    /// Applies a control; returns a line for the log.
    public func control(_ c: ReplayControl, now: Double) -> String {
        let position = positionNs(now: now)
        switch c {
        case .togglePause:
            anchorNs = position
            anchorReal = now
            paused.toggle()
            return paused ? "replay paused at \(fmtSeconds(position / 1e9)) s" : "replay playing ×\(speedText(speed))"
        case .faster, .slower:
            anchorNs = position
            anchorReal = now
            let i = Self.speeds.firstIndex(of: speed) ?? 2
            speed = Self.speeds[c == .faster ? min(i + 1, Self.speeds.count - 1) : max(i - 1, 0)]
            return "replay speed ×\(speedText(speed))"
        case .seek(let seconds):
            let target = min(Double(durationNs), max(0, seconds * 1e9))
            seek(to: target, now: now)
            return "replay at \(fmtSeconds(target / 1e9)) s"
        case .nextEvent:
            var probe = decoder
            var i = index
            while i < entries.count {
                let e = entries[i]
                if e.direction == .toKernel { break }
                if e.direction == .fromKernel {
                    probe.feed(e.bytes)
                    var found = false
                    while let r = probe.next() {
                        if case .message(let m, _) = r, !m.isSnapshot { found = true }
                    }
                    if found { break }
                }
                i += 1
            }
            guard i < entries.count else { return "no event after \(fmtSeconds(position / 1e9)) s" }
            let target = Double(entries[i].timeNs)
            seek(to: max(target, position), now: now)
            return "replay at the next event, \(fmtSeconds(target / 1e9)) s"
        }
    }

    private func seek(to target: Double, now: Double) {
        if target < positionNs(now: now) {
            // Backwards: from the start again, the app from a fresh state.
            index = 0
            decoder = WireFrameDecoder()
            commandDecoder = WireFrameDecoder()
            needsReset = true
        }
        saidStop = false
        anchorNs = target
        anchorReal = now
    }

    public func send(_ command: WireCommand) -> UInt32? { nil }

    public func close() {}
}

extension WireMessage {
    var isSnapshot: Bool {
        if case .snapshot = self { return true }
        return false
    }
}
