import Foundation
import XCTest
@testable import RingsideKit

// A raw-Ethernet link to the guest (over EthernetPeer's QEMU `-netdev socket,udp=` back end) that
// can speak for ANY address on 10.0.2.0/24 with any MAC, a minimal TCP client on top of it, and a
// legitimate client (10.0.2.2, the gateway) that checks ping, UDP echo and HTTP while attacks run.
// Everything is single-threaded: attack traffic that must keep flowing while the legitimate client
// waits runs as `RawLink.background`, called from every turn of the receive loop.

enum TCPFlags {
    static let fin: UInt8 = 0x01
    static let syn: UInt8 = 0x02
    static let rst: UInt8 = 0x04
    static let psh: UInt8 = 0x08
    static let ack: UInt8 = 0x10
}

func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
func read32(_ b: [UInt8], _ at: Int) -> UInt32 {
    UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
}
func rawSeqLT(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) < 0 }
func rawSeqGT(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) > 0 }
func ipKey(_ ip: IPv4Address) -> UInt32 { UInt32(ip[0]) << 24 | UInt32(ip[1]) << 16 | UInt32(ip[2]) << 8 | UInt32(ip[3]) }
func ipString(_ ip: IPv4Address) -> String { ip.map(String.init).joined(separator: ".") }

/// A TCP segment (20-byte header, optional MSS option) with a correct checksum.
func tcpSegment(src: IPv4Address, dst: IPv4Address, srcPort: UInt16, dstPort: UInt16, seq: UInt32, ack: UInt32,
                flags: UInt8, window: UInt16, mss: UInt16? = nil, payload: [UInt8] = []) -> [UInt8] {
    let options: [UInt8] = mss.map { [2, 4] + be16($0) } ?? []
    let headerLength = 20 + options.count
    var s = be16(srcPort) + be16(dstPort) + be32(seq) + be32(ack)
    s += [UInt8(headerLength / 4) << 4, flags] + be16(window) + [0, 0, 0, 0] + options
    s += payload
    let c = internetChecksum(src + dst + [0, 6] + be16(UInt16(s.count)) + s)
    s[16] = UInt8(c >> 8); s[17] = UInt8(c & 0xff)
    return s
}

/// The TCP parts of a frame the guest sent.
struct TCPView {
    var srcIP: IPv4Address, dstIP: IPv4Address
    var srcPort: UInt16, dstPort: UInt16
    var seq: UInt32, ack: UInt32
    var flags: UInt8
    var window: UInt16
    var payload: [UInt8]

    func has(_ flag: UInt8) -> Bool { flags & flag != 0 }

    init?(frame raw: [UInt8]) {
        guard raw.count >= 34, read16(raw, 12) == EtherType.ipv4, raw[14] >> 4 == 4, raw[23] == 6 else { return nil }
        let ihl = Int(raw[14] & 0xf) * 4
        let total = Int(read16(raw, 16))
        guard ihl >= 20, total >= ihl + 20, 14 + total <= raw.count else { return nil }
        let t = 14 + ihl
        let dataOffset = Int(raw[t + 12] >> 4) * 4
        guard dataOffset >= 20, ihl + dataOffset <= total else { return nil }
        srcIP = Array(raw[26..<30]); dstIP = Array(raw[30..<34])
        srcPort = read16(raw, t); dstPort = read16(raw, t + 2)
        seq = read32(raw, t + 4); ack = read32(raw, t + 8)
        flags = raw[t + 13]
        window = read16(raw, t + 14)
        payload = Array(raw[(t + dataOffset)..<(14 + total)])
    }
}

/// The guest stopped (QEMU exited, typically through the fault handler's debug exit).
struct GuestDied: Error, CustomStringConvertible {
    var description: String
}

/// Lines of the serial log that report a CPU exception, a heap error or a trap.
func faultLines(_ log: String) -> [String] {
    let markers = ["CPU exception", "kernel halted", "heap:", "panic", "fatal", "Fatal", "rip="]
    return log.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map(String.init)
        .filter { line in markers.contains { line.contains($0) } }
}

