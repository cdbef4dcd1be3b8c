// Rate limiting for log lines that a peer can make repeat at will: a local client reconnecting
// in a loop (refused: forbidden, too many clients), lines that are too long, failing scrapes.
//
// The data path itself never logs: the workers count every per-packet condition (drop reasons,
// docs/datapath.md) and the control thread reports the counts. So the conditions rate limited here
// are all on control-plane threads, and a burst of them cannot flood the log or slow the loop.

import Logging
import Synchronization

/// A token bucket: `burst` tokens, refilled at `perSecond`; each event takes one when there is
/// one. Time is passed in (seconds on any monotonic scale), so tests drive it directly.
public struct TokenBucket: Sendable, Equatable {
    public let burst: Double
    public let perSecond: Double
    public private(set) var tokens: Double
    public private(set) var last: Double?

    public init(burst: Int, perSecond: Double) {
        precondition(burst >= 1 && perSecond >= 0)
        self.burst = Double(burst)
        self.perSecond = perSecond
        tokens = Double(burst)
    }

    /// True when the event may go ahead (a token was taken).
    public mutating func take(now: Double) -> Bool {
        if let last, now > last { tokens = min(burst, tokens + (now - last) * perSecond) }
        last = max(last ?? now, now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// A logger behind a token bucket shared by every call site that uses it. What the bucket holds
/// back is counted; the next line that passes says how many were suppressed (`suppressed`).
public final class RateLimitedLog: Sendable {
    private let logger: Logger
    private struct State {
        var bucket: TokenBucket
        var suppressed: UInt64 = 0
    }
    private let state: Mutex<State>
    private let clock: @Sendable () -> Double

    public init(logger: Logger, burst: Int = 10, perSecond: Double = 1,
                clock: @escaping @Sendable () -> Double = RateLimitedLog.monotonicSeconds) {
        self.logger = logger
        state = Mutex(State(bucket: TokenBucket(burst: burst, perSecond: perSecond)))
        self.clock = clock
    }

    private static let origin = ContinuousClock.now

    /// Seconds since the first use (ContinuousClock: monotonic).
    public static let monotonicSeconds: @Sendable () -> Double = {
        let elapsed = origin.duration(to: .now).components
        return Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
    }

    /// Lines suppressed so far and not yet reported.
    public var pendingSuppressed: UInt64 { state.withLock { $0.suppressed } }

    public func log(level: Logger.Level, _ message: @autoclosure () -> Logger.Message,
                    metadata: Logger.Metadata = [:]) {
        guard logger.logLevel <= level else { return }
        let now = clock()
        let suppressed: UInt64? = state.withLock { s in
            guard s.bucket.take(now: now) else {
                s.suppressed += 1
                return nil
            }
            defer { s.suppressed = 0 }
            return s.suppressed
        }
        guard let suppressed else { return }
        var metadata = metadata
        if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
        logger.log(level: level, message(), metadata: metadata)
    }

    public func warning(_ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata = [:]) {
        log(level: .warning, message(), metadata: metadata)
    }

    public func info(_ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata = [:]) {
        log(level: .info, message(), metadata: metadata)
    }
}
