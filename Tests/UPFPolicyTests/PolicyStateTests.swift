import Foundation
import Testing
import UPFPackets
@testable import UPFPolicy

/// Incremental changes: atomic batches, idempotency, `not_found` (BAD_INPUTS 26), the delta,
/// the indexes, and O(1) per change.
@Suite struct PolicyStateTests {
    typealias F = Fixtures

    /// Everything observable about a state, to compare before and after a refused batch.
    func snapshot(_ state: PolicyState) -> [String] {
        var lines = ["version \(state.version)", "count \(state.sessionCount)",
                     String(decoding: state.policy.jsonData(pretty: false), as: UTF8.self)]
        for session in state.policy.sessions {
            let n3 = state.seid(n3TEID: session.n3.teid, address: IPAddress(session.n3.address)!)
            let v4 = session.ueIPv4.flatMap { IPAddress($0) }.flatMap { state.seid(ueAddress: $0) }
            let v6 = session.ueIPv6.flatMap { IPPrefix($0) }.flatMap { state.seid(ueAddress: $0.address) }
            lines.append("\(session.seid): n3 \(n3 as Any) v4 \(v4 as Any) v6 \(v6 as Any)")
        }
        for engine in state.engines.keys.sorted() { lines.append("\(engine): \(state.seids(usingEngine: engine).sorted())") }
        return lines
    }

    @Test func putAndDeleteUpdateIndexesDeltaAndVersion() throws {
        let state = try F.state(sessions: 3)
        #expect(state.version == 0)
        let new = F.session(4, engine: "llm")
        let (next, delta) = try state.applying([.putSession(new)])
        #expect(next.version == 1)
        #expect(delta == PolicyDelta(putSessions: [new]))
        #expect(next.session(seid: 4) == new)
        #expect(next.seid(n3TEID: 4, address: IPAddress("192.0.2.1")!) == 4)
        #expect(next.seid(n3TEID: 4, address: IPAddress("192.0.2.2")!) == nil)
        #expect(next.seid(ueAddress: IPAddress("10.0.0.4")!) == 4)
        #expect(next.seid(ueAddress: IPAddress("2001:db8:0:4:aaaa::1")!) == 4)
        #expect(next.seid(ueAddress: IPAddress("2001:db8:0:5::1")!) == nil)
        #expect(next.seids(usingEngine: "llm") == [4])
        // The state it came from is unchanged.
        #expect(state.session(seid: 4) == nil && state.seid(n3TEID: 4, address: IPAddress("192.0.2.1")!) == nil)

        let (after, deleted) = try next.applying([.deleteSession(seid: 4)])
        #expect(deleted == PolicyDelta(deletedSessions: [4]))
        #expect(after.version == 2)
        #expect(after.session(seid: 4) == nil && after.seid(ueAddress: IPAddress("10.0.0.4")!) == nil)
        #expect(after.seids(usingEngine: "llm").isEmpty)
        #expect(snapshot(after).dropFirst() == snapshot(state).dropFirst())
    }

    @Test func theSameRequestTwiceIsANoOp() throws {
        let state = try F.state(sessions: 3)
        let put: [PolicyChange] = [.putSession(F.session(4)), .putEngine(Engine(id: "vision", instances: F.llm.instances))]
        let (once, first) = try state.applying(put)
        let (twice, second) = try once.applying(put)
        #expect(!first.isEmpty)
        #expect(second.isEmpty)
        #expect(twice.version == once.version + 1)
        #expect(twice.policy == once.policy)
        // A replace with other content is a put in the delta; one with the same content is not.
        var changed = F.session(4)
        changed.defaultQFI = 5
        let (_, third) = try twice.applying([.putSession(changed), .putSession(F.session(2))])
        #expect(third == PolicyDelta(putSessions: [changed]))
    }

