// The TUI's side of RingsideKit's ReconnectingTelemetry, shaped for a poll loop that must
// never wait on the socket: `service` reads only what is there, and while the socket is gone
// the link retries every half second (the guest may not have started yet, or QEMU is
// restarting). This type only turns what happens into LinkEvents.

import RingsideKit
import Wire

public final class TelemetryPoller {
    public static let retryInterval = 0.5
    private let link: ReconnectingTelemetry
    /// Whether the last event reported was `.connected` (the connection may drop in between).
    private var reportedConnected = false
    /// Why the connection went away, when a send noticed it first.
    private var sendFailure: String?

    public init(path: String) { link = ReconnectingTelemetry(path: path, retryInterval: Self.retryInterval) }

    public var path: String { link.path }

    /// The descriptor to poll for input (nil while disconnected: poll with a timeout instead).
    public var pollDescriptor: Int32? { link.fileDescriptor?.rawValue }

    /// Connects when due, reads what is available; returns what happened, in order.
    public func service(now: Double) -> [LinkEvent] {
        var events: [LinkEvent] = []
        if !link.isConnected && reportedConnected {
            events.append(.disconnected(reason: sendFailure ?? "the guest closed the console socket"))
            reportedConnected = false
        }
        for event in link.service(now: now, timeout: 0) {
            switch event {
            case .connected:
                sendFailure = nil
                reportedConnected = true
                events.append(.connected)
            case .unreachable:
                break
            case .incoming(.message(let message, let seq)):
                events.append(.message(message, seq: seq))
            case .incoming(.snapshot(let snapshot, _, let seq)):
                events.append(.message(.snapshot(snapshot), seq: seq))
            case .incoming(.decodeError(let error)):
                events.append(.decodeError(error.message))
            case .incoming(.disconnected):
                events.append(.disconnected(reason: "the guest closed the console socket"))
                reportedConnected = false
            }
        }
        return events
    }

    /// Sends a command; returns its frame seq (the reply quotes it), nil when not connected.
    public func send(_ command: WireCommand) -> UInt32? {
        do {
            return try link.send(command)
        } catch {
            sendFailure = error.description
            return nil
        }
    }

    public func close() {
        link.close()
    }
}
