import Foundation
import Testing
@testable import UPFPolicy

/// Every check of `PolicyState.validated`, with its code and path: cases 20-24 of BAD_INPUTS.
@Suite struct ValidationTests {
    typealias F = Fixtures

    /// Validates a policy of the fixture engine and application plus `sessions`.
    func validate(_ sessions: [Session], engines: [Engine] = [F.llm], applications: [Application] = [F.inference],
                  limits: PolicyLimits = PolicyLimits()) throws {
        _ = try PolicyState.validated(Policy(engines: engines, applications: applications, sessions: sessions), limits: limits)
    }

    /// The fixture session 1 changed by `edit`, validated after two good sessions (so paths say `sessions[2]`).
    func validateEdited(_ edit: (inout Session) -> Void) throws {
        var s = F.session(1, engine: "llm")
        edit(&s)
        try validate([F.session(2), F.session(3), s])
    }

    @Test func theFixturesAreValid() throws {
        try validate((1...20).map { F.session($0, engine: $0 % 2 == 0 ? "llm" : nil) })
        try validateEdited { _ in }
    }

    // MARK: BAD_INPUTS 20: missing action, dangling references

    @Test func danglingReferences() {
        let action = expectPolicyError("dangling_reference", at: "sessions[2].rules[1].action") {
            try validateEdited { $0.rules[1].action = 9 }
        }
        #expect(action?.message.contains("action 9") == true)
        expectPolicyError("dangling_reference", at: "sessions[2].rules[0].qos") { try validateEdited { $0.rules[0].qos = 4 } }
        expectPolicyError("dangling_reference", at: "sessions[2].rules[0].counters[1]") {
            try validateEdited { $0.counters = [UsageRule(id: 1)]; $0.rules[0].counters = [1, 2] }
        }
        let engine = expectPolicyError("dangling_reference", at: "sessions[2].actions[2].engine") {
            try validateEdited { $0.actions[2].kind = .steer(engine: "vision") }
        }
        #expect(engine?.message.contains("'vision'") == true)
        expectPolicyError("dangling_reference", at: "sessions[2].rules[0].application") {
            try validateEdited { $0.rules[0].application = "video" }
        }
        // A session steering to an engine of a policy with no engines at all.
        expectPolicyError("dangling_reference", at: "sessions[0].actions[2].engine") { try validate([F.session(1, engine: "llm")], engines: []) }
    }

    @Test func aSessionNeedsRules() {
        expectPolicyError("invalid_field", at: "sessions[2].rules") { try validateEdited { $0.rules = [] } }
    }

