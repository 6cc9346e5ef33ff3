// Header decoding for `ringside ctl dump` and the TUI's dump pane. Everything here takes
// arbitrary bytes and never traps: short or inconsistent headers are reported as such and
// decoding stops there. The virtio-net header's layout and flag/GSO values are Sources/Virtio's
// (virtio 1.2 §5.1.6), not spelled again here.

import Virtio

/// One decoded protocol layer: a title and `name: value` fields.
public struct PacketLayer: Equatable, Sendable {
    public var title: String
    public var fields: [(String, String)]
    /// The layer on one line (`UDP: 37575 → 7 len 12 (payload 4 bytes)`), for the TUI's dump
    /// pane; nil for payload layers, which the hex dump shows.
    public var summary: String?

    public init(title: String, fields: [(String, String)], summary: String? = nil) {
        self.title = title
        self.fields = fields
        self.summary = summary
    }

    public static func == (a: PacketLayer, b: PacketLayer) -> Bool {
        a.title == b.title && a.summary == b.summary && a.fields.count == b.fields.count
            && zip(a.fields, b.fields).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}

/// The headers of one buffer: virtio-net header (optional), Ethernet, ARP or IPv4 with ICMP/UDP/TCP.
public struct PacketDescription: Sendable {
    public var layers: [PacketLayer] = []
    /// Problems met (truncated header, bad length...); decoding stops at the first.
    public var notes: [String] = []
    /// The UDP payload, when the frame is UDP over IPv4.
    public var udpPayload: [UInt8]?
    /// The Ethernet frame (after the virtio-net header, when there is one).
    public var ethernetFrame: [UInt8] = []

    /// Human-readable, one layer per paragraph.
    public var text: String {
        var s = ""
        for layer in layers {
            s += layer.title + "\n"
            let width = layer.fields.map { $0.0.count }.max() ?? 0
            for (k, v) in layer.fields {
                s += "  " + k + ":" + String(repeating: " ", count: width - k.count + 1) + v + "\n"
            }
        }
        for n in notes { s += "note: " + n + "\n" }
        return s
    }

    /// One line per header, outermost first, then the notes: the compact form of `text`.
    public var summaryLines: [String] {
        layers.compactMap(\.summary) + notes.map { "note: " + $0 }
    }
}

/// Decodes packet headers from arbitrary bytes without ever trapping.
public enum FrameDecoder {
    /// Size of `struct virtio_net_hdr` with `num_buffers` (virtio 1.x, always present for modern devices).
    public static let virtioNetHeaderBytes = VirtioNetHeader.size
    /// Size of `struct virtio_net_hdr` without `num_buffers` (a legacy device that negotiated
    /// neither VIRTIO_F_VERSION_1 nor VIRTIO_NET_F_MRG_RXBUF; virtio 1.2 §5.1.6).
    public static let legacyVirtioNetHeaderBytes = 10

    /// Decodes `bytes`; with `virtioHeader` the first 12 bytes are a virtio-net header.
    public static func describe(_ bytes: [UInt8], virtioHeader: Bool = true) -> PacketDescription {
        describe(bytes, virtioHeaderBytes: virtioHeader ? virtioNetHeaderBytes : 0)
    }

