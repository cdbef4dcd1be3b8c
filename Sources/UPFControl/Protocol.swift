// The control protocol: one JSON object per line in each direction.
//
//   request   {"id":…, "op":"…", …op fields}
//   response  {"id":…, "ok":true, "version":N, …}  or  {"id":…, "ok":false, "error":{code,message,path}}
//
// Parsing is strict (unknown fields and wrong types are errors with a path) and happens on the
// connection's I/O thread, so the thread that owns the policy only ever sees well-formed requests.
// A line is parsed once (`JSONDocument`) and the policy values are read straight from it
// (PolicyJSON.swift); the changes' text is kept for the journal (`ChangesJSON`).
// docs/control-protocol.md is the reference for clients.

import UPFPolicy

/// A request's changes as the text of a JSON array of changes (`[{"op":"put_session",…}]`), made
/// from the bytes the client sent — the `changes` of an `apply` as they are, the value of a
/// `session.put` or `engine.put` inside its change's wrapper. The journal writes it as it is
/// instead of encoding the decoded changes again. It was parsed and decoded strictly already, so
/// replaying it at start-up reads back exactly the changes that were applied.
public struct ChangesJSON: Sendable, Equatable {
    /// The text, where it is: for an `apply`, a slice of the request line (a batch of 1000
    /// sessions is ~650 KB, copied twice per batch before, into freshly mapped pages).
    public var utf8: ArraySlice<UInt8>

    public init(_ bytes: [UInt8]) {
        utf8 = bytes[...]
    }

    public init(_ utf8: ArraySlice<UInt8>) {
        self.utf8 = utf8
    }

    /// `[{"op":"<op>","<argument>":<value>}]` around the text of one change's argument.
    init(op: String, argument: String, value: ArraySlice<UInt8>) {
        var bytes = Array(#"[{"op":""#.utf8)
        bytes.reserveCapacity(value.count + op.utf8.count + argument.utf8.count + 20)
        bytes += op.utf8
        bytes += #"",""#.utf8
        bytes += argument.utf8
        bytes += #"":"#.utf8
        bytes += value
        bytes += "}]".utf8
        utf8 = bytes[...]
    }
}

/// A well-formed request, ready for the policy owner.
public enum ControlRequest: Sendable, Equatable {
    /// A transactional batch of changes; `text` is their JSON when they were decoded from it.
    case apply([PolicyChange], text: ChangesJSON? = nil)
    /// Puts every engine, application and session of `policy`; with `replace`, also deletes those
    /// it does not name. One transaction.
    case policyPut(Policy, replace: Bool)
    case policyGet
    /// `endMarker`: when the put changes the session's gNB F-TEID, send an End Marker on the
    /// old one (PFCP's SNDEM, TS 29.244 §5.2.2.3).
    case sessionPut(Session, text: ChangesJSON? = nil, endMarker: Bool = false)
    case sessionGet(seid: UInt64)
    case sessionDelete(seid: UInt64)
    /// Sessions in SEID order, after `cursor` (exclusive).
    case sessionList(after: UInt64?, limit: Int)
    case enginePut(Engine, text: ChangesJSON? = nil)
    case engineDelete(id: String)
    case engineList
    case stats
    /// `stats` with `session`: the counters of one session (totals and per rule).
    case sessionStats(seid: UInt64)
    case health
    case version
    /// Turns the connection into an event stream.
    case events

    /// The operation name on the wire.
    public var op: String {
        switch self {
        case .apply: "apply"
        case .policyPut: "policy.put"
        case .policyGet: "policy.get"
        case .sessionPut: "session.put"
        case .sessionGet: "session.get"
        case .sessionDelete: "session.delete"
        case .sessionList: "session.list"
        case .enginePut: "engine.put"
        case .engineDelete: "engine.delete"
        case .engineList: "engine.list"
        case .stats, .sessionStats: "stats"
        case .health: "health"
        case .version: "version"
        case .events: "events"
        }
    }

    /// True for operations that may change the policy (counted as applied / refused in `stats`).
    public var isMutation: Bool { ControlProtocol.mutations.contains(op) }
}

/// A request line's id (echoed in the response) and what it asks for, or why it is refused.
public struct ParsedRequest: Sendable {
    public var id: JSONValue
    public var result: Result<ControlRequest, ControlError>
    /// The operation the line asked for, when it got that far (for counting refused changes).
    public var op: String?

