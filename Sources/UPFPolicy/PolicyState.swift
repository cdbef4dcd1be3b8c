import UPFPackets

/// What one applied batch changed, net of the whole batch, so the datapath tables can be updated
/// incrementally. A session (engine, application) appears at most once: in `put…` with its final
/// content when it was created or its content changed, or in `deleted…` when it existed before the
/// batch and does not after it. Re-putting an identical object appears nowhere.
public struct PolicyDelta: Sendable, Equatable {
    public var putSessions: [Session] = []
    public var deletedSessions: [UInt64] = []
    public var putEngines: [Engine] = []
    public var deletedEngines: [String] = []
    public var putApplications: [Application] = []
    public var deletedApplications: [String] = []

    public init(putSessions: [Session] = [], deletedSessions: [UInt64] = [], putEngines: [Engine] = [],
                deletedEngines: [String] = [], putApplications: [Application] = [], deletedApplications: [String] = []) {
        self.putSessions = putSessions
        self.deletedSessions = deletedSessions
        self.putEngines = putEngines
        self.deletedEngines = deletedEngines
        self.putApplications = putApplications
        self.deletedApplications = deletedApplications
    }

    public var isEmpty: Bool {
        putSessions.isEmpty && deletedSessions.isEmpty && putEngines.isEmpty && deletedEngines.isEmpty
            && putApplications.isEmpty && deletedApplications.isEmpty
    }
}

/// What a session refers to outside itself: the engines and applications in force, by id. A
/// session is compiled for the data path against one.
public struct SessionContext: Sendable, Equatable {
    public var engines: [String: Engine]
    public var applications: [String: Application]

    public init(engines: [String: Engine] = [:], applications: [String: Application] = [:]) {
        self.engines = engines
        self.applications = applications
    }
}

/// What one change of a batch did to the sessions, in batch order: the work of whoever mirrors
/// the policy change by change, as the data path's tables do. (The net `PolicyDelta` is not
/// enough for them: a batch may delete session A and give its TEID to session B, and written as
/// a net delta B's put would meet A's TEID still in the tables.)
public struct PolicyStep: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// The session was created or changed, or an engine or application it uses was: compile
        /// and install it against `context`, the engines and applications at that point.
        case install(Session, SessionContext)
        case remove(seid: UInt64)
    }

    /// The index of the change in the batch.
    public var change: Int
    public var action: Action

    public init(change: Int, _ action: Action) {
        self.change = change
        self.action = action
    }
}

/// A validated policy with its lookup indexes. A value: `applying` returns a new state and leaves
/// this one untouched, sharing all but O(1) of its storage (persistent hash tries), so holding on
/// to an old version costs nothing and one change never copies or revalidates the other sessions.
/// `apply` changes a state in place, with an undo log (`revert`), for whoever keeps only one.
///
/// Invariants: every session passed `Check.session`; every reference (rule → action/qos/counter,
/// action → engine, rule → application) resolves; no two sessions share a local N3 F-TEID or a UE
/// IPv4 address, and no two UE IPv6 prefixes overlap; every table is within the limits it was last
/// changed with.
public struct PolicyState: Sendable {
    /// 0 for a state made by `validated` (unless given), +1 per successful `applying`, even when
    /// the batch changed nothing (the delta says whether it did).
    public private(set) var version: UInt64 = 0
    public private(set) var engines: [String: Engine] = [:]
    public private(set) var applications: [String: Application] = [:]

    /// A session as stored: a reference, so that copying a trie node (32 slots, when one version
    /// updates a node another still holds) copies 32 pointers rather than 32 sessions, each a
    /// dozen reference-counted fields. Immutable; a change stores a new one.
    final class Stored: Sendable {
        let session: Session
        let keys: SessionKeys

        init(session: Session, keys: SessionKeys) {
            self.session = session
            self.keys = keys
        }
    }