    /// Decodes `bytes`, which start with a virtio-net header of `virtioHeaderBytes` (12, 10 for a
    /// legacy device, 0 when `bytes` start at Ethernet).
    public static func describe(_ bytes: [UInt8], virtioHeaderBytes: Int) -> PacketDescription {
        var d = PacketDescription()
        var r = ByteCursor(bytes)
        if virtioHeaderBytes > 0 {
            guard bytes.count >= virtioHeaderBytes else {
                d.notes.append("\(bytes.count) bytes: shorter than the \(virtioHeaderBytes)-byte virtio-net header")
                return d
            }
            let flags = r.u8(0), gso = r.u8(1)
            let flagNames = [(VIRTIO_NET_HDR_F_NEEDS_CSUM, "NEEDS_CSUM"), (VIRTIO_NET_HDR_F_DATA_VALID, "DATA_VALID"),
                             (VIRTIO_NET_HDR_F_RSC_INFO, "RSC_INFO")].filter { flags & $0.0 != 0 }.map { $0.1 }
            let gsoName: String
            switch gso & ~VIRTIO_NET_HDR_GSO_ECN {
            case VIRTIO_NET_HDR_GSO_NONE: gsoName = "NONE"
            case VIRTIO_NET_HDR_GSO_TCPV4: gsoName = "TCPV4"
            case VIRTIO_NET_HDR_GSO_UDP: gsoName = "UDP"
            case VIRTIO_NET_HDR_GSO_TCPV6: gsoName = "TCPV6"
            case VIRTIO_NET_HDR_GSO_UDP_L4: gsoName = "UDP_L4"
            default: gsoName = "?"
            }
            let flagsText = hex2(flags) + (flagNames.isEmpty ? "" : " (" + flagNames.joined(separator: "|") + ")")
            let gsoText = gsoName + ((gso & VIRTIO_NET_HDR_GSO_ECN) != 0 ? "|ECN" : "")
            var fields = [
                ("flags", flagsText),
                ("gso_type", hex2(gso) + " (" + gsoText + ")"),
                ("hdr_len", String(r.le16(2))),
                ("gso_size", String(r.le16(4))),
                ("csum_start", String(r.le16(6))),
                ("csum_offset", String(r.le16(8))),
            ]
            var summary = "virtio-net hdr: flags \(flagsText) gso \(gsoText) hdr_len \(r.le16(2)) gso_size \(r.le16(4))"
                + " csum \(r.le16(6))+\(r.le16(8))"
            if virtioHeaderBytes >= virtioNetHeaderBytes {
                fields.append(("num_buffers", String(r.le16(10))))
                summary += " num_buffers \(r.le16(10))"
            }
            d.layers.append(PacketLayer(title: "virtio-net header (\(virtioHeaderBytes) bytes)", fields: fields, summary: summary))
            r = ByteCursor(Array(bytes[virtioHeaderBytes...]))
        }
        d.ethernetFrame = r.bytes
        decodeEthernet(&r, into: &d)
        return d
    }

    static func decodeEthernet(_ r: inout ByteCursor, into d: inout PacketDescription) {
        guard r.count >= 14 else {
            d.notes.append("\(r.count) bytes left: shorter than an Ethernet header (14)")
            return
        }
        let type = r.be16(12)
        let dst = mac(r, 0), src = mac(r, 6)
        d.layers.append(PacketLayer(title: "Ethernet II (\(r.count) bytes)", fields: [
            ("dst", dst), ("src", src), ("type", hex4(type) + " (" + etherTypeName(type) + ")"),
        ], summary: "Ethernet: \(src) → \(dst) type \(hex4(type)) \(etherTypeName(type))"))
        let payload = ByteCursor(r.slice(14, r.count - 14))
        switch type {
        case 0x0806: decodeARP(payload, into: &d)
        case 0x0800: decodeIPv4(payload, into: &d)
        default: break
        }
    }

    static func decodeARP(_ r: ByteCursor, into d: inout PacketDescription) {
        guard r.count >= 28 else {
            d.notes.append("ARP: \(r.count) bytes, shorter than 28")
            return
        }
        let op = r.be16(6)
        let sender = mac(r, 8) + " " + ipv4(r, 14), target = mac(r, 18) + " " + ipv4(r, 24)
        d.layers.append(PacketLayer(title: "ARP", fields: [
            ("htype", String(r.be16(0))), ("ptype", hex4(r.be16(2))),
            ("hlen", String(r.u8(4))), ("plen", String(r.u8(5))),
            ("op", String(op) + (op == 1 ? " (request)" : op == 2 ? " (reply)" : "")),
            ("sender", sender),
            ("target", target),
        ], summary: "ARP \(op == 1 ? "request" : op == 2 ? "reply" : "op \(op)"): \(sender) → \(target)"))
    }

