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

/// Throws `unknown_field` for the first key of the object at `decoder` that is not in `known`.
/// Keys are reported in sorted order so the error is the same whatever the decoder's key order.
func rejectUnknownKeys(_ decoder: any Decoder, known: some Sequence<String>) throws {
    let container = try decoder.container(keyedBy: AnyKey.self)
    let knownSet = Set(known)
    let unknown = container.allKeys.map(\.stringValue).filter { !knownSet.contains($0) }.sorted()
    if let first = unknown.first {
        let expected = knownSet.sorted().joined(separator: ", ")
        throw PolicyError(code: PolicyError.Code.unknownField,
                          message: "unknown field '\(first)' (expected one of: \(expected))",
                          path: renderPath(decoder.codingPath + [AnyKey(stringValue: first)]))
    }
}

func rejectUnknownKeys<K: CodingKey & CaseIterable>(_ decoder: any Decoder, _ keys: K.Type) throws {
    try rejectUnknownKeys(decoder, known: K.allCases.map(\.stringValue))
}

/// Integers: decoded as `T`, and when that fails, told apart as out of range (a number that does
/// not fit, e.g. -1 or 70000 for a port) or not a number at all.
func decodeInteger<T: FixedWidthInteger & Decodable>(_ type: T.Type, path: [any CodingKey],
                                                    _ attempt: (any Decodable.Type) throws -> any Decodable) throws -> T {
    do {
        return try attempt(T.self) as! T
    } catch {
        // Foundation's JSONDecoder throws an internal error (not a DecodingError) for a number
        // that does not fit, so anything but a missing value is looked at again here.
        if let error = error as? DecodingError {
            if case .keyNotFound = error { throw error }
            if case .valueNotFound = error { throw error }
        }
        if error is PolicyError { throw error }
        let range = "\(T.min)...\(T.max)"
        if let wide = try? attempt(Int64.self) as? Int64 {
            throw PolicyError(code: PolicyError.Code.outOfRange, message: "\(wide) is out of range \(range)",
                              path: renderPath(path))
        }
        if let wide = try? attempt(UInt64.self) as? UInt64 {
            throw PolicyError(code: PolicyError.Code.outOfRange, message: "\(wide) is out of range \(range)",
                              path: renderPath(path))
        }
        if let real = try? attempt(Double.self) as? Double {
            let what = real.rounded() == real ? "\(real)" : "\(real) is not an integer;"
            throw PolicyError(code: PolicyError.Code.outOfRange,
                              message: real.rounded() == real ? "\(what) is out of range \(range)" : "\(what) expected an integer in \(range)",
                              path: renderPath(path))
        }
        throw PolicyError(code: PolicyError.Code.invalidField, message: "expected an integer in \(range)",
                          path: renderPath(path))
    }
}

extension KeyedDecodingContainer {
    func integer<T: FixedWidthInteger & Decodable>(_ type: T.Type, _ key: Key) throws -> T {
        try decodeInteger(T.self, path: codingPath + [key]) { try self.decode($0, forKey: key) }
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
        try decodeInteger(T.self, path: codingPath) { try self.decode($0) }
    }
}

extension KeyedEncodingContainer {
    /// Omits empty lists so encoded documents stay short.
    mutating func encodeList<T: Encodable>(_ list: [T], forKey key: Key) throws {
        if !list.isEmpty { try encode(list, forKey: key) }
    }
}
