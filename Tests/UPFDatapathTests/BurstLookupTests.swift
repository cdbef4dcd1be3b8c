import Testing
import UPFPackets
import UPFPolicy
@testable import UPFDatapath

/// The version a handle points at, as a comparable value (nil for a miss).
private func identity(_ h: SessionHandle?) -> UnsafePointer<SessionRecord>? { h?.record }

/// Runs a burst lookup over `keys` into a fresh output buffer (pre-filled with a handle that
/// must be overwritten) and returns the results.
private func burst<Key>(_ keys: [Key], _ body: (UnsafePointer<Key>, Int, UnsafeMutablePointer<SessionHandle?>) -> Void,
                        poison: SessionHandle?) -> [SessionHandle?] {
    var out = [SessionHandle?](repeating: poison, count: keys.count)
    keys.withUnsafeBufferPointer { k in
        out.withUnsafeMutableBufferPointer { o in
            // Empty bursts are allowed; pointers then may be anything valid.
            if let kb = k.baseAddress, let ob = o.baseAddress { body(kb, k.count, ob) }
        }
    }
    return out
}

/// Session i's N3 TEID: distinct, never 0, spread like allocated ones.
private func teidOf(_ i: Int) -> UInt32 { UInt32(i + 1) &* 2_654_435_761 }

/// A rule set whose rules and pools span several cache lines (the prefetch limit is reached).
private func rulesFor(_ seid: UInt64) -> (rules: [CompiledRule], prefixes: [CompiledPrefix], ports: [CompiledPortRange]) {
    var rules: [CompiledRule] = []
    for i in 0..<10 {
        rules.append(CompiledRule(precedence: UInt32(10 + i), id: UInt16(i + 1), source: 0,
                                  flags: CompiledRule.Flags.hasProtocol, proto: 6,
                                  destinationPrefixes: CompiledPoolRange(start: UInt16(i % 3), count: 1),
                                  destinationPorts: CompiledPoolRange(start: UInt16(i % 2), count: 1),
                                  action: .forwardN9(peer: IPAddress(high: seid, low: UInt64(i)), teid: UInt32(i))))
    }
    rules.append(CompiledRule(precedence: 100, id: 99, source: 0, action: .forwardN6))
    rules.append(CompiledRule(precedence: 100, id: 100, source: 1, action: .forwardN3))
    let prefixes = [CompiledPrefix(address: ip("::ffff:198.51.100.0"), length: 120),
                    CompiledPrefix(address: ip("::ffff:203.0.113.0"), length: 120),
                    CompiledPrefix(address: ip("2001:db8:ee::"), length: 48)]
    return (rules, prefixes, [CompiledPortRange(low: 443, high: 443), CompiledPortRange(low: 8000, high: 8080)])
}

@Suite("Burst lookups: same answers as single lookups")
struct BurstLookupTests {
    /// Sessions with TEID, IPv4 and IPv6 keys (some without one family, some with a /128, a few
    /// rule-less), a table at the default load.
    private func populated() throws -> (SessionTables, TableReader) {
        let tables = SessionTables(capacity: 3_000, readers: 1)
        for i in 0..<2_500 {
            let seid = UInt64(i + 1)
            let v4: UInt32? = i % 5 == 4 ? nil : 0x0A00_0000 + UInt32(i)
            let v6: IPAddress? = i % 3 == 0 ? nil : IPAddress(high: 0x2001_0DB8_0000_0000 | UInt64(i), low: 0)
            var s: CompiledSession
            if i % 7 == 0 {
                s = compiledSession(seid: seid, teid: teidOf(i), ueIPv4: v4, ueIPv6: v6)
            } else {
                let r = rulesFor(seid)
                s = compiledSession(seid: seid, teid: teidOf(i), ueIPv4: v4, ueIPv6: v6,
                                    gnbTEID: UInt32(i), rules: r.rules, prefixes: r.prefixes, ports: r.ports)
            }
            if i % 11 == 0, let p = v6 {   // a /128: only that address
                s.ueIPv6 = IPAddress(high: p.high, low: 0x42)
                s.ueIPv6PrefixLength = 128
            }
            try tables.put(s)
        }
        return (tables, tables.reader(0))
    }