    @Test func deletingOrReplacingWhatDoesNotExist() throws {
        let state = try F.state(sessions: 3)
        let error = expectPolicyError("not_found", at: "changes[0].seid") { _ = try state.applying([.deleteSession(seid: 99)]) }
        #expect(error?.message == "there is no session with SEID 99")
        // Twice in one batch: the second one is the error.
        expectPolicyError("not_found", at: "changes[1].seid") { _ = try state.applying([.deleteSession(seid: 1), .deleteSession(seid: 1)]) }
        expectPolicyError("not_found", at: "changes[0].id") { _ = try state.applying([.deleteEngine(id: "vision")]) }
        expectPolicyError("not_found", at: "changes[0].id") { _ = try state.applying([.deleteApplication(id: "video")]) }
        // A put of an unknown SEID creates it (a "modify" front end checks `session(seid:)` first).
        #expect(state.session(seid: 99) == nil)
    }

    @Test func aBadChangeLeavesTheStateExactlyAsBefore() throws {
        let state = try F.state(sessions: 50, engine: "llm")
        let before = snapshot(state)
        var colliding = F.session(60)
        colliding.n3 = F.session(2).n3
        let batches: [([PolicyChange], String, String)] = [
            ([.putSession(F.session(51)), .deleteSession(seid: 1), .putSession(colliding)], "collision", "changes[2].session.n3.teid"),
            ([.putSession(F.session(51)), .deleteSession(seid: 7), .deleteSession(seid: 7)], "not_found", "changes[2].seid"),
            ([.putEngine(Engine(id: "vision", instances: F.llm.instances)), .deleteEngine(id: "llm")], "in_use", "changes[1].id"),
            ([.putSession(F.session(3)), .putSession(F.session(52)), .putSession({ var s = F.session(53); s.rules[0].action = 7; return s }())],
             "dangling_reference", "changes[2].session.rules[0].action"),
        ]
        for (batch, code, path) in batches {
            expectPolicyError(code, at: path) { _ = try state.applying(batch) }
            #expect(snapshot(state) == before)
        }
        // A refused mutating `apply` leaves the variable as it was too.
        var variable = state
        expectPolicyError("collision", at: "changes[1].session.n3.teid") { try variable.apply([.deleteSession(seid: 5), .putSession(colliding)]) }
        #expect(snapshot(variable) == before)
        // And an accepted one after that works from the unchanged state.
        try variable.apply([.putSession(F.session(51))])
        #expect(variable.version == 1 && variable.sessionCount == 51)
    }

    @Test func changesApplyInOrderWithinABatch() throws {
        let state = try F.state(sessions: 3)
        // A TEID freed by a delete can be reused later in the same batch, not before it.
        var moved = F.session(9)
        moved.n3 = F.session(1).n3
        moved.ueIPv4 = F.session(1).ueIPv4
        let (next, delta) = try state.applying([.deleteSession(seid: 1), .putSession(moved)])
        #expect(delta == PolicyDelta(putSessions: [moved], deletedSessions: [1]))
        #expect(next.seid(n3TEID: 1, address: IPAddress("192.0.2.1")!) == 9)
        expectPolicyError("collision", at: "changes[0].session.n3.teid") { _ = try state.applying([.putSession(moved), .deleteSession(seid: 1)]) }
        // A session keeping its own TEID and addresses when replaced does not collide with itself.
        var replaced = F.session(2)
        replaced.rules[0].precedence = 7
        #expect(throws: Never.self) { _ = try state.applying([.putSession(replaced)]) }
        // An engine added earlier in the batch can be steered to; an engine used can go once its users are gone.
        let vision = Engine(id: "vision", instances: [EngineInstance(port: "0", address: "192.168.1.1")])
        let (withVision, d1) = try state.applying([.putEngine(vision), .putSession(F.session(10, engine: "vision"))])
        #expect(d1.putEngines == [vision] && d1.putSessions.map(\.seid) == [10])
        let inUse = expectPolicyError("in_use", at: "changes[0].id") { _ = try withVision.applying([.deleteEngine(id: "vision")]) }
        #expect(inUse?.message.contains("SEID 10") == true)
        let (without, d2) = try withVision.applying([.deleteSession(seid: 10), .deleteEngine(id: "vision")])
        #expect(d2 == PolicyDelta(deletedSessions: [10], deletedEngines: ["vision"]))
        #expect(without.engines["vision"] == nil)
        // Steering moved to another engine releases the first.
        let (switched, _) = try withVision.applying([.putSession(F.session(10, engine: "llm")), .deleteEngine(id: "vision")])
        #expect(switched.seids(usingEngine: "llm") == [10])
        // Put then delete of a new session in one batch leaves no trace in the delta.
        let (_, d3) = try state.applying([.putSession(F.session(11)), .deleteSession(seid: 11)])
        #expect(d3.isEmpty)
    }

