// The control command language, written once: `ringside ctl SOCKET inject|kick|poll …` and the
// TUI's `:` command line both parse with `parseControlCommand` (docs/user-guide.md).

import Wire

/// Why a typed command was refused.
public struct CommandError: Error, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// The verbs of the command language, for usage and error texts.
public let controlCommandVerbs = ["stats", "hello", "pause", "resume", "step", "dump", "rate", "reset", "inject", "kick", "poll", "capture"]

/// The faults `inject Q FAULT` takes, as typed.
public let controlFaultUsage = "drop N | corrupt N | nokick N | starve | unstarve | noirq | clear"

/// Parses the command language: `stats`, `hello`, `pause Q`, `resume Q`, `step Q [N]`,
/// `dump Q --next|--last|--desc ID`, `rate HZ`, `reset`, `inject Q drop|corrupt|nokick N`,
/// `inject Q starve|unstarve|noirq|clear`, `kick Q`, `poll Q`, `capture on|off`. Q is a queue name (`net0.rx`)
/// or index; words are separated by spaces; verbs and fault names are case-insensitive.
public func parseControlCommand(_ text: String, queues: [WireQueueInfo]) -> Result<WireCommand, CommandError> {
    let words = text.split(separator: " ").map(String.init)
    guard let verb = words.first?.lowercased() else { return .failure(CommandError("empty command")) }
    func queue(_ i: Int) -> Result<UInt8, CommandError> {
        guard words.count > i else { return .failure(CommandError("\(verb) needs a queue (\(queues.map { $0.name }.joined(separator: ", ")))")) }
        let w = words[i]
        if let q = queues.first(where: { $0.name == w }) { return .success(q.queue) }
        if let n = UInt8(w) { return .success(n) }
        return .failure(CommandError("no queue \"\(w)\" (have \(queues.map { $0.name }.joined(separator: ", ")))"))
    }
    /// A queue and nothing after it.
    func onlyQueue(_ make: @escaping (UInt8) -> WireCommand) -> Result<WireCommand, CommandError> {
        queue(1).flatMap { q in
            words.count == 2 ? .success(make(q)) : .failure(CommandError("usage: \(verb) Q"))
        }
    }
    switch verb {
    case "stats": return words.count == 1 ? .success(.stats) : .failure(CommandError("stats takes no arguments"))
    case "hello": return .success(.hello)
    case "reset": return .success(.resetCounters)
    case "pause": return queue(1).map { .pause(queue: $0) }
    case "resume": return queue(1).map { .resume(queue: $0) }
    case "step":
        return queue(1).flatMap { q in
            guard words.count <= 3 else { return .failure(CommandError("usage: step Q [N]")) }
            guard words.count == 3 else { return .success(.step(queue: q, count: 1)) }
            guard let n = UInt16(words[2]), n > 0 else { return .failure(CommandError("step count must be 1…65535, not \(words[2])")) }
            return .success(.step(queue: q, count: n))
        }
    case "dump":
        return queue(1).flatMap { q in
            let rest = Array(words.dropFirst(2))
            switch rest.first {
            case "--next"?, nil: return .success(.dump(queue: q, selector: .next))
            case "--last"?: return .success(.dump(queue: q, selector: .last))
            case "--desc"?:
                guard rest.count == 2, let id = UInt16(rest[1]) else { return .failure(CommandError("usage: dump Q --desc ID")) }
                return .success(.dump(queue: q, selector: .descriptor(id)))
            default: return .failure(CommandError("usage: dump Q --next|--last|--desc ID"))
            }
        }
    case "rate":
        guard words.count == 2, let hz = UInt16(words[1]) else { return .failure(CommandError("usage: rate HZ")) }
        return .success(.setSnapshotRate(hz: hz))
    case "inject":
        return queue(1).flatMap { q in parseFault(Array(words.dropFirst(2))).map { .inject(queue: q, fault: $0) } }
    case "kick": return onlyQueue { .kick(queue: $0) }
    case "poll": return onlyQueue { .poll(queue: $0) }
    case "capture":
        switch words.count == 2 ? words[1].lowercased() : "" {
        case "on": return .success(.capture(on: true))
        case "off": return .success(.capture(on: false))
        default: return .failure(CommandError("usage: capture on|off (`ringside capture` writes the frames to pcapng)"))
        }
    default:
        return .failure(CommandError("unknown command \"\(verb)\"; try stats, pause, resume, step, dump, rate, reset, inject, kick, poll, capture, hmp"))
    }
}

/// `drop N`, `corrupt N`, `nokick N` (N 1…65535), `starve`, `unstarve`, `noirq`, `clear`.
func parseFault(_ words: [String]) -> Result<WireFault, CommandError> {
    let usage = CommandError("usage: inject Q \(controlFaultUsage)")
    guard let name = words.first?.lowercased() else { return .failure(usage) }
    func count(_ make: (UInt16) -> WireFault) -> Result<WireFault, CommandError> {
        guard words.count == 2 else { return .failure(CommandError("usage: inject Q \(name) N (N 1…65535)")) }
        guard let n = UInt16(words[1]), n > 0 else {
            return .failure(CommandError("\(name) count must be 1…65535, not \(words[1])"))
        }
        return .success(make(n))
    }
    func bare(_ fault: WireFault) -> Result<WireFault, CommandError> {
        words.count == 1 ? .success(fault) : .failure(CommandError("\(name) takes no count"))
    }
    switch name {
    case "drop": return count { .drop($0) }
    case "corrupt": return count { .corrupt($0) }
    case "nokick": return count { .nokick($0) }
    case "starve": return bare(.starve)
    case "unstarve": return bare(.unstarve)
    case "noirq": return bare(.noirq)
    case "clear": return bare(.clear)
    default: return .failure(CommandError("unknown fault \"\(words[0])\"; inject Q \(controlFaultUsage)"))
    }
}
