// Finding any guest's virtio devices and queues through QMP (QEMU 7.2): `x-query-virtio` lists the
// devices, `x-query-virtio-status` their features and status, `x-query-virtio-queue-status` each
// queue's ring addresses and the device's own indices. Names follow one rule for every guest:
// DEVICE.QUEUE, where DEVICE is the device's `id=` and QUEUE the spec's name for that queue.

import Foundation

/// Names for devices and queues.
public enum GuestNaming {
    /// The device's `id=` (`/machine/peripheral/ID/virtio-backend`), or, for a device without one,
    /// a name made from its type and QOM slot (`net-anon2` for `/machine/peripheral-anon/device[2]/…`),
    /// stable for the same QEMU command line.
    public static func deviceName(path: String, type: String) -> String {
        let parts = path.split(separator: "/").map(String.init)
        let short = type.hasPrefix("virtio-") ? String(type.dropFirst("virtio-".count)) : type
        if parts.count >= 3, parts[0] == "machine", parts[1] == "peripheral" { return parts[2] }
        if parts.count >= 3, parts[0] == "machine", parts[1] == "peripheral-anon" {
            let digits = parts[2].filter(\.isNumber)
            return "\(short)-anon\(digits)"
        }
        // Anything else (on-board or virtio-mmio devices): type plus the component before the backend.
        let slot = parts.count >= 2 ? parts[parts.count - 2] : path
        let clean = String(slot.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" })
            .split(separator: "-").joined(separator: "-")
        return "\(short)-\(clean)"
    }

    /// Queue names for a device of `type` with `count` queues. `features` are the host's
    /// (offered) feature names, used where they decide which optional queues exist.
    ///   virtio-net: rx, tx (rx0, tx0, rx1, … with several pairs), ctrl last when there is one;
    ///   virtio-serial: rx, tx (one port), else port0.rx, port0.tx, ctrl.rx, ctrl.tx, port1.rx, …;
    ///   virtio-blk: req (reqN with several); virtio-rng: req; virtio-balloon: inflate, deflate,
    ///   stats, free_page, reporting (those the device offers); virtio-scsi: ctrl, event, req…;
    ///   virtio-gpu: ctrl, cursor; virtio-input: event, status; vhost-vsock: rx, tx, event;
    ///   virtio-9p: req; anything else qN.
    public static func queueNames(type: String, count: Int, features: Set<String> = []) -> [String] {
        func q(_ i: Int) -> String { "q\(i)" }
        var names: [String]
        switch type {
        case "virtio-net":
            let ctrl = count % 2 == 1
            let pairs = (count - (ctrl ? 1 : 0)) / 2
            names = []
            for p in 0..<pairs { names += pairs == 1 ? ["rx", "tx"] : ["rx\(p)", "tx\(p)"] }
            if ctrl { names.append("ctrl") }
        case "virtio-serial":
            if count <= 2 { names = ["rx", "tx"] } else {
                names = ["port0.rx", "port0.tx", "ctrl.rx", "ctrl.tx"]
                var p = 1
                while names.count < count { names += ["port\(p).rx", "port\(p).tx"]; p += 1 }
            }
        case "virtio-blk":
            names = count == 1 ? ["req"] : (0..<count).map { "req\($0)" }
        case "virtio-rng", "virtio-9p":
            names = ["req"]
        case "virtio-balloon":
            names = ["inflate", "deflate", "stats"]
            if features.contains("VIRTIO_BALLOON_F_FREE_PAGE_HINT") { names.append("free_page") }
            if features.contains("VIRTIO_BALLOON_F_REPORTING") { names.append("reporting") }
        case "virtio-scsi":
            names = ["ctrl", "event"] + (0..<max(0, count - 2)).map { count == 3 ? "req" : "req\($0)" }
        case "virtio-gpu":
            names = ["ctrl", "cursor"]
        case "virtio-input":
            names = ["event", "status"]
        case "vhost-vsock", "vhost-user-vsock", "virtio-vsock":
            names = ["rx", "tx", "event"]
        default:
            names = []
        }
        // Fill or trim to `count`; anything unexpected gets qN.
        var out: [String] = []
        for i in 0..<max(0, count) { out.append(i < names.count ? names[i] : q(i)) }
        return out
    }
}

/// The device's view of one queue (`x-query-virtio-queue-status`).
public struct GuestQueueDeviceView: Equatable, Sendable {
    public var addresses: GuestQueueAddresses
    public var lastAvailIdx: UInt16
    public var shadowAvailIdx: UInt16
    public var usedIdx: UInt16
    public var signalledUsed: UInt16
    public var signalledUsedValid: Bool
    public var inuse: Int
    /// Monotonic seconds when the query was sent and when QEMU's answer was in (QEMU read
    /// these values in between); 0 when unknown.
    public var requestTime: Double = 0
    public var time: Double = 0

