import Foundation
import XCTest
import Wire
@testable import RingsideKit

/// Protocol v2 additions as a user sees them through `ringside ctl`: devices' features and
/// status by spec name, the rings' contents, and pcap records stamped with the arrival time.
final class WireV2CLITests: QEMUTestCase {
    func jsonObject(_ text: Substring) -> [String: Any]? {
        try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    }

    func testStatsShowFeaturesStatusAndRings() throws {
        guard let kernel = requireKernel() else { return }
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found; swift build") }
        let q = try launchReady(try baseConfiguration(kernel: kernel))
        let stats = try runCommand([bin, "ctl", q.run.consoleSocket, "stats"], timeout: 20)
        XCTAssertEqual(stats.status, .exited(0), stats.output)
        guard let obj = stats.output.split(separator: "\n").first.flatMap(jsonObject) else {
            return XCTFail("not JSON: \(stats.output.prefix(300))")
        }
        // The kernel takes EVENT_IDX unless `make test`'s second round turns it off.
        let eventIdx = !QEMUConfiguration.environmentAppend.contains("virtio.event_idx=off")
        let devices = obj["devices"] as? [[String: Any]] ?? []
        XCTAssertEqual(devices.compactMap { $0["name"] as? String }, ["net0", "con0"])
        for d in devices {
            let name = d["name"] as? String ?? "?"
            XCTAssertEqual(d["status"] as? Int, 0x0f, "\(name): status byte")
            XCTAssertEqual(d["status_names"] as? [String], ["ACKNOWLEDGE", "DRIVER", "DRIVER_OK", "FEATURES_OK"], name)
            let offered = Set(d["offered_names"] as? [String] ?? []), accepted = Set(d["accepted_names"] as? [String] ?? [])
            XCTAssertTrue(accepted.isSubset(of: offered), "\(name): accepted \(accepted) ⊆ offered \(offered)")
            XCTAssertTrue(accepted.contains("VIRTIO_F_VERSION_1"), name)
            // QEMU offers EVENT_IDX on both devices; this kernel takes it unless told not to.
            XCTAssertTrue(offered.contains("VIRTIO_F_RING_EVENT_IDX"), name)
            XCTAssertEqual(accepted.contains("VIRTIO_F_RING_EVENT_IDX"), eventIdx, name)
            XCTAssertTrue(offered.contains("VIRTIO_F_INDIRECT_DESC"), name)
        }
        let net = devices.first ?? [:]
        let packed = testRingFormat == .packed
        XCTAssertEqual(Set(net["accepted_names"] as? [String] ?? []),
                       Set(["VIRTIO_F_VERSION_1", "VIRTIO_NET_F_MAC", "VIRTIO_NET_F_STATUS"] + (eventIdx ? ["VIRTIO_F_RING_EVENT_IDX"] : [])
                           + (packed ? ["VIRTIO_F_RING_PACKED"] : [])))
        XCTAssertEqual(net["accepted"] as? UInt64, 1 << 32 | 1 << 5 | 1 << 16 | (eventIdx ? 1 << 29 : 0) | (packed ? 1 << 34 : 0))
        XCTAssertTrue((devices.last?["offered_names"] as? [String] ?? []).contains("VIRTIO_CONSOLE_F_MULTIPORT"))

        let queues = obj["queues"] as? [[String: Any]] ?? []
        guard let rx = queues.first, let ring = rx["ring"] as? [String: Any] else { return XCTFail("no ring for net0.rx") }
        XCTAssertEqual(ring["event_idx"] as? Bool, eventIdx)
        if packed {
            // A packed ring shows its own state, none of the split ring's words (docs/protocol.md §4).
            XCTAssertEqual(rx["format"] as? String, "packed")
            XCTAssertEqual(ring["format"] as? String, "packed")
            XCTAssertNil(ring["used_event"]); XCTAssertNil(ring["avail_flags"])
            let driver = ring["driver_event"] as? [String: Any]
            XCTAssertEqual(driver?["flags_name"] as? String, eventIdx ? "DESC" : "ENABLE", "the kernel wants every RX interrupt")
            if eventIdx {
                // At the driver's next used position: offset and wrap counter of last_used_idx.
                let lastUsed = rx["last_used_idx"] as? Int ?? -1
                XCTAssertEqual(driver?["offset"] as? Int, lastUsed & 0x7FFF)
                XCTAssertEqual(driver?["wrap"] as? Int, lastUsed >> 15)
            }
            let slots = ring["slots"] as? [[String: Any]] ?? []
            XCTAssertEqual(slots.count, 16)
            for e in slots { XCTAssertTrue((0..<256).contains(e["slot"] as? Int ?? -1), "slot \(e)") }
            return
        }
        XCTAssertEqual(rx["format"] as? String, "split")
        if eventIdx {
            // used_event: the driver asks for an interrupt at the next entry it has not taken;
            // avail_event: QEMU's "kick me after this" — both plain numbers, no flags.
            XCTAssertEqual(ring["used_event"] as? Int, rx["last_used_idx"] as? Int, "used_event = last_used_idx")
            XCTAssertTrue(ring["avail_event"] is Int)
            XCTAssertEqual(ring["used_flags_names"] as? [String], [])
        } else {
            XCTAssertTrue(ring["used_event"] is NSNull, "used_event is unknown without EVENT_IDX")
            XCTAssertTrue(ring["avail_event"] is NSNull)
            // QEMU's virtio-net sets VIRTQ_USED_F_NO_NOTIFY on its RX used ring (TOOLCHAIN.md).
            XCTAssertEqual(ring["used_flags_names"] as? [String], ["VIRTQ_USED_F_NO_NOTIFY"])
        }
        // The kernel wants every RX interrupt (no NO_INTERRUPT).
        XCTAssertEqual(ring["avail_flags"] as? Int, 0)
        let avail = (ring["avail"] as? [String: Any])?["entries"] as? [[String: Any]] ?? []
        let used = (ring["used"] as? [String: Any])?["entries"] as? [[String: Any]] ?? []
        XCTAssertEqual(avail.count, 16)
        XCTAssertEqual(used.count, 16)
        let availIdx = rx["avail_idx"] as? Int ?? -1
        XCTAssertEqual(avail.first?["idx"] as? Int, (availIdx - 12) & 0xFFFF, "the window ends 4 slots after avail_idx")
        for e in avail {
            let idx = e["idx"] as? Int ?? -1, slot = e["slot"] as? Int ?? -1, id = e["id"] as? Int ?? -1
            XCTAssertEqual(slot, idx % 256)
            XCTAssertTrue((0..<256).contains(id), "avail entry \(e)")
        }
        let lastUsed = rx["last_used_idx"] as? Int ?? -1
        XCTAssertEqual(used.first?["idx"] as? Int, (lastUsed - 4) & 0xFFFF, "the window starts 4 slots before last_used_idx")
    }