    @Test func uplinkBurstMatchesSingleLookups() throws {
        let (tables, reader) = try populated()
        defer { withExtendedLifetime(tables) {} }
        var rng = TestRandom(seed: 5)
        let poison = reader.lookupUplink(teid: teidOf(1))
        #expect(poison != nil)
        // Hits and misses mixed, repeated keys, and every burst length around the chunk size.
        let keys: [UInt32] = (0..<400).map { k in
            switch k % 4 {
            case 0: return teidOf(rng.below(2_500))   // hit
            case 1: return UInt32(truncatingIfNeeded: rng.next())            // (almost surely) a miss
            case 2: return 0                                                   // never a TEID
            default: return teidOf(rng.below(10))      // hot keys
            }
        }
        for count in [0, 1, 2, 7, 31, 32, 33, 64, 65, 400] {
            let slice = Array(keys.prefix(count))
            let got = burst(slice, { reader.lookupUplinkBurst(teids: $0, count: $1, into: $2) }, poison: poison)
            for (i, t) in slice.enumerated() where identity(got[i]) != identity(reader.lookupUplink(teid: t)) {
                Issue.record("count \(count): TEID \(t) at \(i) differs")
            }
        }
        let all = burst(keys, { reader.lookupUplinkBurst(teids: $0, count: $1, into: $2) }, poison: nil)
        #expect(all.compactMap { $0 }.count >= 200)          // the hits were found
        #expect(all.enumerated().allSatisfy { i, h in h == nil || h!.n3TEID == keys[i] })
    }

    @Test func downlinkBurstsMatchSingleLookups() throws {
        let (tables, reader) = try populated()
        defer { withExtendedLifetime(tables) {} }
        var rng = TestRandom(seed: 6)
        var v4: [UInt32] = []
        var addresses: [IPAddress] = []
        for k in 0..<600 {
            let i = rng.below(2_600)   // beyond 2 500: misses
            v4.append(k % 9 == 0 ? UInt32(truncatingIfNeeded: rng.next()) : 0x0A00_0000 + UInt32(i))
            switch k % 6 {
            case 0: addresses.append(IPAddress(ipv4: 0x0A00_0000 + UInt32(i)))
            case 1: addresses.append(IPAddress(high: 0x2001_0DB8_0000_0000 | UInt64(i), low: rng.next()))  // any IID
            case 2: addresses.append(IPAddress(high: 0x2001_0DB8_0000_0000 | UInt64(i), low: 0x42))        // the /128s
            case 3: addresses.append(IPAddress(high: 0x2001_0DB8_0000_0000 | UInt64(i), low: 0x43))
            case 4: addresses.append(IPAddress(high: rng.next(), low: rng.next()))                         // miss
            default: addresses.append(ip("::ffff:10.0.0.3"))                                               // v4-mapped
            }
        }
        for count in [1, 5, 32, 33, 600] {
            let a = Array(v4.prefix(count))
            let got = burst(a, { reader.lookupDownlinkBurst(ipv4: $0, count: $1, into: $2) }, poison: nil)
            for (i, k) in a.enumerated() where identity(got[i]) != identity(reader.lookupDownlink(ipv4: k)) {
                Issue.record("IPv4 \(IPAddress(ipv4: k)) differs")
            }
            let b = Array(addresses.prefix(count))
            let got6 = burst(b, { reader.lookupDownlinkBurst($0, count: $1, into: $2) }, poison: nil)
            for (i, k) in b.enumerated() where identity(got6[i]) != identity(reader.lookupDownlink(k)) {
                Issue.record("address \(k) differs")
            }
        }
        let found = burst(addresses, { reader.lookupDownlinkBurst($0, count: $1, into: $2) }, poison: nil)
        #expect(found.compactMap { $0 }.count > 200)
    }