    static func decodeIPv4(_ r: ByteCursor, into d: inout PacketDescription) {
        guard r.count >= 20 else {
            d.notes.append("IPv4: \(r.count) bytes, shorter than 20")
            return
        }
        let vihl = r.u8(0)
        let ihl = Int(vihl & 0xF) * 4
        let total = Int(r.be16(2))
        let proto = r.u8(9)
        let flagsFrag = r.be16(6)
        var flags: [String] = []
        if flagsFrag & 0x4000 != 0 { flags.append("DF") }
        if flagsFrag & 0x2000 != 0 { flags.append("MF") }
        let checksumOK = ihl >= 20 && ihl <= r.count && internetChecksum(r.slice(0, ihl)) == 0
        d.layers.append(PacketLayer(title: "IPv4", fields: [
            ("version", String(vihl >> 4)), ("ihl", String(ihl)),
            ("tos", hex2(r.u8(1))), ("total_length", String(total)),
            ("id", hex4(r.be16(4))),
            ("flags", flags.isEmpty ? "none" : flags.joined(separator: "|")),
            ("fragment_offset", String(Int(flagsFrag & 0x1FFF) * 8)),
            ("ttl", String(r.u8(8))),
            ("protocol", String(proto) + " (" + ipProtocolName(proto) + ")"),
            ("checksum", hex4(r.be16(10)) + (checksumOK ? " (ok)" : " (bad)")),
            ("src", ipv4(r, 12)), ("dst", ipv4(r, 16)),
        ], summary: "IPv4: \(ipv4(r, 12)) → \(ipv4(r, 16)) len \(total) ttl \(r.u8(8)) id \(hex4(r.be16(4))) proto \(proto)"))
        guard vihl >> 4 == 4 else { d.notes.append("IPv4: version \(vihl >> 4)"); return }
        guard ihl >= 20, ihl <= r.count else { d.notes.append("IPv4: header length \(ihl) invalid for \(r.count) bytes"); return }
        guard total >= ihl else { d.notes.append("IPv4: total length \(total) below header length \(ihl)"); return }
        var end = total
        if total > r.count {
            d.notes.append("IPv4: total length \(total) exceeds the \(r.count) bytes captured")
            end = r.count
        }
        guard flagsFrag & 0x1FFF == 0 else { return }  // a later fragment carries no L4 header
        let payload = ByteCursor(r.slice(ihl, end - ihl))
        switch proto {
        case 1: decodeICMP(payload, into: &d)
        case 17: decodeUDP(payload, into: &d)
        case 6: decodeTCP(payload, into: &d)
        default: break
        }
    }

    static func decodeICMP(_ r: ByteCursor, into d: inout PacketDescription) {
        guard r.count >= 4 else { d.notes.append("ICMP: \(r.count) bytes, shorter than 4"); return }
        let type = r.u8(0)
        let typeName = type == 8 ? "echo request" : type == 0 ? "echo reply" : type == 3 ? "destination unreachable" : nil
        var fields: [(String, String)] = [
            ("type", String(type) + (typeName.map { " (\($0))" } ?? "")),
            ("code", String(r.u8(1))),
            ("checksum", hex4(r.be16(2)) + (internetChecksum(r.bytes) == 0 ? " (ok)" : " (bad)")),
        ]
        var summary = "ICMP \(typeName ?? "type \(type)") code \(r.u8(1))"
        if (type == 0 || type == 8) && r.count >= 8 {
            fields.append(("id", String(r.be16(4))))
            fields.append(("seq", String(r.be16(6))))
            fields.append(("data", "\(r.count - 8) bytes"))
            summary += " id \(r.be16(4)) seq \(r.be16(6))"
        }
        d.layers.append(PacketLayer(title: "ICMP", fields: fields, summary: summary))
    }

    static func decodeUDP(_ r: ByteCursor, into d: inout PacketDescription) {
        guard r.count >= 8 else { d.notes.append("UDP: \(r.count) bytes, shorter than 8"); return }
        let length = Int(r.be16(4))
        var end = r.count
        var lengthNote: String?
        if length < 8 || length > r.count {
            lengthNote = "UDP: length \(length) inconsistent with \(r.count) bytes"
        } else {
            end = length
        }
        let payload = r.slice(8, end - 8)
        d.layers.append(PacketLayer(title: "UDP", fields: [
            ("src_port", String(r.be16(0))), ("dst_port", String(r.be16(2))),
            ("length", String(length)), ("checksum", hex4(r.be16(6))),
        ], summary: "UDP: \(r.be16(0)) → \(r.be16(2)) len \(length) (payload \(payload.count) bytes)"))
        if let lengthNote { d.notes.append(lengthNote) }
        d.udpPayload = payload
        d.layers.append(PacketLayer(title: "UDP payload (\(payload.count) bytes)", fields: [("data", preview(payload))]))
    }

