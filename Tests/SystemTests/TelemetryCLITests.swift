import Foundation
import XCTest
import Wire
@testable import RingsideKit

/// `ringside watch`, `ringside ctl` and the hub of `ringside run`, as a user runs them.
final class TelemetryCLITests: QEMUTestCase {
    func bootForCLI() throws -> (QEMUInstance, UInt16, String)? {
        guard let kernel = requireKernel() else { return nil }
        guard let bin = ringsideBinary() else { XCTFail("ringside executable not found; build it with `swift build`"); return nil }
        let c = try baseConfiguration(kernel: kernel)
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { return nil }
        return (q, udpPort, bin)
    }

    func jsonObject(_ line: Substring) -> [String: Any]? {
        try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
    }

    /// The kernel's memory as a snapshot reports it (protocol v2): a real heap, partly used,
    /// and the network budget the kernel sized from it at boot (below the heap, so it was read
    /// after sizing, not captured as "unlimited" before).
    func assertRealMemory(_ object: [String: Any], _ source: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let memory = object["memory"] as? [String: Any] else { return XCTFail("\(source): no memory object", file: file, line: line) }
        func value(_ key: String) -> UInt64 { (memory[key] as? NSNumber)?.uint64Value ?? 0 }
        let total = value("heap_total"), used = value("heap_used"), free = value("heap_free")
        let reserved = value("net_reserved"), limit = value("net_limit")
        XCTAssertGreaterThan(total, 0, "\(source): heap total \(memory)", file: file, line: line)
        XCTAssertTrue(used > 0 && used < total, "\(source): 0 < heap used < total: \(memory)", file: file, line: line)
        XCTAssertTrue(free > 0 && used + free <= total, "\(source): heap free \(memory)", file: file, line: line)
        XCTAssertTrue(limit > 0 && limit < total, "\(source): net limit sized from the heap: \(memory)", file: file, line: line)
        XCTAssertLessThanOrEqual(reserved, limit, "\(source): net reserved \(memory)", file: file, line: line)
    }

    func testCtlAndWatchOnTheConsoleSocket() throws {
        guard let (q, udpPort, bin) = try bootForCLI() else { return }
        let sock = q.run.consoleSocket

        // stats: exit 0, one JSON object with all four queues.
        let stats = try runCommand([bin, "ctl", sock, "stats"], timeout: 20)
        XCTAssertEqual(stats.status, .exited(0), stats.output)
        let lines = stats.output.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, stats.output)
        guard let obj = lines.first.flatMap(jsonObject) else { return XCTFail("not JSON: \(stats.output.prefix(300))") }
        let queues = obj["queues"] as? [[String: Any]] ?? []
        XCTAssertEqual(queues.compactMap { $0["name"] as? String }, ["net0.rx", "net0.tx", "con0.rx", "con0.tx"])
        XCTAssertEqual((queues.first?["descriptors"] as? [Any])?.count, queues.first?["size"] as? Int)
        for key in ["avail_idx", "used_idx", "last_used_idx", "free", "paused", "counters"] {
            XCTAssertNotNil(queues.first?[key], "missing \(key)")
        }
        XCTAssertNotNil(obj["seq"]); XCTAssertNotNil(obj["uptime_ns"])
        assertRealMemory(obj, "ctl stats")

        // A bad queue name: non-zero, one clear line.
        let bad = try runCommand([bin, "ctl", sock, "pause", "nope"], timeout: 20)
        XCTAssertNotEqual(bad.status, .exited(0))
        XCTAssertEqual(bad.output.split(separator: "\n").count, 1, bad.output)
        XCTAssertTrue(bad.output.hasPrefix("ringside: ") && bad.output.contains("nope"), bad.output)

        // An error reply: non-zero with the kernel's message.
        let step = try runCommand([bin, "ctl", sock, "step", "net0.rx"], timeout: 20)
        XCTAssertNotEqual(step.status, .exited(0))
        XCTAssertTrue(step.output.contains("net0.rx is not paused"), step.output)
        let nothing = try runCommand([bin, "ctl", sock, "dump", "0", "--next"], timeout: 20)
        XCTAssertNotEqual(nothing.status, .exited(0))
        XCTAssertTrue(nothing.output.contains("nothingPending"), nothing.output)

