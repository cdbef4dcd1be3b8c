import UPFDatapath
import UPFPolicy

#if canImport(Glibc)
import Glibc
#endif

/// The data path's `SessionTables` behind `DatapathTables`: compiles each session and puts it,
/// and keeps the engine id → index map that compiled steering actions refer to.
///
/// Engine indices are stable for as long as an engine exists (a session compiled earlier keeps
/// pointing at the right engine), and reused only after the engine is gone — the policy refuses
/// to delete an engine that sessions still steer to, so no compiled session names a freed index.
/// `engineIndices` is what the data path's engine table will be keyed by.
public final class DatapathSessionTables: DatapathTables {
    public let tables: SessionTables
    public private(set) var engineIndices: [String: Int] = [:]
    private var freeIndices: [Int] = []
    private var nextIndex = 0
    /// How long a put may wait for the workers to pass a quiescent point before failing.
    private let reclaimAttempts: Int
    /// Where steering actions find their engines: the data path's engine directory, with the
    /// function that turns an engine of the policy into its entry (ports and MACs are the data
    /// path's knowledge). nil when no data path runs.
    private let engineDirectory: (directory: EngineDirectory, resolve: @Sendable (Engine) -> EngineEntry)?
    /// The engine each directory index was last published from.
    private var publishedEngines: [Int: Engine] = [:]
    /// Called with a directory index given to a new engine after an engine that had it left the
    /// policy: the data path's per-engine counters of that index still hold the old engine's
    /// counts, so the observer records a baseline (the counters are the workers', not ours to zero).
    public var engineIndexReused: ((Int) -> Void)?
    /// Called with a session's slot after a put replaced the session with one whose rules are in
    /// a different evaluation order (or are other rules): rule counters are kept by position, so
    /// the observer records a baseline and reports counts since then.
    public var rulesReordered: ((Int) -> Void)?
    /// Health checks' verdict per engine id and instance (absent: up).
    private var engineHealth: [String: [Bool]] = [:]

    /// An engine as the data path's directory holds it.
    public struct EngineEntry: Sendable, Equatable {
        public var instances: [EngineDirectory.Instance]
        public var fallbackDrop: Bool
        public init(instances: [EngineDirectory.Instance], fallbackDrop: Bool) {
            self.instances = instances
            self.fallbackDrop = fallbackDrop
        }
    }

    public init(tables: SessionTables, reclaimAttempts: Int = 2000,
                engines: (directory: EngineDirectory, resolve: @Sendable (Engine) -> EngineEntry)? = nil) {
        self.tables = tables
        self.reclaimAttempts = reclaimAttempts
        self.engineDirectory = engines
    }

    public var capacity: Int { tables.capacity }
    public var bytesPerSession: Int {
        Int(SessionTables.bytesPerSession(capacity: tables.capacity, spareRecords: tables.spareRecords).rounded(.up))
    }
    public var memoryBytes: Int { tables.reservedBytes }

    public func install(_ session: Session, in context: SessionContext) throws {
        let indices = engineIndices(for: session, in: context)
        publishEngines(of: session, in: context, indices: indices)
        let compiled = CompiledSession.compile(session, engines: indices, applications: context.applications)
        if let note = compiled.notes.first {
            // A validated session compiles cleanly; a note means the model and the compiler disagree.
            throw ControlError(ControlError.Code.datapathFailed, "session \(session.seid) does not compile: \(note)")
        }
        let before = rulesReordered == nil ? nil : tables.ruleIDs(seid: session.seid)
        try retryingReclaim { () throws(TableError) in try tables.put(compiled) }
        if let before, let hook = rulesReordered, before != compiled.rules.map(\.id), let slot = tables.slot(seid: session.seid) {
            hook(slot)
        }
    }

    /// Frees the directory indices of engines that left the policy (ControlCore calls this once
    /// a batch that deleted them is applied), so `stats` no longer lists them.
    public func enginesRemoved(_ ids: [String]) {
        for id in ids {
            if let index = engineIndices.removeValue(forKey: id) { freeIndices.append(index) }
        }
    }

