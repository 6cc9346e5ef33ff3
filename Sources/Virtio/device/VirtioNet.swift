// Virtio network device (5.1): feature bits, configuration layout, and the per-packet header.
//
// Every buffer on a virtio-net queue starts with a `virtio_net_hdr` (5.1.6). With
// VIRTIO_F_VERSION_1 the header is always 12 bytes (num_buffers is present even without
// VIRTIO_NET_F_MRG_RXBUF); only legacy devices used the 10-byte form.

// MARK: Feature bits (5.1.3)

/// Device handles packets with partial checksum (checksum offload on transmit) (5.1.3).
public let VIRTIO_NET_F_CSUM: UInt32 = 0
/// Driver handles packets with partial checksum (receive) (5.1.3).
public let VIRTIO_NET_F_GUEST_CSUM: UInt32 = 1
/// Control channel offloads reconfiguration (5.1.3).
public let VIRTIO_NET_F_CTRL_GUEST_OFFLOADS: UInt32 = 2
/// Device reports its maximum MTU in the config space (5.1.3).
public let VIRTIO_NET_F_MTU: UInt32 = 3
/// Device has a MAC address in the config space (5.1.3).
public let VIRTIO_NET_F_MAC: UInt32 = 5
/// Driver can receive TSOv4 (5.1.3).
public let VIRTIO_NET_F_GUEST_TSO4: UInt32 = 7
/// Driver can receive TSOv6 (5.1.3).
public let VIRTIO_NET_F_GUEST_TSO6: UInt32 = 8
/// Driver can receive TSO with ECN (5.1.3).
public let VIRTIO_NET_F_GUEST_ECN: UInt32 = 9
/// Driver can receive UFO (5.1.3).
public let VIRTIO_NET_F_GUEST_UFO: UInt32 = 10
/// Device can receive TSOv4 (5.1.3).
public let VIRTIO_NET_F_HOST_TSO4: UInt32 = 11
/// Device can receive TSOv6 (5.1.3).
public let VIRTIO_NET_F_HOST_TSO6: UInt32 = 12
/// Device can receive TSO with ECN (5.1.3).
public let VIRTIO_NET_F_HOST_ECN: UInt32 = 13
/// Device can receive UFO (5.1.3).
public let VIRTIO_NET_F_HOST_UFO: UInt32 = 14
/// Driver can merge receive buffers; num_buffers counts them (5.1.3, 5.1.6.3).
public let VIRTIO_NET_F_MRG_RXBUF: UInt32 = 15
/// Config status field (link up) is available (5.1.3).
public let VIRTIO_NET_F_STATUS: UInt32 = 16
/// Control virtqueue is available (5.1.3).
public let VIRTIO_NET_F_CTRL_VQ: UInt32 = 17
/// Control channel RX mode support (5.1.3).
public let VIRTIO_NET_F_CTRL_RX: UInt32 = 18
/// Control channel VLAN filtering (5.1.3).
public let VIRTIO_NET_F_CTRL_VLAN: UInt32 = 19
/// Driver can send gratuitous packets (5.1.3).
public let VIRTIO_NET_F_GUEST_ANNOUNCE: UInt32 = 21
/// Device supports multiqueue with automatic receive steering (5.1.3).
public let VIRTIO_NET_F_MQ: UInt32 = 22
/// Set MAC address through the control channel (5.1.3).
public let VIRTIO_NET_F_CTRL_MAC_ADDR: UInt32 = 23
/// Device reports speed and duplex in the config space (5.1.3).
public let VIRTIO_NET_F_SPEED_DUPLEX: UInt32 = 63

// MARK: Device configuration layout (5.1.4)

/// Offset of `mac` (u8[6]) in the device-specific config, valid with VIRTIO_NET_F_MAC (5.1.4).
public let VIRTIO_NET_CONFIG_MAC_OFFSET = 0
/// Offset of `status` (le16), valid with VIRTIO_NET_F_STATUS (5.1.4).
public let VIRTIO_NET_CONFIG_STATUS_OFFSET = 6
/// Offset of `max_virtqueue_pairs` (le16), valid with VIRTIO_NET_F_MQ (5.1.4).
public let VIRTIO_NET_CONFIG_MAX_VIRTQUEUE_PAIRS_OFFSET = 8
/// Offset of `mtu` (le16), valid with VIRTIO_NET_F_MTU (5.1.4).
public let VIRTIO_NET_CONFIG_MTU_OFFSET = 10
/// Offset of `speed` (le32, Mbit/s), valid with VIRTIO_NET_F_SPEED_DUPLEX (5.1.4).
public let VIRTIO_NET_CONFIG_SPEED_OFFSET = 12
/// Offset of `duplex` (u8), valid with VIRTIO_NET_F_SPEED_DUPLEX (5.1.4).
public let VIRTIO_NET_CONFIG_DUPLEX_OFFSET = 16

