import Foundation

/// A pcapng file as the tests read it, written from the format's draft (draft-ietf-opsawg-pcapng
/// §3–§4) and sharing no code with PcapngWriter: blocks of type, total length, body, total
/// length; options as code, length, value padded to 32 bits. Little-endian sections only.
public struct PcapngReading {
    public struct Packet {
        public var interface: Int
        public var timestamp: UInt64
        public var data: [UInt8]
        public var originalLength: Int
        public var comment: String?
        /// `nr N` from the comment: the frame's number on its queue since the capture began.
        public var number: Int? {
            guard let c = comment, let r = c.range(of: " nr ") else { return nil }
            return Int(c[r.upperBound...].prefix { $0.isNumber })
        }
    }
    public struct Statistics {
        public var interface: Int
        public var received: UInt64?
        public var dropped: UInt64?
        public var filterAccepted: UInt64?
        public var comment: String?
    }
    public var interfaces: [(name: String?, linkType: Int, tsresol: UInt8?)] = []
    public var packets: [Packet] = []
    public var statistics: [Statistics] = []
    public var problems: [String] = []

    public init(_ file: [UInt8]) {
        func le16(_ at: Int) -> Int { Int(file[at]) | Int(file[at + 1]) << 8 }
        func le32(_ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(file[at + $1]) << (8 * $1) } }
        func le64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(file[at + $1]) << (8 * UInt64($1)) } }
        func options(_ from: Int, _ end: Int) -> [(Int, Int, Int)] {   // (code, value offset, length)
            var out: [(Int, Int, Int)] = []
            var at = from
            while at + 4 <= end {
                let code = le16(at), length = le16(at + 2)
                if code == 0 { break }
                out.append((code, at + 4, length))
                at += 4 + (length + 3) / 4 * 4
            }
            return out
        }
        func text(_ at: Int, _ n: Int) -> String { String(decoding: file[at..<(at + n)], as: UTF8.self) }
        var at = 0
        while at + 12 <= file.count {
            let type = le32(at), total = le32(at + 4)
            guard total >= 12, total % 4 == 0, at + total <= file.count, le32(at + total - 4) == total else {
                problems.append("bad block at \(at)")
                break
            }
            let body = at + 8, end = at + total - 4
            switch type {
            case 0x0A0D0D0A:
                if le32(body) != 0x1A2B3C4D { problems.append("not little-endian") }
            case 1:
                var name: String?
                var tsresol: UInt8?
                for (code, v, n) in options(body + 8, end) {
                    if code == 2 { name = text(v, n) }
                    if code == 9, n == 1 { tsresol = file[v] }
                }
                interfaces.append((name, le16(body), tsresol))
            case 6:
                let caplen = le32(body + 12)
                let data = Array(file[(body + 20)..<(body + 20 + caplen)])
                var comment: String?
                for (code, v, n) in options(body + 20 + (caplen + 3) / 4 * 4, end) where code == 1 { comment = text(v, n) }
                packets.append(Packet(interface: le32(body), timestamp: UInt64(le32(body + 4)) << 32 | UInt64(le32(body + 8)),
                                      data: data, originalLength: le32(body + 16), comment: comment))
            case 5:
                var s = Statistics(interface: le32(body))
                for (code, v, n) in options(body + 12, end) {
                    switch code {
                    case 1: s.comment = text(v, n)
                    case 4: s.received = le64(v)
                    case 5: s.dropped = le64(v)
                    case 6: s.filterAccepted = le64(v)
                    default: break
                    }
                }
                statistics.append(s)
            default:
                problems.append("unexpected block type \(type)")
            }
            at += total
        }
        if at != file.count { problems.append("\(file.count - at) bytes after the last block") }
    }

    public init(path: String) {
        self.init(Array(FileManager.default.contents(atPath: path) ?? Data()))
    }
}
