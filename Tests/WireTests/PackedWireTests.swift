import XCTest
@testable import Wire

/// Version 4: a hello says each queue's ring format, and the detector leaves packed queues alone.
final class PackedWireTests: XCTestCase {
    func testHelloCarriesTheRingFormat() throws {
        var encoder = WireFrameEncoder(firstSeq: 1)
        var out: [UInt8] = []
        _ = try encoder.encode(.hello(Fixtures.hello), into: &out)
        var decoder = WireFrameDecoder()
        decoder.feed(out)
        guard case .message(.hello(let h), _)? = decoder.next() else { return XCTFail("no hello") }
        XCTAssertEqual(h.queues.map(\.format), [.split, .split, .packed, .packed])
    }

    func testUnknownRingFormatIsMalformed() throws {
        var encoder = WireFrameEncoder(firstSeq: 1)
        var out: [UInt8] = []
        var hello = Fixtures.hello
        hello.queues = [WireQueueInfo(queue: 0, name: "q", size: 8, format: .packed)]
        _ = try encoder.encode(.hello(hello), into: &out)
        // Decode the frame, change the last payload byte (the format) to 7, re-frame it.
        var decoder = WireFrameDecoder()
        var body = try XCTUnwrap(WireCOBS.decode(Array(out.dropFirst().dropLast())))
        body.removeLast(4)
        XCTAssertEqual(body.last, 1)
        body[body.count - 1] = 7
        let crc = WireCRC32C.checksum(body)
        body += [UInt8(crc & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 24)]
        var wire: [UInt8] = [0]
        WireCOBS.encode(body, appendingTo: &wire)
        wire.append(0)
        decoder.feed(wire)
        guard case .error(.malformed(_, _, _, .invalidValue(7)))? = decoder.next() else { return XCTFail("format 7 accepted") }
    }

    /// `watch --json` / `ctl stats` of a packed queue: its format, both event suppression
    /// structures by name with offset and wrap, and its slots; none of the split ring's words.
    func testJSONOfAPackedQueue() throws {
        var model = TelemetryModel()
        _ = model.apply(.hello(WireHello(kernelVersion: "k", mac: [], devices: [], queues: [
            WireQueueInfo(queue: 0, name: "net0.rx", size: 4, format: .packed),
        ])), seq: 0)
        let status = WireQueueStatus(queue: 0, availIdx: 2, usedIdx: 0x8000 | 3, lastUsedIdx: 0x8000 | 1, freeCount: 0,
                                     pendingUsed: 2, paused: true, counters: WireQueueCounters())
        let ring = WireRingView(flags: WireRingView.eventIdxFlag | WireRingView.packedFlag, availFlags: 2, usedFlags: 1,
                                usedEvent: 0x8000 | 1, availEvent: 0, availStart: 3,
                                availEntries: [1 << 15, 1 << 15 | 1 << 7 | 2],
                                usedStart: 3, usedEntries: [WireUsedElement(id: 3, len: 0), WireUsedElement(id: 0, len: 60)])
        let table = [WireDescriptor](repeating: WireDescriptor(state: .avail, addr: 0x1000, len: 2048, flags: 2, next: 0), count: 4)
        XCTAssertNil(model.apply(.snapshot(WireSnapshot(snapshotNumber: 0, uptimeNs: 1, rateHz: 10, droppedFrames: 0, memory: .zero,
                                                        queues: [WireQueueSnapshot(status: status, ring: ring, descriptors: .full(table))])),
                                 seq: 1))
        let json = model.snapshotJSON()
        XCTAssertTrue(json.contains(#""name":"net0.rx","size":4,"format":"packed","avail_idx":2,"used_idx":32771,"last_used_idx":32769"#), json)
        XCTAssertTrue(json.contains(#""ring":{"format":"packed","event_idx":true,"driver_event":{"flags":2,"flags_name":"DESC","offset":1,"wrap":1},"device_event":{"flags":1,"flags_name":"DISABLE","offset":0,"wrap":0},"slots":[{"slot":3,"flags":32768,"avail":0,"used":1,"id":3,"len":0},{"slot":0,"flags":32898,"avail":1,"used":1,"id":0,"len":60}]}"#), json)
        XCTAssertFalse(json.contains("used_event") || json.contains("avail_flags"), json)
    }
}
