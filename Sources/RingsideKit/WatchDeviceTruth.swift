import Foundation
import Wire

/// `ringside watch SOCKET --json --qmp QMP`: QEMU's own view of each network queue beside the
/// driver's, in the snapshot's JSON. Each complete snapshot is a driver sample for the queue's
/// `DisagreementTracker`; each new `DeviceTruthPoller` sample is compared as the TUI does, and
/// every network queue's object gains
///
///     "device":{"last_avail_idx":…,"used_idx":…,"inuse":…,"vring_num":…,"shadow_avail_idx":…,
///               "age_ms":…,"verdict":"agree"|"in_flight"|"unknown"|"disagree","reasons":[…]}
///
/// (`age_ms`: how long before this snapshot reached the host QEMU answered; the numbers are
/// QMP `x-query-virtio-queue-status`'s), or `"device":{"unavailable":"…"}` while QMP is not
/// answering.
public struct WatchDeviceTruth {
    /// Our kernel's virtio-net queue numbers and their telemetry names.
    public static let queueNames: [Int: String] = [0: "net0.rx", 1: "net0.tx"]
    public private(set) var trackers: [Int: DisagreementTracker] = [:]
    private var lastSample = -1

    public init() {}

    /// Notes the snapshot in `model` (arrived at monotonic `now`) and the poller's `device`
    /// state; returns the snapshot's JSON line with the device objects.
    public mutating func line(model: TelemetryModel, device: DeviceTruthState, now: Double) -> String {
        for (number, name) in Self.queueNames {
            guard let p = model.position(ofQueueNamed: name), let status = model.queues[p].status else { continue }
            let q = model.queues[p]
            let driver = DriverQueueView(availIdx: status.availIdx, usedIdx: status.usedIdx, size: Int(q.info.size),
                                         availDescriptors: q.isStale || q.descriptors.isEmpty ? nil : q.count(of: .avail),
                                         time: now, uptime: Double(model.uptimeNs) / 1e9, format: q.info.format)
            trackers[number, default: DisagreementTracker()].noteDriver(driver)
        }
        var sample: DeviceTruthSample?
        switch device {
        case .sample(let s):
            sample = s
            if s.number != lastSample {
                lastSample = s.number
                for dq in s.queues where Self.queueNames[dq.queue] != nil {
                    trackers[dq.queue, default: DisagreementTracker()].noteDevice(dq)
                }
            }
        case .unavailable, .starting:
            trackers = [:]
            lastSample = -1
        }
        let names = Dictionary(uniqueKeysWithValues: Self.queueNames.map { ($0.value, $0.key) })
        let trackers = self.trackers
        return model.snapshotJSON { position in
            guard let number = names[model.queues[position].info.name] else { return nil }
            var w = JSONWriter()
            w.raw("\"device\":{")
            switch device {
            case .starting:
                w.raw("\"unavailable\":"); w.string("no answer from QMP yet")
            case .unavailable(let why):
                w.raw("\"unavailable\":"); w.string(why)
            case .sample:
                guard let dq = sample?.queue(number) else {
                    w.raw("\"unavailable\":"); w.string("QMP gave no status for queue \(number)")
                    break
                }
                w.raw("\"last_avail_idx\":"); w.uint(UInt64(dq.lastAvailIdx))
                w.raw(",\"used_idx\":"); w.uint(UInt64(dq.usedIdx))
                w.raw(",\"inuse\":"); w.int(dq.inuse)
                w.raw(",\"vring_num\":"); w.int(dq.vringNum)
                w.raw(",\"shadow_avail_idx\":"); w.uint(UInt64(dq.shadowAvailIdx))
                w.raw(",\"age_ms\":"); w.int(Int(((now - dq.time) * 1000).rounded()))
                let verdict = trackers[number]?.verdict ?? .unknown("no driver snapshot yet")
                w.raw(",\"verdict\":")
                switch verdict {
                case .agree: w.raw("\"agree\",\"reasons\":[]")
                case .inFlight: w.raw("\"in_flight\",\"reasons\":[]")
                case .unknown(let why): w.raw("\"unknown\",\"reasons\":"); w.strings([why])
                case .disagree(let why): w.raw("\"disagree\",\"reasons\":"); w.strings(why)
                }
            }
            w.raw("}")
            return String(decoding: w.out, as: UTF8.self)
        }
    }
}
