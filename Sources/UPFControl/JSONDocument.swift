// A JSON text checked and indexed in one pass, without building a tree: how request lines,
// journal lines and the snapshot are read.
//
// Why not a `JSONValue` tree: a batch of 1000 sessions is ~650 KB of JSON and ~100 000 values. As
// a tree every key and string became a `String`, every object and array an allocation, and
// freeing the tree cost as much as building it — more than everything else a session costs. Here
// a document is its bytes plus one array of 16-byte nodes in document order; keys are compared as
// bytes, and strings and numbers are converted only when a reader asks for them.
//
// Strictness (the same as `JSONValue.parse`, which is built on this): UTF-8 is checked first,
// nesting is bounded (a line of a million `[` must not exhaust the stack), duplicate keys are
// refused (two readers could otherwise disagree on which one wins), numbers are checked against
// the JSON grammar and kept as their text until read (a 64-bit SEID never goes through a Double).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct JSONDocument: Sendable {
    enum Kind: UInt8, Sendable {
        case null, `false`, `true`, number, string, array, object
    }

    /// One value. Its text is `bytes[start..<end]` (strings with their quotes); `next` is the
    /// index of the node after the value and everything inside it. An array's elements, and an
    /// object's keys and values (alternating), are the nodes from its index + 1 up to `next`.
    struct Node: Sendable {
        var kind: Kind
        /// Strings only: the text holds a backslash escape.
        var escaped: Bool
        var start: Int32
        var end: Int32
        var next: Int32
    }

    let bytes: [UInt8]
    private(set) var nodes: [Node]

    /// The root value is node 0.
    static let root = 0

    /// Checks and indexes exactly one JSON value (surrounding whitespace allowed).
    init(_ bytes: [UInt8], maxDepth: Int = JSONValue.defaultMaxDepth) throws(JSONSyntaxError) {
        self.bytes = bytes
        // Offsets are stored as Int32 (nodes of 16 bytes); lines are bounded far below this.
        guard bytes.count <= Int(Int32.max) else {
            throw JSONSyntaxError(kind: .syntax("a JSON text of 2 GiB or more"), offset: 0)
        }
        nodes = try bytes.withUnsafeBufferPointer { (buffer) throws(JSONSyntaxError) -> [Node] in
            if let bad = Self.firstInvalidUTF8(buffer) {
                throw JSONSyntaxError(kind: .invalidUTF8, offset: bad)
            }
            // About one value per 6 bytes of a policy document.
            var parser = Parser(bytes: buffer, maxDepth: maxDepth, nodes: NodeBuffer(capacity: buffer.count / 6 + 4))
            defer { parser.nodes.deallocate() }
            try parser.parseDocument()
            return parser.nodes.array()
        }
    }

    init(_ text: String, maxDepth: Int = JSONValue.defaultMaxDepth) throws(JSONSyntaxError) {
        try self.init(Array(text.utf8), maxDepth: maxDepth)
    }

    // MARK: reading

    func kind(_ node: Int) -> Kind { nodes[node].kind }

    /// Where the value's text lies in `bytes`.
    func span(_ node: Int) -> Range<Int> { Int(nodes[node].start)..<Int(nodes[node].end) }

    /// The members of an object as (key node, value node) pairs, in document order.
    func members(_ object: Int) -> Members { Members(nodes: nodes, object: object) }

    struct Members: Sequence, IteratorProtocol {
        let nodes: [Node]
        let end: Int
        var key: Int

        init(nodes: [Node], object: Int) {
            self.nodes = nodes
            end = Int(nodes[object].next)
            key = object + 1
        }

        mutating func next() -> (key: Int, value: Int)? {
            guard key < end else { return nil }
            let member = (key: key, value: key + 1)
            key = Int(nodes[key + 1].next)
            return member
        }
    }

    /// The elements of an array, in order.
    func elements(_ array: Int) -> Elements { Elements(nodes: nodes, array: array) }

    struct Elements: Sequence, IteratorProtocol {
        let nodes: [Node]
        let end: Int
        var element: Int

        init(nodes: [Node], array: Int) {
            self.nodes = nodes
            end = Int(nodes[array].next)
            element = array + 1
        }

        mutating func next() -> Int? {
            guard element < end else { return nil }
            defer { element = Int(nodes[element].next) }
            return element
        }

        /// The number of elements (a walk over them, without reading their values): lets a
        /// reader reserve its array once instead of growing it one doubling at a time.
        var count: Int {
            var count = 0, node = element
            while node < end { count += 1; node = Int(nodes[node].next) }
            return count
        }
    }

    /// True when the string at `node` is `name` (a key, usually), compared as bytes.
    func string(_ node: Int, equals name: StaticString) -> Bool {
        let n = nodes[node]
        guard !n.escaped else { return string(node) == name.description }
        let count = Int(n.end - n.start) - 2
        guard count == name.utf8CodeUnitCount else { return false }
        return bytes.withUnsafeBufferPointer { buffer in
            memcmp(buffer.baseAddress! + Int(n.start) + 1, name.utf8Start, count) == 0
        }
    }

    /// Whether the string at `node` is one of `names`.
    func string(_ node: Int, isOneOf names: UnsafeBufferPointer<StaticString>) -> Bool { string(node, indexIn: names) != nil }

    /// The index in `names` of the string at `node`, or nil: one read of the node and the bytes
    /// for all of them (the way an object's keys are matched against the ones a reader knows).
    func string(_ node: Int, indexIn names: UnsafeBufferPointer<StaticString>) -> Int? {
        let n = nodes[node]
        guard !n.escaped else {
            let text = string(node)
            return names.firstIndex { text == $0.description }
        }
        let count = Int(n.end - n.start) - 2
        return bytes.withUnsafeBufferPointer { buffer in
            let text = buffer.baseAddress! + Int(n.start) + 1
            for i in names.indices where names[i].utf8CodeUnitCount == count && memcmp(text, names[i].utf8Start, count) == 0 {
                return i
            }
            return nil
        }
    }

    /// Whether the string at `node` is `text` (bytes compared unless the node has an escape).
    func string(_ node: Int, equalsText text: String) -> Bool {
        let n = nodes[node]
        guard !n.escaped else { return string(node) == text }
        let count = Int(n.end - n.start) - 2
        var text = text
        return text.withUTF8 { utf8 in
            guard utf8.count == count else { return false }
            guard count > 0 else { return true }
            return bytes.withUnsafeBufferPointer { buffer in
                memcmp(buffer.baseAddress! + Int(n.start) + 1, utf8.baseAddress!, count) == 0
            }
        }
    }

    /// The string at `node`, unescaped.
    func string(_ node: Int) -> String {
        let n = nodes[node]
        let content = Int(n.start) + 1..<Int(n.end) - 1
        return bytes.withUnsafeBufferPointer { buffer in
            n.escaped ? Self.unescape(UnsafeBufferPointer(rebasing: buffer[content]))
                      : String(decoding: UnsafeBufferPointer(rebasing: buffer[content]), as: UTF8.self)
        }
    }

    /// The text of the number at `node`.
    func numberText(_ node: Int) -> String {
        bytes.withUnsafeBufferPointer { buffer in
            String(decoding: UnsafeBufferPointer(rebasing: buffer[span(node)]), as: UTF8.self)
        }
    }

    /// The number at `node` when it is a plain integer literal (digits, maybe a minus) that fits
    /// `T`: the common case, read from the bytes without making a string. nil otherwise.
    func plainInteger<T: FixedWidthInteger>(_ node: Int, as: T.Type = T.self) -> T? {
        let n = nodes[node]
        var i = Int(n.start)
        let end = Int(n.end)
        let negative = bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        guard end - i <= 20 else { return nil }
        var value: T = 0
        while i < end {
            let digit = bytes[i] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }  // a fraction or an exponent
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = negative ? times10.subtractingReportingOverflow(T(digit)) : times10.addingReportingOverflow(T(digit))
            guard !o1, !o2 else { return nil }
            value = sum
            i += 1
        }
        return value
    }

    /// The value at `node` as a tree (for the small parts of a request: its id, its simple fields).
    func value(_ node: Int) -> JSONValue {
        switch nodes[node].kind {
        case .null: return .null
        case .false: return .bool(false)
        case .true: return .bool(true)
        case .number: return .number(numberText(node))
        case .string: return .string(string(node))
        case .array: return .array(elements(node).map(value))
        case .object: return .object(members(node).map { (string($0.key), value($0.value)) })
        }
    }

    /// The content of a string (between its quotes) with its escapes decoded; the parser checked them.
    static func unescape(_ content: UnsafeBufferPointer<UInt8>) -> String {
        var text: [UInt8] = []
        text.reserveCapacity(content.count)
        var i = 0
        func hex4() -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                let c = content[i]
                value = value << 4 | UInt32(c <= UInt8(ascii: "9") ? c - 0x30 : (c | 0x20) - 0x61 + 10)
                i += 1
            }
            return value
        }
        while i < content.count {
            let b = content[i]
            i += 1
            guard b == UInt8(ascii: "\\") else {
                text.append(b)
                continue
            }
            let e = content[i]
            i += 1
            switch e {
            case UInt8(ascii: "b"): text.append(0x08)
            case UInt8(ascii: "f"): text.append(0x0C)
            case UInt8(ascii: "n"): text.append(0x0A)
            case UInt8(ascii: "r"): text.append(0x0D)
            case UInt8(ascii: "t"): text.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    i += 2  // the \u of the low surrogate
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (hex4() - 0xDC00)
                }
                UTF8.encode(Unicode.Scalar(scalar) ?? "\u{FFFD}") { text.append($0) }
            default: text.append(e)  // \" \\ \/
            }
        }
        return String(decoding: text, as: UTF8.self)
    }
}

