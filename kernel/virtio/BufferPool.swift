import Arch

/// Fixed-size DMA buffers carved from one page run, handed out from a free stack.
/// A buffer is identified by its physical address (identity-mapped, so also a pointer).
struct BufferPool {
    let bufferSize: Int
    let count: Int
    let base: UInt64
    private var free: [UInt64] = []

    init?(count: Int, bufferSize: Int) {
        let pages = (count * bufferSize + 4095) / 4096
        guard let memory = heap_alloc_pages(pages) else { return nil }
        self.bufferSize = bufferSize
        self.count = count
        self.base = UInt64(UInt(bitPattern: memory))
        free.reserveCapacity(count)
        for i in (0..<count).reversed() { free.append(base + UInt64(i * bufferSize)) }
    }

    var isEmpty: Bool { free.isEmpty }

    mutating func take() -> UInt64? { free.popLast() }

    /// Returns a buffer; ignores an address that is not one of ours (a device error must
    /// not corrupt the pool).
    mutating func give(_ buffer: UInt64) {
        guard owns(buffer) else { return }
        free.append(buffer)
    }

    func owns(_ address: UInt64) -> Bool {
        address >= base && address < base + UInt64(count * bufferSize)
            && (address - base) % UInt64(bufferSize) == 0
    }

    static func pointer(_ buffer: UInt64) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: UInt(buffer))!
    }
}
