// The policy owner: one serial executor (a dedicated NIO event loop, its own thread) holds the
// validated `PolicyState`, drives the data path's tables and the state store, and answers the
// requests the server hands it.
//
// Why one executor: every change is validated against the state the previous change left, tables
// are written by a single writer (the data path's readers never lock), and the order of the journal
// is the order of application. Why a thread of its own rather than the I/O loop: an fdatasync or
// a large batch must not delay the reading and framing of other clients.
//
// A batch goes: validate all of it (PolicyState.applying — nothing changes on error) → compile
// and put/delete every changed session in the tables (plus sessions whose engine or application
// changed) → reclaim retired entries → journal it (fdatasync) → adopt the new state and version →
// publish `policy_applied`. A failure in the tables or the journal undoes the tables and leaves
// the state as it was. Snapshots are written on a queue of their own (`snapshotQueue`): a large
// policy takes seconds to write, and the next request need not wait for it.

import Dispatch
import Logging
import NIOCore
import Synchronization
import UPFPolicy

/// The data path's session tables as the policy owner drives them: compile and install one
/// session, remove one, reclaim retired entries. Called on the policy owner's thread only.
public protocol DatapathTables: AnyObject {
    /// Compiles `session` against `context` (the engines and applications in force) and installs
    /// it, replacing any entry with the same SEID.
    func install(_ session: Session, in context: SessionContext) throws
    func remove(seid: UInt64) throws
    /// Frees entries retired by earlier installs and removals once no reader can see them.
    func reclaim()
    /// Sessions the tables can hold.
    var capacity: Int { get }
    /// Memory one session costs in the tables (for `stats`).
    var bytesPerSession: Int { get }
    /// Memory the tables take now.
    var memoryBytes: Int { get }
    /// Engines that left the policy with an applied batch.
    func enginesRemoved(_ ids: [String])
    /// Liveness of engine `id`'s instances (policy order) as health checks found it; nil: the
    /// engine is gone, forget it. Instances marked down are not steered to.
    func setEngineHealth(_ id: String, up: [Bool]?)
}

extension DatapathTables {
    public func enginesRemoved(_ ids: [String]) {}
    public func setEngineHealth(_ id: String, up: [Bool]?) {}
}

/// One engine instance as the health checks see it (`ControlCore.reportEngineHealth`).
public struct EngineInstanceHealth: Sendable, Equatable {
    /// Steered to: usable (an engine port, a MAC), link up and probe passing.
    public var up: Bool
    /// The engine port's link state; nil when the instance's port is not an engine port.
    public var link: Bool?
    /// The probe's verdict; nil without a probe.
    public var probe: Bool?
    /// Why it is not usable regardless of link and probe (`no_engine_port`, `no_mac`), or nil.
    public var unusable: String?

    public init(up: Bool, link: Bool?, probe: Bool?, unusable: String? = nil) {
        self.up = up
        self.link = link
        self.probe = probe
        self.unusable = unusable
    }
}

/// The running data path as the control plane reports it (`health`, `stats`). Called on the
/// policy owner's thread; implementations read counters without stopping the workers.
public protocol DatapathObserver: AnyObject, Sendable {
    /// "running", or why not.
    var status: String { get }
    /// The `datapath` object of `stats`: ports, workers, actions, drops by reason, engines.
    func statistics() -> JSONValue
    /// The rule counters of session `seid` by evaluation position (packets and bytes of each of
    /// the first `positions` positions; the last counted position also holds every later rule),
    /// nil when the tables do not hold the session.
    func ruleCounters(seid: UInt64, positions: Int) -> [(packets: UInt64, bytes: UInt64)]?
    /// Positions counted per session (`rule_counters_per_session`).
    var countedRulesPerSession: Int { get }
    /// Hands over what the workers raised since the last call (received Error Indications,
    /// End Markers), as events for the `events` stream.
    func drainEvents(_ publish: (ControlEvent) -> Void)
    /// Has the data path send an End Marker on tunnel `teid` to `peer` from `source`; false
    /// when it cannot.
    func sendEndMarker(teid: UInt32, peer: String, source: String) -> Bool
}

extension DatapathObserver {
    public func ruleCounters(seid: UInt64, positions: Int) -> [(packets: UInt64, bytes: UInt64)]? { nil }
    public var countedRulesPerSession: Int { 0 }
    public func drainEvents(_ publish: (ControlEvent) -> Void) {}
    public func sendEndMarker(teid: UInt32, peer: String, source: String) -> Bool { false }
}

