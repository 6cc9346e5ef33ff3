import Foundation
@testable import RingsideKit
import RingsideTestSupport
import XCTest

/// PcapngWriter against the draft's layout, byte for byte where it is short enough to write by
/// hand, and through the independent reader (PcapngReading) and tshark otherwise.
final class PcapngWriterTests: XCTestCase {
    func testSectionAndInterfaceBytesFollowTheDraft() {
        var w = PcapngWriter(application: "rs")
        w.addInterface(name: "net0.rx")
        XCTAssertEqual(w.take(), [
            // Section Header Block: type, total length 40, byte-order magic, version 1.0, section length -1
            0x0a, 0x0d, 0x0d, 0x0a, 0x28, 0x00, 0x00, 0x00, 0x4d, 0x3c, 0x2b, 0x1a, 0x01, 0x00, 0x00, 0x00,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x04, 0x00, 0x02, 0x00, 0x72, 0x73, 0x00, 0x00,   // shb_userappl "rs", padded
            0x00, 0x00, 0x00, 0x00,                           // opt_endofopt
            0x28, 0x00, 0x00, 0x00,
            // Interface Description Block: type 1, length 44, LINKTYPE_ETHERNET, reserved, snaplen 0
            0x01, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x02, 0x00, 0x07, 0x00, 0x6e, 0x65, 0x74, 0x30, 0x2e, 0x72, 0x78, 0x00,   // if_name "net0.rx"
            0x09, 0x00, 0x01, 0x00, 0x09, 0x00, 0x00, 0x00,   // if_tsresol 9 (nanoseconds)
            0x00, 0x00, 0x00, 0x00,
            0x2c, 0x00, 0x00, 0x00,
        ].map { UInt8($0) })
        XCTAssertEqual(w.take(), [], "take() hands each byte over once")
    }

    func testEnhancedPacketBlockBytes() {
        var w = PcapngWriter()
        _ = w.take()
        w.addPacket(interface: 1, timestampNs: 0x0000_0001_0000_0002, data: [0xaa, 0xbb, 0xcc], originalLength: 60, comment: "hi")
        XCTAssertEqual(w.take(), [
            0x06, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00, 0x00,   // EPB, length 48
            0x01, 0x00, 0x00, 0x00,                           // interface 1
            0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,   // timestamp: upper 32 bits, then lower
            0x03, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00,   // captured 3, original 60
            0xaa, 0xbb, 0xcc, 0x00,                           // data padded to 32 bits
            0x01, 0x00, 0x02, 0x00, 0x68, 0x69, 0x00, 0x00,   // opt_comment "hi"
            0x00, 0x00, 0x00, 0x00,
            0x30, 0x00, 0x00, 0x00,
        ].map { UInt8($0) })
    }

    func testAFileReadsBackWithStatisticsAndTsharkAcceptsIt() throws {
        var w = PcapngWriter()
        let rx = w.addInterface(name: "net0.rx"), tx = w.addInterface(name: "net0.tx")
        XCTAssertEqual([rx, tx], [0, 1])
        // ARP request and an odd-length frame (padding), with comments of every length mod 4.
        let arp: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x08, 0x06,
                            0, 1, 8, 0, 6, 4, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 10, 0, 2, 15, 0, 0, 0, 0, 0, 0, 10, 0, 2, 2]
        for i in 0..<8 {
            let frame = i % 2 == 0 ? arp : arp + [UInt8](repeating: 0x5a, count: i)
            w.addPacket(interface: UInt32(i % 2), timestampNs: 1_700_000_000_000_000_000 + UInt64(i) * 1_000,
                        data: frame, comment: String(repeating: "c", count: i) + " desc \(i)")
        }
        w.addStatistics(interface: rx, timestampNs: 1_700_000_001_000_000_000, startNs: 1_700_000_000_000_000_000,
                        received: 10, dropped: 6, filterAccepted: 4, comment: "net0.rx: 4 frames written, 6 missed")
        let bytes = w.take()
        let file = PcapngReading(bytes)
        XCTAssertEqual(file.problems, [])
        XCTAssertEqual(file.interfaces.map { $0.name }, ["net0.rx", "net0.tx"])
        guard file.packets.count == 8 else { return XCTFail("8 packets, read \(file.packets.count)") }
        XCTAssertEqual(file.packets[3].data.count, arp.count + 3)
        XCTAssertEqual(file.packets[3].comment, "ccc desc 3")
        XCTAssertEqual(file.packets[3].timestamp, 1_700_000_000_000_003_000)
        XCTAssertEqual(file.statistics.first?.dropped, 6)
        XCTAssertEqual(file.statistics.first?.received, 10)
        XCTAssertEqual(file.statistics.first?.filterAccepted, 4)

