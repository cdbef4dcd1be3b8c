import Foundation
import Logging
import NIOCore
import NIOPosix
import UPFDatapath
import UPFPolicy
@testable import UPFControl

/// A fresh directory under /tmp (short: socket paths are limited to 107 bytes).
func makeTemporaryDirectory() throws -> String {
    let path = "/tmp/upfc-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func removeDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

enum Fixture {
    static func session(_ seid: UInt64, teid: UInt32? = nil, ue: String? = nil, engine: String? = nil) -> Session {
        let octets = (seid % 250) + 1, third = (seid / 250) % 250
        let action: Action = engine.map { Action(id: 1, kind: .steer(engine: $0)) } ?? Action(id: 1, kind: .forwardN6)
        return Session(seid: seid, ueIPv4: ue ?? "10.60.\(third).\(octets)",
                       n3: FTEID(teid: teid ?? UInt32(truncatingIfNeeded: seid + 100), address: "192.0.2.1"),
                       rules: [Rule(id: 1, precedence: 10, source: .access, action: 1)], actions: [action])
    }

    static func engine(_ id: String, address: String = "10.100.0.2") -> Engine {
        Engine(id: id, instances: [EngineInstance(port: "0", address: address)])
    }

    static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }()
}

/// The data path's real tables (`DatapathSessionTables` over `SessionTables`), with a failure
/// injected on demand to exercise the rollback path, and a record of what reached them.
final class FlakyTables: DatapathTables {
    let real: DatapathSessionTables
    /// Sessions the real tables accepted, as installed.
    private(set) var sessions: [UInt64: Session] = [:]
    /// Fail the install of this SEID (once it is reached).
    var failInstall: UInt64?
    private(set) var operations = 0

    init(capacity: Int = 1000) {
        real = DatapathSessionTables(tables: SessionTables(capacity: capacity, readers: 1))
        // The one reader looks things up for assertions only; offline, it never holds back reclaim.
        real.tables.reader(0).offline()
    }

    var capacity: Int { real.capacity }
    var bytesPerSession: Int { real.bytesPerSession }
    var memoryBytes: Int { real.memoryBytes }

    func install(_ session: Session, in context: SessionContext) throws {
        operations += 1
        if session.seid == failInstall { throw ControlError("datapath_failed", "injected failure") }
        try real.install(session, in: context)
        sessions[session.seid] = session
    }

    func remove(seid: UInt64) throws {
        operations += 1
        try real.remove(seid: seid)
        sessions[seid] = nil
    }

    func reclaim() { real.reclaim() }

    /// The SEID the fast path finds for an uplink TEID.
    func uplinkOwner(teid: UInt32) -> UInt64? {
        let reader = real.tables.reader(0)
        reader.online()
        defer { reader.offline() }
        return reader.lookupUplink(teid: teid)?.seid
    }
}

/// A policy owner on its own loop, for tests that drive `ControlCore` directly.
final class CoreHarness {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let bus = EventBus()
    let metrics = ControlMetrics()
    let core: ControlCore
    let tables: FlakyTables

    init(limits: PolicyLimits = PolicyLimits(), store: StateStore? = nil, tables: FlakyTables = FlakyTables()) throws {
        self.tables = tables
        core = ControlCore(configuration: ControlCoreConfiguration(limits: limits), tables: tables, store: store,
                           bus: bus, metrics: metrics, loop: group.next(), logger: Fixture.logger)
        try core.load().wait()
    }

    deinit {
        try? group.syncShutdownGracefully()
    }

    func run(_ request: ControlRequest) -> Result<ControlReply, ControlError> {
        do {
            return .success(try core.handle(request).wait())
        } catch let error as ControlError {
            return .failure(error)
        } catch {
            return .failure(ControlError("unexpected", "\(error)"))
        }
    }

    func ok(_ request: ControlRequest) throws -> ControlReply {
        try run(request).get()
    }

    func refusal(_ request: ControlRequest) -> ControlError? {
        if case .failure(let error) = run(request) { return error }
        return nil
    }

    /// Reads a member of the owner's state on its loop.
    func onLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) throws -> T {
        try core.loop.submit(body).wait()
    }
}

extension ControlReply {
    subscript(key: String) -> JSONValue? { fields.first { $0.0 == key }?.1 }
}
