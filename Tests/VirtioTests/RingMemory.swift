// Ring memory for host tests: three posix_memalign'ed areas, as the kernel would hand in DMA memory.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Virtio

/// Owns the three areas of a split virtqueue of `size` entries. Not freed before the queue.
final class RingMemory: @unchecked Sendable {
    let size: UInt16
    let desc: UnsafeMutableRawPointer
    let avail: UnsafeMutableRawPointer
    let used: UnsafeMutableRawPointer

    init(size: UInt16) {
        self.size = size
        // Garbage, so a test notices if the queue does not zero the rings.
        desc = RingMemory.allocateGarbage(SplitVirtqueue.descTableBytes(size: size), alignment: 4096)
        avail = RingMemory.allocateGarbage(SplitVirtqueue.availRingBytes(size: size), alignment: 4096)
        used = RingMemory.allocateGarbage(SplitVirtqueue.usedRingBytes(size: size), alignment: 4096)
    }

    /// `bytes` of aligned memory filled with 0xa5.
    static func allocateGarbage(_ bytes: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let pointer = allocate(bytes, alignment: alignment)
        pointer.initializeMemory(as: UInt8.self, repeating: 0xa5, count: bytes)
        return pointer
    }

    static func allocate(_ bytes: Int, alignment: Int) -> UnsafeMutableRawPointer {
        var pointer: UnsafeMutableRawPointer?
        precondition(posix_memalign(&pointer, alignment, bytes) == 0)
        return pointer!
    }

    func makeQueue(eventIdx: Bool = false) -> SplitVirtqueue {
        try! SplitVirtqueue(size: size, descTable: desc, availRing: avail, usedRing: used, eventIdx: eventIdx)
    }

    func makeDevice(eventIdx: Bool = false) -> SimulatedDevice {
        SimulatedDevice(memory: self, eventIdx: eventIdx)
    }

    deinit {
        free(desc)
        free(avail)
        free(used)
    }
}

/// Buffers the "device" can write into: test addresses are host pointers.
final class BufferPool {
    let bufferSize: Int
    let count: Int
    let base: UnsafeMutableRawPointer

    init(count: Int, bufferSize: Int) {
        self.count = count
        self.bufferSize = bufferSize
        base = RingMemory.allocate(count * bufferSize, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: count * bufferSize)
    }

    func address(_ index: Int) -> UInt64 { UInt64(UInt(bitPattern: base + index * bufferSize)) }

    func index(of address: UInt64) -> Int {
        (Int(address) - Int(bitPattern: UInt(bitPattern: base))) / bufferSize
    }

    func bytes(at address: UInt64, count: Int) -> [UInt8] {
        let p = UnsafeRawPointer(bitPattern: UInt(address))!
        return Array(UnsafeRawBufferPointer(start: p, count: count))
    }

    func write(_ bytes: [UInt8], at address: UInt64) {
        let p = UnsafeMutableRawPointer(bitPattern: UInt(address))!
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    deinit { free(base) }
}
