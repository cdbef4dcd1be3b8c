import Testing
import UPFPackets
import UPFPolicy
@testable import UPFDatapath

/// A session of the policy model, compiled and put into a fresh table; the reader is returned
/// with the tables (keep the tables alive while using the reader).
private func install(_ sessions: [Session], engines: [String: Int] = ["llm": 3],
                     applications: [Application] = []) throws -> (SessionTables, TableReader, [CompiledSession]) {
    let tables = SessionTables(capacity: 64, readers: 1)
    let apps = Dictionary(uniqueKeysWithValues: applications.map { ($0.id, $0) })
    var compiled: [CompiledSession] = []
    for s in sessions {
        let c = CompiledSession.compile(s, engines: engines, applications: apps)
        compiled.append(c)
        try tables.put(c)
    }
    return (tables, tables.reader(0), compiled)
}

private let standardActions: [Action] = [
    Action(id: 1, kind: .forwardN9(peer: "10.9.9.9", teid: 0x900)),
    Action(id: 2, kind: .steer(engine: "llm")),
    Action(id: 3, kind: .forwardN6),
    Action(id: 4, kind: .drop),
    Action(id: 5, kind: .buffer(limit: 64)),
    Action(id: 6, kind: .forwardN3),
]

private func ueSession(_ rules: [Rule], seid: UInt64 = 7, teid: UInt32 = 0x100) -> Session {
    Session(seid: seid, ueIPv4: "10.60.0.7", ueIPv6: "2001:db8:0:7::/64", n3: FTEID(teid: teid, address: "192.0.2.1"),
            gnb: FTEID(teid: 0xABC, address: "192.0.2.200"), defaultQFI: 9, rules: rules, actions: standardActions,
            qos: [QoS(id: 1, mbrUplinkKbps: 1000, qfi: 5), QoS(id: 2)],
            counters: [UsageRule(id: 10), UsageRule(id: 11)])
}

@Suite("Classifier: lookups and rule matching")
struct ClassifierTests {
    @Test func layoutIsCompact() {
        #expect(MemoryLayout<SessionRecord>.size == 128)
        #expect(MemoryLayout<SessionRecord>.stride == 128)
        #expect(MemoryLayout<CompiledRule>.stride == 64)
        #expect(MemoryLayout<CompiledPrefix>.stride == 32)
        #expect(_isPOD(CompiledRule.self) && _isPOD(SessionRecord.self) && _isPOD(CompiledQoS.self))
        #expect(MemoryLayout<SessionHandle>.size == 8)
        #expect(MemoryLayout<SessionHandle?>.size == 8)   // a burst's output: one word per packet
        // What lookups and classification read sits in the record's first cache line.
        let firstLine = [MemoryLayout<SessionRecord>.offset(of: \.block), MemoryLayout<SessionRecord>.offset(of: \.n3TEID),
                         MemoryLayout<SessionRecord>.offset(of: \.ueIPv4), MemoryLayout<SessionRecord>.offset(of: \.ruleCount),
                         MemoryLayout<SessionRecord>.offset(of: \.flags), MemoryLayout<SessionRecord>.offset(of: \.hotLines),
                         MemoryLayout<SessionRecord>.offset(of: \.ueIPv6LowMask),
                         MemoryLayout<SessionRecord>.offset(of: \.rulesAt), MemoryLayout<SessionRecord>.offset(of: \.prefixesAt)]
        #expect(firstLine.allSatisfy { $0 != nil && $0! < 64 }, "\(firstLine)")
        #expect(MemoryLayout<SessionRecord>.offset(of: \.ueIPv6)! + 16 <= 64)
    }

