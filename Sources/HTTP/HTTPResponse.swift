// HTTP/1.1 responses: a status, a content type, a body, serialized with Content-Length and
// the Connection header the keep-alive decision needs (RFC 9112 §6, §9.6).

public struct HTTPStatus: Equatable, Sendable {
    public var code: Int
    public var reason: StaticString

    public init(code: Int, reason: StaticString) {
        self.code = code
        self.reason = reason
    }

    public static func == (lhs: HTTPStatus, rhs: HTTPStatus) -> Bool { lhs.code == rhs.code }

    public static let ok = HTTPStatus(code: 200, reason: "OK")
    public static let badRequest = HTTPStatus(code: 400, reason: "Bad Request")
    public static let notFound = HTTPStatus(code: 404, reason: "Not Found")
    public static let methodNotAllowed = HTTPStatus(code: 405, reason: "Method Not Allowed")
    public static let payloadTooLarge = HTTPStatus(code: 413, reason: "Content Too Large")
    public static let headerFieldsTooLarge = HTTPStatus(code: 431, reason: "Request Header Fields Too Large")
    public static let internalServerError = HTTPStatus(code: 500, reason: "Internal Server Error")
    public static let serviceUnavailable = HTTPStatus(code: 503, reason: "Service Unavailable")
    public static let notImplemented = HTTPStatus(code: 501, reason: "Not Implemented")
    public static let versionNotSupported = HTTPStatus(code: 505, reason: "HTTP Version Not Supported")
}

public struct HTTPResponse {
    public var status: HTTPStatus
    public var contentType: StaticString
    public var body: [UInt8]
    /// Extra header lines, each ending in CRLF ("Allow: GET, HEAD\r\n").
    public var extraHeaders: [UInt8] = []

    public init(status: HTTPStatus, contentType: StaticString = "text/plain; charset=utf-8", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    /// A short plain-text error page ("404 Not Found\n").
    public static func error(_ status: HTTPStatus) -> HTTPResponse {
        var text = HTTPText()
        text.append(UInt64(status.code))
        text.append(" ")
        text.append(status.reason)
        text.append("\n")
        return HTTPResponse(status: status, body: text.bytes)
    }

    /// The bytes on the wire. `headOnly` leaves the body out but keeps its Content-Length
    /// (RFC 9110 §9.3.2).
    public func serialize(keepAlive: Bool, headOnly: Bool = false) -> [UInt8] {
        var text = HTTPText()
        text.bytes.reserveCapacity(160 + (headOnly ? 0 : body.count))
        text.append("HTTP/1.1 ")
        text.append(UInt64(status.code))
        text.append(" ")
        text.append(status.reason)
        text.append("\r\nServer: ringside\r\nContent-Type: ")
        text.append(contentType)
        text.append("\r\nContent-Length: ")
        text.append(UInt64(body.count))
        text.append(keepAlive ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n")
        text.bytes.append(contentsOf: extraHeaders)
        text.append("\r\n")
        if !headOnly { text.bytes.append(contentsOf: body) }
        return text.bytes
    }
}

/// UTF-8 text built as bytes: decimal numbers without `String(_:radix:)`, HTML and
/// Prometheus label escaping.
public struct HTTPText {
    public var bytes: [UInt8] = []

    public init() {}

    public mutating func append(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    public mutating func append(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    public mutating func append(_ value: UInt64) {
        if value == 0 {
            bytes.append(UInt8(ascii: "0"))
            return
        }
        var digits: [UInt8] = []
        var remaining = value
        while remaining > 0 {
            digits.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: remaining % 10))
            remaining /= 10
        }
        bytes.append(contentsOf: digits.reversed())
    }

    public mutating func append(_ value: Int) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        append(value.magnitude.toUInt64)
    }

    /// `text` with &, <, >, " and ' escaped for HTML content and attribute values.
    public mutating func appendHTMLEscaped(_ text: String) {
        appendEscaped(text, HTTPText.htmlEscapes)
    }

    /// A Prometheus label value: backslash, double quote and line feed escaped.
    public mutating func appendLabelEscaped(_ text: String) {
        appendEscaped(text, HTTPText.labelEscapes)
    }

    static let htmlEscapes: [(byte: UInt8, replacement: StaticString)] = [
        (UInt8(ascii: "&"), "&amp;"), (UInt8(ascii: "<"), "&lt;"), (UInt8(ascii: ">"), "&gt;"),
        (UInt8(ascii: "\""), "&quot;"), (UInt8(ascii: "'"), "&#39;"),
    ]
    static let labelEscapes: [(byte: UInt8, replacement: StaticString)] = [
        (UInt8(ascii: "\\"), "\\\\"), (UInt8(ascii: "\""), "\\\""), (UInt8(ascii: "\n"), "\\n"),
    ]

    /// `text` with each byte that has an entry in `escapes` replaced by its replacement.
    mutating func appendEscaped(_ text: String, _ escapes: [(byte: UInt8, replacement: StaticString)]) {
        for byte in text.utf8 {
            if let escape = escapes.first(where: { $0.byte == byte }) {
                append(escape.replacement)
            } else {
                bytes.append(byte)
            }
        }
    }
}

extension UInt {
    var toUInt64: UInt64 { UInt64(self) }
}
