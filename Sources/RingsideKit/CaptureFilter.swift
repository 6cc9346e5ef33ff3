// `ringside capture --filter EXPR`: which frames are written, decided in the monitor (the kernel
// copies every frame; filtering there would need a language in the kernel). A small subset of
// the pcap-filter language, on Ethernet II frames:
//
//     expr      = primitive { "and" primitive }
//     primitive = "udp" | "tcp" | "icmp" | "arp" | "ip" | "port" N | "host" A.B.C.D
//
// `port N` matches a TCP or UDP source or destination port; `host A` an IPv4 source or
// destination address, or an ARP sender or target protocol address.

/// One test on a frame.
public enum CaptureFilterPrimitive: Equatable, Sendable {
    case udp, tcp, icmp, arp, ip
    case port(UInt16)
    case host([UInt8])
}

/// A parsed filter: every primitive must match (`and`). The empty filter matches everything.
public struct CaptureFilter: Equatable, Sendable {
    public var primitives: [CaptureFilterPrimitive]

    public static let usage = "udp, tcp, icmp, arp, ip, port N, host A.B.C.D, combined with `and`"

    /// Ethernet II type field values (IEEE 802 numbers, as in <net/ethernet.h>).
    static let ETHERTYPE_IP: UInt16 = 0x0800
    static let ETHERTYPE_ARP: UInt16 = 0x0806
    /// IPv4 protocol numbers (IANA, as in <netinet/in.h>).
    static let IPPROTO_ICMP: UInt8 = 1
    static let IPPROTO_TCP: UInt8 = 6
    static let IPPROTO_UDP: UInt8 = 17

    public init(primitives: [CaptureFilterPrimitive] = []) { self.primitives = primitives }

    /// Parses `text`; the error says which word is wrong and what would be right.
    public init(parsing text: String) throws(CommandError) {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { String($0).lowercased() }
        guard !words.isEmpty else { throw CommandError("empty filter; use \(CaptureFilter.usage)") }
        var primitives: [CaptureFilterPrimitive] = []
        var i = 0
        while i < words.count {
            if !primitives.isEmpty {
                guard words[i] == "and" else {
                    throw CommandError("filter: expected `and` before \"\(words[i])\" (only `and` combines: \(CaptureFilter.usage))")
                }
                i += 1
                guard i < words.count else { throw CommandError("filter: nothing after the last `and`") }
            }
            let word = words[i]
            i += 1
            switch word {
            case "udp": primitives.append(.udp)
            case "tcp": primitives.append(.tcp)
            case "icmp": primitives.append(.icmp)
            case "arp": primitives.append(.arp)
            case "ip": primitives.append(.ip)
            case "port":
                guard i < words.count else { throw CommandError("filter: `port` needs a number (port 7)") }
                guard let n = UInt16(words[i]) else { throw CommandError("filter: \"\(words[i])\" is not a port (0…65535)") }
                primitives.append(.port(n))
                i += 1
            case "host":
                guard i < words.count else { throw CommandError("filter: `host` needs an IPv4 address (host 10.0.2.2)") }
                guard let a = CaptureFilter.ipv4(words[i]) else {
                    throw CommandError("filter: \"\(words[i])\" is not an IPv4 address (A.B.C.D)")
                }
                primitives.append(.host(a))
                i += 1
            case "and":
                throw CommandError("filter: `and` needs something before it")
            default:
                throw CommandError("filter: unknown word \"\(word)\"; use \(CaptureFilter.usage)")
            }
        }
        self.primitives = primitives
    }

    static func ipv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }

    /// Whether Ethernet `frame` passes. A frame too short for what a primitive looks at fails it.
    public func matches(_ frame: some Collection<UInt8>) -> Bool {
        let f = Array(frame)
        return primitives.allSatisfy { CaptureFilter.matches($0, f) }
    }

    private static func matches(_ p: CaptureFilterPrimitive, _ f: [UInt8]) -> Bool {
        func be16(_ at: Int) -> UInt16? { at + 2 <= f.count ? UInt16(f[at]) << 8 | UInt16(f[at + 1]) : nil }
        func bytes(_ at: Int, _ n: Int) -> [UInt8]? { at + n <= f.count ? Array(f[at..<(at + n)]) : nil }
        let etherType = be16(12)
        // IPv4 (RFC 791): the protocol at byte 9, addresses at 12 and 16, the header IHL words long.
        let ip = 14
        let isIPv4 = etherType == ETHERTYPE_IP && f.count >= ip + 20 && f[ip] >> 4 == 4
        let proto: UInt8? = isIPv4 ? f[ip + 9] : nil
        switch p {
        case .ip: return isIPv4
        case .udp: return proto == IPPROTO_UDP
        case .tcp: return proto == IPPROTO_TCP
        case .icmp: return proto == IPPROTO_ICMP
        case .arp: return etherType == ETHERTYPE_ARP
        case .port(let n):
            guard proto == IPPROTO_UDP || proto == IPPROTO_TCP else { return false }
            let l4 = ip + Int(f[ip] & 0x0F) * 4
            return be16(l4) == n || be16(l4 + 2) == n
        case .host(let a):
            if isIPv4 { return bytes(ip + 12, 4) == a || bytes(ip + 16, 4) == a }
            // ARP for IPv4 over Ethernet (RFC 826): sender protocol address at 14, target at 24.
            if etherType == ETHERTYPE_ARP { return bytes(ip + 14, 4) == a || bytes(ip + 24, 4) == a }
            return false
        }
    }
}
