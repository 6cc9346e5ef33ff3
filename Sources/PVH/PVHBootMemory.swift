// Where the kernel's heap goes, chosen from the PVH memory map: the rest of the RAM region that
// holds the kernel image, after the image. Kept apart from the reading (PVHStartInfo) so host
// tests can hand it hostile maps; it runs before the heap exists, so it allocates nothing.

/// What the memory map says, for the heap and the boot log.
public struct PVHBootMemory: Equatable {
    /// The sum of the RAM entries' sizes (saturating; entries that wrap are left out).
    public var ramBytes: UInt64
    /// For heap_init: from the end of the kernel image to the end of its RAM region, cut short
    /// at `limit` and where another entry of the map claims the memory. At least one page.
    public var heap: Range<UInt64>
    /// Entries left out because their end passes 2^64.
    public var wrappingEntries: UInt32
}

public enum PVHBootMemoryError: Error, Equatable {
    /// The start info is version 0 or lists no entries.
    case noMemoryMap
    /// No RAM entry holds the whole kernel image with room after it.
    case imageNotInRAM
    /// Another entry (reserved, ACPI, …) overlaps the image or the first page after it.
    case imageRegionClaimed
    /// Less than a page is left once cut at the limit and aligned.
    case noRoomForHeap

    public var message: StaticString {
        switch self {
        case .noMemoryMap: return "the PVH start info has no memory map"
        case .imageNotInRAM: return "no RAM region in the PVH memory map holds the kernel image"
        case .imageRegionClaimed: return "the PVH memory map claims the kernel image's region for something else"
        case .noRoomForHeap: return "no room for a heap after the kernel image"
        }
    }
}

extension PVHBootMemory {
    /// The heap's page size (support/heap.c): heap_init aligns the region to it.
    public static let pageBytes: UInt64 = 4096

    /// Chooses the heap for a kernel image at `image`, keeping it below `limit` (the kernel: the
    /// start of the uncached part of its identity map, BOOT_UNCACHED_START).
    ///
    /// The first RAM entry holding the whole image gives the region (QEMU lists each once). An
    /// entry of any other type inside it wins over RAM: the heap ends where that entry begins,
    /// and an entry over the image itself or the heap's first page is an error.
    public static func choose(_ map: PVHStartInfo, image: Range<UInt64>, limit: UInt64) throws(PVHBootMemoryError) -> PVHBootMemory {
        guard map.memmapEntries > 0 else { throw .noMemoryMap }
        var ramBytes: UInt64 = 0
        var wrapping: UInt32 = 0
        var heapEnd: UInt64 = 0  // 0: no region found yet (a region holding the image ends above it)
        for index in 0..<map.memmapEntries {
            let entry = map.memmapEntry(index)
            guard let range = entry.range else {
                wrapping += 1
                continue
            }
            guard entry.type == XEN_HVM_MEMMAP_TYPE_RAM else { continue }
            let (sum, overflow) = ramBytes.addingReportingOverflow(entry.size)
            ramBytes = overflow ? UInt64.max : sum
            if heapEnd == 0, range.lowerBound <= image.lowerBound, image.upperBound < range.upperBound {
                heapEnd = range.upperBound
            }
        }
        guard heapEnd != 0 else { throw .imageNotInRAM }
        // Memory the map also calls something else is not the heap's.
        for index in 0..<map.memmapEntries {
            let entry = map.memmapEntry(index)
            guard entry.type != XEN_HVM_MEMMAP_TYPE_RAM, let range = entry.range, !range.isEmpty,
                  range.lowerBound < heapEnd, range.upperBound > image.lowerBound else { continue }
            guard range.lowerBound >= image.upperBound, range.lowerBound - image.upperBound >= pageBytes else {
                throw .imageRegionClaimed
            }
            heapEnd = range.lowerBound
        }
        if heapEnd > limit { heapEnd = limit }
        let heapStart = image.upperBound
        // heap_init's alignment: start rounded up, end down, to pages.
        let (roundedUp, wrapped) = heapStart.addingReportingOverflow(pageBytes - 1)
        let alignedStart = roundedUp & ~(pageBytes - 1)
        let alignedEnd = heapEnd & ~(pageBytes - 1)
        guard !wrapped, alignedStart < alignedEnd else { throw .noRoomForHeap }
        return PVHBootMemory(ramBytes: ramBytes, heap: heapStart..<heapEnd, wrappingEntries: wrapping)
    }
}
