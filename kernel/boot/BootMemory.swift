import Arch

/// What the loader handed over, read through Sources/PVH: the memory map gives the heap its
/// place (kmain calls `startHeap` before anything allocates), the command line is copied once
/// the heap exists. The start info is read in place in the identity map; only its write-back
/// part is readable (the uncached part from BOOT_UNCACHED_START is MMIO).
enum BootMemory {
    /// Total RAM the PVH memory map lists (0 until `startHeap` succeeds).
    nonisolated(unsafe) private(set) static var ramBytes: UInt64 = 0

    static var imageBytes: UInt64 { kernel_image_end() - kernel_image_start() }

    private static func startInfo() throws(PVHStartInfoError) -> PVHStartInfo {
        try PVHStartInfo(at: pvh_start_info, readable: 0..<UInt64(BOOT_UNCACHED_START))
    }

    /// Finds the heap in the PVH memory map and starts it; on failure, why (static text: there
    /// is no heap to format with).
    static func startHeap() -> StaticString? {
        let map: PVHStartInfo
        do { map = try startInfo() } catch { return error.message }
        let memory: PVHBootMemory
        do {
            memory = try PVHBootMemory.choose(map, image: kernel_image_start()..<kernel_image_end(),
                                              limit: UInt64(BOOT_UNCACHED_START))
        } catch { return error.message }
        ramBytes = memory.ramBytes
        heap_init(UInt(memory.heap.lowerBound), UInt(memory.heap.upperBound))
        return nil
    }

    /// The kernel command line, copied (needs the heap), or why there is none to use.
    static func commandLine() -> (bytes: [UInt8], problem: StaticString?) {
        do {
            let inPlace = try startInfo().commandLine()
            return (Array(inPlace), nil)
        } catch {
            return ([], error.message)
        }
    }
}
