import XCTest
@testable import Wire

final class RoundTripTests: XCTestCase {
    func testEveryMessageRoundTrips() throws {
        var encoder = WireFrameEncoder(firstSeq: 100)
        var decoder = WireFrameDecoder()
        for message in Fixtures.allMessages() {
            var out: [UInt8] = []
            let seq = try encoder.encode(message, into: &out)
            XCTAssertEqual(out.first, 0)
            XCTAssertEqual(out.last, 0)
            XCTAssertFalse(out.dropFirst().dropLast().contains(0))
            decoder.feed(out)
            let results = decoder.drain()
            XCTAssertEqual(results, [.message(message, seq: seq)], "\(message.type.rawValue)")
        }
        XCTAssertEqual(decoder.statistics.framesOK, UInt64(Fixtures.allMessages().count))
        XCTAssertEqual(decoder.statistics.totalErrors, 0)
        // Kernel→host and host→kernel frames share the encoder here, so each direction sees
        // its own jump; only those two gaps are counted.
        XCTAssertEqual(decoder.statistics.bytesSkipped, 0)
    }

    func testStreamingSnapshotMatchesMessageEncoding() throws {
        var rng = SplitMix64(seed: 5)
        let snap = Fixtures.snapshot(number: 9, &rng, full: true)
        var a = WireFrameEncoder(firstSeq: 3), b = WireFrameEncoder(firstSeq: 3)
        var outA: [UInt8] = [], outB: [UInt8] = []
        try a.encode(.snapshot(snap), into: &outA)
        b.beginSnapshot(WireSnapshotHeader(snapshotNumber: 9, uptimeNs: snap.uptimeNs, rateHz: snap.rateHz, droppedFrames: snap.droppedFrames,
                                           memory: snap.memory, deviceStatus: snap.deviceStatus, queueCount: UInt8(snap.queues.count)))
        for q in snap.queues {
            b.appendQueueStatus(q.status)
            b.appendRing(q.ring)
            guard case .full(let table) = q.descriptors else { return XCTFail() }
            b.beginDescriptors(.full)
            for d in table { b.appendDescriptor(d) }
            try b.endDescriptors()
        }
        try b.finish(into: &outB)
        XCTAssertEqual(outA, outB)
    }

    func testDumpReplyFromRawBytesMatches() throws {
        let bytes = (0..<1514).map { UInt8(truncatingIfNeeded: $0) }
        var a = WireFrameEncoder(firstSeq: 1), b = WireFrameEncoder(firstSeq: 1)
        var outA: [UInt8] = [], outB: [UInt8] = []
        try a.encode(.reply(WireReply(commandSeq: 4, status: .ok, body: .dump(WireDump(queue: 0, descriptor: 2, guestAddress: 0x1234, bufferLength: 1514, bytes: bytes)))), into: &outA)
        _ = try bytes.withUnsafeBytes { raw in
            try b.encodeDumpReply(commandSeq: 4, queue: 0, descriptor: 2, guestAddress: 0x1234, bufferLength: 1514, bytes: raw, into: &outB)
        }
        XCTAssertEqual(outA, outB)
    }

    func testEncoderLimits() {
        var encoder = WireFrameEncoder()
        var out: [UInt8] = []
        let big = WireDump(queue: 0, descriptor: 0, guestAddress: 0, bufferLength: 9000, bytes: [UInt8](repeating: 1, count: 5000))
        XCTAssertThrowsError(try encoder.encode(.reply(WireReply(commandSeq: 1, status: .ok, body: .dump(big))), into: &out))
        let table = [WireDescriptor](repeating: WireDescriptor(state: .avail, addr: 1, len: 2, flags: 3, next: 4), count: 4000)
        let snap = WireSnapshot(snapshotNumber: 0, uptimeNs: 0, rateHz: 1, droppedFrames: 0, queues: [
            WireQueueSnapshot(status: WireQueueStatus(queue: 0, availIdx: 0, usedIdx: 0, lastUsedIdx: 0, freeCount: 0, pendingUsed: 0, paused: false, counters: .init()), descriptors: .full(table)),
        ])
        XCTAssertThrowsError(try encoder.encode(.snapshot(snap), into: &out)) { error in
            guard case WireEncodeError.frameTooLarge = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(out, [])
        XCTAssertEqual(encoder.nextSeq, 0, "a frame not emitted uses no seq")
        XCTAssertThrowsError(try encoder.finish(into: &out))
    }

    func testLongStringsAreCutAtScalarBoundary() throws {
        let name = String(repeating: "é", count: 200)   // 400 bytes
        var encoder = WireFrameEncoder()
        var decoder = WireFrameDecoder()
        var out: [UInt8] = []
        try encoder.encode(.reply(WireReply(commandSeq: 1, status: .badCommand, message: name)), into: &out)
        decoder.feed(out)
        guard case .message(.reply(let r), _)? = decoder.next() else { return XCTFail() }
        XCTAssertEqual(r.message, String(repeating: "é", count: 127))
    }

    func testVarints() throws {
        for v: UInt64 in [0, 1, 127, 128, 255, 16383, 16384, 1 << 32, UInt64.max - 1, UInt64.max] {
            var w = WireWriter()
            w.writeVarint(v)
            var r = WireReader(w.bytes)
            XCTAssertEqual(try r.readVarint(), v)
            XCTAssertEqual(r.readableBytes, 0)
        }
        var r = WireReader([UInt8](repeating: 0xFF, count: 10) + [0x01])
        XCTAssertThrowsError(try r.readVarint())
        r = WireReader([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02])
        XCTAssertThrowsError(try r.readVarint())
        r = WireReader([0x80])
        XCTAssertThrowsError(try r.readVarint())
    }
}

final class UTF8Tests: XCTestCase {
    func testWellFormedness() {
        let good: [[UInt8]] = [[], Array("net0.rx".utf8), Array("é€😀".utf8), [0xED, 0x9F, 0xBF], [0xF4, 0x8F, 0xBF, 0xBF]]
        let bad: [[UInt8]] = [[0xC1, 0x81], [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
                              [0xF5, 0x80, 0x80, 0x80], [0x80], [0xE2, 0x82], [0xE2, 0x28, 0xA1], [0xFF]]
        for g in good { XCTAssertTrue(WireReader.isWellFormedUTF8(g[...]), "\(g)") }
        for b in bad { XCTAssertFalse(WireReader.isWellFormedUTF8(b[...]), "\(b)") }
    }

    /// Found by the fuzzer: a reply whose message is ill-formed UTF-8 must not decode (it would
    /// not re-encode to itself).
    func testIllFormedStringIsMalformed() {
        var r = WireReader([0x02, 0xC1, 0xC1])
        XCTAssertThrowsError(try r.readString()) { XCTAssertEqual($0 as? WireMalformedReason, .invalidUTF8) }
    }
}

/// Protocol version 2: every snapshot carries the kernel's memory after `dropped_frames`.
final class SnapshotMemoryTests: XCTestCase {
    static let memory = WireMemory(heapTotal: 15_204_352, heapUsed: 1_179_648, heapFree: 13_959_168,
                                   netReserved: 83_968, netLimit: 11_272_192)

