import XCTest
@testable import Wire

final class WorkedFrameTests: XCTestCase {
    /// The example in docs/protocol.md, byte for byte (cross-checked with an independent
    /// Python CRC-32C/COBS implementation).
    static let workedFrame: [UInt8] = [
        0x00, 0x04, 0x05, 0x03, 0x2a, 0x01, 0x01, 0x01, 0x04, 0x2f, 0x68, 0x59, 0x01, 0x01, 0x01, 0x02,
        0x01, 0x02, 0x03, 0x02, 0x62, 0x01, 0x01, 0x05, 0xdd, 0x10, 0xd5, 0xa1, 0x00,
    ]
    static let workedMessage = WireMessage.event(WireEvent(uptimeNs: 1_500_000_000, kind: .usedConsumed(queue: 0, descriptor: 3, length: 98)))

    func testEncodesDocumentedFrame() throws {
        var encoder = WireFrameEncoder(firstSeq: 42)
        var out: [UInt8] = []
        XCTAssertEqual(try encoder.encode(Self.workedMessage, into: &out), 42)
        XCTAssertEqual(hexString(out), hexString(Self.workedFrame))
        XCTAssertEqual(encoder.nextSeq, 43)
    }

    func testDecodesDocumentedFrame() {
        var decoder = WireFrameDecoder()
        decoder.feed(Self.workedFrame)
        XCTAssertEqual(decoder.drain(), [.message(Self.workedMessage, seq: 42)])
    }
}

final class DecoderTests: XCTestCase {
    /// A stream of every message, and the expected results.
    func stream(seed: UInt64 = 1) throws -> ([UInt8], [WireDecodeResult]) {
        var encoder = WireFrameEncoder(firstSeq: 0)
        var out: [UInt8] = []
        var expected: [WireDecodeResult] = []
        for m in Fixtures.allMessages() {
            let seq = try encoder.encode(m, into: &out)
            expected.append(.message(m, seq: seq))
        }
        return (out, expected)
    }

    func testByteByByte() throws {
        let (bytes, expected) = try stream()
        var decoder = WireFrameDecoder()
        var got: [WireDecodeResult] = []
        for b in bytes {
            decoder.feed(CollectionOfOne(b))
            got += decoder.drain()
        }
        XCTAssertEqual(got, expected)
        XCTAssertEqual(decoder.bufferedBytes, 0)
    }

    func testRandomChunkings() throws {
        let (bytes, expected) = try stream()
        var rng = SplitMix64(seed: 77)
        for _ in 0..<50 {
            var decoder = WireFrameDecoder()
            var got: [WireDecodeResult] = []
            var i = 0
            while i < bytes.count {
                let n = min(bytes.count - i, Int(rng.next() % 3000) + 1)
                bytes[i..<(i + n)].withUnsafeBytes { decoder.feed($0) }
                i += n
                if rng.next() % 3 != 0 { got += decoder.drain() }
            }
            got += decoder.drain()
            XCTAssertEqual(got, expected)
        }
    }

