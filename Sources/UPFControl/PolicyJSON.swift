// The policy model read from and written to JSON by hand, for the control plane's hot paths:
// requests (read from the `JSONDocument` the request line was parsed into), the journal and the
// snapshot.
//
// Why not Codable: a session went JSONValue → text → Foundation's JSONDecoder, then through
// JSONEncoder again for the journal, at about 3 M instructions per session; even a `Decoder`
// over the parsed tree cost ~400 k (existential containers, generic metadata looked up at run
// time, coding paths). Reading the document directly costs a few thousand.
//
// The model's `Decodable` conformances (UPFPolicy/Model.swift, used for YAML and JSON files)
// remain the definition of the format. This file mirrors them field by field — the same fields,
// defaults, checks, order of checks, error codes, messages and paths — and
// Tests/UPFControlTests/PolicyJSONTests.swift holds it to that: every document there is decoded by
// both, and the results (values or errors) must be equal; encoding must give the bytes
// `PolicyCoding.json` gives (sorted keys). A change to the model's coding needs the same change
// here.

import UPFPolicy
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension JSONDocument {
    /// The changes of an `apply` (or a journal entry) at `node`. Error paths start with `path`.
    func policyChanges(at path: String = "", node: Int = JSONDocument.root) throws(PolicyError) -> [PolicyChange] {
        try PolicyJSONReader(self, at: path).read { (reader) throws(PolicyJSONReader.Failure) in
            try reader.list(node, reader.change)
        }
    }

    func policySession(at path: String = "", node: Int = JSONDocument.root) throws(PolicyError) -> Session {
        try PolicyJSONReader(self, at: path).read { (reader) throws(PolicyJSONReader.Failure) in try reader.session(node) }
    }

    func policyEngine(at path: String = "", node: Int = JSONDocument.root) throws(PolicyError) -> Engine {
        try PolicyJSONReader(self, at: path).read { (reader) throws(PolicyJSONReader.Failure) in try reader.engine(node) }
    }

    func policy(at path: String = "", node: Int = JSONDocument.root) throws(PolicyError) -> Policy {
        try PolicyJSONReader(self, at: path).read { (reader) throws(PolicyJSONReader.Failure) in try reader.policy(node) }
    }
}

// MARK: - Reading

/// Reads model values out of a `JSONDocument` (values are node indices). Error paths cost nothing
/// until there is an error: a failure is thrown with its own field, and each enclosing level adds
/// its key or index as the error passes through (`at`); the entry point renders the path.
///
/// A class: its methods are passed around as the readers of fields and list elements, and a
/// struct's would capture a copy of it (the document's arrays) in a heap context each time.
final class PolicyJSONReader {
    /// A failure and where it happened, innermost step first.
    struct Failure: Error {
        enum Step {
            case field(StaticString)
            case key(String)
            case index(Int)
        }

        var code: String
        var message: String
        var steps: [Step] = []

        /// `changes[3].session.rules[0].match`, as `renderPath` writes a coding path.
        func policyError(under prefix: String) -> PolicyError {
            var path = prefix
            for step in steps.reversed() {
                switch step {
                case .field(let key):
                    if !path.isEmpty { path += "." }
                    path += key.description
                case .key(let key):
                    if !path.isEmpty { path += "." }
                    path += key
                case .index(let index):
                    path += "[\(index)]"
                }
            }
            return PolicyError(code: code, message: message, path: path)
        }
    }

    let document: JSONDocument
    /// Where the values read sit in the document they came in (`changes`, `session`; empty at the top).
    let prefix: String

    init(_ document: JSONDocument, at prefix: String) {
        self.document = document
        self.prefix = prefix
    }

    /// Runs `body`, turning its failure into a `PolicyError` with the full path.
    func read<T>(_ body: (PolicyJSONReader) throws(Failure) -> T) throws(PolicyError) -> T {
        do {
            return try body(self)
        } catch {
            throw error.policyError(under: prefix)
        }
    }

    // MARK: errors and where

    private func fail(_ code: String, _ message: String, at step: Failure.Step? = nil) -> Failure {
        Failure(code: code, message: message, steps: step.map { [$0] } ?? [])
    }

    @inline(__always)
    private func at<T>(_ step: Failure.Step, _ body: () throws(Failure) -> T) throws(Failure) -> T {
        do {
            return try body()
        } catch {
            var failure = error
            failure.steps.append(step)
            throw failure
        }
    }

    /// The keys a reader knows, in memory that is never freed (every list is a `static let`),
    /// so that an `Object` refers to them by a plain pointer: an `Object` holding the array
    /// retained and released it around every field lookup (~4 % of reading a session). Make
    /// them only as `static let`s: each is allocated once and kept.
    struct KeyList: ExpressibleByArrayLiteral, @unchecked Sendable {
        let keys: UnsafeBufferPointer<StaticString>

        init(_ keys: [StaticString]) {
            let storage = UnsafeMutableBufferPointer<StaticString>.allocate(capacity: keys.count)
            _ = storage.initialize(from: keys)
            self.keys = UnsafeBufferPointer(storage)
        }

        init(arrayLiteral keys: StaticString...) { self.init(keys) }