        let path = NSTemporaryDirectory() + "rs-pcapng-\(getpid()).pcapng"
        defer { unlink(path) }
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let read = try runCommand(["tshark", "-r", path, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.comment",
                                   "-e", "frame.time_epoch"], timeout: 60)
        XCTAssertEqual(read.status, .exited(0), read.output)
        let lines = read.output.split(separator: "\n").filter { $0.hasPrefix("net0.") }
        guard lines.count == 8 else { return XCTFail(read.output) }
        XCTAssertTrue(lines[3].hasPrefix("net0.tx\tccc desc 3\t1700000000.000003000"), String(lines[3]))
    }

    func testFrameComment() {
        let header: [UInt8] = [1, 3, 0x36, 0, 0xb4, 0x05, 0x22, 0, 0x10, 0, 1, 0]
        XCTAssertEqual(pcapngFrameComment(descriptor: 202, availIdx: 458, usedIdx: 204, header: header, number: 17),
                       "desc 202 avail 458 used 204 hdr flags=1 gso=3 hdr_len=54 gso_size=1460 csum_start=34 csum_offset=16 num_buffers=1 nr 17")
        let packed = pcapngFrameComment(descriptor: 7, availIdx: 0x800C, usedIdx: 9, header: header, format: .packed)
        XCTAssertTrue(packed.hasPrefix("desc 7 driver 12/w1 device 9/w0 hdr flags=1 "), "a packed queue: positions with wrap counters: \(packed)")
        XCTAssertEqual(pcapngFrameComment(descriptor: 3, availIdx: nil, usedIdx: nil, header: [0, 0]),
                       "desc 3 hdr (2 bytes: too short for a virtio-net header)")
        // A legacy 10-byte header (no MRG_RXBUF) has no num_buffers to show.
        XCTAssertEqual(pcapngFrameComment(descriptor: 4, availIdx: 1, usedIdx: 2, header: header.prefix(10)),
                       "desc 4 avail 1 used 2 hdr flags=1 gso=3 hdr_len=54 gso_size=1460 csum_start=34 csum_offset=16")
    }
}

