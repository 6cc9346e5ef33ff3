import XCTest
@testable import NetStack
@testable import HTTP
import NetStackTestSupport

/// The server end to end over the TCP layer, driven by hand-built segments.
final class HTTPServerTests: XCTestCase {
    func serve() -> (TCPHarness, HTTPServer) {
        let h = TCPHarness(listen: false)
        let server = HTTPServer(tcp: h.tcp, port: 80)!
        server.route("/") { _ in HTTPResponse(status: .ok, contentType: "text/html", body: Array("<p>hi</p>".utf8)) }
        return (h, server)
    }

    /// Opens a connection and sends `request` bytes; returns the response bytes and the
    /// segments (for FIN checks).
    func exchange(_ h: TCPHarness, port: UInt16 = 40000, _ requests: [String]) -> ([UInt8], [SentSegment]) {
        let synAck = h.send(Ref.tcp(sourcePort: port, seq: 0, ack: 0, flags: TCPFlag.syn))
        let ourISN = synAck.first?.seq ?? 0
        h.send(Ref.tcp(sourcePort: port, seq: 1, ack: ourISN &+ 1, flags: TCPFlag.ack))
        var seq: UInt32 = 1
        var bytes: [UInt8] = []
        var segments: [SentSegment] = []
        for request in requests {
            let payload = Array(request.utf8)
            let out = h.send(Ref.tcp(sourcePort: port, seq: seq, ack: ourISN &+ 1, flags: TCPFlag.ack, payload: payload))
            seq &+= UInt32(payload.count)
            segments += out
            for segment in out { bytes += segment.payload }
        }
        return (bytes, segments)
    }