    var sessionTable = PersistentMap<UInt64, Stored>()
    /// Local N3 TEID → SEID. TEIDs are unique per UPF whatever the N3 address: the fast path's
    /// uplink table is keyed by TEID alone.
    var n3Index = PersistentMap<UInt32, UInt64>()
    var ueIPv4Index = PersistentMap<IPAddress, UInt64>()
    var ueIPv6Index = PersistentMap<IPPrefix, UInt64>()
    /// Sessions per UE IPv6 prefix length.
    var ueIPv6Lengths: [UInt8: Int] = [:]
    /// For each length in `coverLengths`, how many UE prefixes longer than it lie under each
    /// prefix of that length: finds a new prefix that would contain existing ones in O(1).
    /// Lengths are added when first needed (an O(n) pass, at most once per length) and never
    /// removed, so with the usual single length (/64) there is no pass at all.
    var ueIPv6Cover = PersistentMap<IPPrefix, Int>()
    var coverLengths: [UInt8] = []
    /// Sessions steering to each engine / naming each application.
    var engineUsers: [String: PersistentMap<UInt64, Void>] = [:]
    var applicationUsers: [String: PersistentMap<UInt64, Void>] = [:]
    /// O(n) passes made so far (cover lengths added); tests check that ordinary changes make none.
    private(set) var fullPasses = 0
    /// While `apply` runs: each table write of the batch, to take it back (nil otherwise).
    private var undoLog: [PolicyUndo.Write]?

    /// The empty policy.
    public init() {}

    // MARK: Reading

    public var sessionCount: Int { sessionTable.count }

    public func session(seid: UInt64) -> Session? { sessionTable[seid]?.session }

    /// The session whose local N3 F-TEID this is.
    public func seid(n3TEID teid: UInt32, address: IPAddress) -> UInt64? {
        guard let seid = n3Index[teid], sessionTable[seid]?.keys.n3.address == address else { return nil }
        return seid
    }

    /// The session owning a local N3 TEID, on whichever N3 address.
    public func seid(n3TEID teid: UInt32) -> UInt64? { n3Index[teid] }

    /// The session a downlink packet to `address` belongs to: the UE IPv4 address, or the UE IPv6
    /// prefix containing it.
    public func seid(ueAddress address: IPAddress) -> UInt64? {
        if address.isIPv4 { return ueIPv4Index[address] }
        for length in ueIPv6Lengths.keys.sorted(by: >) {
            if let seid = ueIPv6Index[IPPrefix(address: address, length: length)] { return seid }
        }
        return nil
    }

    /// The sessions with an action steering to `engine` (unordered).
    public func seids(usingEngine engine: String) -> [UInt64] { engineUsers[engine]?.keys ?? [] }

    /// The sessions with a rule naming `application` (unordered): to recompile when it changes.
    public func seids(usingApplication application: String) -> [UInt64] { applicationUsers[application]?.keys ?? [] }

    /// Every session, in no particular order.
    public func forEachSession(_ body: (Session) throws -> Void) rethrows {
        for (_, stored) in sessionTable { try body(stored.session) }
    }

    /// The whole policy, sessions sorted by SEID and engines and applications by id: for
    /// persistence and listings. O(n log n).
    public var policy: Policy {
        // Sorted by the key held beside each session: comparing through the stored sessions was a
        // cache miss per comparison.
        var bySEID: [(seid: UInt64, stored: Stored)] = []
        bySEID.reserveCapacity(sessionTable.count)
        for (seid, stored) in sessionTable { bySEID.append((seid, stored)) }
        bySEID.sort { $0.seid < $1.seid }
        return Policy(engines: engines.values.sorted { $0.id < $1.id },
                      applications: applications.values.sorted { $0.id < $1.id },
                      sessions: bySEID.map(\.stored.session))
    }

    // MARK: Building and changing

    /// Checks a whole policy (engines, then applications, then sessions; the first error wins)
    /// and indexes it. Error paths are those of the document (`sessions[3].n3.teid`).
    public static func validated(_ policy: Policy, limits: PolicyLimits = PolicyLimits(),
                                 version: UInt64 = 0) throws(PolicyError) -> PolicyState {
        var state = PolicyState()
        state.version = version
        var engineIndex: [String: Int] = [:]
        for (i, engine) in policy.engines.enumerated() {
            func path() -> String { "engines[\(i)]" }
            if let earlier = engineIndex[engine.id] {
                throw Check.fail(PolicyError.Code.duplicateID, "\(path()).id",
                                 "engine id '\(engine.id)' is used twice (engines[\(earlier)] and \(path()))")
            }
            engineIndex[engine.id] = i
            try state.putEngine(engine, path(), limits)
        }
        var applicationIndex: [String: Int] = [:]
        for (i, application) in policy.applications.enumerated() {
            func path() -> String { "applications[\(i)]" }
            if let earlier = applicationIndex[application.id] {
                throw Check.fail(PolicyError.Code.duplicateID, "\(path()).id",
                                 "application id '\(application.id)' is used twice (applications[\(earlier)] and \(path()))")
            }
            applicationIndex[application.id] = i
            try state.putApplication(application, path(), limits)
        }
        var sessionIndex: [UInt64: Int] = [:]
        for (i, session) in policy.sessions.enumerated() {
            func path() -> String { "sessions[\(i)]" }
            if let earlier = sessionIndex[session.seid] {
                throw Check.fail(PolicyError.Code.duplicateID, "\(path()).seid",
                                 "SEID \(session.seid) is used twice (sessions[\(earlier)] and \(path()))")
            }
            sessionIndex[session.seid] = i
            try state.putSession(session, path(), limits)
        }
        return state
    }