    @Test func applicationsInUse() throws {
        var session = F.session(5)
        session.rules[0].application = "inference"
        let (state, _) = try F.state(sessions: 1).applying([.putSession(session)])
        #expect(state.seids(usingApplication: "inference") == [5])
        expectPolicyError("in_use", at: "changes[0].id") { _ = try state.applying([.deleteApplication(id: "inference")]) }
        // Changing the application's content is fine and shows in the delta (its users recompile).
        let wider = Application(id: "inference", destinationPrefixes: ["198.51.0.0/16"], protocol: 6)
        let (_, delta) = try state.applying([.putApplication(wider)])
        #expect(delta == PolicyDelta(putApplications: [wider]))
        // Deleting the user first frees it; a session naming it afterwards in the batch dangles.
        let (freed, _) = try state.applying([.deleteSession(seid: 5), .deleteApplication(id: "inference")])
        #expect(freed.applications["inference"] == nil && freed.seids(usingApplication: "inference").isEmpty)
        expectPolicyError("dangling_reference", at: "changes[2].session.rules[0].application") {
            _ = try state.applying([.deleteSession(seid: 5), .deleteApplication(id: "inference"), .putSession(session)])
        }
    }

    @Test func tablesFullThroughChanges() throws {
        let limits = PolicyLimits(maxSessions: 3, maxEngines: 1)
        let state = try PolicyState.validated(Policy(engines: [F.llm], sessions: (1...3).map { F.session($0) }), limits: limits)
        let error = expectPolicyError("table_full", at: "changes[1].session") {
            _ = try state.applying([.putSession(F.session(2)), .putSession(F.session(4))], limits: limits)
        }
        #expect(error?.message == "sessions table full: 3 of 3")
        // Replacing at full is fine; deleting first makes room.
        #expect(throws: Never.self) { _ = try state.applying([.putSession(F.session(3, engine: "llm"))], limits: limits) }
        #expect(throws: Never.self) { _ = try state.applying([.deleteSession(seid: 1), .putSession(F.session(4))], limits: limits) }
        expectPolicyError("table_full", at: "changes[0].engine") {
            _ = try state.applying([.putEngine(Engine(id: "b", instances: F.llm.instances))], limits: limits)
        }
        // Many sessions from one client until the table is full: a clear error, every time.
        var growing = PolicyState()
        for seid in UInt64(1)...3 { try growing.apply([.putSession(F.session(seid))], limits: limits) }
        for seid in UInt64(4)...50 {
            expectPolicyError("table_full", at: "changes[0].session") { try growing.apply([.putSession(F.session(seid))], limits: limits) }
        }
        #expect(growing.sessionCount == 3 && growing.version == 3)
    }

    @Test func policyIsSortedAndChangesReachATarget() throws {
        let example = try Policy.load(path: Fixtures.configPath("edge-example.yaml"))
        var shuffled = example
        shuffled.sessions.reverse()
        shuffled.engines.reverse()
        let state = try PolicyState.validated(shuffled)
        #expect(state.policy == example)
        var target = example
        target.sessions.removeFirst()  // seid 1 goes, and with it the only user of llm
        target.engines.removeFirst()
        target.sessions[0].defaultQFI = 6
        target.sessions.append(Fixtures.session(40))
        let changes = state.changes(toReach: target)
        let (reached, delta) = try state.applying(changes)
        #expect(reached.policy == target)
        #expect(delta.deletedSessions == [1] && delta.deletedEngines == ["llm"])
        #expect(Set(delta.putSessions.map(\.seid)) == [2, 40])
        #expect(reached.changes(toReach: target).isEmpty)
        // And back.
        #expect(try reached.applying(reached.changes(toReach: example)).0.policy == example)
    }

