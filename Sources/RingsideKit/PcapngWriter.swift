// pcapng, the capture format Wireshark and tshark read natively (IETF draft-ietf-opsawg-pcapng,
// "PCAP Now Generic"): unlike classic pcap (PcapWriter) it has one interface per queue, per-packet
// comments (the ring context of each frame) and interface statistics (the frames a capture
// missed). Block and option codes keep the draft's names; everything is written little-endian,
// which the Section Header Block's byte-order magic declares.

import Foundation
import Virtio
import Wire

/// Block types (draft §4, §11.1).
public enum PcapngBlockType {
    /// Section Header Block (§4.1): the byte-order magic's bytes read the same either way round.
    public static let sectionHeader: UInt32 = 0x0A0D_0D0A
    /// Interface Description Block (§4.2).
    public static let interfaceDescription: UInt32 = 0x0000_0001
    /// Interface Statistics Block (§4.6).
    public static let interfaceStatistics: UInt32 = 0x0000_0005
    /// Enhanced Packet Block (§4.3).
    public static let enhancedPacket: UInt32 = 0x0000_0006
}

/// Option codes (draft §3.5 and each block's option table), by their names in the draft.
public enum PcapngOption {
    public static let opt_endofopt: UInt16 = 0
    public static let opt_comment: UInt16 = 1
    /// SHB: the application that wrote the section.
    public static let shb_userappl: UInt16 = 4
    /// IDB: the interface's name.
    public static let if_name: UInt16 = 2
    /// IDB: timestamp resolution; 9 = 10^-9 s (nanoseconds).
    public static let if_tsresol: UInt16 = 9
    /// ISB: when the counts start and end (same units as the packets' timestamps).
    public static let isb_starttime: UInt16 = 2
    public static let isb_endtime: UInt16 = 3
    /// ISB: packets the interface received; packets it dropped (here: the capture missed them).
    public static let isb_ifrecv: UInt16 = 4
    public static let isb_ifdrop: UInt16 = 5
    /// ISB: packets the capture filter accepted.
    public static let isb_filteraccept: UInt16 = 6
}

/// Builds a pcapng section block by block. The bytes accumulate in `pending`; `take()` hands
/// them over, so a capture can stream to its file as frames arrive.
public struct PcapngWriter: Sendable {
    /// The byte-order magic (§4.1), written little-endian.
    public static let byteOrderMagic: UInt32 = 0x1A2B_3C4D
    /// if_tsresol's value for nanoseconds (10^-9: the high bit clear, exponent 9).
    public static let nanosecondResolution: UInt8 = 9

    public private(set) var pending: [UInt8] = []
    public private(set) var interfaceCount: UInt32 = 0

    /// Starts a section (version 1.0, length unknown) naming `application`.
    public init(application: String = "ringside") {
        var body: [UInt8] = []
        Self.le32(Self.byteOrderMagic, &body)
        Self.le16(1, &body)   // major version
        Self.le16(0, &body)   // minor version
        Self.le64(UInt64.max, &body)   // section length -1: not given
        Self.option(PcapngOption.shb_userappl, Array(application.utf8), &body)
        Self.endOfOptions(&body)
        block(PcapngBlockType.sectionHeader, body)
    }

    /// Adds an interface with nanosecond timestamps; returns its id (0, 1, … in order).
    @discardableResult
    public mutating func addInterface(name: String, linkType: UInt32 = PcapWriter.linktypeEthernet,
                                      snapLength: UInt32 = 0) -> UInt32 {
        var body: [UInt8] = []
        Self.le16(UInt16(truncatingIfNeeded: linkType), &body)
        Self.le16(0, &body)   // reserved
        Self.le32(snapLength, &body)   // 0: no limit
        Self.option(PcapngOption.if_name, Array(name.utf8), &body)
        Self.option(PcapngOption.if_tsresol, [Self.nanosecondResolution], &body)
        Self.endOfOptions(&body)
        block(PcapngBlockType.interfaceDescription, body)
        interfaceCount += 1
        return interfaceCount - 1
    }

    /// An Enhanced Packet Block: `data` captured on `interface` at `timestampNs` (ns since the
    /// epoch), of a packet `originalLength` bytes long, with an optional comment.
    public mutating func addPacket(interface: UInt32, timestampNs: UInt64, data: some Collection<UInt8>,
                                   originalLength: Int? = nil, comment: String? = nil) {
        var body: [UInt8] = []
        Self.le32(interface, &body)
        Self.timestamp(timestampNs, &body)
        Self.le32(UInt32(clamping: data.count), &body)
        Self.le32(UInt32(clamping: originalLength ?? data.count), &body)
        body.append(contentsOf: data)
        Self.pad(&body)
        if let comment {
            Self.option(PcapngOption.opt_comment, Array(comment.utf8), &body)
            Self.endOfOptions(&body)
        }
        block(PcapngBlockType.enhancedPacket, body)
    }

    /// An Interface Statistics Block for `interface` at `timestampNs`: what the interface saw
    /// (`received`), what was lost (`dropped`), what passed the filter, and a comment.
    public mutating func addStatistics(interface: UInt32, timestampNs: UInt64, startNs: UInt64? = nil,
                                       received: UInt64? = nil, dropped: UInt64? = nil, filterAccepted: UInt64? = nil,
                                       comment: String? = nil) {
        var body: [UInt8] = []
        Self.le32(interface, &body)
        Self.timestamp(timestampNs, &body)
        if let comment { Self.option(PcapngOption.opt_comment, Array(comment.utf8), &body) }
        if let startNs {
            var t: [UInt8] = []
            Self.timestamp(startNs, &t)
            Self.option(PcapngOption.isb_starttime, t, &body)
            t.removeAll()
            Self.timestamp(timestampNs, &t)
            Self.option(PcapngOption.isb_endtime, t, &body)
        }
        for (code, value) in [(PcapngOption.isb_ifrecv, received), (PcapngOption.isb_ifdrop, dropped),
                              (PcapngOption.isb_filteraccept, filterAccepted)] {
            guard let value else { continue }
            var v: [UInt8] = []
            Self.le64(value, &v)
            Self.option(code, v, &body)
        }
        Self.endOfOptions(&body)
        block(PcapngBlockType.interfaceStatistics, body)
    }