        /// This list and `more` after it.
        func adding(_ more: StaticString...) -> KeyList { KeyList(Array(keys) + more) }
    }

    /// An object node. Read with the keys its reader knows, its members are matched against them
    /// once, so a field costs a scan of that short list of literals, not of the members: scanning
    /// the members for each field and again for unknown keys was a fifth of reading a session.
    struct Object {
        let node: Int
        /// The known keys, when the members were matched (at most `matchedCapacity` of them).
        let known: UnsafeBufferPointer<StaticString>?
        /// The value node of `known[i]`, or -1 when the object has no such member.
        var values = InlineArray<16, Int32>(repeating: -1)
        /// Where `find` starts comparing keys: after the last one found.
        var next = 0

        static let matchedCapacity = 16
    }

    private func find(_ object: inout Object, _ key: StaticString) -> Int? {
        if let known = object.known {
            // Readers read their fields in the order of their key lists: start after the last one
            // found, and the key is usually the first one compared.
            var i = object.next
            for _ in 0..<known.count {
                if i >= known.count { i = 0 }
                if Self.same(known[i], key) {
                    object.next = i &+ 1
                    let value = object.values[i]
                    return value >= 0 ? Int(value) : nil
                }
                i &+= 1
            }
        }
        for member in document.members(object.node) where document.string(member.key, equals: key) { return member.value }
        return nil
    }

    /// The same literal: usually the same bytes at the same address (identical literals are merged).
    private static func same(_ a: StaticString, _ b: StaticString) -> Bool {
        let count = a.utf8CodeUnitCount
        guard count == b.utf8CodeUnitCount else { return false }
        return a.utf8Start == b.utf8Start || memcmp(a.utf8Start, b.utf8Start, count) == 0
    }

    func object(_ node: Int) throws(Failure) -> Object {
        switch document.kind(node) {
        case .object: return Object(node: node, known: nil)
        case .null: throw fail(PolicyError.Code.missingField, "expected an object, found null")
        default: throw fail(PolicyError.Code.invalidField, "expected an object")
        }
    }

    /// An object whose keys must all be in `known` (`rejectUnknownKeys`: the first unknown key
    /// in sorted order is reported).
    func object(_ node: Int, known list: KeyList) throws(Failure) -> Object {
        _ = try object(node)
        let known = list.keys
        guard known.count <= Object.matchedCapacity else {
            let object = Object(node: node, known: nil)
            try rejectUnknown(object, known: known)
            return object
        }
        var object = Object(node: node, known: known)
        var unknown = false
        for member in document.members(node) {
            guard let i = document.string(member.key, indexIn: known) else {
                unknown = true
                continue
            }
            object.values[i] = Int32(truncatingIfNeeded: member.value)
        }
        if unknown { try rejectUnknown(object, known: known) }
        return object
    }

    func rejectUnknown(_ object: Object, known: UnsafeBufferPointer<StaticString>) throws(Failure) {
        var first: String?
        for member in document.members(object.node) where !document.string(member.key, isOneOf: known) {
            let key = document.string(member.key)
            if first.map({ key < $0 }) ?? true { first = key }
        }
        if let first {
            let expected = known.map(\.description).sorted().joined(separator: ", ")
            throw fail(PolicyError.Code.unknownField, "unknown field '\(first)' (expected one of: \(expected))", at: .key(first))
        }
    }

    /// A required field (`decode(_:forKey:)`): missing is `missing_field`.
    @inline(__always)
    func field<T>(_ object: inout Object, _ key: StaticString, _ read: (Int) throws(Failure) -> T) throws(Failure) -> T {
        try at(.field(key)) { () throws(Failure) -> T in
            guard let value = find(&object, key) else {
                throw fail(PolicyError.Code.missingField, "missing required field '\(key)'")
            }
            return try read(value)
        }
    }

    /// An optional field (`decodeIfPresent`): missing or null is nil.
    @inline(__always)
    func optionalField<T>(_ object: inout Object, _ key: StaticString, _ read: (Int) throws(Failure) -> T) throws(Failure) -> T? {
        guard let value = find(&object, key), document.kind(value) != .null else { return nil }
        return try at(.field(key)) { () throws(Failure) -> T in try read(value) }
    }

    // Fields of the plain types, without a reader argument: a method passed as one
    // (`field(&o, "id", integer)`) is a closure holding the reader, retained and released around
    // every field (~8 % of reading a session). A closure literal holds nothing.

    /// A required integer field.
    @inline(__always)
    func field<T: FixedWidthInteger>(_ object: inout Object, _ key: StaticString) throws(Failure) -> T {
        try field(&object, key) { (value) throws(Failure) in try integer(value) }
    }

    /// A required string field.
    @inline(__always)
    func field(_ object: inout Object, _ key: StaticString) throws(Failure) -> String {
        try field(&object, key) { (value) throws(Failure) in try string(value) }
    }

    /// A required string-enumeration field.
    @inline(__always)
    func field<E: RawRepresentable & CaseIterable>(_ object: inout Object, _ key: StaticString) throws(Failure) -> E
    where E.RawValue == String {
        try field(&object, key) { (value) throws(Failure) in try enumeration(value) }
    }

