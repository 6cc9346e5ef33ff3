// A fixed-capacity byte FIFO for a connection's send and receive buffers. Its storage is
// raw memory from NetMemory.allocate (which fails with nil, never a trap), taken once when
// the connection is established and given back when the connection closes; it never
// grows: that is what bounds a connection's memory (see TCPLayer's limits).
//
// A value owns its storage: it lives inside its TCPConnection and is only ever mutated in
// place, never copied.

import CHeap

struct TCPByteRing {
    private var storage: UnsafeMutableRawPointer?
    private var head = 0
    let capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Space the ring promises (the receive window advertises it before the storage exists).
    var freeSpace: Int { capacity - count }
    var isEmpty: Bool { count == 0 }
    /// Whether the storage has been allocated.
    var isAllocated: Bool { storage != nil }
    /// Bytes of memory held (0 until `allocate`, and again after `release`).
    var allocatedBytes: Int { storage == nil ? 0 : capacity }

    /// Takes the storage from `memory`; false (counted there) when the heap has none.
    mutating func allocate(from memory: NetMemory) -> Bool {
        if storage != nil { return true }
        storage = memory.allocate(capacity)
        return storage != nil
    }

    /// Appends as much of `bytes` as fits; returns how much did.
    @discardableResult
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let length = Swift.min(bytes.count, freeSpace)
        guard length > 0, let base = storage, let source = bytes.baseAddress else { return 0 }
        var tail = head + count
        if tail >= capacity { tail -= capacity }
        let first = Swift.min(length, capacity - tail)
        (base + tail).copyMemory(from: source, byteCount: first)
        if length > first {
            base.copyMemory(from: source + first, byteCount: length - first)
        }
        count += length
        return length
    }

    /// Copies `length` bytes starting `offset` bytes after the head into `destination` at
    /// `at`. The range must lie inside `0..<count` and inside `destination`.
    func copy(offset: Int, length: Int, into destination: inout [UInt8], at: Int) {
        guard length > 0, offset >= 0, offset + length <= count, at >= 0, at + length <= destination.count,
              let from = storage else { return }
        var start = head + offset
        if start >= capacity { start -= capacity }
        let first = Swift.min(length, capacity - start)
        destination.withUnsafeMutableBytes { target in
            guard let to = target.baseAddress else { return }
            (to + at).copyMemory(from: from + start, byteCount: first)
            if length > first {
                (to + at + first).copyMemory(from: from, byteCount: length - first)
            }
        }
    }

    /// Removes up to `length` bytes from the head.
    mutating func discard(_ length: Int) {
        let removed = Swift.min(Swift.max(length, 0), count)
        head += removed
        if head >= capacity { head -= capacity }
        count -= removed
        if count == 0 { head = 0 }
    }

    /// Moves up to `maxLength` bytes from the head to the end of `destination`.
    mutating func read(into destination: inout [UInt8], maxLength: Int) -> Int {
        let length = Swift.min(Swift.max(maxLength, 0), count)
        guard length > 0 else { return 0 }
        let start = destination.count
        destination.append(contentsOf: repeatElement(0, count: length))
        copy(offset: 0, length: length, into: &destination, at: start)
        discard(length)
        return length
    }

    /// Moves up to `maxLength` bytes from the head to `destination`.
    mutating func read(to destination: UnsafeMutableRawPointer, maxLength: Int) -> Int {
        let length = Swift.min(Swift.max(maxLength, 0), count)
        guard length > 0, let from = storage else { return 0 }
        let first = Swift.min(length, capacity - head)
        destination.copyMemory(from: from + head, byteCount: first)
        if length > first {
            (destination + first).copyMemory(from: from, byteCount: length - first)
        }
        discard(length)
        return length
    }

    /// Gives the memory back (the ring must be empty or its contents unwanted).
    mutating func release() {
        if let storage { heap_release(storage) }
        storage = nil
        head = 0
        count = 0
    }
}
