import Foundation
import Yams

/// Decoding and encoding of policy documents (YAML or JSON) with decoding errors turned into
/// `PolicyError`s that name the offending field. The control socket decodes its `PolicyChange`s
/// through `PolicyCoding.decode(_:json:)` to report the same codes and paths.
public enum PolicyCoding {
    /// Decodes any model value from JSON bytes. `pathPrefix` is put in front of error paths
    /// (e.g. `params` for a value nested in a request).
    public static func decode<T: Decodable>(_ type: T.Type, json: Data, pathPrefix: String = "") throws(PolicyError) -> T {
        try withPrefix(pathPrefix) { () throws(PolicyError) -> T in
            try checkText(json)
            do {
                return try JSONDecoder().decode(T.self, from: json)
            } catch {
                throw policyError(error)
            }
        }
    }

    /// Decodes any model value from YAML text (JSON is YAML too).
    public static func decode<T: Decodable>(_ type: T.Type, yaml: String, pathPrefix: String = "") throws(PolicyError) -> T {
        try withPrefix(pathPrefix) { () throws(PolicyError) -> T in
            if yaml.unicodeScalars.allSatisfy({ $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" }) {
                throw PolicyError(code: PolicyError.Code.emptyDocument, message: "the document is empty", path: "")
            }
            let node: Node?
            do {
                node = try Yams.compose(yaml: yaml)
            } catch {
                throw policyError(error)
            }
            // Only comments, or `---` with nothing after it: an empty plain scalar.
            let isEmpty = if case .scalar(let scalar)? = node { scalar.string.isEmpty && scalar.style == .plain } else { node == nil }
            guard let node, !isEmpty else {
                throw PolicyError(code: PolicyError.Code.emptyDocument, message: "the document is empty", path: "")
            }
            do {
                return try YAMLDecoder().decode(T.self, from: node)
            } catch {
                throw policyError(error)
            }
        }
    }

    /// Compact JSON with sorted keys (stable output for persistence and diffs).
    public static func json<T: Encodable>(_ value: T, pretty: Bool = false) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        // The model holds only strings, integers, lists and objects: encoding cannot fail.
        return try! encoder.encode(value)
    }

    public static func yaml<T: Encodable>(_ value: T) -> String {
        // As above: nothing in the model can fail to encode.
        try! YAMLEncoder().encode(value)
    }

    private static func withPrefix<T>(_ prefix: String, _ body: () throws(PolicyError) -> T) throws(PolicyError) -> T {
        do {
            return try body()
        } catch {
            guard !prefix.isEmpty else { throw error }
            var error = error
            error.path = error.path.isEmpty ? prefix : error.path.hasPrefix("[") ? prefix + error.path : prefix + "." + error.path
            throw error
        }
    }

    /// Empty (or only white space) documents and invalid UTF-8 are told apart from syntax errors.
    static func checkText(_ data: Data) throws(PolicyError) {
        var offset = 0
        var iterator = data.makeIterator()
        var decoder = UTF8()
        var blank = true
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                if !(scalar == " " || scalar == "\n" || scalar == "\r" || scalar == "\t") { blank = false }
                offset += UTF8.width(scalar)
            case .emptyInput:
                break loop
            case .error:
                throw PolicyError(code: PolicyError.Code.invalidUTF8,
                                  message: "the document is not valid UTF-8 (at byte \(offset))", path: "")
            }
        }
        if blank {
            throw PolicyError(code: PolicyError.Code.emptyDocument, message: "the document is empty", path: "")
        }
    }

    /// A `DecodingError` (or a Yams or model error) as a `PolicyError`.
    static func policyError(_ error: any Error) -> PolicyError {
        if let error = error as? PolicyError { return error }
        if let error = error as? YamlError { return yamlError(error) }
        guard let error = error as? DecodingError else {
            return PolicyError(code: PolicyError.Code.syntaxError, message: "\(error)", path: "")
        }
        switch error {
        case .keyNotFound(let key, let context):
            return PolicyError(code: PolicyError.Code.missingField, message: "missing required field '\(key.stringValue)'",
                               path: renderPath(context.codingPath + [key]))
        case .valueNotFound(let type, let context):
            return PolicyError(code: PolicyError.Code.missingField,
                               message: "expected \(describe(type)), found null",
                               path: renderPath(context.codingPath))
        case .typeMismatch(let type, let context):
            return PolicyError(code: PolicyError.Code.invalidField, message: "expected \(describe(type))",
                               path: renderPath(context.codingPath))
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                if let underlying = context.underlyingError as? YamlError { return yamlError(underlying) }
                var message = context.debugDescription
                if let underlying = context.underlyingError {
                    let detail = "\(underlying)"
                    if !detail.isEmpty { message += ": " + detail }
                }
                return PolicyError(code: PolicyError.Code.syntaxError, message: message, path: "")
            }
            return PolicyError(code: PolicyError.Code.invalidField, message: context.debugDescription,
                               path: renderPath(context.codingPath))
        @unknown default:
            return PolicyError(code: PolicyError.Code.invalidField, message: "\(error)", path: "")
        }
    }

    private static func yamlError(_ error: YamlError) -> PolicyError {
        var message = "\(error)"
        // Yams repeats the document after the message; keep the first line only.
        if let newline = message.firstIndex(of: "\n") { message = String(message[..<newline]) }
        return PolicyError(code: PolicyError.Code.syntaxError, message: message, path: "")
    }

    private static func describe(_ type: Any.Type) -> String {
        let name = "\(type)"
        if name == "String" { return "a string" }
        if name == "Mapping" { return "an object" }
        if name == "Sequence" { return "a list" }
        if name == "Scalar" { return "a single value" }
        if name.hasPrefix("Array") || name.hasPrefix("UnkeyedDecodingContainer") { return "a list" }
        if name.hasPrefix("Dictionary") || name.hasPrefix("KeyedDecodingContainer") { return "an object" }
        if name.hasPrefix("UInt") || name.hasPrefix("Int") { return "an integer" }
        if name == "Bool" { return "true or false" }
        if name == "Double" || name == "Float" { return "a number" }
        return name
    }
}

extension Policy {
    public static func load(yaml: String) throws(PolicyError) -> Policy {
        try PolicyCoding.decode(Policy.self, yaml: yaml)
    }

    public static func load(json: Data) throws(PolicyError) -> Policy {
        try PolicyCoding.decode(Policy.self, json: json)
    }

    /// Reads a `.json`, `.yaml` or `.yml` file (by extension).
    public static func load(path: String) throws(PolicyError) -> Policy {
        let lower = path.lowercased()
        let isJSON = lower.hasSuffix(".json")
        guard isJSON || lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") else {
            throw PolicyError(code: PolicyError.Code.invalidField,
                              message: "\(path): the file name must end in .yaml, .yml or .json", path: "")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw PolicyError(code: PolicyError.Code.ioError, message: "\(path): cannot be read (\(error.localizedDescription))",
                              path: "")
        }
        if isJSON { return try load(json: data) }
        try PolicyCoding.checkText(data)
        return try load(yaml: String(decoding: data, as: UTF8.self))
    }

    /// The policy as JSON (sorted keys; pretty when asked), e.g. to persist it.
    public func jsonData(pretty: Bool = true) -> Data { PolicyCoding.json(self, pretty: pretty) }

    public func yamlText() -> String { PolicyCoding.yaml(self) }
}
