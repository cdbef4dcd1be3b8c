import Foundation
import Testing
@testable import UPFPolicy

@Suite struct ModelCodingTests {
    @Test func bothExampleFormatsDecodeToTheSamePolicy() throws {
        let yaml = try Policy.load(path: Fixtures.configPath("edge-example.yaml"))
        let json = try Policy.load(path: Fixtures.configPath("edge-example.json"))
        #expect(yaml == json)
        #expect(yaml.engines.map(\.id) == ["llm", "vision"])
        #expect(yaml.engines[0].fallback == .drop && yaml.engines[1].fallback == .core)
        #expect(yaml.engines[0].probe == EngineProbe(kind: .http, port: 8080, path: "/health", intervalMs: 500))
        #expect(yaml.applications == [Application(id: "inference", destinationPrefixes: ["198.51.100.0/24", "10.200.0.0/24", "2001:db8:100::/48"],
                                                  destinationPorts: [PortRange(443), PortRange(low: 8000, high: 8080)], protocol: 6)])
        #expect(yaml.sessions.map(\.seid) == [1, 2, 3])
        let first = yaml.sessions[0]
        #expect(first.rules[0] == Rule(id: 1, precedence: 10, source: .access, application: "inference", action: 1, counters: [1]))
        #expect(first.actions == [Action(id: 1, kind: .steer(engine: "llm")),
                                  Action(id: 2, kind: .forwardN9(peer: "203.0.113.1", teid: 5000)),
                                  Action(id: 3, kind: .forwardN3)])
        #expect(yaml.sessions[2].gnb == nil)
        #expect(yaml.sessions[2].defaultQFI == 9)  // the default
        #expect(yaml.sessions[2].qos == [QoS(id: 1, mbrUplinkKbps: 10000, mbrDownlinkKbps: 50000, qfi: 7)])
        #expect(yaml.sessions[2].rules[0].match == SDFFilter(destinationPrefixes: ["203.0.113.53/32"], protocol: 17,
                                                             destinationPorts: [PortRange(53)]))
    }

    @Test func examplesValidate() throws {
        for name in ["edge-example.yaml", "edge-example.json"] {
            let state = try PolicyState.validated(try Policy.load(path: Fixtures.configPath(name)))
            #expect(state.sessionCount == 3)
            #expect(state.seids(usingEngine: "llm") == [1])
            #expect(state.seids(usingApplication: "inference") == [1])
        }
    }

    @Test func roundTripThroughJSONAndYAML() throws {
        let policy = try Policy.load(path: Fixtures.configPath("edge-example.yaml"))
        #expect(try Policy.load(json: policy.jsonData()) == policy)
        #expect(try Policy.load(json: policy.jsonData(pretty: false)) == policy)
        #expect(try Policy.load(yaml: policy.yamlText()) == policy)
        // Stable output: the same policy encodes to the same bytes.
        #expect(policy.jsonData() == (try Policy.load(json: policy.jsonData())).jsonData())
    }

    @Test func defaultsWhenFieldsAreLeftOut() throws {
        let policy = try Policy.load(yaml: """
            sessions:
              - seid: 5
                n3: {teid: 1, address: "10.0.0.1"}
                rules: [{id: 1, precedence: 0, source: access, action: 1}]
            """)
        let s = policy.sessions[0]
        #expect(policy.engines.isEmpty && policy.applications.isEmpty)
        #expect(s.defaultQFI == 9 && s.actions.isEmpty && s.qos.isEmpty && s.counters.isEmpty && s.gnb == nil)
        #expect(s.rules[0].counters == [] && s.rules[0].match == nil && s.rules[0].qos == nil)
        let engine = try PolicyCoding.decode(Engine.self, json: Data(#"{"id":"e","instances":[]}"#.utf8))
        #expect(engine.fallback == .core && engine.probe == nil)
        let qos = try PolicyCoding.decode(QoS.self, json: Data(#"{"id":1}"#.utf8))
        #expect(qos == QoS(id: 1, gateUplink: .open, gateDownlink: .open))
        #expect(try PolicyCoding.decode(TOSMatch.self, json: Data(#"{"value":184}"#.utf8)) == TOSMatch(value: 184, mask: 255))
        #expect(try Policy.load(json: Data("{}".utf8)) == Policy())
        // A port index as a number; an unquoted IPv6 prefix in YAML.
        #expect(try PolicyCoding.decode(EngineInstance.self, json: Data(#"{"port":0,"address":"10.0.0.1"}"#.utf8)).port == "0")
        #expect(try Policy.load(yaml: "sessions: [{seid: 1, ue_ipv6: 2001:db8::/64, n3: {teid: 1, address: \"::1\"}, rules: []}]")
            .sessions[0].ueIPv6 == "2001:db8::/64")
    }

    /// The digits-only path of `PortRange.parse` gives what the general parser gives, on
    /// every text it takes; the rest (spaces, errors) falls through to the general parser.
    @Test func portRangeFastPathAgreesWithTheGeneralParser() {
        var texts = ["0", "80", "65535", "65536", "0080", "000000080", "8000-8080", "9-1", "0-65535", "1-65536", "-1",
                     "1-", "-", "", "1--2", "1-2-3", " 1", "1 ", "1 - 2", "+1", "1e3", "99999999999999999999"]
        let pieces = ["0", "1", "9", "00", "65", "535", "65535", "65536", "-", " ", "a", ""]
        for _ in 0..<5000 {
            texts.append((0..<Int.random(in: 1...5)).map { _ in pieces.randomElement()! }.joined())
        }
        for text in texts {
            let general = try? PortRange.parseAny(text).get()
            let fast = text.utf8.withContiguousStorageIfAvailable(PortRange.parseDigits) ?? nil
            if let fast { #expect(fast == general, "\(text)") }
            #expect((try? PortRange.parse(text).get()) == general, "\(text)")
        }
    }

    @Test func portRangeCoding() throws {
        func decode(_ json: String) throws -> [PortRange] { try PolicyCoding.decode([PortRange].self, json: Data(json.utf8)) }
        #expect(try decode(#"[80, "8000-8080", "443", " 1 - 2 ", "0-65535"]"#)
                == [PortRange(80), PortRange(low: 8000, high: 8080), PortRange(443), PortRange(low: 1, high: 2),
                    PortRange(low: 0, high: 65535)])
        #expect(try PolicyCoding.decode([PortRange].self, yaml: "[80, 8000-8080, '9000']")
                == [PortRange(80), PortRange(low: 8000, high: 8080), PortRange(9000)])
        #expect(String(decoding: PolicyCoding.json([PortRange(80), PortRange(low: 1, high: 2)]), as: UTF8.self) == #"[80,"1-2"]"#)
        // Reversed ranges decode (validation refuses them, with the rule's path).
        #expect(try decode(#"["9-1"]"#) == [PortRange(low: 9, high: 1)])
        expectPolicyError("invalid_range", at: "[0]") { _ = try decode(#"["http"]"#) }
        expectPolicyError("invalid_range", at: "[1]") { _ = try decode(#"[1, "1-2-3"]"#) }
        expectPolicyError("invalid_range", at: "[0]") { _ = try decode(#"["-5"]"#) }
        expectPolicyError("out_of_range", at: "[0]") { _ = try decode(#"["1-70000"]"#) }
        expectPolicyError("out_of_range", at: "[0]") { _ = try decode("[70000]") }
        expectPolicyError("out_of_range", at: "[0]") { _ = try decode("[-1]") }
        expectPolicyError("invalid_field", at: "[0]") { _ = try decode("[true]") }
    }

    @Test func actionsAreCodedFlat() throws {
        let cases: [(String, Action)] = [
            (#"{"id":1,"type":"steer","engine":"llm"}"#, Action(id: 1, kind: .steer(engine: "llm"))),
            (#"{"id":2,"type":"n9","peer":"10.0.0.1","teid":1234}"#, Action(id: 2, kind: .forwardN9(peer: "10.0.0.1", teid: 1234))),
            (#"{"id":3,"type":"n6"}"#, Action(id: 3, kind: .forwardN6)),
            (#"{"id":4,"type":"drop"}"#, Action(id: 4, kind: .drop)),
            (#"{"id":5,"type":"buffer","limit":64}"#, Action(id: 5, kind: .buffer(limit: 64))),
            (#"{"id":6,"type":"n3"}"#, Action(id: 6, kind: .forwardN3)),
        ]
        for (json, action) in cases {
            #expect(try PolicyCoding.decode(Action.self, json: Data(json.utf8)) == action)
            #expect(String(decoding: PolicyCoding.json(action), as: UTF8.self)
                    == String(decoding: PolicyCoding.json(try PolicyCoding.decode(Action.self, json: Data(json.utf8))), as: UTF8.self))
            #expect(try PolicyCoding.decode(Action.self, json: PolicyCoding.json(action)) == action)
        }
        // A field of another type of action is unknown here.
        expectPolicyError("unknown_field", at: "engine") {
            _ = try PolicyCoding.decode(Action.self, json: Data(#"{"id":3,"type":"n6","engine":"llm"}"#.utf8))
        }
        expectPolicyError("invalid_field", at: "type") {
            _ = try PolicyCoding.decode(Action.self, json: Data(#"{"id":3,"type":"forward"}"#.utf8))
        }
        expectPolicyError("missing_field", at: "type") { _ = try PolicyCoding.decode(Action.self, json: Data(#"{"id":3}"#.utf8)) }
        expectPolicyError("missing_field", at: "teid") {
            _ = try PolicyCoding.decode(Action.self, json: Data(#"{"id":3,"type":"n9","peer":"10.0.0.1"}"#.utf8))
        }
    }

    @Test func changesAreCodedWithAnOp() throws {
        let changes: [PolicyChange] = [
            .putSession(Fixtures.session(7)), .deleteSession(seid: 7), .putEngine(Fixtures.llm), .deleteEngine(id: "llm"),
            .putApplication(Fixtures.inference), .deleteApplication(id: "inference"),
        ]
        let data = PolicyCoding.json(changes)
        #expect(try PolicyCoding.decode([PolicyChange].self, json: data) == changes)
        #expect(String(decoding: PolicyCoding.json(PolicyChange.deleteSession(seid: 7)), as: UTF8.self) == #"{"op":"delete_session","seid":7}"#)
        #expect(try PolicyCoding.decode(PolicyChange.self, json: Data(#"{"op":"delete_engine","id":"x"}"#.utf8)) == .deleteEngine(id: "x"))
        #expect(try PolicyCoding.decode(PolicyChange.self, yaml: "{op: delete_application, id: x}") == .deleteApplication(id: "x"))
        expectPolicyError("unknown_operation", at: "op") {
            _ = try PolicyCoding.decode(PolicyChange.self, json: Data(#"{"op":"modify_session","seid":1}"#.utf8))
        }
        expectPolicyError("unknown_field", at: "session") {
            _ = try PolicyCoding.decode(PolicyChange.self, json: Data(#"{"op":"delete_session","seid":1,"session":{}}"#.utf8))
        }
        expectPolicyError("missing_field", at: "seid") {
            _ = try PolicyCoding.decode(PolicyChange.self, json: Data(#"{"op":"delete_session"}"#.utf8))
        }
        expectPolicyError("out_of_range", at: "params[0].seid") {
            _ = try PolicyCoding.decode([PolicyChange].self, json: Data(#"[{"op":"delete_session","seid":-1}]"#.utf8), pathPrefix: "params")
        }
        expectPolicyError("missing_field", at: "[1].session.n3") {
            _ = try PolicyCoding.decode([PolicyChange].self, json: Data(
                #"[{"op":"delete_session","seid":1},{"op":"put_session","session":{"seid":2,"rules":[]}}]"#.utf8))
        }
    }

    @Test func limitsDecodeWithDefaults() throws {
        #expect(try PolicyCoding.decode(PolicyLimits.self, yaml: "max_sessions: 10") == PolicyLimits(maxSessions: 10))
        #expect(try PolicyCoding.decode(PolicyLimits.self, json: PolicyCoding.json(PolicyLimits())) == PolicyLimits())
        expectPolicyError("unknown_field", at: "max_session") { _ = try PolicyCoding.decode(PolicyLimits.self, yaml: "max_session: 10") }
    }
}
