import Foundation
@testable import RingsideKit
import Wire
import XCTest

/// The Linux reference guest (../shared/bench/linux-peer.sh): Debian's kernel, its virtio_net,
/// a static UDP echo as /init; guest RAM in a shared memory file; two QMP sockets (QEMU serves
/// one client per socket: one for the test's GuestSession, one for the CLI and for resets).
final class LinuxGuest {
    static var script: String {
        ProcessInfo.processInfo.environment["RINGSIDE_LINUX_PEER"] ?? (repositoryRoot + "/../shared/bench/linux-peer.sh")
    }
    static var buildDirectory: String { ProcessInfo.processInfo.environment["LINUX_PEER_DIR"] ?? "/tmp/linux-peer" }

    /// Builds the guest once when it is missing (root on a clean machine: the script apt-gets
    /// what it needs and fetches Debian's kernel).
    static func ensureBuilt() throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: buildDirectory + "/vmlinuz") && fm.fileExists(atPath: buildDirectory + "/initrd.img") { return }
        guard fm.isExecutableFile(atPath: script) else { throw RingsideError("linux-peer.sh not found at \(script) (set RINGSIDE_LINUX_PEER)") }
        let r = try runCommand([script, "build"], timeout: 1800)
        guard r.status == .exited(0) else { throw RingsideError("linux-peer.sh build failed: \(r.output.suffix(2000))") }
    }

    let directory: String
    let memory: String
    let qmp: String
    let qmp2: String
    let udpPort: UInt16
    /// The host port forwarded to the guest's HTTP/1.0 service on 80.
    let httpPort: UInt16
    let child: ChildProcess
    static let memoryMiB = 128

    init(extraArguments: [String] = []) throws {
        try LinuxGuest.ensureBuilt()
        var template = Array((NSTemporaryDirectory() + "rs-guest-XXXXXX").utf8CString)
        guard mkdtemp(&template) != nil else { throw RingsideError("mkdtemp failed") }
        directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        memory = "/dev/shm/" + URL(fileURLWithPath: directory).lastPathComponent + ".ram"
        qmp = directory + "/qmp.sock"
        qmp2 = directory + "/qmp2.sock"
        udpPort = try freePort(udp: true)
        let http = try freePort(udp: false)
        httpPort = http
        let argv = [LinuxGuest.script, "run", "--udp-port", String(udpPort), "--http-port", String(http),
                    "--mem", String(LinuxGuest.memoryMiB), "--serial", directory + "/serial.log", "--"]
            + QEMUGuestArguments.memory(path: memory, sizeMiB: LinuxGuest.memoryMiB)
            + ["-qmp", "unix:\(qmp),server=on,wait=off", "-qmp", "unix:\(qmp2),server=on,wait=off"] + extraArguments
        child = try ChildProcess(argv: argv, outputFile: directory + "/qemu.log")
    }

    /// A guest whose netdev QEMU also writes to `wirePath` as a classic pcap (`filter-dump`): the
    /// oracle for what passed through the rings.
    convenience init(filterDumpTo wirePath: String) throws {
        try self.init(extraArguments: ["-object", "filter-dump,id=rsdump,netdev=n0,file=\(wirePath)"])
    }

    /// Waits for the guest's UDP echo (it is up, virtio-net configured).
    func waitForEcho(timeout: Double = 90) throws {
        let udp = try UDPSocket()
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            try udp.send(Array("ping".utf8), toPort: udpPort)
            if udp.receive(timeout: 0.5) == Array("ping".utf8) { udp.drain(); return }
        }
        throw RingsideError("the Linux guest did not echo within \(timeout) s: \(readTextFile(directory + "/serial.log").suffix(1500))")
    }

    /// `count` echoes, one outstanding.
    func echo(count: Int) throws -> Int {
        let udp = try UDPSocket()
        var ok = 0
        for i in 0..<count {
            let payload = Array("ringside any-guest \(i)".utf8)
            try udp.send(payload, toPort: udpPort)
            if udp.receive(timeout: 2) == payload { ok += 1 }
        }
        return ok
    }

    func stop() {
        if let q = try? QMPClient(path: qmp2, timeout: 1) { q.quit() }
        if child.wait(timeout: 5) == nil {
            child.signal(SIGKILL)
            child.wait(timeout: 5)
        }
        unlink(memory)
        try? FileManager.default.removeItem(atPath: directory)
    }
}

