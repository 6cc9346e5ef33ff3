import XCTest
@testable import Wire

/// Protocol version 4: capture mode's command, frame message and counts event, byte for byte as
/// docs/protocol.md shows them, and the kernel's copy-free encoder against the value encoder.
final class CaptureWireTests: XCTestCase {
    static let frame = WireCapturedFrame(
        uptimeNs: 1_500_000_000, queue: 0, descriptor: 202, availIdx: 458, usedIdx: 204, number: 7, bufferLength: 14,
        headerBytes: 12, bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd])

    func testCapturedFrameBytesMatchTheDocumentedExample() {
        var w = WireWriter()
        Self.frame.write(to: &w)
        XCTAssertEqual(hexString(w.bytes), hexString([
            0x00, 0x2f, 0x68, 0x59, 0x00, 0x00, 0x00, 0x00,   // uptime_ns 1500000000
            0x00,                                             // queue 0
            0xca, 0x00,                                       // descriptor 202
            0xca, 0x01, 0xcc, 0x00,                           // avail_idx 458, used_idx 204
            0x07, 0x00, 0x00, 0x00,                           // number 7
            0x0e, 0x00, 0x00, 0x00,                           // buffer_length 14
            0x0c,                                             // header_bytes 12
            0x0e, 0x00,                                       // byte_count 14
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd,   // the header, then the frame
        ]))
        XCTAssertEqual(Array(Self.frame.header), [UInt8](repeating: 0, count: 12))
        XCTAssertEqual(Array(Self.frame.frame), [0xab, 0xcd])
    }

    func testCommandAndEventBytes() {
        var w = WireWriter()
        WireCommand.capture(on: true).write(to: &w)
        XCTAssertEqual(w.bytes, [0x0d, 0x01])
        w = WireWriter()
        WireEvent(uptimeNs: 0, kind: .captureCounts(queue: 1, frames: 300, missed: 2)).write(to: &w)
        XCTAssertEqual(hexString(Array(w.bytes[8...])), hexString([0x0b, 0x01, 0xac, 0x02, 0x02]))
    }

    func testKernelEncoderMatchesTheMessageEncoder() throws {
        var a = WireFrameEncoder(firstSeq: 9), b = WireFrameEncoder(firstSeq: 9)
        var viaMessage: [UInt8] = [], viaPointer: [UInt8] = []
        try a.encode(.capturedFrame(Self.frame), into: &viaMessage)
        let f = Self.frame
        try f.bytes.withUnsafeBytes { raw in
            try b.encodeCapturedFrame(uptimeNs: f.uptimeNs, queue: f.queue, descriptor: f.descriptor, availIdx: f.availIdx,
                                      usedIdx: f.usedIdx, number: f.number, bufferLength: f.bufferLength,
                                      headerBytes: f.headerBytes, bytes: raw, into: &viaPointer)
        }
        XCTAssertEqual(viaPointer, viaMessage)
        XCTAssertLessThanOrEqual(viaPointer.count, WireFrameEncoder.maxCapturedFrameOutputBytes(byteCount: f.bytes.count))
    }

    func testOversizeAndShortPayloadsAreMalformed() {
        var w = WireWriter()
        Self.frame.write(to: &w)
        var cut = WireReader(Array(w.bytes.dropLast()))
        XCTAssertThrowsError(try WireCapturedFrame.read(from: &cut))
        var big = Array(w.bytes[0..<24])
        big += [0x01, 0x10]   // byte_count 4097 > maxCaptureBytes
        var r = WireReader(big + [UInt8](repeating: 0, count: 4097))
        XCTAssertThrowsError(try WireCapturedFrame.read(from: &r))
    }

    /// What a hostile kernel could send decodes (or is refused) without a trap, and the
    /// accessors the monitor uses never index past the bytes.
    func testHostileValuesNeverTrap() throws {
        let f = WireCapturedFrame(uptimeNs: .max, queue: 255, descriptor: .max, availIdx: 0, usedIdx: 0, number: .max,
                                  bufferLength: .max, headerBytes: 255, bytes: [1, 2, 3])
        XCTAssertTrue(f.header.isEmpty)
        XCTAssertTrue(f.frame.isEmpty)
        var w = WireWriter()
        f.write(to: &w)
        var r = WireReader(w.bytes)
        XCTAssertEqual(try WireCapturedFrame.read(from: &r), f)
        var rng = SplitMix64(seed: 15)
        for _ in 0..<2000 {
            var bytes = w.bytes
            bytes[rng.next(below: bytes.count)] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            var m = WireReader(bytes)
            if let g = try? WireCapturedFrame.read(from: &m) { _ = (g.header.count, g.frame.count) }
        }
    }
}