public struct ControlCoreConfiguration: Sendable {
    public var limits: PolicyLimits
    public var softwareVersion: String
    /// `control.cpus`: where the snapshot writer's thread runs too (empty: left alone).
    public var cpus: [Int]

    public init(limits: PolicyLimits = PolicyLimits(), softwareVersion: String = UPFDVersion.current, cpus: [Int] = []) {
        self.limits = limits
        self.softwareVersion = softwareVersion
        self.cpus = cpus
    }
}

public enum UPFDVersion {
    /// The software version reported by `version` and `upfd --version`.
    public static let current = "0.1.0"
}

public final class ControlCore: ControlRequestHandling, @unchecked Sendable {
    // @unchecked: every mutable member below is touched only on `loop` (asserted), except the
    // atomics and the Sendable collaborators.

    public let loop: any EventLoop
    let configuration: ControlCoreConfiguration
    let bus: EventBus
    /// Clients subscribed to `events` now.
    public var eventSubscriberCount: Int { bus.subscriberCount }
    let metrics: ControlMetrics
    let logger: Logger
    private let startedAt = ContinuousClock.now
    private let versionAtomic = Atomic<UInt64>(0)

    private var state = PolicyState()
    private let tables: any DatapathTables
    private let store: StateStore?
    private var engineStates: [String: String] = [:]
    /// The last health report per engine (instances in policy order at the time).
    private var engineHealth: [String: [EngineInstanceHealth]] = [:]
    private var sortedSEIDs: [UInt64]?
    private var degraded: [String: String] = [:]
    private var loaded = false
    /// Set once, before the socket serves (then only read on `loop`).
    public nonisolated(unsafe) var datapath: (any DatapathObserver)?
    /// The snapshot being written on `snapshotQueue`, if any, and what to wait on for it.
    private var compaction: (pending: StateStore.PendingSnapshot, done: DispatchGroup)?
    /// Writes snapshots away from the loop: a large policy takes seconds to write, and requests
    /// must not wait for it.
    private let snapshotQueue = DispatchQueue(label: "upfd.snapshot")
    /// Moves the workers' events to the bus (see `startDatapathEvents`).
    private var eventPump: RepeatedTask?

    /// `store` nil: no persistence (tests). Call `load()` before serving.
    public init(configuration: ControlCoreConfiguration, tables: any DatapathTables, store: StateStore?,
                bus: EventBus, metrics: ControlMetrics, loop: any EventLoop, logger: Logger) {
        self.configuration = configuration
        self.tables = tables
        self.store = store
        self.bus = bus
        self.metrics = metrics
        self.loop = loop
        self.logger = logger
    }

    public var currentVersion: UInt64 { versionAtomic.load(ordering: .acquiring) }

    // MARK: start and stop

    /// Reads the persisted policy, validates it under the configured limits and installs every
    /// session in the tables. Throws `StateFileError` (naming the file) or `ControlError`.
    public func load() -> EventLoopFuture<Void> {
        loop.submit { try self.loadOnLoop() }
    }

    private func loadOnLoop() throws {
        loop.preconditionInEventLoop()
        let limits = configuration.limits
        if let store {
            let loaded = try store.load(
                start: { policy, version throws(PolicyError) in try PolicyState.validated(policy, limits: limits, version: version) },
                apply: { state, changes, _ throws(PolicyError) in try state.applying(changes, limits: limits).0 })
            state = loaded.state
            if loaded.droppedTornTail {
                logger.warning("dropped a torn last journal line (a request that was never acknowledged)",
                               metadata: ["file": "\(store.journalPath)"])
            }
            logger.info("policy restored", metadata: [
                "file": "\(store.snapshotPath)", "version": "\(loaded.version)",
                "sessions": "\(state.sessionCount)", "journal_entries": "\(loaded.replayed)",
            ])
        }
        var installed = 0
        let context = state.context
        do {
            try state.forEachSession { session in
                try tables.install(session, in: context)
                installed += 1
            }
        } catch {
            throw ControlError(ControlError.Code.datapathFailed,
                               "cannot install the restored policy in the session tables after \(installed) sessions: \(error)")
        }
        tables.reclaim()
        for id in state.engines.keys { engineStates[id] = "configured" }
        versionAtomic.store(state.version, ordering: .releasing)
        loaded = true
        startDatapathEvents()
        if let store, store.shouldCompact {
            do {
                try store.compact(policy: state.policy, version: state.version)
            } catch {
                logger.warning("cannot write the state snapshot: \(error)")
            }
        }
    }