    /// Applies a batch: wholly or not at all. Changes apply in order, each checked against the
    /// state the changes before it made (so a batch may add an engine and then a session steering
    /// to it). Error paths start with `changes[i]`. Each change costs O(1) amortised, whatever the
    /// number of sessions. On success the version is one more than this one's.
    public func applying(_ changes: [PolicyChange],
                         limits: PolicyLimits = PolicyLimits()) throws(PolicyError) -> (PolicyState, PolicyDelta) {
        var steps: [PolicyStep] = []
        return try applying(changes, limits: limits, steps: &steps)
    }

    /// `applying`, also appending to `steps` what each change did, in batch order (see
    /// `PolicyStep`; meaningless when it throws).
    public func applying(_ changes: [PolicyChange], limits: PolicyLimits = PolicyLimits(),
                         steps: inout [PolicyStep]) throws(PolicyError) -> (PolicyState, PolicyDelta) {
        var next = self
        let delta = try next.applyInPlace(changes, limits: limits, steps: &steps)
        return (next, delta)
    }

    /// `applying` in place: on error this state is as it was.
    @discardableResult
    public mutating func apply(_ changes: [PolicyChange], limits: PolicyLimits = PolicyLimits()) throws(PolicyError) -> PolicyDelta {
        var steps: [PolicyStep] = []
        return try apply(changes, limits: limits, steps: &steps).delta
    }

    /// `applying` in place, returning what `revert` needs to take the batch back (for a batch
    /// that was applied here but could not be carried out further on, as when the data path's
    /// tables or the journal refuse it). On error this state is as it was.
    ///
    /// Why in place: when the old version stays alive, as `applying` keeps it, every change
    /// copies its path in each trie (a 32-slot node per level, each slot retained) and dropping
    /// the old version afterwards frees them; at 100 k sessions that was about a third of the
    /// policy thread's time per batched session. A state nobody else holds is changed in place,
    /// and the undo log costs one entry per table write.
    public mutating func apply(_ changes: [PolicyChange], limits: PolicyLimits = PolicyLimits(),
                               steps: inout [PolicyStep]) throws(PolicyError) -> (delta: PolicyDelta, undo: PolicyUndo) {
        let saved = PolicyUndo.Saved(version: version, engines: engines, applications: applications,
                                     ueIPv6Lengths: ueIPv6Lengths, coverLengths: coverLengths, fullPasses: fullPasses)
        undoLog = []
        defer { undoLog = nil }
        do {
            let delta = try applyInPlace(changes, limits: limits, steps: &steps)
            return (delta, PolicyUndo(saved: saved, writes: undoLog ?? []))
        } catch {
            revert(PolicyUndo(saved: saved, writes: undoLog ?? []))
            throw error
        }
    }

    /// Takes back the batch `undo` came from. Only valid on the state `apply` left, before any
    /// other change.
    public mutating func revert(_ undo: PolicyUndo) {
        undoLog = nil
        for write in undo.writes.reversed() {
            switch write {
            case .session(let seid, let old): Self.set(&sessionTable, seid, old)
            case .n3(let teid, let old): Self.set(&n3Index, teid, old)
            case .ueIPv4(let address, let old): Self.set(&ueIPv4Index, address, old)
            case .ueIPv6(let prefix, let old): Self.set(&ueIPv6Index, prefix, old)
            case .cover(let prefix, let old): Self.set(&ueIPv6Cover, prefix, old)
            case .engineUser(let engine, let seid, let wasUser): Self.setUser(&engineUsers, engine, seid, wasUser)
            case .applicationUser(let application, let seid, let wasUser):
                Self.setUser(&applicationUsers, application, seid, wasUser)
            }
        }
        let saved = undo.saved
        (version, engines, applications) = (saved.version, saved.engines, saved.applications)
        (ueIPv6Lengths, coverLengths, fullPasses) = (saved.ueIPv6Lengths, saved.coverLengths, saved.fullPasses)
    }

