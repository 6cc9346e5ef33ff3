// The spec's little-endian layouts of a split ring (virtio 1.2 §2.7.5–§2.7.8) decoded from the
// bytes GuestRingReader copied out of guest memory, and a chain's buffer gathered from them.

import Glibc
import Virtio
import Wire

extension GuestRingReader {
    static func u16(_ p: UnsafeRawPointer, _ offset: Int) -> UInt16 {
        UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// Whether `GuestDescriptor` and `GuestUsedElement` are laid out in memory exactly as
    /// `struct virtq_desc` and `struct virtq_used_elem` are on a little-endian host: then a table
    /// is decoded with one copy instead of a load per field.
    static let layoutsMatchTheSpec: Bool = {
        #if _endian(little)
        return MemoryLayout<GuestDescriptor>.size == 16 && MemoryLayout<GuestDescriptor>.stride == 16
            && MemoryLayout<GuestDescriptor>.offset(of: \.addr) == 0 && MemoryLayout<GuestDescriptor>.offset(of: \.len) == 8
            && MemoryLayout<GuestDescriptor>.offset(of: \.flags) == 12 && MemoryLayout<GuestDescriptor>.offset(of: \.next) == 14
            && MemoryLayout<GuestUsedElement>.size == 8 && MemoryLayout<GuestUsedElement>.stride == 8
            && MemoryLayout<GuestUsedElement>.offset(of: \.id) == 0 && MemoryLayout<GuestUsedElement>.offset(of: \.len) == 4
        #else
        return false
        #endif
    }()

    static func decodeAvailRing(_ p: UnsafeRawPointer, count n: Int) -> [UInt16] {
        [UInt16](unsafeUninitializedCapacity: n) { out, done in
            #if _endian(little)
            UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: p, byteCount: 2 * n)
            #else
            for i in 0..<n { out[i] = u16(p, 2 * i) }
            #endif
            done = n
        }
    }

    /// `n` entries of `entryBytes` each: one copy when the layouts match the spec's, otherwise
    /// `decode(offset)` per entry.
    private static func decodeEntries<Entry>(_ p: UnsafeRawPointer, count n: Int, entryBytes: Int,
                                             _ decode: (Int) -> Entry) -> [Entry] {
        [Entry](unsafeUninitializedCapacity: n) { out, done in
            if layoutsMatchTheSpec {
                UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: p, byteCount: entryBytes * n)
            } else {
                for i in 0..<n { (out.baseAddress! + i).initialize(to: decode(entryBytes * i)) }
            }
            done = n
        }
    }

    static func decodeUsedRing(_ p: UnsafeRawPointer, count n: Int) -> [GuestUsedElement] {
        decodeEntries(p, count: n, entryBytes: 8) { o in
            GuestUsedElement(id: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self)),
                             len: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o + 4, as: UInt32.self)))
        }
    }

    static func decodeTable(_ p: UnsafeRawPointer, count n: Int) -> [GuestDescriptor] {
        decodeEntries(p, count: n, entryBytes: 16) { o in
            GuestDescriptor(addr: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self)),
                            len: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o + 8, as: UInt32.self)),
                            flags: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: o + 12, as: UInt16.self)),
                            next: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: o + 14, as: UInt16.self)))
        }
    }

    /// The bytes of a chain's buffer: with any device-writable segment, the writable bytes up to
    /// `usedLength` (what the device wrote); otherwise all readable bytes. At most `limit` bytes;
    /// a segment outside guest memory ends the buffer (nil if nothing could be read).
    public static func buffer(of chain: GuestChain, usedLength: UInt32?, memory: GuestMemory, limit: Int = 1 << 20) -> [UInt8]? {
        let writable = chain.segments.contains { $0.flags & VIRTQ_DESC_F_WRITE != 0 }
        var want = limit
        if writable, let usedLength { want = min(limit, Int(usedLength)) }
        var out: [UInt8] = []
        for seg in chain.segments where (seg.flags & VIRTQ_DESC_F_WRITE != 0) == writable {
            let take = min(Int(seg.len), want - out.count)
            if take <= 0 { break }
            guard let b = memory.bytes(guest: seg.addr, count: take) else { return out.isEmpty ? nil : out }
            out += b
        }
        return out
    }
}
