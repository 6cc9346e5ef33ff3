import XCTest
@testable import Wire

/// Protocol version 3: the inject/kick/poll commands and each queue's faults and new counters,
/// byte for byte as docs/protocol.md §4 and §7 show them.
final class InjectWireTests: XCTestCase {
    func bytes(_ command: WireCommand) -> [UInt8] {
        var w = WireWriter()
        command.write(to: &w)
        return w.bytes
    }

    func testCommandBytesMatchTheDocumentedExamples() {
        XCTAssertEqual(hexString(bytes(.inject(queue: 0, fault: .drop(3)))), hexString([0x0a, 0x00, 0x01, 0x03, 0x00]))
        XCTAssertEqual(hexString(bytes(.inject(queue: 1, fault: .corrupt(258)))), hexString([0x0a, 0x01, 0x02, 0x02, 0x01]))
        XCTAssertEqual(hexString(bytes(.inject(queue: 0, fault: .starve))), hexString([0x0a, 0x00, 0x03]))
        XCTAssertEqual(hexString(bytes(.inject(queue: 0, fault: .unstarve))), hexString([0x0a, 0x00, 0x04]))
        XCTAssertEqual(hexString(bytes(.inject(queue: 1, fault: .nokick(5)))), hexString([0x0a, 0x01, 0x05, 0x05, 0x00]))
        XCTAssertEqual(hexString(bytes(.inject(queue: 0, fault: .noirq))), hexString([0x0a, 0x00, 0x06]))
        XCTAssertEqual(hexString(bytes(.inject(queue: 0, fault: .clear))), hexString([0x0a, 0x00, 0x07]))
        XCTAssertEqual(hexString(bytes(.kick(queue: 1))), hexString([0x0b, 0x01]))
        XCTAssertEqual(hexString(bytes(.poll(queue: 0))), hexString([0x0c, 0x00]))
    }

    func testEveryFaultRoundTripsAndBadOnesAreMalformed() throws {
        let faults: [WireFault] = [.drop(0), .drop(65535), .corrupt(1), .starve, .unstarve, .nokick(7), .noirq, .clear]
        for f in faults {
            for q: UInt8 in [0, 3, 255] {
                let c = WireCommand.inject(queue: q, fault: f)
                var r = WireReader(bytes(c))
                XCTAssertEqual(try WireCommand.read(from: &r), c)
            }
        }
        for bad: [UInt8] in [[0x0a], [0x0a, 0x00], [0x0a, 0x00, 0x00], [0x0a, 0x00, 0x08], [0x0a, 0x00, 0x01, 0x03],
                             [0x0a, 0x00, 0x05], [0x0b], [0x0c], [0x0d], [0x0d, 0x02], [0x0e, 0x00]] {
            var r = WireReader(bad)
            XCTAssertThrowsError(try WireCommand.read(from: &r), "\(bad) must be malformed")
        }
    }

    /// A net0.tx status with a withheld kick (docs/protocol.md §4, v3 example).
    static let status = WireQueueStatus(
        queue: 1, availIdx: 6, usedIdx: 5, lastUsedIdx: 5, freeCount: 255, pendingUsed: 0, paused: false,
        counters: WireQueueCounters(packets: 5, bytes: 420, drops: 0, kicks: 4, interrupts: 5, kicksSuppressed: 1,
                                    interruptsSuppressed: 0, injectedDrops: 0, injectedCorruptions: 0, kicksWithheld: 1,
                                    interruptsIgnored: 0),
        faults: WireQueueFaults(nokick: 4))

    func testQueueStatusBytesMatchTheDocumentedExample() throws {
        var w = WireWriter()
        Self.status.write(to: &w)
        XCTAssertEqual(hexString(w.bytes), hexString([
            0x01, 0x06, 0x00, 0x05, 0x00, 0x05, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00,
            0x05, 0xa4, 0x03, 0x00, 0x04, 0x05,
            0x01, 0x00, 0x00, 0x00, 0x01, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
        ]))
        var r = WireReader(w.bytes)
        XCTAssertEqual(try WireQueueStatus.read(from: &r), Self.status)
        try r.expectEnd()
    }

    func testFaultFlagsAndCountsRoundTripAndUndefinedBitsAreMalformed() throws {
        for flags: UInt8 in 0...3 {
            let f = WireQueueFaults(drop: 65535, corrupt: 1, nokick: 2, starving: flags & 1 != 0, noirq: flags & 2 != 0)
            var w = WireWriter()
            f.write(to: &w)
            XCTAssertEqual(w.bytes.count, WireQueueFaults.encodedBytes)
            XCTAssertEqual(w.bytes[0], flags)
            var r = WireReader(w.bytes)
            XCTAssertEqual(try WireQueueFaults.read(from: &r), f)
        }
        for bad: UInt8 in [4, 0x80, 0xff] {
            var r = WireReader([bad, 0, 0, 0, 0, 0, 0])
            XCTAssertThrowsError(try WireQueueFaults.read(from: &r))
        }
        XCTAssertTrue(WireQueueFaults(starving: true).isActive)
        XCTAssertFalse(WireQueueFaults.none.isActive)
    }

    /// A version 2 queue status (five counters, no faults) under this version's layout is
    /// malformed, never misread.
    func testVersion2QueueStatusIsMalformed() {
        let v2: [UInt8] = [0x01, 0x06, 0x00, 0x05, 0x00, 0x05, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x05, 0xa4, 0x03, 0x00, 0x04, 0x05]
        var r = WireReader(v2)
        XCTAssertThrowsError(try WireQueueStatus.read(from: &r))
    }

    func testCountersSubtractPerField() {
        let a = WireQueueCounters(packets: 10, bytes: 10, drops: 10, kicks: 10, interrupts: 10, kicksSuppressed: 10,
                                  interruptsSuppressed: 10, injectedDrops: 10, injectedCorruptions: 10, kicksWithheld: 10,
                                  interruptsIgnored: 10)
        let b = WireQueueCounters(packets: 1, bytes: 2, drops: 3, kicks: 4, interrupts: 5, kicksSuppressed: 6,
                                  interruptsSuppressed: 7, injectedDrops: 8, injectedCorruptions: 9, kicksWithheld: 10,
                                  interruptsIgnored: 11)
        XCTAssertEqual(a.subtracting(b), WireQueueCounters(packets: 9, bytes: 8, drops: 7, kicks: 6, interrupts: 5,
                                                           kicksSuppressed: 4, interruptsSuppressed: 3, injectedDrops: 2,
                                                           injectedCorruptions: 1, kicksWithheld: 0, interruptsIgnored: .max))
        XCTAssertEqual(WireDropReason.badChecksum.name, "badChecksum")
        XCTAssertEqual(WireDropReason.injected.name, "injected")
    }
}
