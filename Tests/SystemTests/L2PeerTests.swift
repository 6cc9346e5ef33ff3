import Foundation
import XCTest
@testable import RingsideKit

/// A tiny Ethernet peer on QEMU's `-netdev socket,udp=...` back end: each UDP datagram carries one raw
/// Ethernet frame (no virtio-net header). The peer is 10.0.2.2 / 52:55:0a:00:02:02 and answers the
/// kernel's ARP requests for that address while it waits for other frames.
final class EthernetPeer {
    static let mac: MAC = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]
    static let ip: IPv4Address = [10, 0, 2, 2]
    static let guestIP: IPv4Address = [10, 0, 2, 15]
    static let broadcast: MAC = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]

    let sock: UDPSocket
    /// QEMU's end (`localaddr`), where our frames go.
    let qemuPort: UInt16
    var guestMAC: MAC?
    private(set) var arpRequestsAnswered = 0
    private(set) var unexpected: [ParsedFrame] = []

    init() throws {
        sock = try UDPSocket()
        qemuPort = try freePort(udp: true)
    }

    var backend: NetworkBackend { .socketUDP(peerPort: sock.port, localPort: qemuPort) }

    func send(_ frame: [UInt8]) throws { try sock.send(frame, toPort: qemuPort) }

    /// Waits for a frame satisfying `match`, answering ARP requests for our address on the way and
    /// recording everything else in `unexpected`.
    func receive(timeout: Double, _ match: (ParsedFrame) -> Bool) throws -> ParsedFrame? {
        let deadline = monotonicSeconds() + timeout
        while true {
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { return nil }
            guard let raw = sock.receive(timeout: remaining), let f = ParsedFrame(raw) else { continue }
            if match(f) { return f }
            if let a = f.arp, a.op == 1, a.targetIP == EthernetPeer.ip {
                guestMAC = guestMAC ?? a.senderMAC
                try send(ethernet(dst: a.senderMAC, src: EthernetPeer.mac, type: EtherType.arp,
                                  payload: arp(op: 2, senderMAC: EthernetPeer.mac, senderIP: EthernetPeer.ip,
                                               targetMAC: a.senderMAC, targetIP: a.senderIP)))
                arpRequestsAnswered += 1
                continue
            }
            unexpected.append(f)
        }
    }

    /// ARP-resolves the guest: who-has 10.0.2.15 (broadcast) → its reply. Returns the reply's frame.
    func resolveGuest(timeout: Double = 5) throws -> ParsedFrame? {
        try send(ethernet(dst: EthernetPeer.broadcast, src: EthernetPeer.mac, type: EtherType.arp,
                          payload: arp(op: 1, senderMAC: EthernetPeer.mac, senderIP: EthernetPeer.ip,
                                       targetMAC: [0, 0, 0, 0, 0, 0], targetIP: EthernetPeer.guestIP)))
        let reply = try receive(timeout: timeout) { f in
            guard let a = f.arp else { return false }
            return a.op == 2 && a.senderIP == EthernetPeer.guestIP
        }
        if let a = reply?.arp { guestMAC = a.senderMAC }
        return reply
    }

    /// An Ethernet+IPv4+UDP frame from the peer to the guest.
    func udpFrame(srcPort: UInt16, dstPort: UInt16 = 7, payload: [UInt8], id: UInt16 = 0x1234) -> [UInt8] {
        let u = udp(src: EthernetPeer.ip, dst: EthernetPeer.guestIP, srcPort: srcPort, dstPort: dstPort, payload: payload)
        return ethernet(dst: guestMAC ?? EthernetPeer.broadcast, src: EthernetPeer.mac, type: EtherType.ipv4,
                        payload: ipv4Header(src: EthernetPeer.ip, dst: EthernetPeer.guestIP, proto: 17, payloadLength: u.count, id: id) + u)
    }

    /// Waits for the UDP echo of `payload` to `srcPort`; nil on timeout.
    func receiveEcho(toPort port: UInt16, timeout: Double) throws -> ParsedFrame? {
        try receive(timeout: timeout) { f in f.udp?.dstPort == port && f.udp?.srcPort == 7 }
    }
}

