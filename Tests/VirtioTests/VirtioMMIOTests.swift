import RingsideTestSupport
import XCTest
@testable import Virtio

/// The modern virtio-mmio transport (4.2) against a simulated device written from the
/// register table (SimulatedMMIODevice), and the `virtio_mmio.device=` parser.
final class VirtioMMIOTests: XCTestCase {
    private typealias Transport = VirtioMMIOTransport<SimulatedMMIODevice>

    private func probe(_ device: SimulatedMMIODevice, windowSize: UInt64 = 512) -> Result<Transport, VirtioMMIOError> {
        do {
            return .success(try Transport(registers: device, windowSize: windowSize))
        } catch {
            return .failure(error)
        }
    }

    private func transport(_ device: SimulatedMMIODevice) throws -> Transport {
        try probe(device).get()
    }

    private func probeError(_ device: SimulatedMMIODevice, windowSize: UInt64 = 512) -> VirtioMMIOError? {
        if case .failure(let error) = probe(device, windowSize: windowSize) { return error }
        return nil
    }

    // MARK: Probe (4.2.3.1.1)

    func testProbeAcceptsAModernDevice() throws {
        let device = SimulatedMMIODevice()
        device.deviceID = 3
        let transport = try transport(device)
        XCTAssertEqual(transport.deviceID, VIRTIO_ID_CONSOLE)
        XCTAssertEqual(transport.vendorID, 0x554d_4551)
        XCTAssertEqual(transport.configBytes, 512 - 0x100)
        XCTAssertEqual(device.violations, [])
        XCTAssertFalse(device.accesses.contains { if case .write = $0 { return true } else { return false } },
                       "probing writes nothing")
    }

    func testProbeRefusesBadMagic() {
        let device = SimulatedMMIODevice()
        device.magic = 0x7669_7274 // "virt" byte-swapped: a big-endian reading
        XCTAssertEqual(probeError(device), .badMagic(0x7669_7274))
        device.magic = 0xffff_ffff // nothing decodes the address
        XCTAssertEqual(probeError(device), .badMagic(0xffff_ffff))
        XCTAssertEqual(probeError(device)?.message.contains("not a virtio-mmio device"), true)
    }

    func testProbeRefusesLegacyWithAReason() {
        let device = SimulatedMMIODevice()
        device.version = 1
        XCTAssertEqual(probeError(device), .legacyDevice)
        XCTAssertEqual(probeError(device)?.message.contains("force-legacy=off"), true)
        device.version = 3
        XCTAssertEqual(probeError(device), .unsupportedVersion(3))
        device.version = 0
        XCTAssertEqual(probeError(device), .unsupportedVersion(0))
    }

    func testProbeRefusesDeviceIDZero() {
        // QEMU microvm fills unused virtio-mmio windows with DeviceID 0 placeholders.
        let device = SimulatedMMIODevice()
        device.deviceID = 0
        XCTAssertEqual(probeError(device), .noDevice)
    }

    func testProbeRefusesAWindowTooSmallForTheControlRegisters() {
        XCTAssertEqual(probeError(SimulatedMMIODevice(), windowSize: 0xff), .windowTooSmall(size: 0xff))
        XCTAssertNil(probeError(SimulatedMMIODevice(), windowSize: 0x100))
    }

    // MARK: Negotiation (3.1.1, 4.2.3.1)

