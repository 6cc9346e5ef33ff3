// An HTTP/1.1 server on a TCPLayer listener: routes a fixed set of paths to handlers,
// keeps connections alive (HTTP/1.1's default; `Connection: close` and HTTP/1.0 are
// honoured), answers pipelined requests in order, and never lets a client make it hold
// more than a bounded amount of memory, or a connection slot for long without a request.
//
// Per connection: an inbox of exactly `inboxLimit` (16 KiB) of unparsed input — the
// largest request the parser accepts (8 KiB of header, 8 KiB of body) — reserved from the
// stack's NetMemory and allocated when the connection is accepted (a connection the budget
// cannot take is reset), and one response at a time waiting for send space (at most
// `maxResponseBytes`), reserved while it waits (when it does not fit, a short 503 goes
// instead and the connection closes). Input is read only when the previous
// response has been handed to TCP in full, so a client that does not read its responses
// stalls on TCP's window, not on our memory. Errors the parser reports (400, 413, 431,
// 501, 505) are answered and the connection closed (lingering: further input is
// discarded until the peer closes).
//
// Time: a request's header section must arrive within `requestTimeoutMs` (10 s) of its
// first byte (or of the connection, for the first request); a connection that misses it
// is reset (slowloris). Between requests a connection is idle: TCP may evict it for a new
// one when the table is full, and closes it after `idleTimeoutMs` (30 s).

#if canImport(NetStack)
import NetStack  // SwiftPM; the kernel compiles HTTP and NetStack into one module (kernel/Makefile)
#endif

public struct HTTPRoute {
    public var path: StaticString
    public var handler: (HTTPRequest) -> HTTPResponse

    public init(path: StaticString, handler: @escaping (HTTPRequest) -> HTTPResponse) {
        self.path = path
        self.handler = handler
    }
}

public final class HTTPServer {
    public static let inboxLimit = HTTPRequestParser.maxHeaderBytes + HTTPRequestParser.maxBodyBytes
    /// The largest response a route may produce (the status page and /metrics are a few KiB).
    public static let maxResponseBytes = 64 * 1024
    /// The session object and its closures, rounded up.
    static let sessionObjectBytes = 512
    /// What one connection reserves on accept (its response is reserved while it waits).
    public static let sessionMemoryBytes = inboxLimit + sessionObjectBytes
    /// An idle keep-alive connection is closed (by TCP's idle timeout) after this long.
    public static let idleTimeoutMs: UInt64 = 30_000
    /// A request's header section must be complete this long after its first byte.
    public static let requestTimeoutMs: UInt64 = 10_000

    let tcp: TCPLayer
    public let port: UInt16
    var routes: [HTTPRoute] = []

