// ARP (RFC 826) for Ethernet hardware and IPv4 protocol addresses only: the 28-byte form
//   hrd=1 (Ethernet), pro=0x0800, hln=6, pln=4, op, sha, spa, tha, tpa.

public struct ARPPacket {
    public static let length = 28
    public static let hardwareTypeEthernet: UInt16 = 1
    public static let operationRequest: UInt16 = 1
    public static let operationReply: UInt16 = 2

    public var operation: UInt16
    public var senderMAC: MACAddress
    public var senderIP: IPv4Address
    public var targetMAC: MACAddress
    public var targetIP: IPv4Address

    public init(
        operation: UInt16, senderMAC: MACAddress, senderIP: IPv4Address,
        targetMAC: MACAddress, targetIP: IPv4Address
    ) {
        self.operation = operation
        self.senderMAC = senderMAC
        self.senderIP = senderIP
        self.targetMAC = targetMAC
        self.targetIP = targetIP
    }

    public var isRequest: Bool { operation == ARPPacket.operationRequest }
    public var isReply: Bool { operation == ARPPacket.operationReply }

    /// The ARP packet at the start of `payload` (an Ethernet payload, trailing padding
    /// allowed), or nil if it is short, not Ethernet/IPv4, or neither request nor reply.
    public static func parse(_ payload: UnsafeRawBufferPointer) -> ARPPacket? {
        guard payload.count >= length,
              payload.netUInt16(at: 0) == hardwareTypeEthernet,
              payload.netUInt16(at: 2) == EtherTypeNumber.ipv4,
              payload[4] == 6, payload[5] == 4 else { return nil }
        let operation = payload.netUInt16(at: 6)
        guard operation == operationRequest || operation == operationReply else { return nil }
        return ARPPacket(
            operation: operation,
            senderMAC: MACAddress(bytes: payload, at: 8),
            senderIP: IPv4Address(bytes: payload, at: 14),
            targetMAC: MACAddress(bytes: payload, at: 18),
            targetIP: IPv4Address(bytes: payload, at: 24))
    }

    /// A complete Ethernet frame carrying this packet, padded to the minimum frame length.
    public func makeFrame(destination: MACAddress, source: MACAddress) -> [UInt8] {
        var frame = EthernetHeader(destination: destination, source: source, etherType: EtherTypeNumber.arp)
            .makeFrame(payloadLength: ARPPacket.length)
        let base = EthernetHeader.length
        frame.netStoreUInt16(ARPPacket.hardwareTypeEthernet, at: base)
        frame.netStoreUInt16(EtherTypeNumber.ipv4, at: base + 2)
        frame[base + 4] = 6
        frame[base + 5] = 4
        frame.netStoreUInt16(operation, at: base + 6)
        senderMAC.write(to: &frame, at: base + 8)
        senderIP.write(to: &frame, at: base + 14)
        targetMAC.write(to: &frame, at: base + 18)
        targetIP.write(to: &frame, at: base + 24)
        return frame
    }
}
