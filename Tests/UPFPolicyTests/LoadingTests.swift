import Foundation
import Testing
@testable import UPFPolicy

/// Case 25 of BAD_INPUTS (empty, truncated, invalid UTF-8, unknown fields) and decoding errors
/// with the path of the offending field, in both formats.
@Suite struct LoadingTests {
    static let session = #"{"seid":1,"n3":{"teid":1,"address":"192.0.2.1"},"rules":[{"id":1,"precedence":1,"source":"access","action":1}],"actions":[{"id":1,"type":"n6"}]}"#

    /// JSON with `sessions[3]` replaced by `bad`, to check paths inside lists.
    static func json(fourthSession bad: String) -> Data {
        Data(#"{"sessions":[\#(session),\#(session),\#(session),\#(bad)]}"#.utf8)
    }

    @Test func emptyDocuments() {
        for text in ["", " ", "\n\t\r\n  "] {
            expectPolicyError("empty_document", at: "") { _ = try Policy.load(json: Data(text.utf8)) }
            expectPolicyError("empty_document", at: "") { _ = try Policy.load(yaml: text) }
        }
        expectPolicyError("empty_document", at: "") { _ = try Policy.load(yaml: "# only a comment\n") }
        expectPolicyError("empty_document", at: "") { _ = try Policy.load(yaml: "---\n...\n") }
    }

    @Test func truncatedAndMalformedDocuments() throws {
        let full = String(decoding: try Policy.load(path: Fixtures.configPath("edge-example.json")).jsonData(pretty: false), as: UTF8.self)
        // Every proper prefix of a valid document is refused with a clear error, never a crash.
        for length in stride(from: 1, to: full.utf8.count, by: 7) {
            let cut = Data(full.utf8.prefix(length))
            do {
                _ = try Policy.load(json: cut)
                Issue.record("a document cut at \(length) bytes was accepted")
            } catch {
                #expect(["syntax_error", "missing_field", "empty_document"].contains(error.code), "\(error)")
            }
        }
        expectPolicyError("syntax_error", at: "") { _ = try Policy.load(json: Data(#"{"sessions": ["#.utf8)) }
        expectPolicyError("syntax_error", at: "") { _ = try Policy.load(json: Data("permit".utf8)) }
        expectPolicyError("syntax_error", at: "") { _ = try Policy.load(json: Data(#"{"sessions":[]}}"#.utf8)) }
        expectPolicyError("syntax_error", at: "") { _ = try Policy.load(yaml: "sessions: [\n") }
        expectPolicyError("syntax_error", at: "") { _ = try Policy.load(yaml: "sessions:\n  - seid: 1\n bad indent: 2\n") }
        // Valid syntax, wrong shape at the top.
        expectPolicyError("invalid_field", at: "") { _ = try Policy.load(json: Data("[1,2]".utf8)) }
        expectPolicyError("invalid_field", at: "") { _ = try Policy.load(yaml: "just text") }
        expectPolicyError("invalid_field", at: "sessions") { _ = try Policy.load(json: Data(#"{"sessions":{}}"#.utf8)) }
    }

    @Test func invalidUTF8() throws {
        var bytes = Array(#"{"engines":[{"id":"#.utf8)
        bytes += [0x22, 0xC3, 0x28, 0x22]  // a broken two-byte sequence inside a string
        bytes += Array("}]}".utf8)
        let error = expectPolicyError("invalid_utf8", at: "") { _ = try Policy.load(json: Data(bytes)) }
        #expect(error?.message.contains("byte 19") == true)
        expectPolicyError("invalid_utf8", at: "") { _ = try Policy.load(json: Data([0xFF, 0xFE, 0x7B, 0x7D])) }
        // Through a file too, for YAML (a String cannot hold invalid UTF-8).
        let path = NSTemporaryDirectory() + "upfpolicy-bad-utf8-\(getpid()).yaml"
        try Data([0x73, 0x3A, 0x20, 0xE2, 0x82]).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        expectPolicyError("invalid_utf8", at: "") { _ = try Policy.load(path: path) }
    }

    @Test func pathsOfTypeMismatches() {
        let bad = Self.session.replacingOccurrences(of: #""precedence":1"#, with: #""precedence":"high""#)
        let error = expectPolicyError("invalid_field", at: "sessions[3].rules[0].precedence") {
            _ = try Policy.load(json: Self.json(fourthSession: bad))
        }
        #expect(error?.message.contains("integer") == true)
        expectPolicyError("invalid_field", at: "sessions[0].rules[0].precedence") {
            _ = try Policy.load(yaml: """
                sessions:
                  - seid: 1
                    n3: {teid: 1, address: 192.0.2.1}
                    rules: [{id: 1, precedence: [1], source: access, action: 1}]
                """)
        }
        expectPolicyError("invalid_field", at: "sessions[3].n3") {
            _ = try Policy.load(json: Self.json(fourthSession: Self.session.replacingOccurrences(
                of: #""n3":{"teid":1,"address":"192.0.2.1"}"#, with: #""n3":"192.0.2.1:1""#)))
        }
        expectPolicyError("invalid_field", at: "sessions[3].rules[0].source") {
            _ = try Policy.load(json: Self.json(fourthSession: Self.session.replacingOccurrences(of: "access", with: "uplink")))
        }
        expectPolicyError("invalid_field", at: "engines[0].fallback") {
            _ = try Policy.load(yaml: "engines: [{id: e, instances: [], fallback: core-ish}]")
        }
        // The PFCP flow-description text is not accepted as a filter (BAD_INPUTS 23, "just permit").
        expectPolicyError("invalid_field", at: "sessions[3].rules[0].match") {
            _ = try Policy.load(json: Self.json(fourthSession: Self.session.replacingOccurrences(
                of: #""source":"access","#, with: #""source":"access","match":"permit","#)))
        }
    }

    @Test func missingFields() {
        // A rule with no action (BAD_INPUTS 20).
        let error = expectPolicyError("missing_field", at: "sessions[3].rules[0].action") {
            _ = try Policy.load(json: Self.json(fourthSession: Self.session.replacingOccurrences(of: #","action":1"#, with: "")))
        }
        #expect(error?.message == "missing required field 'action'")
        expectPolicyError("missing_field", at: "sessions[0].n3") {
            _ = try Policy.load(yaml: "sessions: [{seid: 1, rules: []}]")
        }
        expectPolicyError("missing_field", at: "sessions[0].n3.address") {
            _ = try Policy.load(yaml: "sessions: [{seid: 1, n3: {teid: 5}, rules: []}]")
        }
        expectPolicyError("missing_field", at: "sessions[0].seid") {
            _ = try Policy.load(json: Data(#"{"sessions":[{"seid":null}]}"#.utf8))
        }
        expectPolicyError("missing_field", at: "engines[0].instances") { _ = try Policy.load(yaml: "engines: [{id: e}]") }
    }

    @Test func unknownFieldsAtEveryLevel() {
        let cases: [(String, String)] = [
            (#"{"sesions":[]}"#, "sesions"),
            (#"{"sessions":[{"seid":1,"n3":{"teid":1,"address":"192.0.2.1"},"rules":[],"ue_ip":"10.0.0.1"}]}"#, "sessions[0].ue_ip"),
            (#"{"sessions":[{"seid":1,"n3":{"teid":1,"address":"192.0.2.1","port":2152},"rules":[]}]}"#, "sessions[0].n3.port"),
            (#"{"sessions":[{"seid":1,"n3":{"teid":1,"address":"192.0.2.1"},"rules":[{"id":1,"precedence":1,"source":"access","action":1,"match":{"dst_ports":[80]}}]}]}"#,
             "sessions[0].rules[0].match.dst_ports"),
            (#"{"sessions":[{"seid":1,"n3":{"teid":1,"address":"192.0.2.1"},"rules":[{"id":1,"precedence":1,"source":"access","action":1,"far_id":1}]}]}"#,
             "sessions[0].rules[0].far_id"),
            (#"{"engines":[{"id":"e","instances":[{"port":"1","address":"10.0.0.1","vlan":3}]}]}"#, "engines[0].instances[0].vlan"),
            (#"{"engines":[{"id":"e","instances":[],"probe":{"kind":"tcp","port":1,"interval_ms":100,"retries":5}}]}"#, "engines[0].probe.retries"),
            (#"{"applications":[{"id":"a","protocol":6,"ports":[80]}]}"#, "applications[0].ports"),
            (#"{"sessions":[{"seid":1,"n3":{"teid":1,"address":"192.0.2.1"},"rules":[],"qos":[{"id":1,"gbr_uplink_kbps":5}]}]}"#, "sessions[0].qos[0].gbr_uplink_kbps"),
            (#"{"sessions":[{"seid":1,"n3":{"teid":1,"address":"192.0.2.1"},"rules":[],"counters":[{"id":1,"time_threshold":5}]}]}"#, "sessions[0].counters[0].time_threshold"),
            (#"{"sessions":[{"seid":1,"n3":{"teid":1,"address":"192.0.2.1"},"rules":[{"id":1,"precedence":1,"source":"access","action":1,"match":{"tos":{"value":1,"mask":1,"ecn":0}}}]}]}"#,
             "sessions[0].rules[0].match.tos.ecn"),
        ]
        for (json, path) in cases {
            let error = expectPolicyError("unknown_field", at: path) { _ = try Policy.load(json: Data(json.utf8)) }
            #expect(error?.message.contains("expected one of") == true)
        }
        expectPolicyError("unknown_field", at: "sessions[0].rules[0].prio") {
            _ = try Policy.load(yaml: """
                sessions:
                  - seid: 1
                    n3: {teid: 1, address: 192.0.2.1}
                    rules: [{id: 1, prio: 5, precedence: 1, source: access, action: 1}]
                """)
        }
    }

    @Test func numbersOutOfRange() {
        let cases: [(String, String, String)] = [
            (#""teid":1,"#, #""teid":-1,"#, "sessions[3].n3.teid"),
            (#""teid":1,"#, #""teid":4294967296,"#, "sessions[3].n3.teid"),
            (#""precedence":1"#, #""precedence":1.5"#, "sessions[3].rules[0].precedence"),
            (#""precedence":1"#, #""precedence":-7"#, "sessions[3].rules[0].precedence"),
            (#"{"id":1,"precedence""#, #"{"id":65536,"precedence""#, "sessions[3].rules[0].id"),
            (#""seid":1"#, #""seid":-1"#, "sessions[3].seid"),
            (#""seid":1"#, #""seid":18446744073709551616"#, "sessions[3].seid"),
        ]
        for (from, to, path) in cases {
            let bad = Self.session.replacingOccurrences(of: from, with: to)
            #expect(bad != Self.session)
            expectPolicyError("out_of_range", at: path) { _ = try Policy.load(json: Self.json(fourthSession: bad)) }
        }
        expectPolicyError("out_of_range", at: "sessions[0].default_qfi") {
            _ = try Policy.load(yaml: "sessions: [{seid: 1, n3: {teid: 1, address: 192.0.2.1}, rules: [], default_qfi: 300}]")
        }
        expectPolicyError("out_of_range", at: "sessions[0].n3.teid") {
            _ = try Policy.load(yaml: "sessions: [{seid: 1, n3: {teid: -5, address: 192.0.2.1}, rules: []}]")
        }
        expectPolicyError("out_of_range", at: "sessions[0].rules[0].counters[1]") {
            _ = try Policy.load(yaml: "sessions: [{seid: 1, n3: {teid: 1, address: 192.0.2.1}, rules: [{id: 1, precedence: 1, source: access, action: 1, counters: [1, -2]}]}]")
        }
        expectPolicyError("invalid_field", at: "sessions[0].seid") {
            _ = try Policy.load(yaml: "sessions: [{seid: one, n3: {teid: 1, address: 192.0.2.1}, rules: []}]")
        }
    }

    @Test func loadByPath() throws {
        expectPolicyError("invalid_field", at: "") { _ = try Policy.load(path: "/etc/hostname") }
        let missing = expectPolicyError("io_error", at: "") { _ = try Policy.load(path: "/nonexistent/policy.yaml") }
        #expect(missing?.message.contains("/nonexistent/policy.yaml") == true)
        let path = NSTemporaryDirectory() + "upfpolicy-\(getpid()).YML"
        try Data("engines: []\n".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try Policy.load(path: path) == Policy())
    }
}
