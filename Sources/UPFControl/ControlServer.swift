// The control socket server (SwiftNIO, Unix stream socket). It runs on its own small event loop
// group, away from the data path: it frames lines, checks who connected, parses requests and
// hands well-formed ones to the policy owner (`ControlRequestHandling`), one request at a time
// per connection so responses come back in request order.

import Logging
import NIOCore
import NIOPosix
import Synchronization
import UPFPolicy

#if canImport(Glibc)
import Glibc
#endif

/// What a successful request returns: the policy version it saw or produced, and its fields.
public struct ControlReply: Sendable {
    public var version: UInt64
    public var fields: [(String, JSONValue)]

    public init(version: UInt64, _ fields: [(String, JSONValue)] = []) {
        self.version = version
        self.fields = fields
    }
}

/// The policy owner, as the server sees it.
public protocol ControlRequestHandling: AnyObject, Sendable {
    /// Runs `request` on the owner's serial executor. The future fails with a `ControlError` for
    /// a refused request.
    func handle(_ request: ControlRequest) -> EventLoopFuture<ControlReply>
    /// The version now in force; readable from any thread.
    var currentVersion: UInt64 { get }
}

public struct ControlServerConfiguration: Sendable {
    public var socketPath: String
    public var access: AccessPolicy
    public var permissions: SocketPermissions
    /// Longest request line accepted (bytes before the newline).
    public var maxLineBytes: Int
    /// A connection with no complete request for this long is closed (event streams excepted).
    public var idleTimeout: TimeAmount
    /// Connections beyond this are refused with `too_many_clients`.
    public var maxClients: Int
    /// Events held per subscriber before dropping.
    public var eventQueueCapacity: Int

    public init(socketPath: String, access: AccessPolicy = AccessPolicy(allowedUIDs: []),
                permissions: SocketPermissions = SocketPermissions(), maxLineBytes: Int = 1 << 20,
                idleTimeout: TimeAmount = .seconds(30), maxClients: Int = 64, eventQueueCapacity: Int = 1024) {
        self.socketPath = socketPath
        self.access = access
        self.permissions = permissions
        self.maxLineBytes = maxLineBytes
        self.idleTimeout = idleTimeout
        self.maxClients = maxClients
        self.eventQueueCapacity = eventQueueCapacity
    }
}

public final class ControlServer: Sendable {
    public let configuration: ControlServerConfiguration
    let handler: any ControlRequestHandling
    let bus: EventBus
    let metrics: ControlMetrics
    let logger: Logger
    let group: any EventLoopGroup
    /// Connection refusals and over-long lines: 10 at once, then one a second (RateLimitedLog).
    let refusals: RateLimitedLog

    private struct State {
        var serverChannel: (any Channel)?
        var children: [ObjectIdentifier: any Channel] = [:]
        var stopped = false
    }
    private let state = Mutex(State())

    public init(configuration: ControlServerConfiguration, handler: any ControlRequestHandling, bus: EventBus,
                metrics: ControlMetrics, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.handler = handler
        self.bus = bus
        self.metrics = metrics
        self.group = group
        self.logger = logger
        refusals = RateLimitedLog(logger: logger, burst: 10, perSecond: 1)
    }

