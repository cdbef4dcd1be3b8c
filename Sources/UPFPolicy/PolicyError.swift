// UPFPolicy: the policy model of upfd (PFCP names), its loading and validation. See docs/policy.md.

/// Why a policy, a document or a change was refused. `code` is stable snake_case (see
/// docs/policy.md for the list); `path` names the offending field the way the document spells it
/// (`sessions[3].rules[0].precedence`, `changes[2].session.n3.teid`; empty for the whole document).
public struct PolicyError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var path: String

    public init(code: String, message: String, path: String) {
        self.code = code
        self.message = message
        self.path = path
    }

    public var description: String { path.isEmpty ? "\(code): \(message)" : "\(code) at \(path): \(message)" }
}

extension PolicyError {
    /// The stable error codes.
    public enum Code {
        public static let emptyDocument = "empty_document"
        public static let invalidUTF8 = "invalid_utf8"
        public static let syntaxError = "syntax_error"
        public static let invalidField = "invalid_field"
        public static let missingField = "missing_field"
        public static let unknownField = "unknown_field"
        public static let unknownOperation = "unknown_operation"
        public static let outOfRange = "out_of_range"
        public static let invalidAddress = "invalid_address"
        public static let invalidPrefix = "invalid_prefix"
        public static let invalidRange = "invalid_range"
        public static let invalidFilter = "invalid_filter"
        public static let danglingReference = "dangling_reference"
        public static let duplicateID = "duplicate_id"
        public static let collision = "collision"
        public static let tableFull = "table_full"
        public static let notFound = "not_found"
        public static let inUse = "in_use"
        public static let ioError = "io_error"
    }
}