    /// The batch, changing this state as it goes; table writes are logged when `undoLog` is set.
    /// When it throws, the caller reverts (`apply`) or discards (`applying`) this state.
    private mutating func applyInPlace(_ changes: [PolicyChange], limits: PolicyLimits,
                                       steps: inout [PolicyStep]) throws(PolicyError) -> PolicyDelta {
        let enginesBefore = engines, applicationsBefore = applications
        // Each session the batch touches, as it was before the batch and as it is after it
        // (kept here rather than looked up again: at scale a lookup is a few cache misses).
        var sessionChanges: [(seid: UInt64, old: Session?, new: Session?)] = []
        var sessionIndex: [UInt64: Int] = [:]
        func touch(_ seid: UInt64, old: Session?, new: Session?) {
            if let i = sessionIndex[seid] {
                sessionChanges[i].new = new
            } else {
                sessionIndex[seid] = sessionChanges.count
                sessionChanges.append((seid, old, new))
            }
        }
        var touchedEngines: [String] = [], touchedApplications: [String] = []
        var seenEngines = Set<String>(), seenApplications = Set<String>()
        steps.reserveCapacity(steps.count + changes.count)
        for (i, change) in changes.enumerated() {
            func path() -> String { "changes[\(i)]" }
            switch change {
            case .putSession(let session):
                let (changed, previous) = try putSession(session, "\(path()).session", limits)
                if changed { steps.append(PolicyStep(change: i, .install(session, context))) }
                touch(session.seid, old: previous, new: session)
            case .deleteSession(let seid):
                let previous = try deleteSession(seid, "\(path()).seid")
                steps.append(PolicyStep(change: i, .remove(seid: seid)))
                touch(seid, old: previous, new: nil)
            case .putEngine(let engine):
                let replacing = engines[engine.id] != nil
                if try putEngine(engine, "\(path()).engine", limits), replacing {
                    recompile(seids(usingEngine: engine.id), change: i, into: &steps)
                }
                if seenEngines.insert(engine.id).inserted { touchedEngines.append(engine.id) }
            case .deleteEngine(let id):
                try deleteEngine(id, "\(path()).id")
                if seenEngines.insert(id).inserted { touchedEngines.append(id) }
            case .putApplication(let application):
                let replacing = applications[application.id] != nil
                if try putApplication(application, "\(path()).application", limits), replacing {
                    recompile(seids(usingApplication: application.id), change: i, into: &steps)
                }
                if seenApplications.insert(application.id).inserted { touchedApplications.append(application.id) }
            case .deleteApplication(let id):
                try deleteApplication(id, "\(path()).id")
                if seenApplications.insert(id).inserted { touchedApplications.append(id) }
            }
        }
        version &+= 1
        var delta = PolicyDelta()
        for (seid, old, new) in sessionChanges {
            if let new { if new != old { delta.putSessions.append(new) } } else if old != nil { delta.deletedSessions.append(seid) }
        }
        for id in touchedEngines {
            let old = enginesBefore[id], new = engines[id]
            if let new { if new != old { delta.putEngines.append(new) } } else if old != nil { delta.deletedEngines.append(id) }
        }
        for id in touchedApplications {
            let old = applicationsBefore[id], new = applications[id]
            if let new { if new != old { delta.putApplications.append(new) } } else if old != nil { delta.deletedApplications.append(id) }
        }
        return delta
    }

    /// Steps that compile `seids` again (sessions whose engine or application changed), by SEID.
    private func recompile(_ seids: [UInt64], change: Int, into steps: inout [PolicyStep]) {
        let context = self.context
        for seid in seids.sorted() {
            if let session = session(seid: seid) { steps.append(PolicyStep(change: change, .install(session, context))) }
        }
    }

    /// The engines and applications sessions are compiled against.
    public var context: SessionContext { SessionContext(engines: engines, applications: applications) }

