// The TUI's view of the telemetry channel, kept behind a small protocol so the event loop
// does not care whether it talks to a socket of its own or RingsideKit's connection.

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
}

/// A non-blocking telemetry connection: the event loop polls `pollDescriptor`, then calls
/// `service`, which never blocks.
public protocol TelemetryLink: AnyObject {
    var state: LinkState { get }
    /// The descriptor to poll for input (nil while disconnected: poll with a timeout instead).
    var pollDescriptor: Int32? { get }
    /// True when output is queued (poll for POLLOUT too).
    var wantsWrite: Bool { get }
    /// Reads what is available, reconnects when due; returns what happened.
    func service(now: Double) -> [LinkEvent]
    /// Queues a command; returns its frame seq (the reply quotes it), nil when not connected.
    func send(_ command: WireCommand) -> UInt32?
    func close()
}