    /// Creates the socket file and starts accepting.
    public func start() throws {
        let fd = try UnixSocket.listen(path: configuration.socketPath, permissions: configuration.permissions)
        let configuration = self.configuration
        let handler = self.handler
        let bus = self.bus
        let metrics = self.metrics
        let logger = self.logger
        let refusals = self.refusals
        let channel: any Channel
        do {
            channel = try ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 128)
                .childChannelOption(.writeBufferWaterMark, value: .init(low: 64 * 1024, high: 256 * 1024))
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { [weak self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        let connection = ControlConnectionHandler(
                            configuration: configuration, handler: handler, bus: bus, metrics: metrics, logger: logger,
                            refusals: refusals)
                        try channel.pipeline.syncOperations.addHandler(connection)
                        self?.track(channel)
                    }
                }
                .withBoundSocket(fd)
                .wait()
        } catch {
            close(fd)
            unlink(configuration.socketPath)
            throw SocketSetupError(path: configuration.socketPath, message: "cannot start listening: \(error)")
        }
        state.withLock { $0.serverChannel = channel }
        logger.info("control socket listening", metadata: ["socket": "\(configuration.socketPath)"])
    }

    private func track(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        let accepted = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            s.children[key] = channel
            return true
        }
        if !accepted {
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.state.withLock { $0.children.removeValue(forKey: key) }
        }
    }

    /// Stops accepting, closes every connection and removes the socket file.
    public func stop() {
        let (server, children) = state.withLock { s -> ((any Channel)?, [any Channel]) in
            s.stopped = true
            defer { s.serverChannel = nil; s.children = [:] }
            return (s.serverChannel, Array(s.children.values))
        }
        guard let server else { return }
        try? server.close().wait()
        for child in children { try? child.close().wait() }
        // Only our own socket file: a successor may already have bound the path.
        unlink(configuration.socketPath)
        logger.info("control socket closed", metadata: ["socket": "\(configuration.socketPath)"])
    }
}

// MARK: - A connection