    @Test func lookupsByTEIDAndUEAddress() throws {
        let (tables, reader, _) = try install([
            ueSession([Rule(id: 1, precedence: 100, source: .access, action: 1)]),
            Session(seid: 8, ueIPv6: "2001:db8:0:8::5", n3: FTEID(teid: 0x200, address: "2001:db8::1"), defaultQFI: 9,
                    rules: [Rule(id: 1, precedence: 1, source: .core, action: 1)], actions: standardActions),
        ])
        defer { withExtendedLifetime(tables) {} }
        #expect(tables.count == 2)
        #expect(reader.lookupUplink(teid: 0x100)?.seid == 7)
        #expect(reader.lookupUplink(teid: 0x200)?.seid == 8)
        #expect(reader.lookupUplink(teid: 0x300) == nil)
        #expect(reader.lookupDownlink(ip("10.60.0.7"))?.seid == 7)
        #expect(reader.lookupDownlink(ip("10.60.0.8")) == nil)
        // IPv6 by /64: any interface identifier inside the UE's /64.
        #expect(reader.lookupDownlink(ip("2001:db8:0:7::1"))?.seid == 7)
        #expect(reader.lookupDownlink(ip("2001:db8:0:7:aaaa:bbbb:cccc:dddd"))?.seid == 7)
        #expect(reader.lookupDownlink(ip("2001:db8:0:9::1")) == nil)
        // An address alone is a /128: only that address.
        #expect(reader.lookupDownlink(ip("2001:db8:0:8::5"))?.seid == 8)
        #expect(reader.lookupDownlink(ip("2001:db8:0:8::6")) == nil)
        // The IPv4-mapped form of an IPv6 address never reaches the IPv6 index, and vice versa.
        #expect(reader.lookupDownlink(ip("::ffff:10.60.0.7"))?.seid == 7)

        let h = try #require(reader.lookupUplink(teid: 0x100))
        #expect(h.gnb == CompiledFTEID(teid: 0xABC, address: ip("192.0.2.200")))
        #expect(h.ueIPv4 == ip("10.60.0.7").ipv4)
        #expect(h.defaultQFI == 9)
        #expect(h.n3TEID == 0x100 && h.n3Address == ip("192.0.2.1"))
        #expect(tables.slot(seid: 7) == h.slot)
    }

    @Test func filteredRuleOfHigherPrecedenceWinsOverDefault() throws {
        let (tables, reader, compiled) = try install([ueSession([
            Rule(id: 9, precedence: 255, source: .access, action: 1, counters: [10]),  // default → N9
            Rule(id: 2, precedence: 10, source: .access,
                 match: SDFFilter(destinationPrefixes: ["203.0.113.0/24"], protocol: 6, destinationPorts: [PortRange(443)]),
                 action: 2, qos: 1, counters: [10, 11]),                                  // → steer
        ])])
        defer { withExtendedLifetime(tables) {} }
        let h = try #require(reader.lookupUplink(teid: 0x100))
        let steer = try #require(reader.classify(h, flow: flow("10.60.0.7", "203.0.113.5"), qfi: 9, source: .access))
        #expect(steer.id == 2 && steer.index == 0 && steer.action == .steer(engine: 3))
        #expect(steer.qos == CompiledQoS(id: 1, qfi: 5, mbrUplinkKbps: 1000, meter: 0) && steer.qosIndex == 0)
        #expect(Array(steer.counters) == [0, 1])
        let other = try #require(reader.classify(h, flow: flow("10.60.0.7", "198.51.100.1"), qfi: 9, source: .access))
        #expect(other.id == 9 && other.action == .forwardN9(peer: ip("10.9.9.9"), teid: 0x900))
        #expect(other.qos == nil && Array(other.counters) == [0])
        // Wrong port, wrong protocol: the default.
        #expect(reader.classify(h, flow: flow("10.60.0.7", "203.0.113.5", dport: 80), qfi: 9, source: .access)?.id == 9)
        #expect(reader.classify(h, flow: flow("10.60.0.7", "203.0.113.5", proto: 17), qfi: 9, source: .access)?.id == 9)
        // Downlink: no rule for core.
        #expect(reader.classify(h, flow: flow("203.0.113.5", "10.60.0.7"), qfi: 0, source: .core) == nil)
        // The datapath and the control-side reference agree.
        #expect(compiled[0].firstMatch(flow("10.60.0.7", "203.0.113.5"), qfi: 9, source: .access) == 0)
    }

    @Test func precedenceTiesBreakOnLowerID() throws {
        let (tables, reader, compiled) = try install([ueSession([
            Rule(id: 5, precedence: 10, source: .access, action: 3),
            Rule(id: 4, precedence: 10, source: .access, action: 4),
            Rule(id: 1, precedence: 20, source: .access, action: 1),
        ])])
        defer { withExtendedLifetime(tables) {} }
        #expect(compiled[0].rules.map(\.id) == [4, 5, 1])
        let h = try #require(reader.lookupUplink(teid: 0x100))
        #expect(reader.classify(h, flow: flow("10.60.0.7", "1.1.1.1"), qfi: 9, source: .access)?.action == .drop)
    }

