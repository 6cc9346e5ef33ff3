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
}
