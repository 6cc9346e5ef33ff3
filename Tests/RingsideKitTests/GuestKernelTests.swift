import Foundation
@testable import RingsideKit
import XCTest

/// Ringside's own kernel watched the any-guest way: no telemetry, only QMP and its RAM file.
final class GuestKernelTests: QEMUTestCase {
    /// Frames of a classic pcap file.
    func pcapFrames(_ file: [UInt8]) -> [[UInt8]] {
        func le32(_ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(file[at + $1]) << (8 * $1) } }
        var frames: [[UInt8]] = []
        var at = 24
        while at + 16 <= file.count {
            let incl = le32(at + 8)
            guard at + 16 + incl <= file.count else { break }
            frames.append(Array(file[(at + 16)..<(at + 16 + incl)]))
            at += 16 + incl
        }
        return frames
    }

    func testDumpLastRawFromMemoryEqualsTheFrameOnTheWire() throws {
        guard let kernel = requireKernel() else { return }
        let bin = try XCTUnwrap(ringsideBinary(), "build ringside first")
        let tag = "rs-kern-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let memory = "/dev/shm/\(tag).ram"
        let pcap = NSTemporaryDirectory() + tag + ".pcap"
        let qmp2 = NSTemporaryDirectory() + tag + ".qmp"
        defer { unlink(memory); unlink(pcap); unlink(qmp2) }
        var c = try baseConfiguration(kernel: kernel)
        c.pcapFile = pcap
        c.extraArguments = QEMUGuestArguments.memory(path: memory, sizeMiB: c.memoryMiB)
            + QEMUConfiguration.qmpArguments(socket: qmp2)
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("user networking expected") }
        _ = try runEchoExchange(port: udpPort, count: 3, sizes: 16...64, seed: 3, perTryTimeout: 1)
        usleep(300_000)

        let pause = try runCommand([bin, "ctl", q.run.consoleSocket, "pause", "net0.rx"], timeout: 20)
        XCTAssertEqual(pause.status, .exited(0), pause.output)
        let session = try GuestSession(qmpPath: qmp2, memoryPath: memory)
        let before = try XCTUnwrap(session.sample(forceQMP: true).queue(named: "net0.rx")?.ring)
        let marker = Array("ringside any-guest marked datagram \(tag)".utf8)
        let udp = try UDPSocket()
        try udp.send(marker, toPort: udpPort)
        // The device puts it in the used ring; the paused kernel leaves it there.
        let deadline = monotonicSeconds() + 10
        var ring = before
        while monotonicSeconds() < deadline {
            if let r = session.sample(forceQMP: true).queue(named: "net0.rx")?.ring, r.usedIdx != before.usedIdx { ring = r; break }
            usleep(50_000)
        }
        session.close()
        XCTAssertEqual(ring.usedIdx, before.usedIdx &+ 1, "one element pending in net0.rx's used ring")
        XCTAssertNil(udp.receive(timeout: 0.3), "paused: no echo")

        let out = NSTemporaryDirectory() + tag + ".raw"
        defer { unlink(out) }
        let dump = try runCommand(["/bin/sh", "-c", "exec \"$0\" ctl --qmp \"$1\" --memory \"$2\" dump net0.rx --last --raw > \"$3\"",
                                   bin, qmp2, memory, out], timeout: 30)
        XCTAssertEqual(dump.status, .exited(0), dump.output)
        let raw = Array(FileManager.default.contents(atPath: out) ?? Data())
        let wire = pcapFrames(Array(FileManager.default.contents(atPath: pcap) ?? Data()))
        let inbound = try XCTUnwrap(wire.last { frame in frame.count >= marker.count && (0...(frame.count - marker.count)).contains { Array(frame[$0..<($0 + marker.count)]) == marker } },
                                    "the marked datagram in filter-dump's pcap (\(wire.count) frames)")
        XCTAssertEqual(raw, inbound, "dump --last --raw from guest memory == the frame on the wire")

        // Resume: the echo comes back, and the hexdump form decodes it.
        let text = try runCommand([bin, "ctl", "--qmp", qmp2, "--memory", memory, "dump", "net0.rx", "--last"], timeout: 30)
        XCTAssertTrue(text.output.contains("UDP") && text.output.contains("dst_port: 7"), text.output)
        _ = try runCommand([bin, "ctl", q.run.consoleSocket, "resume", "net0.rx"], timeout: 20)
        XCTAssertEqual(udp.receive(timeout: 5), marker)
    }
}
