// The Ringside telemetry wire format, defined once (docs/protocol.md is the byte-level spec).
//
// This module compiles into the host monitor and, unchanged, into the Embedded Swift kernel
// (all Sources/Wire/*.swift become part of the kernel's single module). Hence: no imports,
// no existentials, typed throws only, and every type carries a `Wire`/`Telemetry` prefix so it
// cannot collide with kernel names such as `MACAddress` or `SplitVirtqueue`.
//
// A frame on the wire is `0x00 COBS(body) 0x00`, where body is
//
//     version u8 | type u8 | seq u32 LE | payload | crc32c u32 LE (over everything before it)
//
// The version byte and the trailing CRC-32C are fixed for all protocol versions, so a host can
// always tell "a frame from a newer kernel" (`.unsupportedVersion`) from "line noise" (`.crcMismatch`).

/// Protocol constants shared by both ends.
public enum WireProtocol: Sendable {
    /// The protocol version this module speaks: the first byte of every frame body.
    /// 2: snapshots carry the kernel's memory (`WireMemory`) after `droppedFrames`.
    /// 3: fault injection (`inject`, `kick`, `poll` commands; each queue's active faults and
    /// notification/injection counters in snapshots; drop reasons badChecksum and injected).
    /// 4: capture mode (`capture` command, `capturedFrame` messages, `captureCounts` events).
    /// 5: packed virtqueues (each queue's ring format in the hello; a packed queue's positions,
    /// event suppression structures and ring slots in the snapshot fields, docs/protocol.md §4).
    public static let version: UInt8 = 5
    /// COBS frame delimiter. Never appears inside an encoded frame.
    public static let delimiter: UInt8 = 0x00
    /// Bytes before the payload: version u8, type u8, seq u32.
    public static let headerBytes = 6
    /// The CRC-32C trailer.
    public static let trailerBytes = 4
    /// The largest frame body (header + payload + CRC, before COBS) either side accepts.
    /// A full snapshot of four 256-entry queues is about 18 KiB (17 bytes per descriptor), so
    /// the limit leaves room for bigger queues; anything larger is a decode error.
    public static let maxFrameBytes = 64 * 1024
    /// COBS adds one byte per 254 bytes (plus one): the largest encoded frame without delimiters.
    public static let maxEncodedFrameBytes = maxFrameBytes + maxFrameBytes / 254 + 1
    /// The most buffer bytes a `dump` reply carries (a 2048-byte packet buffer plus header fits).
    public static let maxDumpBytes = 4096
    /// The most buffer bytes a `capturedFrame` carries (as a dump: a whole packet buffer).
    public static let maxCaptureBytes = maxDumpBytes
    /// Longest string field (length is a u8).
    public static let maxStringBytes = 255
}

/// The `type` byte of a frame. Kernel → host types are below 0x80, host → kernel at or above.
public struct WireMessageType: RawRepresentable, Equatable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let hello = WireMessageType(rawValue: 0x01)
    public static let snapshot = WireMessageType(rawValue: 0x02)
    public static let event = WireMessageType(rawValue: 0x03)
    public static let reply = WireMessageType(rawValue: 0x04)
    /// Since version 4: a copy of a frame that passed through a network queue (capture mode).
    public static let capturedFrame = WireMessageType(rawValue: 0x05)
    public static let command = WireMessageType(rawValue: 0x81)

    /// Which way a frame of this type travels; sequence numbers are counted per direction.
    public var direction: WireDirection {
        rawValue < 0x80 ? .kernelToHost : .hostToKernel
    }
}

/// Each direction numbers its frames independently, starting anywhere, incrementing by one
/// (wrapping) per frame sent, so the receiver sees every lost frame as a gap.
public enum WireDirection: Int, Equatable, Sendable {
    case kernelToHost = 0
    case hostToKernel = 1
}
