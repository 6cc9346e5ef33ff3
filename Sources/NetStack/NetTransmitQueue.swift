// Frames the stack has finished, waiting for the driver. A fixed ring of frames: bounded so
// a driver that stops draining costs a counted drop, not unbounded memory.

struct NetTransmitQueue {
    private var slots: [[UInt8]]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        slots = [[UInt8]](repeating: [], count: Swift.max(capacity, 1))
    }

    var capacity: Int { slots.count }
    var isEmpty: Bool { count == 0 }

    /// False (and the frame dropped) when full.
    mutating func push(_ frame: [UInt8]) -> Bool {
        guard count < slots.count else { return false }
        var tail = head + count
        if tail >= slots.count { tail -= slots.count }
        slots[tail] = frame
        count += 1
        return true
    }

    mutating func pop() -> [UInt8]? {
        guard count > 0 else { return nil }
        let frame = slots[head]
        slots[head] = []
        head += 1
        if head == slots.count { head = 0 }
        count -= 1
        return frame
    }
}
