import XCTest
@testable import Wire

final class CRC32CTests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(WireCRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(WireCRC32C.checksum([]), 0)
        // RFC 3720 §B.4 test vectors.
        XCTAssertEqual(WireCRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(WireCRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(WireCRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(WireCRC32C.checksum((0..<32).map { UInt8(31 - $0) }), 0x113F_DB5C)
    }

    func testRange() {
        let bytes = Array("xx123456789yy".utf8)
        XCTAssertEqual(WireCRC32C.checksum(bytes, in: 2..<11), 0xE306_9283)
    }
}

final class COBSTests: XCTestCase {
    func encode(_ b: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        WireCOBS.encode(b, appendingTo: &out)
        return out
    }

    func assertRoundTrip(_ b: [UInt8], file: StaticString = #filePath, line: UInt = #line) {
        let e = encode(b)
        XCTAssertFalse(e.contains(0), "encoded contains a zero", file: file, line: line)
        XCTAssertLessThanOrEqual(e.count, WireCOBS.maxEncodedCount(b.count), file: file, line: line)
        XCTAssertEqual(WireCOBS.decode(e), b, file: file, line: line)
    }

    // The examples of Cheshire & Baker / Wikipedia.
    func testKnownEncodings() {
        XCTAssertEqual(encode([]), [0x01])
        XCTAssertEqual(encode([0x00]), [0x01, 0x01])
        XCTAssertEqual(encode([0x00, 0x00]), [0x01, 0x01, 0x01])
        XCTAssertEqual(encode([0x00, 0x11, 0x00]), [0x01, 0x02, 0x11, 0x01])
        XCTAssertEqual(encode([0x11, 0x22, 0x00, 0x33]), [0x03, 0x11, 0x22, 0x02, 0x33])
        XCTAssertEqual(encode([0x11, 0x22, 0x33, 0x44]), [0x05, 0x11, 0x22, 0x33, 0x44])
        XCTAssertEqual(encode([0x11, 0x00, 0x00, 0x00]), [0x02, 0x11, 0x01, 0x01, 0x01])
    }

    func testLongRuns() {
        let run254 = (1...254).map { UInt8($0) }
        XCTAssertEqual(encode(run254), [0xFF] + run254 + [0x01])
        let run255 = (1...255).map { UInt8($0) }
        XCTAssertEqual(encode(run255), [0xFF] + run254 + [0x02, 0xFF])
        XCTAssertEqual(encode([0] + run254), [0x01, 0xFF] + run254 + [0x01])
        XCTAssertEqual(encode(run254 + [0]), [0xFF] + run254 + [0x01, 0x01])
        for b in [run254, run255, [0] + run254, run254 + [0], run255 + [0] + run255] { assertRoundTrip(b) }
        // Runs around the short-block copy threshold.
        for n in 0..<40 { assertRoundTrip([UInt8](repeating: 9, count: n) + [0] + [UInt8](repeating: 3, count: n)) }
    }

    func testEdgeCases() {
        assertRoundTrip([])
        assertRoundTrip([UInt8](repeating: 0, count: 1000))
        assertRoundTrip([UInt8](repeating: 0xFF, count: 1000))
        for n in [253, 254, 255, 256, 508, 509, 510] {
            assertRoundTrip([UInt8](repeating: 7, count: n))
            assertRoundTrip([UInt8](repeating: 7, count: n) + [0])
            assertRoundTrip([0] + [UInt8](repeating: 7, count: n))
        }
        var rng = SplitMix64(seed: 42)
        for _ in 0..<500 {
            let n = Int(rng.next() % 1200)
            let zeroBias = rng.next() % 4
            assertRoundTrip((0..<n).map { _ in rng.next() % 4 < zeroBias ? 0 : UInt8(truncatingIfNeeded: rng.next()) })
        }
    }

    func testInvalidInputNeverTraps() {
        XCTAssertNil(WireCOBS.decode([]))
        XCTAssertNil(WireCOBS.decode([0x05, 0x11]))      // code runs past the end
        XCTAssertNil(WireCOBS.decode([0x00]))            // a zero code
        XCTAssertNil(WireCOBS.decode([0xFF, 0x01]))
        // Over the limit, and an output buffer too small.
        var out = [UInt8](repeating: 0, count: 100)
        let encoded = [UInt8](repeating: 0x05, count: 100)
        XCTAssertNil(encoded.withUnsafeBytes { e in out.withUnsafeMutableBytes { WireCOBS.decode(e, into: $0, limit: 10) } })
        XCTAssertEqual(encoded.withUnsafeBytes { e in out.withUnsafeMutableBytes { WireCOBS.decode(e, into: $0) } }, 99)
        XCTAssertNil(encoded.withUnsafeBytes { e in out.withUnsafeMutableBytes { WireCOBS.decode(e, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<50])) } })
        var rng = SplitMix64(seed: 9)
        for _ in 0..<2000 {
            let junk = (0..<Int(rng.next() % 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) | 1 }
            _ = WireCOBS.decode(junk)
        }
    }
}