final class L2PeerTests: QEMUTestCase {
    private func bootWithPeer() throws -> (QEMUInstance, EthernetPeer)? {
        guard let kernel = requireKernel() else { return nil }
        let peer = try EthernetPeer()
        var c = QEMUConfiguration()
        c.kernel = kernel
        c.network = peer.backend
        let q = try launchReady(c)
        return (q, peer)
    }

    /// Checks an echo reply frame for `payload` end to end.
    private func checkEcho(_ f: ParsedFrame?, payload: [UInt8], port: UInt16, file: StaticString = #filePath, line: UInt = #line) {
        guard let f else { return XCTFail("no UDP echo within the time limit", file: file, line: line) }
        guard let ip = f.ipv4, let u = f.udp else { return XCTFail("not IPv4/UDP: \(f)", file: file, line: line) }
        XCTAssertEqual(f.dst, EthernetPeer.mac, "echo not addressed to the peer's MAC", file: file, line: line)
        XCTAssertEqual(ip.src, EthernetPeer.guestIP, file: file, line: line)
        XCTAssertEqual(ip.dst, EthernetPeer.ip, file: file, line: line)
        XCTAssertTrue(ip.headerChecksumOK, "bad IPv4 header checksum in reply: \(hex(ip.header))", file: file, line: line)
        XCTAssertTrue(u.checksumOK, "bad UDP checksum in reply", file: file, line: line)
        XCTAssertEqual(u.srcPort, 7, file: file, line: line)
        XCTAssertEqual(u.dstPort, port, file: file, line: line)
        XCTAssertEqual(u.payload, payload, "echoed payload differs", file: file, line: line)
    }

    /// Waits for `net: drop <reason> total=N` on the serial console and returns N.
    private func dropTotal(_ q: QEMUInstance, reason: String, timeout: Double = 5) throws -> Int {
        let prefix = "net: drop \(reason) total="
        let deadline = monotonicSeconds() + timeout
        while true {
            // Wait for the whole line (serial output arrives a byte at a time).
            let log = try q.waitForSerial(prefix, timeout: max(0.01, deadline - monotonicSeconds()))
            let rest = log[log.range(of: prefix)!.upperBound...]
            if let nl = rest.firstIndex(where: { $0 == "\n" || $0 == "\r" }) {
                let digits = rest[..<nl].prefix { $0.isNumber }
                guard let n = Int(digits) else { throw RingsideError("no count in drop line: \(prefix)\(rest[..<nl])") }
                return n
            }
            if monotonicSeconds() >= deadline { throw RingsideError("unterminated drop line: \(prefix)\(rest)") }
            usleep(10_000)
        }
    }

    func testARPAndUDPEcho() throws {
        guard let (_, peer) = try bootWithPeer() else { return }
        guard let reply = try peer.resolveGuest(), let a = reply.arp else {
            return XCTFail("no ARP reply for 10.0.2.15; other frames seen: \(peer.unexpected)")
        }
        XCTAssertEqual(reply.dst, EthernetPeer.mac, "ARP reply not unicast to the asker")
        XCTAssertEqual(reply.src, a.senderMAC, "Ethernet source differs from ARP sender MAC")
        XCTAssertEqual(a.targetMAC, EthernetPeer.mac)
        XCTAssertEqual(a.targetIP, EthernetPeer.ip)
        XCTAssertNotEqual(a.senderMAC, [0, 0, 0, 0, 0, 0])

        var rng = SplitMix64(seed: 7)
        for (i, size) in [1, 18, 64, 512, 1472].enumerated() {
            let payload = [UInt8].random(count: size, using: &rng)
            let port = UInt16(40000 + i)
            try peer.send(peer.udpFrame(srcPort: port, payload: payload, id: UInt16(i)))
            checkEcho(try peer.receiveEcho(toPort: port, timeout: 5), payload: payload, port: port)
        }
    }