/// Config status bit: the link is up (5.1.4).
public let VIRTIO_NET_S_LINK_UP: UInt16 = 1
/// Config status bit: the driver should announce itself (gratuitous ARP) (5.1.4).
public let VIRTIO_NET_S_ANNOUNCE: UInt16 = 2

/// Queue index of the first receive queue (5.1.2).
public let VIRTIO_NET_RX_QUEUE: UInt16 = 0
/// Queue index of the first transmit queue (5.1.2).
public let VIRTIO_NET_TX_QUEUE: UInt16 = 1

// MARK: Packet header (5.1.6)

/// flags: csum_start/csum_offset describe a checksum still to be computed (5.1.6).
public let VIRTIO_NET_HDR_F_NEEDS_CSUM: UInt8 = 1
/// flags: the device already validated the checksum (receive only) (5.1.6).
public let VIRTIO_NET_HDR_F_DATA_VALID: UInt8 = 2
/// flags: the header carries receive-segment-coalescing info (5.1.6).
public let VIRTIO_NET_HDR_F_RSC_INFO: UInt8 = 4
/// gso_type: not a GSO frame (5.1.6).
public let VIRTIO_NET_HDR_GSO_NONE: UInt8 = 0
/// gso_type: TCPv4 segmentation (5.1.6).
public let VIRTIO_NET_HDR_GSO_TCPV4: UInt8 = 1
/// gso_type: UDP fragmentation offload (5.1.6).
public let VIRTIO_NET_HDR_GSO_UDP: UInt8 = 3
/// gso_type: TCPv6 segmentation (5.1.6).
public let VIRTIO_NET_HDR_GSO_TCPV6: UInt8 = 4
/// gso_type: UDP segmentation (5.1.6).
public let VIRTIO_NET_HDR_GSO_UDP_L4: UInt8 = 5
/// gso_type bit: the TCP segments need ECN (5.1.6).
public let VIRTIO_NET_HDR_GSO_ECN: UInt8 = 0x80

/// `struct virtio_net_hdr` as laid out for virtio 1.x devices (5.1.6): 12 bytes, little endian.
public struct VirtioNetHeader: Equatable, Sendable {
    /// Size of the header on the wire of the queue (with VIRTIO_F_VERSION_1) (5.1.6).
    public static let size = 12

    /// VIRTIO_NET_HDR_F_* bits.
    public var flags: UInt8
    /// VIRTIO_NET_HDR_GSO_* type, possibly or-ed with VIRTIO_NET_HDR_GSO_ECN.
    public var gsoType: UInt8
    /// Length of the headers to copy into each segment (GSO).
    public var hdrLen: UInt16
    /// Maximum segment payload size (GSO).
    public var gsoSize: UInt16
    /// Where checksumming starts, from the start of the frame (NEEDS_CSUM).
    public var csumStart: UInt16
    /// Where to store the checksum, relative to csumStart (NEEDS_CSUM).
    public var csumOffset: UInt16
    /// Number of merged receive buffers for this packet (receive; 0 on transmit).
    public var numBuffers: UInt16

    public init(
        flags: UInt8 = 0, gsoType: UInt8 = VIRTIO_NET_HDR_GSO_NONE, hdrLen: UInt16 = 0,
        gsoSize: UInt16 = 0, csumStart: UInt16 = 0, csumOffset: UInt16 = 0, numBuffers: UInt16 = 0
    ) {
        self.flags = flags
        self.gsoType = gsoType
        self.hdrLen = hdrLen
        self.gsoSize = gsoSize
        self.csumStart = csumStart
        self.csumOffset = csumOffset
        self.numBuffers = numBuffers
    }

    /// Decodes a header from the first 12 bytes of `bytes`; nil if there are fewer.
    public init?(decoding bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= VirtioNetHeader.size else { return nil }
        func le16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
        self.init(
            flags: bytes[0], gsoType: bytes[1], hdrLen: le16(2), gsoSize: le16(4),
            csumStart: le16(6), csumOffset: le16(8), numBuffers: le16(10))
    }

    /// Decodes a header from the first 12 bytes of `bytes`; nil if there are fewer.
    public init?(decoding bytes: [UInt8]) {
        guard let header = bytes.withUnsafeBytes({ VirtioNetHeader(decoding: $0) }) else { return nil }
        self = header
    }

    /// Writes the 12 header bytes at the start of `buffer`; false (nothing written) if it is shorter.
    @discardableResult
    public func encode(into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard buffer.count >= VirtioNetHeader.size else { return false }
        func le16(_ value: UInt16, _ at: Int) {
            buffer[at] = UInt8(truncatingIfNeeded: value)
            buffer[at + 1] = UInt8(truncatingIfNeeded: value >> 8)
        }
        buffer[0] = flags
        buffer[1] = gsoType
        le16(hdrLen, 2)
        le16(gsoSize, 4)
        le16(csumStart, 6)
        le16(csumOffset, 8)
        le16(numBuffers, 10)
        return true
    }

    /// The 12 header bytes.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: VirtioNetHeader.size)
        out.withUnsafeMutableBytes { _ = encode(into: $0) }
        return out
    }
}