    /// The changes that turn this state into `policy` (engines and applications put first, then
    /// sessions deleted and put, then engines and applications deleted). Applying them checks
    /// `policy` as `validated` would, but with `changes[i]` paths. O(n).
    public func changes(toReach policy: Policy) -> [PolicyChange] {
        var result: [PolicyChange] = []
        for engine in policy.engines where engines[engine.id] != engine { result.append(.putEngine(engine)) }
        for application in policy.applications where applications[application.id] != application {
            result.append(.putApplication(application))
        }
        let wanted = Set(policy.sessions.map(\.seid))
        for (seid, _) in sessionTable where !wanted.contains(seid) { result.append(.deleteSession(seid: seid)) }
        for session in policy.sessions where self.session(seid: session.seid) != session { result.append(.putSession(session)) }
        let wantedApplications = Set(policy.applications.map(\.id))
        for id in applications.keys.sorted() where !wantedApplications.contains(id) { result.append(.deleteApplication(id: id)) }
        let wantedEngines = Set(policy.engines.map(\.id))
        for id in engines.keys.sorted() where !wantedEngines.contains(id) { result.append(.deleteEngine(id: id)) }
        return result
    }

    /// Node allocations in the session table and indexes so far (inherited by copies): the
    /// difference across one `applying` is the storage that change copied.
    var storageAllocations: Int {
        sessionTable.allocations + n3Index.allocations + ueIPv4Index.allocations + ueIPv6Index.allocations
            + ueIPv6Cover.allocations + engineUsers.values.reduce(0) { $0 + $1.allocations }
            + applicationUsers.values.reduce(0) { $0 + $1.allocations }
    }

    // MARK: Single changes (callers discard the state when one throws)

    /// Returns false when the engine is already there as it is.
    @discardableResult
    mutating func putEngine(_ engine: Engine, _ path: @autoclosure Check.Path, _ limits: PolicyLimits) throws(PolicyError) -> Bool {
        if engines[engine.id] == engine { return false }
        try Check.engine(engine, path())
        if engines[engine.id] == nil && engines.count >= limits.maxEngines {
            throw Check.fail(PolicyError.Code.tableFull, path(),
                             "engines table full: \(engines.count) of \(limits.maxEngines)")
        }
        engines[engine.id] = engine
        return true
    }

    mutating func deleteEngine(_ id: String, _ path: @autoclosure Check.Path) throws(PolicyError) {
        guard engines[id] != nil else {
            throw Check.fail(PolicyError.Code.notFound, path(), "there is no engine '\(id)'")
        }
        if let users = engineUsers[id], let example = users.first?.key {
            throw Check.fail(PolicyError.Code.inUse, path(),
                             "engine '\(id)' is still steered to by \(users.count) session(s), e.g. SEID \(example)")
        }
        engines[id] = nil
    }

    /// Returns false when the application is already there as it is.
    @discardableResult
    mutating func putApplication(_ application: Application, _ path: @autoclosure Check.Path,
                                 _ limits: PolicyLimits) throws(PolicyError) -> Bool {
        if applications[application.id] == application { return false }
        try Check.application(application, path(), limits)
        if applications[application.id] == nil && applications.count >= limits.maxApplications {
            throw Check.fail(PolicyError.Code.tableFull, path(),
                             "applications table full: \(applications.count) of \(limits.maxApplications)")
        }
        applications[application.id] = application
        return true
    }

    mutating func deleteApplication(_ id: String, _ path: @autoclosure Check.Path) throws(PolicyError) {
        guard applications[id] != nil else {
            throw Check.fail(PolicyError.Code.notFound, path(), "there is no application '\(id)'")
        }
        if let users = applicationUsers[id], let example = users.first?.key {
            throw Check.fail(PolicyError.Code.inUse, path(),
                             "application '\(id)' is still named by \(users.count) session(s), e.g. SEID \(example)")
        }
        applications[id] = nil
    }

    /// Returns the session deleted.
    @discardableResult
    mutating func deleteSession(_ seid: UInt64, _ path: @autoclosure Check.Path) throws(PolicyError) -> Session {
        guard let stored = sessionTable.removeValue(forKey: seid) else {
            throw Check.fail(PolicyError.Code.notFound, path(), "there is no session with SEID \(seid)")
        }
        write(.session(seid, stored))
        unindex(seid, stored.keys)
        return stored.session
    }

