import Testing
import UPFPackets
import UPFPolicy
@testable import UPFDatapath

/// A session whose every part says `version`: N9 TEID of its rules, gNB TEID.
private func versioned(seid: UInt64, teid: UInt32, v4: UInt32? = nil, v6: IPAddress? = nil, version: UInt32) -> CompiledSession {
    compiledSession(seid: seid, teid: teid, ueIPv4: v4, ueIPv6: v6, gnbTEID: version, rules: [
        CompiledRule(precedence: 10, id: 1, source: 0, action: .forwardN9(peer: IPAddress(high: seid, low: UInt64(version)), teid: version)),
        CompiledRule(precedence: 20, id: 2, source: 1, action: .steer(engine: version)),
    ])
}

private let anyFlow = flow("10.60.0.1", "198.51.100.1")

@Suite("Session tables: updates, capacity, reclamation")
struct SessionTablesTests {
    @Test func updateReplacesVersionAndKeys() throws {
        let tables = SessionTables(capacity: 16, readers: 1)
        let reader = tables.reader(0)
        try tables.put(versioned(seid: 1, teid: 100, v4: 0x0A00_0001, version: 1))
        let h1 = try #require(reader.lookupUplink(teid: 100))
        #expect(h1.gnb?.teid == 1)
        // New version, same keys: the old handle stays readable until quiescent().
        try tables.put(versioned(seid: 1, teid: 100, v4: 0x0A00_0001, version: 2))
        #expect(tables.count == 1)
        #expect(reader.lookupUplink(teid: 100)?.gnb?.teid == 2)
        #expect(h1.gnb?.teid == 1)
        #expect(reader.classify(h1, flow: anyFlow, qfi: 0, source: .access)?.action
                == .forwardN9(peer: IPAddress(high: 1, low: 1), teid: 1))
        #expect(tables.pendingReclaim == 1)
        #expect(tables.reclaim() == 0)           // the reader may still hold version 1
        reader.quiescent()
        #expect(tables.reclaim() == 1)
        #expect(tables.ruleBlocks == 1)

        // Keys move: new TEID, IPv4 dropped, IPv6 added.
        let v6 = ip("2001:db8:1:2::")
        try tables.put(versioned(seid: 1, teid: 101, v6: v6, version: 3))
        #expect(reader.lookupUplink(teid: 100) == nil)
        #expect(reader.lookupUplink(teid: 101)?.gnb?.teid == 3)
        #expect(reader.lookupDownlink(ipv4: 0x0A00_0001) == nil)
        #expect(reader.lookupDownlink(ip("2001:db8:1:2::77"))?.seid == 1)
        #expect(tables.slot(seid: 1) == h1.slot)   // stable across versions