extension JSONDocument {
    /// The offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no
    /// overlongs, no surrogates, nothing above U+10FFFF), or nil.
    static func firstInvalidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var i = 0
        let n = bytes.count
        while i < n {
            // Requests are nearly all ASCII: skip it eight bytes at a time.
            if let base = bytes.baseAddress {
                while i + 8 <= n, UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                    i += 8
                }
            }
            guard i < n else { break }
            let b = bytes[i]
            if b < 0x80 { i += 1; continue }
            var need: Int
            var lower: UInt8 = 0x80, upper: UInt8 = 0xBF
            switch b {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: need = 2
            case 0xED: need = 2; upper = 0x9F
            case 0xF0: need = 3; lower = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; upper = 0x8F
            default: return i
            }
            if i + need >= n { return i }  // truncated sequence
            for k in 1...need {
                let c = bytes[i + k]
                let (lo, hi): (UInt8, UInt8) = k == 1 ? (lower, upper) : (0x80, 0xBF)
                if c < lo || c > hi { return i }
            }
            i += need + 1
        }
        return nil
    }
}

/// The parser's nodes while it runs, in a growable buffer of its own: `Array.append` (a call to
/// check uniqueness, a capacity check, checked conversions) was ~55 instructions a node, a
/// fifth of the tokenizer. Offsets fit in Int32 (checked by `JSONDocument.init`) and there are
/// at most as many nodes as bytes (each starts at a byte of its own).
private struct NodeBuffer {
    typealias Node = JSONDocument.Node