    /// True when the line asked for a policy change (whether or not it was well-formed).
    public var isMutation: Bool { op.map(ControlProtocol.mutations.contains) ?? false }
}

public enum ControlProtocol {
    /// The largest page `session.list` returns.
    public static let maxListLimit = 1000
    public static let defaultListLimit = 100

    /// Operations that change the policy.
    public static let mutations: Set<String> = ["apply", "policy.put", "session.put", "session.delete", "engine.put", "engine.delete"]

    /// Every operation and the fields it accepts besides `id` and `op`.
    public static let operations: [String: Set<String>] = [
        "apply": ["changes"],
        "policy.put": ["policy", "replace"],
        "policy.get": [],
        "session.put": ["session", "end_marker"],
        "session.get": ["seid"],
        "session.delete": ["seid"],
        "session.list": ["cursor", "limit"],
        "engine.put": ["engine"],
        "engine.delete": ["engine_id"],
        "engine.list": [],
        "stats": ["session"],
        "health": [],
        "version": [],
        "events": [],
    ]

    /// One member of a request object: its key and its value's node in the parsed line.
    struct Member {
        var key: String
        var node: Int
    }

    /// Parses one line (without its newline).
    public static func parse(line: [UInt8]) -> ParsedRequest {
        var id: JSONValue = .null
        var op: String?
        do throws(ControlError) {
            let (document, members) = try parseObject(line)
            if let member = members.first(where: { $0.key == "op" }), case .string(let name) = document.value(member.node),
               operations[name] != nil {
                op = name
            }
            if let member = members.first(where: { $0.key == "id" }) {
                let value = document.value(member.node)
                switch value {
                case .string, .number, .null: id = value
                default: throw ControlError(ControlError.Code.invalidField, "id must be a string, a number or null", path: "id")
                }
            }
            return ParsedRequest(id: id, result: .success(try request(from: members, in: document)), op: op)
        } catch {
            return ParsedRequest(id: id, result: .failure(error), op: op)
        }
    }

    static func parseObject(_ line: [UInt8]) throws(ControlError) -> (JSONDocument, [Member]) {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
            throw ControlError(ControlError.Code.emptyRequest, "empty request line; expected a JSON object")
        }
        let document: JSONDocument
        do {
            document = try JSONDocument(line)
        } catch {
            let code = error.kind == .invalidUTF8 ? ControlError.Code.invalidUTF8 : ControlError.Code.syntaxError
            throw ControlError(code, error.message)
        }
        guard document.kind(JSONDocument.root) == .object else {
            let type = document.value(JSONDocument.root).typeName
            throw ControlError(ControlError.Code.notAnObject, "a request is a JSON object, not \(type == "array" ? "an" : "a") \(type)")
        }
        return (document, document.members(JSONDocument.root).map { Member(key: document.string($0.key), node: $0.value) })
    }

