import Foundation
@testable import RingsideKit
import RingsideTestSupport
import Virtio
import XCTest

/// `ringside capture --qmp --memory` on the Linux reference guest, with QEMU's own `filter-dump`
/// pcap of the same run as the oracle.
final class GuestCaptureLinuxTests: XCTestCase {
    var guest: LinuxGuest?

    override func tearDown() {
        guest?.stop()
        guest = nil
        super.tearDown()
    }

    /// A scratch directory and the Linux guest answering echoes, with filter-dump's pcap of its
    /// traffic at `wirePath` (in that directory): the oracle of every test here.
    func bootGuestWithWire(_ prefix: String) throws -> (dir: String, wirePath: String, g: LinuxGuest) {
        let dir = try scratchDirectory(prefix)
        let wirePath = dir + "/wire.pcap"
        let g = try LinuxGuest(filterDumpTo: wirePath)
        guest = g
        try g.waitForEcho()
        return (dir, wirePath, g)
    }

    /// Marked UDP echoes at about 20 a second, one outstanding, sampled at 200 Hz. Against
    /// filter-dump's pcap of the same run: every marked request (RX) is in the pcapng byte for
    /// byte, and every marked echo (TX) too or counted missed; nothing marked is there that is not
    /// on the wire; and the accounting is exact: between the first and last marked frames of each
    /// queue, the frames the capture numbered (written, filtered out or missed) are the frames on
    /// the wire in that direction, one for one. RX is never lapped at this rate, and may miss a
    /// request only as `reused` (see below); TX may miss a frame Linux sends
    /// right before another (an ARP request before the echo that waited for it): the driver frees
    /// and reuses the descriptor within one sample period, and that is counted as `reused`.
    func testMarkedEchoesMatchFilterDumpByteForByte() throws {
        let bin = try XCTUnwrap(ringsideBinary(), "build ringside first")
        let (dir, wirePath, g) = try bootGuestWithWire("rs-guest-capture")

        let out = dir + "/capture.pcapng", log = dir + "/capture.log"
        let capture = try startCapture(bin, ["--qmp", g.qmp2, "--memory", g.memory, "-o", out,
                                             "--filter", "udp and port 7", "--rate", "200"], log: log)
        usleep(200_000)
        let marker = Array("ringside-guest-capture-\(getpid())-".utf8)
        let udp = try UDPSocket()
        let count = 40
        for i in 0..<count {
            let payload = marker + Array("\(i)".utf8)
            XCTAssertTrue(try udp.echoes(payload, toPort: g.udpPort, tries: 5, timeout: 2), "datagram \(i) echoed")
            usleep(50_000)
        }
        usleep(300_000)
        capture.signal(SIGINT)
        XCTAssertEqual(capture.wait(timeout: 20), .exited(0), readTextFile(log))

        let wire = pcapFrames(Array(FileManager.default.contents(atPath: wirePath) ?? Data())).filter { contains($0, marker) }
        XCTAssertGreaterThanOrEqual(wire.count, 2 * count, "filter-dump saw every request and echo")
        // The guest's frames (TX) carry its MAC as the Ethernet source; QEMU's (RX) as destination.
        let guestMAC = try XCTUnwrap(wire.first { Array($0[26..<30]) == [10, 0, 2, 15] }?[6..<12], "a frame from the guest")
        let file = PcapngReading(path: out)
        XCTAssertEqual(file.problems, [])
        XCTAssertEqual(file.interfaces.map { $0.name }, ["net0.rx", "net0.tx"])
        XCTAssertEqual(file.interfaces.map { $0.linkType }, [1, 1])
        let rx = file.packets.filter { $0.interface == 0 }.map(\.data), tx = file.packets.filter { $0.interface == 1 }.map(\.data)
        let text = readTextFile(log)
        let summaryLines = text.split(separator: "\n").suffix(2).joined(separator: " / ")
        let rxSummary = try XCTUnwrap(captureSummary(text, "net0.rx"), text), txSummary = try XCTUnwrap(captureSummary(text, "net0.tx"), text)
        // RX at this rate is never lapped; a request may be missed as `reused` (the check after
        // copying sees its head posted again since the sample: Linux reposts an RX buffer as soon
        // as it has taken it, and once in a few runs that lands inside the copy), never misread.
        XCTAssertLessThanOrEqual(rxSummary.missed, count / 10, summaryLines)
        if rxSummary.missed > 0 {
            XCTAssertTrue(summaryLines.contains("net0.rx: \(rxSummary.written) frames written, \(rxSummary.missed) missed (\(rxSummary.missed) reused)"),
                          "RX misses at this rate are reused buffers only: \(summaryLines)")
        }
        var absent = [0, 0]
        for frame in wire {
            let fromGuest = frame[6..<12] == guestMAC
            if !(fromGuest ? tx : rx).contains(frame) { absent[fromGuest ? 1 : 0] += 1 }
        }
        XCTAssertLessThanOrEqual(absent[0], rxSummary.missed, "every marked request of the pcap is in the pcapng byte for byte or counted missed")
        XCTAssertLessThanOrEqual(absent[1], txSummary.missed, "every marked echo of the pcap is in the pcapng or counted missed")
        XCTAssertEqual(rx.filter { contains($0, marker) }.count + absent[0], wire.filter { $0[6..<12] != guestMAC }.count, "nothing marked twice or off the wire")
        XCTAssertEqual(tx.filter { contains($0, marker) }.count + absent[1], wire.filter { $0[6..<12] == guestMAC }.count)
        XCTAssertEqual(rxSummary.written, rx.count)
        XCTAssertEqual(txSummary.written, tx.count)
        XCTAssertEqual(file.statistics.map { $0.dropped.map(Int.init) }, [rxSummary.missed, txSummary.missed], "isb_ifdrop: what was missed")
        XCTAssertEqual(file.statistics.map { $0.filterAccepted.map(Int.init) }, [rx.count, tx.count])
        // Exact accounting per direction, between each queue's first and last marked frames in
        // the file (frames after the capture ended, an ARP probe, are on the wire only).
        let allWire = pcapFrames(Array(FileManager.default.contents(atPath: wirePath) ?? Data()))
        for (interface, fromGuest) in [(0, false), (1, true)] {
            let direction = allWire.filter { $0.count >= 14 && ($0[6..<12] == guestMAC) == fromGuest }
            let marked = file.packets.filter { $0.interface == interface && contains($0.data, marker) }
            let first = try XCTUnwrap(marked.first), last = try XCTUnwrap(marked.last)
            let numbered = try XCTUnwrap(last.number) - XCTUnwrap(first.number)
            let start = try XCTUnwrap(direction.firstIndex(of: first.data)), end = try XCTUnwrap(direction.lastIndex(of: last.data))
            XCTAssertEqual(numbered, end - start, "\(fromGuest ? "TX" : "RX"): frames numbered between the first and last marked ones = frames on the wire; \(summaryLines)")
        }

        let read = try runCommand(["tshark", "-r", out], timeout: 60)
        XCTAssertEqual(read.status, .exited(0), read.output)
        XCTAssertGreaterThanOrEqual(read.output.split(separator: "\n").filter { $0.contains("ECHO") }.count, 2 * count - txSummary.missed, read.output)
        let comments = try runCommand(["tshark", "-r", out, "-T", "fields", "-e", "frame.comment"], timeout: 60)
        let lines = comments.output.split(separator: "\n").filter { $0.hasPrefix("desc ") }
        XCTAssertEqual(lines.count, file.packets.count, comments.output)
        for line in lines {
            XCTAssertNotNil(line.range(of: #"^desc \d+ avail \d+ used \d+ hdr flags=\d+ gso=0 hdr_len=\d+ gso_size=0 csum_start=\d+ csum_offset=\d+ num_buffers=[01] nr \d+$"#,
                                       options: .regularExpression), String(line))
        }
    }

