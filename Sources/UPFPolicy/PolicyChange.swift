/// One incremental update, coded `{"op":"put_session","session":{…}}`, `{"op":"delete_session","seid":7}`,
/// `{"op":"put_engine","engine":{…}}`, `{"op":"delete_engine","id":"llm"}`,
/// `{"op":"put_application","application":{…}}`, `{"op":"delete_application","id":"chat"}`.
/// A put creates or replaces (by SEID / id); putting what is already there is a no-op.
public enum PolicyChange: Codable, Sendable, Equatable {
    case putSession(Session)
    case deleteSession(seid: UInt64)
    case putEngine(Engine)
    case deleteEngine(id: String)
    case putApplication(Application)
    case deleteApplication(id: String)

    enum CodingKeys: String, CodingKey, CaseIterable {
        case op, session, seid, engine, id, application
    }

    /// The `op` of the file format.
    public var op: String {
        switch self {
        case .putSession: "put_session"
        case .deleteSession: "delete_session"
        case .putEngine: "put_engine"
        case .deleteEngine: "delete_engine"
        case .putApplication: "put_application"
        case .deleteApplication: "delete_application"
        }
    }

    public static let operations = ["put_session", "delete_session", "put_engine", "delete_engine",
                                    "put_application", "delete_application"]

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let op = try c.decode(String.self, forKey: .op)
        let argument: CodingKeys
        switch op {
        case "put_session": argument = .session
        case "delete_session": argument = .seid
        case "put_engine": argument = .engine
        case "put_application": argument = .application
        case "delete_engine", "delete_application": argument = .id
        default:
            throw PolicyError(code: PolicyError.Code.unknownOperation,
                              message: "unknown op '\(op)' (expected one of: \(Self.operations.joined(separator: ", ")))",
                              path: renderPath(c.codingPath + [CodingKeys.op]))
        }
        try rejectUnknownKeys(decoder, known: [CodingKeys.op.stringValue, argument.stringValue])
        switch op {
        case "put_session": self = .putSession(try c.decode(Session.self, forKey: .session))
        case "delete_session": self = .deleteSession(seid: try c.integer(UInt64.self, .seid))
        case "put_engine": self = .putEngine(try c.decode(Engine.self, forKey: .engine))
        case "delete_engine": self = .deleteEngine(id: try c.decode(String.self, forKey: .id))
        case "put_application": self = .putApplication(try c.decode(Application.self, forKey: .application))
        default: self = .deleteApplication(id: try c.decode(String.self, forKey: .id))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(op, forKey: .op)
        switch self {
        case .putSession(let session): try c.encode(session, forKey: .session)
        case .deleteSession(let seid): try c.encode(seid, forKey: .seid)
        case .putEngine(let engine): try c.encode(engine, forKey: .engine)
        case .deleteEngine(let id): try c.encode(id, forKey: .id)
        case .putApplication(let application): try c.encode(application, forKey: .application)
        case .deleteApplication(let id): try c.encode(id, forKey: .id)
        }
    }
}
