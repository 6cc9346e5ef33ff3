import Foundation
@testable import RingsideKit
import RingsideTestSupport
import Virtio
import Wire
import XCTest

final class GuestSampleJSONTests: XCTestCase {
    /// The hand-written encoder says what JSONSerialization said: the same objects (parsed back),
    /// keys in the same order, in ASCII (names with quotes, control characters, non-ASCII).
    func testHandWrittenJSONEqualsJSONSerialization() throws {
        var r = SyntheticRing(size: 8)
        for i in 0..<8 { r.desc(i, addr: 0x80000 + UInt64(i) * 0x800, len: 1526, flags: VIRTQ_DESC_F_WRITE) }
        r.desc(2, addr: 0x90000, len: 12, flags: VIRTQ_DESC_F_NEXT, next: 4)
        r.desc(5, addr: 0xA0000, len: 32, flags: VIRTQ_DESC_F_INDIRECT)
        r.desc(0, addr: 0xFFFF_FFFF_FFFF, len: 12, flags: VIRTQ_DESC_F_NEXT, next: 1, table: 0xA0000)
        r.desc(1, addr: 0xB1000, len: 100, flags: 0, table: 0xA0000)
        r.desc(6, addr: 0, len: 0, flags: VIRTQ_DESC_F_NEXT, next: 99)
        for (slot, id) in [2, 5, 6, 7, 1000].enumerated() { r.availSlot(slot, UInt16(truncatingIfNeeded: id)) }
        r.availIdx(5); r.usedSlot(0, id: 3, len: 60); r.usedIdx(1); r.usedEvent(1); r.availEvent(5); r.usedFlags(1)
        let ring = GuestRingReader(eventIdx: true).read(r.memory, r.a)
        XCTAssertFalse(ring.problems.isEmpty)
        var plain = GuestRingReader(eventIdx: false).read(r.memory, r.a)
        plain.moving = true
        var packedRing = SyntheticPackedRing(size: 4)
        for slot in 0..<4 { packedRing.makeAvailable(slot, wrap: true, id: UInt16(slot)) }
        packedRing.indirectTable(at: 0x40000, [(0x50000, 12, 0), (0x51000, 60, 2)])
        packedRing.makeAvailable(3, wrap: true, id: 3, addr: 0x40000, len: 32, flags: 4)  // through an indirect table
        packedRing.markUsed(0, wrap: true, id: 0, len: 42)
        packedRing.event(driver: true, flags: 2, offset: 0, wrap: true)
        let packed = GuestRingReader(eventIdx: true, packed: true).read(packedRing.memory, packedRing.a)
        XCTAssertNotNil(packed.packed?.driverUsed)
        XCTAssertEqual(packed.chain(head: 3)?.indirect.count, 2)
        let unreadable = GuestRingReader(eventIdx: true).read(r.memory, GuestQueueAddresses(size: 256, desc: 0xFFF00, avail: 0xFFFF0, used: 0x200000))
        var view = try XCTUnwrap(GuestQueueDeviceView(qmp: ["vring-num": 8, "vring-desc": r.a.desc, "vring-avail": r.a.avail, "vring-used": r.a.used,
                                                            "last-avail-idx": 5, "shadow-avail-idx": 5, "used-idx": 1, "inuse": 4,
                                                            "signalled-used": 1, "signalled-used-valid": true]))
        view.time = 3
        let element = try XCTUnwrap(GuestQueueElementView(qmp: ["avail": ["idx": 7, "flags": 1], "used": ["idx": 6, "flags": 0], "index": 2]))
        let device = GuestDeviceInfo(path: "/machine/peripheral/n\"é\u{1}/virtio-backend", type: "virtio-net", name: "n\"é\u{1}😀",
                                     hostFeatures: GuestFeatureList(names: ["VIRTIO_F_VERSION_1", "VIRTIO_NET_F_MAC"], unknownBits: 1 << 40),
                                     guestFeatures: GuestFeatureList(names: ["VIRTIO_F_VERSION_1"]), statuses: ["VIRTIO_CONFIG_S_DRIVER_OK"],
                                     queueNames: ["rx", "tx", "ctrl", "q3", "q4", "q5"])
        let other = GuestDeviceInfo(path: "/machine/peripheral/rng/virtio-backend", type: "virtio-rng", name: "rng",
                                    hostFeatures: GuestFeatureList(), guestFeatures: GuestFeatureList(), statuses: [], queueNames: [])
        let queues = [
            GuestQueueSample(name: "n.rx", device: device.name, queue: 0, deviceView: view, element: nil, ring: ring),
            GuestQueueSample(name: "n.tx", device: device.name, queue: 1, deviceView: nil, element: nil, ring: plain),
            GuestQueueSample(name: "n.ctrl", device: device.name, queue: 2, deviceView: view, element: element, ring: nil),
            GuestQueueSample(name: "n.q3\t", device: device.name, queue: 3, deviceView: view, element: nil, ring: unreadable),
            GuestQueueSample(name: "n.q4", device: device.name, queue: 4, deviceView: nil, element: nil, ring: nil),
            GuestQueueSample(name: "n.q5", device: device.name, queue: 5, deviceView: view, element: nil, ring: packed),
        ]
        let sample = GuestSample(time: 4.5, number: 17, source: .memory, devices: [device, other], queues: queues,
                                 qmpAge: 0.1234, notes: ["QMP unavailable: \"x\"\n\u{1b}[2J"])
        let mine = sample.json()
        XCTAssertTrue(mine.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }, "plain printable ASCII")
        let reference = sample.referenceJSON()
        let a = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(mine.utf8)) as? NSDictionary, mine)
        let b = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(reference.utf8)) as? NSDictionary)
        XCTAssertEqual(a, b)
        // Key order too: re-serialise what was parsed, keys sorted, and compare with our text's order.
        func keys(_ text: String) -> [String] {
            var out: [String] = []
            var rest = Substring(text)
            while let r = rest.range(of: "\":") {
                let before = rest[..<r.lowerBound]
                if let q = before.lastIndex(of: "\"") { out.append(String(before[before.index(after: q)...])) }
                rest = rest[r.upperBound...]
            }
            return out
        }
        XCTAssertEqual(keys(mine), keys(reference.replacingOccurrences(of: "\\/", with: "/")))
        // The encoder that keeps queues between lines gives the same line for the same sample.
        var encoder = GuestSampleJSON()
        XCTAssertEqual(String(decoding: encoder.line(sample), as: UTF8.self), mine + "\n")
        XCTAssertEqual(String(decoding: encoder.line(sample), as: UTF8.self), mine + "\n")
    }
}


