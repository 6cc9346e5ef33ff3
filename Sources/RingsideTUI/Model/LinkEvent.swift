// The telemetry channel as the screen model sees it: the connection state the header shows,
// and what happened on the channel, in order. `TelemetryPoller` produces these from
// RingsideKit's TelemetryConnection; tests feed them to TUIState directly.

import Wire

/// Connection state as the header shows it.
public enum LinkState: Equatable, Sendable {
    /// Never connected yet; trying.
    case connecting
    case connected
    /// Lost (the guest or QEMU went away); `reason` says why. Retrying.
    case reconnecting(reason: String)

    public var label: String {
        switch self {
        case .connecting: return "connecting"
        case .connected: return "connected"
        case .reconnecting: return "disconnected"
        }
    }
}

/// Something that happened on the link, in order.
public enum LinkEvent: Equatable, Sendable {
    case connected
    case disconnected(reason: String)
    case message(WireMessage, seq: UInt32)
    case decodeError(String)
    /// A command the recorded host sent, with its frame seq (replays of a recording only): the
    /// log shows it and names its reply as the live screen did.
    case sentCommand(WireCommand, seq: UInt32)
}
