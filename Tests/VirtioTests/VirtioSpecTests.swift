import XCTest
@testable import Virtio

final class VirtioSpecTests: XCTestCase {
    func testNetHeaderEncodesLittleEndian() {
        let header = VirtioNetHeader(
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_NONE, hdrLen: 0x0102,
            gsoSize: 0x0304, csumStart: 34, csumOffset: 6, numBuffers: 0x0a0b)
        XCTAssertEqual(header.bytes, [1, 0, 0x02, 0x01, 0x04, 0x03, 34, 0, 6, 0, 0x0b, 0x0a])
        XCTAssertEqual(VirtioNetHeader(decoding: header.bytes), header)
        XCTAssertEqual(VirtioNetHeader(decoding: header.bytes + [0xff, 0xff]), header, "trailing frame bytes ignored")
        XCTAssertNil(VirtioNetHeader(decoding: Array(header.bytes.prefix(11))), "short input is nil, not a trap")
        XCTAssertNil(VirtioNetHeader(decoding: [UInt8]()))
        XCTAssertEqual(VirtioNetHeader().bytes, [UInt8](repeating: 0, count: 12))

        var small = [UInt8](repeating: 0xee, count: 8)
        XCTAssertFalse(small.withUnsafeMutableBytes { header.encode(into: $0) })
        XCTAssertEqual(small, [UInt8](repeating: 0xee, count: 8), "nothing written on failure")
    }

    func testFeatureWindows() {
        var features = VirtioFeatures(bits: [VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_F_VERSION_1, VIRTIO_F_RING_EVENT_IDX])
        XCTAssertEqual(features.word(0), 1 << 5 | 1 << 16 | 1 << 29)
        XCTAssertEqual(features.word(1), 1)
        XCTAssertEqual(features.word(2), 0)
        XCTAssertTrue(features.contains(VIRTIO_F_VERSION_1))
        XCTAssertFalse(features.contains(VIRTIO_F_RING_PACKED))
        features.remove(VIRTIO_F_RING_EVENT_IDX)
        XCTAssertFalse(features.contains(VIRTIO_F_RING_EVENT_IDX))
        var device = VirtioFeatures()
        device.setWord(0, to: 0xffff_ffff)
        device.setWord(1, to: 1 << (VIRTIO_F_ACCESS_PLATFORM - 32))
        XCTAssertEqual(features.intersection(device), VirtioFeatures(bits: [VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS]))
        XCTAssertFalse(features.contains(200))
    }

    func testPCIDeviceIDs() {
        XCTAssertEqual(virtioPCIDeviceType(deviceID: 0x1041), VIRTIO_ID_NET)
        XCTAssertEqual(virtioPCIDeviceType(deviceID: 0x1043), VIRTIO_ID_CONSOLE)
        XCTAssertEqual(virtioPCIDeviceType(deviceID: 0x1000), VIRTIO_ID_NET)
        XCTAssertEqual(virtioPCIDeviceType(deviceID: 0x1003), VIRTIO_ID_CONSOLE)
        XCTAssertNil(virtioPCIDeviceType(deviceID: 0x1040))
        XCTAssertNil(virtioPCIDeviceType(deviceID: 0x1234))
        XCTAssertEqual(VIRTIO_PCI_MODERN_DEVICE_ID_BASE + VIRTIO_ID_NET, VIRTIO_PCI_DEVICE_ID_NET)
    }

    /// struct virtio_pci_common_cfg packed as in 4.1.4.3: each offset is the previous one plus its size.
    func testCommonConfigOffsetsArePacked() {
        let fields: [(Int, Int)] = [
            (VIRTIO_PCI_COMMON_DEVICE_FEATURE_SELECT, 4), (VIRTIO_PCI_COMMON_DEVICE_FEATURE, 4),
            (VIRTIO_PCI_COMMON_DRIVER_FEATURE_SELECT, 4), (VIRTIO_PCI_COMMON_DRIVER_FEATURE, 4),
            (VIRTIO_PCI_COMMON_CONFIG_MSIX_VECTOR, 2), (VIRTIO_PCI_COMMON_NUM_QUEUES, 2),
            (VIRTIO_PCI_COMMON_DEVICE_STATUS, 1), (VIRTIO_PCI_COMMON_CONFIG_GENERATION, 1),
            (VIRTIO_PCI_COMMON_QUEUE_SELECT, 2), (VIRTIO_PCI_COMMON_QUEUE_SIZE, 2),
            (VIRTIO_PCI_COMMON_QUEUE_MSIX_VECTOR, 2), (VIRTIO_PCI_COMMON_QUEUE_ENABLE, 2),
            (VIRTIO_PCI_COMMON_QUEUE_NOTIFY_OFF, 2), (VIRTIO_PCI_COMMON_QUEUE_DESC, 8),
            (VIRTIO_PCI_COMMON_QUEUE_DRIVER, 8), (VIRTIO_PCI_COMMON_QUEUE_DEVICE, 8),
            (VIRTIO_PCI_COMMON_QUEUE_NOTIFY_DATA, 2), (VIRTIO_PCI_COMMON_QUEUE_RESET, 2),
        ]
        var expected = 0
        for (offset, size) in fields {
            XCTAssertEqual(offset, expected)
            expected += size
        }
        XCTAssertEqual(VIRTIO_PCI_COMMON_QUEUE_DESC, 32)
        XCTAssertEqual(VIRTIO_PCI_COMMON_QUEUE_DEVICE, 48)
        XCTAssertEqual(VIRTIO_PCI_NOTIFY_CAP_MULT_OFFSET, 16)
        XCTAssertEqual(VIRTIO_MSI_NO_VECTOR, 0xffff)
    }

    func testStatusAndFeatureConstants() {
        XCTAssertEqual([VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
                        VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET, VIRTIO_CONFIG_S_FAILED],
                       [1, 2, 4, 8, 64, 128])
        XCTAssertEqual([VIRTIO_F_INDIRECT_DESC, VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1,
                        VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_RING_PACKED], [28, 29, 32, 33, 34])
        XCTAssertEqual([VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_MTU, VIRTIO_NET_F_MAC,
                        VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_STATUS], [0, 1, 3, 5, 15, 16])
        XCTAssertEqual([VIRTIO_CONSOLE_F_SIZE, VIRTIO_CONSOLE_F_MULTIPORT], [0, 1])
        XCTAssertEqual([VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_CAP_ISR_CFG,
                        VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_PCI_CFG], [1, 2, 3, 4, 5])
        XCTAssertEqual(VIRTIO_NET_CONFIG_STATUS_OFFSET, 6)
        XCTAssertEqual(VIRTIO_NET_S_LINK_UP, 1)
    }
}
