import Arch

/// Fixed-size DMA buffers carved from one page run, handed out from a free stack.
/// A buffer is identified by its physical address (identity-mapped, so also a pointer).
/// Only addresses of the pool's own buffers are ever turned into pointers.
///
/// The memory is not cleared (clearing 1 MiB of net0 buffers took ~4 ms of the boot under TCG):
/// no byte of a buffer is read before it is written. A transmit buffer goes to the device with
/// the length `DeviceQueue.enqueue` just wrote (header zeroed, then the message), so the device
/// reads nothing older; a receive buffer is read up to the used length the device reported
/// (`DeviceQueue.drain`, capped at the buffer size), bytes the device wrote. Only a device that
/// reports a used length longer than it wrote could make the kernel read older bytes, and those
/// are in guest RAM the device (QEMU) holds anyway: nothing reaches the peer that the kernel
/// did not put there. (QEMU's guest RAM also starts zeroed; a warm reset keeps it, which is why
/// the argument above, not that, is what this rests on.)
struct BufferPool {
    let bufferSize: Int
    let count: Int
    let base: UInt64
    private let memory: UnsafeMutableRawPointer
    private var free: [UInt64] = []
    /// bufferSize - 1 when it is a power of two (every net0 and console pool): `owns` then
    /// checks alignment with a mask, not a 64-bit division (a helper call under TCG).
    private let alignmentMask: UInt64?

    init?(count: Int, bufferSize: Int) {
        let pages = (count * bufferSize + 4095) / 4096
        guard let memory = heap_alloc_pages_uncleared(pages) else { return nil }
        self.bufferSize = bufferSize
        self.count = count
        self.memory = memory
        self.base = UInt64(UInt(bitPattern: memory))
        alignmentMask = bufferSize > 0 && bufferSize & (bufferSize - 1) == 0 ? UInt64(bufferSize - 1) : nil
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
        guard address >= base && address < base + UInt64(count * bufferSize) else { return false }
        if let alignmentMask { return (address - base) & alignmentMask == 0 }
        return (address - base) % UInt64(bufferSize) == 0
    }

    /// The memory of `buffer`; nil if it is not one of the pool's buffers.
    func pointer(_ buffer: UInt64) -> UnsafeMutableRawPointer? {
        owns(buffer) ? memory + Int(buffer - base) : nil
    }

    /// The first `count` bytes of `buffer`; empty if it is not one of the pool's buffers or
    /// `count` is not within it.
    func bytes(_ buffer: UInt64, count: Int) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= bufferSize, let start = pointer(buffer) else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        return UnsafeRawBufferPointer(start: start, count: count)
    }
}