    public init?(qmp r: [String: Any]) {
        func int(_ k: String) -> Int? { (r[k] as? NSNumber)?.intValue }
        func u64(_ k: String) -> UInt64? { (r[k] as? NSNumber)?.uint64Value }
        guard let num = int("vring-num"), let desc = u64("vring-desc"), let avail = u64("vring-avail"), let used = u64("vring-used"),
              let last = int("last-avail-idx"), let usedIdx = int("used-idx"), let inuse = int("inuse") else { return nil }
        addresses = GuestQueueAddresses(size: num, desc: desc, avail: avail, used: used)
        lastAvailIdx = UInt16(truncatingIfNeeded: last)
        shadowAvailIdx = UInt16(truncatingIfNeeded: int("shadow-avail-idx") ?? last)
        self.usedIdx = UInt16(truncatingIfNeeded: usedIdx)
        signalledUsed = UInt16(truncatingIfNeeded: int("signalled-used") ?? 0)
        signalledUsedValid = (r["signalled-used-valid"] as? Bool) ?? false
        self.inuse = inuse
    }
}

/// Live ring indices from `x-query-virtio-queue-element` (QEMU reads them from guest memory):
/// the fallback when there is no memory file.
public struct GuestQueueElementView: Equatable, Sendable {
    public var availIdx: UInt16
    public var availFlags: UInt16
    public var usedIdx: UInt16
    public var usedFlags: UInt16
    /// The head at the queried avail slot and its descriptors (addr, len, flag names).
    public var head: Int
    public var descriptors: [(addr: UInt64, len: UInt32, flags: [String])]

    public static func == (a: Self, b: Self) -> Bool {
        a.availIdx == b.availIdx && a.availFlags == b.availFlags && a.usedIdx == b.usedIdx && a.usedFlags == b.usedFlags
            && a.head == b.head && a.descriptors.map(\.addr) == b.descriptors.map(\.addr)
    }

    public init?(qmp r: [String: Any]) {
        guard let avail = r["avail"] as? [String: Any], let used = r["used"] as? [String: Any],
              let ai = (avail["idx"] as? NSNumber)?.intValue, let ui = (used["idx"] as? NSNumber)?.intValue else { return nil }
        availIdx = UInt16(truncatingIfNeeded: ai)
        availFlags = UInt16(truncatingIfNeeded: (avail["flags"] as? NSNumber)?.intValue ?? 0)
        usedIdx = UInt16(truncatingIfNeeded: ui)
        usedFlags = UInt16(truncatingIfNeeded: (used["flags"] as? NSNumber)?.intValue ?? 0)
        head = (r["index"] as? NSNumber)?.intValue ?? 0
        descriptors = ((r["descs"] as? [[String: Any]]) ?? []).map {
            (addr: ($0["addr"] as? NSNumber)?.uint64Value ?? 0, len: UInt32(truncatingIfNeeded: ($0["len"] as? NSNumber)?.intValue ?? 0),
             flags: ($0["flags"] as? [String]) ?? [])
        }
    }
}

/// A feature list from `x-query-virtio-status` (`dev-features` and `transports` are
/// "NAME: description" strings; bits QEMU cannot name are in `unknown-dev-features`).
public struct GuestFeatureList: Equatable, Sendable {
    public var names: [String]
    public var descriptions: [String]
    public var unknownBits: UInt64

    public init(names: [String] = [], descriptions: [String] = [], unknownBits: UInt64 = 0) {
        self.names = names
        self.descriptions = descriptions
        self.unknownBits = unknownBits
    }

    public init(qmp r: [String: Any]?) {
        let all = ((r?["transports"] as? [String]) ?? []) + ((r?["dev-features"] as? [String]) ?? [])
        descriptions = all
        names = all.map { s in s.range(of: ":").map { String(s[..<$0.lowerBound]) } ?? s }
        unknownBits = (r?["unknown-dev-features"] as? NSNumber)?.uint64Value ?? 0
    }

    public func contains(_ name: String) -> Bool { names.contains(name) }
}

/// One virtio device as QMP describes it.
public struct GuestDeviceInfo: Equatable, Sendable {
    public var path: String
    /// `virtio-net`, `virtio-blk`, …
    public var type: String
    /// The name users type: `net0`.
    public var name: String
    public var hostFeatures: GuestFeatureList
    public var guestFeatures: GuestFeatureList
    public var statuses: [String]
    public var queueNames: [String]

    /// Size of the virtio-net header the driver and device agreed on (virtio 1.2 §5.1.6):
    /// 12 with VERSION_1 or MRG_RXBUF, 20 with HASH_REPORT, else 10.
    public var netHeaderBytes: Int {
        if guestFeatures.contains("VIRTIO_NET_F_HASH_REPORT") { return 20 }
        if guestFeatures.contains("VIRTIO_F_VERSION_1") || guestFeatures.contains("VIRTIO_NET_F_MRG_RXBUF") { return 12 }
        return 10
    }

    /// VIRTIO_F_RING_PACKED accepted: every queue of the device is a packed ring (virtio 1.2 §2.8).
    public var packedRings: Bool { guestFeatures.contains("VIRTIO_F_RING_PACKED") }

