// Address resolution in progress (RFC 826, with RFC 1122 §2.3.2.2's queue): the packets
// waiting for a next hop's MAC, and when to ask for it again or give up. ARPCache keeps
// what is known; this keeps what is being asked.
//
// It only keeps the books: NetStack sends the requests and the waiting frames, and counts
// the drops, from what these functions return. Every number is bounded: at most
// `maxPendingDestinations` addresses at once (one of them always left for the gateway, so
// strangers cannot keep us from reaching it), `maxPendingFramesPerDestination` frames each,
// `maxAttempts` requests `retryIntervalMs` apart, then the frames go.

/// Outgoing frames waiting for the MAC of `ip` (the next hop). Frames are complete except
/// for the Ethernet destination, which is filled in when the answer comes.
struct ARPPendingResolution {
    var ip: IPv4Address
    var frames: [[UInt8]]
    /// ARP requests sent so far.
    var attempts: Int
    /// When to send the next request, or give up once `attempts` reached the limit.
    var deadlineMs: UInt64
}

struct ARPResolver {
    /// Time between ARP requests for an unanswered address.
    static let retryIntervalMs: UInt64 = 1_000
    /// ARP requests per resolution; one interval after the last, the waiting packets go.
    static let maxAttempts = 3
    /// Addresses resolved at once; one of them is always left for the gateway.
    static let maxPendingDestinations = 16
    static let maxPendingFramesPerDestination = 8

    /// The address that always finds a free slot.
    let gateway: IPv4Address
    private(set) var pending: [ARPPendingResolution] = []

    init(gateway: IPv4Address) {
        self.gateway = gateway
    }

    /// What became of a frame given to `park`.
    enum Parking {
        /// Waiting behind a request already sent.
        case queued
        /// The first frame for its next hop: send the first request now.
        case startedResolving
        /// No room (too many frames for the address, or too many addresses): drop it.
        case refused
    }

    func isResolving(_ ip: IPv4Address) -> Bool {
        pending.contains(where: { $0.ip == ip })
    }

    /// Parks `frame` until `nextHop` resolves.
    mutating func park(_ frame: [UInt8], nextHop: IPv4Address, nowMs: UInt64) -> Parking {
        if let index = pending.firstIndex(where: { $0.ip == nextHop }) {
            guard pending[index].frames.count < ARPResolver.maxPendingFramesPerDestination else { return .refused }
            pending[index].frames.append(frame)
            return .queued
        }
        // Strangers share all slots but one: the gateway's resolution always finds room.
        if nextHop != gateway {
            var others = 0
            for resolution in pending where resolution.ip != gateway { others += 1 }
            guard others < ARPResolver.maxPendingDestinations - 1 else { return .refused }
        }
        start(nextHop, frames: [frame], nowMs: nowMs)
        return .startedResolving
    }

    /// Starts resolving `ip` (not already being resolved); the caller sends the first request.
    mutating func start(_ ip: IPv4Address, frames: [[UInt8]] = [], nowMs: UInt64) {
        pending.append(ARPPendingResolution(
            ip: ip, frames: frames, attempts: 1, deadlineMs: nowMs &+ ARPResolver.retryIntervalMs))
    }

    /// `ip` answered: its waiting frames, no longer pending (nil if it was not being resolved).
    mutating func resolved(_ ip: IPv4Address) -> [[UInt8]]? {
        guard let index = pending.firstIndex(where: { $0.ip == ip }) else { return nil }
        return pending.remove(at: index).frames
    }

    /// The retries and give-ups due at `nowMs`: the addresses to ask again, and the frames
    /// of each address given up on (both empty, and nothing allocated, when none is due).
    mutating func expire(nowMs: UInt64) -> (retry: [IPv4Address], abandoned: [[[UInt8]]]) {
        var retry: [IPv4Address] = []
        var abandoned: [[[UInt8]]] = []
        var index = 0
        while index < pending.count {
            guard pending[index].deadlineMs <= nowMs else {
                index += 1
                continue
            }
            if pending[index].attempts >= ARPResolver.maxAttempts {
                abandoned.append(pending.remove(at: index).frames)
            } else {
                pending[index].attempts += 1
                pending[index].deadlineMs = nowMs &+ ARPResolver.retryIntervalMs
                retry.append(pending[index].ip)
                index += 1
            }
        }
        return (retry, abandoned)
    }

    /// When `expire` next has work, or nil when nothing is pending.
    var nextDeadlineMs: UInt64? {
        var earliest: UInt64?
        for resolution in pending where earliest.map({ resolution.deadlineMs < $0 }) ?? true {
            earliest = resolution.deadlineMs
        }
        return earliest
    }
}
