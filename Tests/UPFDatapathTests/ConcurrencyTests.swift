import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif
import UPFPackets
import UPFPolicy
@testable import UPFDatapath

/// Session `seid` at `version`: every part of it — the record's gNB TEID, both uplink rules'
/// N9 peer and TEID, the downlink rule's engine — says the same seid and version, so a reader
/// that saw a mix of two versions would notice.
private func version(_ version: UInt32, of seid: UInt64, teid: UInt32, v4: UInt32?, v6: IPAddress?) -> CompiledSession {
    compiledSession(seid: seid, teid: teid, ueIPv4: v4, ueIPv6: v6, gnbTEID: version, rules: [
        CompiledRule(precedence: 10, id: 1, source: 0, flags: CompiledRule.Flags.hasProtocol, proto: 6,
                     destinationPrefixes: CompiledPoolRange(start: 0, count: 1),
                     destinationPorts: CompiledPoolRange(start: 0, count: 1),
                     action: .forwardN9(peer: IPAddress(high: seid, low: UInt64(version)), teid: version)),
        CompiledRule(precedence: 100, id: 2, source: 0,
                     action: .forwardN9(peer: IPAddress(high: seid, low: UInt64(version) | 1 << 32), teid: version)),
        CompiledRule(precedence: 100, id: 3, source: 1, action: .steer(engine: version)),
    ], prefixes: [CompiledPrefix(address: IPAddress(ipv4: 0xC633_6400), length: 120)],   // 198.51.100.0/24
       ports: [CompiledPortRange(low: 443, high: 443)])
}

/// What one classification said, checked against the session it was looked up for.
private enum Outcome {
    case ok(version: UInt32)
    case missing
    case torn(String)
}

private func check(_ reader: TableReader, seid: UInt64, handle: SessionHandle?, flow: InnerFlow,
                   source: SourceInterface, expectedRule: UInt16) -> Outcome {
    guard let h = handle else { return .missing }
    guard h.seid == seid else { return .torn("lookup for \(seid) gave session \(h.seid)") }
    guard let gnb = h.gnb else { return .torn("no gNB F-TEID") }
    let v = gnb.teid
    guard let m = reader.classify(h, flow: flow, qfi: 9, source: source) else { return .torn("no rule matched") }
    guard m.id == expectedRule else { return .torn("rule \(m.id), expected \(expectedRule)") }
    switch m.action {
    case .forwardN9(let peer, let teid):
        let expectedLow = UInt64(v) | (expectedRule == 2 ? 1 << 32 : 0)
        guard peer.high == seid, peer.low == expectedLow, teid == v else {
            return .torn("seid \(seid) record v\(v), rule \(m.id) says peer \(peer.high)/\(peer.low) teid \(teid)")
        }
    case .steer(let engine):
        guard engine == v else { return .torn("seid \(seid) record v\(v), rule says v\(engine)") }
    default:
        return .torn("unexpected action \(m.action)")
    }
    return .ok(version: v)
}

private struct ReaderReport: Sendable {
    var classified = 0
    var churnSeen = 0
    var problems: [String] = []
}

/// What the test thread and the worker thread share.
private final class Shared: Sendable {
    let done = Atomic<Bool>(false)
    let report = Mutex(ReaderReport())
}

