// A minimal decoder for the dump pane: virtio-net header, Ethernet, ARP, IPv4, ICMP, UDP, TCP,
// one line per layer. It reads defensively (a short buffer ends the decode, never traps).

public enum FrameSummary {
    /// Decoded layers of a virtio-net buffer, outermost first. `virtioHeaderBytes` is 12 with
    /// VIRTIO_F_VERSION_1 (num_buffers present), 10 otherwise; 0 when `bytes` start at Ethernet.
    public static func lines(_ bytes: [UInt8], virtioHeaderBytes: Int) -> [String] {
        var out: [String] = []
        var p = 0
        if virtioHeaderBytes > 0 {
            guard bytes.count >= virtioHeaderBytes else { return ["virtio-net hdr: truncated (\(bytes.count) bytes)"] }
            let flags = bytes[0]
            let gso = bytes[1]
            var s = "virtio-net hdr: flags \(flags)\(flags & 1 != 0 ? " NEEDS_CSUM" : "")\(flags & 2 != 0 ? " DATA_VALID" : "")"
            s += " gso \(gsoName(gso)) hdr_len \(le16(bytes, 2)) gso_size \(le16(bytes, 4))"
            s += " csum \(le16(bytes, 6))+\(le16(bytes, 8))"
            if virtioHeaderBytes >= 12 { s += " num_buffers \(le16(bytes, 10))" }
            out.append(s)
            p = virtioHeaderBytes
        }
        guard bytes.count >= p + 14 else {
            if bytes.count > p { out.append("Ethernet: truncated") }
            return out
        }
        let dst = mac(bytes, p), src = mac(bytes, p + 6)
        let type = be16(bytes, p + 12)
        out.append("Ethernet: \(src) → \(dst) type 0x\(DumpText.hex(Int(type), width: 4)) \(etherTypeName(type))")
        p += 14
        switch type {
        case 0x0806: out += arp(bytes, p)
        case 0x0800: out += ipv4(bytes, p)
        default: break
        }
        return out
    }

    static func arp(_ b: [UInt8], _ p: Int) -> [String] {
        guard b.count >= p + 28 else { return ["ARP: truncated"] }
        let op = be16(b, p + 6)
        let name = op == 1 ? "request" : op == 2 ? "reply" : "op \(op)"
        return ["ARP \(name): \(mac(b, p + 8)) \(ip(b, p + 14)) → \(mac(b, p + 18)) \(ip(b, p + 24))"]
    }

    static func ipv4(_ b: [UInt8], _ p: Int) -> [String] {
        guard b.count >= p + 20 else { return ["IPv4: truncated"] }
        let ihl = Int(b[p] & 0xf) * 4
        let total = Int(be16(b, p + 2))
        let ttl = b[p + 8], proto = b[p + 9]
        var out = ["IPv4: \(ip(b, p + 12)) → \(ip(b, p + 16)) len \(total) ttl \(ttl) id 0x\(DumpText.hex(Int(be16(b, p + 4)), width: 4)) proto \(proto)"]
        let q = p + max(20, ihl)
        switch proto {
        case 1:
            guard b.count >= q + 8 else { out.append("ICMP: truncated"); break }
            let t = b[q]
            let name = t == 8 ? "echo request" : t == 0 ? "echo reply" : "type \(t)"
            out.append("ICMP \(name) code \(b[q + 1]) id \(be16(b, q + 4)) seq \(be16(b, q + 6))")
        case 17:
            guard b.count >= q + 8 else { out.append("UDP: truncated"); break }
            out.append("UDP: \(be16(b, q)) → \(be16(b, q + 2)) len \(be16(b, q + 4)) (payload \(max(0, Int(be16(b, q + 4)) - 8)) bytes)")
        case 6:
            guard b.count >= q + 20 else { out.append("TCP: truncated"); break }
            let flags = b[q + 13]
            let names = [(0x02, "SYN"), (0x10, "ACK"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"), (0x20, "URG")]
                .filter { Int(flags) & $0.0 != 0 }.map { $0.1 }.joined(separator: ",")
            out.append("TCP: \(be16(b, q)) → \(be16(b, q + 2)) [\(names)] seq \(be32(b, q + 4)) ack \(be32(b, q + 8)) win \(be16(b, q + 14))")
        default:
            break
        }
        return out
    }

    static func gsoName(_ g: UInt8) -> String {
        switch g & 0x7f {
        case 0: return "none"
        case 1: return "tcpv4"
        case 3: return "udp"
        case 4: return "tcpv6"
        default: return "\(g)"
        }
    }

    static func etherTypeName(_ t: UInt16) -> String {
        switch t {
        case 0x0800: return "IPv4"
        case 0x0806: return "ARP"
        case 0x86dd: return "IPv6"
        default: return ""
        }
    }

    static func le16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
    static func be16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
    static func be32(_ b: [UInt8], _ i: Int) -> UInt32 { UInt32(be16(b, i)) << 16 | UInt32(be16(b, i + 2)) }
    static func mac(_ b: [UInt8], _ i: Int) -> String {
        b[i..<(i + 6)].map { DumpText.hex(Int($0), width: 2) }.joined(separator: ":")
    }
    static func ip(_ b: [UInt8], _ i: Int) -> String {
        b[i..<(i + 4)].map { String($0) }.joined(separator: ".")
    }
}