    /// A UDP flood sampled at 5 Hz: the rings lap the sampler and buffers are reused, and every
    /// frame is still accounted for: between a marked echo before the flood and one after it, the
    /// frames numbered on each queue (written or missed) are the elements the device really
    /// produced (QEMU's own indices, `x-query-virtio-queue-status`, read at the quiet moment
    /// before each marked request: QEMU drops frames it cannot queue for a guest that falls
    /// behind before they reach the ring, so the wire is only an upper bound), and every frame
    /// written is one on the wire (filter-dump's pcap), byte for byte.
    func testFloodLossIsCountedExactly() throws {
        let bin = try XCTUnwrap(ringsideBinary(), "build ringside first")
        let (dir, wirePath, g) = try bootGuestWithWire("rs-guest-flood")
        let out = dir + "/capture.pcapng", log = dir + "/capture.log"
        let capture = try startCapture(bin, ["--qmp", g.qmp2, "--memory", g.memory, "-o", out, "--rate", "5"], log: log)
        let udp = try UDPSocket()
        let tag = "ringside-flood-\(getpid())"
        let qmp = try QMPClient(path: g.qmp)
        defer { qmp.close() }
        // The device's own count of each queue's elements (RX used-idx, TX last-avail-idx) at the
        // quiet moments around each marked echo: when each moved by exactly one across it, its
        // request is RX element `rx` and its echo TX element `tx`.
        var device: [String: (rx: UInt16, tx: UInt16)] = [:]
        func indices() throws -> (rx: UInt16, tx: UInt16) {
            let path = "/machine/peripheral/net0/virtio-backend"
            return (try GuestDiscovery.queueStatus(qmp, path: path, queue: 0).usedIdx, try GuestDiscovery.queueStatus(qmp, path: path, queue: 1).lastAvailIdx)
        }
        /// A marked echo with quiet on each side, again under a new name until one is alone in
        /// its quiet (Linux may send an ARP request beside it) and the capture file holds it both
        /// ways (Linux may send another frame through the same descriptor within the sample
        /// period: the echo is then missed, counted `reused`). Its name.
        func markedEcho(_ base: String) throws -> String {
            var name = base
            for attempt in 0..<6 {
                name = "\(base)\(attempt)"
                // Three sample periods of quiet on each side (late flood echoes drained first).
                while udp.receive(timeout: 0.6) != nil {}
                let before = try indices()
                let payload = Array("\(tag)-\(name)".utf8)
                try udp.send(payload, toPort: g.udpPort)
                var echoed = false
                let end = monotonicSeconds() + 5
                while !echoed && monotonicSeconds() < end { echoed = udp.receive(timeout: 0.5) == payload }
                XCTAssertTrue(echoed, "\(name) echoed")
                usleep(600_000)
                let after = try indices()
                guard after.rx &- before.rx == 1, after.tx &- before.tx == 1 else { continue }
                device[name] = before
                let sofar = PcapngReading(path: out).packets
                if Set(sofar.filter { contains($0.data, payload) }.map(\.interface)) == [0, 1] { return name }
            }
            XCTFail("\(base): no marked echo alone and captured both ways in 6 tries")
            return name
        }
        let startName = try markedEcho("start")
        let floodStart = monotonicSeconds(), floodEnd = floodStart + 2
        var sent = 0
        while monotonicSeconds() < floodEnd {
            try udp.send(Array("\(tag)-flood-\(sent)".utf8) + [UInt8](repeating: 0x66, count: 200), toPort: g.udpPort)
            sent += 1
            if sent % 64 == 0 { udp.drain() }
        }
        let floodSeconds = monotonicSeconds() - floodStart
        udp.drain()
        let endName = try markedEcho("end")
        capture.signal(SIGINT)
        XCTAssertEqual(capture.wait(timeout: 20), .exited(0), readTextFile(log))

        let wire = pcapFrames(Array(FileManager.default.contents(atPath: wirePath) ?? Data()))
        let file = PcapngReading(path: out)
        XCTAssertEqual(file.problems, [])
        let text = readTextFile(log)
        let guestMAC = try XCTUnwrap(wire.first { $0.count >= 34 && Array($0[26..<30]) == [10, 0, 2, 15] }?[6..<12], "a frame from the guest")
        let start = Array("\(tag)-\(startName)".utf8), end = Array("\(tag)-\(endName)".utf8)
        let before = try XCTUnwrap(device[startName]), after = try XCTUnwrap(device[endName])
        for (interface, fromGuest) in [(0, false), (1, true)] {
            let direction = wire.filter { $0.count >= 14 && ($0[6..<12] == guestMAC) == fromGuest }
            let packets = file.packets.filter { $0.interface == interface }
            let first = try XCTUnwrap(packets.first { contains($0.data, start) }, "the start echo was captured: \(text) "
                                      + packets.prefix(5).map { "nr \($0.number ?? -1) \(String(decoding: $0.data.suffix(40), as: UTF8.self))" }.joined(separator: " | "))
            let last = try XCTUnwrap(packets.first { contains($0.data, end) }, "the end echo was captured: \(text)")
            let numbered = try XCTUnwrap(last.number) - XCTUnwrap(first.number)
            let onWire = try XCTUnwrap(direction.lastIndex(of: last.data)) - XCTUnwrap(direction.firstIndex(of: first.data))
            let produced = Int(fromGuest ? after.tx &- before.tx : after.rx &- before.rx)
            XCTAssertEqual(numbered, produced, "\(fromGuest ? "TX" : "RX"): frames numbered between the marked echoes = elements the device produced; \(text)")
            XCTAssertLessThanOrEqual(numbered, onWire, "\(fromGuest ? "TX" : "RX"): no more frames numbered than on the wire")
            let between = packets.filter { ($0.number ?? -1) > first.number! && ($0.number ?? Int.max) < last.number! }
            let wrong = between.filter { !direction.contains($0.data) }
            XCTAssertEqual(wrong.count, 0, "frames written are on the wire byte for byte: "
                           + wrong.prefix(3).map { p in
                               let text = String(decoding: p.data.suffix(from: min(p.data.count, 42)).prefix(30), as: UTF8.self)
                               let near = direction.first { $0.count == p.data.count && contains($0, Array(text.utf8)) }
                               let diff = near.map { w in (0..<w.count).filter { w[$0] != p.data[$0] }.prefix(12).map(String.init).joined(separator: ",") } ?? "no wire frame with that payload"
                               return "nr \(p.number ?? -1) \(p.comment ?? "") [\(text)] \(p.data.count) bytes, differs at \(diff)"
                           }.joined(separator: " | "))
            print("guest capture flood \(fromGuest ? "TX" : "RX"): sent \(sent) in \(String(format: "%.2f", floodSeconds)) s, \(onWire - 1) on the wire "
                  + "between the marks, \(produced - 1) through the ring, \(between.count) written, \(produced - 1 - between.count) missed, "
                  + "\(wrong.count) not on the wire")
        }
        print(text)
        // Not hollow: the flood really lapped the sampler or reused buffers under it.
        let rx = try XCTUnwrap(captureSummary(text, "net0.rx"), text)
        XCTAssertGreaterThan(rx.missed, 0, "the flood made the sampler miss frames: \(text)")
    }
}
