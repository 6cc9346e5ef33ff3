// The TUI's side of RingsideKit's TelemetryConnection, shaped for a poll loop that must never
// wait on the socket: `service` reads only what is there, and while the socket is gone it
// retries every half second (the guest may not have started yet, or QEMU is restarting).
// The connection itself resynchronises (hello on connect) and asks for full tables when the
// model needs them; this type only schedules connects and turns what arrives into LinkEvents.

import RingsideKit
import Wire

public final class TelemetryPoller {
    public let path: String
    public static let retryInterval = 0.5
    /// Nil until the first connect succeeds.
    private var connection: TelemetryConnection?
    /// Whether the last event reported was `.connected` (the connection may drop in between).
    private var reportedConnected = false
    private var nextAttempt = 0.0
    /// Why the connection went away, when a send noticed it first.
    private var sendFailure: String?

    public init(path: String) { self.path = path }

    /// The descriptor to poll for input (nil while disconnected: poll with a timeout instead).
    public var pollDescriptor: Int32? {
        guard let connection, connection.isConnected else { return nil }
        return connection.fileDescriptor
    }

    /// Connects when due, reads what is available; returns what happened, in order.
    public func service(now: Double) -> [LinkEvent] {
        var events: [LinkEvent] = []
        if connection?.isConnected != true {
            if reportedConnected {
                events.append(.disconnected(reason: sendFailure ?? "the guest closed the console socket"))
                reportedConnected = false
            }
            guard now >= nextAttempt else { return events }
            nextAttempt = now + Self.retryInterval
            do {
                if let connection {
                    try connection.connect(timeout: 0)
                } else {
                    connection = try TelemetryConnection(path: path, timeout: 0)
                }
            } catch {
                return events
            }
            sendFailure = nil
            reportedConnected = true
            events.append(.connected)
        }
        guard let connection else { return events }
        for item in connection.receive(timeout: 0) {
            switch item {
            case .message(let message, let seq):
                events.append(.message(message, seq: seq))
            case .snapshot(let snapshot, _, let seq):
                events.append(.message(.snapshot(snapshot), seq: seq))
            case .decodeError(let error):
                events.append(.decodeError(error.message))
            case .disconnected:
                events.append(.disconnected(reason: "the guest closed the console socket"))
                reportedConnected = false
            }
        }
        return events
    }

    /// Sends a command; returns its frame seq (the reply quotes it), nil when not connected.
    public func send(_ command: WireCommand) -> UInt32? {
        guard let connection, connection.isConnected else { return nil }
        do {
            return try connection.send(command)
        } catch {
            sendFailure = error.description
            return nil
        }
    }

    public func close() {
        connection?.close()
    }
}