    func testNegotiationReadsAndWritesBothFeatureHalves() throws {
        let device = SimulatedMMIODevice()
        // Bits in both halves: MAC (5), STATUS (16), EVENT_IDX (29) low; VERSION_1 (32), RING_PACKED (34) high.
        device.offeredFeatures = 1 << 5 | 1 << 16 | 1 << 29 | 1 << 32 | 1 << 34
        let transport = try transport(device)
        XCTAssertEqual(transport.deviceFeatures().rawValue, device.offeredFeatures)

        let wanted = VirtioFeatures(bits: [VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC, VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_IN_ORDER])
        let (accepted, offered) = try transport.negotiate(wanted: wanted, required: VirtioFeatures(bits: [VIRTIO_F_VERSION_1]))
        XCTAssertEqual(offered.rawValue, device.offeredFeatures)
        XCTAssertEqual(accepted, VirtioFeatures(bits: [VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC, VIRTIO_F_RING_EVENT_IDX]))
        XCTAssertEqual(device.driverFeatures, accepted.rawValue, "the device saw both halves")
        XCTAssertEqual(device.status, UInt32(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK))
        XCTAssertEqual(device.resets, 1, "negotiation starts from a reset")
        XCTAssertEqual(device.violations, [])

        transport.driverOK()
        XCTAssertEqual(device.status & UInt32(VIRTIO_CONFIG_S_DRIVER_OK), UInt32(VIRTIO_CONFIG_S_DRIVER_OK))
    }

    func testNegotiationFollowsTheStatusSequence() throws {
        let device = SimulatedMMIODevice()
        device.offeredFeatures = 1 << 32
        _ = try transport(device).negotiate(wanted: VirtioFeatures(bits: [VIRTIO_F_VERSION_1]), required: VirtioFeatures())
        let statusWrites = device.accesses.compactMap { access -> UInt32? in
            if case .write(0x070, let value) = access { return value } else { return nil }
        }
        XCTAssertEqual(statusWrites, [0, 1, 3, 11], "reset, ACKNOWLEDGE, DRIVER, FEATURES_OK (3.1.1)")
        let firstDriverFeatures = device.accesses.firstIndex(of: .write(offset: 0x020, value: 0))!
        let featuresOK = device.accesses.firstIndex(of: .write(offset: 0x070, value: 11))!
        XCTAssertLessThan(firstDriverFeatures, featuresOK, "features are written before FEATURES_OK")
    }

    func testNegotiationFailsWhenTheDeviceClearsFeaturesOK() throws {
        let device = SimulatedMMIODevice()
        device.offeredFeatures = 1 << 32
        device.refuseFeatures = true
        let transport = try transport(device)
        XCTAssertThrowsError(try transport.negotiate(wanted: VirtioFeatures(bits: [VIRTIO_F_VERSION_1]),
                                                     required: VirtioFeatures())) { error in
            XCTAssertEqual(error as? VirtioMMIOError, .featuresRefused(accepted: 1 << 32))
        }
        XCTAssertEqual(device.status & UInt32(VIRTIO_CONFIG_S_FAILED), UInt32(VIRTIO_CONFIG_S_FAILED), "FAILED is set")
        XCTAssertEqual(device.status & UInt32(VIRTIO_CONFIG_S_FEATURES_OK), 0)
    }

    func testNegotiationFailsWithoutARequiredFeature() throws {
        let device = SimulatedMMIODevice()
        device.offeredFeatures = 1 << 5 // no VERSION_1
        let transport = try transport(device)
        XCTAssertThrowsError(try transport.negotiate(wanted: VirtioFeatures(bits: [VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC]),
                                                     required: VirtioFeatures(bits: [VIRTIO_F_VERSION_1]))) { error in
            XCTAssertEqual(error as? VirtioMMIOError, .missingFeatures(offered: 1 << 5, required: 1 << 32))
        }
        XCTAssertEqual(device.status & UInt32(VIRTIO_CONFIG_S_FAILED), UInt32(VIRTIO_CONFIG_S_FAILED))
        XCTAssertEqual(device.status & UInt32(VIRTIO_CONFIG_S_FEATURES_OK), 0, "FEATURES_OK never set")
    }

    // MARK: Queues (4.2.3.2)

