import XCTest
@testable import HTTP

final class HTTPResponseTests: XCTestCase {
    func testResponseSerialization() {
        var response = HTTPResponse(status: .ok, contentType: "text/plain", body: Array("hi".utf8))
        response.extraHeaders = Array("Allow: GET\r\n".utf8)
        let text = String(decoding: response.serialize(keepAlive: true), as: UTF8.self)
        XCTAssertEqual(text, "HTTP/1.1 200 OK\r\nServer: ringside\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\nAllow: GET\r\n\r\nhi")
        let head = String(decoding: response.serialize(keepAlive: false, headOnly: true), as: UTF8.self)
        XCTAssertTrue(head.hasSuffix("Content-Length: 2\r\nConnection: close\r\nAllow: GET\r\n\r\n"))
    }

    func testPrometheusText() {
        var writer = HTTPMetricsWriter()
        writer.family("ringside_queue_packets_total", "counter", "Buffers completed by the device.")
        writer.sample("ringside_queue_packets_total", label: "queue", "net0.rx", 12)
        writer.sample("odd", label: "queue", "a\"b\\c\nd", 0)
        let text = String(decoding: writer.text.bytes, as: UTF8.self)
        XCTAssertTrue(text.contains("# HELP ringside_queue_packets_total "))
        XCTAssertTrue(text.contains("# TYPE ringside_queue_packets_total counter\n"))
        XCTAssertTrue(text.contains("ringside_queue_packets_total{queue=\"net0.rx\"} 12\n"))
        XCTAssertTrue(text.contains("odd{queue=\"a\\\"b\\\\c\\nd\"} 0\n"))
    }
}
