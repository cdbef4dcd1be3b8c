import Foundation
import Testing
import UPFPolicy
@testable import UPFControl

/// The control plane's hand-written JSON reading and writing of the model (PolicyJSON.swift) must
/// accept and refuse exactly what the model's `Codable` conformances do through
/// `PolicyCoding.decode(json:)` (Foundation's JSONDecoder, used for policy files) — the same
/// values, or the same codes, paths and messages — and write the bytes `PolicyCoding.json` writes.
@Suite struct PolicyJSONTests {
    static let session = #"""
        {"seid":7,"ue_ipv4":"10.0.0.7","n3":{"teid":100,"address":"192.0.2.1"},"gnb":{"teid":9,"address":"192.0.2.200"},
         "default_qfi":5,
         "rules":[{"id":1,"precedence":10,"source":"access","match":{"destination_prefixes":["198.51.100.0/24"],"protocol":6,
                   "destination_ports":[443,"8000-8080"],"tos":{"value":184}},"qfi":9,"action":1,"qos":1,"counters":[1]},
                  {"id":2,"precedence":100,"source":"core","application":"chat","action":2}],
         "actions":[{"id":1,"type":"steer","engine":"llm"},{"id":2,"type":"n3"},{"id":3,"type":"n9","peer":"10.9.0.1","teid":77},
                    {"id":4,"type":"buffer","limit":64},{"id":5,"type":"drop"},{"id":6,"type":"n6"}],
         "qos":[{"id":1,"gate_uplink":"closed","mbr_downlink_kbps":50000,"qfi":7}],
         "counters":[{"id":1,"volume_threshold_bytes":1000000}]}
        """#

    /// Both decoders' outcome for one document: the value, or the error.
    @discardableResult
    func both<T: Decodable & Equatable>(_ type: T.Type, _ json: String,
                                        _ read: (JSONDocument) throws(PolicyError) -> T,
                                        sourceLocation: SourceLocation = #_sourceLocation) -> Result<T, PolicyError> {
        let foundation = Result { () throws(PolicyError) -> T in try PolicyCoding.decode(T.self, json: Data(json.utf8)) }
        let tree = Result { () throws(PolicyError) -> T in
            let document: JSONDocument
            do throws(JSONSyntaxError) {
                document = try JSONDocument(json)
            } catch {
                throw PolicyError(code: "syntax_error", message: error.message, path: "")
            }
            return try read(document)
        }
        #expect(tree == foundation, "\(json)", sourceLocation: sourceLocation)
        return tree
    }

    func session(_ json: String, sourceLocation: SourceLocation = #_sourceLocation) -> Result<Session, PolicyError> {
        both(Session.self, json, { (document) throws(PolicyError) in try document.policySession() }, sourceLocation: sourceLocation)
    }

    func changes(_ json: String, sourceLocation: SourceLocation = #_sourceLocation) -> Result<[PolicyChange], PolicyError> {
        both([PolicyChange].self, json, { (document) throws(PolicyError) in try document.policyChanges() }, sourceLocation: sourceLocation)
    }

    @Test func decodesWhatFoundationDecodes() throws {
        let session = try session(Self.session).get()
        #expect(session.rules[0].match?.destinationPorts == [PortRange(443), PortRange(low: 8000, high: 8080)])
        #expect(session.actions.count == 6 && session.qos[0].gateUplink == .closed)
        let policy = try String(contentsOfFile: Self.examplePolicyPath, encoding: .utf8)
        #expect(try both(Policy.self, policy, { (document) throws(PolicyError) in try document.policy() }).get().sessions.count == 3)
        let changes = #"[{"op":"put_session","session":\#(Self.session)},{"op":"delete_session","seid":7},"#
            + #"{"op":"put_engine","engine":{"id":"llm","instances":[{"port":0,"address":"10.0.0.2","mac":"02:00:00:00:00:01"}],"#
            + #""probe":{"kind":"http","port":8080,"path":"/health","interval_ms":500,"timeout_ms":200,"failures_before_down":2}}},{"op":"delete_engine","id":"llm"},"#
            + #"{"op":"put_application","application":{"id":"chat","destination_ports":["443"],"protocol":17}},"#
            + #"{"op":"delete_application","id":"chat"}]"#
        #expect(try self.changes(changes).get().count == 6)
        // Whole numbers written with a fraction or an exponent, escapes, defaults and nulls.
        let edge = #"{"seid":7.0,"ue_ipv4":null,"n3":{"teid":1e2,"address":"192.0.2.\u0031"},"rules":[{"id":1,"precedence":-0,"source":"acc\u0065ss","action":100e-2,"match":null}],"actions":[{"id":1,"type":"dr\u006fp"}],"qos":null}"#
        let decoded = try self.session(edge).get()
        #expect(decoded.seid == 7 && decoded.n3 == FTEID(teid: 100, address: "192.0.2.1") && decoded.defaultQFI == 9)
        // Enumerations and action types are matched by their bytes unless escaped, as here.
        #expect(decoded.rules.first?.source == .access && decoded.actions.first?.kind == .drop)
        let engine = #"{"id":"e","instances":[{"port":7.0,"address":"x"},{"port":"eth1","address":"y"}],"fallback":"drop"}"#
        #expect(try both(Engine.self, engine, { (document) throws(PolicyError) in try document.policyEngine() }).get().instances.map(\.port) == ["7", "eth1"])
    }

    @Test func writesTheBytesOfTheModelsEncoding() throws {
        let session = try PolicyCoding.decode(Session.self, json: Data(Self.session.utf8))
        let policy = try Policy.load(path: Self.examplePolicyPath)
        var odd = session
        odd.ueIPv6 = "2001:db8::/64"
        odd.rules[1].match = SDFFilter(sourcePrefixes: ["10.0.0.0/8"], sourcePorts: [PortRange(1), PortRange(low: 2, high: 3)], tos: TOSMatch(value: 1, mask: 3))
        odd.actions[0] = Action(id: 1, kind: .steer(engine: "e\"q\\u\u{01}\u{1f}\u{7f}\u{2028}/\n\r\t\u{08}\u{0c}é😀"))
        func writer(_ write: (inout PolicyJSONWriter) -> Void) -> Data {
            var writer = PolicyJSONWriter()
            write(&writer)
            return Data(writer.bytes)
        }
        #expect(writer { $0.session(session) } == PolicyCoding.json(session))
        #expect(writer { $0.session(odd) } == PolicyCoding.json(odd))
        #expect(writer { $0.policy(policy) } == PolicyCoding.json(policy))
        // Its storage grows as it writes (64 bytes at first here).
        var small = PolicyJSONWriter(capacity: 1)
        let many = Policy(sessions: (1...50).map { (seid: UInt64) in var s = odd; s.seid = seid; s.n3.teid = UInt32(seid); return s })
        small.policy(many)
        #expect(Data(small.bytes) == PolicyCoding.json(many))
        // Numbers of every digit count up to the widest, and every source interface.
        let numbers: [UInt64] = [0, 1, 9, 10, 99, 100, 101, 999, 1000, 65535, 4_294_967_295, 10_000_000_000,
                                 9_999_999_999_999_999_999, 10_000_000_000_000_000_000, .max]
        for (k, value) in numbers.enumerated() {
            var s = odd
            s.seid = value
            s.n3.teid = UInt32(truncatingIfNeeded: value)
            s.rules[0].precedence = UInt32(truncatingIfNeeded: value >> 3)
            s.rules[0].source = SourceInterface.allCases[k % SourceInterface.allCases.count]
            #expect(writer { $0.session(s) } == PolicyCoding.json(s), "\(value)")
        }
        for engine in policy.engines { #expect(writer { $0.engine(engine) } == PolicyCoding.json(engine)) }
        let changes: [PolicyChange] = [
            .putSession(odd), .deleteSession(seid: .max), .putEngine(policy.engines[0]), .deleteEngine(id: "llm"),
            .putApplication(policy.applications[0]), .deleteApplication(id: "inference"),
        ]
        #expect(writer { $0.changes(changes) } == PolicyCoding.json(changes))
        // And what it writes reads back.
        #expect(try JSONDocument(Array(writer { $0.changes(changes) })).policyChanges() == changes)
    }

    @Test(arguments: [
        // unknown fields, at every depth
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[],"typo":1}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x","port":2},"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[{"id":1,"precedence":1,"source":"access","action":1,"match":{"zzz":1,"aaa":2}}]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[],"actions":[{"id":1,"type":"drop","engine":"llm"}]}"#,
        // missing fields and nulls
        #"{"seid":1,"rules":[]}"#,
        #"{"seid":1,"n3":null,"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":null},"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":null,"address":"x"},"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"}}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[null]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":null}"#,
        #"{"seid":null,"n3":{"teid":1,"address":"x"},"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[],"actions":null,"counters":[null]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[{"id":1,"precedence":1,"source":null,"action":1}]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[{"id":1,"precedence":1,"source":"access","action":1,"match":{"destination_ports":[null]}}]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[{"id":1,"precedence":1,"source":"access","action":1,"match":{"destination_ports":[{}]}}]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[],"actions":[{"id":1}]}"#,
        // wrong types
        #"{"seid":"1","n3":{"teid":1,"address":"x"},"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":7},"rules":[]}"#,
        #"{"seid":1,"n3":[],"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":{}}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[],"counters":[{"id":true}]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[{"id":1,"precedence":1,"source":"access","action":1,"counters":[1,"2"]}]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[{"id":1,"precedence":1,"source":7,"action":1}]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[{"id":1,"precedence":1,"source":"access","action":1,"match":{"destination_prefixes":"10.0.0.0/8"}}]}"#,
        "[]", "7", #""session""#, "null",
        // numbers out of range, negative, fractional
        #"{"seid":1,"n3":{"teid":4294967296,"address":"x"},"rules":[]}"#,
        #"{"seid":-1,"n3":{"teid":1,"address":"x"},"rules":[]}"#,
        #"{"seid":18446744073709551616,"n3":{"teid":1,"address":"x"},"rules":[]}"#,
        #"{"seid":1.5,"n3":{"teid":1,"address":"x"},"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"default_qfi":256,"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"default_qfi":300.0,"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"default_qfi":2.56e2,"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"default_qfi":1e-2,"rules":[]}"#,
        #"{"seid":1e19,"n3":{"teid":1e400,"address":"x"},"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":-1e400,"address":"x"},"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":"1","address":"x"},"rules":[]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[{"id":1,"precedence":1,"source":"access","action":1,"match":{"destination_ports":[70000]}}]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[{"id":1,"precedence":1,"source":"access","action":1,"match":{"destination_ports":["1-70000"]}}]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[{"id":1,"precedence":1,"source":"access","action":1,"match":{"destination_ports":["http",true]}}]}"#,
        // enums and action types
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[{"id":1,"precedence":1,"source":"air","action":1}]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[],"actions":[{"id":1,"type":"teleport"}]}"#,
        #"{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[],"qos":[{"id":1,"gate_uplink":"ajar"}]}"#,
    ])
    func refusesSessionsLikeFoundation(_ json: String) {
        #expect(throws: PolicyError.self) { try session(json).get() }
    }

    @Test(arguments: [
        #"[{"op":"explode"}]"#,
        #"[{"seid":1}]"#,
        #"[{"op":7,"seid":1}]"#,
        #"[{"op":"delete_session","seid":1,"session":{}}]"#,
        #"[{"op":"delete_session","seid":1},{"op":"put_session","session":{"seid":2,"rules":[]}}]"#,
        #"[{"op":"delete_engine","id":["llm"]}]"#,
        #"[{"op":"put_engine","engine":{"id":"e","instances":[{"port":-1,"address":"x"}]}}]"#,
        #"[{"op":"put_engine","engine":{"id":"e","instances":[],"probe":{"kind":"udp","port":1,"interval_ms":10}}}]"#,
        #"[{"op":"put_application","application":{"id":"a","protocol":300}}]"#,
        #"[{"op":"put_engine","engine":{"id":"e","instances":[{"port":70000,"address":"x"}]}}]"#,
        #"[{"op":"put_engine","engine":{"id":"e","instances":[{"port":null,"address":"x"}]}}]"#,
        #"[{"op":"put_engine","engine":{"id":"e","instances":[{"address":"x"}]}}]"#,
        #"[{"op":"put_engine","engine":{"id":"e","instances":[{"port":"0","address":"x"}],"fallback":"core","probe":{"kind":"tcp","port":0}}}]"#,
        #"[{"op":"put_engine","engine":{"id":"e","fallback":"sideways","instances":[]}}]"#,
        #"[{"op":"put_session","session":null}]"#,
        #"[{"op":"put_application","application":{"id":"a","destination_ports":["1-2-3"]}}]"#,
        #"[{"op":"put_session","session":{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[],"actions":[{"id":1,"type":"n9","peer":"p"}]}}]"#,
        #"[{"type":"drop"},7]"#,
        #"{"op":"delete_session","seid":1}"#,
    ])
    func refusesChangesLikeFoundation(_ json: String) {
        #expect(throws: PolicyError.self) { try changes(json).get() }
    }

    @Test func errorPathsStartWithWhereTheValueSits() throws {
        let document = try JSONDocument(#"[{"op":"delete_session","seid":1},{"op":"put_session","session":{"seid":2,"n3":{"teid":1,"address":"x"},"rules":[{"id":1,"precedence":1,"source":"access","action":1,"match":{"typo":1}}]}}]"#)
        #expect(throws: PolicyError(code: "unknown_field",
                                    message: "unknown field 'typo' (expected one of: destination_ports, destination_prefixes, protocol, source_ports, source_prefixes, tos)",
                                    path: "changes[1].session.rules[0].match.typo")) {
            try document.policyChanges(at: "changes")
        }
        #expect(throws: PolicyError(code: "missing_field", message: "missing required field 'n3'", path: "session.n3")) {
            try JSONDocument(#"{"seid":2,"rules":[]}"#).policySession(at: "session")
        }
    }

    static var examplePolicyPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Configs/policy/edge-example.json").path
    }
}

/// The text a request's changes are journaled as.
@Suite struct ChangesTextTests {
    func request(_ line: String) throws -> ControlRequest {
        try ControlProtocol.parse(line: Array(line.utf8)).result.get()
    }

    @Test func applyKeepsTheChangesAsSent() throws {
        let changes = #"[ {"op":"delete_session", "seid":7} ,{"op":"delete_engine","id":"l\u006cm"}]"#
        guard case .apply(let decoded, let text) = try request(#"{"id":1,"op":"apply","changes":\#(changes) }"#) else {
            Issue.record("not an apply")
            return
        }
        #expect(decoded == [.deleteSession(seid: 7), .deleteEngine(id: "llm")])
        #expect(text == ChangesJSON(Array(changes.utf8)))
        // The text decodes back to the same changes.
        #expect(try JSONDocument(Array(text!.utf8)).policyChanges() == decoded)
    }

    @Test func aSinglePutIsWrappedAsItsChange() throws {
        let session = #"{"seid":7,"n3":{"teid":1,"address":"192.0.2.1"},"rules":[{"id":1,"precedence":1,"source":"access","action":1}],"actions":[{"id":1,"type":"drop"}]}"#
        guard case .sessionPut(let decoded, let text, let endMarker) = try request(#"{"op":"session.put","session":\#(session),"id":"x"}"#) else {
            Issue.record("not a session.put")
            return
        }
        #expect(!endMarker)
        #expect(String(decoding: Array(text!.utf8), as: UTF8.self) == #"[{"op":"put_session","session":\#(session)}]"#)
        #expect(try JSONDocument(Array(text!.utf8)).policyChanges() == [.putSession(decoded)])
        let engine = #"{"id":"llm","instances":[{"port":"0","address":"10.0.0.2"}]}"#
        guard case .enginePut(_, let engineText) = try request(#"{"op":"engine.put","engine":\#(engine)}"#) else {
            Issue.record("not an engine.put")
            return
        }
        #expect(String(decoding: Array(engineText!.utf8), as: UTF8.self) == #"[{"op":"put_engine","engine":\#(engine)}]"#)
    }

    @Test func aDocumentIndexesValuesWithTheirText() throws {
        let line = #" {"a" : [1, {"b":2}] ,"c":"x\"y", "d":null, "\u0065":-12, "f":1.5}"#
        let document = try JSONDocument(line)
        let members = Array(document.members(JSONDocument.root))
        #expect(members.map { document.string($0.key) } == ["a", "c", "d", "e", "f"])
        #expect(members.map { String(decoding: document.bytes[document.span($0.value)], as: UTF8.self) }
                == [#"[1, {"b":2}]"#, #""x\"y""#, "null", "-12", "1.5"])
        #expect(document.string(members[3].key, equals: "e") && !document.string(members[0].key, equals: "ab"))
        #expect(document.value(members[0].value) == .array([.number("1"), .object([("b", .number("2"))])]))
        #expect(document.plainInteger(members[3].value, as: Int8.self) == -12)
        #expect(document.plainInteger(members[3].value, as: UInt8.self) == nil)
        #expect(document.plainInteger(members[4].value, as: Int.self) == nil)
        #expect(Array(document.elements(members[0].value)).map(document.kind) == [.number, .object])
        // Keys are compared as strings, escapes decoded.
        #expect(throws: JSONSyntaxError(kind: .duplicateKey("a"), offset: 7)) { try JSONDocument(#"{"a":1,"\u0061":2}"#) }
        let many = "{" + (0..<40).map { #""k\#($0)":\#($0)"# }.joined(separator: ",") + #","k7":0}"#
        #expect(throws: JSONSyntaxError.self) { try JSONDocument(many) }
    }
}
