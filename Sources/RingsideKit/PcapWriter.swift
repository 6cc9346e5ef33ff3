import Foundation

/// Writes pcap files (the classic libpcap format: microsecond timestamps, LINKTYPE_ETHERNET),
/// so Wireshark opens dumped frames as it would a capture from the wire.
public enum PcapWriter {
    public static let linktypeEthernet: UInt32 = 1
    public static let magic: UInt32 = 0xA1B2_C3D4

    /// A whole pcap file holding `frames` (Ethernet frames, no virtio-net header), all stamped
    /// with `timestamp`.
    public static func file(frames: [[UInt8]], timestamp: Date = Date(), snaplen: UInt32 = 65535) -> [UInt8] {
        let t = timestamp.timeIntervalSince1970
        return file(frames: frames.map { (time: t, bytes: $0) }, snaplen: snaplen)
    }

    /// A whole pcap file: 24-byte global header, then per frame a 16-byte record header and the
    /// frame. Each frame carries its own `time` (seconds since the epoch, host wall clock).
    public static func file(frames: [(time: Double, bytes: [UInt8])], snaplen: UInt32 = 65535) -> [UInt8] {
        var out: [UInt8] = []
        func le32(_ v: UInt32) { for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
        func le16(_ v: UInt16) { out.append(UInt8(v & 0xFF)); out.append(UInt8(v >> 8)) }
        le32(magic); le16(2); le16(4); le32(0); le32(0); le32(snaplen); le32(linktypeEthernet)
        for f in frames {
            let whole = max(0, f.time).rounded(.down)
            let sec = UInt32(clamping: Int64(whole))
            let usec = UInt32(clamping: Int64(((max(0, f.time) - whole) * 1_000_000).rounded(.down)))
            let incl = min(UInt32(clamping: f.bytes.count), snaplen)
            le32(sec); le32(usec); le32(incl); le32(UInt32(clamping: f.bytes.count))
            out.append(contentsOf: f.bytes.prefix(Int(incl)))
        }
        return out
    }

    /// Writes `file` to `path` (created 0644, or replaced).
    public static func write(_ file: [UInt8], to path: String) throws(RingsideError) {
        do {
            try Data(file).write(to: URL(fileURLWithPath: path))
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? error.localizedDescription
            throw RingsideError("cannot write \(path): \(reason)")
        }
    }
}
