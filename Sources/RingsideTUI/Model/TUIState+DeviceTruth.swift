// The device's side of the queues in the TUI state: the device-truth poller's samples, the
// memory view's three-way comparison and the consistent snapshot (`z`), each compared with the
// driver's snapshots and the changes logged.

import RingsideKit
import Wire

extension TUIState {
    /// The device's numbers for the driver queue `name`, and what comparing them with the
    /// driver's says (from `view`).
    public func deviceView(forQueueNamed name: String) -> (view: DeviceQueueView, verdict: TruthVerdict)? {
        guard case .sample(let sample)? = view.device,
              let number = view.deviceQueueNames.first(where: { $0.value == name })?.key,
              let dq = sample.queue(number) else { return nil }
        let tracker = view.deviceTrackers[number] ?? DisagreementTracker()
        return (dq, tracker.verdict)
    }

    /// Records the driver's side of each net queue from the snapshot just applied (only while
    /// the device view is on).
    mutating func noteDriverViews(uptimeNs: UInt64) {
        for name in live.threeWay.keys {
            guard let driver = live.driverView(ofQueueNamed: name, time: now, uptimeNs: uptimeNs) else { continue }
            live.threeWay[name]?.noteDriver(driver)
        }
        guard live.device != nil else { return }
        for (number, name) in live.deviceQueueNames {
            guard let driver = live.driverView(ofQueueNamed: name, time: now, uptimeNs: uptimeNs) else { continue }
            live.deviceTrackers[number, default: DisagreementTracker()].noteDriver(driver)
        }
    }

    /// A sample of the memory view (our kernel's rings read from shared guest RAM, and the
    /// device's view from that view's QMP): fed to each queue's three-way comparison. `names`
    /// maps the sample's queue names to the telemetry's.
    public mutating func applyMemorySample(_ s: GuestSample, names: [String: String]) {
        live.memoryViewError = nil
        for q in s.queues {
            guard let name = names[q.name] else { continue }
            var t = live.threeWay[name] ?? ThreeWayTracker()
            let before = t.pairs.map { $0.verdict }
            if let r = q.ring, r.unreadable == nil, !r.moving {
                let m = DeviceQueueView.memory(queue: 0, availIdx: r.availIdx, usedIdx: r.usedIdx, size: r.addresses.size, time: s.time)
                live.memoryViews[name] = m
                t.noteMemory(m, format: r.packed != nil ? .packed : .split)
            }
            if let v = q.deviceView, v.time != live.memoryDeviceViews[name]?.time {
                let d = DeviceQueueView(queue: 0, lastAvailIdx: v.lastAvailIdx, usedIdx: v.usedIdx, inuse: v.inuse, vringNum: v.addresses.size,
                                        shadowAvailIdx: v.shadowAvailIdx, time: v.time, requestTime: v.requestTime)
                live.memoryDeviceViews[name] = d
                t.noteDevice(d)
            }
            for (pair, after) in zip(t.pairs, before) where pair.verdict != after {
                if case .disagree(let why) = pair.verdict {
                    addLog(.error, "\(name) \(pair.name) disagree: " + why.joined(separator: "; "))
                } else if case .disagree = after, pair.verdict == .agree {
                    addLog(.info, "\(name) \(pair.name) agree again")
                }
            }
            if live.threeWay[name] == nil { addLog(.info, "\(name): memory view on (driver ↔ memory ↔ device)") }
            live.threeWay[name] = t
        }
    }

    /// A consistent snapshot arrived (`z`): applied as the newest sample, then shown frozen, with
    /// each queue compared with the device at one instant (any difference is a disagreement).
    public mutating func applyConsistent(_ c: ConsistentSnapshot) {
        if let error = c.error {
            addLog(.error, "z: no consistent snapshot: \(error)")
            return
        }
        for e in c.events { apply(e) }
        var v = live
        if let d = c.device {
            v.deviceQueueNames = c.deviceNames
            v.device = .sample(d)
            v.deviceTrackers = [:]
            for dq in d.queues {
                guard let name = c.deviceNames[dq.queue],
                      let driver = v.driverView(ofQueueNamed: name, time: d.time, uptimeNs: v.model.uptimeNs) else { continue }
                var t = DisagreementTracker()
                t.noteInstant(driver: driver, device: dq)
                v.deviceTrackers[dq.queue] = t
            }
        }
        frozen = v
        let ms = String(format: "%.1f", c.stoppedSeconds * 1000)
        frozenNote = c.wasRunning ? "guest stopped for \(ms) ms" : "guest was paused already"
        let disagreeing = v.deviceTrackers.values.filter(\.flagged).count
        addLog(.info, "consistent snapshot (\(frozenNote!)): \(v.deviceTrackers.count) queue\(v.deviceTrackers.count == 1 ? "" : "s") compared, "
               + (disagreeing == 0 ? "all agree with the device" : "\(disagreeing) disagree") + " (f: live again)")
    }

    /// Applies the device-truth poller's latest result: compares each new sample with the
    /// driver's snapshots (DisagreementTracker: only snapshots close in time count).
    public mutating func applyDevice(_ state: DeviceTruthState) {
        let before = live.device
        guard state != before else { return }
        live.device = state
        switch state {
        case .starting:
            break
        case .unavailable(let reason):
            if case .unavailable? = before {} else { addLog(.error, "device view unavailable: \(reason)") }
            live.deviceTrackers = [:]
        case .sample(let sample):
            if case .sample? = before {} else { addLog(.info, "device view (QMP) connected") }
            for dq in sample.queues {
                guard let name = live.deviceQueueNames[dq.queue] else { continue }
                var tracker = live.deviceTrackers[dq.queue] ?? DisagreementTracker()
                let was = tracker.flagged
                tracker.noteDevice(dq)
                live.deviceTrackers[dq.queue] = tracker
                if tracker.flagged && !was {
                    addLog(.error, "\(name) ≠ device: " + tracker.reasons.joined(separator: "; "))
                } else if was && tracker.verdict == .agree {
                    addLog(.info, "\(name) agrees with the device again")
                } else if was && !tracker.flagged {
                    addLog(.info, "\(name) no longer contradicts the device (traffic: not comparable at one instant)")
                }
            }
        }
    }
}
