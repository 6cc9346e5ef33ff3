import Testing
@testable import NetStack

func parseAll(_ text: String) -> HTTPParseResult {
    var parser = HTTPRequestParser()
    return Array(text.utf8).withUnsafeBytes { parser.parse($0) }
}

func status(of result: HTTPParseResult) -> Int? {
    if case .failure(let status) = result { return status.code }
    return nil
}

@Suite struct HTTPParserTests {
    @Test func simpleGet() throws {
        guard case .request(let request, let consumed) = parseAll("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n") else {
            Issue.record("not parsed")
            return
        }
        #expect(request.method == .get)
        #expect(request.pathString == "/metrics")
        #expect(request.pathIs("/metrics"))
        #expect(request.keepAlive)
        #expect(request.minorVersion == 1)
        #expect(consumed == 38)
    }

    @Test func keepAliveRules() {
        func keepAlive(_ text: String) -> Bool? {
            if case .request(let request, _) = parseAll(text) { return request.keepAlive }
            return nil
        }
        #expect(keepAlive("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n") == false)
        #expect(keepAlive("GET / HTTP/1.1\r\nHost: a\r\nconnection: Upgrade, CLOSE\r\n\r\n") == false)
        #expect(keepAlive("GET / HTTP/1.0\r\n\r\n") == false)
        #expect(keepAlive("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == true)
        #expect(keepAlive("GET / HTTP/1.1\nHost: a\n\n") == true)  // bare LF
        #expect(keepAlive("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") == true)  // leading empty lines
    }

    @Test func bodyByContentLength() {
        guard case .request(let request, let consumed) = parseAll("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET") else {
            Issue.record("not parsed")
            return
        }
        #expect(request.method == .post)
        #expect(request.body == Array("hello".utf8))
        #expect(consumed == 53)
        if case .incomplete = parseAll("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel") {} else {
            Issue.record("should wait for the body")
        }
    }

    @Test func malformedRequestsAre400() {
        let bad = [
            "GET\r\n\r\n", "GET / \r\nHost: a\r\n\r\n", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\n\r\n",  // no Host
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", "GET / HTTP/1.1\r\nNoColon\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\u{1}b\r\n\r\n", "GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTQ/1.1\r\nHost: a\r\n\r\n",
        ]
        for text in bad {
            #expect(status(of: parseAll(text)) == 400, "\(text.debugDescription)")
        }
        #expect(status(of: parseAll("GET / HTTP/2.0\r\nHost: a\r\n\r\n")) == 505)
        #expect(status(of: parseAll("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")) == 501)
    }