    /// An optional integer field.
    @inline(__always)
    func optionalField<T: FixedWidthInteger>(_ object: inout Object, _ key: StaticString) throws(Failure) -> T? {
        try optionalField(&object, key) { (value) throws(Failure) in try integer(value) }
    }

    /// An optional string field.
    @inline(__always)
    func optionalField(_ object: inout Object, _ key: StaticString) throws(Failure) -> String? {
        try optionalField(&object, key) { (value) throws(Failure) in try string(value) }
    }

    /// An optional string-enumeration field.
    @inline(__always)
    func optionalField<E: RawRepresentable & CaseIterable>(_ object: inout Object, _ key: StaticString) throws(Failure) -> E?
    where E.RawValue == String {
        try optionalField(&object, key) { (value) throws(Failure) in try enumeration(value) }
    }

    /// A list that defaults to empty when missing or null (`list(_:_:)` of Coding.swift).
    @inline(__always)
    func listField<T>(_ object: inout Object, _ key: StaticString, _ element: (Int) throws(Failure) -> T) throws(Failure) -> [T] {
        try optionalField(&object, key) { (value) throws(Failure) in try list(value, element) } ?? []
    }

    // MARK: values

    func list<T>(_ node: Int, _ element: (Int) throws(Failure) -> T) throws(Failure) -> [T] {
        switch document.kind(node) {
        case .array:
            let elements = document.elements(node)
            var result: [T] = []
            result.reserveCapacity(elements.count)
            for (index, item) in elements.enumerated() {
                result.append(try at(.index(index)) { () throws(Failure) -> T in try element(item) })
            }
            return result
        case .null: throw fail(PolicyError.Code.missingField, "expected a list, found null")
        default: throw fail(PolicyError.Code.invalidField, "expected a list")
        }
    }

    func string(_ node: Int) throws(Failure) -> String {
        try requireString(node)
        return document.string(node)
    }

    /// `string`'s checks without making the `String` (for values compared by their bytes).
    private func requireString(_ node: Int) throws(Failure) {
        switch document.kind(node) {
        case .string: return
        case .null: throw fail(PolicyError.Code.missingField, "expected a string, found null")
        default: throw fail(PolicyError.Code.invalidField, "expected a string")
        }
    }

    /// A number that reads as a `T`: a plain integer literal, or one with a fraction or an exponent
    /// whose value is a whole number that fits, as JSONDecoder reads them (`7.0`, `1e3`, `-0`).
    func wholeNumber<T: FixedWidthInteger>(_ node: Int, as: T.Type = T.self) -> T? {
        guard document.kind(node) == .number else { return nil }
        if let integer = document.plainInteger(node, as: T.self) { return integer }
        return Self.wholeNumber(document.numberText(node))
    }

