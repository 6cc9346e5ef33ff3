// Ethernet/ARP/IPv4/ICMP/UDP frames built and parsed by the tests themselves, independent of the
// kernel's NetStack module, so a shared bug cannot make both sides agree. MAC and IPv4 addresses are
// plain byte arrays here (NetStack's `IPv4Address` is a type of its own).

public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
}

public func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
public func read16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) << 8 | UInt16(b[at + 1]) }

/// RFC 1071 internet checksum of `bytes` (odd length padded with a zero byte).
public func internetChecksum(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt16 {
    var sum = initial
    var i = 0
    while i + 1 < bytes.count {
        sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
        i += 2
    }
    if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
    while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
    return ~UInt16(sum)
}

public func ethernet(dst: [UInt8], src: [UInt8], type: UInt16, payload: [UInt8]) -> [UInt8] {
    dst + src + be16(type) + payload
}

/// An ARP packet for Ethernet/IPv4 (op 1 request, 2 reply).
public func arp(op: UInt16, senderMAC: [UInt8], senderIP: [UInt8], targetMAC: [UInt8], targetIP: [UInt8]) -> [UInt8] {
    be16(1) + be16(0x0800) + [6, 4] + be16(op) + senderMAC + senderIP + targetMAC + targetIP
}

/// An IPv4 header (20 bytes, no options) with a correct checksum.
public func ipv4Header(src: [UInt8], dst: [UInt8], proto: UInt8, payloadLength: Int,
                id: UInt16 = 0x1234, ttl: UInt8 = 64, flagsFragment: UInt16 = 0x4000,
                totalLengthOverride: Int? = nil) -> [UInt8] {
    let total = totalLengthOverride ?? (20 + payloadLength)
    var h: [UInt8] = [0x45, 0] + be16(UInt16(total)) + be16(id) + be16(flagsFragment) + [ttl, proto, 0, 0] + src + dst
    let c = internetChecksum(h)
    h[10] = UInt8(c >> 8); h[11] = UInt8(c & 0xff)
    return h
}

/// A UDP datagram with a correct checksum over the IPv4 pseudo-header.
public func udp(src: [UInt8], dst: [UInt8], srcPort: UInt16, dstPort: UInt16, payload: [UInt8]) -> [UInt8] {
    let length = 8 + payload.count
    var d = be16(srcPort) + be16(dstPort) + be16(UInt16(length)) + [0, 0] + payload
    var c = internetChecksum(src + dst + [0, 17] + be16(UInt16(length)) + d)
    if c == 0 { c = 0xffff }
    d[6] = UInt8(c >> 8); d[7] = UInt8(c & 0xff)
    return d
}

public func icmpEcho(type: UInt8, id: UInt16, seq: UInt16, payload: [UInt8]) -> [UInt8] {
    var m: [UInt8] = [type, 0, 0, 0] + be16(id) + be16(seq) + payload
    let c = internetChecksum(m)
    m[2] = UInt8(c >> 8); m[3] = UInt8(c & 0xff)
    return m
}

/// A decoded frame, as far as the tests care.
public struct ParsedFrame: CustomStringConvertible {
    public var dst: [UInt8], src: [UInt8], type: UInt16
    public var raw: [UInt8]
    public var payload: [UInt8] { Array(raw[14...]) }

    public init?(_ raw: [UInt8]) {
        guard raw.count >= 14 else { return nil }
        self.raw = raw
        dst = Array(raw[0..<6]); src = Array(raw[6..<12]); type = read16(raw, 12)
    }

    public struct ARP { public var op: UInt16; public var senderMAC: [UInt8]; public var senderIP: [UInt8]; public var targetMAC: [UInt8]; public var targetIP: [UInt8] }
    public var arp: ARP? {
        let p = payload
        guard type == EtherType.arp, p.count >= 28, read16(p, 0) == 1, read16(p, 2) == 0x0800, p[4] == 6, p[5] == 4 else { return nil }
        return ARP(op: read16(p, 6), senderMAC: Array(p[8..<14]), senderIP: Array(p[14..<18]),
                   targetMAC: Array(p[18..<24]), targetIP: Array(p[24..<28]))
    }

    public struct IPv4 { public var header: [UInt8]; public var src: [UInt8]; public var dst: [UInt8]; public var proto: UInt8; public var body: [UInt8]; public var headerChecksumOK: Bool }
    public var ipv4: IPv4? {
        let p = payload
        guard type == EtherType.ipv4, p.count >= 20, p[0] >> 4 == 4 else { return nil }
        let ihl = Int(p[0] & 0xf) * 4
        let total = Int(read16(p, 2))
        guard ihl >= 20, total >= ihl, total <= p.count else { return nil }
        let header = Array(p[0..<ihl])
        return IPv4(header: header, src: Array(p[12..<16]), dst: Array(p[16..<20]), proto: p[9],
                    body: Array(p[ihl..<total]), headerChecksumOK: internetChecksum(header) == 0)
    }

    public struct UDP { public var srcPort: UInt16; public var dstPort: UInt16; public var payload: [UInt8]; public var checksumOK: Bool }
    public var udp: UDP? {
        guard let ip = ipv4, ip.proto == 17, ip.body.count >= 8 else { return nil }
        let b = ip.body
        let length = Int(read16(b, 4))
        guard length >= 8, length <= b.count else { return nil }
        let stored = read16(b, 6)
        let ok = stored == 0 || internetChecksum(ip.src + ip.dst + [0, 17] + be16(UInt16(length)) + Array(b[0..<length])) == 0
        return UDP(srcPort: read16(b, 0), dstPort: read16(b, 2), payload: Array(b[8..<length]), checksumOK: ok)
    }

    public struct ICMP { public var type: UInt8; public var code: UInt8; public var id: UInt16; public var seq: UInt16; public var payload: [UInt8]; public var checksumOK: Bool }
    public var icmp: ICMP? {
        guard let ip = ipv4, ip.proto == 1, ip.body.count >= 8 else { return nil }
        let b = ip.body
        return ICMP(type: b[0], code: b[1], id: read16(b, 4), seq: read16(b, 6), payload: Array(b[8...]),
                    checksumOK: internetChecksum(b) == 0)
    }

    public var description: String {
        if let a = arp { return "ARP op \(a.op) \(a.senderIP)→\(a.targetIP)" }
        if let u = udp { return "UDP \(ipv4!.src):\(u.srcPort)→\(ipv4!.dst):\(u.dstPort) \(u.payload.count) bytes" }
        if let i = icmp { return "ICMP type \(i.type) id \(i.id) seq \(i.seq)" }
        return "ethertype 0x\(String(type, radix: 16)) \(raw.count) bytes: \(hex(raw))"
    }
}
