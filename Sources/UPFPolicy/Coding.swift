/// Shared decoding helpers: every model type refuses unknown fields, and integers that do not fit
/// their type are reported as `out_of_range` instead of a generic decoding failure.

/// A coding key for any string, used to list the keys a document actually holds.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue; self.intValue = nil }
    init(intValue: Int) { self.stringValue = String(intValue); self.intValue = intValue }
}

/// `sessions[3].rules[0].precedence` from a coding path.
func renderPath(_ path: [any CodingKey]) -> String {
    var out = ""
    for key in path {
        if let index = key.intValue, key.stringValue == String(index) || key.stringValue.hasPrefix("Index ") {
            out += "[\(index)]"
        } else {
            if !out.isEmpty { out += "." }
            out += key.stringValue
        }
    }
    return out
}

/// Throws `unknown_field` for the first key (in sorted order, so the error is the same whatever
/// the decoder's key order) of the object at `decoder` for which `isKnown` is false. `known`
/// lists the expected keys for the message; it is only asked for when there is an error.
func rejectUnknownKeys(_ decoder: any Decoder, isKnown: (String) -> Bool, known: () -> [String]) throws {
    let container = try decoder.container(keyedBy: AnyKey.self)
    var first: String?
    for key in container.allKeys where !isKnown(key.stringValue) {
        if first.map({ key.stringValue < $0 }) ?? true { first = key.stringValue }
    }
    if let first {
        let expected = Set(known()).sorted().joined(separator: ", ")
        throw PolicyError(code: PolicyError.Code.unknownField,
                          message: "unknown field '\(first)' (expected one of: \(expected))",
                          path: renderPath(decoder.codingPath + [AnyKey(stringValue: first)]))
    }
}

func rejectUnknownKeys(_ decoder: any Decoder, known: [String]) throws {
    try rejectUnknownKeys(decoder, isKnown: known.contains, known: { known })
}

func rejectUnknownKeys<K: CodingKey & CaseIterable>(_ decoder: any Decoder, _ keys: K.Type) throws {
    try rejectUnknownKeys(decoder, isKnown: { K(stringValue: $0) != nil }, known: { K.allCases.map(\.stringValue) })
}

/// Integers are decoded as `T`; when that fails, this tells apart a number out of range (one that
/// does not fit, e.g. -1 or 70000 for a port) from a value that is not a number at all. `attempt`
/// decodes the value again as the type it is given. Only called on the error path.
func integerError<T: FixedWidthInteger>(_ type: T.Type, _ error: any Error, path: [any CodingKey],
                                        _ attempt: (any Decodable.Type) throws -> any Decodable) -> any Error {
    // Foundation's JSONDecoder throws an internal error (not a DecodingError) for a number
    // that does not fit, so anything but a missing value is looked at again here.
    if let error = error as? DecodingError {
        if case .keyNotFound = error { return error }
        if case .valueNotFound = error { return error }
    }
    if error is PolicyError { return error }
    let range = "\(T.min)...\(T.max)"
    if let wide = try? attempt(Int64.self) as? Int64 {
        return PolicyError(code: PolicyError.Code.outOfRange, message: "\(wide) is out of range \(range)",
                           path: renderPath(path))
    }
    if let wide = try? attempt(UInt64.self) as? UInt64 {
        return PolicyError(code: PolicyError.Code.outOfRange, message: "\(wide) is out of range \(range)",
                           path: renderPath(path))
    }
    if let real = try? attempt(Double.self) as? Double {
        let what = real.rounded() == real ? "\(real)" : "\(real) is not an integer;"
        return PolicyError(code: PolicyError.Code.outOfRange,
                           message: real.rounded() == real ? "\(what) is out of range \(range)" : "\(what) expected an integer in \(range)",
                           path: renderPath(path))
    }
    return PolicyError(code: PolicyError.Code.invalidField, message: "expected an integer in \(range)",
                       path: renderPath(path))
}

extension KeyedDecodingContainer {
    /// The value of `key` as `T`, with the out-of-range diagnostics of `integerError`.
    func integer<T: FixedWidthInteger & Decodable>(_ type: T.Type, _ key: Key) throws -> T {
        do {
            return try decode(T.self, forKey: key)
        } catch {
            throw integerError(T.self, error, path: codingPath + [key]) { try self.decode($0, forKey: key) }
        }
    }

    func integerIfPresent<T: FixedWidthInteger & Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        return try integer(T.self, key)
    }

    /// A list that defaults to empty when the key is absent or null.
    func list<T: Decodable>(_ type: T.Type, _ key: Key) throws -> [T] {
        try decodeIfPresent([T].self, forKey: key) ?? []
    }
}

extension SingleValueDecodingContainer {
    func integer<T: FixedWidthInteger & Decodable>(_ type: T.Type) throws -> T {
        do {
            return try decode(T.self)
        } catch {
            throw integerError(T.self, error, path: codingPath) { try self.decode($0) }
        }
    }
}

extension KeyedEncodingContainer {
    /// Omits empty lists so encoded documents stay short.
    mutating func encodeList<T: Encodable>(_ list: [T], forKey key: Key) throws {
        if !list.isEmpty { try encode(list, forKey: key) }
    }
}