    @Test func ipv6PrefixesOfMixedLengths() throws {
        var a = F.session(1), b = F.session(2), c = F.session(3)
        a.ueIPv6 = "2001:db8:a::1"        // /128
        b.ueIPv6 = "2001:db8:b::/64"
        c.ueIPv6 = "2001:db8:c::/96"
        let state = try PolicyState.validated(Policy(sessions: [a, b, c]))
        #expect(state.seid(ueAddress: IPAddress("2001:db8:a::1")!) == 1)
        #expect(state.seid(ueAddress: IPAddress("2001:db8:a::2")!) == nil)
        #expect(state.seid(ueAddress: IPAddress("2001:db8:b::99")!) == 2)
        #expect(state.seid(ueAddress: IPAddress("2001:db8:c::ff:1")!) == 3)
        #expect(state.seid(ueAddress: IPAddress("2001:db8:c::1:0:1")!) == nil)
        var d = F.session(4)
        d.ueIPv6 = "2001:db8:a::/64"  // contains a's address
        expectPolicyError("collision", at: "changes[0].session.ue_ipv6") { _ = try state.applying([.putSession(d)]) }
        d.ueIPv6 = "2001:db8:c::7"  // inside c's /96
        expectPolicyError("collision", at: "changes[0].session.ue_ipv6") { _ = try state.applying([.putSession(d)]) }
        // Once a is gone, the /64 fits.
        d.ueIPv6 = "2001:db8:a::/64"
        let (next, _) = try state.applying([.deleteSession(seid: 1), .putSession(d)])
        #expect(next.seid(ueAddress: IPAddress("2001:db8:a::1")!) == 4)
        // The cover counts follow deletes: a /64 around c's /96 fits only when c goes.
        var e = F.session(5)
        e.ueIPv6 = "2001:db8:c::/64"
        expectPolicyError("collision", at: "changes[0].session.ue_ipv6") { _ = try next.applying([.putSession(e)]) }
        #expect(throws: Never.self) { _ = try next.applying([.deleteSession(seid: 3), .putSession(e)]) }
    }

    /// One change to a 100,000-session state copies a bounded number of nodes (the path of each
    /// key it touches), makes no pass over the sessions, and leaves the old state intact.
    @Test func oneChangeIsO1() throws {
        let count = 100_000
        var policy = Policy(engines: [F.llm], applications: [F.inference])
        policy.sessions = (1...UInt64(count)).map { F.session($0, engine: $0 % 10 == 0 ? "llm" : nil) }
        let big = try PolicyState.validated(policy)
        #expect(big.sessionCount == count)
        let passes = big.fullPasses, allocations = big.storageAllocations

        var replaced = F.session(500)
        replaced.defaultQFI = 3
        let batches: [[PolicyChange]] = [
            [.putSession(F.session(UInt64(count) + 1, engine: "llm"))],
            [.putSession(replaced)],
            [.deleteSession(seid: 10)],  // a user of llm: its engine index shrinks
            [.putApplication(Application(id: "inference", protocol: 17))],
        ]
        for batch in batches {
            let (next, _) = try big.applying(batch)
            let copied = next.storageAllocations - allocations
            // A full copy would be thousands of nodes (100,000 entries / at most 32 per node, per index).
            #expect(copied <= 60, "one change copied \(copied) nodes")
            #expect(next.fullPasses == passes)
        }
        // The persistent tables are shared, not copied: the old state still answers as before.
        let (next, _) = try big.applying([.deleteSession(seid: 77), .putSession(F.session(UInt64(count) + 2))])
        #expect(big.session(seid: 77) != nil && next.session(seid: 77) == nil)
        #expect(big.seid(n3TEID: 77, address: IPAddress("192.0.2.1")!) == 77)
        #expect(next.seid(n3TEID: UInt32(count) + 2, address: IPAddress("192.0.2.1")!) == UInt64(count) + 2)
        #expect(big.sessionCount == count && next.sessionCount == count)
    }