/// The raw link: sends frames from any (IP, MAC), answers the guest's ARP requests for the gateway and
/// for the addresses in `reachable`, and hands each TCP segment to the RawTCPConnection it belongs to.
final class RawLink {
    static let gatewayIP = EthernetPeer.ip
    static let gatewayMAC = EthernetPeer.mac
    static let guestIP = EthernetPeer.guestIP

    let peer: EthernetPeer
    var guestMAC: MAC = EthernetPeer.broadcast
    /// Spoofed addresses this link answers ARP requests for (the guest can reach them), with their MACs.
    var reachable: [UInt32: MAC] = [:]
    /// Attack traffic that must keep flowing while someone waits: called on every turn of `pump`.
    var background: (() throws -> Void)?
    /// Returns a description when the guest is gone; checked a few times a second by `pump`.
    var deathCheck: (() -> String?)?

    private var connections: [UInt64: RawTCPConnection] = [:]
    /// Non-TCP IPv4 frames for the gateway address (ICMP, UDP replies), newest last, bounded.
    private var inbox: [ParsedFrame] = []
    private var buffer = [UInt8](repeating: 0, count: 65536)
    private var inBackground = false
    private var lastDeathCheck = 0.0

    // Statistics.
    private(set) var framesIn = 0
    private(set) var framesOut = 0
    private(set) var arpAnswered = 0
    /// The guest's ARP requests, by target address.
    private(set) var guestARPRequests: [UInt32: Int] = [:]
    /// IPv4 frames for 10.0.2.2 sent to a MAC other than the gateway's: the gateway never sees them.
    private(set) var gatewayFramesToWrongMAC = 0
    private(set) var wrongGatewayMACs: Set<[UInt8]> = []
    /// TCP segments for no registered connection (answers to flood SYNs), by kind.
    private(set) var unclaimedSynAcks = 0
    private(set) var unclaimedResets = 0
    private(set) var unclaimedOther = 0

    init(peer: EthernetPeer) { self.peer = peer }

    static func key(_ ip: IPv4Address, _ port: UInt16) -> UInt64 { UInt64(ipKey(ip)) << 16 | UInt64(port) }

    func register(_ c: RawTCPConnection) { connections[RawLink.key(c.ip, c.port)] = c }
    func unregister(_ c: RawTCPConnection) { connections[RawLink.key(c.ip, c.port)] = nil }

    func send(_ frame: [UInt8]) throws {
        // Never an empty datagram: QEMU stops reading the socket for good after one.
        precondition(frame.count >= 14, "refusing to send a runt frame")
        try peer.send(frame)
        framesOut += 1
    }

    /// An Ethernet + IPv4 frame from (`src`, `srcMAC`) to the guest.
    func ipFrame(src: IPv4Address, srcMAC: MAC, proto: UInt8, payload: [UInt8], id: UInt16 = 0) -> [UInt8] {
        ethernet(dst: guestMAC, src: srcMAC, type: EtherType.ipv4,
                 payload: ipv4Header(src: src, dst: RawLink.guestIP, proto: proto, payloadLength: payload.count, id: id) + payload)
    }

    /// `who-has 10.0.2.15 tell <ip>` from (`ip`, `mac`): puts `ip` in the guest's ARP cache.
    func arpRequestToGuest(from ip: IPv4Address, mac: MAC, target: IPv4Address = RawLink.guestIP) -> [UInt8] {
        ethernet(dst: EthernetPeer.broadcast, src: mac, type: EtherType.arp,
                 payload: arp(op: 1, senderMAC: mac, senderIP: ip, targetMAC: [0, 0, 0, 0, 0, 0], targetIP: target))
    }

    /// ARP-resolves the guest from the gateway address.
    func resolveGuest(timeout: Double = 5) throws -> Bool {
        let deadline = monotonicSeconds() + timeout
        var resolved = false
        while !resolved, monotonicSeconds() < deadline {
            try send(arpRequestToGuest(from: RawLink.gatewayIP, mac: RawLink.gatewayMAC))
            resolved = try pump(until: min(deadline, monotonicSeconds() + 1)) { self.guestMAC != EthernetPeer.broadcast }
        }
        return resolved
    }