@Suite("Session tables: hitless updates under a concurrent reader")
struct ConcurrencyTests {
    /// `burst`: the worker looks its packets up with the burst lookups (32 at a time, staged
    /// prefetching, first-bucket candidates) instead of one by one.
    @Test(arguments: [false, true])
    func readersSeeOldOrNewVersionNeverAMix(burst: Bool) throws {
        let stable = 32          // sessions whose keys never change: lookups must always succeed
        let churning = 32        // sessions deleted, re-added, and moved between keys
        let updates = 100_000
        let tables = SessionTables(capacity: 256, readers: 2, spareRecords: 48)
        let reader = tables.reader(0)
        tables.reader(1).offline()

        @Sendable func teid(_ s: Int) -> UInt32 { UInt32(0x1000 + s) }
        func v4(_ s: Int) -> UInt32 { 0x0A3C_0000 + UInt32(s) }
        func v6(_ s: Int) -> IPAddress { IPAddress(high: 0x2001_0DB8_0000_0000 | UInt64(s), low: 0) }
        for s in 0..<stable {
            try tables.put(version(1, of: UInt64(s), teid: teid(s), v4: v4(s), v6: v6(s)))
        }

        // The fixed packet set: for each stable session an uplink flow to the filtered rule, one
        // to the default rule, a downlink flow over IPv4 and one over IPv6.
        struct Packet: Sendable {
            var seid: UInt64
            var teid: UInt32?
            var flow: InnerFlow
            var source: SourceInterface
            var rule: UInt16
            var key: Int
        }
        var packets: [Packet] = []
        for s in 0..<stable {
            let ue4 = IPAddress(ipv4: v4(s)), ue6 = IPAddress(high: v6(s).high, low: 0x1234)
            var f = flow("10.0.0.1", "198.51.100.7", dport: 443)
            f.source = ue4
            packets.append(Packet(seid: UInt64(s), teid: teid(s), flow: f, source: .access, rule: 1, key: 0))
            f.destination = ip("192.0.2.9")
            packets.append(Packet(seid: UInt64(s), teid: teid(s), flow: f, source: .access, rule: 2, key: 1))
            var d = flow("198.51.100.7", "10.0.0.1", dport: 5000)
            d.destination = ue4
            packets.append(Packet(seid: UInt64(s), teid: nil, flow: d, source: .core, rule: 3, key: 2))
            d = flow("2001:db8:ffff::1", "2001:db8::1", dport: 5000)
            d.destination = ue6
            packets.append(Packet(seid: UInt64(s), teid: nil, flow: d, source: .core, rule: 3, key: 3))
        }
        let fixed = packets
        // For the burst lookups: the uplink TEIDs and downlink addresses of the fixed packets,
        // and where each packet's answer lands.
        let upKeys = fixed.compactMap(\.teid)
        let downKeys = fixed.filter { $0.teid == nil }.map(\.flow.destination)
        var slots: [Int] = []
        var (u, d) = (0, upKeys.count)
        for p in fixed {
            if p.teid != nil { slots.append(u); u += 1 } else { slots.append(d); d += 1 }
        }
        let answerSlot = slots

        let shared = Shared()
        let worker = TestThread {
            var classified = 0, churnSeen = 0
            var problems: [String] = []
            // Per key: one put flips a session's keys one after another, so across keys a reader
            // may see the new version by TEID and the old one by UE address for a moment; by
            // any one key it never goes back.
            var lastSeen = [UInt32](repeating: 0, count: 4 * stable)
            var round = 0
            let answers = UnsafeMutablePointer<SessionHandle?>.allocate(capacity: fixed.count)
            let churnKeys = UnsafeMutablePointer<UInt32>.allocate(capacity: churning)
            let churnAnswers = UnsafeMutablePointer<SessionHandle?>.allocate(capacity: churning)
            defer { answers.deallocate(); churnKeys.deallocate(); churnAnswers.deallocate() }
            func record(_ o: Outcome, _ p: Packet) {
                switch o {
                case .ok(let v):
                    let k = 4 * Int(p.seid) + p.key
                    if v < lastSeen[k] { problems.append("seid \(p.seid) key \(p.key) went back from v\(lastSeen[k]) to v\(v)") }
                    lastSeen[k] = v
                    classified += 1
                case .missing: problems.append("seid \(p.seid) not found (rule \(p.rule))")
                case .torn(let why): problems.append(why)
                }
            }
            while !shared.done.load(ordering: .acquiring) && problems.count < 10 {
                if burst {
                    upKeys.withUnsafeBufferPointer { reader.lookupUplinkBurst(teids: $0.baseAddress!, count: $0.count, into: answers) }
                    downKeys.withUnsafeBufferPointer {
                        reader.lookupDownlinkBurst($0.baseAddress!, count: $0.count, into: answers + upKeys.count)
                    }
                }
                for (i, p) in fixed.enumerated() {
                    let h = burst ? answers[answerSlot[i]]
                        : p.teid.map { reader.lookupUplink(teid: $0) } ?? reader.lookupDownlink(p.flow.destination)
                    record(check(reader, seid: p.seid, handle: h, flow: p.flow, source: p.source, expectedRule: p.rule), p)
                }
                // Churning sessions: found or not, but never wrong.
                for c in 0..<churning { churnKeys[c] = teid(stable + (round &+ c) % (2 * churning)) }
                if burst { reader.lookupUplinkBurst(teids: churnKeys, count: churning, into: churnAnswers) }
                for c in 0..<churning {
                    let t = churnKeys[c]
                    if let h = burst ? churnAnswers[c] : reader.lookupUplink(teid: t) {
                        guard h.n3TEID == t, let v = h.gnb?.teid else { problems.append("churn: wrong record"); continue }
                        var f = flow("10.0.0.1", "192.0.2.9")
                        f.source = IPAddress(ipv4: h.ueIPv4 ?? 0)
                        if case .forwardN9(let peer, let nt)? = reader.classify(h, flow: f, qfi: 9, source: .access)?.action,
                           peer.high == h.seid, nt == v {
                            churnSeen += 1
                        } else {
                            problems.append("churn: session \(h.seid) v\(v) torn")
                        }
                    }
                }
                round &+= 1
                reader.quiescent()
            }
            reader.offline()
            shared.report.withLock { $0 = ReaderReport(classified: classified, churnSeen: churnSeen, problems: problems) }
        }

        // The writer: 100k random updates.
        var rng = TestRandom(seed: 7)
        var versions = [UInt32](repeating: 1, count: stable)
        var churnVersion: UInt32 = 0
        var reclaimWaits = 0
        var applied = 0
        while applied < updates {
            do throws(TableError) {
                if rng.below(4) != 0 {
                    let s = rng.below(stable)
                    let next = versions[s] + 1
                    try tables.put(version(next, of: UInt64(s), teid: teid(s), v4: v4(s), v6: v6(s)))
                    versions[s] = next
                } else {
                    // A churning session: put it on a random key of its range, or delete it.
                    let seid = UInt64(1_000 + rng.below(churning))
                    if rng.below(3) == 0 {
                        do throws(TableError) { try tables.delete(seid: seid) } catch .notFound { } catch { throw error }
                    } else {
                        let key = stable + rng.below(2 * churning)
                        churnVersion += 1
                        let session = version(churnVersion, of: seid, teid: teid(key), v4: v4(key), v6: nil)
                        do throws(TableError) { try tables.put(session) } catch .keyInUse { } catch { throw error }
                    }
                }
                applied += 1
            } catch .reclaimPending {
                reclaimWaits += 1
                tables.reclaim()
                sched_yield()
                continue
            } catch {
                Issue.record("writer: \(error)")
                break
            }
            if applied % 32 == 0 { tables.reclaim() }
        }
        shared.done.store(true, ordering: .releasing)
        worker.join()

        let r = shared.report.withLock { $0 }
        #expect(r.problems.isEmpty, "\(r.problems.prefix(10))")
        #expect(r.classified > 0)
        print("concurrency: \(applied) updates, \(r.classified) checked classifications, \(r.churnSeen) churn hits, "
              + "\(reclaimWaits) waits for reclamation")

        // The reader is offline: everything retired can go, and nothing else is allocated.
        tables.reclaim()
        #expect(tables.pendingReclaim == 0)
        #expect(tables.ruleBlocks == tables.count)
        let live = tables.count
        for s in 0..<stable { try tables.delete(seid: UInt64(s)) }
        for c in 0..<churning { try? tables.delete(seid: UInt64(1_000 + c)) }
        #expect(tables.count == 0 && live >= stable)
        tables.reclaim()
        #expect(tables.pendingReclaim == 0 && tables.ruleBlocks == 0)
        #expect(tables.freeRecordsNow == tables.capacity + tables.spareRecords)
        #expect(tables.indexCensus().live == 0)
    }