    /// The bytes written since the last call.
    public mutating func take() -> [UInt8] {
        defer { pending.removeAll(keepingCapacity: true) }
        return pending
    }

    // MARK: Layout (§3.1: every block is type, total length, body, total length again; §3.5 options)

    private mutating func block(_ type: UInt32, _ body: [UInt8]) {
        let total = UInt32(12 + body.count)   // bodies are padded to 32 bits already
        Self.le32(type, &pending)
        Self.le32(total, &pending)
        pending.append(contentsOf: body)
        Self.le32(total, &pending)
    }

    /// An option: code, length, value padded to 32 bits. Values over 65535 bytes are cut.
    private static func option(_ code: UInt16, _ value: [UInt8], _ out: inout [UInt8]) {
        let value = value.prefix(0xFFFC)
        le16(code, &out)
        le16(UInt16(value.count), &out)
        out.append(contentsOf: value)
        pad(&out)
    }

    private static func endOfOptions(_ out: inout [UInt8]) {
        le16(PcapngOption.opt_endofopt, &out)
        le16(0, &out)
    }

    /// A timestamp as the draft splits it: the upper 32 bits, then the lower.
    private static func timestamp(_ ns: UInt64, _ out: inout [UInt8]) {
        le32(UInt32(truncatingIfNeeded: ns >> 32), &out)
        le32(UInt32(truncatingIfNeeded: ns), &out)
    }

    private static func pad(_ out: inout [UInt8]) {
        while out.count % 4 != 0 { out.append(0) }
    }

    private static func le16(_ v: UInt16, _ out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: v)); out.append(UInt8(truncatingIfNeeded: v >> 8))
    }

    private static func le32(_ v: UInt32, _ out: inout [UInt8]) {
        for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
    }

    private static func le64(_ v: UInt64, _ out: inout [UInt8]) {
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
    }
}

/// The per-packet comment of a network frame, the same in `ringside capture` and the TUI's `w`:
/// the descriptor, the ring indices and the virtio-net header (virtio 1.2 §5.1.6) the frame
/// came with, field by field under the header's own names, then (capture) the frame's number on
/// its queue since capture began, which shows where frames were missed, e.g.
/// `desc 202 avail 458 used 204 hdr flags=0 gso=0 hdr_len=0 gso_size=0 csum_start=0 csum_offset=0 num_buffers=0 nr 17`.
/// On a packed queue (virtio 1.2 §2.8) the two are the driver's next available position and the
/// device's next used position, each as offset/wrap counter, and `desc` is the buffer id:
/// `desc 7 driver 12/w1 device 9/w0 hdr …`.
public func pcapngFrameComment(descriptor: UInt16, availIdx: UInt16?, usedIdx: UInt16?, header: some Collection<UInt8>,
                               number: UInt32? = nil, format: WireRingFormat = .split) -> String {
    var text = "desc \(descriptor)"
    if format == .packed {
        func position(_ offWrap: UInt16) -> String { "\(offWrap & 0x7FFF)/w\(offWrap >> 15)" }
        if let availIdx { text += " driver " + position(availIdx) }
        if let usedIdx { text += " device " + position(usedIdx) }
    } else {
        if let availIdx { text += " avail \(availIdx)" }
        if let usedIdx { text += " used \(usedIdx)" }
    }
    // A legacy header without MRG_RXBUF is 10 bytes: no num_buffers (virtio 1.2 §5.1.6).
    let legacy = header.count >= 10 && header.count < 12
    if let h = VirtioNetHeader(decoding: Array(header) + (legacy ? [0, 0] : [])) {
        text += " hdr flags=\(h.flags) gso=\(h.gsoType) hdr_len=\(h.hdrLen) gso_size=\(h.gsoSize)"
            + " csum_start=\(h.csumStart) csum_offset=\(h.csumOffset)" + (legacy ? "" : " num_buffers=\(h.numBuffers)")
    } else {
        text += " hdr (\(header.count) bytes: too short for a virtio-net header)"
    }
    if let number { text += " nr \(number)" }
    return text
}

/// A pcapng file written as it grows: blocks reach the file at each `flush()`, so a capture
/// that is killed leaves everything flushed readable.
public final class PcapngFile {
    public let path: String
    public var writer: PcapngWriter
    private let fd: Int32
    public private(set) var bytesWritten = 0

    /// Creates (or truncates) `path`, mode 0644, and writes the section header.
    public init(path: String, application: String = "ringside") throws(RingsideError) {
        self.path = path
        writer = PcapngWriter(application: application)
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RingsideError("cannot write \(path): \(Errno.current)") }
        try flush()
    }

    deinit { close(fd) }

    /// Writes what the writer has built so far.
    public func flush() throws(RingsideError) {
        let bytes = writer.take()
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                let e = Errno.current
                if e == .interrupted { continue }
                throw RingsideError("writing \(path): \(e)")
            }
            done += n
        }
        bytesWritten += done
    }
}
