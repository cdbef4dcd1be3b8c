// Splits a byte stream into newline-terminated lines with a hard bound on line length.
//
// The bound is enforced while bytes arrive, not when a newline finally shows up: a client sending
// several megabytes without a newline is refused as soon as it passes the limit, and the framer
// never holds more than `maxLineBytes` plus one read of unconsumed input.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One framing step's outcome. A line's length counts every byte before its `\n`.
public enum FramedLine: Equatable, Sendable {
    /// A complete line, without its `\n` (and without a trailing `\r`, so `nc -C` works).
    case line([UInt8])
    /// The current line passed the limit; the connection must be refused and closed.
    case tooLong
}

public struct LineFramer: Sendable {
    public let maxLineBytes: Int
    private var pending: [UInt8] = []
    private var failed = false

    public init(maxLineBytes: Int) {
        precondition(maxLineBytes > 0)
        self.maxLineBytes = maxLineBytes
    }

    /// Bytes held for an incomplete line.
    public var bufferedCount: Int { pending.count }

    /// Appends `bytes` and returns the lines they complete, in order. After `.tooLong` the framer
    /// returns nothing more: the stream is no longer trusted to be in step.
    public mutating func append<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [FramedLine] {
        if let lines = bytes.withContiguousStorageIfAvailable({ append(contiguous: $0) }) { return lines }
        return Array(bytes).withUnsafeBufferPointer { append(contiguous: $0) }
    }

    private mutating func append(contiguous bytes: UnsafeBufferPointer<UInt8>) -> [FramedLine] {
        guard !failed else { return [] }
        var out: [FramedLine] = []
        var start = 0
        while start != bytes.count {
            guard let newline = Self.firstNewline(in: bytes, from: start) else {
                pending.append(contentsOf: bytes[start...])
                if pending.count > maxLineBytes { return fail(out) }
                break
            }
            let piece = bytes[start..<newline]
            if pending.count + piece.count > maxLineBytes { return fail(out) }
            // The pending bytes become the line (no copy), and the next line starts with room for
            // as much as this one up to 1 MiB: a client's batches are usually alike, and growing
            // from empty copied a batch's bytes about twice more per line.
            pending.append(contentsOf: piece)
            var line = pending
            pending = []
            if line.count > 4096 { pending.reserveCapacity(min(line.count, Self.reservedLineBytes)) }
            if line.last == 0x0D { line.removeLast() }
            out.append(.line(line))
            start = newline + 1
        }
        return out
    }

    /// The most a connection keeps reserved for its next line between lines.
    static let reservedLineBytes = 1 << 20

    /// memchr: a request line is hundreds of kilobytes when it carries a batch.
    private static func firstNewline(in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        guard let base = bytes.baseAddress, start < bytes.count,
              let found = memchr(base + start, 0x0A, bytes.count - start) else { return nil }
        return UnsafeRawPointer(found) - UnsafeRawPointer(base)
    }

    /// At end of input: the unterminated last line, if any (clients like `printf … | nc -U` omit
    /// the final newline).
    public mutating func finish() -> FramedLine? {
        guard !failed, !pending.isEmpty else { return nil }
        var line = pending
        pending = []
        if line.last == 0x0D { line.removeLast() }
        return .line(line)
    }

    private mutating func fail(_ soFar: [FramedLine]) -> [FramedLine] {
        failed = true
        pending = []
        return soFar + [.tooLong]
    }
}
