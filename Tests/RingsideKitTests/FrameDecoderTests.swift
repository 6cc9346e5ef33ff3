import Foundation
import RingsideTestSupport
import XCTest
import Wire
@testable import RingsideKit

/// Hex dump layout and header decoding, no QEMU needed.
final class FrameDecoderTests: XCTestCase {
    func testHexDumpMatchesHexdumpC() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/hexdump") else {
            return XCTFail("/usr/bin/hexdump missing (apt-get install bsdextrautils)")
        }
        var rng = SplitMix64(seed: 1)
        var cases: [[UInt8]] = [[], [0x41], Array(0...255), [UInt8](repeating: 0, count: 100),
                                [UInt8](repeating: 7, count: 32), Array("Hello world\n".utf8)]
        cases.append([UInt8](repeating: 0, count: 48) + [1] + [UInt8](repeating: 0, count: 47))
        cases.append([UInt8](repeating: 0xff, count: 16) + [UInt8](repeating: 0xff, count: 16) + [1, 2, 3])
        for _ in 0..<20 {
            let n = Int.random(in: 0...300, using: &rng)
            var bytes = [UInt8].random(count: n, using: &rng)
            if n > 64 && Bool.random(using: &rng) { for i in 16..<64 { bytes[i] = bytes[i % 16] } }
            cases.append(bytes)
        }
        let path = NSTemporaryDirectory() + "ringside-hexdump-\(getpid()).bin"
        defer { unlink(path) }
        for bytes in cases {
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            let r = try runCommand(["/usr/bin/hexdump", "-C", path])
            XCTAssertEqual(hexDumpC(bytes), r.output, "for \(bytes.count) bytes: \(hex(bytes))")
        }
    }

    func testDecodesAUDPFrame() {
        let payload = Array("hi".utf8)
        var frame: [UInt8] = [UInt8](repeating: 0, count: 10) + [1, 0]          // virtio-net header
        frame += [0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0a, 0, 2, 2, 0x08, 0x00]
        var ip: [UInt8] = [0x45, 0, 0, UInt8(20 + 8 + payload.count), 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 2, 2, 10, 0, 2, 15]
        let c = FrameDecoder.internetChecksum(ip)
        ip[10] = UInt8(c >> 8); ip[11] = UInt8(c & 0xff)
        frame += ip + [0x30, 0x39, 0, 7, 0, UInt8(8 + payload.count), 0, 0] + payload
        let d = FrameDecoder.describe(frame)
        XCTAssertEqual(d.udpPayload, payload)
        XCTAssertEqual(d.layers.map(\.title).prefix(4), ["virtio-net header (12 bytes)", "Ethernet II (44 bytes)", "IPv4", "UDP"])
        XCTAssertTrue(d.text.contains("checksum:        0x"), d.text)
        XCTAssertTrue(d.text.contains("(ok)"), d.text)
        XCTAssertTrue(d.text.contains("num_buffers: 1"), d.text)
        XCTAssertTrue(d.notes.isEmpty, d.text)
    }

    func testSummaryLinesOneLinePerHeader() {
        let payload = Array("ping".utf8)
        let ethernet: [UInt8] = [0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0a, 0, 2, 2, 0x08, 0x00]
        let ip: [UInt8] = [0x45, 0, 0, UInt8(20 + 8 + payload.count), 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 2, 2, 10, 0, 2, 15]
        let udp: [UInt8] = [0x92, 0xc7, 0, 7, 0, UInt8(8 + payload.count), 0, 0]
        let modern = [UInt8](repeating: 0, count: 10) + [1, 0] + ethernet + ip + udp + payload
        XCTAssertEqual(FrameDecoder.describe(modern).summaryLines, [
            "virtio-net hdr: flags 0x00 gso NONE hdr_len 0 gso_size 0 csum 0+0 num_buffers 1",
            "Ethernet: 52:55:0a:00:02:02 → 52:54:00:12:34:56 type 0x0800 IPv4",
            "IPv4: 10.0.2.2 → 10.0.2.15 len 32 ttl 64 id 0x0001 proto 17",
            "UDP: 37575 → 7 len 12 (payload 4 bytes)",
        ])
        // A legacy device's 10-byte header has no num_buffers; the Ethernet frame follows it.
        let legacy = FrameDecoder.describe([UInt8](repeating: 0, count: 10) + ethernet + ip + udp + payload, virtioHeaderBytes: 10)
        XCTAssertEqual(legacy.layers.first?.title, "virtio-net header (10 bytes)")
        XCTAssertFalse(legacy.text.contains("num_buffers"), legacy.text)
        XCTAssertEqual(legacy.udpPayload, payload)
        XCTAssertEqual(FrameDecoder.describe(ethernet + ip + udp + payload, virtioHeaderBytes: 0).summaryLines.count, 3)
        // Truncation is a note line, not a trap.
        XCTAssertEqual(FrameDecoder.describe(Array(modern.prefix(20))).summaryLines.last,
                       "note: 8 bytes left: shorter than an Ethernet header (14)")
    }

    func testHexDumpLinesAndUnsqueezed() {
        let bytes = [UInt8](repeating: 0, count: 48) + [0x41]
        XCTAssertEqual(hexDumpCLines(bytes), [
            "00000000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|",
            "*",
            "00000030  41                                                |A|",
            "00000031",
        ])
        XCTAssertEqual(hexDumpCLines(bytes, squeeze: false).count, 5, "hexdump -C -v prints every line")
        XCTAssertEqual(hexDumpC(bytes), hexDumpCLines(bytes).map { $0 + "\n" }.joined())
        XCTAssertEqual(hexDigits(0x14a000, width: 16), "000000000014a000")
        XCTAssertEqual(hexDigits(0xabc, width: 1), "abc")
        XCTAssertEqual(macAddressText([0x52, 0x54, 0, 0x12, 0x34, 0x56]), "52:54:00:12:34:56")
    }

    /// Never traps: every prefix and thousands of mutations of real-looking frames.
    func testNeverTrapsOnAnyInput() {
        var rng = SplitMix64(seed: 2)
        let seeds: [[UInt8]] = [
            [UInt8](repeating: 0, count: 12) + [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 0x08, 0x06] + [0, 1, 8, 0, 6, 4, 0, 1] + [UInt8](repeating: 9, count: 20),
            [UInt8](repeating: 0, count: 12) + [UInt8](repeating: 1, count: 12) + [0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6] + [UInt8](repeating: 0, count: 8) + [0, 80, 0, 80] + [UInt8](repeating: 0x50, count: 16),
            [UInt8](repeating: 0, count: 12) + [UInt8](repeating: 1, count: 12) + [0x08, 0x00, 0x46, 0, 0, 28, 0, 0, 0x20, 0, 64, 1] + [UInt8](repeating: 0, count: 12) + [8, 0, 0, 0, 0, 1, 0, 1],
        ]
        var decoded = 0
        for seed in seeds {
            for n in 0...seed.count { _ = FrameDecoder.describe(Array(seed[0..<n])); decoded += 1 }
            for _ in 0..<2000 {
                var b = seed
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                let cut = Int.random(in: 0...b.count, using: &rng)
                _ = FrameDecoder.describe(Array(b[0..<cut]), virtioHeader: Bool.random(using: &rng)).text
                decoded += 1
            }
        }
        for _ in 0..<2000 {
            _ = FrameDecoder.describe([UInt8].random(count: Int.random(in: 0...200, using: &rng), using: &rng)).text
        }
        XCTAssertGreaterThan(decoded, 6000)
    }

    func testPcapLayout() {
        let f = PcapWriter.file(frames: [[1, 2, 3]], timestamp: Date(timeIntervalSince1970: 1.25))
        XCTAssertEqual(f.count, 24 + 16 + 3)
        XCTAssertEqual(Array(f[0..<4]), [0xd4, 0xc3, 0xb2, 0xa1])
        XCTAssertEqual(Array(f[24..<40]), [1, 0, 0, 0, 0x90, 0xd0, 0x03, 0, 3, 0, 0, 0, 3, 0, 0, 0])
        // Each frame its own time (the TUI's dumps were taken at different moments).
        let timed = PcapWriter.file(frames: [(time: 1.25, bytes: [1, 2, 3]), (time: 2.5, bytes: [4])])
        XCTAssertEqual(Array(timed[24..<40]), Array(f[24..<40]))
        XCTAssertEqual(Array(timed[43..<51]), [2, 0, 0, 0, 0x20, 0xa1, 0x07, 0])
        XCTAssertEqual(timed.count, 24 + 16 + 3 + 16 + 1)
    }

    func testPcapWriteReportsWhereAndWhy() throws {
        let path = NSTemporaryDirectory() + "ringside-pcap-\(getpid()).pcap"
        defer { unlink(path) }
        let file = PcapWriter.file(frames: [[1, 2, 3]])
        try PcapWriter.write(file, to: path)
        XCTAssertEqual(FileManager.default.contents(atPath: path).map { [UInt8]($0) }, file)
        XCTAssertThrowsError(try PcapWriter.write(file, to: "/nonexistent/dir/x.pcap")) { error in
            XCTAssertTrue("\(error)".contains("cannot write /nonexistent/dir/x.pcap"), "\(error)")
        }
    }
}