    func testMemoryRoundTrips() throws {
        var rng = SplitMix64(seed: 9)
        for memory in [Self.memory, .zero, Fixtures.extremeMemory, Fixtures.memory(&rng), Fixtures.memory(&rng)] {
            var snap = Fixtures.snapshot(number: 4, &rng, full: false)
            snap.memory = memory
            var encoder = WireFrameEncoder(firstSeq: 8)
            var decoder = WireFrameDecoder()
            var out: [UInt8] = []
            try encoder.encode(.snapshot(snap), into: &out)
            decoder.feed(out)
            guard case .message(.snapshot(let got), 8)? = decoder.next() else { return XCTFail("no snapshot") }
            XCTAssertEqual(got.memory, memory)
            XCTAssertEqual(got, snap)
            var model = TelemetryModel()
            _ = model.apply(.hello(Fixtures.hello), seq: 0)
            _ = model.apply(.snapshot(got), seq: 8)
            XCTAssertEqual(model.memory, memory, "the host model keeps the latest memory")
        }
    }

    /// The header example of docs/protocol.md §4, byte for byte.
    func testHeaderBytesMatchTheDocumentedExample() {
        var w = WireWriter()
        WireSnapshotHeader(snapshotNumber: 7, uptimeNs: 1_500_000_000, rateHz: 10, droppedFrames: 0,
                           memory: Self.memory, deviceStatus: [0x0f, 0x0f], queueCount: 0).write(to: &w)
        XCTAssertEqual(hexString(w.bytes), hexString([
            0x07, 0x00, 0x00, 0x00, 0x00, 0x2f, 0x68, 0x59, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00,
            0x80, 0x80, 0xa0, 0x07, 0x80, 0x80, 0x48, 0x80, 0x80, 0xd4, 0x06, 0x80, 0x90, 0x05, 0x80, 0x80, 0xb0, 0x05,
            0x02, 0x0f, 0x0f,
            0x00,
        ]))
    }

    /// A snapshot from a version 1 kernel (no memory fields) is refused as another version,
    /// with a message naming both, and the stream carries on.
    func testVersion1SnapshotIsRefused() throws {
        // v1 snapshot: number 7, uptime 1.5 s, 10 Hz, dropped 0, no queues.
        let v1: [UInt8] = [1, 0x02, 5, 0, 0, 0] + [0x07, 0, 0, 0, 0x00, 0x2f, 0x68, 0x59, 0, 0, 0, 0, 0x0a, 0x00, 0x00, 0x00]
        var decoder = WireFrameDecoder()
        decoder.feed(wireFrame(body: v1) + WorkedFrameTests.workedFrame)
        XCTAssertEqual(decoder.drain(), [.error(.unsupportedVersion(got: 1)), .message(WorkedFrameTests.workedMessage, seq: 42)])
        XCTAssertEqual(decoder.statistics.versionMismatches, 1)
        let message = WireDecodeError.unsupportedVersion(got: 1).message
        XCTAssertTrue(message.contains("version 1") && message.contains("speaks 5"), message)
        // The same payload under this version's byte lacks the memory fields: malformed, not misread.
        var asV2 = v1
        asV2[0] = WireProtocol.version
        decoder.feed(wireFrame(body: asV2))
        guard case .error(.malformed(type: 0x02, seq: 5, _, _))? = decoder.next() else { return XCTFail("v1 payload read as v2") }
    }
}