    func testGarbagePrefix() throws {
        let (bytes, expected) = try stream()
        var rng = SplitMix64(seed: 3)
        for _ in 0..<100 {
            let garbage = (0..<Int(rng.next() % 600)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var decoder = WireFrameDecoder()
            decoder.feed(garbage + bytes)
            let got = decoder.drain()
            let messages = got.filter { if case .message = $0 { return true } else { return false } }
            // The leading delimiter of the first frame ends the garbage: nothing is lost.
            XCTAssertEqual(messages, expected)
            XCTAssertLessThanOrEqual(got.count - messages.count, garbage.filter { $0 == 0 }.count + 1)
        }
    }

    func testMidStreamConnect() throws {
        let (bytes, expected) = try stream()
        // Start inside the second frame, after its leading delimiter: that frame is lost, and
        // only that one.
        var decoder = WireFrameDecoder()
        let firstFrameEnd = bytes.dropFirst().firstIndex(of: 0)!
        decoder.feed(bytes[(firstFrameEnd + 5)...])
        let got = decoder.drain()
        XCTAssertEqual(got.first.map { if case .error = $0 { return true } else { return false } }, true)
        XCTAssertEqual(Array(got.dropFirst()), Array(expected.dropFirst(2)))
    }

    func testTornFrameThenGoodFrame() throws {
        var encoder = WireFrameEncoder(firstSeq: 0)
        var a: [UInt8] = [], b: [UInt8] = []
        let snap = WireMessage.event(WireEvent(uptimeNs: 5, kind: .kick(queue: 1)))
        var rng = SplitMix64(seed: 8)
        let big = WireMessage.snapshot(Fixtures.snapshot(number: 1, &rng))
        try encoder.encode(big, into: &a)
        let seqB = try encoder.encode(snap, into: &b)
        for cut in [1, 2, 3, a.count / 2, a.count - 2] {
            var decoder = WireFrameDecoder()
            decoder.feed(a[0..<cut])   // no trailing delimiter
            decoder.feed(b)
            let got = decoder.drain()
            XCTAssertEqual(got.last, .message(snap, seq: seqB), "cut \(cut)")
            XCTAssertLessThanOrEqual(got.count, 2)
        }
    }

    func testBitFlipsAreCRCErrorsNeverCrashes() throws {
        var encoder = WireFrameEncoder(firstSeq: 0)
        var rng = SplitMix64(seed: 11)
        var frame: [UInt8] = []
        try encoder.encode(.snapshot(Fixtures.snapshot(number: 1, &rng, full: false)), into: &frame)
        var good: [UInt8] = []
        let goodSeq = try encoder.encode(WorkedFrameTests.workedMessage, into: &good)
        var crcErrors = 0
        for _ in 0..<2000 {
            var bad = frame
            let i = 1 + Int(rng.next() % UInt64(bad.count - 2))
            bad[i] ^= UInt8(1) << (rng.next() % 8)
            var decoder = WireFrameDecoder()
            decoder.feed(bad + good)
            let got = decoder.drain()
            XCTAssertEqual(got.last, .message(WorkedFrameTests.workedMessage, seq: goodSeq))
            for r in got.dropLast() {
                guard case .error(let e) = r else { XCTFail("flipped frame decoded: \(r)"); continue }
                if case .crcMismatch = e { crcErrors += 1 }
            }
        }
        XCTAssertGreaterThan(crcErrors, 1000)
    }

    func testWrongVersion() {
        // A well-formed frame (valid COBS and CRC) of protocol version 6, newer than this build.
        let wire = wireFrame(body: [6, 0x03, 1, 0, 0, 0, 9, 9, 9])
        var decoder = WireFrameDecoder()
        decoder.feed(wire + WorkedFrameTests.workedFrame)
        XCTAssertEqual(decoder.drain(), [.error(.unsupportedVersion(got: 6)), .message(WorkedFrameTests.workedMessage, seq: 42)])
        XCTAssertEqual(decoder.statistics.versionMismatches, 1)
        XCTAssertTrue(WireDecodeError.unsupportedVersion(got: 6).message.contains("version 6"))
    }

    func testMalformedPayloadKeepsSeq() throws {
        // A command frame with an invalid kind: the kernel can still answer seq 5 with badCommand.
        let wire = wireFrame(body: [WireProtocol.version, 0x81, 5, 0, 0, 0, 0xEE])
        var decoder = WireFrameDecoder()
        decoder.feed(wire)
        XCTAssertEqual(decoder.drain(), [.error(.malformed(type: 0x81, seq: 5, offset: 7, reason: .invalidValue(0xEE)))])
    }

    func testTruncatedPayloadsNeverTrap() throws {
        // Every prefix of every message's body, re-framed with a valid CRC: always a typed error.
        for message in Fixtures.allMessages().prefix(20) {
            var w = WireWriter()
            message.writePayload(to: &w)
            for cut in stride(from: 0, to: w.count, by: max(1, w.count / 64)) {
                let wire = wireFrame(body: [1, message.type.rawValue, 0, 0, 0, 0] + w.bytes[0..<cut])
                var decoder = WireFrameDecoder()
                decoder.feed(wire)
                let got = decoder.drain()
                XCTAssertEqual(got.count, 1)
                if case .message = got[0] { XCTFail("prefix \(cut) of type \(message.type.rawValue) decoded") }
            }
        }
    }

    func testOversizeRunIsSkippedThenResyncs() {
        var decoder = WireFrameDecoder()
        let junk = [UInt8](repeating: 0x55, count: WireProtocol.maxEncodedFrameBytes + 10)
        var results: [WireDecodeResult] = []
        for chunk in stride(from: 0, to: junk.count, by: 4096) {
            decoder.feed(junk[chunk..<min(junk.count, chunk + 4096)])
            results += decoder.drain()
        }
        XCTAssertEqual(results.count, 1)
        guard case .error(.oversizeFrame)? = results.first else { return XCTFail("\(results)") }
        XCTAssertLessThan(decoder.bufferedBytes, 8192, "an oversize run is not buffered")
        decoder.feed([0x55, 0x55] + WorkedFrameTests.workedFrame)
        XCTAssertEqual(decoder.drain(), [.message(WorkedFrameTests.workedMessage, seq: 42)])
        XCTAssertEqual(decoder.statistics.oversizeFrames, 1)
        XCTAssertEqual(decoder.statistics.bytesSkipped, UInt64(junk.count + 2))
    }

    func testSequenceGapsPerDirection() throws {
        var kernel = WireFrameEncoder(firstSeq: 10)
        var host = WireFrameEncoder(firstSeq: 500)
        var out: [UInt8] = []
        let ev = WorkedFrameTests.workedMessage
        try kernel.encode(ev, into: &out)        // 10
        try host.encode(.command(.hello), into: &out)   // 500
        try kernel.encode(ev, into: &out)        // 11
        var dropped: [UInt8] = []
        try kernel.encode(ev, into: &dropped)    // 12, lost
        try kernel.encode(ev, into: &dropped)    // 13, lost
        try kernel.encode(ev, into: &out)        // 14
        try host.encode(.command(.stats), into: &out)   // 501
        var decoder = WireFrameDecoder()
        decoder.feed(out)
        XCTAssertEqual(decoder.drain().count, 5)
        XCTAssertEqual(decoder.statistics.sequenceGaps, [1, 0])
        XCTAssertEqual(decoder.statistics.framesMissed, [2, 0])
    }

    func testRandomGarbageNeverTraps() {
        var rng = SplitMix64(seed: 1234)
        var decoder = WireFrameDecoder()
        for _ in 0..<3000 {
            let n = Int(rng.next() % 200)
            decoder.feed((0..<n).map { _ in rng.next() % 8 == 0 ? 0 : UInt8(truncatingIfNeeded: rng.next()) })
            _ = decoder.drain()
        }
        decoder.feed(WorkedFrameTests.workedFrame)
        XCTAssertEqual(decoder.drain().last, .message(WorkedFrameTests.workedMessage, seq: 42))
    }
}

final class SmallDecoderTests: XCTestCase {
    /// The kernel's command decoder runs with a small limit; big frames are oversize, commands fine.
    func testLoweredLimit() throws {
        var decoder = WireFrameDecoder(maxFrameBytes: 64)
        var encoder = WireFrameEncoder(firstSeq: 1)
        var out: [UInt8] = []
        try encoder.encode(.hello(Fixtures.hello), into: &out)
        try encoder.encode(.command(.step(queue: 0, count: 1)), into: &out)
        decoder.feed(out)
        let got = decoder.drain()
        guard case .error(.oversizeFrame)? = got.first else { return XCTFail("\(got)") }
        XCTAssertEqual(got.last, .message(.command(.step(queue: 0, count: 1)), seq: 2))
    }
}
