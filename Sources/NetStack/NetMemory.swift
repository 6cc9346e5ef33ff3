// The network stack's memory budget: what a peer can make the kernel hold is decided here,
// before it is allocated, from the heap the kernel actually has.
//
// Two lines of defence:
//  1. Admission. Each connection reserves its worst case (TCP's rings and out-of-order
//     segments, the application's buffers) when it is accepted. A reservation that does
//     not fit under `limitBytes`, or that the allocator's `headroom` cannot cover right now,
//     is refused: the connection is reset and `refusals` counts it. Nothing accepted can
//     later grow past what it reserved, so accepted connections never run the heap dry.
//  2. Allocation that can fail. The large buffers come from `allocate`, which returns nil
//     instead of trapping (Swift's own allocations trap on failure). A nil is counted in
//     `allocationFailures` and costs a segment or a connection, never the kernel.
//
// The kernel sets `limitBytes` and `headroom` at boot from its heap (Kernel.swift); on the
// host both default to "unlimited" and tests set them to force every refusal path.

import CHeap

public final class NetMemory {
    /// Bytes the stack may have reserved at once.
    public var limitBytes: Int
    /// Bytes the allocator can still give beyond its own safety reserve, now. Checked on
    /// every reservation, so memory taken by anything else (the drivers, the runtime) counts.
    public var headroom: () -> Int
    public private(set) var reservedBytes = 0
    /// The most `reservedBytes` has been.
    public private(set) var peakReservedBytes = 0
    /// Reservations refused (a connection reset for lack of memory).
    public private(set) var refusals: UInt64 = 0
    /// `allocate` calls that got nothing from the heap.
    public private(set) var allocationFailures: UInt64 = 0

    public init(limitBytes: Int = Int.max, headroom: @escaping () -> Int = { Int.max }) {
        self.limitBytes = limitBytes
        self.headroom = headroom
    }

    /// Reserves `bytes` if they fit under the limit and in the heap's headroom.
    public func reserve(_ bytes: Int) -> Bool {
        guard bytes >= 0, bytes <= limitBytes - reservedBytes, bytes <= headroom() else {
            refusals &+= 1
            return false
        }
        reservedBytes += bytes
        if reservedBytes > peakReservedBytes { peakReservedBytes = reservedBytes }
        return true
    }

    public func release(_ bytes: Int) {
        reservedBytes -= Swift.min(Swift.max(bytes, 0), reservedBytes)
    }

    /// `bytes` of raw memory, or nil (counted) when the heap has none.
    public func allocate(_ bytes: Int) -> UnsafeMutableRawPointer? {
        guard bytes > 0, let memory = heap_try_alloc(bytes) else {
            allocationFailures &+= 1
            return nil
        }
        return memory
    }

    public func deallocate(_ memory: UnsafeMutableRawPointer?) {
        guard let memory else { return }
        heap_release(memory)
    }
}
