// The Prometheus endpoint: a deliberately small HTTP/1.1 server (SwiftNIO, NIOHTTP1) on the
// control plane's I/O event loop. GET /metrics answers the `stats` snapshot in the Prometheus
// text format; anything else is 404 (another path) or 405 (another method). One request per
// connection (the answer carries `Connection: close`), requests are bounded in size and time, and
// the endpoint is off unless `metrics.listen` is set (docs/observability.md).

import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where the endpoint listens, checked at start-up (`metrics` in the configuration).
public struct MetricsEndpoint: Sendable, Equatable {
    /// A literal IPv4 or IPv6 address (no host names: what is bound is exactly what is written).
    public var host: String
    public var port: Int
    /// Permits a non-loopback address. Off by default: the endpoint has no authentication and
    /// no TLS, and the counters tell who is active and how much traffic the node carries.
    public var allowRemote: Bool

    public init(host: String, port: Int, allowRemote: Bool = false) {
        self.host = host
        self.port = port
        self.allowRemote = allowRemote
    }

    /// Reads `host:port` (`127.0.0.1:9464`, `[::1]:9464`). nil with the reason when it is not one.
    public static func parse(_ listen: String, allowRemote: Bool) -> Result<MetricsEndpoint, MetricsEndpointError> {
        let host: Substring, portText: Substring
        if listen.hasPrefix("[") {
            guard let close = listen.firstIndex(of: "]"), listen[listen.index(after: close)...].hasPrefix(":") else {
                return .failure(.syntax)
            }
            host = listen[listen.index(after: listen.startIndex)..<close]
            portText = listen[listen.index(close, offsetBy: 2)...]
        } else {
            guard let colon = listen.lastIndex(of: ":"), !listen[..<colon].contains(":") else { return .failure(.syntax) }
            host = listen[..<colon]
            portText = listen[listen.index(after: colon)...]
        }
        guard let port = Int(portText), (1...65535).contains(port) else { return .failure(.port) }
        let family = listen.hasPrefix("[") ? AF_INET6 : AF_INET
        guard let loopback = isLoopback(String(host), family: family) else { return .failure(.address) }
        if !loopback && !allowRemote { return .failure(.notLoopback) }
        return .success(MetricsEndpoint(host: String(host), port: port, allowRemote: allowRemote))
    }

    /// nil: not a literal address of that family.
    static func isLoopback(_ host: String, family: Int32) -> Bool? {
        if family == AF_INET {
            var address = in_addr()
            guard inet_pton(AF_INET, host, &address) == 1 else { return nil }
            return UInt32(bigEndian: address.s_addr) >> 24 == 127
        }
        var address = in6_addr()
        guard inet_pton(AF_INET6, host, &address) == 1 else { return nil }
        return withUnsafeBytes(of: &address) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
    }
}

public enum MetricsEndpointError: Error, Sendable, Equatable, CustomStringConvertible {
    case syntax, port, address, notLoopback

    public var description: String {
        switch self {
        case .syntax: "must be ADDRESS:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)"
        case .port: "the port must be in 1...65535"
        case .address: "the address must be a literal IPv4 or IPv6 address (IPv6 in brackets)"
        case .notLoopback:
            "not a loopback address: the endpoint has no authentication or TLS; set metrics.allow_remote: true to serve it on another address"
        }
    }
}

public final class MetricsServer: Sendable {
    /// Longest request accepted (request line and headers; a body is refused anyway).
    public static let maxRequestBytes = 8192
    /// A connection that has not sent a whole request within this time is closed.
    public static let requestTimeout = TimeAmount.seconds(10)

    public let endpoint: MetricsEndpoint
    public let exporter: PrometheusExporter
    let snapshot: @Sendable () -> EventLoopFuture<JSONValue>
    let group: any EventLoopGroup
    let logger: Logger
    let errorLog: RateLimitedLog
    private let channel = Mutex<(any Channel)?>(nil)

    /// `snapshot`: the `stats` answer (ControlCore.statsSnapshot), rendered at each scrape.
    public init(endpoint: MetricsEndpoint, exporter: PrometheusExporter = PrometheusExporter(),
                snapshot: @escaping @Sendable () -> EventLoopFuture<JSONValue>, group: any EventLoopGroup, logger: Logger) {
        self.endpoint = endpoint
        self.exporter = exporter
        self.snapshot = snapshot
        self.group = group
        self.logger = logger
        errorLog = RateLimitedLog(logger: logger, burst: 5, perSecond: 0.2)
    }

