// An HTTP/1.1 request parser (RFC 9112) for a small server: incremental, bounded, and
// total — any byte sequence yields a request, "need more", or an error status; nothing
// traps and nothing is read outside the buffer.
//
// Limits: the request line and header fields together at most `maxHeaderBytes` (8 KiB,
// else 431), at most `maxHeaderCount` fields (else 431), a body of at most `maxBodyBytes`
// (8 KiB, else 413) announced by Content-Length. Transfer-Encoding (chunked bodies) is not
// implemented (501). What RFC 9112 calls malformed is 400: a bad request line, a field
// without a colon or with whitespace before it, obsolete line folding, control
// characters, a bad or conflicting Content-Length, and an HTTP/1.1 request without
// exactly one Host. A major version other than 1 is 505. Bare LF line ends are accepted
// (§2.2), and empty lines before a request are skipped — but they count against
// `maxHeaderBytes`, so a peer cannot make the buffer grow with CRLFs alone.

#if canImport(NetStack)
import NetStack  // SwiftPM; the kernel compiles HTTP and NetStack into one module (kernel/Makefile)
#endif

public enum HTTPMethod: Equatable, Sendable {
    case get, head, post, put, delete, options, patch, other
}

public struct HTTPRequest {
    public var method: HTTPMethod
    /// The request target as sent ("/metrics?x=1").
    public var target: [UInt8]
    /// The target up to any "?".
    public var path: [UInt8]
    /// 0 for HTTP/1.0, 1 for HTTP/1.1 (and later 1.x, handled as 1.1).
    public var minorVersion: Int
    /// Whether the connection stays open after the response (RFC 9112 §9.3).
    public var keepAlive: Bool
    public var body: [UInt8]

    public var pathString: String { String(decoding: path, as: UTF8.self) }

    /// Whether the path is exactly `text`.
    public func pathIs(_ text: StaticString) -> Bool {
        HTTPBytes.equal(path, text)
    }
}

public enum HTTPParseResult {
    /// More bytes are needed.
    case incomplete
    /// A whole request, which took `consumed` bytes from the front of the buffer.
    case request(HTTPRequest, consumed: Int)
    /// The request cannot be served; answer with this status and close.
    case failure(HTTPStatus)
}

public struct HTTPRequestParser {
    public static let maxHeaderBytes = 8 * 1024
    public static let maxHeaderCount = 64
    public static let maxBodyBytes = 8 * 1024

    /// Where the scan for the end of the header section resumes (always a line start),
    /// so a request arriving a byte at a time is not scanned again from the top.
    var scanOffset = 0
    /// The end of the header section once found (offset just past its empty line).
    var headerEnd: Int?

    public init() {}

    /// Forget progress: call after removing a request's bytes from the buffer.
    public mutating func reset() {
        scanOffset = 0
        headerEnd = nil
    }

    /// Parses the request at the start of `buffer` (which holds everything received and
    /// not yet consumed; it only ever grows between calls to `reset`).
    public mutating func parse(_ buffer: UnsafeRawBufferPointer) -> HTTPParseResult {
        // Empty lines before the request line are skipped (RFC 9112 §2.2).
        var start = 0
        while start < buffer.count, buffer[start] == HTTPBytes.cr || buffer[start] == HTTPBytes.lf { start += 1 }
        if scanOffset < start { scanOffset = start }
        if headerEnd == nil {
            var lineStart = scanOffset
            var index = scanOffset
            while index < buffer.count {
                if buffer[index] == HTTPBytes.lf {
                    var lineEnd = index
                    if lineEnd > lineStart, buffer[lineEnd - 1] == HTTPBytes.cr { lineEnd -= 1 }
                    if lineEnd == lineStart, lineStart > start {
                        headerEnd = index + 1
                        break
                    }
                    lineStart = index + 1
                }
                index += 1
            }
            if headerEnd == nil {
                scanOffset = lineStart
                return buffer.count > HTTPRequestParser.maxHeaderBytes ? .failure(.headerFieldsTooLarge) : .incomplete
            }
        }
        guard let headerEnd else { return .incomplete }
        guard headerEnd <= HTTPRequestParser.maxHeaderBytes else { return .failure(.headerFieldsTooLarge) }
        return parseHead(buffer, start: start, end: headerEnd)
    }