    /// `apply` changes a state in place and `revert` takes the batch back: every table, index and
    /// counter as it was, the IPv6 cover counts (and a cover length added by the batch) included.
    @Test func applyInPlaceAndRevert() throws {
        var a = F.session(1, engine: "llm"), b = F.session(2), c = F.session(3)
        a.ueIPv6 = "2001:db8:a::1"
        b.ueIPv6 = "2001:db8:b::/64"
        c.ueIPv6 = "2001:db8:c::/96"
        var state = try PolicyState.validated(Policy(engines: [F.llm], applications: [F.inference], sessions: [a, b, c]))
        let before = snapshot(state), passes = state.fullPasses
        var wider = F.session(4, engine: "llm")
        wider.ueIPv6 = "2001:db8:d::/72"  // a length shorter than c's /96: the batch adds a cover length
        var replaced = b
        replaced.defaultQFI = 3
        let batch: [PolicyChange] = [
            .putEngine(Engine(id: "vision", instances: F.llm.instances)), .putSession(wider), .deleteSession(seid: 1),
            .putSession(replaced), .putApplication(Application(id: "inference", protocol: 6)), .deleteSession(seid: 3),
        ]
        var steps: [PolicyStep] = []
        let (delta, undo) = try state.apply(batch, limits: PolicyLimits(), steps: &steps)
        #expect(state.version == 1 && state.sessionCount == 2 && state.engines["vision"] != nil)
        #expect(delta.putSessions.map(\.seid) == [4, 2] && delta.deletedSessions == [1, 3])
        #expect(state.seid(ueAddress: IPAddress("2001:db8:d:0:ff::1")!) == 4)
        #expect(state.seids(usingEngine: "llm") == [4])
        #expect(state.fullPasses == passes + 1)
        state.revert(undo)
        #expect(snapshot(state) == before)
        #expect(state.fullPasses == passes && state.engines["vision"] == nil)
        #expect(state.applications["inference"] == F.inference)
        // The cover counts are back too: a /64 around c's /96 collides again, and only that.
        var e = F.session(5)
        e.ueIPv6 = "2001:db8:c::/64"
        expectPolicyError("collision", at: "changes[0].session.ue_ipv6") { try state.apply([.putSession(e)]) }
        e.ueIPv6 = "2001:db8:e::/64"
        try state.apply([.putSession(e)])
        #expect(state.version == 1 && state.seid(ueAddress: IPAddress("2001:db8:e::9")!) == 5)
    }

    /// In place, a state nobody else holds copies no trie node: a change that keeps a session's
    /// keys writes its table entry only, and one that moves its keys allocates only the nodes
    /// that new keys split. `applying`, which keeps the old version, copies the path of each key
    /// in each table it writes. (Every table here hashes by a fixed function, so the counts are
    /// the same in every run.)
    @Test func applyInPlaceCopiesNothingWhenUnshared() throws {
        var policy = Policy(engines: [F.llm])
        policy.sessions = (1...UInt64(20_000)).map { F.session($0, engine: "llm") }
        var state = try PolicyState.validated(policy)

        var sameKeys = F.session(500, engine: "llm")
        sameKeys.defaultQFI = 3
        do {  // the copies go before the in-place changes: a node they share is not unique
            let (copy, _) = try state.applying([.putSession(sameKeys)])
            #expect(copy.storageAllocations - state.storageAllocations >= 3)  // the session table path: 20 000 keys need 3 levels
        }
        var allocations = state.storageAllocations
        try state.apply([.putSession(sameKeys)])
        #expect(state.storageAllocations == allocations)
        #expect(state.session(seid: 500) == sameKeys)

        var moved = F.session(500, engine: "llm")
        moved.ueIPv4 = "10.200.0.1"
        moved.ueIPv6 = "2001:db8:ff:1::/64"
        moved.n3 = FTEID(teid: 900_000, address: "192.0.2.1")
        do {
            let (copy, _) = try state.applying([.putSession(moved)])
            #expect(copy.storageAllocations - state.storageAllocations >= 12)
        }
        allocations = state.storageAllocations
        try state.apply([.putSession(moved)])
        #expect(state.storageAllocations - allocations <= 3)
        #expect(state.session(seid: 500) == moved && state.seid(ueAddress: IPAddress("10.200.0.1")!) == 500)
        #expect(state.seid(ueAddress: IPAddress("10.0.1.244")!) == nil)
    }
}
