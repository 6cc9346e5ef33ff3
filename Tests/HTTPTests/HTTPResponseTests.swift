import Testing
@testable import HTTP

@Suite struct HTTPResponseTests {
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
        writer.family("ringside_queue_packets_total", "counter", "Buffers completed by the device.")
        writer.sample("ringside_queue_packets_total", label: "queue", "net0.rx", 12)
        writer.sample("odd", label: "queue", "a\"b\\c\nd", 0)
        let text = String(decoding: writer.text.bytes, as: UTF8.self)
        #expect(text.contains("# HELP ringside_queue_packets_total "))
        #expect(text.contains("# TYPE ringside_queue_packets_total counter\n"))
        #expect(text.contains("ringside_queue_packets_total{queue=\"net0.rx\"} 12\n"))
        #expect(text.contains("odd{queue=\"a\\\"b\\\\c\\nd\"} 0\n"))
    }
}