    /// Every 10 ms the workers' event queues are emptied onto the bus: a worker never waits for
    /// the control plane, and an event reaches subscribers within a poll interval.
    private func startDatapathEvents() {
        guard datapath != nil, eventPump == nil else { return }
        eventPump = loop.scheduleRepeatedTask(initialDelay: .milliseconds(10), delay: .milliseconds(10)) { [weak self] _ in
            guard let self, let datapath = self.datapath else { return }
            datapath.drainEvents { self.bus.publish($0) }
        }
    }

    /// Folds the journal into a fresh snapshot so the next start reads one file.
    public func shutdown() -> EventLoopFuture<Void> {
        loop.submit {
            guard self.loaded, let store = self.store else { return }
            // A snapshot still being written is superseded by this one (which must not write the
            // same temporary file at the same time).
            if let (_, done) = self.compaction {
                done.wait()
                self.compaction = nil
            }
            do {
                try store.compact(policy: self.state.policy, version: self.state.version)
            } catch {
                self.logger.error("cannot write the snapshot at shutdown (the journal still holds every change): \(error)")
            }
        }
    }

    /// Closes the state store (releasing its lock); no request changes anything afterwards.
    public func release() -> EventLoopFuture<Void> {
        loop.submit {
            self.eventPump?.cancel()
            self.eventPump = nil
            self.datapath?.drainEvents { self.bus.publish($0) }
            self.loaded = false
            if let (_, done) = self.compaction {
                done.wait()
                self.compaction = nil
            }
            self.store?.closeJournal()
        }
    }

    // MARK: requests

    public func handle(_ request: ControlRequest) -> EventLoopFuture<ControlReply> {
        loop.submit { () throws -> ControlReply in
            do {
                return try self.handleOnLoop(request)
            } catch let error as ControlError {
                throw error
            } catch {
                throw ControlError(ControlError.Code.internalError, "\(error)")
            }
        }
    }