final class GuestLinuxTests: XCTestCase {
    var guest: LinuxGuest?

    override func tearDown() {
        guest?.stop()
        guest = nil
        super.tearDown()
    }

    /// A sample taken when two in a row agree (the guest is at rest).
    func restingSample(_ s: GuestSession, timeout: Double = 10) -> GuestSample {
        var last = s.sample(forceQMP: true)
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            usleep(200_000)
            let now = s.sample(forceQMP: true)
            let a = last.queues.map { [$0.ring?.availIdx, $0.ring?.usedIdx, $0.deviceView?.usedIdx] }
            let b = now.queues.map { [$0.ring?.availIdx, $0.ring?.usedIdx, $0.deviceView?.usedIdx] }
            if a == b { return now }
            last = now
        }
        return last
    }

    /// u16 at guest-physical `address`, read by the test itself from the memory file (128 MiB on
    /// `pc`: guest-physical == file offset).
    func fileU16(_ path: String, _ address: UInt64) -> UInt16? {
        guard let h = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? h.close() }
        try? h.seek(toOffset: address)
        guard let d = try? h.read(upToCount: 2), d.count == 2 else { return nil }
        return UInt16(d[d.startIndex]) | UInt16(d[d.startIndex + 1]) << 8
    }

    func testLinuxGuestRingsFromMemoryMatchTheDevice() throws {
        let g = try LinuxGuest()
        guest = g
        try g.waitForEcho()
        XCTAssertEqual(try g.echo(count: 200), 200, "UDP traffic through the guest")

        let session = try GuestSession(qmpPath: g.qmp, memoryPath: g.memory)
        defer { session.close() }
        XCTAssertTrue(session.layoutSource.hasPrefix("info mtree"), session.layoutSource)
        let s = restingSample(session)
        XCTAssertEqual(s.source, .memory)
        XCTAssertEqual(s.notes, [])
        // Every queue of its virtio-net device, by the device's id and the spec's names.
        let net = try XCTUnwrap(s.devices.first { $0.type == "virtio-net" }, "\(s.devices.map(\.type))")
        XCTAssertEqual(net.name, "net0")
        XCTAssertEqual(net.queueNames, ["rx", "tx", "ctrl"])
        XCTAssertEqual(s.queues.filter { $0.device == net.name }.map(\.name), ["net0.rx", "net0.tx", "net0.ctrl"])
        // The feature panel's source: what Linux accepted.
        for f in ["VIRTIO_F_VERSION_1", "VIRTIO_RING_F_EVENT_IDX", "VIRTIO_RING_F_INDIRECT_DESC", "VIRTIO_NET_F_MRG_RXBUF", "VIRTIO_NET_F_CTRL_VQ"] {
            XCTAssertTrue(net.guestFeatures.contains(f), "\(f) accepted: \(net.guestFeatures.names)")
        }
        XCTAssertTrue(net.statuses.contains("VIRTIO_CONFIG_S_DRIVER_OK"), "\(net.statuses)")
        XCTAssertEqual(net.netHeaderBytes, 12)
        for q in s.queues where q.device == net.name {
            let ring = try XCTUnwrap(q.ring, q.name)
            let view = try XCTUnwrap(q.deviceView, q.name)
            XCTAssertNil(ring.unreadable, q.name)
            XCTAssertFalse(ring.moving, q.name)
            XCTAssertEqual(ring.usedIdx, view.usedIdx, "\(q.name): used.idx in memory == QMP used-idx")
            XCTAssertEqual(ring.availIdx, fileU16(g.memory, view.addresses.avail + 2), "\(q.name): avail.idx == the file's")
            XCTAssertEqual(ring.usedIdx, fileU16(g.memory, view.addresses.used + 2), "\(q.name): used.idx == the file's")
            XCTAssertNotNil(ring.usedEvent, "\(q.name): EVENT_IDX → used_event")
            XCTAssertNotNil(ring.availEvent, "\(q.name): EVENT_IDX → avail_event")
            XCTAssertEqual(ring.availEvent, fileU16(g.memory, view.addresses.used + 4 + 8 * UInt64(view.addresses.size)), q.name)
            XCTAssertEqual(ring.problems, [], q.name)
            XCTAssertEqual(ring.states.count, view.addresses.size)
        }
        let rx = try XCTUnwrap(s.queue(named: "net0.rx")?.ring)
        XCTAssertGreaterThanOrEqual(Int(rx.usedIdx), 200, "every echo request went up the RX used ring")
        XCTAssertGreaterThan(rx.states.filter { $0 == .avail }.count, 0, "Linux keeps RX buffers posted")
        XCTAssertEqual(rx.outstanding, rx.states.filter { $0 == .avail }.count, "one descriptor per RX buffer (MRG_RXBUF)")
        session.close()

        // The CLI on the other QMP socket: watch --json and ctl stats.
        let bin = try XCTUnwrap(ringsideBinary(), "build ringside first")
        let w = try runCommand([bin, "watch", "--qmp", g.qmp2, "--memory", g.memory, "--json", "--count", "3", "--rate", "20"], timeout: 30)
        XCTAssertEqual(w.status, .exited(0), w.output)
        let lines = w.output.split(separator: "\n").filter { $0.hasPrefix("{") }
        XCTAssertEqual(lines.count, 3, w.output)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        XCTAssertEqual(obj["source"] as? String, "memory")
        let devs = try XCTUnwrap(obj["devices"] as? [[String: Any]])
        let queues = (devs.first?["queues"] as? [[String: Any]]) ?? []
        XCTAssertEqual(queues.compactMap { $0["name"] as? String }, ["net0.rx", "net0.tx", "net0.ctrl"])
        XCTAssertNotNil((queues.first?["avail"] as? [String: Any])?["used_event"])
        XCTAssertNotNil((queues.first?["used"] as? [String: Any])?["avail_event"])
        let stats = try runCommand([bin, "ctl", "--qmp", g.qmp2, "--memory", g.memory, "stats"], timeout: 30)
        XCTAssertEqual(stats.status, .exited(0), stats.output)
        XCTAssertTrue(stats.output.contains("\"VIRTIO_RING_F_EVENT_IDX\""), String(stats.output.prefix(300)))
        // Without a memory file: QMP only, and it says so.
        let qmpOnly = try runCommand([bin, "ctl", "--qmp", g.qmp2, "stats"], timeout: 30)
        XCTAssertEqual(qmpOnly.status, .exited(0), qmpOnly.output)
        XCTAssertTrue(qmpOnly.output.contains("\"source\":\"qmp\""), String(qmpOnly.output.prefix(300)))
        XCTAssertTrue(qmpOnly.output.contains("QMP only"), String(qmpOnly.output.prefix(500)))
        // The newest TX element's frame: an echo reply, decoded.
        let dump = try runCommand([bin, "ctl", "--qmp", g.qmp2, "--memory", g.memory, "dump", "net0.tx", "--last"], timeout: 30)
        XCTAssertEqual(dump.status, .exited(0), dump.output)
        XCTAssertTrue(dump.output.contains("Ethernet II"), dump.output)
    }

    /// Linux with packed=on on its virtio-net-pci (VIRTIO_F_RING_PACKED negotiated, virtio 1.2
    /// §2.8) under UDP echo traffic past one lap of its RX ring: every queue is read as a packed
    /// ring, at rest the device position in memory is QMP's used-idx (an offset: QEMU 7.2 keeps
    /// the wrap counter apart), the comparison with the device agrees, and watch --json shows
    /// the packed form.
    func testLinuxGuestPackedRingsFromMemory() throws {
        let g = try LinuxGuest(extraArguments: ["-global", "virtio-net-pci.packed=on"])
        guest = g
        try g.waitForEcho()
        XCTAssertEqual(try g.echo(count: 300), 300, "UDP traffic through the guest, past a lap of each ring")

        let session = try GuestSession(qmpPath: g.qmp, memoryPath: g.memory)
        defer { session.close() }
        let s = restingSample(session)
        let net = try XCTUnwrap(s.devices.first { $0.type == "virtio-net" })
        XCTAssertTrue(net.guestFeatures.contains("VIRTIO_F_RING_PACKED"), "\(net.guestFeatures.names)")
        XCTAssertTrue(net.packedRings)
        let hello = GuestTelemetry.hello(s)
        XCTAssertEqual(hello.queues.filter { $0.name.hasPrefix("net0.") }.map(\.format), [.packed, .packed, .packed])
        let truth = try XCTUnwrap(GuestTelemetry.deviceTruth(s))
        for (i, q) in s.queues.enumerated() where q.device == net.name {
            let ring = try XCTUnwrap(q.ring, q.name)
            let view = try XCTUnwrap(q.deviceView, q.name)
            let p = try XCTUnwrap(ring.packed, "\(q.name) read as a packed ring")
            XCTAssertNil(ring.unreadable, q.name)
            XCTAssertFalse(ring.moving, q.name)
            XCTAssertEqual(ring.problems, [], q.name)
            XCTAssertEqual(Int(p.device.offset), Int(view.usedIdx), "\(q.name): device position in memory == QMP used-idx")
            XCTAssertEqual(p.slots.count, view.addresses.size)
            // The driver's position: the slots the device owns end there; QEMU fetched them all at rest.
            XCTAssertEqual((Int(view.lastAvailIdx) + (ring.outstanding ?? -1) - view.inuse) % view.addresses.size,
                           Int(p.driver.offset) % view.addresses.size, "\(q.name): driver position")
            XCTAssertEqual(ring.states.filter { $0 == .avail }.count, ring.outstanding, "\(q.name): one slot per buffer")
            let dq = try XCTUnwrap(truth.sample.queue(i))
            let driver = DriverQueueView(availIdx: ring.availIdx, usedIdx: ring.usedIdx, size: ring.addresses.size,
                                         availDescriptors: nil, time: s.time, format: .packed)
            XCTAssertEqual(compareQueue(driver: driver, device: dq), .agree, q.name)
        }
        let rx = try XCTUnwrap(s.queue(named: "net0.rx")?.ring?.packed)
        XCTAssertFalse(rx.device.wrap, "300+ used RX slots: the device's wrap counter flipped once (it starts at 1)")
        XCTAssertGreaterThan(s.queue(named: "net0.rx")?.ring?.outstanding ?? 0, 0, "Linux keeps RX buffers posted")
        // The lost-notification detector judges them by §2.8.10: at rest nothing is owed.
        let samples = GuestTelemetry.notificationSamples(s)
        XCTAssertEqual(samples.compactMap { $0?.format }.filter { $0 == .packed }.count, 3)
        var detector = NotificationDetector(threshold: 0)
        _ = detector.observe(samples, time: 0)
        _ = detector.observe(samples, time: 1)
        XCTAssertEqual(detector.activeAlarms, [], "a guest at rest owes no notification")
        session.close()

        let bin = try XCTUnwrap(ringsideBinary(), "build ringside first")
        let w = try runCommand([bin, "watch", "--qmp", g.qmp2, "--memory", g.memory, "--json", "--count", "2", "--rate", "20"], timeout: 30)
        XCTAssertEqual(w.status, .exited(0), w.output)
        let line = try XCTUnwrap(w.output.split(separator: "\n").first { $0.hasPrefix("{") })
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let queues = try XCTUnwrap((obj["devices"] as? [[String: Any]])?.first?["queues"] as? [[String: Any]])
        XCTAssertEqual(queues.compactMap { $0["format"] as? String }, ["packed", "packed", "packed"])
        for q in queues {
            let packed = try XCTUnwrap(q["packed"] as? [String: Any], "\(q["name"] ?? "?")")
            XCTAssertNotNil(packed["driver_event"]); XCTAssertNotNil(packed["device_event"])
            XCTAssertNotNil((packed["device"] as? [String: Any])?["wrap"])
            XCTAssertNil(q["avail"], "no split words for a packed ring")
            XCTAssertNil(q["used"])
        }
        let plain = try runCommand([bin, "watch", "--qmp", g.qmp2, "--memory", g.memory, "--count", "1"], timeout: 30)
        XCTAssertTrue(plain.output.contains("net0.rx        packed driver="), plain.output)
        XCTAssertFalse(plain.output.contains("avail.idx="), plain.output)
        // capture --memory reads split rings only: it refuses, saying why, rather than misread.
        let out = NSTemporaryDirectory() + "rs-packed-capture-\(getpid()).pcapng"
        defer { unlink(out) }
        let capture = try runCommand([bin, "capture", "--qmp", g.qmp2, "--memory", g.memory, "-o", out, "--count", "1"], timeout: 30)
        XCTAssertNotEqual(capture.status, .exited(0), capture.output)
        XCTAssertTrue(capture.output.contains("net0.rx, net0.tx: packed rings (VIRTIO_F_RING_PACKED); capture --memory reads split rings only: nothing to capture"),
                      capture.output)
    }

    /// Linux's RX on a packed ring through indirect tables (virtio 1.2 §2.8.7): without
    /// MRG_RXBUF (`mrg_rxbuf=off`) and with an MTU above 1500 offered (`host_mtu=9000`;
    /// user networking offers no guest TSO), virtio_net posts "big" receive buffers, each a
    /// list of pieces (the 12-byte header, then pages), so with INDIRECT_DESC each is one slot
    /// naming a table. (Its TX uses no tables on this guest: without CSUM, which user
    /// networking cannot offer, there is no scatter-gather, and the header is pushed in front
    /// of the linear frame: one piece per frame, seen in samples of a TX ring held by
    /// `tx=timer`.) The view walks every table; the oracle for the walk is a
    /// received datagram: `ctl dump --last --raw`, read piece by piece through the recorded
    /// table and bounded by the used length, equals the frame in filter-dump's pcap.
    func testLinuxGuestPackedRXIndirectTablesAreWalkedAndDumped() throws {
        let tag = "rs-pind-\(getpid())"
        let wirePath = NSTemporaryDirectory() + tag + ".pcap"
        defer { unlink(wirePath) }
        let g = try LinuxGuest(extraArguments: ["-global", "virtio-net-pci.packed=on", "-global", "virtio-net-pci.mrg_rxbuf=off",
                                                "-global", "virtio-net-pci.host_mtu=9000",
                                                "-object", "filter-dump,id=rsdump,netdev=n0,file=\(wirePath)"])
        guest = g
        try g.waitForEcho()
        XCTAssertEqual(try g.echo(count: 20), 20)
        let session = try GuestSession(qmpPath: g.qmp, memoryPath: g.memory, queueFilter: ["net0.rx"])
        defer { session.close() }
        let s = restingSample(session)
        let features = try XCTUnwrap(s.devices.first { $0.name == "net0" }?.guestFeatures)
        XCTAssertFalse(features.contains("VIRTIO_NET_F_MRG_RXBUF"))
        XCTAssertFalse(features.contains("VIRTIO_NET_F_CSUM"), "user networking: no checksum offload, so no TX scatter-gather")
        XCTAssertTrue(features.contains("VIRTIO_RING_F_INDIRECT_DESC"))
        let rx = try XCTUnwrap(s.queue(named: "net0.rx")?.ring)
        XCTAssertNotNil(rx.packed)
        XCTAssertEqual(rx.problems, [])
        XCTAssertGreaterThan(rx.outstanding ?? 0, 0)
        XCTAssertEqual(rx.chains.count, rx.outstanding, "one chain per posted buffer")
        print("net0.rx: \(rx.chains.count) buffers, table entries \(Set(rx.chains.map(\.indirect.count))), piece lengths \(rx.chains.first?.segments.map(\.len) ?? [])")
        for c in rx.chains {
            XCTAssertEqual(c.ids.count, 1, "one slot per buffer")
            XCTAssertNotEqual(c.indirectAddress, 0, "buffer \(c.head) through an indirect table")
            XCTAssertGreaterThan(c.indirect.count, 2)
            XCTAssertEqual(c.segments.first?.len, 12, "the virtio-net header first")
            XCTAssertTrue(c.segments.allSatisfy { $0.flags == 2 }, "device-writable pieces")
            XCTAssertNil(c.problem)
        }
        session.close()
        let bin = try XCTUnwrap(ringsideBinary(), "build ringside first")
        try assertDumpEqualsTheWire(bin: bin, g, marker: Array("ringside packed indirect rx \(tag)".utf8), tag: tag, wirePath: wirePath)
    }

    /// `ctl dump net0.rx --last --wait 20 --raw` started before `marker` is sent to the guest's
    /// UDP echo: ctl samples the ring (its record sees the RX buffers Linux keeps posted) until
    /// the newest used slot names a buffer it saw offered. What it wrote must be a frame as
    /// filter-dump wrote it to `wirePath`, and, in one of three tries, the marked datagram (its
    /// first frame holding the marker: the echo comes after it). Another frame can be the newest
    /// when ctl looks: Linux probes the gateway's stale ARP entry when it answers, and the ARP
    /// reply lands after the datagram (seen once in a loaded run).
    func assertDumpEqualsTheWire(bin: String, _ g: LinuxGuest, marker base: [UInt8], tag: String, wirePath: String) throws {
        let out = NSTemporaryDirectory() + tag + ".raw", err = NSTemporaryDirectory() + tag + ".err"
        defer { unlink(out); unlink(err) }
        var others: [String] = []
        for attempt in 1...3 {
            let marker = base + Array(" try \(attempt)".utf8)
            let ctl = try ChildProcess(argv: ["/bin/sh", "-c", "exec \"$0\" ctl --qmp \"$1\" --memory \"$2\" dump net0.rx --last --wait 20 --raw > \"$3\"",
                                              bin, g.qmp2, g.memory, out], outputFile: err)
            sleep(2)
            let udp = try UDPSocket()
            try udp.send(marker, toPort: g.udpPort)
            XCTAssertEqual(udp.receive(timeout: 5), marker, "echoed")
            XCTAssertEqual(ctl.wait(timeout: 25), .exited(0), readTextFile(err))
            let raw = Array(FileManager.default.contents(atPath: out) ?? Data())
            let wire = pcapFrames(Array(FileManager.default.contents(atPath: wirePath) ?? Data()))
            let inbound = try XCTUnwrap(wire.first { f in f.count >= marker.count && (0...(f.count - marker.count)).contains { Array(f[$0..<($0 + marker.count)]) == marker } },
                                        "the marked datagram in filter-dump's pcap (\(wire.count) frames)")
            if raw == inbound { return }
            // Not the datagram: it must still be a frame that went to the guest, byte for byte.
            XCTAssertTrue(wire.contains(raw), "ctl dump --last --raw from a packed ring is a frame on the wire: \(raw.prefix(64))")
            others.append("try \(attempt): \(raw.count) bytes, ethertype \(raw.count >= 14 ? String(format: "%02x%02x", raw[12], raw[13]) : "?")")
        }
        XCTFail("ctl dump --last --raw never gave the marked datagram in three tries (it gave other frames on the wire: \(others))")
    }

    /// `ctl dump --last --raw` of a UDP datagram received on a packed RX ring equals the frame
    /// on the wire (filter-dump's pcap): the used slot names a buffer id, and the address comes
    /// from the slot where ctl saw the driver offer that buffer (`--wait` samples until then).
    func testLinuxGuestPackedDumpOfAReceivedFrameEqualsTheWire() throws {
        let tag = "rs-pdump-\(getpid())"
        let wirePath = NSTemporaryDirectory() + tag + ".pcap"
        defer { unlink(wirePath) }
        let g = try LinuxGuest(extraArguments: ["-global", "virtio-net-pci.packed=on", "-object", "filter-dump,id=rsdump,netdev=n0,file=\(wirePath)"])
        guest = g
        try g.waitForEcho()
        XCTAssertEqual(try g.echo(count: 20), 20)
        let bin = try XCTUnwrap(ringsideBinary(), "build ringside first")
        // Without a record, the newest used slot's buffer is not known: refused, with the reason.
        let refused = try runCommand([bin, "ctl", "--qmp", g.qmp2, "--memory", g.memory, "dump", "net0.rx", "--last"], timeout: 30)
        XCTAssertNotEqual(refused.status, .exited(0), refused.output)
        XCTAssertTrue(refused.output.contains("not seen offered since sample"), refused.output)

        try assertDumpEqualsTheWire(bin: bin, g, marker: Array("ringside packed dump marked datagram \(tag)".utf8), tag: tag, wirePath: wirePath)
    }

    func testLinuxGuestRebootFollowsTheNewRings() throws {
        let g = try LinuxGuest()
        guest = g
        try g.waitForEcho()
        XCTAssertEqual(try g.echo(count: 20), 20)
        let session = try GuestSession(qmpPath: g.qmp, memoryPath: g.memory)
        defer { session.close() }
        let before = restingSample(session)
        let rxBefore = try XCTUnwrap(before.queue(named: "net0.rx")?.ring)
        XCTAssertGreaterThanOrEqual(rxBefore.usedIdx, 20)

        let reset = try QMPClient(path: g.qmp2)
        try reset.execute("system_reset")
        // While the guest reboots, sampling continues: never a crash, whatever the rings hold.
        var sawNotSetUp = false
        let deadline = monotonicSeconds() + 60
        var echoed = false
        while monotonicSeconds() < deadline && !echoed {
            let s = session.sample()
            if let q = s.queue(named: "net0.rx"), q.deviceView?.addresses.isSetUp == false { sawNotSetUp = true }
            let udp = try UDPSocket()
            try udp.send(Array("up?".utf8), toPort: g.udpPort)
            echoed = udp.receive(timeout: 0.3) == Array("up?".utf8)
        }
        XCTAssertTrue(echoed, "the guest came back")
        XCTAssertTrue(sawNotSetUp, "the reset showed as queues not set up")
        XCTAssertEqual(try g.echo(count: 5), 5)
        let after = restingSample(session)
        for q in after.queues where q.device == "net0" {
            let ring = try XCTUnwrap(q.ring, q.name)
            let view = try XCTUnwrap(q.deviceView, q.name)
            XCTAssertEqual(ring.addresses, view.addresses, "\(q.name) reads the new addresses")
            XCTAssertNil(ring.unreadable, q.name)
            XCTAssertEqual(ring.usedIdx, view.usedIdx, "\(q.name): used.idx after the reboot")
            XCTAssertEqual(ring.availIdx, fileU16(g.memory, view.addresses.avail + 2), q.name)
        }
        let rxAfter = try XCTUnwrap(after.queue(named: "net0.rx")?.ring)
        XCTAssertLessThan(rxAfter.usedIdx, rxBefore.usedIdx, "fresh rings count from 0 again")
        XCTAssertGreaterThan(session.rediscoveries, 0)
    }
}