    func testQueueSetupWritesSizeAndAddressHalvesThenReady() throws {
        let device = SimulatedMMIODevice(queueNumMax: [256, 1024])
        let transport = try transport(device)
        XCTAssertEqual(try transport.queueMaximum(index: 1), 1024)
        try transport.enableQueue(index: 1, size: 512, descriptorArea: 0x1_2345_6000,
                                  driverArea: 0xdead_b000, deviceArea: 0xffff_ffff_0000_1000)
        let queue = device.queues[1]
        XCTAssertEqual(queue.num, 512)
        XCTAssertEqual(queue.desc, 0x1_2345_6000)
        XCTAssertEqual(queue.descHigh, 1, "high half")
        XCTAssertEqual(queue.driver, 0xdead_b000)
        XCTAssertEqual(queue.driverHigh, 0)
        XCTAssertEqual(queue.device, 0xffff_ffff_0000_1000)
        XCTAssertEqual(queue.ready, 1)
        XCTAssertEqual(device.queues[0], SimulatedMMIODevice.Queue(numMax: 256), "the other queue untouched")
        // QueueReady is the last write: the device may use the queue from then on.
        XCTAssertEqual(device.accesses.last(where: { if case .write = $0 { true } else { false } }),
                       .write(offset: 0x044, value: 1))
        XCTAssertEqual(device.violations, [])
    }

    func testAbsentQueueIsRefused() throws {
        let device = SimulatedMMIODevice(queueNumMax: [256, 0])
        let transport = try transport(device)
        XCTAssertThrowsError(try transport.queueMaximum(index: 1)) {
            XCTAssertEqual($0 as? VirtioMMIOError, .queueAbsent(index: 1))
        }
        XCTAssertThrowsError(try transport.queueMaximum(index: 7), "beyond the device's queues: QueueNumMax reads 0") {
            XCTAssertEqual($0 as? VirtioMMIOError, .queueAbsent(index: 7))
        }
        XCTAssertThrowsError(try transport.enableQueue(index: 1, size: 1, descriptorArea: 0, driverArea: 0, deviceArea: 0))
        XCTAssertEqual(device.queues[1].ready, 0)
    }

    func testQueueSizeMustBeAPowerOfTwoWithinTheMaximum() throws {
        let device = SimulatedMMIODevice(queueNumMax: [256])
        let transport = try transport(device)
        for bad: UInt16 in [0, 3, 100, 257, 512] {
            XCTAssertThrowsError(try transport.enableQueue(index: 0, size: bad, descriptorArea: 0x1000,
                                                           driverArea: 0x2000, deviceArea: 0x3000), "size \(bad)") {
                XCTAssertEqual($0 as? VirtioMMIOError, .badQueueSize(index: 0, size: bad, maximum: 256))
            }
            XCTAssertEqual(device.queues[0].ready, 0)
            XCTAssertEqual(device.queues[0].num, 0, "nothing written for a refused size")
        }
        try transport.enableQueue(index: 0, size: 256, descriptorArea: 0x1000, driverArea: 0x2000, deviceArea: 0x3000)
        XCTAssertEqual(device.queues[0].num, 256, "the maximum itself is allowed")
    }

    func testQueueAlreadyReadyIsRefused() throws {
        let device = SimulatedMMIODevice(queueNumMax: [256])
        let transport = try transport(device)
        try transport.enableQueue(index: 0, size: 8, descriptorArea: 0x1000, driverArea: 0x2000, deviceArea: 0x3000)
        XCTAssertThrowsError(try transport.enableQueue(index: 0, size: 8, descriptorArea: 0x4000,
                                                       driverArea: 0x5000, deviceArea: 0x6000)) {
            XCTAssertEqual($0 as? VirtioMMIOError, .queueInUse(index: 0))
        }
        XCTAssertEqual(device.queues[0].desc, 0x1000, "a live queue is not reprogrammed")
        XCTAssertEqual(device.violations, [])
    }