    @Test func limits() {
        #expect(status(of: parseAll("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 8193\r\n\r\n")) == 413)
        #expect(status(of: parseAll("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n")) == 413)
        if case .incomplete = parseAll("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 8192\r\n\r\n") {} else {
            Issue.record("8 KiB is allowed")
        }
        let longHeader = "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "a", count: 9000) + "\r\n\r\n"
        #expect(status(of: parseAll(longHeader)) == 431)
        // No end of header in sight after 8 KiB: refused without waiting for more.
        #expect(status(of: parseAll("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000))) == 431)
        let manyFields = "GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "X: y\r\n", count: 70) + "\r\n"
        #expect(status(of: parseAll(manyFields)) == 431)
        // Leading empty lines count against the header limit: CRLFs alone cannot grow the buffer.
        #expect(status(of: parseAll(String(repeating: "\r\n", count: 4097))) == 431)
        #expect(status(of: parseAll(String(repeating: "\r\n", count: 4000) + "GET / HTTP/1.1\r\nHost: a\r\nX: "
            + String(repeating: "a", count: 300) + "\r\n\r\n")) == 431)
        if case .request = parseAll("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") {} else {
            Issue.record("a few empty lines before a request are allowed")
        }
    }

    @Test func byteByByteAndPipelined() {
        let text = Array("GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyzHEAD /c HTTP/1.0\r\n\r\n".utf8)
        var parser = HTTPRequestParser()
        var buffer: [UInt8] = []
        var paths: [String] = []
        for byte in text {
            buffer.append(byte)
            while true {
                let result = buffer.withUnsafeBytes { parser.parse($0) }
                guard case .request(let request, let consumed) = result else {
                    if case .failure = result { Issue.record("failed") }
                    break
                }
                paths.append(request.pathString)
                buffer.removeFirst(consumed)
                parser.reset()
            }
        }
        #expect(paths == ["/", "/b", "/c"])
        #expect(buffer.isEmpty)
    }

    @Test func fuzzNeverTraps() {
        var rng = SplitMix64(seed: 0x4854_5450)
        let seeds = [Array("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody".utf8),
                     Array("POST /metrics HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n".utf8)]
        var outcomes = [0, 0, 0]
        for _ in 0..<20_000 {
            var input = seeds[Int(rng.next() % 2)]
            for _ in 0..<Int(rng.next() % 6) {
                let position = Int(rng.next() % UInt64(input.count + 1))
                switch rng.next() % 4 {
                case 0: if position < input.count { input[position] = UInt8(truncatingIfNeeded: rng.next()) }
                case 1: input.insert(UInt8(truncatingIfNeeded: rng.next()), at: position)
                case 2: if position < input.count { input.remove(at: position) }
                default: input.insert(contentsOf: [13, 10], at: position)
                }
            }
            if rng.next() % 10 == 0 { input = (0..<Int(rng.next() % 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            // Whole, and split at a random point (incremental state must agree).
            var parser = HTTPRequestParser()
            let whole = input.withUnsafeBytes { parser.parse($0) }
            var split = HTTPRequestParser()
            let cut = Int(rng.next() % UInt64(input.count + 1))
            _ = Array(input[0..<cut]).withUnsafeBytes { split.parse($0) }
            let later = input.withUnsafeBytes { split.parse($0) }
            switch (whole, later) {
            case (.incomplete, .incomplete): outcomes[0] += 1
            case (.request(_, let a), .request(_, let b)):
                #expect(a == b && a <= input.count)
                outcomes[1] += 1
            case (.failure(let a), .failure(let b)):
                #expect(a == b)
                outcomes[2] += 1
            default: Issue.record("whole and split parses disagree for \(input)")
            }
        }
        #expect(outcomes.allSatisfy { $0 > 0 })
    }

    @Test func responseSerialization() {
        var response = HTTPResponse(status: .ok, contentType: "text/plain", body: Array("hi".utf8))
        response.extraHeaders = Array("Allow: GET\r\n".utf8)
        let text = String(decoding: response.serialize(keepAlive: true), as: UTF8.self)
        #expect(text == "HTTP/1.1 200 OK\r\nServer: ringside\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\nAllow: GET\r\n\r\nhi")
        let head = String(decoding: response.serialize(keepAlive: false, headOnly: true), as: UTF8.self)
        #expect(head.hasSuffix("Content-Length: 2\r\nConnection: close\r\nAllow: GET\r\n\r\n"))
    }

    @Test func prometheusText() {
        var writer = HTTPMetricsWriter()
        writer.queues([HTTPQueueStatus(name: "net0.rx", size: 256, availIdx: 300, usedIdx: 44, lastUsedIdx: 44,
                                       freeDescriptors: 0, packets: 12, bytes: 900, kicks: 1, interrupts: 3, drops: 0)])
        writer.sample("odd", label: "queue", "a\"b\\c\nd", 0)
        let text = String(decoding: writer.text.bytes, as: UTF8.self)
        #expect(text.contains("# HELP ringside_queue_packets_total "))
        #expect(text.contains("# TYPE ringside_queue_packets_total counter\n"))
        #expect(text.contains("ringside_queue_packets_total{queue=\"net0.rx\"} 12\n"))
        #expect(text.contains("odd{queue=\"a\\\"b\\\\c\\nd\"} 0\n"))
    }
}

/// The server end to end over the TCP layer, driven by hand-built segments.
@Suite struct HTTPServerTests {
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

    @Test func routesAndErrors() {
        let (h, server) = serve()
        let (bytes, segments) = exchange(h, [
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /missing HTTP/1.1\r\nHost: a\r\n\r\nDELETE / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ])
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.contains("HTTP/1.1 404 Not Found\r\n"))
        #expect(text.contains("HTTP/1.1 405 Method Not Allowed\r\n"))
        #expect(text.contains("Allow: GET, HEAD\r\n"))
        #expect(text.hasSuffix("Connection: close\r\n\r\n<p>hi</p>"))
        #expect(segments.last?.fin == true)
        #expect(server.requestsTotal == 4)
        #expect(server.responses2xx == 2 && server.responses4xx == 2)
    }

    @Test func malformedGets400AndClose() {
        let (h, _) = serve()
        let (bytes, segments) = exchange(h, ["\u{0}\u{1}garbage\r\n\r\n"])
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(segments.last?.fin == true)
    }

    @Test func oversizedBodyGets413AndLingers() throws {
        let (h, _) = serve()
        let (bytes, segments) = exchange(h, ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 204800\r\n\r\n"])
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 413 "))
        #expect(segments.last?.fin == true)
        // The body keeps coming: acknowledged and thrown away, the window stays open.
        let connection = try #require(h.tcp.connections.first)
        let more = h.send(Ref.tcp(sourcePort: 40000, seq: connection.rcvNxt, ack: connection.sndNxt, flags: TCPFlag.ack,
                                  payload: [UInt8](repeating: 0x78, count: 1460)))
        #expect(more.last?.window == 8192)
    }

    @Test func peerCloseEndsTheSession() {
        let (h, server) = serve()
        _ = exchange(h, ["GET / HTTP/1.1\r\nHost: a\r\n\r\n"])
        #expect(server.openConnections == 1)
        let connection = h.tcp.connections[0]
        let out = h.send(Ref.tcp(sourcePort: 40000, seq: connection.rcvNxt, ack: connection.sndNxt,
                                 flags: TCPFlag.ack | TCPFlag.fin))
        #expect(out.last?.fin == true)
        h.send(Ref.tcp(sourcePort: 40000, seq: connection.rcvNxt, ack: connection.sndNxt, flags: TCPFlag.ack))
        #expect(h.tcp.connections.isEmpty)
        #expect(server.openConnections == 0)
    }

    @Test func largeResponseWaitsForSendSpace() {
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
        #expect(received > 40_000 && received < 40_200)
    }

    /// Slowloris: headers a byte at a time, or nothing at all, are cut off by the request
    /// deadline with a reset; a connection that sends complete requests is not.
    @Test func requestsMustArriveWithinTheDeadline() throws {
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
        #expect(h.poll(at: start + HTTPServer.requestTimeoutMs - 1).isEmpty)
        let cut = h.poll(at: start + HTTPServer.requestTimeoutMs)
        #expect(cut.count == 1 && cut.first?.rst == true)
        #expect(server.requestTimeouts == 1)
        #expect(server.openConnections == 0)
        #expect(h.tcp.connections.isEmpty)
        // Silence after the handshake: the same.
        let silent = h.send(Ref.tcp(sourcePort: 41001, seq: 0, ack: 0, flags: TCPFlag.syn))
        h.send(Ref.tcp(sourcePort: 41001, seq: 1, ack: silent[0].seq &+ 1, flags: TCPFlag.ack))
        #expect(h.poll(at: h.now + HTTPServer.requestTimeoutMs).first?.rst == true)
        #expect(server.requestTimeouts == 2)
        // Requests that complete in time, 9 s apart, keep the connection; between them it
        // is idle (evictable) and on the 30 s idle timer, not the request deadline.
        let (response, _) = exchange(h, port: 41002, ["GET / HTTP/1.1\r\nHost: a\r\n\r\n"])
        #expect(response.starts(with: Array("HTTP/1.1 200".utf8)))
        let connection = try #require(h.tcp.connections.first { $0.remotePort == 41002 })
        #expect(connection.isIdle && connection.deadlineMs == nil)
        h.poll(at: h.now + 20_000)
        #expect(connection.state == .established)
        #expect(h.stack.memory.reservedBytes == TCPLayer.connectionMemoryBytes + HTTPServer.sessionMemoryBytes)
        h.poll(at: h.now + HTTPServer.idleTimeoutMs)
        #expect(connection.state == .closed)
        #expect(server.requestTimeouts == 2)
        #expect(h.stack.memory.reservedBytes == 0)
    }

    /// The memory budget: a connection whose session memory does not fit is reset at
    /// accept; a response that does not fit becomes a 503.
    @Test func memoryBudgetRefusesConnectionsAndResponses() {
        let (h, server) = serve()
        server.route("/big") { _ in HTTPResponse(status: .ok, body: [UInt8](repeating: 0x41, count: 20_000)) }
        h.stack.memory.limitBytes = 2 * (TCPLayer.connectionMemoryBytes + HTTPServer.sessionMemoryBytes) + 1_000
        let (ok, _) = exchange(h, port: 42000, ["GET / HTTP/1.1\r\nHost: a\r\n\r\n"])
        #expect(ok.starts(with: Array("HTTP/1.1 200".utf8)))
        let (big, segments) = exchange(h, port: 42001, ["GET /big HTTP/1.1\r\nHost: a\r\n\r\n"])
        #expect(big.starts(with: Array("HTTP/1.1 503".utf8)))
        #expect(segments.contains { $0.fin })
        #expect(server.responsesRefusedForMemory == 1)
        // Room for TCP's part but not the session's: reset on accept.
        h.stack.memory.limitBytes = h.stack.memory.reservedBytes + TCPLayer.connectionMemoryBytes
        let synAck = h.send(Ref.tcp(sourcePort: 42002, seq: 0, ack: 0, flags: TCPFlag.syn))
        let answer = h.send(Ref.tcp(sourcePort: 42002, seq: 1, ack: synAck[0].seq &+ 1, flags: TCPFlag.ack))
        #expect(answer.contains { $0.rst })
        #expect(server.refusedForMemory == 1)
    }
}