    func parseHead(_ buffer: UnsafeRawBufferPointer, start: Int, end: Int) -> HTTPParseResult {
        var lines = HTTPLineReader(buffer: buffer, position: start, end: end)
        guard let requestLine = lines.next() else { return .failure(.badRequest) }
        // request-line = method SP request-target SP HTTP-version
        var cursor = requestLine.lowerBound
        let methodStart = cursor
        while cursor < requestLine.upperBound, HTTPBytes.isTokenChar(buffer[cursor]) { cursor += 1 }
        guard cursor > methodStart, cursor < requestLine.upperBound, buffer[cursor] == HTTPBytes.space else {
            return .failure(.badRequest)
        }
        let method = HTTPBytes.method(buffer.netSlice(methodStart..<cursor))
        cursor += 1
        let targetStart = cursor
        while cursor < requestLine.upperBound, buffer[cursor] > 0x20, buffer[cursor] < 0x7F { cursor += 1 }
        guard cursor > targetStart, cursor < requestLine.upperBound, buffer[cursor] == HTTPBytes.space else {
            return .failure(.badRequest)
        }
        let target = Array(buffer.netSlice(targetStart..<cursor))
        // origin-form ("/path?query"), or "*" for OPTIONS.
        guard target[0] == UInt8(ascii: "/") || (target.count == 1 && target[0] == UInt8(ascii: "*")) else {
            return .failure(.badRequest)
        }
        cursor += 1
        let version = buffer.netSlice(cursor..<requestLine.upperBound)
        guard version.count == 8, HTTPBytes.hasPrefix(version, "HTTP/"), version[6] == UInt8(ascii: "."),
              HTTPBytes.isDigit(version[5]), HTTPBytes.isDigit(version[7]) else {
            return .failure(.badRequest)
        }
        guard version[5] == UInt8(ascii: "1") else { return .failure(.versionNotSupported) }
        let minor = version[7] == UInt8(ascii: "0") ? 0 : 1

        var contentLength: Int?
        var hostCount = 0
        var connectionClose = false
        var connectionKeepAlive = false
        var fieldCount = 0
        while let line = lines.next() {
            if line.isEmpty { break }
            fieldCount += 1
            guard fieldCount <= HTTPRequestParser.maxHeaderCount else { return .failure(.headerFieldsTooLarge) }
            // field-line = field-name ":" OWS field-value OWS; no folding (§5.2), no
            // whitespace before the colon (§5.1).
            var nameEnd = line.lowerBound
            while nameEnd < line.upperBound, HTTPBytes.isTokenChar(buffer[nameEnd]) { nameEnd += 1 }
            guard nameEnd > line.lowerBound, nameEnd < line.upperBound, buffer[nameEnd] == UInt8(ascii: ":") else {
                return .failure(.badRequest)
            }
            var valueStart = nameEnd + 1
            var valueEnd = line.upperBound
            for index in valueStart..<valueEnd {
                let byte = buffer[index]
                if byte < 0x20 && byte != HTTPBytes.tab || byte == 0x7F { return .failure(.badRequest) }
            }
            while valueStart < valueEnd, HTTPBytes.isWhitespace(buffer[valueStart]) { valueStart += 1 }
            while valueEnd > valueStart, HTTPBytes.isWhitespace(buffer[valueEnd - 1]) { valueEnd -= 1 }
            let name = buffer.netSlice(line.lowerBound..<nameEnd)
            let value = buffer.netSlice(valueStart..<valueEnd)
            if HTTPBytes.equalIgnoringCase(name, "content-length") {
                // Digits only; a list of equal values is allowed (§6.3), a conflict is not.
                guard let length = HTTPBytes.contentLength(value) else { return .failure(.badRequest) }
                if let previous = contentLength, previous != length { return .failure(.badRequest) }
                contentLength = length
            } else if HTTPBytes.equalIgnoringCase(name, "transfer-encoding") {
                return .failure(.notImplemented)
            } else if HTTPBytes.equalIgnoringCase(name, "host") {
                hostCount += 1
            } else if HTTPBytes.equalIgnoringCase(name, "connection") {
                HTTPBytes.forEachListItem(value) { item in
                    if HTTPBytes.equalIgnoringCase(item, "close") { connectionClose = true }
                    if HTTPBytes.equalIgnoringCase(item, "keep-alive") { connectionKeepAlive = true }
                }
            }
        }
        if minor == 1, hostCount != 1 { return .failure(.badRequest) }
        let bodyLength = contentLength ?? 0
        guard bodyLength <= HTTPRequestParser.maxBodyBytes else { return .failure(.payloadTooLarge) }
        guard buffer.count - end >= bodyLength else { return .incomplete }
        var path = target
        if let query = target.firstIndex(of: UInt8(ascii: "?")) { path = Array(target[0..<query]) }
        let keepAlive = minor == 1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
        let request = HTTPRequest(
            method: method, target: target, path: path, minorVersion: minor, keepAlive: keepAlive,
            body: Array(buffer.netSlice(end..<(end + bodyLength))))
        return .request(request, consumed: end + bodyLength)
    }
}

