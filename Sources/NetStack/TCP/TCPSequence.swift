// Sequence-number arithmetic (RFC 9293 §3.4): sequence numbers live on a 32-bit circle, so
// "less than" means "less than, going forward by under 2^31". All comparisons in the TCP
// code go through these helpers; none uses `<` on raw sequence numbers.

@inline(__always)
func seqLT(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) < 0 }

@inline(__always)
func seqLE(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) <= 0 }

@inline(__always)
func seqGT(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) > 0 }

@inline(__always)
func seqGE(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) >= 0 }

/// `start ≤ value < start + length` on the circle (empty when `length` is 0).
@inline(__always)
func seqInWindow(_ value: UInt32, start: UInt32, length: UInt32) -> Bool {
    value &- start < length
}

/// The distance forward from `from` to `to`, as a count (callers ensure `from ≤ to`).
@inline(__always)
func seqDistance(from: UInt32, to: UInt32) -> Int {
    Int(to &- from)
}