        // watch --json --count 3: three lines of JSON.
        let watch = try runCommand([bin, "watch", sock, "--json", "--count", "3"], timeout: 20)
        XCTAssertEqual(watch.status, .exited(0), watch.output)
        let wl = watch.output.split(separator: "\n")
        XCTAssertEqual(wl.count, 3, String(watch.output.prefix(500)))
        let parsed = wl.compactMap(jsonObject)
        XCTAssertEqual(parsed.count, 3)
        let seqs = parsed.compactMap { $0["seq"] as? Int }
        XCTAssertEqual(seqs, seqs.sorted(), "snapshots in order")
        for object in parsed { assertRealMemory(object, "watch --json") }
        // Plain watch: the memory on the time line.
        let plain = try runCommand([bin, "watch", sock, "--count", "1"], timeout: 20)
        XCTAssertEqual(plain.status, .exited(0), plain.output)
        let timeLine = plain.output.split(separator: "\n").first { $0.hasPrefix("t=") } ?? ""
        XCTAssertNotNil(timeLine.firstMatch(of: /heap_used=[1-9]\d* heap_free=[1-9]\d* heap_total=[1-9]\d* net_reserved=\d+ net_limit=[1-9]\d*/),
                        String(plain.output.prefix(500)))

        // An echo, then dump --last in each form (after a warm-up: slirp's first ARP exchange
        // must not be the last frame).
        _ = try runEchoExchange(port: udpPort, count: 3, sizes: 16...64, seed: 8, perTryTimeout: 1)
        usleep(300_000)
        let udp = try UDPSocket()
        let payload = Array("pcap me: ringside telemetry test".utf8)
        try udp.send(payload, toPort: udpPort)
        XCTAssertEqual(udp.receive(timeout: 3), payload)

