// A fixed-capacity byte FIFO for a connection's send and receive buffers. The storage is
// allocated once, at the connection's first use of it, and never grows: that is what
// bounds a connection's memory (see TCPLayer's limits).

struct TCPByteRing {
    private var storage: [UInt8] = []
    private var head = 0
    let capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = capacity
    }

    var freeSpace: Int { capacity - count }
    var isEmpty: Bool { count == 0 }
    /// Bytes of memory held (0 until the first write, and again after `release`).
    var allocatedBytes: Int { storage.count }

    /// Appends as much of `bytes` as fits; returns how much did.
    @discardableResult
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let length = Swift.min(bytes.count, freeSpace)
        guard length > 0 else { return 0 }
        if storage.isEmpty { storage = [UInt8](repeating: 0, count: capacity) }
        var tail = head + count
        if tail >= capacity { tail -= capacity }
        let first = Swift.min(length, capacity - tail)
        storage.withUnsafeMutableBytes { destination in
            guard let base = destination.baseAddress, let source = bytes.baseAddress else { return }
            (base + tail).copyMemory(from: source, byteCount: first)
            if length > first {
                base.copyMemory(from: source + first, byteCount: length - first)
            }
        }
        count += length
        return length
    }

    /// Copies `length` bytes starting `offset` bytes after the head into `destination` at
    /// `at`. The range must lie inside `0..<count` and inside `destination`.
    func copy(offset: Int, length: Int, into destination: inout [UInt8], at: Int) {
        guard length > 0, offset >= 0, offset + length <= count, at >= 0, at + length <= destination.count else { return }
        var start = head + offset
        if start >= capacity { start -= capacity }
        let first = Swift.min(length, capacity - start)
        storage.withUnsafeBytes { source in
            destination.withUnsafeMutableBytes { target in
                guard let from = source.baseAddress, let to = target.baseAddress else { return }
                (to + at).copyMemory(from: from + start, byteCount: first)
                if length > first {
                    (to + at + first).copyMemory(from: from, byteCount: length - first)
                }
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

    /// Gives the memory back (the ring must be empty or its contents unwanted).
    mutating func release() {
        storage = []
        head = 0
        count = 0
    }
}