    private var base: UnsafeMutablePointer<Node>
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int) {
        self.capacity = Swift.max(16, capacity)
        base = .allocate(capacity: self.capacity)
    }

    @inline(__always)
    mutating func append(_ node: Node) {
        if count == capacity { grow() }
        (base + count).initialize(to: node)
        count &+= 1
    }

    @inline(never)
    private mutating func grow() {
        let larger = UnsafeMutablePointer<Node>.allocate(capacity: capacity &* 2)
        larger.moveInitialize(from: base, count: count)
        base.deallocate()
        base = larger
        capacity &*= 2
    }

    subscript(i: Int) -> Node {
        @inline(__always) get {
            precondition(i >= 0 && i < count, "JSON node index out of range")
            return base[i]
        }
        @inline(__always) nonmutating set {
            precondition(i >= 0 && i < count, "JSON node index out of range")
            base[i] = newValue
        }
    }

    func array() -> [Node] { Array(UnsafeBufferPointer(start: base, count: count)) }

    /// Once, when the parser is done (`Node` is a trivial type: nothing to deinitialise).
    func deallocate() { base.deallocate() }
}

/// A recursive-descent parser over validated UTF-8 that appends nodes in document order; depth is
/// bounded, so recursion is too.
private struct Parser {
    typealias Node = JSONDocument.Node

    let bytes: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var index = 0
    var depth = 0
    var nodes: NodeBuffer

    /// Objects with more members than this check duplicate keys with a set; smaller ones (every
    /// object of the policy model) by comparing with the keys before, which is cheaper.
    static let linearDuplicateCheckLimit = 16