    static func decodeTCP(_ r: ByteCursor, into d: inout PacketDescription) {
        guard r.count >= 20 else { d.notes.append("TCP: \(r.count) bytes, shorter than 20"); return }
        let offset = Int(r.u8(12) >> 4) * 4
        let flagBits = r.u8(13)
        let names = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"]
        var flags: [String] = []
        for (i, n) in names.enumerated() where flagBits & (1 << i) != 0 { flags.append(n) }
        d.layers.append(PacketLayer(title: "TCP", fields: [
            ("src_port", String(r.be16(0))), ("dst_port", String(r.be16(2))),
            ("seq", String(r.be32(4))), ("ack", String(r.be32(8))),
            ("data_offset", String(offset)),
            ("flags", hex2(flagBits) + (flags.isEmpty ? "" : " (" + flags.joined(separator: "|") + ")")),
            ("window", String(r.be16(14))), ("checksum", hex4(r.be16(16))), ("urgent", String(r.be16(18))),
        ], summary: "TCP: \(r.be16(0)) → \(r.be16(2)) [\(flags.joined(separator: ","))] seq \(r.be32(4)) ack \(r.be32(8)) win \(r.be16(14))"))
        if offset < 20 || offset > r.count {
            d.notes.append("TCP: data offset \(offset) invalid for \(r.count) bytes")
        } else if r.count > offset {
            d.layers.append(PacketLayer(title: "TCP payload (\(r.count - offset) bytes)", fields: [("data", preview(r.slice(offset, r.count - offset)))]))
        }
    }

    // MARK: helpers

    static func etherTypeName(_ t: UInt16) -> String {
        switch t {
        case 0x0800: return "IPv4"
        case 0x0806: return "ARP"
        case 0x86DD: return "IPv6"
        case 0x8100: return "802.1Q"
        default: return t < 0x0600 ? "802.3 length" : "unknown"
        }
    }

    static func ipProtocolName(_ p: UInt8) -> String {
        switch p {
        case 1: return "ICMP"
        case 6: return "TCP"
        case 17: return "UDP"
        default: return "unknown"
        }
    }

    static func mac(_ r: ByteCursor, _ at: Int) -> String {
        macAddressText((0..<6).map { r.u8(at + $0) })
    }

    static func ipv4(_ r: ByteCursor, _ at: Int) -> String {
        (0..<4).map { String(r.u8(at + $0)) }.joined(separator: ".")
    }

    static func preview(_ bytes: [UInt8]) -> String {
        let shown = bytes.prefix(32)
        let ascii = String(shown.map { (0x20...0x7e).contains($0) ? Character(UnicodeScalar($0)) : "." })
        return shown.map { hex2($0, prefix: false) }.joined(separator: " ") + (bytes.count > 32 ? " …" : "") + "  \"" + ascii + "\""
    }

    /// RFC 1071 one's-complement sum; 0 over a header that includes a correct checksum.
    static func internetChecksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count { sum &+= UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]); i += 2 }
        if i < bytes.count { sum &+= UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) &+ (sum >> 16) }
        return ~UInt16(truncatingIfNeeded: sum)
    }
}

func hex2(_ v: UInt8, prefix: Bool = true) -> String {
    (prefix ? "0x" : "") + hexDigits(UInt64(v), width: 2)
}

func hex4(_ v: UInt16) -> String {
    "0x" + hexDigits(UInt64(v), width: 4)
}

/// Bounds-checked reads: anything past the end reads as 0 (callers check lengths first).
struct ByteCursor {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var count: Int { bytes.count }
    func u8(_ i: Int) -> UInt8 { i >= 0 && i < bytes.count ? bytes[i] : 0 }
    func be16(_ i: Int) -> UInt16 { UInt16(u8(i)) << 8 | UInt16(u8(i + 1)) }
    func le16(_ i: Int) -> UInt16 { UInt16(u8(i + 1)) << 8 | UInt16(u8(i)) }
    func be32(_ i: Int) -> UInt32 { UInt32(be16(i)) << 16 | UInt32(be16(i + 2)) }
    func slice(_ start: Int, _ length: Int) -> [UInt8] {
        let s = max(0, min(start, bytes.count))
        let e = max(s, min(s + max(0, length), bytes.count))
        return Array(bytes[s..<e])
    }
}