    @Test func prefixesIPv4AndIPv6() throws {
        let (tables, reader, _) = try install([ueSession([
            Rule(id: 1, precedence: 1, source: .access, match: SDFFilter(destinationPrefixes: ["2001:db8:aa::/48"]), action: 2),
            Rule(id: 2, precedence: 2, source: .access,
                 match: SDFFilter(sourcePrefixes: ["10.60.0.0/16"], destinationPrefixes: ["10.0.0.0/8", "172.16.0.0/12"]), action: 3),
            Rule(id: 3, precedence: 3, source: .access, match: SDFFilter(destinationPrefixes: ["0.0.0.0/0"]), action: 4),
            Rule(id: 4, precedence: 4, source: .access, match: SDFFilter(destinationPrefixes: ["::/0"]), action: 1),
            Rule(id: 5, precedence: 5, source: .core, match: SDFFilter(sourcePrefixes: ["2001:db8:bb::1"]), action: 6),
        ])])
        defer { withExtendedLifetime(tables) {} }
        let h = try #require(reader.lookupUplink(teid: 0x100))
        func id(_ f: InnerFlow, _ s: SourceInterface = .access) -> UInt16? { reader.classify(h, flow: f, qfi: 9, source: s)?.id }
        #expect(id(flow("2001:db8:0:7::1", "2001:db8:aa:1::9")) == 1)
        #expect(id(flow("2001:db8:0:7::1", "2001:db8:ab::9")) == 4)
        #expect(id(flow("10.60.3.3", "10.1.2.3")) == 2)
        #expect(id(flow("10.60.3.3", "172.31.255.255")) == 2)
        #expect(id(flow("10.60.3.3", "172.32.0.0")) == 3)     // not in /12: any IPv4
        #expect(id(flow("10.61.3.3", "10.1.2.3")) == 3)       // source outside /16
        #expect(id(flow("2001:db8:bb::1", "2001:db8:0:7::1"), .core) == 5)
        #expect(id(flow("2001:db8:bb::2", "2001:db8:0:7::1"), .core) == nil)
    }

    @Test func portsProtocolTOSAndQFI() throws {
        let (tables, reader, _) = try install([ueSession([
            Rule(id: 1, precedence: 1, source: .access, match: SDFFilter(sourcePorts: [PortRange(low: 5000, high: 5010)]), action: 4),
            Rule(id: 2, precedence: 2, source: .access, match: SDFFilter(protocol: 1), action: 3),
            Rule(id: 3, precedence: 3, source: .access, match: SDFFilter(tos: TOSMatch(value: 0xB8, mask: 0xFC)), action: 2),
            Rule(id: 4, precedence: 4, source: .access, qfi: 7, action: 5),
            Rule(id: 5, precedence: 5, source: .access,
                 match: SDFFilter(destinationPorts: [PortRange(low: 8000, high: 8080), PortRange(53)]), action: 1),
        ])])
        defer { withExtendedLifetime(tables) {} }
        let h = try #require(reader.lookupUplink(teid: 0x100))
        func id(_ f: InnerFlow, qfi: UInt8 = 9) -> UInt16? { reader.classify(h, flow: f, qfi: qfi, source: .access)?.id }
        let ue = "10.60.0.7", remote = "198.51.100.9"
        #expect(id(flow(ue, remote, proto: 17, sport: 5005, dport: 1)) == 1)
        #expect(id(flow(ue, remote, proto: 17, sport: 5011, dport: 1)) == nil)
        #expect(id(flow(ue, remote, proto: 1)) == 2)
        #expect(id(flow(ue, remote, proto: 17, sport: 1, dport: 1, tos: 0xB9)) == 3)     // ECN bits masked
        #expect(id(flow(ue, remote, proto: 17, sport: 1, dport: 1, tos: 0x00)) == nil)
        #expect(id(flow(ue, remote, proto: 17, sport: 1, dport: 1), qfi: 7) == 4)
        #expect(id(flow(ue, remote, proto: 6, dport: 8080)) == 5)
        #expect(id(flow(ue, remote, proto: 17, dport: 53)) == 5)
        #expect(id(flow(ue, remote, proto: 6, dport: 8081)) == nil)
        // A non-first fragment has no ports: port rules never match it.
        #expect(id(flow(ue, remote, proto: 17, sport: 5005, dport: 53, fragment: true)) == nil)
        // No inner packet ports (ICMP) and a port rule.
        #expect(id(flow(ue, remote, proto: 58)) == nil)
    }