    /// Synchronous form for callers already on the loop (tests, the data path's reports).
    func handleOnLoop(_ request: ControlRequest) throws(ControlError) -> ControlReply {
        loop.preconditionInEventLoop()
        guard loaded else { throw ControlError(ControlError.Code.internalError, "the policy is not loaded yet") }
        switch request {
        case .apply(let changes, let text):
            return try commit(changes, text: text, pathPrefix: "")
        case .policyPut(let policy, let replace):
            return try putPolicy(policy, replace: replace)
        case .sessionPut(let session, let text, let endMarker):
            let old = state.session(seid: session.seid)?.gnb
            var reply = try commit([.putSession(session)], text: text, rewrite: ("changes[0].session", "session"))
            if endMarker {
                // Only a changed gNB F-TEID has an old path to close; sent once the put is in force.
                let outcome: String
                if let old, old != session.gnb {
                    guard let datapath else { outcome = "not_running"; reply.fields.append(("end_marker", .string(outcome))); return reply }
                    outcome = datapath.sendEndMarker(teid: old.teid, peer: old.address, source: session.n3.address) ? "sent" : "failed"
                    if outcome == "failed" { logger.warning("cannot send the End Marker", metadata: ["seid": "\(session.seid)"]) }
                } else {
                    outcome = "not_needed"
                }
                reply.fields.append(("end_marker", .string(outcome)))
            }
            return reply
        case .sessionDelete(let seid):
            return try commit([.deleteSession(seid: seid)], rewrite: ("changes[0].seid", "seid"))
        case .enginePut(let engine, let text):
            return try commit([.putEngine(engine)], text: text, rewrite: ("changes[0].engine", "engine"))
        case .engineDelete(let id):
            return try commit([.deleteEngine(id: id)], rewrite: ("changes[0].id", "engine_id"))
        case .policyGet:
            return ControlReply(version: state.version, [("policy", Self.raw { $0.policy(state.policy) })])
        case .sessionGet(let seid):
            guard let session = state.session(seid: seid) else {
                throw ControlError(ControlError.Code.notFound, "there is no session with SEID \(seid)", path: "seid")
            }
            var fields: [(String, JSONValue)] = [("session", Self.raw { $0.session(session) })]
            if let counters = sessionCounters(session) { fields.append(("counters", counters)) }
            return ControlReply(version: state.version, fields)
        case .sessionList(let after, let limit):
            return listSessions(after: after, limit: limit)
        case .engineList:
            let engines = state.engines.values.sorted { $0.id < $1.id }.map { engine -> JSONValue in
                .object([
                    ("id", .string(engine.id)),
                    ("state", .string(engineStates[engine.id] ?? "configured")),
                    ("instances", .array(instanceStates(engine))),
                    ("sessions", .int(state.seids(usingEngine: engine.id).count)),
                    ("engine", Self.raw { $0.engine(engine) }),
                ])
            }
            return ControlReply(version: state.version, [("engines", .array(engines))])
        case .stats:
            return ControlReply(version: state.version, stats())
        case .sessionStats(let seid):
            guard let session = state.session(seid: seid) else {
                throw ControlError(ControlError.Code.notFound, "there is no session with SEID \(seid)", path: "session")
            }
            return ControlReply(version: state.version, [
                ("seid", .int(seid)),
                ("counters", sessionCounters(session) ?? .string("not_running")),
            ])
        case .health:
            // Engines down are reported (`engines`), not a degradation of upfd: their traffic
            // takes the fallback the policy chose, and an engine without a known MAC is down by
            // configuration.
            let problems = degraded
            let status = problems.isEmpty ? "ok" : "degraded"
            var fields: [(String, JSONValue)] = [
                ("status", .string(status)),
                ("control", .string("running")),
                ("datapath", .string(datapath?.status ?? "not_running")),
                ("engines", .object(state.engines.keys.sorted().map { ($0, .string(engineStates[$0] ?? "configured")) })),
            ]
            if !problems.isEmpty {
                fields.append(("problems", .object(problems.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
            }
            return ControlReply(version: state.version, fields)
        case .version:
            return ControlReply(version: state.version, [
                ("software", .string(configuration.softwareVersion)),
                ("policy_version", .int(state.version)),
                ("protocol", .int(1)),
            ])
        case .events:
            return ControlReply(version: state.version, [("subscribed", .bool(true))])
        }
    }

    /// `policy.put`: the changes that make the policy hold everything in `policy` (and, with
    /// `replace`, nothing else), as one batch. Errors name the document's fields
    /// (`policy.sessions[2].n3`), not the generated changes.
    private func putPolicy(_ policy: Policy, replace: Bool) throws(ControlError) -> ControlReply {
        try Self.checkUniqueIDs(policy)
        var target = policy
        if !replace {
            // Keep what the document does not name.
            let current = state.policy
            let engineIDs = Set(policy.engines.map(\.id))
            let applicationIDs = Set(policy.applications.map(\.id))
            let seids = Set(policy.sessions.map(\.seid))
            target.engines += current.engines.filter { !engineIDs.contains($0.id) }
            target.applications += current.applications.filter { !applicationIDs.contains($0.id) }
            target.sessions += current.sessions.filter { !seids.contains($0.seid) }
        }
        let changes = state.changes(toReach: target)
        return try commit(changes, pathPrefix: "", describeChange: { index in
            Self.documentPath(of: changes[index], in: policy)
        })
    }

    /// `state.changes(toReach:)` would let a later duplicate win silently.
    private static func checkUniqueIDs(_ policy: Policy) throws(ControlError) {
        func check<ID: Hashable>(_ ids: [ID], _ list: String, _ field: String, _ what: String) throws(ControlError) {
            var first: [ID: Int] = [:]
            for (i, id) in ids.enumerated() {
                if let earlier = first[id] {
                    throw ControlError(PolicyError.Code.duplicateID,
                                       "\(what) \(id) is used twice (\(list)[\(earlier)] and \(list)[\(i)])",
                                       path: "policy.\(list)[\(i)].\(field)")
                }
                first[id] = i
            }
        }
        try check(policy.engines.map(\.id), "engines", "id", "engine id")
        try check(policy.applications.map(\.id), "applications", "id", "application id")
        try check(policy.sessions.map(\.seid), "sessions", "seid", "SEID")
    }

    /// Where the object a generated change comes from sits in the `policy` document; deletions
    /// (made by `replace`) have no place in it and are reported against `policy`.
    private static func documentPath(of change: PolicyChange, in policy: Policy) -> String {
        switch change {
        case .putSession(let session):
            return policy.sessions.firstIndex { $0.seid == session.seid }.map { "policy.sessions[\($0)]" } ?? "policy"
        case .putEngine(let engine):
            return policy.engines.firstIndex { $0.id == engine.id }.map { "policy.engines[\($0)]" } ?? "policy"
        case .putApplication(let application):
            return policy.applications.firstIndex { $0.id == application.id }.map { "policy.applications[\($0)]" } ?? "policy"
        case .deleteSession, .deleteEngine, .deleteApplication:
            return "policy"
        }
    }

    // MARK: committing a batch

    private func commit(_ changes: [PolicyChange], text: ChangesJSON? = nil,
                        rewrite: (String, String)) throws(ControlError) -> ControlReply {
        do {
            return try commit(changes, text: text, pathPrefix: "")
        } catch {
            var error = error
            if error.path.hasPrefix(rewrite.0) {
                error.path = rewrite.1 + error.path.dropFirst(rewrite.0.count)
            } else if error.path.hasPrefix("changes[0]") {
                error.path = rewrite.1
            }
            throw error
        }
    }

    /// `text`: the changes' JSON as the request held it, journaled as it is (nil: encoded here).
    private func commit(_ changes: [PolicyChange], text: ChangesJSON? = nil, pathPrefix: String,
                        describeChange: ((Int) -> String)? = nil) throws(ControlError) -> ControlReply {
        // In place (see `PolicyState.apply`): `state` is the batch's result from here on, and
        // `undo` takes it back if the tables or the journal refuse the batch.
        let versionBefore = state.version
        let delta: PolicyDelta
        let undo: PolicyUndo
        var steps: [PolicyStep] = []
        do {
            (delta, undo) = try state.apply(changes, limits: configuration.limits, steps: &steps)
        } catch {
            var converted = ControlError(error, under: pathPrefix)
            if let describeChange, let (index, rest) = Self.splitChangePath(converted.path) {
                let base = describeChange(index)
                converted.path = base == "policy" ? base : base + rest
            }
            throw converted
        }
        // A batch that changes nothing (the same request twice) is answered without a new version.
        if delta.isEmpty {
            state.revert(undo)
            return ControlReply(version: versionBefore, [("changed", .bool(false))])
        }

        var writer = TableWriter(tables: tables)
        var failedChange = 0
        do {
            try writer.follow(steps, failedChange: &failedChange)
        } catch {
            logger.error("session tables refused a validated batch; rolling back", metadata: ["error": "\(error)"])
            state.revert(undo)
            rollBack(&writer, to: state)
            var refused = error as? ControlError
                ?? ControlError(ControlError.Code.datapathFailed, "the session tables refused the change (\(error))")
            refused.message += "; nothing was applied"
            refused.path = describeChange.map { $0(failedChange) }
                ?? joinPath(pathPrefix, "changes[\(failedChange)]" + Self.argumentName(changes[failedChange]))
            throw refused
        }

        if let store {
            do {
                try store.append(version: state.version, changes: changes, text: text)
            } catch {
                logger.error("cannot journal an applied batch; rolling back", metadata: ["error": "\(error)"])
                state.revert(undo)
                rollBack(&writer, to: state)
                degraded["persistence"] = error.description
                throw ControlError(ControlError.Code.persistFailed, "\(error); nothing was applied")
            }
            degraded["persistence"] = nil
        }
        tables.reclaim()

        if !delta.putSessions.isEmpty || !delta.deletedSessions.isEmpty { sortedSEIDs = nil }
        versionAtomic.store(state.version, ordering: .releasing)
        for engine in delta.putEngines where engineStates[engine.id] == nil {
            engineStates[engine.id] = "configured"
            bus.publish(.engineState(id: engine.id, state: "configured"))
        }
        if !delta.deletedEngines.isEmpty { tables.enginesRemoved(delta.deletedEngines) }
        for id in delta.deletedEngines {
            engineStates[id] = nil
            engineHealth[id] = nil
            tables.setEngineHealth(id, up: nil)
            bus.publish(.engineState(id: id, state: "removed"))
        }
        bus.publish(.policyApplied(version: state.version, sessions: state.sessionCount, engines: state.engines.count))
        if let store, store.shouldCompact { compactInBackground(store) }

        return ControlReply(version: state.version, [
            ("changed", .bool(true)),
            ("delta", .object([
                ("put_sessions", .int(delta.putSessions.count)),
                ("deleted_sessions", .int(delta.deletedSessions.count)),
                ("put_engines", .int(delta.putEngines.count)),
                ("deleted_engines", .int(delta.deletedEngines.count)),
                ("put_applications", .int(delta.putApplications.count)),
                ("deleted_applications", .int(delta.deletedApplications.count)),
                ("table_writes", .int(writer.writes)),
            ])),
        ])
    }

    /// `changes[3].session.n3.teid` → (3, `.n3.teid`).
    static func splitChangePath(_ path: String) -> (Int, Substring)? {
        guard path.hasPrefix("changes["), let close = path.firstIndex(of: "]") else { return nil }
        let digits = path[path.index(path.startIndex, offsetBy: 8)..<close]
        guard let index = Int(digits) else { return nil }
        var rest = path[path.index(after: close)...]
        if rest.hasPrefix(".") {
            // Skip the change's own argument name (session, engine, application, seid, id).
            let afterDot = rest.index(after: rest.startIndex)
            let end = rest[afterDot...].firstIndex { $0 == "." || $0 == "[" } ?? rest.endIndex
            rest = rest[end...]
        }
        return (index, rest)
    }

    /// `.session` for a session put, etc.: where a change's argument sits in `changes[i]`.
    static func argumentName(_ change: PolicyChange) -> String {
        switch change {
        case .putSession: ".session"
        case .deleteSession: ".seid"
        case .putEngine: ".engine"
        case .putApplication: ".application"
        case .deleteEngine, .deleteApplication: ".id"
        }
    }

    private func rollBack(_ writer: inout TableWriter, to before: PolicyState) {
        let failures = writer.undo(to: before)
        tables.reclaim()
        if let failure = failures.first {
            // The tables no longer match the policy: say so in `health` until a restart.
            degraded["tables"] = failure
            logger.critical("session table rollback failed", metadata: ["error": "\(failure)"])
        }
    }

    /// Writes a snapshot of the state in force on `snapshotQueue` (the state is an immutable
    /// value: later batches do not touch it); the journal entries it holds are dropped on the
    /// loop once it is on disk. One at a time.
    private func compactInBackground(_ store: StateStore) {
        guard compaction == nil else { return }
        let pending = store.beginCompaction(version: state.version)
        let snapshot = state
        let done = DispatchGroup()
        compaction = (pending, done)
        let cpus = configuration.cpus
        snapshotQueue.async(group: done) {
            // A Dispatch pool thread: pinned like the loops (the pin stays with the thread, which
            // only ever runs upfd's control-plane work).
            if !cpus.isEmpty { try? ThreadAffinity.pinCurrentThread(to: cpus) }
            let written = Result { () throws(StateFileError) -> Int in try pending.write(policy: snapshot.policy) }
            self.loop.execute { self.finishCompaction(pending, written) }
        }
    }

    private func finishCompaction(_ pending: StateStore.PendingSnapshot, _ written: Result<Int, StateFileError>) {
        // nil or another: shutdown took over (and wrote a newer snapshot).
        guard let store, let current = compaction, current.pending.version == pending.version else { return }
        compaction = nil
        do {
            try store.finishCompaction(pending, snapshotBytes: try written.get())
            logger.info("state snapshot written", metadata: ["file": "\(store.snapshotPath)", "version": "\(pending.version)"])
        } catch {
            // Not fatal: the journal still holds every change; a later batch retries.
            logger.warning("cannot write the state snapshot: \(error)")
        }
    }

    // MARK: reads

    private func listSessions(after: UInt64?, limit: Int) -> ControlReply {
        if sortedSEIDs == nil {
            var seids: [UInt64] = []
            seids.reserveCapacity(state.sessionCount)
            state.forEachSession { seids.append($0.seid) }
            sortedSEIDs = seids.sorted()
        }
        let seids = sortedSEIDs ?? []
        var start = 0
        if let after {
            // First SEID greater than the cursor.
            var low = 0, high = seids.count
            while low < high {
                let mid = (low + high) / 2
                if seids[mid] <= after { low = mid + 1 } else { high = mid }
            }
            start = low
        }
        let end = min(seids.count, start + limit)
        let page = seids[start..<end].compactMap { state.session(seid: $0) }
        let next: JSONValue = end < seids.count && end > start ? .string(String(seids[end - 1])) : .null
        return ControlReply(version: state.version, [
            ("sessions", .array(page.map { session in Self.raw { $0.session(session) } })),
            ("next_cursor", next),
            ("total", .int(seids.count)),
        ])
    }

    /// The counters of `session` as the data path keeps them: per rule by evaluation position
    /// (precedence, then id — the compiler's order), totals over the positions. A rule at or after
    /// the last counted position shares that position's counter (`shared`: the counts are those
    /// of all these rules together). nil without a data path.
    func sessionCounters(_ session: Session) -> JSONValue? {
        guard let datapath, datapath.countedRulesPerSession > 0 else { return nil }
        let order = session.rules.sorted { ($0.precedence, $0.id) < ($1.precedence, $1.id) }
        let counted = datapath.countedRulesPerSession
        guard let values = datapath.ruleCounters(seid: session.seid, positions: min(order.count, counted)) else { return nil }
        var packets: UInt64 = 0, bytes: UInt64 = 0
        for value in values {
            packets &+= value.packets
            bytes &+= value.bytes
        }
        let shared = order.count > counted
        let rules: [JSONValue] = order.enumerated().map { position, rule in
            let index = min(position, counted - 1)
            let value: (packets: UInt64, bytes: UInt64) = index < values.count ? values[index] : (0, 0)
            var fields: [(String, JSONValue)] = [
                ("id", .int(rule.id)), ("position", .int(position)),
                ("packets", .int(value.packets)), ("bytes", .int(value.bytes)),
            ]
            if shared && position >= counted - 1 { fields.append(("shared", .bool(true))) }
            return .object(fields)
        }
        return .object([("packets", .int(packets)), ("bytes", .int(bytes)), ("rules", .array(rules))])
    }

    /// The `stats` answer, as an object: what the socket returns and what the metrics endpoint
    /// renders (both from this one function, so they always agree). On the loop.
    public func statsSnapshot() -> EventLoopFuture<JSONValue> {
        loop.submit { .object([("version", .int(self.state.version))] + self.stats()) }
    }

    // MARK: Engine health

    /// What the health checks need of each engine in force: its instances and probe.
    public func engineHealthTargets() -> EventLoopFuture<[Engine]> {
        loop.submit { self.state.engines.values.sorted { $0.id < $1.id } }
    }

    /// A health check's finding for engine `id` (instances in the order of `engine`, which is
    /// the policy's at the time of the check): marks the instances up or down in the data path
    /// and, when the engine as a whole changed (up: some instance up), publishes `engine_state`.
    public func reportEngineHealth(id: String, engine: Engine, instances: [EngineInstanceHealth]) {
        loop.execute {
            // The engine changed or left meanwhile: the next check reports on what is in force.
            guard self.loaded, self.state.engines[id] == engine, instances.count == engine.instances.count else { return }
            self.engineHealth[id] = instances
            self.tables.setEngineHealth(id, up: instances.map(\.up))
            let next = instances.contains(where: \.up) ? "up" : "down"
            if self.engineStates[id] != next {
                self.logger.notice("engine state changed", metadata: [
                    "engine": "\(id)", "state": "\(next)", "from": "\(self.engineStates[id] ?? "configured")"])
                self.engineStates[id] = next
                self.bus.publish(.engineState(id: id, state: next))
            }
        }
    }

    private func instanceStates(_ engine: Engine) -> [JSONValue] {
        let health = engineHealth[engine.id].flatMap { $0.count == engine.instances.count ? $0 : nil }
        return engine.instances.enumerated().map { i, instance in
            var fields: [(String, JSONValue)] = [("address", .string(instance.address)), ("port", .string(instance.port))]
            guard let h = health?[i] else {
                fields.append(("state", .string("configured")))
                return .object(fields)
            }
            fields.append(("state", .string(h.up ? "up" : "down")))
            fields.append(("link", h.link.map { .string($0 ? "up" : "down") } ?? .null))
            fields.append(("probe", h.probe.map { .string($0 ? "up" : "down") } ?? .string("none")))
            if let reason = h.unusable { fields.append(("unusable", .string(reason))) }
            return .object(fields)
        }
    }

    private func stats() -> [(String, JSONValue)] {
        let m = metrics.snapshot
        let uptime = ContinuousClock.now - startedAt
        let limits = configuration.limits
        return [
            ("datapath", datapath?.statistics() ?? .string("not_running")),
            ("sessions", .int(state.sessionCount)),
            ("engines", .int(state.engines.count)),
            ("engine_states", .object(state.engines.keys.sorted().map { ($0, .string(engineStates[$0] ?? "configured")) })),
            ("applications", .int(state.applications.count)),
            ("policy_version", .int(state.version)),
            ("table", .object([
                ("capacity", .int(min(tables.capacity, limits.maxSessions))),
                ("bytes_per_session", .int(tables.bytesPerSession)),
                ("memory_bytes", .int(tables.memoryBytes)),
            ])),
            ("limits", .object([
                ("max_sessions", .int(limits.maxSessions)),
                ("max_rules_per_session", .int(limits.maxRulesPerSession)),
                ("max_engines", .int(limits.maxEngines)),
                ("max_applications", .int(limits.maxApplications)),
                ("max_filter_entries", .int(limits.maxFilterEntries)),
            ])),
            ("requests", .object([
                ("ok", .int(m.requestsOK)),
                ("failed", .int(m.requestsFailed)),
                ("applied", .int(m.applied)),
                ("refused", .int(m.failed)),
            ])),
            ("errors", .object(m.errorsByCode.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("clients", .object([
                ("connected", .int(m.connectedClients)),
                ("accepted", .int(m.connectionsAccepted)),
                ("refused", .int(m.connectionsRefused)),
            ])),
            ("events", .object([
                ("subscribers", .int(bus.subscriberCount)),
                ("published", .int(bus.publishedCount)),
                ("dropped", .int(bus.droppedCount)),
            ])),
            ("uptime_seconds", .int(uptime.components.seconds)),
        ]
    }

    /// The policy in force. On the loop.
    func snapshotPolicy() -> Policy {
        loop.preconditionInEventLoop()
        return state.policy
    }

    // MARK: reports from the data path

    /// Records an engine's liveness as the data path sees it and publishes `engine_state`.
    public func reportEngineState(id: String, state newState: String) {
        loop.execute {
            guard self.state.engines[id] != nil, self.engineStates[id] != newState else { return }
            self.engineStates[id] = newState
            self.bus.publish(.engineState(id: id, state: newState))
        }
    }

    /// A policy value as compact JSON with sorted keys (the bytes of the model's own encoding).
    static func raw(_ write: (inout PolicyJSONWriter) -> Void) -> JSONValue {
        var writer = PolicyJSONWriter()
        write(&writer)
        return .raw(String(decoding: writer.bytes, as: UTF8.self))
    }
}

/// Writes one batch into the tables in the order the batch was validated (its `PolicyStep`s),
/// and remembers what each write replaced so the batch can be undone.
///
/// Why change by change rather than the net delta: the batch was validated change by change, so
/// an intermediate state is what makes a later change valid (delete session A, then give its TEID
/// to session B). Written as a net delta, B's put would meet A's TEID still in the tables.
struct TableWriter {
    let tables: any DatapathTables
    /// What each write put in the tables, in order (nil = removed). What a write replaced is only
    /// worked out for an undo: the batch's earlier write of that SEID, else the state before it.
    private var log: [(seid: UInt64, content: (Session, SessionContext)?)] = []
    private(set) var writes = 0

    init(tables: any DatapathTables) {
        self.tables = tables
    }

    private mutating func install(_ session: Session, in context: SessionContext) throws {
        try tables.install(session, in: context)
        log.append((session.seid, (session, context)))
        writes += 1
    }

    private mutating func remove(_ seid: UInt64) throws {
        try tables.remove(seid: seid)
        log.append((seid, nil))
        writes += 1
    }

    /// Writes each step; `failedChange` is the index of the change whose step failed.
    mutating func follow(_ steps: [PolicyStep], failedChange: inout Int) throws {
        for step in steps {
            failedChange = step.change
            switch step.action {
            case .install(let session, let context): try install(session, in: context)
            case .remove(let seid): try remove(seid)
            }
        }
    }

    /// Puts back what each write replaced, newest first (`before`: the state the batch started
    /// from). Returns the failures (none expected).
    mutating func undo(to before: PolicyState) -> [String] {
        // For each write, the index of the batch's previous write of the same SEID.
        var previousWrite = [Int?](repeating: nil, count: log.count)
        var lastWrite: [UInt64: Int] = [:]
        for (index, entry) in log.enumerated() {
            previousWrite[index] = lastWrite.updateValue(index, forKey: entry.seid)
        }
        var failures: [String] = []
        for index in log.indices.reversed() {
            let seid = log[index].seid
            let previous = previousWrite[index].map { log[$0].content } ?? before.session(seid: seid).map { ($0, before.context) }
            do {
                if let (session, context) = previous {
                    try tables.install(session, in: context)
                } else {
                    try tables.remove(seid: seid)
                }
            } catch {
                failures.append("rollback of SEID \(seid) failed: \(error)")
            }
        }
        log = []
        return failures
    }
}
