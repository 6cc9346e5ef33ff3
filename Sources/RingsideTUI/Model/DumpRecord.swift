// The buffers `d` fetched: what each was, whose it was, and which of them `w` writes to pcap.

import RingsideKit
import Wire

/// A buffer fetched with `dump`, and when.
public struct DumpRecord: Equatable, Sendable {
    public var dump: WireDump
    public var queueName: String
    /// How it was asked for: "next", "last", "desc 17".
    public var selector: String
    /// Host wall-clock seconds (for pcap timestamps).
    public var wallTime: Double
    /// Host wall-clock seconds when the frame arrived in the guest (the dump's stamp through
    /// the hello's clock mapping); nil when the kernel did not know (a buffer not yet filled).
    public var arrivalWallTime: Double? = nil
    /// Whose buffer it was when dumped: a device-owned receive buffer holds stale bytes.
    public var ownership: DumpOwnership = .driver
    /// The queue's avail.idx and used.idx in the latest snapshot when the dump arrived (the dump
    /// reply carries no indices of its own), for the pcapng comment.
    public var availIdx: UInt16? = nil
    public var usedIdx: UInt16? = nil
}

/// A frame `w` writes: which queue's (the pcapng interface), when it arrived, its bytes without
/// the virtio-net header, and its comment (`pcapngFrameComment`, as `ringside capture` writes).
public struct DumpFrame: Equatable, Sendable {
    public var queueName: String
    public var time: Double
    public var bytes: [UInt8]
    public var comment: String
}

/// Who owned a dumped buffer, as far as the host knows (from the selector and the descriptor's
/// state in the latest snapshot; the dump reply itself does not say).
public enum DumpOwnership: Equatable, Sendable {
    /// The driver's: a used element the device returned, a buffer held back from the device, or
    /// the copy `dump --last` keeps. The bytes are a frame.
    case driver
    /// Given to the device to read (a posted TX buffer): the bytes are what the driver wrote.
    case deviceReads
    /// Given to the device to fill (a posted RX buffer): whatever it holds is old memory, and
    /// the device may overwrite it at any time. Not a frame.
    case deviceWrites
    /// The host could not tell (no descriptor table, or the id is not in it).
    case unknown

    /// Whether the bytes are a frame the driver or the device put there on purpose: decoded as
    /// one and written to pcap.
    public var holdsFrame: Bool { self == .driver || self == .deviceReads }

    /// What the dump pane says about it; nil for the driver's own buffers.
    public var label: String? {
        switch self {
        case .driver: return nil
        case .deviceReads: return "device-owned (posted for the device to read): the bytes the driver wrote"
        case .deviceWrites: return "device-owned: contents are stale (a posted receive buffer the device may overwrite at any time; not decoded, not written to pcap)"
        case .unknown: return "ownership unknown (no descriptor table): contents may be stale; not decoded, not written to pcap"
        }
    }
}

extension TUIState {
    /// The dumps `w` writes: network frames (without the virtio-net header) whose bytes are a
    /// frame; and how many dumps were left out because their buffer was the device's to fill or
    /// of unknown owner (stale memory is not a frame).
    public func pcapFrames() -> (frames: [DumpFrame], skipped: Int) {
        let header = virtioNetHeaderBytes
        let network = dumps.filter { isNetworkQueue($0.queueName) && $0.dump.bytes.count > header }
        let frames = network.filter { $0.ownership.holdsFrame }
        // Each record is stamped with when its frame arrived in the guest (the dump's stamp); a
        // frame whose arrival the kernel did not know gets the time it was dumped.
        return (frames.map { r in
            DumpFrame(queueName: r.queueName, time: r.arrivalWallTime ?? r.wallTime, bytes: Array(r.dump.bytes[header...]),
                      comment: pcapngFrameComment(descriptor: r.dump.descriptor, availIdx: r.availIdx, usedIdx: r.usedIdx,
                                                  header: r.dump.bytes[0..<header],
                                                  format: live.model.position(ofQueueNamed: r.queueName).map { live.model.queues[$0].info.format } ?? .split))
        }, network.count - frames.count)
    }

    /// The pcapng file `w` writes: an interface per queue that has frames (in queue order),
    /// nanosecond timestamps, each frame with its comment.
    public func pcapngFile() -> (file: [UInt8], frames: Int, skipped: Int) {
        let (frames, skipped) = pcapFrames()
        var writer = PcapngWriter()
        var interfaces: [String: UInt32] = [:]
        let names = live.model.queues.map(\.info.name).filter { name in frames.contains { $0.queueName == name } }
        for name in names + frames.map(\.queueName) where interfaces[name] == nil {
            interfaces[name] = writer.addInterface(name: name)
        }
        for f in frames {
            writer.addPacket(interface: interfaces[f.queueName] ?? 0, timestampNs: UInt64(max(0, f.time) * 1e9), data: f.bytes,
                             comment: f.comment)
        }
        return (writer.take(), frames.count, skipped)
    }

    /// How many of `pcapFrames()`'s frames carry the dump time, not their arrival.
    public func pcapFramesWithoutArrival() -> Int {
        let header = virtioNetHeaderBytes
        return dumps.filter { isNetworkQueue($0.queueName) && $0.dump.bytes.count > header && $0.ownership.holdsFrame
                              && $0.arrivalWallTime == nil }.count
    }
}