    /// `ctl dump --next --pcap` of a frame that has waited in the used ring: the pcap record's
    /// time is when it arrived in the guest, not when it was dumped (read back with tshark).
    func testPcapRecordCarriesTheArrivalTime() throws {
        guard let kernel = requireKernel() else { return }
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found; swift build") }
        guard let tshark = findExecutable("tshark") else { return XCTFail("tshark is not installed (scripts/ensure-deps.sh)") }
        let c = try baseConfiguration(kernel: kernel)
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("not user networking") }
        let sock = q.run.consoleSocket
        _ = try runEchoExchange(port: udpPort, count: 3, sizes: 16...64, seed: 9, perTryTimeout: 1)
        XCTAssertEqual(try runCommand([bin, "ctl", sock, "pause", "net0.rx"], timeout: 20).status, .exited(0))
        let udp = try UDPSocket()
        let payload = Array("arrival time test".utf8)
        let sentAt = Date().timeIntervalSince1970
        try udp.send(payload, toPort: udpPort)
        // Let it wait in the used ring well beyond the tolerance below.
        sleep(3)
        let pcap = q.run.path + "/next.pcap"
        let dump = try runCommand([bin, "ctl", sock, "dump", "net0.rx", "--next", "--pcap", pcap], timeout: 20)
        let dumpedAt = Date().timeIntervalSince1970
        XCTAssertEqual(dump.status, .exited(0), dump.output)
        XCTAssertTrue(dump.output.contains("arrived "), dump.output)
        let read = try runCommand([tshark, "-r", pcap, "-T", "fields", "-e", "frame.time_epoch", "-e", "udp.dstport", "-e", "udp.length"], timeout: 30)
        XCTAssertEqual(read.status, .exited(0), read.output)
        let fields = read.output.split(separator: "\n").last.map { $0.split(separator: "\t").map(String.init) } ?? []
        XCTAssertEqual(fields.count, 3, read.output)
        let stamp = Double(fields.first ?? "") ?? 0
        XCTAssertEqual(fields.dropFirst().first, "7", "the UDP datagram to the echo port")
        XCTAssertEqual(fields.last, String(8 + payload.count))
        XCTAssertGreaterThan(stamp, sentAt - 0.5, "pcap time \(stamp) vs sent \(sentAt)")
        XCTAssertLessThan(stamp, sentAt + 1.0, "pcap time \(stamp) is the arrival (sent \(sentAt)), not the dump (\(dumpedAt))")
        print("pcap arrival stamp \(stamp): sent \(sentAt), dumped \(dumpedAt)")
        XCTAssertEqual(try runCommand([bin, "ctl", sock, "resume", "net0.rx"], timeout: 20).status, .exited(0))
        XCTAssertEqual(udp.receive(timeout: 3), payload)
    }
}