    func testMalformedIPv4IsDroppedAndCounted() throws {
        guard let (q, peer) = try bootWithPeer() else { return }
        guard try peer.resolveGuest() != nil else { return XCTFail("no ARP reply for 10.0.2.15") }
        let good: [UInt8] = Array("still alive".utf8)

        // Warm-up echo: proves the path works before we break things.
        try peer.send(peer.udpFrame(srcPort: 41000, payload: good))
        checkEcho(try peer.receiveEcho(toPort: 41000, timeout: 5), payload: good, port: 41000)

        // 1. Truncated: the IPv4 total length claims 100 bytes more than the frame holds (header checksum valid).
        let payload1: [UInt8] = Array("truncated".utf8)
        let u1 = udp(src: EthernetPeer.ip, dst: EthernetPeer.guestIP, srcPort: 41001, dstPort: 7, payload: payload1)
        let truncated = ethernet(dst: peer.guestMAC!, src: EthernetPeer.mac, type: EtherType.ipv4,
                                 payload: ipv4Header(src: EthernetPeer.ip, dst: EthernetPeer.guestIP, proto: 17,
                                                     payloadLength: u1.count, totalLengthOverride: 20 + u1.count + 100) + u1)
        try peer.send(truncated)
        XCTAssertNil(try peer.receiveEcho(toPort: 41001, timeout: 1), "truncated IPv4 packet was answered")
        let truncatedTotal = try dropTotal(q, reason: "ipv4-truncated")

        // 2. Corrupt IPv4 header checksum (everything else valid).
        var bad = peer.udpFrame(srcPort: 41002, payload: Array("bad checksum".utf8))
        bad[14 + 10] ^= 0x5a
        try peer.send(bad)
        XCTAssertNil(try peer.receiveEcho(toPort: 41002, timeout: 1), "IPv4 packet with a bad header checksum was answered")
        let badChecksumTotal = try dropTotal(q, reason: "ipv4-bad-checksum")
        // `total=` counts all drops so far: ours are the only malformed frames on this link.
        XCTAssertGreaterThanOrEqual(truncatedTotal, 1)
        XCTAssertEqual(badChecksumTotal, truncatedTotal + 1, "drop totals should count up by one per dropped packet")

        // 3. The stack still works.
        try peer.send(peer.udpFrame(srcPort: 41003, payload: good))
        checkEcho(try peer.receiveEcho(toPort: 41003, timeout: 5), payload: good, port: 41003)

        let log = q.serialOutput
        XCTAssertEqual(log.components(separatedBy: "net: drop ipv4-truncated").count - 1, 1, "one truncated drop expected:\n\(log)")
        XCTAssertEqual(log.components(separatedBy: "net: drop ipv4-bad-checksum").count - 1, 1, "one bad-checksum drop expected:\n\(log)")
    }

    func testICMPEchoReply() throws {
        guard let (_, peer) = try bootWithPeer() else { return }
        guard try peer.resolveGuest() != nil else { return XCTFail("no ARP reply for 10.0.2.15") }
        var rng = SplitMix64(seed: 99)
        for (seq, size) in [0, 56, 1000].enumerated() {
            let data = [UInt8].random(count: size, using: &rng)
            let icmp = icmpEcho(type: 8, id: 0xbeef, seq: UInt16(seq), payload: data)
            try peer.send(ethernet(dst: peer.guestMAC!, src: EthernetPeer.mac, type: EtherType.ipv4,
                                   payload: ipv4Header(src: EthernetPeer.ip, dst: EthernetPeer.guestIP, proto: 1,
                                                       payloadLength: icmp.count, id: UInt16(100 + seq)) + icmp))
            let reply = try peer.receive(timeout: 5) { f in f.icmp?.type == 0 && f.icmp?.seq == UInt16(seq) }
            guard let reply, let ip = reply.ipv4, let r = reply.icmp else {
                XCTFail("no ICMP echo reply for seq \(seq); other frames: \(peer.unexpected)")
                continue
            }
            XCTAssertEqual(reply.dst, EthernetPeer.mac)
            XCTAssertEqual(ip.src, EthernetPeer.guestIP)
            XCTAssertEqual(ip.dst, EthernetPeer.ip)
            XCTAssertTrue(ip.headerChecksumOK, "bad IPv4 header checksum")
            XCTAssertTrue(r.checksumOK, "bad ICMP checksum")
            XCTAssertEqual(r.code, 0)
            XCTAssertEqual(r.id, 0xbeef)
            XCTAssertEqual(r.payload, data, "ICMP payload not echoed byte for byte")
        }
    }
}
