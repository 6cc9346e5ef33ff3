// How a step's report (`usedBatch` events, protocol v2) reads in the event log.

import Wire

/// "net0.rx took used[12…14]: desc 5 98 B, desc 6 60 B, desc 7 60 B": every element, in ring
/// order, with its used ring index range; long batches list the first `limit` and count the rest.
/// On a packed queue (virtio 1.2 §2.8) `firstUsedIdx` is the driver's used position with its wrap
/// counter, and a buffer of several descriptors takes several slots, so the report names where
/// the batch began: "net0.rx took 3 used from 77w1: desc 77 75 B, …".
public func usedBatchLogText(queue: String, firstUsedIdx: UInt16, elements: [WireUsedElement], limit: Int = 8,
                             format: WireRingFormat = .split) -> String {
    guard !elements.isEmpty else { return "\(queue) took nothing" }
    let last = firstUsedIdx &+ UInt16(truncatingIfNeeded: elements.count - 1)
    let range = format == .packed ? "\(elements.count) used from \(packedPosition(firstUsedIdx))"
        : elements.count == 1 ? "used[\(firstUsedIdx)]" : "used[\(firstUsedIdx)…\(last)]"
    var parts = elements.prefix(limit).map { "desc \($0.id) \($0.len) B" }
    if elements.count > limit { parts.append("+\(elements.count - limit) more") }
    return "\(queue) took \(range): " + parts.joined(separator: ", ")
}
