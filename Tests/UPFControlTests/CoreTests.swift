import Foundation
import Testing
import UPFPolicy
@testable import UPFControl

/// The policy owner: transactional batches, versions, rollback, reads.
@Suite struct CoreTests {
    @Test func appliesABatchAndBumpsTheVersion() throws {
        let h = try CoreHarness()
        let reply = try h.ok(.apply([.putEngine(Fixture.engine("llm")), .putSession(Fixture.session(1, engine: "llm")),
                                     .putSession(Fixture.session(2))]))
        #expect(reply.version == 1)
        #expect(reply["changed"] == .bool(true))
        #expect(h.tables.sessions.keys.sorted() == [1, 2])
        #expect(h.core.currentVersion == 1)
        let got = try h.ok(.sessionGet(seid: 1))
        // The model's own encoding, byte for byte.
        #expect(got["session"] == .raw(String(decoding: PolicyCoding.json(Fixture.session(1, engine: "llm")), as: UTF8.self)))
    }

    @Test func theSameRequestTwiceChangesNothingTheSecondTime() throws {
        let h = try CoreHarness()
        let put = ControlRequest.sessionPut(Fixture.session(5))
        #expect(try h.ok(put).version == 1)
        let again = try h.ok(put)
        #expect(again.version == 1)
        #expect(again["changed"] == .bool(false))
        #expect(try h.ok(.sessionDelete(seid: 5)).version == 2)
        let twice = h.refusal(.sessionDelete(seid: 5))
        #expect(twice?.code == "not_found")
        #expect(twice?.path == "seid")
        #expect(h.core.currentVersion == 2)
    }

    @Test func aRefusedBatchChangesNothing() throws {
        let h = try CoreHarness()
        _ = try h.ok(.sessionPut(Fixture.session(1)))
        let operations = h.tables.operations
        // The second change collides with session 1's TEID: the first must not stay applied.
        let refused = h.refusal(.apply([.putSession(Fixture.session(2)), .putSession(Fixture.session(3, teid: 101))]))
        #expect(refused?.code == "collision")
        #expect(refused?.path == "changes[1].session.n3.teid")
        #expect(h.tables.operations == operations)
        #expect(h.refusal(.sessionGet(seid: 2))?.code == "not_found")
        #expect(h.core.currentVersion == 1)
    }

    @Test func errorPathsNameTheRequestsOwnFields() throws {
        let h = try CoreHarness()
        var bad = Fixture.session(1)
        bad.n3.teid = 0
        #expect(h.refusal(.sessionPut(bad))?.path == "session.n3.teid")
        bad = Fixture.session(1, engine: "missing")
        let dangling = h.refusal(.sessionPut(bad))
        #expect(dangling?.code == "dangling_reference")
        #expect(dangling?.path.hasPrefix("session.actions[0]") == true)
        #expect(h.refusal(.engineDelete(id: "nope"))?.path == "engine_id")
    }

    @Test func tableFailureMidBatchRollsTheTablesBack() throws {
        let tables = FlakyTables()
        let h = try CoreHarness(tables: tables)
        _ = try h.ok(.apply([.putSession(Fixture.session(1)), .putSession(Fixture.session(2))]))
        var changed1 = Fixture.session(1)
        changed1.rules[0].precedence = 99
        tables.failInstall = 3
        let refused = h.refusal(.apply([.putSession(changed1), .deleteSession(seid: 2), .putSession(Fixture.session(3))]))
        #expect(refused?.code == "datapath_failed")
        #expect(refused?.path == "changes[2].session")
        // The tables hold exactly what they held before; the policy too.
        #expect(tables.sessions == [1: Fixture.session(1), 2: Fixture.session(2)])
        #expect(h.core.currentVersion == 1)
        #expect(try h.ok(.sessionGet(seid: 1))["session"] == .raw(String(decoding: PolicyCoding.json(Fixture.session(1)), as: UTF8.self)))
    }

    @Test func aTEIDFreedEarlierInTheBatchCanBeTakenLaterInIt() throws {
        let h = try CoreHarness()
        _ = try h.ok(.apply([.putSession(Fixture.session(1, teid: 500)), .putSession(Fixture.session(2, teid: 501))]))
        // Swap the two TEIDs: valid change by change, but not as a net delta.
        _ = try h.ok(.apply([.deleteSession(seid: 2), .putSession(Fixture.session(1, teid: 501)),
                             .putSession(Fixture.session(2, teid: 500))]))
        #expect(h.tables.uplinkOwner(teid: 500) == 2 && h.tables.uplinkOwner(teid: 501) == 1)
    }

    @Test func changingAnEngineRecompilesTheSessionsThatSteerToIt() throws {
        let h = try CoreHarness()
        _ = try h.ok(.apply([.putEngine(Fixture.engine("llm")), .putSession(Fixture.session(1, engine: "llm")),
                             .putSession(Fixture.session(2))]))
        let before = h.tables.operations
        let reply = try h.ok(.enginePut(Fixture.engine("llm", address: "10.100.0.9")))
        #expect(h.tables.operations == before + 1)  // session 1 only
        guard case .object(let delta)? = reply["delta"] else { Issue.record("no delta"); return }
        #expect(delta.first { $0.0 == "table_writes" }?.1 == .int(1))
        #expect(h.refusal(.engineDelete(id: "llm"))?.code == "in_use")
    }

