import XCTest
@testable import Wire

/// The kernel's answers to commands, checked on the host (the kernel compiles the same rules).
final class TelemetryCommandRulesTests: XCTestCase {
    typealias Rules = TelemetryCommandRules

    func testQueueIndexMustNameAQueue() {
        XCTAssertNil(Rules.checkQueue(3, queueCount: 4))
        XCTAssertEqual(Rules.checkQueue(4, queueCount: 4), TelemetryRefusal(.unknownQueue, "no queue 4; the kernel has 4"))
    }

    func testOnlyPausableQueuesPauseAndStep() {
        XCTAssertNil(Rules.checkPausable(name: "net0.rx", pausable: true))
        XCTAssertEqual(Rules.checkPausable(name: "con0.tx", pausable: false),
                       TelemetryRefusal(.unsupported, "con0.tx carries telemetry and cannot be paused"))
        XCTAssertEqual(Rules.checkStep(name: "con0.rx", pausable: false, paused: true, count: 1),
                       TelemetryRefusal(.unsupported, "con0.rx carries telemetry and cannot be stepped"))
    }

    func testStepNeedsAPausedQueueAndACount() {
        XCTAssertEqual(Rules.checkStep(name: "net0.rx", pausable: true, paused: false, count: 1)?.status, .badCommand)
        XCTAssertEqual(Rules.checkStep(name: "net0.rx", pausable: true, paused: true, count: 0),
                       TelemetryRefusal(.badCommand, "step count must be at least 1"))
        XCTAssertNil(Rules.checkStep(name: "net0.rx", pausable: true, paused: true, count: 1))
        XCTAssertEqual(Rules.stepMessage(done: 5, requested: 5), "")
        XCTAssertEqual(Rules.stepMessage(done: 2, requested: 5), "stepped 2 of 5: nothing more pending")
    }

    func testStepBatchesCoverEveryElementInOrderAcrossTheWrap() {
        XCTAssertTrue(Rules.stepBatches(count: 0, firstUsedIdx: 7).isEmpty)
        let max = WireEvent.maxBatchElements
        let batches = Rules.stepBatches(count: 2 * max + 3, firstUsedIdx: 65_535)
        XCTAssertEqual(batches.map(\.elements), [0..<max, max..<2 * max, 2 * max..<2 * max + 3])
        XCTAssertEqual(batches.map(\.firstUsedIdx),
                       [65_535, UInt16(truncatingIfNeeded: 65_535 + max), UInt16(truncatingIfNeeded: 65_535 + 2 * max)])
    }

    func testRateIsBounded() {
        XCTAssertNil(Rules.checkRate(0))
        XCTAssertNil(Rules.checkRate(Rules.maxRateHz))
        XCTAssertEqual(Rules.checkRate(Rules.maxRateHz + 1), TelemetryRefusal(.badCommand, "rate 1001 Hz is above 1000"))
    }

    func testDumpNeedsADescriptorInRangeAndInUse() {
        XCTAssertEqual(Rules.checkDumpDescriptor(256, size: 256, isFree: true),
                       TelemetryRefusal(.descriptorOutOfRange, "descriptor 256 is out of range (size 256)"))
        XCTAssertEqual(Rules.checkDumpDescriptor(3, size: 256, isFree: true)?.status, .notOwned)
        XCTAssertNil(Rules.checkDumpDescriptor(255, size: 256, isFree: false))
        XCTAssertEqual(Rules.notOwnedBuffer(9, name: "net0.tx"), TelemetryRefusal(.notOwned, "descriptor 9 holds none of net0.tx's buffers"))
    }

    func testDumpLengthIsWhatTheDeviceWroteOrWhatTheDriverWrote() {
        // RX: the used length once the device returned the buffer, the whole buffer before.
        XCTAssertEqual(Rules.dumpLength(deviceWritable: true, bufferLength: 2048, usedLength: 74), 74)
        XCTAssertEqual(Rules.dumpLength(deviceWritable: true, bufferLength: 2048, usedLength: nil), 2048)
        // TX: the device reports len 0 for what it only read; the driver's record counts.
        XCTAssertEqual(Rules.dumpLength(deviceWritable: false, bufferLength: 86, usedLength: 0), 86)
    }
}
