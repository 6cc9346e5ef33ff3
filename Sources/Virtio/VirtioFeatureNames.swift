// Feature bits and the device status byte by their spec names, for display: the one table the
// monitor's features panel (TUI `F`) and `ringside watch --json` both use.
//
// Names are the specification's (virtio 1.2 §6 reserved bits, §5.1.3 network, §5.3.3 console;
// legacy-only bits as Linux's headers call them). A bit without a name here is shown as `bit N`.

/// The spec name of feature `bit` for a device of type `deviceType` (VIRTIO_ID_*), or nil if
/// this table does not know it. Bits 24–40 are device-independent (§6); the rest depend on the
/// device type.
public func virtioFeatureName(bit: Int, deviceType: UInt16) -> StaticString? {
    switch bit {
    case 24: return "VIRTIO_F_NOTIFY_ON_EMPTY"   // legacy
    case 27: return "VIRTIO_F_ANY_LAYOUT"        // legacy
    case 28: return "VIRTIO_F_INDIRECT_DESC"
    case 29: return "VIRTIO_F_RING_EVENT_IDX"
    case 32: return "VIRTIO_F_VERSION_1"
    case 33: return "VIRTIO_F_ACCESS_PLATFORM"
    case 34: return "VIRTIO_F_RING_PACKED"
    case 35: return "VIRTIO_F_IN_ORDER"
    case 36: return "VIRTIO_F_ORDER_PLATFORM"
    case 37: return "VIRTIO_F_SR_IOV"
    case 38: return "VIRTIO_F_NOTIFICATION_DATA"
    case 39: return "VIRTIO_F_NOTIF_CONFIG_DATA"
    case 40: return "VIRTIO_F_RING_RESET"
    case 41: return "VIRTIO_F_ADMIN_VQ"
    default: break
    }
    switch deviceType {
    case VIRTIO_ID_NET:
        switch bit {
        case 0: return "VIRTIO_NET_F_CSUM"
        case 1: return "VIRTIO_NET_F_GUEST_CSUM"
        case 2: return "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS"
        case 3: return "VIRTIO_NET_F_MTU"
        case 5: return "VIRTIO_NET_F_MAC"
        case 6: return "VIRTIO_NET_F_GSO"        // legacy
        case 7: return "VIRTIO_NET_F_GUEST_TSO4"
        case 8: return "VIRTIO_NET_F_GUEST_TSO6"
        case 9: return "VIRTIO_NET_F_GUEST_ECN"
        case 10: return "VIRTIO_NET_F_GUEST_UFO"
        case 11: return "VIRTIO_NET_F_HOST_TSO4"
        case 12: return "VIRTIO_NET_F_HOST_TSO6"
        case 13: return "VIRTIO_NET_F_HOST_ECN"
        case 14: return "VIRTIO_NET_F_HOST_UFO"
        case 15: return "VIRTIO_NET_F_MRG_RXBUF"
        case 16: return "VIRTIO_NET_F_STATUS"
        case 17: return "VIRTIO_NET_F_CTRL_VQ"
        case 18: return "VIRTIO_NET_F_CTRL_RX"
        case 19: return "VIRTIO_NET_F_CTRL_VLAN"
        case 20: return "VIRTIO_NET_F_CTRL_RX_EXTRA"
        case 21: return "VIRTIO_NET_F_GUEST_ANNOUNCE"
        case 22: return "VIRTIO_NET_F_MQ"
        case 23: return "VIRTIO_NET_F_CTRL_MAC_ADDR"
        case 52: return "VIRTIO_NET_F_VQ_NOTF_COAL"
        case 53: return "VIRTIO_NET_F_NOTF_COAL"
        case 54: return "VIRTIO_NET_F_GUEST_USO4"
        case 55: return "VIRTIO_NET_F_GUEST_USO6"
        case 56: return "VIRTIO_NET_F_HOST_USO"
        case 57: return "VIRTIO_NET_F_HASH_REPORT"
        case 59: return "VIRTIO_NET_F_GUEST_HDRLEN"
        case 60: return "VIRTIO_NET_F_RSS"
        case 61: return "VIRTIO_NET_F_RSC_EXT"
        case 62: return "VIRTIO_NET_F_STANDBY"
        case 63: return "VIRTIO_NET_F_SPEED_DUPLEX"
        default: return nil
        }
    case VIRTIO_ID_CONSOLE:
        switch bit {
        case 0: return "VIRTIO_CONSOLE_F_SIZE"
        case 1: return "VIRTIO_CONSOLE_F_MULTIPORT"
        case 2: return "VIRTIO_CONSOLE_F_EMERG_WRITE"
        default: return nil
        }
    default:
        return nil
    }
}

/// The set bits of `features`, lowest first, each by its spec name or as `bit N`.
public func virtioFeatureNames(_ features: UInt64, deviceType: UInt16) -> [String] {
    var names: [String] = []
    for bit in 0..<64 where features & (1 << UInt64(bit)) != 0 {
        if let name = virtioFeatureName(bit: bit, deviceType: deviceType) {
            names.append(name.description)
        } else {
            names.append("bit \(bit)")
        }
    }
    return names
}

/// The device status byte's set bits by name (virtio 1.2 §2.1), lowest first: ACKNOWLEDGE,
/// DRIVER, DRIVER_OK, FEATURES_OK, NEEDS_RESET, FAILED; other bits as `bit N`. Empty for 0
/// (reset).
public func virtioStatusNames(_ status: UInt8) -> [String] {
    var names: [String] = []
    for bit in 0..<8 where status & (1 << UInt8(bit)) != 0 {
        switch UInt8(1) << UInt8(bit) {
        case VIRTIO_CONFIG_S_ACKNOWLEDGE: names.append("ACKNOWLEDGE")
        case VIRTIO_CONFIG_S_DRIVER: names.append("DRIVER")
        case VIRTIO_CONFIG_S_DRIVER_OK: names.append("DRIVER_OK")
        case VIRTIO_CONFIG_S_FEATURES_OK: names.append("FEATURES_OK")
        case VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET: names.append("NEEDS_RESET")
        case VIRTIO_CONFIG_S_FAILED: names.append("FAILED")
        default: names.append("bit \(bit)")
        }
    }
    return names
}
