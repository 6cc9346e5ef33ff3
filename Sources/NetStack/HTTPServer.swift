// An HTTP/1.1 server on a TCPLayer listener: routes a fixed set of paths to handlers,
// keeps connections alive (HTTP/1.1's default; `Connection: close` and HTTP/1.0 are
// honoured), answers pipelined requests in order, and never lets a client make it hold
// more than a bounded amount of memory.
//
// Per connection: at most `inboxLimit` (16 KiB + 1 KiB) of unparsed input — enough for
// the largest request the parser accepts (8 KiB of header, 8 KiB of body) — and one
// response at a time waiting for send space. Input is read only when the previous
// response has been handed to TCP in full, so a client that does not read its
// responses stalls on TCP's window, not on our memory. Errors the parser reports (400,
// 413, 431, 501, 505) are answered and the connection closed (lingering: further input is
// discarded until the peer closes).

public struct HTTPRoute {
    public var path: StaticString
    public var handler: (HTTPRequest) -> HTTPResponse

    public init(path: StaticString, handler: @escaping (HTTPRequest) -> HTTPResponse) {
        self.path = path
        self.handler = handler
    }
}

public final class HTTPServer {
    public static let inboxLimit = HTTPRequestParser.maxHeaderBytes + HTTPRequestParser.maxBodyBytes + 1024
    /// An idle keep-alive connection is closed (by TCP's idle timeout) after this long.
    public static let idleTimeoutMs: UInt64 = 30_000

    let tcp: TCPLayer
    public let port: UInt16
    var routes: [HTTPRoute] = []

    public private(set) var requestsTotal: UInt64 = 0
    public private(set) var responses2xx: UInt64 = 0
    public private(set) var responses4xx: UInt64 = 0
    public private(set) var responses5xx: UInt64 = 0
    public private(set) var openConnections: UInt64 = 0

    /// Listens on `port`; nil if the port is taken.
    public init?(tcp: TCPLayer, port: UInt16 = 80, backlog: Int = 64) {
        self.tcp = tcp
        self.port = port
        let listening = tcp.listen(port: port, backlog: backlog) { connection in
            self.accept(connection)
        }
        if !listening { return nil }
    }

    /// Serves `path` (exactly; the query string is ignored) with `handler` for GET and HEAD.
    public func route(_ path: StaticString, _ handler: @escaping (HTTPRequest) -> HTTPResponse) {
        routes.append(HTTPRoute(path: path, handler: handler))
    }

    func accept(_ connection: TCPConnection) {
        connection.idleTimeoutMs = HTTPServer.idleTimeoutMs
        let session = HTTPSession(server: self, connection: connection)
        openConnections &+= 1
        // The connection holds the session through these closures; the TCP layer drops
        // them when the connection ends, and with them the session.
        connection.onReadable = { _ in session.pump() }
        connection.onWritable = { _ in session.pump() }
        connection.onClosed = { _, _ in
            session.finished = true
            self.openConnections &-= 1
        }
        session.pump()
    }

    /// The response to a request the parser accepted.
    public func respond(to request: HTTPRequest) -> HTTPResponse {
        requestsTotal &+= 1
        var response: HTTPResponse
        if let route = routes.first(where: { request.pathIs($0.path) }) {
            if request.method == .get || request.method == .head {
                response = route.handler(request)
            } else {
                response = HTTPResponse.error(.methodNotAllowed)
                response.extraHeaders = HTTPServer.allowHeader
            }
        } else {
            response = HTTPResponse.error(.notFound)
        }
        count(response.status)
        return response
    }

    /// The response to a request the parser refused.
    func respond(toFailure status: HTTPStatus) -> HTTPResponse {
        count(status)
        return HTTPResponse.error(status)
    }

    func count(_ status: HTTPStatus) {
        switch status.code {
        case 200..<300: responses2xx &+= 1
        case 400..<500: responses4xx &+= 1
        default: responses5xx &+= 1
        }
    }

    static let allowHeader: [UInt8] = {
        var text = HTTPText()
        text.append("Allow: GET, HEAD\r\n")
        return text.bytes
    }()
}

final class HTTPSession {
    let server: HTTPServer
    let connection: TCPConnection
    var inbox: [UInt8] = []
    var parser = HTTPRequestParser()
    var outbox: [UInt8] = []
    var outboxSent = 0
    var closeAfterFlush = false
    var finished = false

    init(server: HTTPServer, connection: TCPConnection) {
        self.server = server
        self.connection = connection
    }

    /// Moves the session as far as it can: flush the pending response, then read, parse
    /// and answer requests until input runs out or TCP's send buffer is full.
    func pump() {
        while !finished {
            if outboxSent < outbox.count {
                outboxSent += outbox.withUnsafeBytes { bytes in
                    connection.send(bytes.netSlice(outboxSent..<bytes.count))
                }
                if outboxSent < outbox.count { return }  // onWritable brings us back
                outbox = []
                outboxSent = 0
            }
            if closeAfterFlush {
                finish()
                return
            }
            let room = HTTPServer.inboxLimit - inbox.count
            if room > 0, connection.bytesAvailable > 0 {
                connection.read(into: &inbox, maxLength: room)
            }
            if inbox.isEmpty {
                if connection.peerClosed { finish() }
                return
            }
            let result = inbox.withUnsafeBytes { parser.parse($0) }
            switch result {
            case .incomplete:
                if connection.peerClosed && connection.bytesAvailable == 0 {
                    finish()  // the peer closed in the middle of a request: nothing to answer
                } else if inbox.count >= HTTPServer.inboxLimit {
                    fail(.headerFieldsTooLarge)  // unreachable with the parser's limits; kept as a guard
                    continue
                }
                return
            case .request(let request, let consumed):
                inbox.removeFirst(Swift.min(consumed, inbox.count))
                parser.reset()
                let response = server.respond(to: request)
                outbox = response.serialize(keepAlive: request.keepAlive, headOnly: request.method == .head)
                outboxSent = 0
                if !request.keepAlive { closeAfterFlush = true }
            case .failure(let status):
                fail(status)
            }
        }
    }

    func fail(_ status: HTTPStatus) {
        inbox = []
        parser.reset()
        outbox = server.respond(toFailure: status).serialize(keepAlive: false)
        outboxSent = 0
        closeAfterFlush = true
    }

    func finish() {
        finished = true
        connection.close()
    }
}