    static func wholeNumber<T: FixedWidthInteger>(_ text: String) -> T? {
        if let integer = T(text) { return integer }
        guard text.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }),
              let real = Double(text), real.rounded() == real else { return nil }
        return T(exactly: real)
    }

    /// An integer of type `T`, told apart as out of range or not a number when it is not one
    /// (`integerError` of Coding.swift).
    func integer<T: FixedWidthInteger>(_ node: Int) throws(Failure) -> T {
        if let integer: T = wholeNumber(node) { return integer }
        let range = "\(T.min)...\(T.max)"
        switch document.kind(node) {
        case .number:
            let text = document.numberText(node)
            if let wide: Int64 = Self.wholeNumber(text) {
                throw fail(PolicyError.Code.outOfRange, "\(wide) is out of range \(range)")
            }
            if let wide: UInt64 = Self.wholeNumber(text) {
                throw fail(PolicyError.Code.outOfRange, "\(wide) is out of range \(range)")
            }
            if let real = Double(text), real.isFinite {
                if real.rounded() == real { throw fail(PolicyError.Code.outOfRange, "\(real) is out of range \(range)") }
                throw fail(PolicyError.Code.outOfRange, "\(real) is not an integer; expected an integer in \(range)")
            }
            throw fail(PolicyError.Code.invalidField, "expected an integer in \(range)")
        case .null: throw fail(PolicyError.Code.missingField, "expected an integer, found null")
        default: throw fail(PolicyError.Code.invalidField, "expected an integer in \(range)")
        }
    }

    /// A string enum (`decodeEnum` of Model.swift).
    func enumeration<E: RawRepresentable & CaseIterable>(_ node: Int) throws(Failure) -> E where E.RawValue == String {
        try requireString(node)
        // By the bytes first (no `String` made for the usual, valid value).
        for value in E.allCases where document.string(node, equalsText: value.rawValue) { return value }
        let text = document.string(node)
        guard let result = E(rawValue: text) else {
            throw fail(PolicyError.Code.invalidField,
                       "'\(text)' is not one of: \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return result
    }

    // MARK: the model (in the order of the fields' checks in Model.swift)

    static let policyKeys: KeyList = ["engines", "applications", "sessions"]

    func policy(_ node: Int) throws(Failure) -> Policy {
        var o = try object(node, known: Self.policyKeys)
        return Policy(engines: try listField(&o, "engines", engine),
                      applications: try listField(&o, "applications", application),
                      sessions: try listField(&o, "sessions", session))
    }

    static let engineKeys: KeyList = ["id", "instances", "fallback", "probe"]

    func engine(_ node: Int) throws(Failure) -> Engine {
        var o = try object(node, known: Self.engineKeys)
        let id: String = try field(&o, "id")
        let instances = try field(&o, "instances") { (value) throws(Failure) in try list(value, engineInstance) }
        let fallback: EngineFallback = try optionalField(&o, "fallback") ?? .core
        return Engine(id: id, instances: instances, fallback: fallback, probe: try optionalField(&o, "probe", engineProbe))
    }

    static let engineInstanceKeys: KeyList = ["port", "address", "mac"]

    func engineInstance(_ node: Int) throws(Failure) -> EngineInstance {
        var o = try object(node, known: Self.engineInstanceKeys)
        // A port index may be written as a number.
        let port: String
        if let value = find(&o, "port"), let index: UInt16 = wholeNumber(value) {
            port = String(index)
        } else {
            port = try field(&o, "port")
        }
        return EngineInstance(port: port, address: try field(&o, "address"), mac: try optionalField(&o, "mac"))
    }

    static let engineProbeKeys: KeyList = ["kind", "port", "path", "interval_ms", "timeout_ms", "failures_before_down"]

    func engineProbe(_ node: Int) throws(Failure) -> EngineProbe {
        var o = try object(node, known: Self.engineProbeKeys)
        let kind: EngineProbe.Kind = try field(&o, "kind")
        let port: UInt16 = try field(&o, "port")
        let path: String? = try optionalField(&o, "path")
        return EngineProbe(kind: kind, port: port, path: path, intervalMs: try field(&o, "interval_ms"),
                           timeoutMs: try optionalField(&o, "timeout_ms"),
                           failuresBeforeDown: try optionalField(&o, "failures_before_down"))
    }

    static let applicationKeys: KeyList = ["id", "destination_prefixes", "destination_ports", "protocol"]

    func application(_ node: Int) throws(Failure) -> Application {
        var o = try object(node, known: Self.applicationKeys)
        return Application(id: try field(&o, "id"),
                           destinationPrefixes: try listField(&o, "destination_prefixes", string),
                           destinationPorts: try listField(&o, "destination_ports", portRange),
                           protocol: try optionalField(&o, "protocol"))
    }

    static let sessionKeys: KeyList = ["seid", "ue_ipv4", "ue_ipv6", "n3", "gnb", "default_qfi", "rules", "actions", "qos",
                                       "counters"]

    func session(_ node: Int) throws(Failure) -> Session {
        var o = try object(node, known: Self.sessionKeys)
        let seid: UInt64 = try field(&o, "seid")
        let ueIPv4: String? = try optionalField(&o, "ue_ipv4")
        let ueIPv6: String? = try optionalField(&o, "ue_ipv6")
        let n3 = try field(&o, "n3", fteid)
        let gnb = try optionalField(&o, "gnb", fteid)
        let defaultQFI: UInt8 = try optionalField(&o, "default_qfi") ?? 9
        let rules = try field(&o, "rules") { (value) throws(Failure) in try list(value, rule) }
        return Session(seid: seid, ueIPv4: ueIPv4, ueIPv6: ueIPv6, n3: n3, gnb: gnb, defaultQFI: defaultQFI, rules: rules,
                       actions: try listField(&o, "actions", action), qos: try listField(&o, "qos", qos),
                       counters: try listField(&o, "counters", usageRule))
    }

    static let fteidKeys: KeyList = ["teid", "address"]

    func fteid(_ node: Int) throws(Failure) -> FTEID {
        var o = try object(node, known: Self.fteidKeys)
        return FTEID(teid: try field(&o, "teid"), address: try field(&o, "address"))
    }

    static let ruleKeys: KeyList = ["id", "precedence", "source", "match", "qfi", "application", "action", "qos", "counters"]

    func rule(_ node: Int) throws(Failure) -> Rule {
        var o = try object(node, known: Self.ruleKeys)
        let id: UInt16 = try field(&o, "id")
        let precedence: UInt32 = try field(&o, "precedence")
        let source: SourceInterface = try field(&o, "source")
        let match = try optionalField(&o, "match", filter)
        let qfi: UInt8? = try optionalField(&o, "qfi")
        let application: String? = try optionalField(&o, "application")
        let action: UInt32 = try field(&o, "action")
        let qos: UInt32? = try optionalField(&o, "qos")
        return Rule(id: id, precedence: precedence, source: source, match: match, qfi: qfi, application: application,
                    action: action, qos: qos, counters: try listField(&o, "counters", integer))
    }

    static let filterKeys: KeyList = ["source_prefixes", "destination_prefixes", "protocol", "source_ports",
                                      "destination_ports", "tos"]

    func filter(_ node: Int) throws(Failure) -> SDFFilter {
        var o = try object(node, known: Self.filterKeys)
        return SDFFilter(sourcePrefixes: try listField(&o, "source_prefixes", string),
                         destinationPrefixes: try listField(&o, "destination_prefixes", string),
                         protocol: try optionalField(&o, "protocol"),
                         sourcePorts: try listField(&o, "source_ports", portRange),
                         destinationPorts: try listField(&o, "destination_ports", portRange),
                         tos: try optionalField(&o, "tos", tosMatch))
    }

    static let tosKeys: KeyList = ["value", "mask"]

    func tosMatch(_ node: Int) throws(Failure) -> TOSMatch {
        var o = try object(node, known: Self.tosKeys)
        return TOSMatch(value: try field(&o, "value"), mask: try optionalField(&o, "mask") ?? 0xFF)
    }

    /// A number (`80`) or the text form (`"8000-8080"`).
    func portRange(_ node: Int) throws(Failure) -> PortRange {
        if let port: UInt16 = wholeNumber(node) { return PortRange(port) }
        if document.kind(node) == .string {
            switch PortRange.parse(document.string(node)) {
            case .success(let range): return range
            case .failure(let error): throw fail(error.code, error.message)
            }
        }
        // A number that is not a port (negative, too large, fractional) or another type.
        return PortRange(try integer(node) as UInt16)
    }

    static let actionKeys: KeyList = ["id", "type"]

    func action(_ node: Int) throws(Failure) -> Action {
        // The type by its bytes, and the keys each type allows made once: comparing `String`s
        // twice and concatenating the key lists per action was a few hundred instructions each.
        var bare = try object(node)
        let type = try field(&bare, "type") { (value) throws(Failure) -> ActionType in
            try requireString(value)
            guard let type = ActionType.allCases.first(where: { document.string(value, equals: $0.name) }) else {
                throw fail(PolicyError.Code.invalidField,
                           "unknown action type '\(document.string(value))' (expected steer, n9, n3, n6, drop or buffer)")
            }
            return type
        }
        var o = try object(node, known: type.keys)
        let id: UInt32 = try field(&o, "id")
        let kind: ActionKind
        switch type {
        case .steer: kind = .steer(engine: try field(&o, "engine"))
        case .n9: kind = .forwardN9(peer: try field(&o, "peer"), teid: try field(&o, "teid"))
        case .n3: kind = .forwardN3
        case .n6: kind = .forwardN6
        case .drop: kind = .drop
        case .buffer: kind = .buffer(limit: try field(&o, "limit"))
        }
        return Action(id: id, kind: kind)
    }

    enum ActionType: CaseIterable {
        case steer, n9, n3, n6, drop, buffer

        var name: StaticString {
            switch self {
            case .steer: "steer"
            case .n9: "n9"
            case .n3: "n3"
            case .n6: "n6"
            case .drop: "drop"
            case .buffer: "buffer"
            }
        }

        var keys: KeyList {
            switch self {
            case .steer: PolicyJSONReader.steerKeys
            case .n9: PolicyJSONReader.n9Keys
            case .buffer: PolicyJSONReader.bufferKeys
            case .n3, .n6, .drop: PolicyJSONReader.actionKeys
            }
        }
    }

    static let steerKeys = actionKeys.adding("engine")
    static let n9Keys = actionKeys.adding("peer", "teid")
    static let bufferKeys = actionKeys.adding("limit")

    static let qosKeys: KeyList = ["id", "gate_uplink", "gate_downlink", "mbr_uplink_kbps", "mbr_downlink_kbps", "qfi"]

    func qos(_ node: Int) throws(Failure) -> QoS {
        var o = try object(node, known: Self.qosKeys)
        let id: UInt32 = try field(&o, "id")
        let gateUplink: Gate = try optionalField(&o, "gate_uplink") ?? .open
        let gateDownlink: Gate = try optionalField(&o, "gate_downlink") ?? .open
        let mbrUplink: UInt64? = try optionalField(&o, "mbr_uplink_kbps")
        let mbrDownlink: UInt64? = try optionalField(&o, "mbr_downlink_kbps")
        return QoS(id: id, gateUplink: gateUplink, gateDownlink: gateDownlink, mbrUplinkKbps: mbrUplink,
                   mbrDownlinkKbps: mbrDownlink, qfi: try optionalField(&o, "qfi"))
    }

    static let usageRuleKeys: KeyList = ["id", "volume_threshold_bytes"]

    func usageRule(_ node: Int) throws(Failure) -> UsageRule {
        var o = try object(node, known: Self.usageRuleKeys)
        return UsageRule(id: try field(&o, "id"),
                         volumeThresholdBytes: try optionalField(&o, "volume_threshold_bytes"))
    }

    func change(_ node: Int) throws(Failure) -> PolicyChange {
        var o = try object(node)
        let op: String = try field(&o, "op")
        let argument: StaticString
        switch op {
        case "put_session": argument = "session"
        case "delete_session": argument = "seid"
        case "put_engine": argument = "engine"
        case "put_application": argument = "application"
        case "delete_engine", "delete_application": argument = "id"
        default:
            throw fail(PolicyError.Code.unknownOperation,
                       "unknown op '\(op)' (expected one of: \(PolicyChange.operations.joined(separator: ", ")))", at: .field("op"))
        }
        let known: [StaticString] = ["op", argument]
        try known.withUnsafeBufferPointer { (known) throws(Failure) in try rejectUnknown(o, known: known) }
        switch op {
        case "put_session": return .putSession(try field(&o, "session", session))
        case "delete_session": return .deleteSession(seid: try field(&o, "seid"))
        case "put_engine": return .putEngine(try field(&o, "engine", engine))
        case "delete_engine": return .deleteEngine(id: try field(&o, "id"))
        case "put_application": return .putApplication(try field(&o, "application", application))
        default: return .deleteApplication(id: try field(&o, "id"))
        }
    }
}

// MARK: - Writing

/// Compact JSON of model values with sorted keys: the bytes `PolicyCoding.json` (Foundation's
/// JSONEncoder, `.sortedKeys`, `.withoutEscapingSlashes`) produces, written directly.
struct PolicyJSONWriter: ~Copyable {
    /// The bytes go through a pointer into storage of its own rather than into a `[UInt8]`:
    /// `Array.append` checked uniqueness and capacity out of line on every call, which cost half
    /// of writing a snapshot (callgrind, docs/BENCHMARKS.md "Classifier and updates").
    /// Noncopyable, so the storage has one owner and is freed once.
    private var storage: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity: Int

    /// Where a long document goes while it is written (see `init(chunkBytes:sink:)`).
    private let sink: ((UnsafeRawBufferPointer) -> Int32)?
    private let chunkBytes: Int
    /// Bytes handed to `sink` so far.
    private(set) var drained = 0
    /// The errno `sink` returned, if it failed: nothing more is passed to it after that.
    private(set) var sinkError: Int32 = 0

    init(capacity: Int = 1024) {
        self.capacity = max(capacity, 64)
        storage = .allocate(capacity: self.capacity)
        sink = nil
        chunkBytes = .max
    }

    /// A writer that hands what it has written to `sink` (which returns 0 or an errno) whenever
    /// a session ends with more than `chunkBytes` held, and at `drain()`. Why, for snapshots: a
    /// whole document held in memory is ~600 B per session (600 MB at 1 M sessions), and filling
    /// fresh pages for it was a third of the time spent writing one; a reused chunk stays in cache.
    init(chunkBytes: Int, sink: @escaping (UnsafeRawBufferPointer) -> Int32) {
        self.capacity = max(chunkBytes + chunkBytes / 4, 64)
        storage = .allocate(capacity: self.capacity)
        self.sink = sink
        self.chunkBytes = chunkBytes
    }

    /// Hands everything held to the sink (a writer without one keeps it).
    mutating func drain() {
        guard let sink, count > 0 else { return }
        if sinkError == 0 { sinkError = sink(UnsafeRawBufferPointer(start: storage, count: count)) }
        drained += count
        count = 0
    }

    /// Ends a line (a snapshot file's text).
    mutating func newline() { byte(0x0A) }

    @inline(__always)
    private mutating func drainIfFull() {
        if count > chunkBytes { drain() }
    }

    deinit {
        storage.deallocate()
    }

    /// What has been written, as one array (a copy: take it once, at the end).
    var bytes: [UInt8] { Array(UnsafeBufferPointer(start: storage, count: count)) }

    // MARK: pieces

    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(extra) }
    }

    private mutating func grow(_ extra: Int) {
        let grown = max(capacity * 2, count + extra)
        let new = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        new.update(from: storage, count: count)
        storage.deallocate()
        storage = new
        capacity = grown
    }

    @inline(__always)
    private mutating func byte(_ value: UInt8) {
        reserve(1)
        storage[count] = value
        count += 1
    }

    @inline(__always)
    private mutating func append(_ start: UnsafePointer<UInt8>, _ length: Int) {
        reserve(length)
        if length <= 16 {  // keys and most values: cheaper than a call to memcpy
            for i in 0..<length { storage[count + i] = start[i] }
        } else {
            (storage + count).update(from: start, count: length)
        }
        count += length
    }

    /// Always inlined, as `key` is: the text is a literal, so its length and bytes fold into the
    /// caller (out of line, reading them from the `StaticString` was a sixth of a snapshot).
    @inline(__always)
    private mutating func raw(_ text: StaticString) {
        append(text.utf8Start, text.utf8CodeUnitCount)
    }

    /// `"key":` after a comma unless it is the object's first member.
    @inline(__always)
    private mutating func key(_ name: StaticString, first: inout Bool) {
        if !first { byte(UInt8(ascii: ",")) }
        first = false
        byte(UInt8(ascii: "\""))
        raw(name)
        raw("\":")
    }

    /// Decimal digits, written directly (no intermediate `String`): the digits counted by
    /// comparison, then written from the end two at a time (half the divisions of one at a time,
    /// which with a division more per digit to count them was a seventh of a snapshot).
    private mutating func integer<T: FixedWidthInteger>(_ value: T) {
        guard T.bitWidth <= 64 else { return wideInteger(value) }
        if value < 0 { byte(UInt8(ascii: "-")) }
        var magnitude = UInt64(truncatingIfNeeded: value.magnitude)
        reserve(20)  // UInt64.max has 20 digits
        var digits = 1
        var limit: UInt64 = 10
        while digits < 20 && magnitude >= limit {
            digits &+= 1
            if digits < 20 { limit &*= 10 }
        }
        var i = count &+ digits
        // A literal, not a stored table: no lazy-initialisation check per call.
        let digitPairs: StaticString = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"
        do {
            let pairs = digitPairs.utf8Start
            while magnitude >= 10 {
                let pair = Int(magnitude % 100) &* 2
                magnitude /= 100
                i &-= 2
                storage[i] = pairs[pair]
                storage[i &+ 1] = pairs[pair &+ 1]
            }
            if i > count { storage[count] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude) }
        }
        count &+= digits
    }

    private mutating func wideInteger<T: FixedWidthInteger>(_ value: T) {
        for byte in String(value).utf8 { self.byte(byte) }
    }

    /// Escapes as JSONEncoder does: `"`, `\` and control characters (`\n`, `\r`, `\t`, `\b`,
    /// `\f`, else `\u00xx`); everything else, `/` and non-ASCII included, as it is.
    mutating func string(_ text: String) {
        byte(UInt8(ascii: "\""))
        defer { byte(UInt8(ascii: "\"")) }
        // Nothing to escape (the usual case): the UTF-8 as it is.
        var text = text
        let plain = text.withUTF8 { utf8 in
            // Eight bytes at a time, as the parser skips strings; the tail byte by byte.
            var i = JSONDocument.plainPrefix(utf8, from: 0)
            while i < utf8.count {
                let byte = utf8[i]
                if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return false }
                i &+= 1
            }
            if let base = utf8.baseAddress { append(base, utf8.count) }
            return true
        }
        if plain { return }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0x08: raw("\\b")
            case 0x0C: raw("\\f")
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                raw("\\u00")
                self.byte(hex[Int(byte >> 4)])
                self.byte(hex[Int(byte & 0xF)])
            default: self.byte(byte)
            }
        }
    }

    private mutating func list<T>(_ items: [T], _ element: (inout PolicyJSONWriter, T) -> Void) {
        byte(UInt8(ascii: "["))
        // Through the buffer: iterating the array copied each element (a rule: a retain of
        // each of its strings and arrays) before handing it on.
        items.withUnsafeBufferPointer { buffer in
            for index in buffer.indices {
                if index > 0 { byte(UInt8(ascii: ",")) }
                element(&self, buffer[index])
            }
        }
        byte(UInt8(ascii: "]"))
    }

    // MARK: the model (keys in sorted order; lists that `encodeList` omits when empty, likewise)

    mutating func policy(_ p: Policy) {
        var first = true
        raw("{")
        key("applications", first: &first); list(p.applications) { $0.application($1) }
        key("engines", first: &first); list(p.engines) { $0.engine($1) }
        key("sessions", first: &first); list(p.sessions) { $0.session($1); $0.drainIfFull() }
        raw("}")
    }

    mutating func engine(_ e: Engine) {
        var first = true
        raw("{")
        key("fallback", first: &first); string(e.fallback.rawValue)
        key("id", first: &first); string(e.id)
        key("instances", first: &first); list(e.instances) { $0.engineInstance($1) }
        if let probe = e.probe { key("probe", first: &first); engineProbe(probe) }
        raw("}")
    }

    mutating func engineInstance(_ i: EngineInstance) {
        var first = true
        raw("{")
        key("address", first: &first); string(i.address)
        if let mac = i.mac { key("mac", first: &first); string(mac) }
        key("port", first: &first); string(i.port)
        raw("}")
    }

    mutating func engineProbe(_ p: EngineProbe) {
        var first = true
        raw("{")
        if let failures = p.failuresBeforeDown { key("failures_before_down", first: &first); integer(failures) }
        key("interval_ms", first: &first); integer(p.intervalMs)
        key("kind", first: &first); string(p.kind.rawValue)
        if let path = p.path { key("path", first: &first); string(path) }
        key("port", first: &first); integer(p.port)
        if let timeout = p.timeoutMs { key("timeout_ms", first: &first); integer(timeout) }
        raw("}")
    }

    mutating func application(_ a: Application) {
        var first = true
        raw("{")
        if !a.destinationPorts.isEmpty { key("destination_ports", first: &first); list(a.destinationPorts) { $0.portRange($1) } }
        if !a.destinationPrefixes.isEmpty { key("destination_prefixes", first: &first); list(a.destinationPrefixes) { $0.string($1) } }
        key("id", first: &first); string(a.id)
        if let p = a.protocol { key("protocol", first: &first); integer(p) }
        raw("}")
    }

    mutating func session(_ s: Session) {
        var first = true
        raw("{")
        key("actions", first: &first); list(s.actions) { $0.action($1) }
        if !s.counters.isEmpty { key("counters", first: &first); list(s.counters) { $0.usageRule($1) } }
        key("default_qfi", first: &first); integer(s.defaultQFI)
        if let gnb = s.gnb { key("gnb", first: &first); fteid(gnb) }
        key("n3", first: &first); fteid(s.n3)
        if !s.qos.isEmpty { key("qos", first: &first); list(s.qos) { $0.qos($1) } }
        key("rules", first: &first); list(s.rules) { $0.rule($1) }
        key("seid", first: &first); integer(s.seid)
        if let ue = s.ueIPv4 { key("ue_ipv4", first: &first); string(ue) }
        if let ue = s.ueIPv6 { key("ue_ipv6", first: &first); string(ue) }
        raw("}")
    }

    mutating func fteid(_ f: FTEID) {
        var first = true
        raw("{")
        key("address", first: &first); string(f.address)
        key("teid", first: &first); integer(f.teid)
        raw("}")
    }

    mutating func rule(_ r: Rule) {
        var first = true
        raw("{")
        key("action", first: &first); integer(r.action)
        if let application = r.application { key("application", first: &first); string(application) }
        if !r.counters.isEmpty { key("counters", first: &first); list(r.counters) { $0.integer($1) } }
        key("id", first: &first); integer(r.id)
        if let match = r.match { key("match", first: &first); filter(match) }
        key("precedence", first: &first); integer(r.precedence)
        if let qfi = r.qfi { key("qfi", first: &first); integer(qfi) }
        if let qos = r.qos { key("qos", first: &first); integer(qos) }
        key("source", first: &first)
        // Enumerations as literals: two per rule and action, through `string` a tenth of a snapshot.
        switch r.source {
        case .access: raw("\"access\"")
        case .core: raw("\"core\"")
        case .engine: raw("\"engine\"")
        }
        raw("}")
    }

    mutating func filter(_ f: SDFFilter) {
        var first = true
        raw("{")
        if !f.destinationPorts.isEmpty { key("destination_ports", first: &first); list(f.destinationPorts) { $0.portRange($1) } }
        if !f.destinationPrefixes.isEmpty { key("destination_prefixes", first: &first); list(f.destinationPrefixes) { $0.string($1) } }
        if let p = f.protocol { key("protocol", first: &first); integer(p) }
        if !f.sourcePorts.isEmpty { key("source_ports", first: &first); list(f.sourcePorts) { $0.portRange($1) } }
        if !f.sourcePrefixes.isEmpty { key("source_prefixes", first: &first); list(f.sourcePrefixes) { $0.string($1) } }
        if let tos = f.tos {
            key("tos", first: &first)
            var tosFirst = true
            raw("{")
            key("mask", first: &tosFirst); integer(tos.mask)
            key("value", first: &tosFirst); integer(tos.value)
            raw("}")
        }
        raw("}")
    }

    mutating func portRange(_ r: PortRange) {
        if r.low == r.high {
            integer(r.low)
        } else {
            // `"low-high"`, written directly (interpolating made a String of each bound).
            byte(UInt8(ascii: "\""))
            integer(r.low)
            byte(UInt8(ascii: "-"))
            integer(r.high)
            byte(UInt8(ascii: "\""))
        }
    }

    mutating func action(_ a: Action) {
        var first = true
        raw("{")
        if case .steer(let engine) = a.kind { key("engine", first: &first); string(engine) }
        key("id", first: &first); integer(a.id)
        if case .buffer(let limit) = a.kind { key("limit", first: &first); integer(limit) }
        if case .forwardN9(let peer, let teid) = a.kind {
            key("peer", first: &first); string(peer)
            key("teid", first: &first); integer(teid)
        }
        key("type", first: &first)
        switch a.kind {
        case .steer: raw("\"steer\"")
        case .forwardN9: raw("\"n9\"")
        case .forwardN3: raw("\"n3\"")
        case .forwardN6: raw("\"n6\"")
        case .drop: raw("\"drop\"")
        case .buffer: raw("\"buffer\"")
        }
        raw("}")
    }

    mutating func qos(_ q: QoS) {
        var first = true
        raw("{")
        key("gate_downlink", first: &first); string(q.gateDownlink.rawValue)
        key("gate_uplink", first: &first); string(q.gateUplink.rawValue)
        key("id", first: &first); integer(q.id)
        if let mbr = q.mbrDownlinkKbps { key("mbr_downlink_kbps", first: &first); integer(mbr) }
        if let mbr = q.mbrUplinkKbps { key("mbr_uplink_kbps", first: &first); integer(mbr) }
        if let qfi = q.qfi { key("qfi", first: &first); integer(qfi) }
        raw("}")
    }

    mutating func usageRule(_ u: UsageRule) {
        var first = true
        raw("{")
        key("id", first: &first); integer(u.id)
        if let threshold = u.volumeThresholdBytes { key("volume_threshold_bytes", first: &first); integer(threshold) }
        raw("}")
    }

    mutating func change(_ c: PolicyChange) {
        var first = true
        raw("{")
        switch c {
        case .putSession(let s):
            key("op", first: &first); string(c.op)
            key("session", first: &first); session(s)
        case .deleteSession(let seid):
            key("op", first: &first); string(c.op)
            key("seid", first: &first); integer(seid)
        case .putEngine(let e):
            key("engine", first: &first); engine(e)
            key("op", first: &first); string(c.op)
        case .deleteEngine(let id), .deleteApplication(let id):
            key("id", first: &first); string(id)
            key("op", first: &first); string(c.op)
        case .putApplication(let a):
            key("application", first: &first); application(a)
            key("op", first: &first); string(c.op)
        }
        raw("}")
    }

    mutating func changes(_ changes: [PolicyChange]) {
        list(changes) { $0.change($1) }
    }

    mutating func snapshot(_ snapshot: StateSnapshot) {
        var first = true
        raw("{")
        key("format", first: &first); string(snapshot.format)
        key("format_version", first: &first); integer(snapshot.formatVersion)
        key("policy", first: &first); policy(snapshot.policy)
        key("version", first: &first); integer(snapshot.version)
        raw("}")
    }
}