    public func remove(seid: UInt64) throws {
        do {
            try retryingReclaim { () throws(TableError) in try tables.delete(seid: seid) }
        } catch TableError.notFound {
            // Already absent: the goal of a removal (and of a rollback's removal) is met.
        }
    }

    public func reclaim() {
        _ = tables.reclaim()
    }

    /// The engine map for compiling `session`: indices are assigned when an engine is first
    /// steered to, and freed (for reuse) when a new one is numbered after the engine left the
    /// policy. O(actions) per session, so restoring a million sessions does not walk the engine
    /// list a million times.
    private func engineIndices(for session: Session, in context: SessionContext) -> [String: Int] {
        var pruned = false
        for action in session.actions {
            guard let id = action.kind.engine, engineIndices[id] == nil, context.engines[id] != nil else { continue }
            if !pruned {
                // A new engine to number (rare): free the indices of engines that are gone first.
                for gone in engineIndices.keys where context.engines[gone] == nil {
                    if let index = engineIndices.removeValue(forKey: gone) { freeIndices.append(index) }
                }
                pruned = true
            }
            if let index = freeIndices.popLast() {
                engineIndices[id] = index
                engineIndexReused?(index)
            } else {
                engineIndices[id] = nextIndex
                nextIndex += 1
            }
        }
        return engineIndices
    }

    /// Publishes, before the session that steers to them is visible, the engines `session`
    /// steers to whose entry changed (a rolled-back transaction re-installs its sessions against
    /// the old state, which publishes the old engine again).
    private func publishEngines(of session: Session, in context: SessionContext, indices: [String: Int]) {
        guard let (directory, resolve) = engineDirectory else { return }
        for action in session.actions {
            guard let id = action.kind.engine, let index = indices[id], let engine = context.engines[id],
                  index < directory.capacity, publishedEngines[index] != engine else { continue }
            var entry = resolve(engine)
            // A re-published engine keeps what health checks found (until they report again).
            if let health = engineHealth[id], health.count == entry.instances.count {
                for i in entry.instances.indices where !health[i] { entry.instances[i].up = false }
            }
            directory.set(index, instances: Array(entry.instances.prefix(EngineDirectory.maxInstances)),
                          fallbackDrop: entry.fallbackDrop)
            publishedEngines[index] = engine
        }
    }

    public func setEngineHealth(_ id: String, up: [Bool]?) {
        guard let up else {
            engineHealth[id] = nil
            return
        }
        engineHealth[id] = up
        guard let (directory, _) = engineDirectory, let index = engineIndices[id], index < directory.capacity,
              publishedEngines[index] != nil else { return }
        for (i, isUp) in up.prefix(EngineDirectory.maxInstances).enumerated() {
            directory.setUp(index, instance: i, up: isUp)
        }
    }

    /// The directory index of engine `id`, nil when no session steers to it.
    public func engineIndex(_ id: String) -> Int? { engineIndices[id] }

    /// Retired versions wait for the workers' quiescent points (microseconds apart): reclaim and
    /// retry for a bounded time before reporting the tables busy.
    private func retryingReclaim(_ body: () throws(TableError) -> Void) throws {
        var attempt = 0
        while true {
            do {
                try body()
                return
            } catch .reclaimPending where attempt < reclaimAttempts {
                attempt += 1
                _ = tables.reclaim()
                if attempt > 10 { usleep(50) }
            } catch {
                throw Self.controlError(error)
            }
        }
    }

    static func controlError(_ error: TableError) -> ControlError {
        switch error {
        case .full(let capacity):
            ControlError(ControlError.Code.tableFull, "session table full (\(capacity) sessions)")
        case .keyInUse:
            ControlError(PolicyError.Code.collision, "session tables: \(error)")
        default:
            ControlError(ControlError.Code.datapathFailed, "session tables: \(error)")
        }
    }
}
