// Guest RAM as the host sees it: a QEMU `memory-backend-file` mapped read-only, and the map from
// guest-physical addresses to offsets in that file.
//
// On x86 PC machines QEMU splits RAM around the PCI hole (QEMU 7.2, hw/i386/pc_piix.c and
// pc_q35.c): the first `below4G` bytes of the backend appear at guest-physical 0, the rest at
// 4 GiB. `pc` (i440fx): below4G = RAM when RAM < 3.5 GiB (`max-ram-below-4g`, default
// 0xe0000000), else 3 GiB (gigabyte_align). `q35`: below4G = RAM when RAM < 0xb0000000 (2.75
// GiB), else 2 GiB. Both are capped by `max-ram-below-4g` when given. The exact layout of a running
// QEMU is in HMP `info mtree -f` (the flat view of address space "memory"): `GuestRAMLayout.parse`
// reads it, so the rule is only a fallback.
//
// The guest writes its memory while we read it: every read here is bounds-checked against the
// layout and the file and returns nil outside them; nothing here ever traps on an address.

import Foundation

/// One contiguous piece of guest-physical RAM and where it lives in the backend file.
public struct GuestRAMRegion: Equatable, Sendable {
    public var guestStart: UInt64
    public var length: UInt64
    public var fileOffset: UInt64

    public init(guestStart: UInt64, length: UInt64, fileOffset: UInt64) {
        self.guestStart = guestStart
        self.length = length
        self.fileOffset = fileOffset
    }
}

/// Guest-physical → backend-file offset.
public struct GuestRAMLayout: Equatable, Sendable {
    public var regions: [GuestRAMRegion]

    public init(regions: [GuestRAMRegion]) {
        self.regions = regions.sorted { $0.guestStart < $1.guestStart }
    }

    public static let fourGiB: UInt64 = 1 << 32

    /// The x86 PC rule: `below4G` bytes at 0, the rest at 4 GiB.
    public static func split(ramSize: UInt64, below4G: UInt64) -> GuestRAMLayout {
        let low = min(ramSize, below4G)
        var r = [GuestRAMRegion(guestStart: 0, length: low, fileOffset: 0)]
        if ramSize > low { r.append(GuestRAMRegion(guestStart: fourGiB, length: ramSize - low, fileOffset: low)) }
        return GuestRAMLayout(regions: r)
    }

    /// QEMU 7.2's `pc` (i440fx) split for `ramSize` bytes (`maxRamBelow4G`: the machine property
    /// `max-ram-below-4g`, default 3.5 GiB).
    public static func pc(ramSize: UInt64, maxRamBelow4G: UInt64? = nil) -> GuestRAMLayout {
        var lowmem = maxRamBelow4G ?? 0xE000_0000
        if ramSize >= lowmem, lowmem > 0xC000_0000 { lowmem = 0xC000_0000 }  // gigabyte_align
        return split(ramSize: ramSize, below4G: ramSize >= lowmem ? lowmem : ramSize)
    }

    /// QEMU 7.2's `q35` split.
    public static func q35(ramSize: UInt64, maxRamBelow4G: UInt64? = nil) -> GuestRAMLayout {
        var lowmem: UInt64 = ramSize >= 0xB000_0000 ? 0x8000_0000 : 0xB000_0000
        if let m = maxRamBelow4G, lowmem > m { lowmem = m }
        return split(ramSize: ramSize, below4G: ramSize >= lowmem ? lowmem : ramSize)
    }

    /// The RAM regions backed by `backend` (the memory-backend object's id) in HMP `info mtree -f`
    /// output: the first flat view that holds any. Lines look like
    /// `  0000000000100000-0000000007ffffff (prio 0, ram): ram0 @0000000000100000`
    /// (no `@` means offset 0 in the backend). ROM-flagged pieces of the same backend count (they
    /// are still the file's bytes). Returns nil when no line names the backend.
    public static func parse(mtree text: String, backend: String) -> GuestRAMLayout? {
        var views: [[GuestRAMRegion]] = [[]]
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("FlatView") { views.append([]); continue }
            guard let colon = line.range(of: "): ") else { continue }
            let head = line[..<colon.lowerBound]
            let tail = line[colon.upperBound...].split(separator: " ")
            guard head.contains(", ram") || head.contains(", rom"), let name = tail.first, name == backend else { continue }
            let range = head.split(separator: " ").first.map(String.init) ?? ""
            let parts = range.split(separator: "-")
            guard parts.count == 2, let start = UInt64(parts[0], radix: 16), let end = UInt64(parts[1], radix: 16), end >= start else { continue }
            var offset: UInt64 = 0
            if tail.count > 1, tail[1].hasPrefix("@"), let o = UInt64(tail[1].dropFirst(), radix: 16) { offset = o }
            views[views.count - 1].append(GuestRAMRegion(guestStart: start, length: end - start + 1, fileOffset: offset))
        }
        guard let view = views.first(where: { !$0.isEmpty }) else { return nil }
        // Merge neighbours that continue each other (ram/rom pieces of one alias).
        var merged: [GuestRAMRegion] = []
        for r in view.sorted(by: { $0.guestStart < $1.guestStart }) {
            if var last = merged.last, last.guestStart + last.length == r.guestStart, last.fileOffset + last.length == r.fileOffset {
                last.length += r.length
                merged[merged.count - 1] = last
            } else {
                merged.append(r)
            }
        }
        return GuestRAMLayout(regions: merged)
    }

    /// The file offset of `[guest, guest+count)`, when it lies wholly inside one region.
    public func fileOffset(guest: UInt64, count: Int) -> UInt64? {
        guard count >= 0 else { return nil }
        let (end, overflow) = guest.addingReportingOverflow(UInt64(count))
        guard !overflow else { return nil }
        var i = 0
        while i < regions.count {  // (a plain loop: this runs a few times per queue per sample)
            let r = regions[i]
            i += 1
            guard guest >= r.guestStart else { continue }
            let rEnd = r.guestStart + r.length
            if guest < rEnd || (count == 0 && guest == rEnd) {
                return end <= rEnd ? r.fileOffset + (guest - r.guestStart) : nil
            }
        }
        return nil
    }
}

