// How a step's report (`usedBatch` events, protocol v2) reads in the event log.

import Wire

/// "net0.rx took used[12…14]: desc 5 98 B, desc 6 60 B, desc 7 60 B": every element, in ring
/// order, with its used ring index range; long batches list the first `limit` and count the rest.
public func usedBatchLogText(queue: String, firstUsedIdx: UInt16, elements: [WireUsedElement], limit: Int = 8) -> String {
    guard !elements.isEmpty else { return "\(queue) took nothing" }
    let last = firstUsedIdx &+ UInt16(truncatingIfNeeded: elements.count - 1)
    let range = elements.count == 1 ? "used[\(firstUsedIdx)]" : "used[\(firstUsedIdx)…\(last)]"
    var parts = elements.prefix(limit).map { "desc \($0.id) \($0.len) B" }
    if elements.count > limit { parts.append("+\(elements.count - limit) more") }
    return "\(queue) took \(range): " + parts.joined(separator: ", ")
}