    func testRoutesAndErrors() {
        let (h, server) = serve()
        let (bytes, segments) = exchange(h, [
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /missing HTTP/1.1\r\nHost: a\r\n\r\nDELETE / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ])
        let text = String(decoding: bytes, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        XCTAssertTrue(text.contains("HTTP/1.1 404 Not Found\r\n"))
        XCTAssertTrue(text.contains("HTTP/1.1 405 Method Not Allowed\r\n"))
        XCTAssertTrue(text.contains("Allow: GET, HEAD\r\n"))
        XCTAssertTrue(text.hasSuffix("Connection: close\r\n\r\n<p>hi</p>"))
        XCTAssertEqual(segments.last?.fin, true)
        XCTAssertEqual(server.requestsTotal, 4)
        XCTAssertTrue(server.responses2xx == 2 && server.responses4xx == 2)
    }

    func testMalformedGets400AndClose() {
        let (h, _) = serve()
        let (bytes, segments) = exchange(h, ["\u{0}\u{1}garbage\r\n\r\n"])
        XCTAssertTrue(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        XCTAssertEqual(segments.last?.fin, true)
    }

    func testOversizedBodyGets413AndLingers() throws {
        let (h, _) = serve()
        let (bytes, segments) = exchange(h, ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 204800\r\n\r\n"])
        XCTAssertTrue(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 413 "))
        XCTAssertEqual(segments.last?.fin, true)
        // The body keeps coming: acknowledged and thrown away, the window stays open.
        let connection = try XCTUnwrap(h.tcp.connections.first)
        let more = h.send(Ref.tcp(sourcePort: 40000, seq: connection.rcvNxt, ack: connection.sndNxt, flags: TCPFlag.ack,
                                  payload: [UInt8](repeating: 0x78, count: 1460)))
        XCTAssertEqual(more.last?.window, 8192)
    }

    func testPeerCloseEndsTheSession() {
        let (h, server) = serve()
        _ = exchange(h, ["GET / HTTP/1.1\r\nHost: a\r\n\r\n"])
        XCTAssertEqual(server.openConnections, 1)
        let connection = h.tcp.connections[0]
        let out = h.send(Ref.tcp(sourcePort: 40000, seq: connection.rcvNxt, ack: connection.sndNxt,
                                 flags: TCPFlag.ack | TCPFlag.fin))
        XCTAssertEqual(out.last?.fin, true)
        h.send(Ref.tcp(sourcePort: 40000, seq: connection.rcvNxt, ack: connection.sndNxt, flags: TCPFlag.ack))
        XCTAssertTrue(h.tcp.connections.isEmpty)
        XCTAssertEqual(server.openConnections, 0)
    }

    func testLargeResponseWaitsForSendSpace() {
        let h = TCPHarness(listen: false)
        let server = HTTPServer(tcp: h.tcp, port: 80)!
        server.route("/big") { _ in HTTPResponse(status: .ok, body: [UInt8](repeating: 0x41, count: 40_000)) }
        let synAck = h.send(Ref.tcp(sourcePort: 1, seq: 0, ack: 0, flags: TCPFlag.syn))
        let isn = synAck[0].seq
        h.send(Ref.tcp(sourcePort: 1, seq: 1, ack: isn &+ 1, flags: TCPFlag.ack))
        let request = Array("GET /big HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        var out = h.send(Ref.tcp(sourcePort: 1, seq: 1, ack: isn &+ 1, flags: TCPFlag.ack, payload: request))
        var received = 0
        var rounds = 0
        while !out.isEmpty && rounds < 100 {
            received += out.reduce(0) { $0 + $1.payload.count }
            let ackTo = out.map { $0.seq &+ UInt32($0.payload.count) }.max()!
            out = h.send(Ref.tcp(sourcePort: 1, seq: 1 + UInt32(request.count), ack: ackTo, flags: TCPFlag.ack))
            rounds += 1
        }
        XCTAssertTrue(received > 40_000 && received < 40_200)
    }

    /// Slowloris: headers a byte at a time, or nothing at all, are cut off by the request
    /// deadline with a reset; a connection that sends complete requests is not.
    func testRequestsMustArriveWithinTheDeadline() throws {
        let (h, server) = serve()
        // A partial request, trickled: reset 10 s after its first byte.
        let synAck = h.send(Ref.tcp(sourcePort: 41000, seq: 0, ack: 0, flags: TCPFlag.syn))
        let isn = synAck[0].seq
        h.send(Ref.tcp(sourcePort: 41000, seq: 1, ack: isn &+ 1, flags: TCPFlag.ack))
        let start = h.now
        var seq: UInt32 = 1
        for (index, byte) in "GET / HTTP/1.1\r\nHost: a\r\nX-a: b\r\n".utf8.enumerated() where index < 9 {
            h.send(Ref.tcp(sourcePort: 41000, seq: seq, ack: isn &+ 1, flags: TCPFlag.ack, payload: [byte]),
                   at: start + UInt64(index) * 1_000)
            seq &+= 1
        }
        XCTAssertTrue(h.poll(at: start + HTTPServer.requestTimeoutMs - 1).isEmpty)
        let cut = h.poll(at: start + HTTPServer.requestTimeoutMs)
        XCTAssertTrue(cut.count == 1 && cut.first?.rst == true)
        XCTAssertEqual(server.requestTimeouts, 1)
        XCTAssertEqual(server.openConnections, 0)
        XCTAssertTrue(h.tcp.connections.isEmpty)
        // Silence after the handshake: the same.
        let silent = h.send(Ref.tcp(sourcePort: 41001, seq: 0, ack: 0, flags: TCPFlag.syn))
        h.send(Ref.tcp(sourcePort: 41001, seq: 1, ack: silent[0].seq &+ 1, flags: TCPFlag.ack))
        XCTAssertEqual(h.poll(at: h.now + HTTPServer.requestTimeoutMs).first?.rst, true)
        XCTAssertEqual(server.requestTimeouts, 2)
        // Requests that complete in time, 9 s apart, keep the connection; between them it
        // is idle (evictable) and on the 30 s idle timer, not the request deadline.
        let (response, _) = exchange(h, port: 41002, ["GET / HTTP/1.1\r\nHost: a\r\n\r\n"])
        XCTAssertTrue(response.starts(with: Array("HTTP/1.1 200".utf8)))
        let connection = try XCTUnwrap(h.tcp.connections.first { $0.remotePort == 41002 })
        XCTAssertTrue(connection.isIdle && connection.deadlineMs == nil)
        h.poll(at: h.now + 20_000)
        XCTAssertEqual(connection.state, .established)
        XCTAssertEqual(h.stack.memory.reservedBytes, TCPLayer.connectionMemoryBytes + HTTPServer.sessionMemoryBytes)
        h.poll(at: h.now + HTTPServer.idleTimeoutMs)
        XCTAssertEqual(connection.state, .closed)
        XCTAssertEqual(server.requestTimeouts, 2)
        XCTAssertEqual(h.stack.memory.reservedBytes, 0)
    }

    /// The memory budget: a connection whose session memory does not fit is reset at
    /// accept; a response that does not fit becomes a 503.
    func testMemoryBudgetRefusesConnectionsAndResponses() {
        let (h, server) = serve()
        server.route("/big") { _ in HTTPResponse(status: .ok, body: [UInt8](repeating: 0x41, count: 20_000)) }
        h.stack.memory.limitBytes = 2 * (TCPLayer.connectionMemoryBytes + HTTPServer.sessionMemoryBytes) + 1_000
        let (ok, _) = exchange(h, port: 42000, ["GET / HTTP/1.1\r\nHost: a\r\n\r\n"])
        XCTAssertTrue(ok.starts(with: Array("HTTP/1.1 200".utf8)))
        let (big, segments) = exchange(h, port: 42001, ["GET /big HTTP/1.1\r\nHost: a\r\n\r\n"])
        XCTAssertTrue(big.starts(with: Array("HTTP/1.1 503".utf8)))
        XCTAssertTrue(segments.contains { $0.fin })
        XCTAssertEqual(server.responsesRefusedForMemory, 1)
        // Room for TCP's part but not the session's: reset on accept.
        h.stack.memory.limitBytes = h.stack.memory.reservedBytes + TCPLayer.connectionMemoryBytes
        let synAck = h.send(Ref.tcp(sourcePort: 42002, seq: 0, ack: 0, flags: TCPFlag.syn))
        let answer = h.send(Ref.tcp(sourcePort: 42002, seq: 1, ack: synAck[0].seq &+ 1, flags: TCPFlag.ack))
        XCTAssertTrue(answer.contains { $0.rst })
        XCTAssertEqual(server.refusedForMemory, 1)
    }
}
