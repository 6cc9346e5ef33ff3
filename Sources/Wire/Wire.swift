// The telemetry wire format (see docs/protocol.md).