    func testNotifyWritesTheQueueIndex() throws {
        let device = SimulatedMMIODevice()
        let transport = try transport(device)
        transport.notify(queue: 1)
        transport.notify(queue: 0)
        XCTAssertEqual(device.notifications, [1, 0])
    }

    // MARK: Interrupts (4.2.3.4)

    func testInterruptStatusTellsUsedBuffersFromConfigChanges() throws {
        let device = SimulatedMMIODevice()
        let transport = try transport(device)
        XCTAssertTrue(transport.takeInterrupt().isEmpty)
        XCTAssertFalse(device.accesses.contains(.write(offset: 0x064, value: 0)), "nothing to acknowledge: no write")

        device.interruptStatus = 1
        var reasons = transport.takeInterrupt()
        XCTAssertTrue(reasons.usedBuffer)
        XCTAssertFalse(reasons.configChange)
        XCTAssertEqual(device.interruptStatus, 0, "acknowledged")

        device.interruptStatus = 2
        reasons = transport.takeInterrupt()
        XCTAssertFalse(reasons.usedBuffer)
        XCTAssertTrue(reasons.configChange)
        XCTAssertEqual(device.interruptStatus, 0)

        device.interruptStatus = 3
        reasons = transport.takeInterrupt()
        XCTAssertTrue(reasons.usedBuffer && reasons.configChange)
        XCTAssertEqual(device.interruptStatus, 0)
        XCTAssertEqual(device.violations, [])
    }

    func testAcknowledgeClearsOnlyWhatItNames() throws {
        let device = SimulatedMMIODevice()
        let transport = try transport(device)
        device.interruptStatus = 3
        let seen = transport.interruptStatus()
        XCTAssertEqual(seen.rawValue, 3)
        transport.acknowledge(VirtioMMIOInterrupt(rawValue: VIRTIO_MMIO_INT_VRING))
        XCTAssertEqual(device.interruptStatus, 2, "the configuration change is still pending")
        XCTAssertTrue(transport.interruptStatus().configChange)
    }

    // MARK: Configuration (2.5.1, 4.2.2.2)

