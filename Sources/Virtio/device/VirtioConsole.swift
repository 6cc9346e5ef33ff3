// Virtio console device (5.3): feature bits, configuration layout, multiport control messages.
//
// Without VIRTIO_CONSOLE_F_MULTIPORT the device has one port on queues 0 (receiveq) and
// 1 (transmitq). With it, queues 2/3 carry `struct virtio_console_control` messages (5.3.6.2).

// MARK: Feature bits (5.3.3)

/// Configuration cols and rows are valid (5.3.3).
public let VIRTIO_CONSOLE_F_SIZE: UInt32 = 0
/// Several ports; max_nr_ports is valid and control virtqueues are used (5.3.3).
public let VIRTIO_CONSOLE_F_MULTIPORT: UInt32 = 1
/// The emerg_wr config field can be written for early output (5.3.3).
public let VIRTIO_CONSOLE_F_EMERG_WRITE: UInt32 = 2

// MARK: Device configuration layout (5.3.4)

/// Offset of `cols` (le16) in the device-specific config (5.3.4).
public let VIRTIO_CONSOLE_CONFIG_COLS_OFFSET = 0
/// Offset of `rows` (le16) (5.3.4).
public let VIRTIO_CONSOLE_CONFIG_ROWS_OFFSET = 2
/// Offset of `max_nr_ports` (le32) (5.3.4).
public let VIRTIO_CONSOLE_CONFIG_MAX_NR_PORTS_OFFSET = 4
/// Offset of `emerg_wr` (le32): writing a character emits it on port 0 (5.3.4).
public let VIRTIO_CONSOLE_CONFIG_EMERG_WR_OFFSET = 8

/// Queue index of port 0's receive queue (5.3.2).
public let VIRTIO_CONSOLE_PORT0_RX_QUEUE: UInt16 = 0
/// Queue index of port 0's transmit queue (5.3.2).
public let VIRTIO_CONSOLE_PORT0_TX_QUEUE: UInt16 = 1

// MARK: Multiport control messages (5.3.6.2)

/// Size of `struct virtio_console_control` {le32 id; le16 event; le16 value} (5.3.6.2).
public let VIRTIO_CONSOLE_CONTROL_SIZE = 8
/// Driver → device: the driver is ready (5.3.6.2).
public let VIRTIO_CONSOLE_DEVICE_READY: UInt16 = 0
/// Device → driver: a port was added (5.3.6.2).
public let VIRTIO_CONSOLE_DEVICE_ADD: UInt16 = 1
/// Device → driver: a port was removed (5.3.6.2).
public let VIRTIO_CONSOLE_DEVICE_REMOVE: UInt16 = 2
/// Driver → device: a port is ready (5.3.6.2).
public let VIRTIO_CONSOLE_PORT_READY: UInt16 = 3
/// Device → driver: the port is a console (5.3.6.2).
public let VIRTIO_CONSOLE_CONSOLE_PORT: UInt16 = 4
/// Device → driver: the console was resized (5.3.6.2).
public let VIRTIO_CONSOLE_RESIZE: UInt16 = 5
/// Both ways: a port was opened or closed (5.3.6.2).
public let VIRTIO_CONSOLE_PORT_OPEN: UInt16 = 6
/// Device → driver: the port's name follows (5.3.6.2).
public let VIRTIO_CONSOLE_PORT_NAME: UInt16 = 7
