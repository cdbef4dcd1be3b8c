// The control protocol: one JSON object per line in each direction.
//
//   request   {"id":…, "op":"…", …op fields}
//   response  {"id":…, "ok":true, "version":N, …}  or  {"id":…, "ok":false, "error":{code,message,path}}
//
// Parsing is strict (unknown fields and wrong types are errors with a path) and happens on the
// connection's I/O thread, so the thread that owns the policy only ever sees well-formed requests.
// docs/control-protocol.md is the reference for clients.

import UPFPolicy

/// A well-formed request, ready for the policy owner.
public enum ControlRequest: Sendable, Equatable {
    /// A transactional batch of changes.
    case apply([PolicyChange])
    /// Puts every engine, application and session of `policy`; with `replace`, also deletes those
    /// it does not name. One transaction.
    case policyPut(Policy, replace: Bool)
    case policyGet
    case sessionPut(Session)
    case sessionGet(seid: UInt64)
    case sessionDelete(seid: UInt64)
    /// Sessions in SEID order, after `cursor` (exclusive).
    case sessionList(after: UInt64?, limit: Int)
    case enginePut(Engine)
    case engineDelete(id: String)
    case engineList
    case stats
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
        case .stats: "stats"
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
        "session.put": ["session"],
        "session.get": ["seid"],
        "session.delete": ["seid"],
        "session.list": ["cursor", "limit"],
        "engine.put": ["engine"],
        "engine.delete": ["engine_id"],
        "engine.list": [],
        "stats": [],
        "health": [],
        "version": [],
        "events": [],
    ]

    /// Parses one line (without its newline).
    public static func parse(line: [UInt8]) -> ParsedRequest {
        var id: JSONValue = .null
        var op: String?
        do throws(ControlError) {
            let object = try parseObject(line)
            if case .string(let name)? = object.first(where: { $0.0 == "op" })?.1, operations[name] != nil { op = name }
            if let value = object.first(where: { $0.0 == "id" })?.1 {
                switch value {
                case .string, .number, .null: id = value
                default: throw ControlError(ControlError.Code.invalidField, "id must be a string, a number or null", path: "id")
                }
            }
            return ParsedRequest(id: id, result: .success(try request(from: object)), op: op)
        } catch {
            return ParsedRequest(id: id, result: .failure(error), op: op)
        }
    }

    static func parseObject(_ line: [UInt8]) throws(ControlError) -> [(String, JSONValue)] {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
            throw ControlError(ControlError.Code.emptyRequest, "empty request line; expected a JSON object")
        }
        let value: JSONValue
        do {
            value = try JSONValue.parse(line)
        } catch {
            let code = error.kind == .invalidUTF8 ? ControlError.Code.invalidUTF8 : ControlError.Code.syntaxError
            throw ControlError(code, error.message)
        }
        guard case .object(let members) = value else {
            throw ControlError(ControlError.Code.notAnObject, "a request is a JSON object, not \(value.typeName == "array" ? "an" : "a") \(value.typeName)")
        }
        return members
    }

    static func request(from members: [(String, JSONValue)]) throws(ControlError) -> ControlRequest {
        guard let opValue = members.first(where: { $0.0 == "op" })?.1 else {
            throw ControlError(ControlError.Code.missingField, "missing field 'op'", path: "op")
        }
        guard case .string(let op) = opValue else {
            throw ControlError(ControlError.Code.invalidField, "op must be a string", path: "op")
        }
        guard let allowed = operations[op] else {
            throw ControlError(ControlError.Code.unknownOperation,
                               "unknown operation '\(op)' (expected one of: \(operations.keys.sorted().joined(separator: ", ")))",
                               path: "op")
        }
        var fields: [String: JSONValue] = [:]
        for (key, value) in members where key != "id" && key != "op" {
            guard allowed.contains(key) else {
                let expected = allowed.isEmpty ? "no other fields" : "one of: " + allowed.sorted().joined(separator: ", ")
                throw ControlError(ControlError.Code.unknownField, "unknown field '\(key)' for \(op) (expected \(expected))", path: key)
            }
            fields[key] = value
        }
        func required(_ key: String) throws(ControlError) -> JSONValue {
            guard let value = fields[key], value != .null else {
                throw ControlError(ControlError.Code.missingField, "\(op) needs '\(key)'", path: key)
            }
            return value
        }

        switch op {
        case "apply":
            let changes = try required("changes")
            guard case .array = changes else {
                throw ControlError(ControlError.Code.invalidField, "changes must be an array", path: "changes")
            }
            return .apply(try decodePolicyValue([PolicyChange].self, from: changes, at: "changes"))
        case "policy.put":
            let policy = try decodePolicyValue(Policy.self, from: try required("policy"), at: "policy")
            var replace = false
            if let value = fields["replace"] {
                guard case .bool(let flag) = value else {
                    throw ControlError(ControlError.Code.invalidField, "replace must be true or false", path: "replace")
                }
                replace = flag
            }
            return .policyPut(policy, replace: replace)
        case "policy.get": return .policyGet
        case "session.put":
            return .sessionPut(try decodePolicyValue(Session.self, from: try required("session"), at: "session"))
        case "session.get": return .sessionGet(seid: try seid(try required("seid")))
        case "session.delete": return .sessionDelete(seid: try seid(try required("seid")))
        case "session.list":
            var after: UInt64?
            if let cursor = fields["cursor"], cursor != .null {
                guard case .string(let text) = cursor, let value = UInt64(text) else {
                    throw ControlError(ControlError.Code.invalidField,
                                       "cursor must be a next_cursor string from an earlier session.list", path: "cursor")
                }
                after = value
            }
            var limit = defaultListLimit
            if let value = fields["limit"], value != .null {
                guard let n = integer(value, as: Int.self), (1...maxListLimit).contains(n) else {
                    throw ControlError(ControlError.Code.outOfRange, "limit must be an integer in 1...\(maxListLimit)", path: "limit")
                }
                limit = n
            }
            return .sessionList(after: after, limit: limit)
        case "engine.put":
            return .enginePut(try decodePolicyValue(Engine.self, from: try required("engine"), at: "engine"))
        case "engine.delete":
            guard case .string(let id) = try required("engine_id"), !id.isEmpty else {
                throw ControlError(ControlError.Code.invalidField, "engine_id must be a non-empty string", path: "engine_id")
            }
            return .engineDelete(id: id)
        case "engine.list": return .engineList
        case "stats": return .stats
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