    /// A nearly full index (4 buckets of 8 cells for up to 28 sessions) under churn: keys are
    /// moved between buckets all the time, and a reader looking up the keys that never change
    /// must find every one of them every time.
    @Test(arguments: [false, true])
    func movesInAFullIndexNeverHideAKey(burst: Bool) throws {
        let capacity = 28
        let tables = SessionTables(capacity: capacity, readers: 1, spareRecords: nil, indexCells: 32)
        let reader = tables.reader(0)
        let stable = 12
        for s in 0..<stable {
            try tables.put(compiledSession(seid: UInt64(s), teid: UInt32(1 + s), ueIPv4: UInt32(1 + s)))
        }
        let shared = Shared()
        let worker = TestThread {
            var problems: [String] = []
            var lookups = 0
            let keys = UnsafeMutablePointer<UInt32>.allocate(capacity: stable)
            let up = UnsafeMutablePointer<SessionHandle?>.allocate(capacity: stable)
            let down = UnsafeMutablePointer<SessionHandle?>.allocate(capacity: stable)
            defer { keys.deallocate(); up.deallocate(); down.deallocate() }
            for s in 0..<stable { keys[s] = UInt32(1 + s) }
            while !shared.done.load(ordering: .acquiring) && problems.count < 10 {
                if burst {
                    // Both indexes in bursts: moves land between the stages of a burst too.
                    reader.lookupUplinkBurst(teids: keys, count: stable, into: up)
                    reader.lookupDownlinkBurst(ipv4: keys, count: stable, into: down)
                    for s in 0..<stable {
                        if up[s]?.seid != UInt64(s) { problems.append("burst: TEID \(1 + s) missed") }
                        if down[s]?.seid != UInt64(s) { problems.append("burst: IPv4 \(1 + s) missed") }
                    }
                    lookups += 2 * stable
                    reader.quiescent()
                    continue
                }
                for s in 0..<stable {
                    if reader.lookupUplink(teid: UInt32(1 + s))?.seid != UInt64(s) { problems.append("TEID \(1 + s) missed") }
                    if reader.lookupDownlink(ipv4: UInt32(1 + s))?.seid != UInt64(s) { problems.append("IPv4 \(1 + s) missed") }
                    lookups += 2
                }
                reader.quiescent()
            }
            reader.offline()
            shared.report.withLock { $0 = ReaderReport(classified: lookups, problems: problems) }
        }
        var rng = TestRandom(seed: 99)
        var keyOf: [UInt64: UInt32] = [:]
        var used = Set((1...stable).map { UInt32($0) })
        var moves: UInt64 = 0
        for _ in 0..<30_000 {
            let seid = UInt64(100 + rng.below(capacity - stable))
            if let k = keyOf[seid], rng.below(2) == 0 {
                try tables.delete(seid: seid)
                used.remove(k)
                keyOf[seid] = nil
            } else {
                var key = UInt32(1_000 + rng.below(100_000))
                while used.contains(key) { key += 1 }
                do {
                    try tables.put(compiledSession(seid: seid, teid: key, ueIPv4: key))
                    if let k = keyOf[seid] { used.remove(k) }
                    keyOf[seid] = key
                    used.insert(key)
                } catch {
                    switch error {
                    case .reclaimPending: tables.reclaim()
                    case .indexFull: break   // possible in a table this small; the state is unchanged
                    default: Issue.record("writer: \(error)")
                    }
                }
            }
            tables.reclaim()
            moves = tables.indexMoves
        }
        shared.done.store(true, ordering: .releasing)
        worker.join()
        let r = shared.report.withLock { $0 }
        #expect(r.problems.isEmpty, "\(r.problems)")
        #expect(moves > 20, "the test must make the index move keys (\(moves) moves)")
        print("full index: \(moves) moves, \(r.classified) lookups of stable keys")
        for (seid, key) in keyOf {
            #expect(reader.lookupUplink(teid: key)?.seid == seid)
        }
    }
}