    public var ringReader: GuestRingReader {
        GuestRingReader(eventIdx: guestFeatures.contains("VIRTIO_RING_F_EVENT_IDX"),
                        indirect: guestFeatures.contains("VIRTIO_RING_F_INDIRECT_DESC"),
                        packed: packedRings)
    }
}

/// Discovery queries.
public enum GuestDiscovery {
    /// Every virtio device (`x-query-virtio`) with its features and queue names; names made unique.
    public static func devices(_ qmp: QMPClient, timeout: Double = 2) throws(RingsideError) -> [GuestDeviceInfo] {
        guard let list = try qmp.execute("x-query-virtio", timeout: timeout) as? [[String: Any]] else {
            throw RingsideError("unexpected x-query-virtio reply")
        }
        var out: [GuestDeviceInfo] = []
        var used: Set<String> = []
        for d in list {
            guard let path = d["path"] as? String else { continue }
            let type = d["name"] as? String ?? "virtio"
            guard let st = try qmp.execute("x-query-virtio-status", arguments: ["path": path], timeout: timeout) as? [String: Any] else {
                throw RingsideError("unexpected x-query-virtio-status reply for \(path)")
            }
            var name = GuestNaming.deviceName(path: path, type: type)
            if used.contains(name) { var k = 2; while used.contains("\(name)-\(k)") { k += 1 }; name = "\(name)-\(k)" }
            used.insert(name)
            let host = GuestFeatureList(qmp: st["host-features"] as? [String: Any])
            let count = (st["num-vqs"] as? NSNumber)?.intValue ?? 0
            out.append(GuestDeviceInfo(
                path: path, type: type, name: name, hostFeatures: host,
                guestFeatures: GuestFeatureList(qmp: st["guest-features"] as? [String: Any]),
                statuses: (((st["status"] as? [String: Any])?["statuses"] as? [String]) ?? []).map { s in s.range(of: ":").map { String(s[..<$0.lowerBound]) } ?? s },
                queueNames: GuestNaming.queueNames(type: type, count: min(count, 1024), features: Set(host.names))))
        }
        return out
    }

    public static func queueStatus(_ qmp: QMPClient, path: String, queue: Int, timeout: Double = 2) throws(RingsideError) -> GuestQueueDeviceView {
        let sent = monotonicSeconds()
        let r = try qmp.execute("x-query-virtio-queue-status", arguments: ["path": path, "queue": queue], timeout: timeout)
        guard let obj = r as? [String: Any], var v = GuestQueueDeviceView(qmp: obj) else {
            throw RingsideError("unexpected x-query-virtio-queue-status reply for \(path) queue \(queue)")
        }
        v.requestTime = sent
        v.time = monotonicSeconds()
        return v
    }

    /// The MAC address of a virtio-net device (QOM property `mac` of its backend), nil when
    /// QEMU does not say.
    public static func macAddress(_ qmp: QMPClient, path: String) -> String? {
        guard let r = try? qmp.execute("qom-get", arguments: ["path": path, "property": "mac"], timeout: 1),
              let mac = r as? String, mac.split(separator: ":").count == 6 else { return nil }
        return mac
    }

    public static func queueElement(_ qmp: QMPClient, path: String, queue: Int, index: Int? = nil, timeout: Double = 2) throws(RingsideError) -> GuestQueueElementView {
        var args: [String: Any] = ["path": path, "queue": queue]
        if let index { args["index"] = index }
        let r = try qmp.execute("x-query-virtio-queue-element", arguments: args, timeout: timeout)
        guard let obj = r as? [String: Any], let v = GuestQueueElementView(qmp: obj) else {
            throw RingsideError("unexpected x-query-virtio-queue-element reply for \(path) queue \(queue)")
        }
        return v
    }

    /// The guest RAM layout for the memory file at `memoryPath`: finds the memory-backend-file
    /// object whose `mem-path` is that file (`qom-list /objects`) and reads its regions from HMP
    /// `info mtree -f`. Falls back to the `pc` rule for `fileSize` when QMP cannot tell.
    public static func layout(_ qmp: QMPClient, memoryPath: String, fileSize: UInt64) -> (layout: GuestRAMLayout, source: String) {
        let want = URL(fileURLWithPath: memoryPath).resolvingSymlinksInPath().path
        var backend: String?
        if let objects = try? qmp.execute("qom-list", arguments: ["path": "/objects"]) as? [[String: Any]] {
            for o in objects where (o["type"] as? String)?.hasPrefix("child<memory-backend") == true {
                guard let id = o["name"] as? String else { continue }
                if let p = try? qmp.execute("qom-get", arguments: ["path": "/objects/\(id)", "property": "mem-path"]) as? String,
                   URL(fileURLWithPath: p).resolvingSymlinksInPath().path == want {
                    backend = id
                }
            }
        }
        if let backend,
           let text = try? qmp.execute("human-monitor-command", arguments: ["command-line": "info mtree -f"]) as? String,
           let l = GuestRAMLayout.parse(mtree: text, backend: backend) {
            return (l, "info mtree (backend \(backend))")
        }
        return (GuestRAMLayout.pc(ramSize: fileSize), backend == nil ? "pc rule (no backend with mem-path \(memoryPath) found)" : "pc rule")
    }
}