/// One client connection. Lives on its channel's event loop; not Sendable.
final class ControlConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Item {
        case line([UInt8])
        /// A line parsed while the request before it was being applied (`parseAhead`).
        case parsed(ParsedRequest)
        case tooLong
    }

    private enum Mode {
        case starting
        case requests
        case events
        case closing
    }

    /// Lines queued beyond this stop reading from the socket until the queue drains.
    private static let maxQueuedLines = 64

    private let configuration: ControlServerConfiguration
    private let handler: any ControlRequestHandling
    private let bus: EventBus
    private let metrics: ControlMetrics
    private var logger: Logger
    /// Refusals a client can repeat at will (reconnecting in a loop) go through the server's
    /// shared token bucket, so they cannot flood the log.
    private let refusals: RateLimitedLog

    private var framer: LineFramer
    private var queue: [Item] = []
    private var queueHead = 0
    private var busy = false
    private var mode = Mode.starting
    private var counted = false
    private var readingPaused = false
    private var inputClosed = false
    private var idleTask: Scheduled<Void>?
    private var stream: EventStream?

    init(configuration: ControlServerConfiguration, handler: any ControlRequestHandling, bus: EventBus,
         metrics: ControlMetrics, logger: Logger, refusals: RateLimitedLog) {
        self.configuration = configuration
        self.handler = handler
        self.bus = bus
        self.metrics = metrics
        self.logger = logger
        self.refusals = refusals
        self.framer = LineFramer(maxLineBytes: configuration.maxLineBytes)
    }

    func channelActive(context: ChannelHandlerContext) {
        // SO_PEERCRED: the kernel's record of who connected. The future is completed at once on
        // this loop; input that arrives meanwhile is framed and held until the client is admitted.
        guard let provider = context.channel as? any SocketOptionProvider else {
            admit(context, nil)
            return
        }
        let future: EventLoopFuture<RawPeerCredentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        future.assumeIsolated().whenComplete { [self] result in
            let peer = (try? result.get()).map { PeerCredentials(pid: $0.pid, uid: $0.uid, gid: $0.gid) }
            admit(context, peer)
        }
        context.fireChannelActive()
    }

    private func admit(_ context: ChannelHandlerContext, _ peer: PeerCredentials?) {
        guard mode == .starting else { return }
        guard let peer else {
            refusals.warning("control connection without peer credentials; closing")
            refuse(context, ControlError(ControlError.Code.forbidden, "cannot determine the connecting user"))
            return
        }
        logger[metadataKey: "peer_uid"] = "\(peer.uid)"
        logger[metadataKey: "peer_pid"] = "\(peer.pid)"
        guard configuration.access.allows(peer) else {
            refusals.warning("control connection refused: user not allowed",
                             metadata: ["peer_uid": "\(peer.uid)", "peer_pid": "\(peer.pid)"])
            let who = Accounts.userName(of: peer.uid).map { "'\($0)' (uid \(peer.uid))" } ?? "uid \(peer.uid)"
            refuse(context, ControlError(ControlError.Code.forbidden, "user \(who) may not use the control socket"))
            return
        }
        guard metrics.connect(limit: configuration.maxClients) else {
            refusals.warning("control connection refused: too many clients",
                             metadata: ["peer_uid": "\(peer.uid)", "peer_pid": "\(peer.pid)"])
            closeWith(context, ControlProtocol.failure(id: .null, ControlError(
                ControlError.Code.tooManyClients, "the server already has \(configuration.maxClients) clients; try again later")))
            return
        }
        counted = true
        mode = .requests
        logger.debug("control client connected")
        processQueue(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        mode = .closing
        idleTask?.cancel()
        idleTask = nil
        if let stream {
            bus.unsubscribe(stream)
            self.stream = nil
        }
        if counted {
            counted = false
            metrics.disconnect()
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        switch mode {
        case .starting, .requests: break
        case .events, .closing: return  // an event stream ignores input; EOF closes it
        }
        enqueue(context, buffer.withUnsafeReadableBytes { framer.append($0) })
        processQueue(context)
    }

    private func enqueue(_ context: ChannelHandlerContext, _ items: [FramedLine]) {
        for item in items {
            switch item {
            case .line(let bytes): queue.append(.line(bytes))
            case .tooLong:
                queue.append(.tooLong)
                pauseReading(context)
            }
        }
        if queue.count - queueHead > Self.maxQueuedLines { pauseReading(context) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            if mode == .events { stream?.resume() } else { processQueue(context) }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The client shut down its side: answer what it sent (an unterminated last line
            // included), then close.
            inputClosed = true
            switch mode {
            case .starting, .requests:
                if let last = framer.finish() { enqueue(context, [last]) }
                processQueue(context)
            case .events, .closing:
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("control connection error: \(error)")
        context.close(promise: nil)
    }

    // MARK: requests

    private func processQueue(_ context: ChannelHandlerContext) {
        while mode == .requests, !busy, queueHead < queue.count, context.channel.isWritable {
            let item = queue[queueHead]
            queueHead += 1
            if queueHead > 64, queueHead * 2 > queue.count {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
            idleTask?.cancel()
            idleTask = nil
            switch item {
            case .tooLong:
                let error = ControlError(ControlError.Code.lineTooLong,
                                         "request line longer than \(configuration.maxLineBytes) bytes; nothing was applied and the connection is closed")
                metrics.connectionError(code: error.code)
                refusals.warning("control request refused: line too long", metadata: logger.handler.metadata)
                closeWith(context, ControlProtocol.failure(id: .null, error))
                return
            case .line(let bytes):
                handle(context, ControlProtocol.parse(line: bytes))
            case .parsed(let parsed):
                handle(context, parsed)
            }
        }
        if busy { parseAhead() }
        if mode == .requests, !busy, queueHead == queue.count {
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
            if inputClosed {
                mode = .closing
                context.close(promise: nil)
                return
            }
            resumeReading(context)
            if idleTask == nil { scheduleIdle(context) }
        }
    }

    /// Parses the next queued line while the policy thread applies the one before, so that a
    /// client that sends its next batch before the answer (pipelining) has its parsing overlap
    /// the application instead of following it. Parsing depends on nothing but the line; the
    /// request is still validated and applied, or refused, in order when its turn comes.
    private func parseAhead() {
        guard mode == .requests, queueHead < queue.count, case .line(let bytes) = queue[queueHead] else { return }
        queue[queueHead] = .parsed(ControlProtocol.parse(line: bytes))
    }

    private func handle(_ context: ChannelHandlerContext, _ parsed: ParsedRequest) {
        let id = parsed.id
        let request: ControlRequest
        switch parsed.result {
        case .failure(let error):
            metrics.record(mutation: parsed.isMutation, error: error)
            logger.info("control request refused", metadata: [
                "op": "\(parsed.op ?? "?")", "code": "\(error.code)", "path": "\(error.path)",
            ])
            writeLine(context, ControlProtocol.failure(id: id, error))
            return
        case .success(let value):
            request = value
        }
        if case .events = request {
            startEvents(context, id: id)
            return
        }
        busy = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        handler.handle(request)
            .hop(to: context.eventLoop)
            .whenComplete { result in
                let (me, context) = loopBound.value
                me.finish(context, id: id, request: request, result: result)
            }
    }

    private func finish(_ context: ChannelHandlerContext, id: JSONValue, request: ControlRequest,
                        result: Result<ControlReply, any Error>) {
        busy = false
        switch result {
        case .success(let reply):
            metrics.record(mutation: request.isMutation, error: nil)
            if request.isMutation {
                logger.info("control request applied", metadata: ["op": "\(request.op)", "version": "\(reply.version)"])
            }
            writeLine(context, ControlProtocol.success(id: id, version: reply.version, reply.fields))
        case .failure(let error):
            let controlError = error as? ControlError
                ?? ControlError(ControlError.Code.internalError, "internal error: \(error)")
            metrics.record(mutation: request.isMutation, error: controlError)
            logger.info("control request refused", metadata: [
                "op": "\(request.op)", "code": "\(controlError.code)", "path": "\(controlError.path)",
            ])
            writeLine(context, ControlProtocol.failure(id: id, controlError))
        }
        guard mode == .requests, context.channel.isActive else { return }
        processQueue(context)
    }

    // MARK: events

    private func startEvents(_ context: ChannelHandlerContext, id: JSONValue) {
        metrics.record(mutation: false, error: nil)
        mode = .events
        idleTask?.cancel()
        idleTask = nil
        queue.removeAll()
        queueHead = 0
        // Subscribe before answering so no event after the answered version is missed.
        let stream = EventStream(channel: context.channel, capacity: configuration.eventQueueCapacity, bus: bus)
        self.stream = stream
        bus.subscribe(stream)
        writeLine(context, ControlProtocol.success(id: id, version: handler.currentVersion, [("subscribed", .bool(true))]))
        resumeReading(context)  // reads are discarded now; reading on notices the client leaving
        stream.resume()
    }

    // MARK: helpers

    private func refuse(_ context: ChannelHandlerContext, _ error: ControlError) {
        metrics.refused(code: error.code)
        closeWith(context, ControlProtocol.failure(id: .null, error))
    }

    /// How long a refused client has to read its error line before the connection is dropped.
    private static let lingerTime = TimeAmount.seconds(1)

    /// Writes a last line, then shuts down our side and waits (briefly) for the client to close.
    ///
    /// Why not close at once: closing a Unix socket with unread input makes the kernel reset the
    /// connection, and the client would get ECONNRESET instead of the error line. After the
    /// half-close the client reads the line and EOF; input is discarded meanwhile.
    private func closeWith(_ context: ChannelHandlerContext, _ response: JSONValue) {
        mode = .closing
        queue.removeAll()
        queueHead = 0
        idleTask?.cancel()
        idleTask = nil
        if readingPaused {
            readingPaused = false
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            context.read()
        }
        let line = encodeLine(context, response)
        context.writeAndFlush(wrapOutboundOut(line)).assumeIsolated().whenComplete { result in
            guard case .success = result, !self.inputClosed else {
                context.close(promise: nil)
                return
            }
            context.close(mode: .output, promise: nil)
            context.eventLoop.assumeIsolated().scheduleTask(in: Self.lingerTime) {
                context.close(promise: nil)
            }
        }
    }

    private func writeLine(_ context: ChannelHandlerContext, _ response: JSONValue) {
        context.writeAndFlush(wrapOutboundOut(encodeLine(context, response)), promise: nil)
    }

    private func encodeLine(_ context: ChannelHandlerContext, _ value: JSONValue) -> ByteBuffer {
        var text = value.serialized
        text.append("\n")
        return context.channel.allocator.buffer(string: text)
    }

    private func scheduleIdle(_ context: ChannelHandlerContext) {
        idleTask?.cancel()
        let timeout = configuration.idleTimeout
        idleTask = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            guard mode == .requests, !busy else { return }
            idleTask = nil
            let error = ControlError(ControlError.Code.idleTimeout,
                                     "no request for \(timeout.nanoseconds / 1_000_000_000) s; closing the connection")
            metrics.connectionError(code: error.code)
            logger.info("control client idle; closing")
            closeWith(context, ControlProtocol.failure(id: .null, error))
        }
    }

    private func pauseReading(_ context: ChannelHandlerContext) {
        guard !readingPaused else { return }
        readingPaused = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
    }

    private func resumeReading(_ context: ChannelHandlerContext) {
        guard readingPaused, mode != .closing else { return }
        readingPaused = false
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        context.read()
    }
}

/// `struct ucred` as SO_PEERCRED fills it (Glibc hides the C type behind _GNU_SOURCE).
struct RawPeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

// MARK: - An event stream

/// A subscriber that writes events to one connection. `offer` (any thread) only queues; writing
/// happens on the channel's event loop, and stops while the socket's send buffer is full — the
/// queue then fills to its bound and further events are dropped and counted.
final class EventStream: EventSubscriber, @unchecked Sendable {
    // @unchecked: `channel` is Sendable, `bus` is Sendable, and all mutable state is in `state`.
    private enum Drain {
        case idle
        case scheduled
        /// Waiting for the channel to become writable (or for `resume()` after subscribing).
        case blocked
    }

    private struct State {
        var queue: BoundedEventQueue
        var drain: Drain = .blocked
    }

    private let channel: any Channel
    private let bus: EventBus
    private let state: Mutex<State>

    init(channel: any Channel, capacity: Int, bus: EventBus) {
        self.channel = channel
        self.bus = bus
        self.state = Mutex(State(queue: BoundedEventQueue(capacity: capacity)))
    }

    func offer(_ event: ControlEvent) {
        let schedule = state.withLock { s -> Bool in
            if !s.queue.offer(event) { bus.noteDropped() }
            guard s.drain == .idle else { return false }
            s.drain = .scheduled
            return true
        }
        if schedule {
            channel.eventLoop.execute { self.drainOnLoop() }
        }
    }

    /// Starts (or restarts, after the channel became writable) writing. On the channel's loop.
    func resume() {
        let run = state.withLock { s -> Bool in
            guard s.drain != .scheduled else { return false }
            s.drain = .scheduled
            return true
        }
        if run { drainOnLoop() }
    }

    /// Writes until the queue is empty or the socket's buffer is full. `flush()` can make the
    /// channel writable again from inside itself (the peer read meanwhile): the `resume()` that
    /// NIO then calls finds the drain `.scheduled` and leaves the work to this call, so after each
    /// flush it looks again instead of ending with events queued and nobody to write them.
    private func drainOnLoop() {
        guard channel.isActive else { return }
        while true {
            var wrote = false
            while channel.isWritable {
                let next = state.withLock { s -> ControlEvent? in
                    if let event = s.queue.next() { return event }
                    s.drain = .idle
                    return nil
                }
                guard let event = next else { break }
                var text = event.json.serialized
                text.append("\n")
                channel.write(channel.allocator.buffer(string: text), promise: nil)
                wrote = true
            }
            if wrote { channel.flush() }
            let writeMore = state.withLock { s -> Bool in
                guard s.drain == .scheduled else { return false }  // drained: idle
                if channel.isWritable { return true }
                s.drain = .blocked  // the next writability change resumes
                return false
            }
            if !writeMore { return }
        }
    }
}