extension GuestSample {
    /// The sample's JSON as JSONSerialization made it before GuestSampleJSON (the oracle).
    func referenceJSON() -> String {
        var devs: [[String: Any]] = []
        for d in devices {
            var qs: [[String: Any]] = []
            for q in queues where q.device == d.name { qs.append(q.referenceJSONObject()) }
            devs.append(["name": d.name, "type": d.type, "path": d.path, "status": d.statuses,
                         "features": ["offered": d.hostFeatures.names, "accepted": d.guestFeatures.names,
                                      "offered_unknown_bits": d.hostFeatures.unknownBits, "accepted_unknown_bits": d.guestFeatures.unknownBits],
                         "queues": qs])
        }
        let obj: [String: Any] = ["sample": number, "source": source.rawValue, "qmp_age_s": (qmpAge * 1000).rounded() / 1000,
                                  "notes": notes, "devices": devs]
        guard let data = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

extension GuestQueueSample {
    func referenceJSONObject() -> [String: Any] {
        var o: [String: Any] = ["name": name, "queue": queue]
        if let v = deviceView {
            o["size"] = v.addresses.size
            o["addresses"] = ["desc": v.addresses.desc, "avail": v.addresses.avail, "used": v.addresses.used]
            o["device"] = ["last_avail_idx": v.lastAvailIdx, "shadow_avail_idx": v.shadowAvailIdx, "used_idx": v.usedIdx,
                           "inuse": v.inuse, "signalled_used": v.signalledUsed, "signalled_used_valid": v.signalledUsedValid]
        }
        if let e = element {
            o["avail"] = ["flags": e.availFlags, "idx": e.availIdx]
            o["used"] = ["flags": e.usedFlags, "idx": e.usedIdx]
        }
        if let r = ring {
            if let u = r.unreadable { o["unreadable"] = u; return o }
            o["format"] = r.packed == nil ? "split" : "packed"
            if let p = r.packed {
                func position(_ x: GuestPackedPosition) -> [String: Any] { ["offset": x.offset, "wrap": x.wrap ? 1 : 0] }
                func event(_ e: GuestPackedEvent) -> [String: Any] {
                    ["flags": e.flags, "flags_name": ["ENABLE", "DISABLE", "DESC", "reserved"][Int(e.flags & 3)],
                     "offset": e.offWrap & 0x7FFF, "wrap": e.offWrap >> 15]
                }
                var j: [String: Any] = ["driver": position(p.driver), "device": position(p.device),
                                        "driver_event": event(p.driverEvent), "device_event": event(p.deviceEvent),
                                        "slots": p.slots.enumerated().map { (k, s) -> [String: Any] in
                                            ["slot": k, "addr": s.addr, "len": s.len, "id": s.id, "flags": s.flags,
                                             "avail": s.flags >> 7 & 1, "used": s.flags >> 15, "state": p.slotStates[k].name]
                                        }]
                if let u = p.driverUsed { j["driver_used"] = position(u) }
                o["packed"] = j
            } else {
                var avail: [String: Any] = ["flags": r.availFlags, "idx": r.availIdx, "ring": r.availRing]
                if let e = r.usedEvent { avail["used_event"] = e }
                var used: [String: Any] = ["flags": r.usedFlags, "idx": r.usedIdx, "ring": r.usedRing.map { [$0.id, $0.len] }]
                if let e = r.availEvent { used["avail_event"] = e }
                o["avail"] = avail
                o["used"] = used
            }
            o["moving"] = r.moving
            o["problems"] = r.problems
            if let out = r.outstanding { o["outstanding"] = out }
            if let l = r.driverLastUsed { o["driver_last_used"] = l }
            o["descriptors"] = r.descriptors.enumerated().map { (i, d) -> [String: Any] in
                ["id": i, "state": r.states[i].name, "addr": d.addr, "len": d.len, "flags": d.flags, "next": d.next]
            }
            // A packed ring's chains: buffer id and ring slots; its tables have no next.
            let packed = r.packed != nil
            o["chains"] = r.chains.map { c -> [String: Any] in
                var j: [String: Any] = packed ? ["id": c.head, "slots": c.ids] : ["head": c.head, "ids": c.ids]
                if c.indirectAddress != 0 {
                    j["indirect_addr"] = c.indirectAddress
                    j["indirect"] = c.indirect.map { e -> [String: Any] in
                        packed ? ["addr": e.addr, "len": e.len, "flags": e.flags] : ["addr": e.addr, "len": e.len, "flags": e.flags, "next": e.next]
                    }
                }
                if let p = c.problem { j["problem"] = p }
                return j
            }
        }
        return o
    }
}