    /// Returns whether the session changed (false: it is already there as it is) and the session
    /// it replaced.
    @discardableResult
    mutating func putSession(_ session: Session, _ path: @autoclosure Check.Path,
                             _ limits: PolicyLimits) throws(PolicyError) -> (changed: Bool, previous: Session?) {
        let old = sessionTable[session.seid]
        if old?.session == session { return (false, session) }
        let keys = try Check.session(session, path(), limits)
        for (id, action) in keys.engines where engines[id] == nil {
            throw Check.fail(PolicyError.Code.danglingReference, "\(Check.element(path(), "actions", action)).engine",
                             "session \(session.seid) steers to engine '\(id)', which does not exist")
        }
        for (id, rule) in keys.applications where applications[id] == nil {
            throw Check.fail(PolicyError.Code.danglingReference, "\(Check.element(path(), "rules", rule)).application",
                             "session \(session.seid) names application '\(id)', which does not exist")
        }
        // A put that keeps the TEID, UE addresses, engines and applications (a QoS or rule
        // change, say) leaves the indexes as they are: taking the keys out and back would be ~10
        // table writes, and could copy or split trie nodes, for nothing.
        if old?.keys != keys {
            if let old {
                unindex(session.seid, old.keys)
            } else if sessionTable.count >= limits.maxSessions {
                throw Check.fail(PolicyError.Code.tableFull, path(),
                                 "sessions table full: \(sessionTable.count) of \(limits.maxSessions)")
            }
            try checkCollisions(session, keys, path())
            index(session.seid, keys)
        }
        write(.session(session.seid, Self.set(&sessionTable, session.seid, Stored(session: session, keys: keys))))
        return (true, old?.session)
    }

    private mutating func checkCollisions(_ session: Session, _ keys: SessionKeys,
                                          _ path: @autoclosure Check.Path) throws(PolicyError) {
        if let other = n3Index[keys.n3.teid] {
            throw Check.fail(PolicyError.Code.collision, "\(path()).n3.teid",
                             "session \(session.seid): local N3 TEID \(keys.n3.teid) is already used by session \(other) "
                             + "(TEIDs are unique per UPF, whatever the N3 address)")
        }
        if let ue = keys.ueIPv4, let other = ueIPv4Index[ue] {
            throw Check.fail(PolicyError.Code.collision, "\(path()).ue_ipv4",
                             "session \(session.seid): UE address \(ue) is already used by session \(other)")
        }
        if let prefix = keys.ueIPv6 {
            for length in ueIPv6Lengths.keys where length <= prefix.length {
                let covering = IPPrefix(address: prefix.address, length: length)
                if let other = ueIPv6Index[covering] {
                    let what = covering == prefix ? "is already used by" : "lies inside \(covering) of"
                    throw Check.fail(PolicyError.Code.collision, "\(path()).ue_ipv6",
                                     "session \(session.seid): UE prefix \(prefix) \(what) session \(other)")
                }
            }
            if ueIPv6Lengths.keys.contains(where: { $0 > prefix.length }) {
                addCoverLength(prefix.length)
                if ueIPv6Cover[prefix] != nil {
                    // Error path only: find one of the prefixes inside (O(n)).
                    let inside = ueIPv6Index.first(where: { prefix.length < $0.key.length && prefix.contains($0.key.address) })
                    let example = inside.map { "\($0.key) of session \($0.value)" } ?? "another session's prefix"
                    throw Check.fail(PolicyError.Code.collision, "\(path()).ue_ipv6",
                                     "session \(session.seid): UE prefix \(prefix) contains \(example)")
                }
            }
        }
    }

    /// Makes `ueIPv6Cover` count, under every prefix of `length`, the UE prefixes longer than it:
    /// one pass over the prefixes the first time a length is needed.
    private mutating func addCoverLength(_ length: UInt8) {
        guard !coverLengths.contains(length) else { return }
        coverLengths.append(length)
        fullPasses += 1
        for (prefix, _) in ueIPv6Index where prefix.length > length {
            let key = IPPrefix(address: prefix.address, length: length)
            write(.cover(key, Self.set(&ueIPv6Cover, key, (ueIPv6Cover[key] ?? 0) + 1)))
        }
    }