    /// Classifying what a burst found gives what classifying the single lookup's handle gives.
    @Test func classificationAfterABurst() throws {
        let (tables, reader) = try populated()
        defer { withExtendedLifetime(tables) {} }
        let teids = (0..<64).map { teidOf($0 * 13) }
        let handles = burst(teids, { reader.lookupUplinkBurst(teids: $0, count: $1, into: $2) }, poison: nil)
        let flows = [flow("10.0.0.1", "198.51.100.7", dport: 443), flow("10.0.0.1", "203.0.113.9", dport: 8080),
                     flow("10.0.0.1", "203.0.113.9", proto: 17, dport: 8080), flow("2001:db8::1", "2001:db8:ee::5", dport: 8001),
                     flow("10.0.0.1", "192.0.2.1")]
        var matched = 0
        for (i, t) in teids.enumerated() {
            let h = try #require(handles[i])
            let single = try #require(reader.lookupUplink(teid: t))
            for f in flows {
                let a = reader.classify(h, flow: f, qfi: 9, source: .access)
                let b = reader.classify(single, flow: f, qfi: 9, source: .access)
                #expect(a?.id == b?.id && a?.action == b?.action)
                if a != nil { matched += 1 }
            }
            #expect(reader.classify(h, flow: flows[0], qfi: 0, source: .core)?.id == (h.ruleCount > 0 ? 100 : nil))
            h.prefetchRules()   // harmless on any handle, with or without rules
        }
        #expect(matched > 0)
    }

    /// Keys in their second bucket (a nearly full index), and IPv6 /64s whose 32-bit tags
    /// collide, so the burst's first-bucket candidate is often absent or the wrong record and
    /// the full probe has to answer.
    @Test func secondBucketsAndTagCollisions() throws {
        let tables = SessionTables(capacity: 120, readers: 1, spareRecords: nil, indexCells: 128)
        let reader = tables.reader(0)
        var high: [UInt64] = []
        for i in 0..<110 {
            // tag64(h) = low32(h ^ h >> 32): (a << 32 | b) and ((a ^ c) << 32 | b ^ c) share a tag.
            let h = i % 2 == 0 ? UInt64(0x2001_0DB8 + i) << 32 | 7 : UInt64((0x2001_0DB8 + i - 1) ^ 5) << 32 | (7 ^ 5)
            high.append(h)
            try tables.put(compiledSession(seid: UInt64(i + 1), teid: UInt32(1_000 + i), ueIPv4: UInt32(50 + i),
                                           ueIPv6: IPAddress(high: h, low: 0)))
        }
        let census = tables.indexCensus()
        #expect(census.secondBucket > 0, "the test needs keys in their second bucket (\(census))")
        let teids = (0..<130).map { UInt32(1_000 + $0) }
        let up = burst(teids, { reader.lookupUplinkBurst(teids: $0, count: $1, into: $2) }, poison: nil)
        let addresses = high.map { IPAddress(high: $0, low: 9) } + [IPAddress(high: 0x2001_0DB8 << 32 | 7 ^ 1, low: 0)]
        let down = burst(addresses, { reader.lookupDownlinkBurst($0, count: $1, into: $2) }, poison: nil)
        for (i, t) in teids.enumerated() {
            #expect(identity(up[i]) == identity(reader.lookupUplink(teid: t)))
            #expect(up[i]?.seid == (i < 110 ? UInt64(i + 1) : nil))
        }
        for (i, a) in addresses.enumerated() {
            #expect(identity(down[i]) == identity(reader.lookupDownlink(a)))
            #expect(down[i]?.seid == (i < 110 ? UInt64(i + 1) : nil))
        }
    }
}