    static func request(from members: [Member], in document: JSONDocument) throws(ControlError) -> ControlRequest {
        guard let opMember = members.first(where: { $0.key == "op" }) else {
            throw ControlError(ControlError.Code.missingField, "missing field 'op'", path: "op")
        }
        guard case .string(let op) = document.value(opMember.node) else {
            throw ControlError(ControlError.Code.invalidField, "op must be a string", path: "op")
        }
        guard let allowed = operations[op] else {
            throw ControlError(ControlError.Code.unknownOperation,
                               "unknown operation '\(op)' (expected one of: \(operations.keys.sorted().joined(separator: ", ")))",
                               path: "op")
        }
        var fields: [String: Int] = [:]
        for member in members where member.key != "id" && member.key != "op" {
            guard allowed.contains(member.key) else {
                let expected = allowed.isEmpty ? "no other fields" : "one of: " + allowed.sorted().joined(separator: ", ")
                throw ControlError(ControlError.Code.unknownField, "unknown field '\(member.key)' for \(op) (expected \(expected))",
                                   path: member.key)
            }
            fields[member.key] = member.node
        }
        /// The node of a field that must be there and not null.
        func required(_ key: String) throws(ControlError) -> Int {
            guard let node = fields[key], document.kind(node) != .null else {
                throw ControlError(ControlError.Code.missingField, "\(op) needs '\(key)'", path: key)
            }
            return node
        }
        /// A simple field's value (nil when absent).
        func value(_ key: String) -> JSONValue? { fields[key].map(document.value) }

        switch op {
        case "apply":
            let changes = try required("changes")
            guard document.kind(changes) == .array else {
                throw ControlError(ControlError.Code.invalidField, "changes must be an array", path: "changes")
            }
            return .apply(try policyValue { () throws(PolicyError) in try document.policyChanges(at: "changes", node: changes) },
                          text: ChangesJSON(document.bytes[document.span(changes)]))
        case "policy.put":
            let node = try required("policy")
            let policy = try policyValue { () throws(PolicyError) in try document.policy(at: "policy", node: node) }
            var replace = false
            if let value = value("replace") {
                guard case .bool(let flag) = value else {
                    throw ControlError(ControlError.Code.invalidField, "replace must be true or false", path: "replace")
                }
                replace = flag
            }
            return .policyPut(policy, replace: replace)
        case "policy.get": return .policyGet
        case "session.put":
            let node = try required("session")
            var endMarker = false
            if let value = value("end_marker"), !value.isNull {
                guard case .bool(let flag) = value else {
                    throw ControlError(ControlError.Code.invalidField, "end_marker must be true or false", path: "end_marker")
                }
                endMarker = flag
            }
            return .sessionPut(try policyValue { () throws(PolicyError) in try document.policySession(at: "session", node: node) },
                               text: ChangesJSON(op: "put_session", argument: "session", value: document.bytes[document.span(node)]),
                               endMarker: endMarker)
        case "session.get": return .sessionGet(seid: try seid(document.value(try required("seid"))))
        case "session.delete": return .sessionDelete(seid: try seid(document.value(try required("seid"))))
        case "session.list":
            var after: UInt64?
            if let cursor = value("cursor"), !cursor.isNull {
                guard case .string(let text) = cursor, let value = UInt64(text) else {
                    throw ControlError(ControlError.Code.invalidField,
                                       "cursor must be a next_cursor string from an earlier session.list", path: "cursor")
                }
                after = value
            }
            var limit = defaultListLimit
            if let value = value("limit"), !value.isNull {
                guard let n = integer(value, as: Int.self), (1...maxListLimit).contains(n) else {
                    throw ControlError(ControlError.Code.outOfRange, "limit must be an integer in 1...\(maxListLimit)", path: "limit")
                }
                limit = n
            }
            return .sessionList(after: after, limit: limit)
        case "engine.put":
            let node = try required("engine")
            return .enginePut(try policyValue { () throws(PolicyError) in try document.policyEngine(at: "engine", node: node) },
                              text: ChangesJSON(op: "put_engine", argument: "engine", value: document.bytes[document.span(node)]))
        case "engine.delete":
            guard case .string(let id) = document.value(try required("engine_id")), !id.isEmpty else {
                throw ControlError(ControlError.Code.invalidField, "engine_id must be a non-empty string", path: "engine_id")
            }
            return .engineDelete(id: id)
        case "engine.list": return .engineList
        case "stats":
            if let node = fields["session"], document.kind(node) != .null {
                do {
                    return .sessionStats(seid: try seid(document.value(node)))
                } catch {
                    var error = error
                    error.path = "session"
                    error.message = error.message.replacingOccurrences(of: "seid must", with: "session must be a SEID:")
                    throw error
                }
            }
            return .stats
        case "health": return .health
        case "version": return .version
        case "events": return .events
        default:
            throw ControlError(ControlError.Code.unknownOperation, "unknown operation '\(op)'", path: "op")
        }
    }

    static func seid(_ value: JSONValue) throws(ControlError) -> UInt64 {
        guard case .number = value else {
            throw ControlError(ControlError.Code.invalidField, "seid must be an integer", path: "seid")
        }
        guard let seid = integer(value, as: UInt64.self) else {
            throw ControlError(ControlError.Code.outOfRange, "seid must be an integer in 0...\(UInt64.max)", path: "seid")
        }
        return seid
    }

    /// A JSON number that is an integer representable as `T` (no fraction, no exponent).
    static func integer<T: FixedWidthInteger>(_ value: JSONValue, as: T.Type) -> T? {
        guard case .number(let text) = value else { return nil }
        return T(text)
    }

    // MARK: responses

    public static func success(id: JSONValue, version: UInt64, _ fields: [(String, JSONValue)] = []) -> JSONValue {
        .object([("id", id), ("ok", .bool(true)), ("version", .int(version))] + fields)
    }

    public static func failure(id: JSONValue, _ error: ControlError) -> JSONValue {
        .object([("id", id), ("ok", .bool(false)), ("error", error.json)])
    }
}