    /// Takes (and removes) the first queued gateway frame that matches.
    func take(where match: (ParsedFrame) -> Bool) -> ParsedFrame? {
        guard let i = inbox.firstIndex(where: match) else { return nil }
        return inbox.remove(at: i)
    }

    /// Receives and dispatches frames (running `background`) until `done` or `deadline`; returns `done()`.
    @discardableResult
    func pump(until deadline: Double, _ done: () -> Bool = { false }) throws -> Bool {
        while true {
            if done() { return true }
            let now = monotonicSeconds()
            try tick(now)
            if now >= deadline { return done() }
            var got = 0
            while got < 64, let raw = receiveNow() {
                dispatch(raw)
                got += 1
                if done() { return true }
            }
            if got == 0 { waitReadable(seconds: min(0.002, deadline - now)) }
        }
    }

    func pump(seconds: Double) throws { try pump(until: monotonicSeconds() + seconds) }

    private func tick(_ now: Double) throws {
        if now - lastDeathCheck > 0.2 {
            lastDeathCheck = now
            if let reason = deathCheck?() { throw GuestDied(description: reason) }
        }
        if !inBackground, let background {
            inBackground = true
            defer { inBackground = false }
            try background()
        }
    }

    private func receiveNow() -> [UInt8]? {
        let n = buffer.withUnsafeMutableBytes { recv(peer.sock.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        return n > 0 ? Array(buffer[0..<n]) : nil
    }

    private func waitReadable(seconds: Double) {
        var pfd = pollfd(fd: peer.sock.fd, events: Int16(POLLIN), revents: 0)
        _ = poll(&pfd, 1, Int32(max(1, seconds * 1000)))
    }

    private func dispatch(_ raw: [UInt8]) {
        framesIn += 1
        guard raw.count >= 14 else { return }
        let type = read16(raw, 12)
        if type == EtherType.arp {
            guard let f = ParsedFrame(raw), let a = f.arp, a.senderIP == RawLink.guestIP else { return }
            if a.op == 2 {
                if a.targetIP == RawLink.gatewayIP, f.dst == RawLink.gatewayMAC { guestMAC = a.senderMAC }
                return
            }
            guard a.op == 1 else { return }
            guestARPRequests[ipKey(a.targetIP), default: 0] += 1
            let mac: MAC? = a.targetIP == RawLink.gatewayIP ? RawLink.gatewayMAC : reachable[ipKey(a.targetIP)]
            if let mac {
                try? send(ethernet(dst: a.senderMAC, src: mac, type: EtherType.arp,
                                   payload: arp(op: 2, senderMAC: mac, senderIP: a.targetIP,
                                                targetMAC: a.senderMAC, targetIP: a.senderIP)))
                arpAnswered += 1
            }
            return
        }
        guard type == EtherType.ipv4, raw.count >= 34 else { return }
        let dstMAC = Array(raw[0..<6])
        let dstIP = Array(raw[30..<34])
        if dstIP == RawLink.gatewayIP, dstMAC != RawLink.gatewayMAC {
            // A switch would not deliver this to the gateway.
            gatewayFramesToWrongMAC += 1
            wrongGatewayMACs.insert(dstMAC)
            return
        }
        if raw[23] == 6 {
            guard let t = TCPView(frame: raw) else { return }
            if let c = connections[RawLink.key(t.dstIP, t.dstPort)] {
                c.handle(t)
            } else if t.has(TCPFlags.rst) {
                unclaimedResets += 1
            } else if t.has(TCPFlags.syn) {
                unclaimedSynAcks += 1
            } else {
                unclaimedOther += 1
            }
            return
        }
        if dstIP == RawLink.gatewayIP, let f = ParsedFrame(raw) {
            inbox.append(f)
            if inbox.count > 256 { inbox.removeFirst(inbox.count - 256) }
        }
    }
}

/// One TCP connection to the guest's port 80 from any (IP, MAC, port): a deliberately small client that
/// does exactly what it is told (an attacker does not ACK, keeps a zero window, leaves gaps...).
final class RawTCPConnection {
    unowned let link: RawLink
    let ip: IPv4Address
    let mac: MAC
    let port: UInt16
    let remotePort: UInt16
    let iss: UInt32

    /// Highest sequence number sent + 1 (after the SYN: ISS + 1).
    var sndNxt: UInt32
    /// Highest acknowledgment the guest sent.
    var sndUna: UInt32
    var rcvNxt: UInt32 = 0
    var irs: UInt32?
    var guestWindow = 0
    /// The guest's RCV.NXT as of its last segment: the exact sequence number a reset must carry.
    var lastGuestAck: UInt32?
    /// The window we advertise (0: the guest may not send us data).
    var advertisedWindow: UInt16 = 65535
    /// ACK the guest's data and FIN at once (a well-behaved client); attackers leave this off.
    var autoAck = true
    /// Keep the guest's in-order data in `received`.
    var collect = true
    private(set) var received: [UInt8] = []

    let openedAt = monotonicSeconds()
    private(set) var synAckAt: Double?
    private(set) var rstAt: Double?
    private(set) var finAt: Double?
    var establishedAt: Double?
    var established: Bool { irs != nil }
    /// When the guest first reset or finished the connection.
    var closedByGuestAt: Double? { [rstAt, finAt].compactMap { $0 }.min() }

    // A byte stream sent with go-back-N retransmission (`startStream` / `serviceStream`).
    private var stream: [UInt8] = []
    private var streamBase: UInt32 = 0
    private var streamNext: UInt32 = 0
    private var lastProgress = 0.0

    init(link: RawLink, ip: IPv4Address, mac: MAC, port: UInt16, remotePort: UInt16 = 80, iss: UInt32) {
        self.link = link
        self.ip = ip
        self.mac = mac
        self.port = port
        self.remotePort = remotePort
        self.iss = iss
        sndNxt = iss &+ 1
        sndUna = iss
        link.register(self)
    }

    func segmentFrame(seq: UInt32, flags: UInt8, payload: [UInt8] = [], mss: UInt16? = nil, ack: UInt32? = nil) -> [UInt8] {
        let ackNumber = flags & TCPFlags.ack != 0 ? (ack ?? rcvNxt) : 0
        return link.ipFrame(src: ip, srcMAC: mac, proto: 6,
                            payload: tcpSegment(src: ip, dst: RawLink.guestIP, srcPort: port, dstPort: remotePort,
                                                seq: seq, ack: ackNumber, flags: flags, window: advertisedWindow,
                                                mss: mss, payload: payload))
    }

    func sendSYN() throws { try link.send(segmentFrame(seq: iss, flags: TCPFlags.syn, mss: 1460)) }
    func sendACK() throws { try link.send(segmentFrame(seq: sndNxt, flags: TCPFlags.ack)) }

    /// Data at `seq` (default: the next new byte, which advances SND.NXT).
    func sendData(_ bytes: [UInt8], seq: UInt32? = nil) throws {
        let s = seq ?? sndNxt
        try link.send(segmentFrame(seq: s, flags: TCPFlags.ack | TCPFlags.psh, payload: bytes))
        let end = s &+ UInt32(bytes.count)
        if rawSeqGT(end, sndNxt), seq == nil || !rawSeqGT(s, sndNxt) { sndNxt = end }
    }

    func sendFIN() throws {
        try link.send(segmentFrame(seq: sndNxt, flags: TCPFlags.fin | TCPFlags.ack))
        sndNxt &+= 1
    }

    /// A reset the guest accepts: at its RCV.NXT when known.
    func sendRST() throws {
        let seq = lastGuestAck ?? (established ? sndNxt : iss &+ 1)
        try link.send(segmentFrame(seq: seq, flags: TCPFlags.rst))
    }

    /// An ACK-only segment whose sequence number lies far outside the guest's window.
    func sendOutOfWindowACK() throws {
        try link.send(segmentFrame(seq: sndNxt &+ 0x4000_0000, flags: TCPFlags.ack))
    }

    func handle(_ t: TCPView) {
        let now = monotonicSeconds()
        if t.has(TCPFlags.rst) {
            if rstAt == nil { rstAt = now }
            return
        }
        if t.has(TCPFlags.syn) {
            guard t.has(TCPFlags.ack) else { return }
            if irs == nil, t.ack == iss &+ 1 {
                irs = t.seq
                rcvNxt = t.seq &+ 1
                synAckAt = now
                sndUna = t.ack
                lastGuestAck = t.ack
                guestWindow = Int(t.window)
            } else if irs != nil, autoAck {
                try? sendACK()  // our ACK of the SYN-ACK was lost
            }
            return
        }
        guard irs != nil else { return }
        if t.has(TCPFlags.ack) {
            if rawSeqGT(t.ack, sndUna) {
                sndUna = t.ack
                lastProgress = now
            }
            guestWindow = Int(t.window)
        }
        var data = t.payload[...]
        var seq = t.seq
        if rawSeqLT(seq, rcvNxt) {
            let skip = Int(rcvNxt &- seq)
            data = data.dropFirst(skip)
            seq = rcvNxt
        }
        if seq == rcvNxt, !data.isEmpty {
            if collect { received += data }
            rcvNxt &+= UInt32(data.count)
        }
        if t.has(TCPFlags.fin), t.seq &+ UInt32(t.payload.count) == rcvNxt {
            rcvNxt &+= 1
            if finAt == nil { finAt = now }
        }
        // The guest's RCV.NXT is in its ACK field; remember it for resets.
        if t.has(TCPFlags.ack) { lastGuestAck = t.ack }
        if autoAck, !t.payload.isEmpty || t.has(TCPFlags.fin) { try? sendACK() }
    }

    // MARK: Streams

    /// Queues `bytes` after everything sent so far; `serviceStream` sends them inside the guest's window.
    func startStream(_ bytes: [UInt8]) {
        stream = bytes
        streamBase = sndNxt
        streamNext = sndNxt
        lastProgress = monotonicSeconds()
    }

    /// Bytes of the stream the guest has acknowledged.
    var streamAcked: Int {
        guard !stream.isEmpty, rawSeqGT(sndUna, streamBase) else { return 0 }
        return min(Int(sndUna &- streamBase), stream.count)
    }
    var streamDone: Bool { streamAcked == stream.count }
    /// The guest's window is shut and nothing moved for a while: it will take no more.
    var streamStalled: Bool { !streamDone && guestWindow == 0 && monotonicSeconds() - lastProgress > 0.5 }

    /// Sends what the guest's window allows (at most `segmentSize` bytes a segment and `maxInFlight`
    /// unacknowledged), going back to the first unacknowledged byte after 0.4 s without progress.
    /// One segment of N bytes in flight at a time makes the receiver read exactly N bytes at a time.
    func serviceStream(maxSegments: Int = 8, segmentSize: Int = 1400, maxInFlight: Int = Int.max) throws {
        guard !stream.isEmpty, !streamDone, rstAt == nil else { return }
        let now = monotonicSeconds()
        let end = streamBase &+ UInt32(stream.count)
        if rawSeqGT(streamNext, sndUna), now - lastProgress > 0.4 {
            streamNext = sndUna
            lastProgress = now
        }
        if rawSeqLT(streamNext, sndUna) { streamNext = sndUna }
        let windowEnd = sndUna &+ UInt32(min(guestWindow, maxInFlight))
        var sent = 0
        while sent < maxSegments, rawSeqLT(streamNext, end), rawSeqLT(streamNext, windowEnd) {
            let length = min(segmentSize, Int(end &- streamNext), Int(windowEnd &- streamNext))
            let offset = Int(streamNext &- streamBase)
            try link.send(segmentFrame(seq: streamNext, flags: TCPFlags.ack | TCPFlags.psh,
                                       payload: Array(stream[offset..<(offset + length)])))
            streamNext &+= UInt32(length)
            if rawSeqGT(streamNext, sndNxt) { sndNxt = streamNext }
            sent += 1
        }
    }
}

/// The outcome of one legitimate HTTP GET.
struct HTTPGetResult {
    var status: Int
    var body: [UInt8]
    var seconds: Double
    var attempts: Int
    var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// The legitimate client: the gateway, 10.0.2.2 / 52:55:0a:00:02:02, behaving like ping, a UDP echo
/// client and an HTTP client would (retransmitting once a second, retrying a reset connection).
final class LegitClient {
    let link: RawLink
    private var nextPort: UInt16 = 30000
    private var icmpSeq: UInt16 = 0
    private var udpCounter: UInt32 = 0
    private var rng = SplitMix64(seed: 0x1e91)
    /// Why the last check failed.
    private(set) var lastFailure = ""

    init(link: RawLink) { self.link = link }

    private func port() -> UInt16 {
        nextPort = nextPort >= 39999 ? 30000 : nextPort + 1
        return nextPort
    }

    /// ICMP echo from the gateway; the seconds until the first reply, nil if none within `timeout`.
    func ping(timeout: Double = 5) throws -> Double? {
        let start = monotonicSeconds(), deadline = start + timeout
        var sent: Set<UInt16> = []
        while monotonicSeconds() < deadline {
            icmpSeq &+= 1
            let seq = icmpSeq
            sent.insert(seq)
            let payload = Array("ringside-legit-ping-\(seq)".utf8)
            try link.send(link.ipFrame(src: RawLink.gatewayIP, srcMAC: RawLink.gatewayMAC, proto: 1,
                                       payload: icmpEcho(type: 8, id: 0x1e91, seq: seq, payload: payload), id: seq))
            var reply: ParsedFrame?
            _ = try link.pump(until: min(deadline, monotonicSeconds() + 1)) {
                reply = link.take { f in
                    guard let i = f.icmp else { return false }
                    return i.type == 0 && i.id == 0x1e91 && sent.contains(i.seq)
                }
                return reply != nil
            }
            if reply != nil { return monotonicSeconds() - start }
        }
        lastFailure = "no ICMP echo reply within \(timeout) s (\(sent.count) requests sent)"
        return nil
    }

    /// UDP echo (port 7) from the gateway; seconds until the echo, nil if none within `timeout`.
    func udpEcho(timeout: Double = 5) throws -> Double? {
        let start = monotonicSeconds(), deadline = start + timeout
        udpCounter += 1
        let srcPort = UInt16(40000 + udpCounter % 20000)
        let payload = Array("ringside-legit-udp-\(udpCounter)".utf8)
        var tries = 0
        while monotonicSeconds() < deadline {
            tries += 1
            let u = udp(src: RawLink.gatewayIP, dst: RawLink.guestIP, srcPort: srcPort, dstPort: 7, payload: payload)
            try link.send(link.ipFrame(src: RawLink.gatewayIP, srcMAC: RawLink.gatewayMAC, proto: 17, payload: u))
            var got = false
            _ = try link.pump(until: min(deadline, monotonicSeconds() + 1)) {
                got = link.take { f in f.udp.map { $0.srcPort == 7 && $0.dstPort == srcPort && $0.payload == payload } ?? false } != nil
                return got
            }
            if got { return monotonicSeconds() - start }
        }
        lastFailure = "no UDP echo within \(timeout) s (\(tries) datagrams sent)"
        return nil
    }

    /// GET `path` on a fresh connection; a reset connection is retried on a new port until `timeout`.
    func httpGet(_ path: String, timeout: Double = 5) throws -> HTTPGetResult? {
        let start = monotonicSeconds(), deadline = start + timeout
        var attempts = 0
        var reasons: [String] = []
        while monotonicSeconds() < deadline {
            attempts += 1
            let c = RawTCPConnection(link: link, ip: RawLink.gatewayIP, mac: RawLink.gatewayMAC, port: port(),
                                     iss: UInt32(truncatingIfNeeded: rng.next()))
            defer { link.unregister(c) }
            // Handshake: a SYN a second until SYN-ACK or RST.
            while monotonicSeconds() < deadline, !c.established, c.rstAt == nil {
                try c.sendSYN()
                try link.pump(until: min(deadline, monotonicSeconds() + 1)) { c.established || c.rstAt != nil }
            }
            if c.rstAt != nil {
                reasons.append("attempt \(attempts): SYN answered by RST")
                try link.pump(until: min(deadline, monotonicSeconds() + 0.2))
                continue
            }
            guard c.established else {
                reasons.append("attempt \(attempts): no SYN-ACK")
                break
            }
            try c.sendACK()
            let request = Array("GET \(path) HTTP/1.1\r\nHost: 10.0.2.15\r\nConnection: close\r\n\r\n".utf8)
            let requestSeq = c.sndNxt
            let requestEnd = requestSeq &+ UInt32(request.count)
            try c.sendData(request)
            var lastSend = monotonicSeconds()
            var parsed: (status: Int, body: [UInt8])?
            while monotonicSeconds() < deadline, c.rstAt == nil {
                parsed = LegitClient.parseResponse(c.received, complete: c.finAt != nil)
                if parsed != nil || c.finAt != nil { break }
                if rawSeqLT(c.sndUna, requestEnd), monotonicSeconds() - lastSend > 1 {
                    try c.sendData(request, seq: requestSeq)  // retransmission
                    lastSend = monotonicSeconds()
                }
                try link.pump(until: min(deadline, monotonicSeconds() + 0.05)) {
                    c.rstAt != nil || c.finAt != nil || LegitClient.parseResponse(c.received, complete: false) != nil
                }
            }
            if let parsed {
                let result = HTTPGetResult(status: parsed.status, body: parsed.body, seconds: monotonicSeconds() - start,
                                           attempts: attempts)
                // Close politely (the server closes first on `Connection: close`): ACK its FIN (autoAck),
                // send ours, and give both half a second to cross so no connection lingers in the guest.
                try link.pump(until: monotonicSeconds() + 0.5) { c.finAt != nil || c.rstAt != nil }
                if c.rstAt == nil {
                    let finEnd = c.sndNxt &+ 1
                    try c.sendFIN()
                    try link.pump(until: monotonicSeconds() + 0.5) { !rawSeqLT(c.sndUna, finEnd) || c.rstAt != nil }
                }
                return result
            }
            if c.rstAt != nil {
                reasons.append("attempt \(attempts): reset after \(c.received.count) response bytes")
                try? c.sendRST()
                continue
            }
            reasons.append("attempt \(attempts): incomplete response (\(c.received.count) bytes, FIN \(c.finAt != nil))")
            try? c.sendRST()
            break
        }
        lastFailure = "GET \(path) failed within \(timeout) s: " + reasons.joined(separator: "; ")
        return nil
    }

    /// Status and body once the whole response (by Content-Length, or up to the FIN) is there.
    static func parseResponse(_ bytes: [UInt8], complete: Bool) -> (status: Int, body: [UInt8])? {
        let crlfcrlf: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 12, let end = (0...(bytes.count - 4)).first(where: { Array(bytes[$0..<($0 + 4)]) == crlfcrlf })
        else { return nil }
        let head = String(decoding: bytes[0..<end], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else { return nil }
        let body = Array(bytes[(end + 4)...])
        if let cl = lines.dropFirst().first(where: { $0.lowercased().hasPrefix("content-length:") }),
           let length = Int(cl.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) {
            return body.count >= length ? (status, Array(body.prefix(length))) : nil
        }
        return complete ? (status, body) : nil
    }

    /// `ringside_heap_used_bytes` from GET /metrics.
    func heapUsed(timeout: Double = 5) throws -> UInt64? {
        try metrics(timeout: timeout).flatMap { LegitClient.metric("ringside_heap_used_bytes", in: $0) }
    }

    /// The text of GET /metrics.
    func metrics(timeout: Double = 5) throws -> String? {
        guard let r = try httpGet("/metrics", timeout: timeout) else { return nil }
        guard r.status == 200 else {
            lastFailure = "GET /metrics answered \(r.status)"
            return nil
        }
        return r.bodyText
    }

    static func metric(_ name: String, in text: String) -> UInt64? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return UInt64(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}