    private mutating func index(_ seid: UInt64, _ keys: SessionKeys) {
        write(.n3(keys.n3.teid, Self.set(&n3Index, keys.n3.teid, seid)))
        if let ue = keys.ueIPv4 { write(.ueIPv4(ue, Self.set(&ueIPv4Index, ue, seid))) }
        if let prefix = keys.ueIPv6 {
            write(.ueIPv6(prefix, Self.set(&ueIPv6Index, prefix, seid)))
            ueIPv6Lengths[prefix.length, default: 0] += 1
            for length in coverLengths where length < prefix.length {
                let key = IPPrefix(address: prefix.address, length: length)
                write(.cover(key, Self.set(&ueIPv6Cover, key, (ueIPv6Cover[key] ?? 0) + 1)))
            }
        }
        for (engine, _) in keys.engines {
            write(.engineUser(engine, seid, wasUser: Self.setUser(&engineUsers, engine, seid, true)))
        }
        for (app, _) in keys.applications {
            write(.applicationUser(app, seid, wasUser: Self.setUser(&applicationUsers, app, seid, true)))
        }
    }

    private mutating func unindex(_ seid: UInt64, _ keys: SessionKeys) {
        write(.n3(keys.n3.teid, Self.set(&n3Index, keys.n3.teid, nil)))
        if let ue = keys.ueIPv4 { write(.ueIPv4(ue, Self.set(&ueIPv4Index, ue, nil))) }
        if let prefix = keys.ueIPv6 {
            write(.ueIPv6(prefix, Self.set(&ueIPv6Index, prefix, nil)))
            ueIPv6Lengths[prefix.length, default: 1] -= 1
            if ueIPv6Lengths[prefix.length] == 0 { ueIPv6Lengths[prefix.length] = nil }
            for length in coverLengths where length < prefix.length {
                let key = IPPrefix(address: prefix.address, length: length)
                let count = (ueIPv6Cover[key] ?? 1) - 1
                write(.cover(key, Self.set(&ueIPv6Cover, key, count == 0 ? nil : count)))
            }
        }
        for (engine, _) in keys.engines {
            write(.engineUser(engine, seid, wasUser: Self.setUser(&engineUsers, engine, seid, false)))
        }
        for (app, _) in keys.applications {
            write(.applicationUser(app, seid, wasUser: Self.setUser(&applicationUsers, app, seid, false)))
        }
    }

    // MARK: Table writes (all of them, so that `apply` can log them)

    private mutating func write(_ write: PolicyUndo.Write) {
        undoLog?.append(write)
    }

    /// Sets (`value`) or removes (nil) `key`; returns the value it had.
    @discardableResult
    private static func set<Key, Value>(_ map: inout PersistentMap<Key, Value>, _ key: Key, _ value: Value?) -> Value? {
        if let value { return map.updateValue(value, forKey: key) }
        return map.removeValue(forKey: key)
    }

    /// Makes `seid` one of `owner`'s users or not (an owner without users has no entry); returns
    /// whether it was one.
    @discardableResult
    private static func setUser(_ users: inout [String: PersistentMap<UInt64, Void>], _ owner: String,
                                _ seid: UInt64, _ isUser: Bool) -> Bool {
        if isUser { return users[owner, default: PersistentMap()].updateValue((), forKey: seid) != nil }
        guard users[owner]?.removeValue(forKey: seid) != nil else { return false }
        if users[owner]?.isEmpty == true { users[owner] = nil }
        return true
    }
}

/// What one `PolicyState.apply` changed, for `PolicyState.revert`: the small tables as they were,
/// and each write to the large ones with the value it replaced, in order.
public struct PolicyUndo: Sendable {
    enum Write: Sendable {
        case session(UInt64, PolicyState.Stored?)
        case n3(UInt32, UInt64?)
        case ueIPv4(IPAddress, UInt64?)
        case ueIPv6(IPPrefix, UInt64?)
        case cover(IPPrefix, Int?)
        case engineUser(String, UInt64, wasUser: Bool)
        case applicationUser(String, UInt64, wasUser: Bool)
    }

    struct Saved: Sendable {
        var version: UInt64
        var engines: [String: Engine]
        var applications: [String: Application]
        var ueIPv6Lengths: [UInt8: Int]
        var coverLengths: [UInt8]
        var fullPasses: Int
    }

    let saved: Saved
    let writes: [Write]
}