    init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int, nodes: NodeBuffer) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.nodes = nodes
    }

    mutating func parseDocument() throws(JSONSyntaxError) {
        skipWhitespace()
        if index == bytes.count { throw fail("empty input") }
        try parseValue()
        skipWhitespace()
        if index != bytes.count { throw fail("unexpected data after the JSON value") }
    }

    func fail(_ what: String) -> JSONSyntaxError {
        JSONSyntaxError(kind: .syntax(what), offset: index)
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    /// Appends a node for a value that contains no other (its `next` is the node after it).
    mutating func leaf(_ kind: JSONDocument.Kind, from start: Int, escaped: Bool = false) {
        nodes.append(Node(kind: kind, escaped: escaped, start: Int32(truncatingIfNeeded: start), end: Int32(truncatingIfNeeded: index),
                          next: Int32(truncatingIfNeeded: nodes.count &+ 1)))
    }

    mutating func parseValue() throws(JSONSyntaxError) {
        guard index < bytes.count else { throw fail("unexpected end of input") }
        let start = index
        switch bytes[index] {
        case UInt8(ascii: "{"): try parseObject()
        case UInt8(ascii: "["): try parseArray()
        case UInt8(ascii: "\""): leaf(.string, from: start, escaped: try skipString())
        case UInt8(ascii: "t"): try expectLiteral("true"); leaf(.true, from: start)
        case UInt8(ascii: "f"): try expectLiteral("false"); leaf(.false, from: start)
        case UInt8(ascii: "n"): try expectLiteral("null"); leaf(.null, from: start)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try skipNumber(); leaf(.number, from: start)
        default: throw fail("unexpected character")
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONSyntaxError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw fail("truncated literal") }
        for k in 0..<count where bytes[index + k] != literal.utf8Start[k] {
            throw fail("invalid literal")
        }
        index += count
    }

    mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        if depth > maxDepth { throw JSONSyntaxError(kind: .tooDeep(maxDepth), offset: index) }
    }

    /// Appends a container's node; `close` sets its end and `next` once its contents are in.
    mutating func open(_ kind: JSONDocument.Kind) -> Int {
        nodes.append(Node(kind: kind, escaped: false, start: Int32(truncatingIfNeeded: index), end: 0, next: 0))
        return nodes.count &- 1
    }

    mutating func close(_ node: Int) {
        nodes[node].end = Int32(truncatingIfNeeded: index)
        nodes[node].next = Int32(truncatingIfNeeded: nodes.count)
    }

    mutating func parseObject() throws(JSONSyntaxError) {
        try enter()
        let node = open(.object)
        index += 1
        var memberCount = 0
        var seen: Set<String>?
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            close(node)
            depth -= 1
            return
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a key string") }
            let keyOffset = index
            leaf(.string, from: keyOffset, escaped: try skipString())
            let key = nodes.count - 1
            if memberCount < Self.linearDuplicateCheckLimit {
                // Lengths first, here: most keys differ in length, and the call to compare them
                // cost more than the comparing (escaped keys always go to `sameString`).
                let keyNode = nodes[key]
                let keyLength = keyNode.end - keyNode.start
                var earlier = node + 1
                while earlier < key {
                    let other = nodes[earlier]
                    if other.end - other.start == keyLength || other.escaped || keyNode.escaped, sameString(earlier, key) {
                        throw JSONSyntaxError(kind: .duplicateKey(string(key)), offset: keyOffset)
                    }
                    earlier = Int(nodes[earlier + 1].next)
                }
            } else {
                if seen == nil {
                    seen = []
                    var earlier = node + 1
                    while earlier < key {
                        seen!.insert(string(earlier))
                        earlier = Int(nodes[earlier + 1].next)
                    }
                }
                if !seen!.insert(string(key)).inserted {
                    throw JSONSyntaxError(kind: .duplicateKey(string(key)), offset: keyOffset)
                }
            }
            memberCount += 1
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            index += 1
            skipWhitespace()
            try parseValue()
            skipWhitespace()
            guard index < bytes.count else { throw fail("unterminated object") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; break }
            throw fail("expected ',' or '}'")
        }
        close(node)
        depth -= 1
    }

    mutating func parseArray() throws(JSONSyntaxError) {
        try enter()
        let node = open(.array)
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            close(node)
            depth -= 1
            return
        }
        while true {
            skipWhitespace()
            try parseValue()
            skipWhitespace()
            guard index < bytes.count else { throw fail("unterminated array") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; break }
            throw fail("expected ',' or ']'")
        }
        close(node)
        depth -= 1
    }

    /// Two key nodes hold the same string: bytes compared, unless an escape makes that unsound.
    func sameString(_ a: Int, _ b: Int) -> Bool {
        let x = nodes[a], y = nodes[b]
        if x.escaped || y.escaped { return string(a) == string(b) }
        let count = Int(x.end - x.start)
        guard count == Int(y.end - y.start) else { return false }
        return memcmp(bytes.baseAddress! + Int(x.start), bytes.baseAddress! + Int(y.start), count) == 0
    }

    func string(_ node: Int) -> String {
        let n = nodes[node]
        let content = UnsafeBufferPointer(rebasing: bytes[Int(n.start) + 1..<Int(n.end) - 1])
        return n.escaped ? JSONDocument.unescape(content) : String(decoding: content, as: UTF8.self)
    }

    mutating func skipNumber() throws(JSONSyntaxError) {
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        func isDigit(_ i: Int) -> Bool { i < bytes.count && bytes[i] >= 0x30 && bytes[i] <= 0x39 }
        guard isDigit(index) else { throw fail("expected a digit") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if isDigit(index) { throw fail("leading zero in a number") }
        } else {
            while isDigit(index) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard isDigit(index) else { throw fail("expected a digit after '.'") }
            while isDigit(index) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard isDigit(index) else { throw fail("expected a digit in the exponent") }
            while isDigit(index) { index += 1 }
        }
    }

    /// Moves past a string, checking its escapes. Returns whether it has any.
    mutating func skipString() throws(JSONSyntaxError) -> Bool {
        index += 1  // opening quote
        var escaped = false
        while true {
            // Plain bytes in a local cursor, not the stored `index`, eight at a time while eight
            // are left (a byte at a time was 8 instructions a byte).
            var cursor = JSONDocument.plainPrefix(bytes, from: index)
            while cursor < bytes.count {
                let b = bytes[cursor]
                if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") || b < 0x20 { break }
                cursor += 1
            }
            index = cursor
            guard index < bytes.count else { throw fail("unterminated string") }
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                index += 1
                return escaped
            }
            if b < 0x20 { throw fail("control character in a string") }
            index += 1
            guard b == UInt8(ascii: "\\") else { continue }
            escaped = true
            guard index < bytes.count else { throw fail("unterminated escape") }
            let e = bytes[index]
            index += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                 UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                break
            case UInt8(ascii: "u"):
                let first = try readHex4()
                if (0xD800...0xDBFF).contains(first) {
                    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                        throw fail("lone surrogate in \\u escape")
                    }
                    index += 2
                    let second = try readHex4()
                    guard (0xDC00...0xDFFF).contains(second) else { throw fail("invalid surrogate pair") }
                } else if (0xDC00...0xDFFF).contains(first) {
                    throw fail("lone surrogate in \\u escape")
                }
            default: throw fail("invalid escape")
            }
        }
    }

    mutating func readHex4() throws(JSONSyntaxError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let digit: UInt32
            switch c {
            case 0x30...0x39: digit = UInt32(c - 0x30)
            case 0x41...0x46: digit = UInt32(c - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(c - 0x61 + 10)
            default: throw fail("invalid hex digit in \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }
}

extension JSONDocument {
    /// The offset of the first byte at or after `start` that ends a string's plain run (`"`,
    /// `\\` or a control character), or of the last up to 7 bytes not yet looked at.
    ///
    /// Eight bytes per step: a word's bytes that equal `"` or `\\` are the zero bytes of the word
    /// XORed with them, and the bytes below 0x20 are found by the same borrow trick. Each of the
    /// three masks may flag bytes after its first real hit (borrows), never before it, so the
    /// lowest flagged byte of their union is the first byte to stop at.
    @inline(__always)
    static func plainPrefix(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        guard let base = bytes.baseAddress else { return start }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var cursor = start
        while cursor &+ 8 <= bytes.count {
            let word = UInt64(littleEndian: UnsafeRawPointer(base + cursor).loadUnaligned(as: UInt64.self))
            let quote = word ^ (ones &* 0x22)
            let backslash = word ^ (ones &* 0x5C)
            let hits = ((quote &- ones) & ~quote | (backslash &- ones) & ~backslash | (word &- ones &* 0x20) & ~word) & highs
            if hits != 0 { return cursor &+ hits.trailingZeroBitCount >> 3 }
            cursor &+= 8
        }
        return cursor
    }
}