    @Test func applicationsExpandIntoRemoteEnd() throws {
        let apps = [
            Application(id: "vision", destinationPrefixes: ["203.0.113.0/24", "2001:db8:ee::/48"],
                        destinationPorts: [PortRange(low: 9000, high: 9100)], protocol: 6),
        ]
        let (tables, reader, compiled) = try install([ueSession([
            Rule(id: 1, precedence: 1, source: .access, application: "vision", action: 2),
            // Filter and application intersect: only 203.0.113.128/25 and ports 9050...9100.
            Rule(id: 2, precedence: 2, source: .core,
                 match: SDFFilter(sourcePrefixes: ["203.0.113.128/25"], sourcePorts: [PortRange(low: 9050, high: 9999)]),
                 application: "vision", action: 6),
            Rule(id: 3, precedence: 3, source: .access,
                 match: SDFFilter(protocol: 17), application: "vision", action: 4),  // disagree: left out
            Rule(id: 4, precedence: 4, source: .access, application: "missing", action: 4),
        ])], applications: apps)
        defer { withExtendedLifetime(tables) {} }
        #expect(compiled[0].rules.map(\.id) == [1, 2])
        #expect(compiled[0].neverMatching == [3])      // valid, but filter and application exclude each other
        #expect(compiled[0].notes.count == 1)          // the missing application
        #expect(compiled[0].prefixes(compiled[0].rules[1].sourcePrefixes).map(\.length) == [96 + 25])
        #expect(Array(compiled[0].ports(compiled[0].rules[1].sourcePorts)) == [CompiledPortRange(low: 9050, high: 9100)])
        let h = try #require(reader.lookupDownlink(ip("10.60.0.7")))
        func id(_ f: InnerFlow, _ s: SourceInterface) -> UInt16? { reader.classify(h, flow: f, qfi: 0, source: s)?.id }
        #expect(id(flow("10.60.0.7", "203.0.113.9", dport: 9000), .access) == 1)
        #expect(id(flow("2001:db8:0:7::1", "2001:db8:ee:1::1", dport: 9100), .access) == 1)
        #expect(id(flow("10.60.0.7", "203.0.113.9", dport: 9101), .access) == nil)
        #expect(id(flow("10.60.0.7", "203.0.113.9", proto: 17, dport: 9000), .access) == nil)
        #expect(id(flow("203.0.113.200", "10.60.0.7", sport: 9060, dport: 1), .core) == 2)
        #expect(id(flow("203.0.113.20", "10.60.0.7", sport: 9060, dport: 1), .core) == nil)
        #expect(id(flow("203.0.113.200", "10.60.0.7", sport: 9040, dport: 1), .core) == nil)
    }

    @Test func badTextNeverWidensAMatch() throws {
        var s = ueSession([
            // One good prefix, one bad: only the good one.
            Rule(id: 1, precedence: 1, source: .access, match: SDFFilter(destinationPrefixes: ["nonsense", "203.0.113.0/24"]), action: 2),
            // Only bad prefixes: the rule is left out (not "any").
            Rule(id: 2, precedence: 2, source: .access, match: SDFFilter(destinationPrefixes: ["10.0.0.300/8"]), action: 4),
            Rule(id: 3, precedence: 3, source: .access, action: 99),  // dangling action
            Rule(id: 4, precedence: 4, source: .access, action: 7),   // unknown engine
            Rule(id: 5, precedence: 5, source: .access, action: 8),   // bad N9 peer
            Rule(id: 6, precedence: 6, source: .access, action: 1, qos: 42, counters: [10, 77]),
        ])
        s.actions += [Action(id: 7, kind: .steer(engine: "nope")), Action(id: 8, kind: .forwardN9(peer: "x.y", teid: 1))]
        s.ueIPv4 = "10.60.0.256"
        s.gnb = FTEID(teid: 5, address: "gnb")
        let c = CompiledSession.compile(s, engines: ["llm": 0], applications: [:])
        #expect(c.rules.map(\.id) == [1, 6])
        #expect(c.ueIPv4 == nil && c.gnb == nil && c.ueIPv6 != nil)
        #expect(c.rules[1].qos == CompiledRule.noQoS)
        #expect(Array(c.counterIndices(c.rules[1].counters)) == [0])
        #expect(c.notes.count >= 8)
        #expect(c.firstMatch(flow("10.60.0.7", "203.0.113.1"), qfi: 0, source: .access) == 0)
        #expect(c.firstMatch(flow("10.60.0.7", "10.1.1.1"), qfi: 0, source: .access) == 1)
    }

    @Test func allActionKindsResolve() throws {
        let rules = (1...6).map { Rule(id: UInt16($0), precedence: UInt32($0), source: .access,
                                       match: SDFFilter(destinationPorts: [PortRange(UInt16($0))]), action: UInt32($0)) }
        let c = CompiledSession.compile(ueSession(rules), engines: ["llm": 3], applications: [:])
        #expect(c.notes.isEmpty)
        #expect(c.rules.map(\.action) == [.forwardN9(peer: ip("10.9.9.9"), teid: 0x900), .steer(engine: 3), .forwardN6,
                                          .drop, .buffer(limit: 64), .forwardN3])
    }
}
