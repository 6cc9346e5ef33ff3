import XCTest
import Wire

/// Protocol v2 additions: the ring section, device status, step batches, dump timestamps.
final class RingAndStepTests: XCTestCase {
    /// The ring section example of docs/protocol.md §4, byte for byte.
    func testRingSectionBytesMatchTheDocumentedExample() throws {
        let ring = WireRingView(
            flags: 0, availFlags: 0, usedFlags: 1, usedEvent: 0, availEvent: 0,
            availStart: 65534, availEntries: [3, 200],
            usedStart: 9, usedEntries: [WireUsedElement(id: 3, len: 98), WireUsedElement(id: 200, len: 1514)])
        var w = WireWriter()
        ring.write(to: &w)
        XCTAssertEqual(hexString(w.bytes), hexString([
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
            0xfe, 0xff, 0x02, 0x03, 0xc8, 0x01,
            0x09, 0x00, 0x02, 0x03, 0x62, 0xc8, 0x01, 0xea, 0x0b,
        ]))
        var r = WireReader(w.bytes)
        XCTAssertEqual(try WireRingView.read(from: &r), ring)
        XCTAssertEqual(r.readableBytes, 0)
    }

    /// The usedBatch example of docs/protocol.md §5, byte for byte.
    func testUsedBatchBytesMatchTheDocumentedExample() throws {
        let event = WireEvent(uptimeNs: 1_500_000_000, kind: .usedBatch(
            queue: 0, firstUsedIdx: 65535, elements: [WireUsedElement(id: 3, len: 98), WireUsedElement(id: 4, len: 60)]))
        var w = WireWriter()
        event.write(to: &w)
        XCTAssertEqual(hexString(w.bytes), hexString([
            0x00, 0x2f, 0x68, 0x59, 0x00, 0x00, 0x00, 0x00,
            0x0a, 0x00, 0xff, 0xff, 0x02, 0x00,
            0x03, 0x00, 0x62, 0x00, 0x00, 0x00,
            0x04, 0x00, 0x3c, 0x00, 0x00, 0x00,
        ]))
        var r = WireReader(w.bytes)
        XCTAssertEqual(try WireEvent.read(from: &r), event)
    }

    /// A batch over the limit is refused by the encoder and, forged, by the decoder; a count
    /// that promises more elements than the payload has is malformed, never an allocation.
    func testUsedBatchLimits() throws {
        var e = WireFrameEncoder()
        var out: [UInt8] = []
        let tooMany = [WireUsedElement](repeating: WireUsedElement(id: 1, len: 1), count: WireEvent.maxBatchElements + 1)
        XCTAssertThrowsError(try e.encode(.event(WireEvent(uptimeNs: 0, kind: .usedBatch(queue: 0, firstUsedIdx: 0, elements: tooMany))), into: &out))
        var w = WireWriter()
        w.writeU64(0); w.writeU8(10); w.writeU8(0); w.writeU16(0); w.writeU16(0xFFFF)
        var r = WireReader(w.bytes)
        XCTAssertThrowsError(try WireEvent.read(from: &r))
        var w2 = WireWriter()
        w2.writeU64(0); w2.writeU8(10); w2.writeU8(0); w2.writeU16(0); w2.writeU16(3); w2.writeU16(1); w2.writeU32(2)
        var r2 = WireReader(w2.bytes)
        XCTAssertEqual(try? WireEvent.read(from: &r2), nil, "3 promised, 1 present")
    }

    /// The host model keeps each queue's ring view and every device's status from snapshots.
    func testModelKeepsRingsAndDeviceStatus() {
        var model = TelemetryModel()
        _ = model.apply(.hello(Fixtures.hello), seq: 0)
        XCTAssertEqual(model.deviceStatus, [0x0f, 0x4f], "the hello's status until a snapshot")
        var rng = SplitMix64(seed: 11)
        let snap = Fixtures.snapshot(number: 0, &rng)
        _ = model.apply(.snapshot(snap), seq: 1)
        XCTAssertEqual(model.deviceStatus, snap.deviceStatus)
        // A section with both windows empty means "rings not read" (docs/protocol.md §4): nil.
        for (i, q) in snap.queues.enumerated() {
            XCTAssertEqual(model.queues[i].ring, q.ring.availEntries.isEmpty && q.ring.usedEntries.isEmpty ? nil : q.ring)
        }
    }

    /// Dump replies carry the arrival time, the streaming encoder too.
    func testDumpStampRoundTrips() throws {
        var e = WireFrameEncoder()
        var out: [UInt8] = []
        let bytes: [UInt8] = [1, 2, 3]
        try bytes.withUnsafeBytes { raw in
            try e.encodeDumpReply(commandSeq: 5, queue: 0, descriptor: 7, guestAddress: 0x1000, bufferLength: 3,
                                  stampNs: 987_654_321, bytes: raw, into: &out)
        }
        var d = WireFrameDecoder()
        d.feed(out)
        guard case .message(.reply(let r), _)? = d.next(), case .dump(let dump) = r.body else { return XCTFail("no dump") }
        XCTAssertEqual(dump.stampNs, 987_654_321)
        XCTAssertEqual(dump.bytes, bytes)
    }
}