    public private(set) var requestsTotal: UInt64 = 0
    public private(set) var responses2xx: UInt64 = 0
    public private(set) var responses4xx: UInt64 = 0
    public private(set) var responses5xx: UInt64 = 0
    public private(set) var openConnections: UInt64 = 0
    /// Connections reset because a request's headers did not arrive in time.
    public private(set) var requestTimeouts: UInt64 = 0
    /// Connections reset on accept because their memory could not be reserved or allocated.
    public private(set) var refusedForMemory: UInt64 = 0
    /// Responses larger than `maxResponseBytes`, answered 500 instead.
    public private(set) var oversizedResponses: UInt64 = 0
    /// Responses the memory budget could not hold, answered 503 instead.
    public private(set) var responsesRefusedForMemory: UInt64 = 0

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
        let memory = tcp.stack.memory
        guard memory.reserve(HTTPServer.sessionMemoryBytes) else {
            refusedForMemory &+= 1
            connection.abort()
            return
        }
        guard let inbox = memory.allocate(HTTPServer.inboxLimit) else {
            memory.release(HTTPServer.sessionMemoryBytes)
            refusedForMemory &+= 1
            connection.abort()
            return
        }
        connection.idleTimeoutMs = HTTPServer.idleTimeoutMs
        let session = HTTPSession(server: self, connection: connection, inbox: inbox)
        openConnections &+= 1
        // The connection holds the session through these closures; the TCP layer drops
        // them when the connection ends, and with them the session.
        connection.onReadable = { _ in session.pump() }
        connection.onWritable = { _ in session.pump() }
        connection.onDeadline = { _ in
            self.requestTimeouts &+= 1
            session.timedOut()
        }
        connection.onClosed = { _, _ in
            session.release()
            self.openConnections &-= 1
        }
        session.awaitRequest()
        session.pump()
    }

    var nowMs: UInt64 { tcp.stack.nowMs }

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
        if response.body.count + 512 > HTTPServer.maxResponseBytes {
            oversizedResponses &+= 1
            response = HTTPResponse.error(.internalServerError)
        }
        count(response.status)
        return response
    }

    /// Counts a response that went out as 503 for lack of memory.
    func countRefusedResponse() {
        responsesRefusedForMemory &+= 1
        count(.serviceUnavailable)
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
    /// `HTTPServer.inboxLimit` bytes from NetMemory; `inboxCount` of them hold input.
    var inbox: UnsafeMutableRawPointer?
    var inboxCount = 0
    var parser = HTTPRequestParser()
    var outbox: [UInt8] = []
    var outboxSent = 0
    /// Bytes of NetMemory reserved for `outbox`.
    var outboxReserved = 0
    var closeAfterFlush = false
    var finished = false

    init(server: HTTPServer, connection: TCPConnection, inbox: UnsafeMutableRawPointer) {
        self.server = server
        self.connection = connection
        self.inbox = inbox
    }

    deinit { release() }

    /// Gives the inbox and the reservation back (once).
    func release() {
        finished = true
        guard let memory = inbox else { return }
        let netMemory = server.tcp.stack.memory
        netMemory.deallocate(memory)
        netMemory.release(HTTPServer.sessionMemoryBytes)
        inbox = nil
        inboxCount = 0
        setOutbox([])
    }

    /// Replaces the pending response, moving its reservation with it. A response the
    /// budget cannot hold becomes a short 503 (not reserved: the stack's reserve covers a
    /// few dozen bytes) and the connection closes after it.
    func setOutbox(_ bytes: [UInt8]) {
        let netMemory = server.tcp.stack.memory
        netMemory.release(outboxReserved)
        outboxReserved = 0
        outboxSent = 0
        outbox = bytes
        guard !bytes.isEmpty else { return }
        if netMemory.reserve(bytes.count) {
            outboxReserved = bytes.count
        } else {
            server.countRefusedResponse()
            outbox = HTTPResponse.error(.serviceUnavailable).serialize(keepAlive: false)
            closeAfterFlush = true
        }
    }

    /// Between requests: the clock for the next one starts with its first byte.
    func awaitRequest() {
        connection.deadlineMs = server.nowMs &+ HTTPServer.requestTimeoutMs
        connection.isIdle = false
    }

    /// The request did not arrive in time: reset the connection (a slowloris gets nothing).
    func timedOut() {
        guard !finished else { return }
        finished = true
        connection.abort()
    }

    /// Moves the session as far as it can: flush the pending response, then read, parse
    /// and answer requests until input runs out or TCP's send buffer is full.
    func pump() {
        while !finished, let inbox {
            if outboxSent < outbox.count {
                outboxSent += outbox.withUnsafeBytes { bytes in
                    connection.send(bytes.netSlice(outboxSent..<bytes.count))
                }
                if outboxSent < outbox.count { return }  // onWritable brings us back
                setOutbox([])
            }
            if closeAfterFlush {
                finish()
                return
            }
            let room = HTTPServer.inboxLimit - inboxCount
            if room > 0, connection.bytesAvailable > 0 {
                if inboxCount == 0, connection.deadlineMs == nil { awaitRequest() }
                inboxCount += connection.read(into: UnsafeMutableRawBufferPointer(start: inbox + inboxCount, count: room))
            }
            if inboxCount == 0 {
                if connection.peerClosed {
                    finish()
                } else if connection.deadlineMs == nil {
                    connection.isIdle = true  // between requests: evictable, on TCP's idle timer
                }
                return
            }
            let result = parser.parse(UnsafeRawBufferPointer(start: inbox, count: inboxCount))
            switch result {
            case .incomplete:
                if connection.peerClosed && connection.bytesAvailable == 0 {
                    finish()  // the peer closed in the middle of a request: nothing to answer
                } else if inboxCount >= HTTPServer.inboxLimit {
                    fail(.headerFieldsTooLarge)  // unreachable with the parser's limits; kept as a guard
                    continue
                }
                return
            case .request(let request, let consumed):
                consume(consumed)
                parser.reset()
                connection.deadlineMs = nil
                let response = server.respond(to: request)
                if !request.keepAlive { closeAfterFlush = true }
                setOutbox(response.serialize(keepAlive: request.keepAlive, headOnly: request.method == .head))
                // A pipelined request already begun has its own clock from now.
                if inboxCount > 0 { awaitRequest() }
            case .failure(let status):
                fail(status)
            }
        }
    }

    /// Drops the first `count` bytes of the inbox.
    func consume(_ count: Int) {
        guard let inbox else { return }
        let taken = Swift.min(Swift.max(count, 0), inboxCount)
        if taken < inboxCount {
            inbox.copyMemory(from: inbox + taken, byteCount: inboxCount - taken)
        }
        inboxCount -= taken
    }

    func fail(_ status: HTTPStatus) {
        inboxCount = 0
        parser.reset()
        connection.deadlineMs = nil
        closeAfterFlush = true
        setOutbox(server.respond(toFailure: status).serialize(keepAlive: false))
    }

    /// Closes our side; the inbox goes back now (nothing more is read), the rest with TCP.
    func finish() {
        connection.deadlineMs = nil
        connection.close()
        release()
    }
}