    @Test func tableFullIsAClearError() throws {
        let h = try CoreHarness(limits: PolicyLimits(maxSessions: 3))
        for seid in 1...3 as ClosedRange<UInt64> { _ = try h.ok(.sessionPut(Fixture.session(seid))) }
        let full = h.refusal(.sessionPut(Fixture.session(4)))
        #expect(full?.code == "table_full")
        #expect(full?.path == "session")
        // Replacing an existing session is still possible at capacity.
        var changed = Fixture.session(2)
        changed.defaultQFI = 5
        #expect(try h.ok(.sessionPut(changed))["changed"] == .bool(true))
    }

    @Test func listsSessionsInPages() throws {
        let h = try CoreHarness()
        _ = try h.ok(.apply((1...25).map { .putSession(Fixture.session(UInt64($0) * 3)) }))
        var seen: [UInt64] = []
        var cursor: UInt64?
        var pages = 0
        repeat {
            let reply = try h.ok(.sessionList(after: cursor, limit: 10))
            guard case .array(let items)? = reply["sessions"] else { Issue.record("no sessions"); return }
            #expect(reply["total"] == .int(25))
            for case .raw(let text) in items {
                seen.append(try PolicyCoding.decode(Session.self, json: Data(text.utf8)).seid)
            }
            if case .string(let next)? = reply["next_cursor"] { cursor = UInt64(next) } else { cursor = nil }
            pages += 1
        } while cursor != nil
        #expect(pages == 3)
        #expect(seen == (1...25).map { UInt64($0) * 3 })
    }

    @Test func policyPutMergesOrReplaces() throws {
        let h = try CoreHarness()
        _ = try h.ok(.apply([.putEngine(Fixture.engine("old")), .putSession(Fixture.session(1)), .putSession(Fixture.session(2))]))
        let document = Policy(engines: [Fixture.engine("new")], sessions: [Fixture.session(2), Fixture.session(3, engine: "new")])
        _ = try h.ok(.policyPut(document, replace: false))
        var policy = try h.onLoop { [core = h.core] in core.snapshotPolicy() }
        #expect(policy.sessions.map(\.seid) == [1, 2, 3])
        #expect(policy.engines.map(\.id) == ["new", "old"])
        _ = try h.ok(.policyPut(document, replace: true))
        policy = try h.onLoop { [core = h.core] in core.snapshotPolicy() }
        #expect(policy == document)
    }

    @Test func policyPutErrorsNameTheDocumentsFields() throws {
        let h = try CoreHarness()
        var bad = Fixture.session(3)
        bad.n3.teid = 0
        let refused = h.refusal(.policyPut(Policy(sessions: [Fixture.session(1), bad]), replace: false))
        #expect(refused?.path == "policy.sessions[1].n3.teid")
        let duplicate = h.refusal(.policyPut(Policy(sessions: [Fixture.session(1), Fixture.session(1)]), replace: true))
        #expect(duplicate?.code == "duplicate_id")
        #expect(duplicate?.path == "policy.sessions[1].seid")
        #expect(h.core.currentVersion == 0)
    }

    @Test func publishesPolicyAppliedAndEngineState() throws {
        final class Recorder: EventSubscriber, @unchecked Sendable {
            let lock = NSLock()
            var events: [ControlEvent] = []
            func offer(_ event: ControlEvent) { lock.withLock { events.append(event) } }
        }
        let h = try CoreHarness()
        let recorder = Recorder()
        h.bus.subscribe(recorder)
        _ = try h.ok(.enginePut(Fixture.engine("llm")))
        _ = try h.ok(.engineDelete(id: "llm"))
        _ = try h.ok(.engineList)
        #expect(recorder.lock.withLock { recorder.events } == [
            .engineState(id: "llm", state: "configured"), .policyApplied(version: 1, sessions: 0, engines: 1),
            .engineState(id: "llm", state: "removed"), .policyApplied(version: 2, sessions: 0, engines: 0),
        ])
    }

    @Test func statsHealthAndVersion() throws {
        let h = try CoreHarness()
        _ = try h.ok(.sessionPut(Fixture.session(1)))
        h.metrics.record(mutation: true, error: nil)
        h.metrics.record(mutation: true, error: ControlError("not_found", "x"))
        let stats = try h.ok(.stats)
        #expect(stats["sessions"] == .int(1))
        #expect(stats["policy_version"] == .int(1))
        #expect(stats["errors"] == .object([("not_found", .int(1))]))
        #expect(stats["uptime_seconds"] != nil)
        guard case .object(let table)? = stats["table"] else { Issue.record("no table"); return }
        #expect(table.map(\.0) == ["capacity", "bytes_per_session", "memory_bytes"])
        #expect(try h.ok(.health)["status"] == .string("ok"))
        #expect(try h.ok(.version)["software"] == .string(UPFDVersion.current))
    }
}
