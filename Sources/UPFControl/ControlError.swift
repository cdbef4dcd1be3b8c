import UPFPolicy

/// An error the control protocol reports to a client: `{"code":…,"message":…,"path":…}`.
/// Policy errors keep their codes and paths (prefixed with where they sit in the request).
public struct ControlError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var path: String

    public init(_ code: String, _ message: String, path: String = "") {
        self.code = code
        self.message = message
        self.path = path
    }

    public init(_ error: PolicyError, under prefix: String = "") {
        self.init(error.code, error.message, path: joinPath(prefix, error.path))
    }

    public var description: String { path.isEmpty ? "\(code): \(message)" : "\(code) at \(path): \(message)" }

    public var json: JSONValue {
        .object([("code", .string(code)), ("message", .string(message)), ("path", .string(path))])
    }

    /// Codes of the protocol layer; policy codes (`PolicyError.Code`) are used as they are.
    public enum Code {
        public static let emptyRequest = "empty_request"
        public static let invalidUTF8 = PolicyError.Code.invalidUTF8
        public static let syntaxError = PolicyError.Code.syntaxError
        public static let notAnObject = "not_an_object"
        public static let missingField = PolicyError.Code.missingField
        public static let invalidField = PolicyError.Code.invalidField
        public static let unknownField = PolicyError.Code.unknownField
        public static let unknownOperation = PolicyError.Code.unknownOperation
        public static let outOfRange = PolicyError.Code.outOfRange
        public static let notFound = PolicyError.Code.notFound
        public static let tableFull = PolicyError.Code.tableFull
        public static let lineTooLong = "line_too_long"
        public static let forbidden = "forbidden"
        public static let idleTimeout = "idle_timeout"
        public static let tooManyClients = "too_many_clients"
        public static let persistFailed = "persist_failed"
        public static let datapathFailed = "datapath_failed"
        public static let shuttingDown = "shutting_down"
        public static let internalError = "internal_error"
    }
}

/// `changes` + `[2].session.n3` → `changes[2].session.n3`.
func joinPath(_ prefix: String, _ rest: String) -> String {
    if prefix.isEmpty { return rest }
    if rest.isEmpty { return prefix }
    return rest.hasPrefix("[") ? prefix + rest : prefix + "." + rest
}

/// Reads a policy value (a session, an engine, a list of changes…) out of part of a request;
/// its errors keep their codes and paths (`changes[2].session.n3.teid`).
func policyValue<T>(_ read: () throws(PolicyError) -> T) throws(ControlError) -> T {
    do {
        return try read()
    } catch {
        throw ControlError(error)
    }
}