        try tables.delete(seid: 1)
        #expect(tables.count == 0)
        #expect(reader.lookupUplink(teid: 101) == nil)
        #expect(reader.lookupDownlink(ip("2001:db8:1:2::77")) == nil)
        #expect(throws: TableError.notFound(seid: 1)) { try tables.delete(seid: 1) }
        reader.quiescent()
        tables.reclaim()
        #expect(tables.pendingReclaim == 0 && tables.ruleBlocks == 0)
        #expect(tables.indexCensus().live == 0)
    }

    @Test func tableFullAndKeyConflictsChangeNothing() throws {
        let tables = SessionTables(capacity: 4, readers: 1)
        let reader = tables.reader(0)
        for i in 1...4 { try tables.put(versioned(seid: UInt64(i), teid: UInt32(i), v4: UInt32(i), version: 1)) }
        #expect(throws: TableError.full(capacity: 4)) {
            try tables.put(versioned(seid: 5, teid: 5, v4: 5, version: 1))
        }
        #expect(tables.count == 4 && reader.lookupUplink(teid: 5) == nil && reader.lookupDownlink(ipv4: 5) == nil)
        // Updating an existing session is still possible when full.
        try tables.put(versioned(seid: 4, teid: 4, v4: 4, version: 2))
        #expect(reader.lookupUplink(teid: 4)?.gnb?.teid == 2)
        // A key of another session.
        #expect(throws: TableError.keyInUse(.teid(2), ownerSEID: 2)) {
            try tables.put(versioned(seid: 3, teid: 2, v4: 3, version: 9))
        }
        #expect(throws: TableError.keyInUse(.ueIPv4(1), ownerSEID: 1)) {
            try tables.put(versioned(seid: 3, teid: 3, v4: 1, version: 9))
        }
        #expect(reader.lookupUplink(teid: 3)?.gnb?.teid == 1)
        #expect(reader.lookupUplink(teid: 2)?.seid == 2)
        #expect(tables.count == 4)
        // Inconsistent compiled sessions are refused.
        var bad = versioned(seid: 9, teid: 9, version: 1)
        bad.rules[0].destinationPrefixes = CompiledPoolRange(start: 0, count: 1)
        #expect(throws: TableError.invalidSession("rule 0 (id 1) points outside the session's pools")) { try tables.put(bad) }
        try tables.delete(seid: 1)
        try tables.put(versioned(seid: 5, teid: 5, v4: 5, version: 1))
        #expect(tables.count == 4)
    }

    @Test func retiredRecordsAndSlotsAreReusedOnlyAfterQuiescence() throws {
        let tables = SessionTables(capacity: 2, readers: 2, spareRecords: 1)
        let reader = tables.reader(0)
        tables.reader(1).offline()   // an idle worker does not hold reclamation back
        try tables.put(versioned(seid: 1, teid: 1, version: 1))
        try tables.put(versioned(seid: 2, teid: 2, version: 1))
        let old = try #require(reader.lookupUplink(teid: 1))
        let oldSlot = old.slot
        // One spare record: the first update uses it, the second must wait for the reader.
        try tables.put(versioned(seid: 1, teid: 1, version: 2))
        #expect(throws: TableError.reclaimPending) { try tables.put(versioned(seid: 1, teid: 1, version: 3)) }
        #expect(old.gnb?.teid == 1)   // still intact: nothing was reused under the reader
        #expect(reader.lookupUplink(teid: 1)?.gnb?.teid == 2)
        reader.quiescent()
        try tables.put(versioned(seid: 1, teid: 1, version: 3))   // put reclaims by itself
        #expect(reader.lookupUplink(teid: 1)?.gnb?.teid == 3)

        // Delete frees the stable slot only after quiescence; a new session then reuses it.
        try tables.delete(seid: 1)
        #expect(throws: TableError.reclaimPending) { try tables.put(versioned(seid: 3, teid: 3, version: 1)) }
        reader.quiescent()
        try tables.put(versioned(seid: 3, teid: 3, version: 1))
        #expect(tables.slot(seid: 3) == oldSlot)
        #expect(reader.lookupUplink(teid: 1) == nil)
        #expect(reader.lookupUplink(teid: 3)?.seid == 3)
        // The offline reader comes back.
        tables.reader(1).online()
        #expect(tables.reader(1).lookupUplink(teid: 3)?.seid == 3)
    }

    @Test func memoryPerSessionAtOneMillion() {
        for capacity in [1_000, 600_000, 1_000_000, 4_000_000] {
            let bytes = SessionTables.bytesPerSession(capacity: capacity)
            #expect(bytes <= 256, "\(bytes) B per session at \(capacity)")
        }
        let oneMillion = SessionTables.bytesPerSession(capacity: 1_000_000)
        print("bytes per session (without rules) at 1M: \(oneMillion)")
        #expect(oneMillion > 200)   // the layout is what it says (128 B records + indexes)
    }

    @Test func oneMillionSessions() throws {
        let capacity = 1_000_000
        let tables = SessionTables(capacity: capacity, readers: 1)
        #expect(tables.reservedBytes <= 256 * capacity + 64 * 2)
        let reader = tables.reader(0)
        // No rules: what a session costs without them. Sequential TEIDs and addresses.
        for i in 0..<capacity {
            try tables.put(compiledSession(seid: UInt64(i), teid: UInt32(i + 1), ueIPv4: UInt32(0x0A00_0000 + i)))
        }
        #expect(tables.count == capacity)
        #expect(tables.ruleBlocks == 0)
        #expect(throws: TableError.full(capacity: capacity)) { try tables.put(compiledSession(seid: 1 << 40, teid: 1 << 31)) }
        var found = 0
        for i in stride(from: 0, to: capacity, by: 997) {
            if reader.lookupUplink(teid: UInt32(i + 1))?.seid == UInt64(i),
               reader.lookupDownlink(ipv4: UInt32(0x0A00_0000 + i))?.seid == UInt64(i) { found += 1 }
        }
        #expect(found == (capacity + 996) / 997)
    }

    @Test func churnKeepsIndexesExact() throws {
        // Random puts (with moving keys) and deletes against a model; tombstones stay bounded.
        let capacity = 2_000
        let tables = SessionTables(capacity: capacity, readers: 1)
        let reader = tables.reader(0)
        var rng = TestRandom(seed: 42)
        var teidOf: [UInt64: UInt32] = [:]
        var owner: [UInt32: UInt64] = [:]
        for step in 0..<60_000 {
            let seid = UInt64(rng.below(3_000))
            if rng.below(3) == 0, teidOf[seid] != nil {
                try tables.delete(seid: seid)
                owner[teidOf.removeValue(forKey: seid)!] = nil
            } else {
                let teid = UInt32(rng.below(20_000) + 1)
                if teidOf[seid] == nil && teidOf.count == capacity {
                    #expect(throws: TableError.full(capacity: capacity)) {
                        try tables.put(compiledSession(seid: seid, teid: teid, ueIPv4: teid))
                    }
                    continue
                }
                if let o = owner[teid], o != seid {
                    #expect(throws: TableError.keyInUse(.teid(teid), ownerSEID: o)) {
                        try tables.put(compiledSession(seid: seid, teid: teid, ueIPv4: teid))
                    }
                    continue
                }
                try tables.put(compiledSession(seid: seid, teid: teid, ueIPv4: teid))
                if let old = teidOf[seid] { owner[old] = nil }
                teidOf[seid] = teid
                owner[teid] = seid
            }
            if step % 16 == 0 {
                reader.quiescent()
                tables.reclaim()
            }
        }
        #expect(tables.count == teidOf.count)
        for teid in 1...20_000 {
            let got = reader.lookupUplink(teid: UInt32(teid))?.seid
            let v4 = reader.lookupDownlink(ipv4: UInt32(teid))?.seid
            if got != owner[UInt32(teid)] || v4 != owner[UInt32(teid)] {
                Issue.record("TEID \(teid): \(String(describing: got)) / \(String(describing: v4)) expected \(String(describing: owner[UInt32(teid)]))")
                break
            }
        }
        let census = tables.indexCensus()
        #expect(census.live == 2 * teidOf.count)
        print("churn: \(teidOf.count) sessions, \(census.secondBucket) of \(census.live) cells in their second bucket, "
              + "\(tables.indexMoves) moves")
        #expect(census.secondBucket < census.live / 4)
    }

    /// Needs a sanitizer run (`--sanitize=address` or `thread`) for its malloc hook.
    @Test(.enabled(if: MallocCounter.available, "malloc hooks exist only under a sanitizer"))
    func fastPathAllocatesNothing() throws {
        let tables = SessionTables(capacity: 64, readers: 1)
        let reader = tables.reader(0)
        try tables.put(compiledSession(
            seid: 1, teid: 100, ueIPv4: ip("10.60.0.1").ipv4, ueIPv6: ip("2001:db8:0:1::"), gnbTEID: 5,
            rules: [
                CompiledRule(precedence: 1, id: 1, source: 0, flags: CompiledRule.Flags.hasProtocol, proto: 6,
                             destinationPrefixes: CompiledPoolRange(start: 0, count: 2),
                             destinationPorts: CompiledPoolRange(start: 0, count: 1),
                             action: .forwardN9(peer: ip("10.9.9.9"), teid: 7)),
                CompiledRule(precedence: 9, id: 2, source: 0, action: .forwardN6),
                CompiledRule(precedence: 9, id: 3, source: 1, action: .forwardN3),
            ],
            prefixes: [CompiledPrefix(address: ip("2001:db8:ff::"), length: 48),
                       CompiledPrefix(address: ip("::ffff:203.0.113.0"), length: 120)],
            ports: [CompiledPortRange(low: 443, high: 443)]))
        // The counter works: an Array allocates.
        let control = MallocCounter.count { _ = [UInt8](repeating: 1, count: Int.random(in: 5...6)) }
        #expect(control >= 1)

        let flows = [flow("10.60.0.1", "203.0.113.4"), flow("10.60.0.1", "198.51.100.1"),
                     flow("2001:db8:0:1::9", "2001:db8:ff::1"), flow("203.0.113.4", "10.60.0.1")]
        var hits = 0
        let ue6 = ip("2001:db8:0:1::1")
        // Twice: the first pass may instantiate type metadata once (the runtime caches it);
        // the second is the steady state, which must not allocate at all.
        // The burst lookups' buffers, made once as a worker would.
        let teids = UnsafeMutablePointer<UInt32>.allocate(capacity: 32)
        let ues = UnsafeMutablePointer<IPAddress>.allocate(capacity: 32)
        let handles = UnsafeMutablePointer<SessionHandle?>.allocate(capacity: 32)
        defer { teids.deallocate(); ues.deallocate(); handles.deallocate() }
        for k in 0..<32 {
            teids[k] = k % 3 == 0 ? 101 : 100
            ues[k] = k % 2 == 0 ? ue6 : flows[3].destination
        }
        var counts: [Int] = []
        for _ in 0..<2 { counts.append(flows.withUnsafeBufferPointer { flows in MallocCounter.count {
            for i in 0..<10_000 {
                if let h = reader.lookupUplink(teid: 100),
                   let m = reader.classify(h, flow: flows[i & 3], qfi: 9, source: .access) {
                    if case .forwardN9(_, let teid) = m.action { hits &+= Int(teid) }
                    hits &+= m.counters.count &+ Int(m.id)
                }
                if let h = reader.lookupDownlink(flows[3].destination),
                   let m = reader.classify(h, flow: flows[3], qfi: 0, source: .core), m.action == .forwardN3 {
                    hits &+= 1
                }
                if reader.lookupDownlink(ipv6: ue6)?.seid == 1 { hits &+= 1 }
                if i & 31 == 0 {
                    reader.lookupUplinkBurst(teids: teids, count: 32, into: handles)
                    for k in 0..<32 {
                        if let h = handles[k], let m = reader.classify(h, flow: flows[k & 3], qfi: 9, source: .access) {
                            hits &+= Int(m.id)
                        }
                    }
                    reader.lookupDownlinkBurst(ues, count: 32, into: handles)
                    reader.lookupDownlinkBurst(ipv4: teids, count: 32, into: handles)
                    if handles[0] != nil { hits &+= 1 }
                    reader.quiescent()
                }
            }
        } }) }
        #expect(hits > 0)
        print("mallocs in 10k lookups + classifications: first pass \(counts[0]), second \(counts[1])")
        #expect(counts[1] == 0)
    }
}