    /// Binds and starts serving; returns the address bound.
    @discardableResult
    public func start() throws -> SocketAddress {
        let exporter = self.exporter
        let snapshot = self.snapshot
        let errorLog = self.errorLog
        let bound: any Channel
        do {
            bound = try ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 32)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(IdleStateHandler(readTimeout: MetricsServer.requestTimeout))
                        try sync.addHandler(RequestLimitHandler(limit: MetricsServer.maxRequestBytes))
                        try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                        try sync.addHandler(HTTPResponseEncoder())
                        try sync.addHandler(MetricsHTTPHandler(exporter: exporter, snapshot: snapshot, errorLog: errorLog))
                    }
                }
                .bind(host: endpoint.host, port: endpoint.port)
                .wait()
        } catch {
            throw MetricsServerError(message: "cannot listen on \(endpoint.host):\(endpoint.port): \(error)")
        }
        channel.withLock { $0 = bound }
        let address = bound.localAddress
        logger.notice("metrics endpoint listening", metadata: [
            "address": "\(address.map { "\($0)" } ?? "\(endpoint.host):\(endpoint.port)")", "path": "/metrics",
        ])
        if let address { return address }
        return try SocketAddress(ipAddress: endpoint.host, port: endpoint.port)
    }

    public func stop() {
        let bound = channel.withLock { c -> (any Channel)? in
            defer { c = nil }
            return c
        }
        try? bound?.close().wait()
    }
}

public struct MetricsServerError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}

/// Counts the bytes a connection sends before its request is complete; past `limit` it answers
/// 431 and closes. Also closes connections that stay idle (`IdleStateHandler`'s event).
final class RequestLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limit: Int
    private var received = 0
    private var refused = false

    init(limit: Int) {
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        received += unwrapInboundIn(data).readableBytes
        if received > limit {
            refused = true
            let text = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(string: text))).whenComplete { _ in
                channel.close(promise: nil)
            }
            return
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// One request per connection: GET /metrics → the exposition; other paths 404; other methods 405.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let exporter: PrometheusExporter
    private let snapshot: @Sendable () -> EventLoopFuture<JSONValue>
    private let errorLog: RateLimitedLog
    private var head: HTTPRequestHead?
    private var answered = false

    init(exporter: PrometheusExporter, snapshot: @escaping @Sendable () -> EventLoopFuture<JSONValue>, errorLog: RateLimitedLog) {
        self.exporter = exporter
        self.snapshot = snapshot
        self.errorLog = errorLog
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
        case .body:
            break   // GET has none; whatever comes is bounded by RequestLimitHandler and ignored
        case .end:
            guard let head, !answered else { return }
            answered = true
            respond(to: head, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Unparsable HTTP: answer 400 if nothing was answered yet, then close.
        if !answered {
            answered = true
            Self.send(status: .badRequest, body: "bad request\n", on: context.channel)
        } else {
            context.close(promise: nil)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard path == "/metrics" else {
            return Self.send(status: .notFound, body: "not found: the metrics are at /metrics\n", on: context.channel)
        }
        guard head.method == .GET else {
            return Self.send(status: .methodNotAllowed, body: "method not allowed: GET only\n", on: context.channel,
                             extra: [("Allow", "GET")])
        }
        let channel = context.channel
        let exporter = self.exporter
        let errorLog = self.errorLog
        snapshot().whenComplete { result in
            switch result {
            case .success(let stats):
                let body = exporter.render(stats)
                Self.send(status: .ok, body: body, on: channel,
                          contentType: "text/plain; version=0.0.4; charset=utf-8")
            case .failure(let error):
                errorLog.warning("metrics scrape failed", metadata: ["error": "\(error)"])
                Self.send(status: .serviceUnavailable, body: "stats unavailable\n", on: channel)
            }
        }
    }

    static func send(status: HTTPResponseStatus, body: String, on channel: any Channel, extra: [(String, String)] = []) {
        send(status: status, body: Array(body.utf8), on: channel, contentType: "text/plain; charset=utf-8", extra: extra)
    }

    /// Writes the whole answer from the channel's own loop and closes the connection.
    static func send(status: HTTPResponseStatus, body: [UInt8], on channel: any Channel, contentType: String,
                     extra: [(String, String)] = []) {
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", String(body.count)), ("Connection", "close")])
        headers.add(contentsOf: extra)
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        channel.eventLoop.execute {
            channel.write(HTTPServerResponsePart.head(head), promise: nil)
            channel.write(HTTPServerResponsePart.body(.byteBuffer(channel.allocator.buffer(bytes: body))), promise: nil)
            channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