/// Read-only guest memory: a mapping of the backend file (or, for tests, a copy of some bytes)
/// and its layout. Loads are plain unaligned loads of memory another process writes: values may
/// be stale or torn across fields, never out of bounds.
public final class GuestMemory: @unchecked Sendable {
    public let layout: GuestRAMLayout
    public let size: Int
    private let base: UnsafeMutableRawPointer?
    private let mapped: Bool

    /// Maps `path` read-only (MAP_SHARED, so the guest's writes show). `layout` defaults to
    /// "file offset = guest-physical" for the whole file.
    public init(path: String, layout: GuestRAMLayout? = nil) throws(RingsideError) {
        let opened = open(path, O_RDONLY | O_CLOEXEC)
        guard opened >= 0 else { throw RingsideError("cannot open guest memory \(path): \(Errno.current)") }
        let fd = FileDescriptor(rawValue: opened)
        defer { fd.close() }
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0, st.st_size > 0 else { throw RingsideError("guest memory \(path) is empty or unreadable") }
        let size = Int(st.st_size)
        guard let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd.rawValue, 0), p != MAP_FAILED else {
            throw RingsideError("cannot map guest memory \(path): \(Errno.current)")
        }
        self.base = p
        self.size = size
        self.mapped = true
        self.layout = layout ?? GuestRAMLayout(regions: [GuestRAMRegion(guestStart: 0, length: UInt64(size), fileOffset: 0)])
    }

    /// A private copy of `bytes` as guest memory (tests, fuzzing).
    public init(bytes: [UInt8], layout: GuestRAMLayout? = nil) {
        size = bytes.count
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(1, bytes.count), alignment: 16)
        bytes.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: bytes.count) } }
        base = p
        mapped = false
        self.layout = layout ?? GuestRAMLayout(regions: [GuestRAMRegion(guestStart: 0, length: UInt64(bytes.count), fileOffset: 0)])
    }

    deinit {
        if mapped { munmap(base, size) } else { base?.deallocate() }
    }

    /// Replaces bytes of a test copy (not allowed on a mapping, which is read-only).
    public func poke(guest: UInt64, _ bytes: [UInt8]) {
        guard !mapped, let p = pointer(guest: guest, count: bytes.count) else { return }
        bytes.withUnsafeBytes { if let b = $0.baseAddress { UnsafeMutableRawPointer(mutating: p).copyMemory(from: b, byteCount: bytes.count) } }
    }

    /// Where `[guest, guest+count)` is mapped, or nil when it is not wholly inside guest RAM and
    /// the file. The bytes behind it change under the caller: copy them before trusting them.
    func pointer(guest: UInt64, count: Int) -> UnsafeRawPointer? {
        guard let base, let off = layout.fileOffset(guest: guest, count: count),
              off <= UInt64(size), UInt64(count) <= UInt64(size) - off else { return nil }
        return UnsafeRawPointer(base + Int(off))
    }

    public func bytes(guest: UInt64, count: Int) -> [UInt8]? {
        guard count >= 0, let p = pointer(guest: guest, count: count) else { return nil }
        return [UInt8](UnsafeRawBufferPointer(start: p, count: count))
    }

    /// Copies `[guest, guest+count)` to `destination`; false (nothing copied) when out of bounds.
    public func copy(guest: UInt64, count: Int, to destination: UnsafeMutableRawPointer) -> Bool {
        guard count >= 0, let p = pointer(guest: guest, count: count) else { return false }
        destination.copyMemory(from: p, byteCount: count)
        return true
    }

    /// Whether `[guest, guest+count)` holds exactly `bytes` right now (false when out of bounds).
    public func holds(_ bytes: UnsafeRawBufferPointer, at guest: UInt64) -> Bool {
        guard let p = pointer(guest: guest, count: bytes.count) else { return false }
        guard let b = bytes.baseAddress, bytes.count > 0 else { return true }
        return memcmp(p, b, bytes.count) == 0
    }

    public func u16(_ guest: UInt64) -> UInt16? {
        pointer(guest: guest, count: 2).map { UInt16(littleEndian: $0.loadUnaligned(as: UInt16.self)) }
    }

    public func u32(_ guest: UInt64) -> UInt32? {
        pointer(guest: guest, count: 4).map { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
    }

    public func u64(_ guest: UInt64) -> UInt64? {
        pointer(guest: guest, count: 8).map { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    }

    /// Calls `body` with a view of `[guest, guest+count)` (no copy), or returns nil when out of bounds.
    public func withBytes<T>(guest: UInt64, count: Int, _ body: (UnsafeRawBufferPointer) -> T) -> T? {
        guard count >= 0, let p = pointer(guest: guest, count: count) else { return nil }
        return body(UnsafeRawBufferPointer(start: p, count: count))
    }
}
