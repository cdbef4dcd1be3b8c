import NIOCore
import NIOEmbedded
import Testing
@testable import UPFControl

/// `EventStream` against a channel whose writability changes inside `flush()`, as a Unix socket's
/// does when the subscriber reads while the server writes.
@Suite struct EventStreamTests {
    /// Every write fills the send buffer; every flush empties it and, as NIO does, reports the
    /// channel writable again from inside the flush.
    final class SocketLikeWire: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = ByteBuffer
        var stream: EventStream?
        let channel: EmbeddedChannel
        init(channel: EmbeddedChannel) { self.channel = channel }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            context.write(data, promise: promise)
            channel.isWritable = false
        }

        func flush(context: ChannelHandlerContext) {
            context.flush()
            channel.isWritable = true
            stream?.resume()  // what ControlServer's channelWritabilityChanged does
        }
    }

    @Test func aFlushThatMakesRoomKeepsTheStreamWriting() throws {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/x")).wait()
        let wire = SocketLikeWire(channel: channel)
        try channel.pipeline.syncOperations.addHandler(wire)
        let bus = EventBus()
        let stream = EventStream(channel: channel, capacity: 8, bus: bus)
        wire.stream = stream
        for i in 0..<5 { stream.offer(ControlEvent("usage", [("seq", .int(UInt64(i)))])) }
        stream.resume()
        channel.embeddedEventLoop.run()
        var lines: [String] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            lines.append(String(buffer: buffer))
        }
        #expect(lines == (0..<5).map { #"{"event":"usage","seq":\#($0)}"# + "\n" })

        // Once drained, a new event is written at once.
        stream.offer(ControlEvent("usage", [("seq", .int(5))]))
        channel.embeddedEventLoop.run()
        let last = try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }
        #expect(last == #"{"event":"usage","seq":5}"# + "\n")
        #expect(bus.droppedCount == 0)
    }
}
