// A telemetry link that outlives the guest: it connects when a retry is due, reads what has
// arrived, and after the guest goes away tries again (the guest may not have started yet, or
// QEMU is restarting). `ringside watch`, `ringside record` and the TUI's TelemetryPoller keep
// their link this way; each only decides what to say about it. The TelemetryConnection underneath resynchronises
// itself (hello on every connect), so a reconnect needs nothing more from the caller.

import Foundation
import Wire

public final class ReconnectingTelemetry {
    /// What one `service` call saw, in order.
    public enum Event {
        /// A connect attempt succeeded (the first, or one after a disconnect).
        case connected
        /// A connect attempt failed; the next is due `retryInterval` seconds after it.
        case unreachable(RingsideError)
        /// What the connection received; `.disconnected` when the guest closed it.
        case incoming(TelemetryIncoming)
    }

    public let path: String
    /// Seconds between connect attempts while the socket is gone.
    public let retryInterval: Double
    /// Nil until the first connect succeeds; then kept and reconnected, so its model survives.
    private var connection: TelemetryConnection?
    private var nextAttempt = 0.0
    /// Sees every byte that crosses the channel (`ringside record`), as TelemetryConnection's.
    private let tap: (@Sendable (RecordingDirection, [UInt8]) -> Void)?

    public init(path: String, retryInterval: Double, tap: (@Sendable (RecordingDirection, [UInt8]) -> Void)? = nil) {
        self.path = path
        self.retryInterval = retryInterval
        self.tap = tap
    }

    public var isConnected: Bool { connection?.isConnected == true }

    /// Bytes read since the first connect (all connections).
    public var bytesReceived: UInt64 { connection?.bytesReceived ?? 0 }

    /// The descriptor to poll for input (nil while disconnected: poll with a timeout instead).
    public var fileDescriptor: FileDescriptor? { isConnected ? connection?.fileDescriptor : nil }

    /// Connects when disconnected and an attempt is due (`now`, in the caller's clock, decides),
    /// then returns what arrives within `timeout` seconds. While disconnected and no attempt is
    /// due, it waits until one is, for at most `timeout` (0: never waits).
    public func service(now: Double, timeout: Double) -> [Event] {
        var events: [Event] = []
        if !isConnected {
            guard now >= nextAttempt else {
                if timeout > 0 { usleep(UInt32(min(timeout, nextAttempt - now) * 1_000_000)) }
                return events
            }
            nextAttempt = now + retryInterval
            do throws(RingsideError) {
                if let connection {
                    try connection.connect(timeout: 0)
                } else {
                    connection = try TelemetryConnection(path: path, timeout: 0, tap: tap)
                }
            } catch {
                return [.unreachable(error)]
            }
            events.append(.connected)
        }
        guard let connection else { return events }
        return events + connection.receive(timeout: timeout).map { .incoming($0) }
    }

    /// Sends a command; returns its frame seq (the reply quotes it), nil when not connected.
    public func send(_ command: WireCommand) throws(RingsideError) -> UInt32? {
        guard let connection, connection.isConnected else { return nil }
        return try connection.send(command)
    }

    public func close() {
        connection?.close()
    }
}