    func testConfigFieldsAreReadAtTheirWidth() throws {
        let device = SimulatedMMIODevice(config: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x01, 0x00, 0x78, 0x56, 0x34, 0x12])
        let transport = try transport(device)
        XCTAssertEqual(try transport.config8(1), 0x54)
        XCTAssertEqual(try transport.config16(6), 1)
        XCTAssertEqual(try transport.config32(8), 0x1234_5678)
        XCTAssertEqual(Array(device.accesses.suffix(3)),
                       [.read(offset: 0x101, width: 1), .read(offset: 0x106, width: 2), .read(offset: 0x108, width: 4)])
        XCTAssertEqual(device.violations, [])
    }

    func testConfigReadsOutsideTheWindowAreRefused() throws {
        let device = SimulatedMMIODevice()
        let transport = try Transport(registers: device, windowSize: 0x110) // 16 configuration bytes
        XCTAssertEqual(try transport.config32(12), 0)
        XCTAssertThrowsError(try transport.config32(16)) {
            XCTAssertEqual($0 as? VirtioMMIOError, .configOutOfRange(offset: 16, width: 4, configBytes: 16))
        }
        XCTAssertThrowsError(try transport.config16(15), "straddles the end")
        XCTAssertThrowsError(try transport.config8(-1))
        XCTAssertThrowsError(try transport.config16(3), "unaligned")
        XCTAssertThrowsError(try transport.config8(Int.max))
        XCTAssertEqual(device.violations, [], "nothing refused reached the device")
    }

    func testConfigReadRetriesWhenTheGenerationChangesMidRead() throws {
        // A 6-byte MAC read byte by byte; the device changes it after the third byte, once.
        let device = SimulatedMMIODevice(config: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0, 0])
        let transport = try transport(device)
        var changed = false
        device.beforeConfigRead = { device, offset in
            if offset == 3 && !changed {
                changed = true
                for i in 0..<6 { device.changeConfig(at: i, to: 0xa0 + UInt8(i)) }
            }
        }
        let mac = try transport.readConfig { transport throws(VirtioMMIOError) in
            var mac = [UInt8]()
            for i in 0..<6 { mac.append(try transport.config8(i)) }
            return mac
        }
        XCTAssertEqual(mac, [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5], "not the torn 52:54:00:a3:a4:a5")
        let generationReads = device.accesses.filter { $0 == .read(offset: 0x0fc, width: 4) }.count
        XCTAssertEqual(generationReads, 4, "before and after, twice")
    }

    func testConfigReadGivesUpOnADeviceThatNeverSettles() throws {
        let device = SimulatedMMIODevice()
        let transport = try transport(device)
        device.beforeConfigRead = { device, _ in device.configGeneration &+= 1 }
        XCTAssertThrowsError(try transport.readConfig { transport throws(VirtioMMIOError) in try transport.config8(0) }) {
            XCTAssertEqual($0 as? VirtioMMIOError, .configNeverStable(attempts: Transport.configReadAttempts))
        }
    }

    func testConfigReadPassesThroughItsBodysError() throws {
        let transport = try transport(SimulatedMMIODevice())
        XCTAssertThrowsError(try transport.readConfig { transport throws(VirtioMMIOError) in try transport.config8(9999) }) {
            XCTAssertEqual($0 as? VirtioMMIOError, .configOutOfRange(offset: 9999, width: 1, configBytes: 256))
        }
    }

    // MARK: The whole bring-up against the simulated device

    func testBringUpInSpecOrderLeavesNoViolations() throws {
        let device = SimulatedMMIODevice(queueNumMax: [256, 256], config: [0x52, 0x54, 0, 0x12, 0x34, 0x56, 1, 0])
        device.offeredFeatures = 1 << 32 | 1 << 5 | 1 << 16
        let transport = try transport(device)
        XCTAssertEqual(transport.deviceID, VIRTIO_ID_NET)
        let (accepted, _) = try transport.negotiate(
            wanted: VirtioFeatures(bits: [VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS]),
            required: VirtioFeatures(bits: [VIRTIO_F_VERSION_1]))
        XCTAssertTrue(accepted.contains(VIRTIO_NET_F_MAC))
        for index: UInt16 in 0..<2 {
            let size = try transport.queueMaximum(index: index)
            let base = 0x10_0000 * UInt64(index + 1)
            try transport.enableQueue(index: index, size: size, descriptorArea: base, driverArea: base + 0x1000,
                                      deviceArea: base + 0x2000)
        }
        let status = try transport.readConfig { transport throws(VirtioMMIOError) in try transport.config16(6) }
        XCTAssertEqual(status, 1)
        transport.driverOK()
        XCTAssertEqual(device.status, 15)
        XCTAssertEqual(device.queues.map(\.ready), [1, 1])
        XCTAssertEqual(device.violations, [])
    }

    // MARK: virtio_mmio.device= (Linux drivers/virtio/virtio_mmio.c)

    private func parse(_ text: String) -> Result<VirtioMMIODeviceArgument, VirtioMMIOArgumentError> {
        do {
            return .success(try parseVirtioMMIODeviceArgument(ArraySlice(Array(text.utf8))))
        } catch {
            return .failure(error)
        }
    }

    func testParsesWhatQEMUMicrovmAppends() {
        XCTAssertEqual(parse("512@0xfeb00e00:12"), .success(VirtioMMIODeviceArgument(base: 0xfeb0_0e00, size: 512, irq: 12)))
        let line = "earlyprintk=ttyS0 virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11 quiet"
        let (devices, errors) = virtioMMIODevices(commandLine: Array(line.utf8))
        XCTAssertEqual(devices, [VirtioMMIODeviceArgument(base: 0xfeb0_0e00, size: 512, irq: 12),
                                 VirtioMMIODeviceArgument(base: 0xfeb0_0c00, size: 512, irq: 11)])
        XCTAssertEqual(errors, [])
    }

    func testSizeSuffixesAndNumberBasesAsLinuxMemparse() {
        XCTAssertEqual(try parse("4K@0x1000:5").get().size, 4096)
        XCTAssertEqual(try parse("4k@0x1000:5").get().size, 4096)
        XCTAssertEqual(try parse("1M@0x1000:5").get().size, 1 << 20)
        XCTAssertEqual(try parse("2G@0:5").get().size, 2 << 30)
        XCTAssertEqual(try parse("0x200@0x1000:5").get().size, 512)
        XCTAssertEqual(try parse("0x1e@0x1000:5").get().size, 0x1e, "e is a hex digit here, not the exa suffix")
        XCTAssertEqual(try parse("1e@0:5").get().size, 1 << 60, "exa")
        XCTAssertEqual(try parse("01000@0:5").get().size, 512, "leading 0: octal")
        XCTAssertEqual(try parse("512@4096:5").get().base, 4096, "decimal base")
        XCTAssertEqual(try parse("512@0XFEB00E00:12").get().base, 0xfeb0_0e00)
        XCTAssertEqual(parse("512@0x1000:5:3"), .success(VirtioMMIODeviceArgument(base: 0x1000, size: 512, irq: 5, platformID: 3)))
        XCTAssertEqual(try parse("512@0x1000:5:-1").get().platformID, -1)
    }

    func testMalformedArgumentsAreRefusedWithAReason() {
        XCTAssertEqual(parse(""), .failure(.badSize))
        XCTAssertEqual(parse("@0x1000:5"), .failure(.badSize))
        XCTAssertEqual(parse("0x@0x1000:5"), .failure(.badSize))
        XCTAssertEqual(parse("0@0x1000:5"), .failure(.zeroSize))
        XCTAssertEqual(parse("512"), .failure(.missingBase))
        XCTAssertEqual(parse("512K"), .failure(.missingBase))
        XCTAssertEqual(parse("512X@0:5"), .failure(.missingBase), "not a suffix")
        XCTAssertEqual(parse("512@"), .failure(.badBase))
        XCTAssertEqual(parse("512@:5"), .failure(.badBase))
        XCTAssertEqual(parse("512@0x1000"), .failure(.missingIRQ))
        XCTAssertEqual(parse("512@0x1000K:5"), .failure(.missingIRQ), "no suffix on the base")
        XCTAssertEqual(parse("512@0x1000:"), .failure(.badIRQ))
        XCTAssertEqual(parse("512@0x1000:x"), .failure(.badIRQ))
        XCTAssertEqual(parse("512@0x1000:0"), .failure(.zeroIRQ))
        XCTAssertEqual(parse("512@0x1000:5:"), .failure(.badPlatformID))
        XCTAssertEqual(parse("512@0x1000:5:-"), .failure(.badPlatformID))
        XCTAssertEqual(parse("512@0x1000:5x"), .failure(.trailingCharacters))
        XCTAssertEqual(parse("512@0x1000:5:1:2"), .failure(.trailingCharacters))
        XCTAssertEqual(parse("512@0x1000:0x5"), .failure(.zeroIRQ), "irq is decimal: 0x5 reads as 0")
        for error in [VirtioMMIOArgumentError.badSize, .windowWraps, .tooManyDevices] {
            XCTAssertFalse(error.message.isEmpty)
        }
    }

    func testOverflowingNumbersAreRefusedNotWrapped() {
        XCTAssertEqual(parse("18446744073709551616@0:5"), .failure(.sizeOverflow), "2^64")
        XCTAssertEqual(parse("0x10000000000000000@0:5"), .failure(.sizeOverflow))
        XCTAssertEqual(parse("16E@0:5"), .failure(.sizeOverflow), "16 EiB = 2^64")
        XCTAssertEqual(try parse("15E@0:5").get().size, 15 << 60)
        XCTAssertEqual(parse("0x40000000000000K@0:5"), .failure(.sizeOverflow), "2^54 KiB = 2^64")
        XCTAssertEqual(try parse("0x3fffffffffffffK@0:5").get().size, 0xffff_ffff_ffff_fc00, "the largest that fits")
        XCTAssertEqual(parse("512@0x10000000000000000:5"), .failure(.baseOverflow))
        XCTAssertEqual(parse("512@0xfffffffffffffe00:5").map(\.base), .success(0xffff_ffff_ffff_fe00), "ends exactly at 2^64")
        XCTAssertEqual(parse("512@0xfffffffffffffe01:5"), .failure(.windowWraps))
        XCTAssertEqual(parse("512@0x1000:4294967295").map(\.irq), .success(UInt32.max))
        XCTAssertEqual(parse("512@0x1000:4294967296"), .failure(.badIRQ))
        XCTAssertEqual(parse("512@0x1000:99999999999999999999999"), .failure(.badIRQ))
        XCTAssertEqual(parse("512@0x1000:5:2147483648"), .failure(.badPlatformID))
        XCTAssertEqual(try parse("512@0x1000:5:-2147483648").get().platformID, Int32.min)
    }

    func testCommandLineScanningKeepsGoodArgumentsAndReportsBadOnes() {
        let line = "virtio_mmio.device=512@0x1000:5 virtio_mmio.device=oops\tvirtio-mmio.device=1K@0x2000:6\n"
            + "virtio_mmio.device= virtio_mmio.devices=512@0:1 xvirtio_mmio.device=512@0:1 virtio_mmio.device"
        let (devices, errors) = virtioMMIODevices(commandLine: Array(line.utf8))
        XCTAssertEqual(devices, [VirtioMMIODeviceArgument(base: 0x1000, size: 512, irq: 5),
                                 VirtioMMIODeviceArgument(base: 0x2000, size: 1024, irq: 6)])
        XCTAssertEqual(errors, [.badSize], "the empty value is not an argument of the key; other keys are ignored")
        XCTAssertEqual(virtioMMIODevices(commandLine: []).devices, [])
        XCTAssertEqual(virtioMMIODevices(commandLine: Array("   ".utf8)).devices, [])
    }

    func testCommandLineDeviceCountIsBounded() {
        let line = (0..<40).map { "virtio_mmio.device=512@0x\(String($0 * 0x200 + 0x1000, radix: 16)):5" }.joined(separator: " ")
        let (devices, errors) = virtioMMIODevices(commandLine: Array(line.utf8))
        XCTAssertEqual(devices.count, virtioMMIOMaxDevices)
        XCTAssertEqual(errors, [.tooManyDevices])
    }

    func testHostileCommandLinesNeverTrap() {
        // A fixed seed: the same 2000 inputs every run.
        var generator = SplitMix64(seed: 14)
        let alphabet = Array("0123456789abcdefxXKMGE@:-_ =virtomd.\t".utf8) + [0, 0xff, 0x80]
        for _ in 0..<2000 {
            // Pieces: a random byte, or a run of digits long enough to overflow 64 bits.
            var value: [UInt8] = []
            for _ in 0..<Int.random(in: 0..<12, using: &generator) {
                if Bool.random(using: &generator) {
                    value.append(alphabet.randomElement(using: &generator)!)
                } else {
                    let digits = Array("0123456789abcdef".utf8).prefix(Bool.random(using: &generator) ? 10 : 16)
                    value += (0..<Int.random(in: 1..<40, using: &generator)).map { _ in digits.randomElement(using: &generator)! }
                }
            }
            _ = virtioMMIODevices(commandLine: Array("virtio_mmio.device=".utf8) + value)
            _ = try? parseVirtioMMIODeviceArgument(ArraySlice(value))
        }
    }
}
