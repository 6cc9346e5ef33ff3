import XCTest
@testable import HTTP
import RingsideTestSupport

func parseAll(_ text: String) -> HTTPParseResult {
    var parser = HTTPRequestParser()
    return Array(text.utf8).withUnsafeBytes { parser.parse($0) }
}

func status(of result: HTTPParseResult) -> Int? {
    if case .failure(let status) = result { return status.code }
    return nil
}

final class HTTPParserTests: XCTestCase {
    func testSimpleGet() throws {
        guard case .request(let request, let consumed) = parseAll("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n") else {
            XCTFail("not parsed")
            return
        }
        XCTAssertEqual(request.method, .get)
        XCTAssertEqual(request.pathString, "/metrics")
        XCTAssertTrue(request.pathIs("/metrics"))
        XCTAssertTrue(request.keepAlive)
        XCTAssertEqual(request.minorVersion, 1)
        XCTAssertEqual(consumed, 38)
    }

    func testKeepAliveRules() {
        func keepAlive(_ text: String) -> Bool? {
            if case .request(let request, _) = parseAll(text) { return request.keepAlive }
            return nil
        }
        XCTAssertEqual(keepAlive("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), false)
        XCTAssertEqual(keepAlive("GET / HTTP/1.1\r\nHost: a\r\nconnection: Upgrade, CLOSE\r\n\r\n"), false)
        XCTAssertEqual(keepAlive("GET / HTTP/1.0\r\n\r\n"), false)
        XCTAssertEqual(keepAlive("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), true)
        XCTAssertEqual(keepAlive("GET / HTTP/1.1\nHost: a\n\n"), true)  // bare LF
        XCTAssertEqual(keepAlive("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), true)  // leading empty lines
    }

    func testBodyByContentLength() {
        guard case .request(let request, let consumed) = parseAll("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET") else {
            XCTFail("not parsed")
            return
        }
        XCTAssertEqual(request.method, .post)
        XCTAssertEqual(request.body, Array("hello".utf8))
        XCTAssertEqual(consumed, 53)
        if case .incomplete = parseAll("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel") {} else {
            XCTFail("should wait for the body")
        }
    }

    func testMalformedRequestsAre400() {
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
            XCTAssertEqual(status(of: parseAll(text)), 400, "\(text.debugDescription)")
        }
        XCTAssertEqual(status(of: parseAll("GET / HTTP/2.0\r\nHost: a\r\n\r\n")), 505)
        XCTAssertEqual(status(of: parseAll("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")), 501)
    }

    func testLimits() {
        XCTAssertEqual(status(of: parseAll("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 8193\r\n\r\n")), 413)
        XCTAssertEqual(status(of: parseAll("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n")), 413)
        if case .incomplete = parseAll("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 8192\r\n\r\n") {} else {
            XCTFail("8 KiB is allowed")
        }
        let longHeader = "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "a", count: 9000) + "\r\n\r\n"
        XCTAssertEqual(status(of: parseAll(longHeader)), 431)
        // No end of header in sight after 8 KiB: refused without waiting for more.
        XCTAssertEqual(status(of: parseAll("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000))), 431)
        let manyFields = "GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "X: y\r\n", count: 70) + "\r\n"
        XCTAssertEqual(status(of: parseAll(manyFields)), 431)
        // Leading empty lines count against the header limit: CRLFs alone cannot grow the buffer.
        XCTAssertEqual(status(of: parseAll(String(repeating: "\r\n", count: 4097))), 431)
        XCTAssertEqual(status(of: parseAll(String(repeating: "\r\n", count: 4000) + "GET / HTTP/1.1\r\nHost: a\r\nX: "
            + String(repeating: "a", count: 300) + "\r\n\r\n")), 431)
        if case .request = parseAll("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") {} else {
            XCTFail("a few empty lines before a request are allowed")
        }
    }

    func testByteByByteAndPipelined() {
        let text = Array("GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyzHEAD /c HTTP/1.0\r\n\r\n".utf8)
        var parser = HTTPRequestParser()
        var buffer: [UInt8] = []
        var paths: [String] = []
        for byte in text {
            buffer.append(byte)
            while true {
                let result = buffer.withUnsafeBytes { parser.parse($0) }
                guard case .request(let request, let consumed) = result else {
                    if case .failure = result { XCTFail("failed") }
                    break
                }
                paths.append(request.pathString)
                buffer.removeFirst(consumed)
                parser.reset()
            }
        }
        XCTAssertEqual(paths, ["/", "/b", "/c"])
        XCTAssertTrue(buffer.isEmpty)
    }

    func testFuzzNeverTraps() {
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
                XCTAssertTrue(a == b && a <= input.count)
                outcomes[1] += 1
            case (.failure(let a), .failure(let b)):
                XCTAssertEqual(a, b)
                outcomes[2] += 1
            default: XCTFail("whole and split parses disagree for \(input)")
            }
        }
        XCTAssertTrue(outcomes.allSatisfy { $0 > 0 })
    }
}