    @Test func downlinkToN3NeedsTheGNBTunnel() {
        expectPolicyError("missing_field", at: "sessions[2].gnb") { try validateEdited { $0.gnb = nil } }
        // Buffering instead is fine.
        #expect(throws: Never.self) {
            try validateEdited { $0.gnb = nil; $0.actions[1].kind = .buffer(limit: 64) }
        }
    }

    @Test func duplicateIDs() {
        let rule = expectPolicyError("duplicate_id", at: "sessions[2].rules[2].id") { try validateEdited { $0.rules[2].id = 1 } }
        #expect(rule?.message.contains("rules[0]") == true)
        expectPolicyError("duplicate_id", at: "sessions[2].actions[1].id") { try validateEdited { $0.actions[1].id = 1 } }
        expectPolicyError("duplicate_id", at: "sessions[2].qos[1].id") { try validateEdited { $0.qos = [QoS(id: 3), QoS(id: 3)] } }
        expectPolicyError("duplicate_id", at: "sessions[2].counters[1].id") {
            try validateEdited { $0.counters = [UsageRule(id: 3), UsageRule(id: 3)] }
        }
        expectPolicyError("duplicate_id", at: "sessions[2].rules[0].counters[1]") {
            try validateEdited { $0.counters = [UsageRule(id: 3)]; $0.rules[0].counters = [3, 3] }
        }
        var twin = F.session(2)
        twin.n3.teid = 999
        twin.ueIPv4 = nil
        twin.ueIPv6 = nil
        let seid = expectPolicyError("duplicate_id", at: "sessions[2].seid") { try validate([F.session(1), F.session(2), twin]) }
        #expect(seid?.message.contains("sessions[1]") == true)
        expectPolicyError("duplicate_id", at: "engines[1].id") { try validate([], engines: [F.llm, F.llm]) }
        expectPolicyError("duplicate_id", at: "applications[1].id") { try validate([], applications: [F.inference, F.inference]) }
        var engine = F.llm
        engine.instances.append(engine.instances[0])
        expectPolicyError("duplicate_id", at: "engines[0].instances[1].address") { try validate([], engines: [engine]) }
    }

    // MARK: BAD_INPUTS 21: collisions

    @Test func collidingN3TEIDs() {
        var other = F.session(5)
        other.n3 = F.session(2).n3
        let error = expectPolicyError("collision", at: "sessions[2].n3.teid") { try validate([F.session(1), F.session(2), other]) }
        #expect(error?.message.contains("session 5") == true && error?.message.contains("session 2") == true)
        // TEIDs are unique per UPF: the same TEID on another local address still collides, since
        // the fast path's uplink table is keyed by TEID alone.
        other.n3.address = "192.0.2.2"
        expectPolicyError("collision", at: "sessions[2].n3.teid") { try validate([F.session(1), F.session(2), other]) }
        other.n3.address = "::ffff:192.0.2.1"
        expectPolicyError("collision", at: "sessions[2].n3.teid") { try validate([F.session(1), F.session(2), other]) }
    }

    @Test func collidingUEAddresses() {
        var other = F.session(5)
        other.ueIPv4 = F.session(1).ueIPv4
        let v4 = expectPolicyError("collision", at: "sessions[1].ue_ipv4") { try validate([F.session(1), other]) }
        #expect(v4?.message.contains("session 5") == true && v4?.message.contains("session 1") == true)
        other = F.session(5)
        other.ueIPv6 = F.session(1).ueIPv6
        expectPolicyError("collision", at: "sessions[1].ue_ipv6") { try validate([F.session(1), other]) }
        // Overlapping prefixes collide too, in both orders.
        var a = F.session(1), b = F.session(2)
        a.ueIPv6 = "2001:db8:1:2::/64"
        b.ueIPv6 = "2001:db8:1:2:3::/80"
        expectPolicyError("collision", at: "sessions[1].ue_ipv6") { try validate([a, b]) }
        let contains = expectPolicyError("collision", at: "sessions[1].ue_ipv6") { try validate([b, a]) }
        #expect(contains?.message.contains("2001:db8:1:2:3::/80 of session 2") == true)
        b.ueIPv6 = "2001:db8:1:2::7"
        expectPolicyError("collision", at: "sessions[1].ue_ipv6") { try validate([b, a]) }
        b.ueIPv6 = "2001:db8:1:3::7"
        #expect(throws: Never.self) { try validate([b, a]) }
    }

    // MARK: BAD_INPUTS 22: TEID 0, out-of-range numbers, an address flag with no address

    @Test func teidZero() {
        let error = expectPolicyError("out_of_range", at: "sessions[2].n3.teid") { try validateEdited { $0.n3.teid = 0 } }
        #expect(error?.message.contains("TEID 0") == true)
        expectPolicyError("out_of_range", at: "sessions[2].gnb.teid") { try validateEdited { $0.gnb?.teid = 0 } }
        expectPolicyError("out_of_range", at: "sessions[2].actions[0].teid") {
            try validateEdited { $0.actions[0].kind = .forwardN9(peer: "203.0.113.1", teid: 0) }
        }
    }

    @Test func outOfRangeValues() {
        expectPolicyError("out_of_range", at: "sessions[2].seid") { try validateEdited { $0.seid = 0 } }
        for qfi: UInt8 in [0, 64, 255] {
            expectPolicyError("out_of_range", at: "sessions[2].default_qfi") { try validateEdited { $0.defaultQFI = qfi } }
            expectPolicyError("out_of_range", at: "sessions[2].rules[1].qfi") { try validateEdited { $0.rules[1].qfi = qfi } }
            expectPolicyError("out_of_range", at: "sessions[2].qos[0].qfi") { try validateEdited { $0.qos = [QoS(id: 1, qfi: qfi)] } }
        }
        #expect(throws: Never.self) { try validateEdited { $0.defaultQFI = 63; $0.rules[0].qfi = 1; $0.rules[0].precedence = .max } }
        expectPolicyError("out_of_range", at: "sessions[2].actions[1].limit") { try validateEdited { $0.actions[1].kind = .buffer(limit: 0) } }
        expectPolicyError("out_of_range", at: "sessions[2].qos[0].mbr_downlink_kbps") {
            try validateEdited { $0.qos = [QoS(id: 1, mbrDownlinkKbps: 0)] }
        }
        expectPolicyError("out_of_range", at: "sessions[2].counters[0].volume_threshold_bytes") {
            try validateEdited { $0.counters = [UsageRule(id: 1, volumeThresholdBytes: 0)] }
        }
    }

    @Test func addresses() {
        for text in ["", "10.0.0", "10.0.0.256", "010.0.0.1", "10.0.0.1 ", "::1::2", "example.com", "10.0.0.1:2152"] {
            expectPolicyError("invalid_address", at: "sessions[2].n3.address") { try validateEdited { $0.n3.address = text } }
        }
        expectPolicyError("invalid_address", at: "sessions[2].gnb.address") { try validateEdited { $0.gnb?.address = "gnb-1" } }
        expectPolicyError("invalid_address", at: "sessions[2].actions[0].peer") {
            try validateEdited { $0.actions[0].kind = .forwardN9(peer: "upf2", teid: 5) }
        }
        // The UE addresses go in the field of their family.
        let v6in4 = expectPolicyError("invalid_address", at: "sessions[2].ue_ipv4") { try validateEdited { $0.ueIPv4 = "2001:db8::1" } }
        #expect(v6in4?.message.contains("ue_ipv6") == true)
        expectPolicyError("invalid_address", at: "sessions[2].ue_ipv6") { try validateEdited { $0.ueIPv6 = "10.0.0.1" } }
        // The address "flag" with no address (BAD_INPUTS 22).
        expectPolicyError("invalid_address", at: "sessions[2].ue_ipv4") { try validateEdited { $0.ueIPv4 = "" } }
        expectPolicyError("invalid_address", at: "sessions[2].ue_ipv6") { try validateEdited { $0.ueIPv6 = "/64" } }
        expectPolicyError("invalid_address", at: "sessions[2].ue_ipv6") { try validateEdited { $0.ueIPv6 = "::ffff:10.0.0.1" } }
        expectPolicyError("invalid_prefix", at: "sessions[2].ue_ipv4") { try validateEdited { $0.ueIPv4 = "10.0.0.0/24" } }
        expectPolicyError("invalid_prefix", at: "sessions[2].ue_ipv6") { try validateEdited { $0.ueIPv6 = "::/0" } }
        expectPolicyError("invalid_prefix", at: "sessions[2].ue_ipv6") { try validateEdited { $0.ueIPv6 = "2001:db8::/48" } }
        expectPolicyError("invalid_prefix", at: "sessions[2].ue_ipv6") { try validateEdited { $0.ueIPv6 = "2001:db8::/129" } }
        #expect(throws: Never.self) { try validateEdited { $0.ueIPv4 = "10.9.9.9/32"; $0.ueIPv6 = "2001:db8:9::9" } }
        // No UE address at all is allowed (an uplink-only session).
        #expect(throws: Never.self) { try validateEdited { $0.ueIPv4 = nil; $0.ueIPv6 = nil } }
    }

    // MARK: BAD_INPUTS 23: bad filters, reversed ranges, prefix lengths

    func validateMatch(_ filter: SDFFilter) throws {
        try validateEdited { $0.rules[0].match = filter }
    }

    @Test func prefixes() {
        let long = expectPolicyError("invalid_prefix", at: "sessions[2].rules[0].match.destination_prefixes[1]") {
            try validateMatch(SDFFilter(destinationPrefixes: ["10.0.0.0/8", "10.1.0.0/33"]))
        }
        #expect(long?.message.contains("longer than 32") == true)
        expectPolicyError("invalid_prefix", at: "sessions[2].rules[0].match.source_prefixes[0]") {
            try validateMatch(SDFFilter(sourcePrefixes: ["2001:db8::/129"]))
        }
        for bad in ["10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0.0/0x8", "10.0.0.0/1000"] {
            expectPolicyError("invalid_prefix", at: "sessions[2].rules[0].match.source_prefixes[0]") { try validateMatch(SDFFilter(sourcePrefixes: [bad])) }
        }
        let hostBits = expectPolicyError("invalid_prefix", at: "sessions[2].rules[0].match.source_prefixes[0]") {
            try validateMatch(SDFFilter(sourcePrefixes: ["10.1.2.3/8"]))
        }
        #expect(hostBits?.message.contains("10.0.0.0/8") == true)
        expectPolicyError("invalid_address", at: "sessions[2].rules[0].match.source_prefixes[0]") {
            try validateMatch(SDFFilter(sourcePrefixes: ["any"]))
        }
        expectPolicyError("invalid_address", at: "applications[0].destination_prefixes[0]") {
            try validate([], applications: [Application(id: "a", destinationPrefixes: ["300.0.0.0/8"])])
        }
        #expect(throws: Never.self) {
            try validateMatch(SDFFilter(sourcePrefixes: ["0.0.0.0/0", "10.0.0.1", "::/0"], destinationPrefixes: ["2001:db8::/32", "192.0.2.0/24"]))
        }
    }

    @Test func portRanges() {
        let reversed = expectPolicyError("invalid_range", at: "sessions[2].rules[0].match.destination_ports[1]") {
            try validateMatch(SDFFilter(protocol: 6, destinationPorts: [PortRange(80), PortRange(low: 8080, high: 8000)]))
        }
        #expect(reversed?.message.contains("8080-8000") == true)
        expectPolicyError("invalid_range", at: "sessions[2].rules[0].match.source_ports[0]") {
            try validateMatch(SDFFilter(sourcePorts: [PortRange(low: 2, high: 1)]))
        }
        expectPolicyError("invalid_range", at: "applications[0].destination_ports[0]") {
            try validate([], applications: [Application(id: "a", destinationPorts: [PortRange(low: 9, high: 8)])])
        }
        // From the file format too, with the document's path.
        expectPolicyError("invalid_range", at: "sessions[0].rules[0].match.destination_ports[0]") {
            _ = try PolicyState.validated(try Policy.load(yaml: """
                sessions:
                  - seid: 1
                    n3: {teid: 1, address: 192.0.2.1}
                    rules: [{id: 1, precedence: 1, source: access, action: 1, match: {destination_ports: ["9000-8000"]}}]
                    actions: [{id: 1, type: n6}]
                """))
        }
    }

    @Test func filters() {
        // Every field empty = match all: allowed.
        #expect(throws: Never.self) { try validateMatch(SDFFilter()) }
        #expect(SDFFilter().isMatchAll && !SDFFilter(protocol: 6).isMatchAll)
        expectPolicyError("invalid_filter", at: "sessions[2].rules[0].match.protocol") {
            try validateMatch(SDFFilter(protocol: 1, destinationPorts: [PortRange(80)]))
        }
        #expect(throws: Never.self) { try validateMatch(SDFFilter(protocol: 132, destinationPorts: [PortRange(80)])) }
        expectPolicyError("invalid_filter", at: "sessions[2].rules[0].match") {
            try validateMatch(SDFFilter(sourcePrefixes: ["10.0.0.0/8"], destinationPrefixes: ["2001:db8::/32"]))
        }
        expectPolicyError("invalid_filter", at: "sessions[2].rules[0].match.tos.value") {
            try validateMatch(SDFFilter(tos: TOSMatch(value: 0xB8, mask: 0xF0)))
        }
        expectPolicyError("invalid_filter", at: "sessions[2].rules[0].match.tos.mask") {
            try validateMatch(SDFFilter(tos: TOSMatch(value: 0, mask: 0)))
        }
        // An application must say something.
        expectPolicyError("invalid_filter", at: "applications[0]") { try validate([], applications: [Application(id: "all")]) }
        expectPolicyError("invalid_filter", at: "applications[0].protocol") {
            try validate([], applications: [Application(id: "a", destinationPorts: [PortRange(53)], protocol: 47)])
        }
    }

    @Test func identifiersAndEngines() throws {
        expectPolicyError("invalid_field", at: "engines[0].id") { try validate([], engines: [Engine(id: "", instances: F.llm.instances)]) }
        expectPolicyError("invalid_field", at: "engines[0].id") { try validate([], engines: [Engine(id: "l l m", instances: F.llm.instances)]) }
        expectPolicyError("invalid_field", at: "applications[0].id") {
            try validate([], applications: [Application(id: String(repeating: "a", count: 65), protocol: 6)])
        }
        expectPolicyError("invalid_field", at: "engines[0].instances") { try validate([], engines: [Engine(id: "e", instances: [])]) }
        expectPolicyError("invalid_address", at: "engines[0].instances[0].address") {
            try validate([], engines: [Engine(id: "e", instances: [EngineInstance(port: "1", address: "host")])])
        }
        expectPolicyError("invalid_address", at: "engines[0].instances[0].mac") {
            try validate([], engines: [Engine(id: "e", instances: [EngineInstance(port: "1", address: "10.0.0.1", mac: "02:00:00:00:00")])])
        }
        expectPolicyError("invalid_field", at: "engines[0].instances[0].port") {
            try validate([], engines: [Engine(id: "e", instances: [EngineInstance(port: "", address: "10.0.0.1")])])
        }
        func probe(_ p: EngineProbe) throws { try validate([], engines: [Engine(id: "e", instances: F.llm.instances, probe: p)]) }
        expectPolicyError("missing_field", at: "engines[0].probe.path") { try probe(EngineProbe(kind: .http, port: 80, intervalMs: 100)) }
        expectPolicyError("invalid_field", at: "engines[0].probe.path") { try probe(EngineProbe(kind: .http, port: 80, path: "health", intervalMs: 100)) }
        expectPolicyError("invalid_field", at: "engines[0].probe.path") { try probe(EngineProbe(kind: .tcp, port: 80, path: "/", intervalMs: 100)) }
        expectPolicyError("out_of_range", at: "engines[0].probe.port") { try probe(EngineProbe(kind: .tcp, port: 0, intervalMs: 100)) }
        expectPolicyError("out_of_range", at: "engines[0].probe.interval_ms") { try probe(EngineProbe(kind: .tcp, port: 1, intervalMs: 0)) }
        expectPolicyError("out_of_range", at: "engines[0].probe.timeout_ms") {
            try probe(EngineProbe(kind: .tcp, port: 1, intervalMs: 100, timeoutMs: 101))
        }
        expectPolicyError("out_of_range", at: "engines[0].probe.timeout_ms") { try probe(EngineProbe(kind: .tcp, port: 1, intervalMs: 100, timeoutMs: 0)) }
        expectPolicyError("out_of_range", at: "engines[0].probe.failures_before_down") {
            try probe(EngineProbe(kind: .tcp, port: 1, intervalMs: 100, failuresBeforeDown: 0))
        }
        try probe(EngineProbe(kind: .tcp, port: 1, intervalMs: 100, timeoutMs: 100, failuresBeforeDown: 100))
        #expect(EngineProbe(kind: .tcp, port: 1, intervalMs: 5000).effectiveTimeoutMs == 1000)
        #expect(EngineProbe(kind: .tcp, port: 1, intervalMs: 50).effectiveTimeoutMs == 50)
        // At most CompiledQoS.maxMetersPerSession QERs with an MBR per session: the fifth is refused where it is.
        expectPolicyError("table_full", at: "sessions[2].qos[5]") {
            try validateEdited { s in
                s.qos = (1...6).map { QoS(id: UInt32($0), mbrUplinkKbps: $0 == 2 ? nil : 1000) }
            }
        }
        try validateEdited { s in s.qos = (1...6).map { QoS(id: UInt32($0), mbrDownlinkKbps: $0 <= 4 ? 1000 : nil) } }
        // Traffic back from an engine cannot be steered again.
        expectPolicyError("invalid_field", at: "sessions[2].rules[2].action") { try validateEdited { $0.rules[2].source = .engine } }
    }

    // MARK: BAD_INPUTS 24: table full, by limits

    @Test func tablesFull() {
        let limits = PolicyLimits(maxSessions: 3, maxRulesPerSession: 2, maxEngines: 1, maxApplications: 1, maxFilterEntries: 4)
        let sessions = expectPolicyError("table_full", at: "sessions[3]") { try validate((1...4).map { F.session($0) }, limits: limits) }
        #expect(sessions?.message == "sessions table full: 3 of 3")
        #expect(throws: Never.self) { try validate((1...3).map { F.session($0) }, limits: limits) }
        let rules = expectPolicyError("table_full", at: "sessions[0].rules") { try validate([F.session(1, engine: "llm")], limits: limits) }
        #expect(rules?.message.contains("3 given, the limit is 2") == true)
        expectPolicyError("table_full", at: "engines[1]") {
            try validate([], engines: [F.llm, Engine(id: "b", instances: F.llm.instances)], limits: limits)
        }
        expectPolicyError("table_full", at: "applications[1]") {
            try validate([], applications: [F.inference, Application(id: "b", protocol: 6)], limits: limits)
        }
        expectPolicyError("table_full", at: "sessions[0].rules[0].match") {
            var s = F.session(1)
            s.rules[0].match = SDFFilter(sourcePrefixes: ["10.0.0.0/8", "10.1.0.0/16"], destinationPrefixes: ["192.0.2.0/24"],
                                         protocol: 6, destinationPorts: [PortRange(1), PortRange(2)])
            try validate([s], limits: limits)
        }
        expectPolicyError("table_full", at: "applications[0]") {
            try validate([], applications: [Application(id: "a", destinationPorts: (1...5).map { PortRange($0) })], limits: limits)
        }
    }

    @Test func errorsDescribeThemselves() {
        let error = PolicyError(code: "not_found", message: "there is no session with SEID 9", path: "changes[0].seid")
        #expect(error.description == "not_found at changes[0].seid: there is no session with SEID 9")
    }
}