final class CaptureFilterTests: XCTestCase {
    /// Reference frames built by hand from RFC 791/768/793/826 layouts.
    func ipv4(proto: UInt8, src: [UInt8] = [10, 0, 2, 2], dst: [UInt8] = [10, 0, 2, 15], ports: (UInt16, UInt16) = (40000, 7),
              ihl: UInt8 = 5) -> [UInt8] {
        var f: [UInt8] = [0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x55, 10, 0, 2, 2, 0x08, 0x00]
        f += [0x40 | ihl, 0, 0, 40, 0, 0, 0, 0, 64, proto, 0, 0] + src + dst
        f += [UInt8](repeating: 0, count: Int(ihl - 5) * 4)
        f += [UInt8(ports.0 >> 8), UInt8(ports.0 & 0xff), UInt8(ports.1 >> 8), UInt8(ports.1 & 0xff), 0, 8, 0, 0]
        return f
    }
    var arp: [UInt8] {
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x55, 10, 0, 2, 2, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1,
         0x52, 0x55, 10, 0, 2, 2, 10, 0, 2, 2, 0, 0, 0, 0, 0, 0, 10, 0, 2, 15]
    }

    func f(_ text: String) throws -> CaptureFilter { try CaptureFilter(parsing: text) }

    func testProtocolsPortsHostsAndAnd() throws {
        let udp7 = ipv4(proto: 17), tcp80 = ipv4(proto: 6, ports: (80, 50000)), icmp = ipv4(proto: 1)
        XCTAssertTrue(try f("udp").matches(udp7))
        XCTAssertFalse(try f("udp").matches(tcp80))
        XCTAssertTrue(try f("tcp").matches(tcp80))
        XCTAssertTrue(try f("icmp").matches(icmp))
        XCTAssertTrue(try f("arp").matches(arp))
        XCTAssertFalse(try f("ip").matches(arp))
        XCTAssertTrue(try f("port 7").matches(udp7))
        XCTAssertTrue(try f("port 80").matches(tcp80), "source port")
        XCTAssertFalse(try f("port 7").matches(icmp), "ICMP has no ports")
        XCTAssertTrue(try f("port 7").matches(ipv4(proto: 17, ihl: 7)), "ports after IPv4 options")
        XCTAssertFalse(try f("port 0").matches(ipv4(proto: 17, ihl: 7)), "the options are not ports")
        XCTAssertTrue(try f("host 10.0.2.2").matches(udp7))
        XCTAssertTrue(try f("host 10.0.2.15").matches(arp), "ARP target address")
        XCTAssertFalse(try f("host 10.0.2.3").matches(arp))
        XCTAssertTrue(try f("udp and port 7 and host 10.0.2.15").matches(udp7))
        XCTAssertFalse(try f("udp and port 8").matches(udp7))
        XCTAssertFalse(try f("UDP AND tcp").matches(udp7), "case-insensitive words, all must hold")
        XCTAssertTrue(CaptureFilter().matches(arp), "no filter: everything")
        for short in [[], Array(udp7.prefix(13)), Array(udp7.prefix(30)), Array(udp7.prefix(36))] {
            XCTAssertFalse(try f("port 7").matches(short), "\(short.count) bytes: too short, never a trap")
            _ = try f("host 10.0.2.2 and udp and arp and icmp").matches(short)
        }
    }

    func testBadExpressionsAreRejectedWithAReason() {
        let cases: [(String, String)] = [
            ("", "empty filter"), ("udp or tcp", "expected `and`"), ("port", "needs a number"), ("port 70000", "not a port"),
            ("host 10.0.2", "not an IPv4 address"), ("host 10.0.2.256", "not an IPv4"), ("host 1.2.3.4.5", "not an IPv4"),
            ("udp and", "nothing after"), ("and udp", "needs something before"), ("bogus", "unknown word \"bogus\""),
            ("port -1", "not a port"), ("host 1..2.3", "not an IPv4"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try CaptureFilter(parsing: text), text) { error in
                let message = (error as? CommandError)?.message ?? ""
                XCTAssertTrue(message.contains(expected), "\(text): \(message)")
            }
        }
    }
}

final class CaptureAccountingTests: XCTestCase {
    func testGapsTrailingFramesAndOlderNumbers() {
        var a = CaptureAccounting()
        a.counts(frames: 10, missed: 0)     // the capture starts at frame 10
        a.frame(number: 10)
        a.frame(number: 13)                 // 11 and 12 missed
        a.frame(number: 9)                  // from before the capture: not a gap
        a.frame(number: 14)
        a.counts(frames: 18, missed: 1)     // 15, 16, 17 never arrived
        XCTAssertEqual(a.missed, 2)
        a.finish()
        XCTAssertEqual(a.missed, 5)
        XCTAssertEqual(a.received, 4)
        XCTAssertEqual(a.kernelMissed, 1)
    }

    func testNumbersWrap() {
        var a = CaptureAccounting()
        a.frame(number: .max - 1)
        a.frame(number: 1)                  // .max and 0 missed
        XCTAssertEqual(a.missed, 2)
    }
}
