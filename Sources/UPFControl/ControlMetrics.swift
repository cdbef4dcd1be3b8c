import Synchronization

/// Counters of the control plane, shared by the connection threads and the policy owner.
/// A lock, not atomics: they are touched once per request, never per packet.
public final class ControlMetrics: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var connectedClients = 0
        public var connectionsAccepted: UInt64 = 0
        public var connectionsRefused: UInt64 = 0
        /// Requests answered `ok:true` (all operations).
        public var requestsOK: UInt64 = 0
        /// Requests answered with an error (all operations, including unparsable lines).
        public var requestsFailed: UInt64 = 0
        /// Policy-changing requests that were applied / refused.
        public var applied: UInt64 = 0
        public var failed: UInt64 = 0
        public var errorsByCode: [String: UInt64] = [:]
    }

    private let state = Mutex(Snapshot())

    public init() {}

    public var snapshot: Snapshot { state.withLock { $0 } }

    /// Counts a new connection; false when it would exceed `limit` (it is then not counted).
    public func connect(limit: Int) -> Bool {
        state.withLock { s in
            guard s.connectedClients < limit else {
                s.connectionsRefused += 1
                s.errorsByCode["too_many_clients", default: 0] += 1
                return false
            }
            s.connectedClients += 1
            s.connectionsAccepted += 1
            return true
        }
    }

    public func disconnect() {
        state.withLock { $0.connectedClients -= 1 }
    }

    public func refused(code: String) {
        state.withLock { s in
            s.connectionsRefused += 1
            s.errorsByCode[code, default: 0] += 1
        }
    }

    /// Records a request's outcome. `mutation` marks policy-changing operations.
    public func record(mutation: Bool, error: ControlError?) {
        state.withLock { s in
            if let error {
                s.requestsFailed += 1
                if mutation { s.failed += 1 }
                s.errorsByCode[error.code, default: 0] += 1
            } else {
                s.requestsOK += 1
                if mutation { s.applied += 1 }
            }
        }
    }

    /// An error that ends a connection without a request (idle timeout, line too long).
    public func connectionError(code: String) {
        state.withLock { s in
            s.requestsFailed += 1
            s.errorsByCode[code, default: 0] += 1
        }
    }
}