        let pcap = q.run.path + "/last.pcap"
        let dumpPcap = try runCommand([bin, "ctl", sock, "dump", "net0.rx", "--last", "--pcap", pcap], timeout: 20)
        XCTAssertEqual(dumpPcap.status, .exited(0), dumpPcap.output)
        let file = Array(FileManager.default.contents(atPath: pcap) ?? Data())
        XCTAssertGreaterThanOrEqual(file.count, 40, "pcap header + record header")
        func le32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(file[at + $1]) << (8 * $1) } }
        func le16(_ at: Int) -> UInt16 { UInt16(file[at]) | UInt16(file[at + 1]) << 8 }
        if file.count >= 40 {
            XCTAssertEqual(le32(0), 0xA1B2_C3D4, "pcap magic (microsecond timestamps)")
            XCTAssertEqual(le16(4), 2); XCTAssertEqual(le16(6), 4)
            XCTAssertEqual(le32(20), 1, "LINKTYPE_ETHERNET")
            let incl = Int(le32(32)), orig = Int(le32(36))
            XCTAssertEqual(incl, file.count - 40, "one record covering the rest of the file")
            XCTAssertEqual(orig, incl)
            XCTAssertLessThan(le32(28), 1_000_000, "microseconds")
            let frame = Array(file[40...])
            XCTAssertEqual(frame.count, 14 + 20 + 8 + payload.count, "Ethernet frame without the virtio-net header")
            XCTAssertEqual(FrameDecoder.describe(frame, virtioHeader: false).udpPayload, payload)
        }
        if let tcpdump = findExecutable("tcpdump") ?? findExecutable("tshark") {
            let r = try runCommand([tcpdump, "-r", pcap], timeout: 20)
            XCTAssertEqual(r.status, .exited(0), r.output)
        }

        let rawFile = q.run.path + "/last.raw"
        let raw = try runCommand(["/bin/sh", "-c", "\"$0\" ctl \"$1\" dump net0.rx --last --raw > \"$2\"", bin, sock, rawFile], timeout: 20)
        XCTAssertEqual(raw.status, .exited(0), raw.output)
        let rawBytes = Array(FileManager.default.contents(atPath: rawFile) ?? Data())
        XCTAssertEqual(rawBytes, file.count > 40 ? Array(file[40...]) : [], "--raw writes the same frame as --pcap")

        let text = try runCommand([bin, "ctl", sock, "dump", "net0.rx", "--last"], timeout: 20)
        XCTAssertEqual(text.status, .exited(0), text.output)
        for needle in ["virtio-net header", "num_buffers", "Ethernet II", "IPv4", "UDP", "dst_port: 7", "\"pcap me: ringside telemetry test\""] {
            XCTAssertTrue(text.output.contains(needle), "dump output lacks \(needle):\n\(text.output)")
        }
        // The hex part is exactly `hexdump -C` of the buffer (virtio-net header + frame).
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/hexdump") {
            let whole = q.run.path + "/whole.bin"
            // The virtio-net header bytes come from the dump's own first line; the rest must be the frame.
            let firstHex = text.output.split(separator: "\n").first { $0.hasPrefix("00000000  ") } ?? ""
            let header = firstHex.dropFirst(10).prefix(49).split(separator: " ").prefix(12).compactMap { UInt8($0, radix: 16) }
            XCTAssertEqual(header.count, 12)
            _ = FileManager.default.createFile(atPath: whole, contents: Data(header + rawBytes))
            let hd = try runCommand(["/usr/bin/hexdump", "-C", whole])
            XCTAssertTrue(text.output.contains(hd.output), "hex dump differs from hexdump -C:\n\(text.output)\n---\n\(hd.output)")
        }
    }

    /// `ringside run --headless` holds the console and re-serves it: two clients at once, with
    /// colliding command seqs, each get their own replies; watch and ctl work through it.
    func testRunHubServesSeveralClients() throws {
        guard let kernel = requireKernel() else { return }
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found; build it with `swift build`") }
        let udpPort = try freePort(udp: true)
        let out = NSTemporaryDirectory() + "ringside-hub-\(getpid()).out"
        defer { unlink(out) }
        let child = try ChildProcess(argv: [bin, "run", "--headless", "--kernel", kernel, "--timeout", "120",
                                            "--udp-port", String(udpPort), "--http-port", String(try freePort(udp: false))],
                                     outputFile: out)
        defer { if child.isRunning { child.signal(SIGKILL); child.wait(timeout: nil) } }
        let deadline = monotonicSeconds() + 30
        var hubPath: String?
        while monotonicSeconds() < deadline && child.isRunning {
            let text = readTextFile(out)
            if text.contains("ringside: ready"), let m = text.firstMatch(of: /telemetry for watch\/ctl at (\S+)/) {
                hubPath = String(m.1)
                break
            }
            usleep(20_000)
        }
        guard let hub = hubPath else { return XCTFail("no telemetry socket announced: \(readTextFile(out))") }
        var st = stat()
        XCTAssertEqual(stat(hub, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "hub socket mode")
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFSOCK)

        // Two clients with the same command seqs.
        let a = try TelemetryConnection(path: hub, timeout: 5, firstSeq: 500)
        let b = try TelemetryConnection(path: hub, timeout: 5, firstSeq: 500)
        XCTAssertNotNil(a.nextCompleteSnapshot(timeout: 10), "client A gets a complete model")
        XCTAssertNotNil(b.nextCompleteSnapshot(timeout: 10), "client B gets a complete model")
        let seqA = try a.send(.pause(queue: 0))
        let seqB = try b.send(.dump(queue: 0, selector: .descriptor(4000)))
        XCTAssertEqual(seqA, seqB, "the clients' seqs collide on purpose")
        guard case .message(.reply(let ra), _)? = a.wait(timeout: 5, for: { if case .message(.reply, _) = $0 { return true }; return false }),
              case .message(.reply(let rb), _)? = b.wait(timeout: 5, for: { if case .message(.reply, _) = $0 { return true }; return false }) else {
            return XCTFail("a reply did not arrive")
        }
        XCTAssertEqual(ra.commandSeq, seqA); XCTAssertEqual(ra.status, .ok, "A's pause")
        XCTAssertEqual(rb.commandSeq, seqB); XCTAssertEqual(rb.status, .descriptorOutOfRange, "B's dump")
        XCTAssertNil(a.wait(timeout: 0.5) { if case .message(.reply, _) = $0 { return true }; return false }, "A must not see B's reply")
        XCTAssertEqual(try b.request(.resume(queue: 0)).status, .ok)
        XCTAssertEqual(try a.request(.stats).status, .ok)

        // The CLI through the hub, while A and B stay connected.
        let stats = try runCommand([bin, "ctl", hub, "stats"], timeout: 20)
        XCTAssertEqual(stats.status, .exited(0), stats.output)
        XCTAssertNotNil(stats.output.split(separator: "\n").first.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) })
        let watch = try runCommand([bin, "watch", hub, "--json", "--count", "2"], timeout: 20)
        XCTAssertEqual(watch.status, .exited(0), watch.output)
        XCTAssertEqual(watch.output.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) }.count, 2)
        _ = try runEchoExchange(port: udpPort, count: 10, sizes: 1...500, seed: 42)
        // Both clients keep receiving snapshots.
        XCTAssertNotNil(a.nextCompleteSnapshot(timeout: 3))
        XCTAssertNotNil(b.nextCompleteSnapshot(timeout: 3))

        child.signal(SIGINT)
        XCTAssertEqual(child.wait(timeout: 15), .exited(0), readTextFile(out))
        XCTAssertFalse(FileManager.default.fileExists(atPath: hub), "hub socket removed")
    }
}