/// Lines of a header section: each without its LF and optional CR.
struct HTTPLineReader {
    let buffer: UnsafeRawBufferPointer
    var position: Int
    let end: Int

    mutating func next() -> Range<Int>? {
        guard position < end else { return nil }
        var index = position
        while index < end, buffer[index] != HTTPBytes.lf { index += 1 }
        var lineEnd = index
        if lineEnd > position, buffer[lineEnd - 1] == HTTPBytes.cr { lineEnd -= 1 }
        let line = position..<lineEnd
        position = index + 1
        return line
    }
}

/// Byte-level helpers: HTTP is ASCII on the wire, so none of this needs String.
enum HTTPBytes {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    static func isWhitespace(_ byte: UInt8) -> Bool { byte == space || byte == tab }

    /// tchar (RFC 9110 §5.6.2).
    static func isTokenChar(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), 0x30...0x39: true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): true
        default: false
        }
    }

    static func lower(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }

    static func equalIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
        guard bytes.count == text.utf8CodeUnitCount else { return false }
        let expected = text.utf8Start
        for index in 0..<bytes.count where lower(bytes[index]) != lower(expected[index]) { return false }
        return true
    }

    static func hasPrefix(_ bytes: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard bytes.count >= count else { return false }
        let expected = text.utf8Start
        for index in 0..<count where bytes[index] != expected[index] { return false }
        return true
    }

    static func equal(_ bytes: [UInt8], _ text: StaticString) -> Bool {
        guard bytes.count == text.utf8CodeUnitCount else { return false }
        let expected = text.utf8Start
        for index in 0..<bytes.count where bytes[index] != expected[index] { return false }
        return true
    }

    static func method(_ bytes: UnsafeRawBufferPointer) -> HTTPMethod {
        // Methods are case-sensitive (RFC 9110 §9.1).
        if bytes.count == 3, hasPrefix(bytes, "GET") { return .get }
        if bytes.count == 4, hasPrefix(bytes, "HEAD") { return .head }
        if bytes.count == 4, hasPrefix(bytes, "POST") { return .post }
        if bytes.count == 3, hasPrefix(bytes, "PUT") { return .put }
        if bytes.count == 6, hasPrefix(bytes, "DELETE") { return .delete }
        if bytes.count == 7, hasPrefix(bytes, "OPTIONS") { return .options }
        if bytes.count == 5, hasPrefix(bytes, "PATCH") { return .patch }
        return .other
    }

    /// A Content-Length value: 1*DIGIT, or a comma list of equal values. Large values
    /// saturate (they are refused as too large, not as malformed).
    static func contentLength(_ value: UnsafeRawBufferPointer) -> Int? {
        var result: Int?
        var valid = true
        forEachListItem(value) { item in
            guard valid, item.count > 0 else {
                valid = false
                return
            }
            var number = 0
            for byte in item {
                guard isDigit(byte) else {
                    valid = false
                    return
                }
                number = Swift.min(number * 10 + Int(byte - 0x30), 1 << 40)
            }
            if let result, result != number { valid = false }
            result = number
        }
        return valid ? result : nil
    }

    /// Calls `body` with each comma-separated element of a list, trimmed of whitespace.
    static func forEachListItem(_ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var itemStart = 0
        var index = 0
        while index <= value.count {
            if index == value.count || value[index] == UInt8(ascii: ",") {
                var lower = itemStart
                var upper = index
                while lower < upper, isWhitespace(value[lower]) { lower += 1 }
                while upper > lower, isWhitespace(value[upper - 1]) { upper -= 1 }
                body(value.netSlice(lower..<upper))
                itemStart = index + 1
            }
            index += 1
        }
    }
}
