// Writes dumped frames as a classic pcap file (LINKTYPE_ETHERNET), the virtio-net header
// stripped, so Wireshark opens it as it would a capture from the wire.

import Glibc

public enum PcapFile {
    /// The file image: 24-byte global header, then per frame a 16-byte record header and the
    /// frame. `frames` carry a time in seconds (host wall clock) and the Ethernet bytes.
    public static func image(_ frames: [(time: Double, bytes: [UInt8])]) -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
        func u16(_ v: UInt16) { out.append(UInt8(v & 0xff)); out.append(UInt8(v >> 8)) }
        u32(0xa1b2_c3d4); u16(2); u16(4); u32(0); u32(0); u32(65535); u32(1)
        for f in frames {
            let secs = UInt32(max(0, f.time))
            let usecs = UInt32(max(0, (f.time - Double(secs)) * 1e6))
            u32(secs); u32(usecs); u32(UInt32(f.bytes.count)); u32(UInt32(f.bytes.count))
            out += f.bytes
        }
        return out
    }

    /// Writes `image` to `path` (created 0644, replaced). Returns an error message or nil.
    public static func write(_ bytes: [UInt8], to path: String) -> String? {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return "cannot create \(path): \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return "cannot write \(path): \(String(cString: strerror(errno)))"
            }
            done += n
        }
        return nil
    }
}
