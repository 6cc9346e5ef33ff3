import XCTest
@testable import Virtio

/// The checks a driver makes on where a device says its registers are (4.1.4): a real QEMU
/// never lies, so the arithmetic is tested here.
final class VirtioPCIBoundsTests: XCTestCase {
    /// nil if a structure of `length` bytes at `offset` passes, else why not.
    private func check(_ type: UInt8 = VIRTIO_PCI_CAP_COMMON_CFG, offset: UInt32, length: UInt32,
                       minimumLength: UInt32 = 0, barSize: UInt64) -> VirtioPCIBoundsError? {
        do {
            try VirtioPCICapability(cfgType: type, bar: 4, offset: offset, length: length)
                .check(minimumLength: minimumLength, barSize: barSize)
            return nil
        } catch {
            return error
        }
    }

    private func doorbell(_ notifyOff: UInt16, _ multiplier: UInt32, length: UInt32,
                          notificationData: Bool = false) -> Result<UInt64, VirtioPCIBoundsError> {
        do {
            return .success(try virtioPCIQueueNotifyOffset(queueNotifyOff: notifyOff, notifyOffMultiplier: multiplier,
                                                           capabilityLength: length, notificationData: notificationData))
        } catch {
            return .failure(error)
        }
    }

    func testCommonConfigLengthCoversEveryFieldTheDriverUses() {
        XCTAssertEqual(VIRTIO_PCI_COMMON_CFG_LENGTH, UInt32(VIRTIO_PCI_COMMON_QUEUE_DEVICE + 8))
    }

    func testCapabilityMustLieInsideItsBAR() {
        // QEMU's layout: a 16 KiB BAR, one 4 KiB page per structure.
        XCTAssertNil(check(offset: 0, length: 0x1000, barSize: 0x4000))
        XCTAssertNil(check(offset: 0x3000, length: 0x1000, barSize: 0x4000), "ends exactly at the end")
        XCTAssertEqual(check(offset: 0x3001, length: 0x1000, barSize: 0x4000),
                       .capabilityOutsideBAR(cfgType: VIRTIO_PCI_CAP_COMMON_CFG, bar: 4, offset: 0x3001, length: 0x1000, barSize: 0x4000))
        XCTAssertNotNil(check(offset: 0x4000, length: 0, barSize: 0x3FFF), "offset past the end")
        // No wrap-around: offset + length is computed in 64 bits.
        XCTAssertNotNil(check(offset: 0xFFFF_FFFF, length: 0xFFFF_FFFF, barSize: 0x4000))
        XCTAssertNotNil(check(offset: 0xFFFF_F000, length: 0x2000, barSize: 0x1_0000_0000))
        XCTAssertEqual(check(offset: 0x3001, length: 0x1000, barSize: 0x4000)?.message.contains("outside BAR4"), true)
    }

    func testRegionFitsInBAR() {
        // An MSI-X table of 3 entries at offset 0 of a 4 KiB BAR, and one that runs over.
        XCTAssertTrue(pciRegionFits(offset: 0, length: 48, barSize: 0x1000))
        XCTAssertTrue(pciRegionFits(offset: 0xFD0, length: 48, barSize: 0x1000))
        XCTAssertFalse(pciRegionFits(offset: 0xFD8, length: 48, barSize: 0x1000))
        XCTAssertFalse(pciRegionFits(offset: 0, length: 1, barSize: 0))
        XCTAssertFalse(pciRegionFits(offset: 0xFFFF_FFF8, length: 16, barSize: 0x1_0000_0000))
    }

    func testCapabilityMustHoldTheFieldsTheDriverUses() {
        let short = check(offset: 0, length: 55, minimumLength: VIRTIO_PCI_COMMON_CFG_LENGTH, barSize: 0x4000)
        XCTAssertEqual(short, .capabilityTooShort(cfgType: VIRTIO_PCI_CAP_COMMON_CFG, length: 55, minimum: 56))
        XCTAssertEqual(short?.message.contains("common configuration"), true)
        XCTAssertNil(check(offset: 0, length: 56, minimumLength: VIRTIO_PCI_COMMON_CFG_LENGTH, barSize: 0x4000))
        XCTAssertNotNil(check(VIRTIO_PCI_CAP_ISR_CFG, offset: 0x1000, length: 0, minimumLength: VIRTIO_PCI_ISR_CFG_LENGTH, barSize: 0x4000))
    }

    func testDoorbellMustLieInsideTheNotificationStructure() {
        // QEMU: multiplier 4, queue n at notify_off n, a 4 KiB structure.
        XCTAssertEqual(doorbell(2, 4, length: 0x1000), .success(8))
        XCTAssertEqual(doorbell(0x3FF, 4, length: 0x1000), .success(0xFFC))
        XCTAssertEqual(doorbell(7, 0, length: 2), .success(0), "multiplier 0: every queue shares one doorbell")
        XCTAssertEqual(doorbell(0x400, 4, length: 0x1000),
                       .failure(.doorbellOutsideCapability(queueNotifyOff: 0x400, notifyOffMultiplier: 4, capabilityLength: 0x1000)))
        // The whole 2-byte write must fit, not just its first byte; 4 bytes with notification data.
        XCTAssertEqual(doorbell(0, 4, length: 1), .failure(.doorbellOutsideCapability(queueNotifyOff: 0, notifyOffMultiplier: 4, capabilityLength: 1)))
        XCTAssertEqual(doorbell(1, 4, length: 6), .success(4))
        XCTAssertEqual(doorbell(1, 4, length: 6, notificationData: true),
                       .failure(.doorbellOutsideCapability(queueNotifyOff: 1, notifyOffMultiplier: 4, capabilityLength: 6)))
        XCTAssertEqual(doorbell(1, 4, length: 8, notificationData: true), .success(4))
        // Largest values: no overflow, refused.
        XCTAssertEqual(doorbell(0xFFFF, 0xFFFF_FFFF, length: 0xFFFF_FFFF),
                       .failure(.doorbellOutsideCapability(queueNotifyOff: 0xFFFF, notifyOffMultiplier: 0xFFFF_FFFF, capabilityLength: 0xFFFF_FFFF)))
    }
}
