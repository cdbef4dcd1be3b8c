import NIOPosix
import Testing
import UPFDatapath
import UPFPolicy
@testable import UPFControl

/// The policy owner driving the data path's real `SessionTables`.
@Suite struct DatapathTablesTests {
    final class Harness {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tables: DatapathSessionTables
        let core: ControlCore

        init(capacity: Int, limits: PolicyLimits = PolicyLimits()) throws {
            tables = DatapathSessionTables(tables: SessionTables(capacity: capacity, readers: 0))
            core = ControlCore(configuration: ControlCoreConfiguration(limits: limits), tables: tables, store: nil,
                               bus: EventBus(), metrics: ControlMetrics(), loop: group.next(), logger: Fixture.logger)
            try core.load().wait()
        }

        deinit { try? group.syncShutdownGracefully() }

        func run(_ request: ControlRequest) -> Result<ControlReply, ControlError> {
            do { return .success(try core.handle(request).wait()) } catch { return .failure(error as! ControlError) }
        }

        func onLoop<T: Sendable>(_ body: @escaping @Sendable (DatapathSessionTables) -> T) throws -> T {
            nonisolated(unsafe) let tables = self.tables
            return try core.loop.submit { body(tables) }.wait()
        }
    }

    @Test func installsAndRemovesSessions() throws {
        let h = try Harness(capacity: 16)
        _ = try h.run(.apply([.putEngine(Fixture.engine("llm")), .putSession(Fixture.session(1, engine: "llm")),
                              .putSession(Fixture.session(2))])).get()
        #expect(try h.onLoop { $0.tables.count } == 2)
        #expect(try h.onLoop { $0.tables.contains(seid: 1) && $0.tables.contains(seid: 2) })
        _ = try h.run(.sessionDelete(seid: 1)).get()
        #expect(try h.onLoop { $0.tables.count } == 1)
        let stats = try h.run(.stats).get()
        guard case .object(let table)? = stats["table"] else { Issue.record("no table"); return }
        #expect(table.first { $0.0 == "capacity" }?.1 == .int(16))
    }

    @Test func tablesSmallerThanTheLimitReportTableFullAndRollBack() throws {
        let h = try Harness(capacity: 2, limits: PolicyLimits(maxSessions: 10))
        _ = try h.run(.sessionPut(Fixture.session(1))).get()
        let refused = h.run(.apply([.putSession(Fixture.session(2)), .putSession(Fixture.session(3))]))
        guard case .failure(let error) = refused else { Issue.record("accepted"); return }
        #expect(error.code == "table_full")
        #expect(error.path == "changes[1].session")
        #expect(try h.onLoop { $0.tables.count } == 1)
        #expect(try h.onLoop { $0.tables.contains(seid: 2) } == false)
        #expect(h.core.currentVersion == 1)
    }

    @Test func aTEIDMovesBetweenSessionsInOneBatch() throws {
        let h = try Harness(capacity: 16)
        _ = try h.run(.apply([.putSession(Fixture.session(1, teid: 500)), .putSession(Fixture.session(2, teid: 501))])).get()
        _ = try h.run(.apply([.deleteSession(seid: 2), .putSession(Fixture.session(1, teid: 501)),
                              .putSession(Fixture.session(2, teid: 500))])).get()
        #expect(try h.onLoop { $0.tables.count } == 2)
    }

    @Test func engineIndicesAreStableAndReusedOnlyWhenFree() throws {
        let h = try Harness(capacity: 16)
        _ = try h.run(.apply([.putEngine(Fixture.engine("a")), .putEngine(Fixture.engine("b")),
                              .putSession(Fixture.session(1, engine: "a")), .putSession(Fixture.session(2, engine: "b"))])).get()
        let first = try h.onLoop { $0.engineIndices }
        #expect(Set(first.values).count == 2)
        _ = try h.run(.apply([.deleteSession(seid: 1), .deleteEngine(id: "a")])).get()
        _ = try h.run(.apply([.putEngine(Fixture.engine("c")), .putSession(Fixture.session(3, engine: "c"))])).get()
        let second = try h.onLoop { $0.engineIndices }
        #expect(second["b"] == first["b"])
        #expect(second["a"] == nil)
        #expect(second["c"] == first["a"])
    }
}
