/// An IPv4 or IPv6 address in 16 octets. IPv4 addresses are held in the IPv4-mapped form
/// (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) so one type, one comparison and one hash serve both
/// families on the fast path.
@frozen
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    @usableFromInline static let v4MappedMarker: UInt64 = 0x0000_FFFF_0000_0000

    @inlinable
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// An IPv4 address given as a host-order 32-bit number.
    @inlinable
    public init(ipv4: UInt32) {
        self.high = 0
        self.low = IPAddress.v4MappedMarker | UInt64(ipv4)
    }

    public static let zero = IPAddress(high: 0, low: 0)

    @inlinable
    public var isIPv4: Bool { high == 0 && (low & 0xFFFF_FFFF_0000_0000) == IPAddress.v4MappedMarker }

    /// The IPv4 address as a host-order number (meaningful only when `isIPv4`).
    @inlinable
    public var ipv4: UInt32 { UInt32(truncatingIfNeeded: low) }

    /// Parses dotted-quad IPv4 or RFC 4291 text IPv6 (with `::` and an embedded IPv4 tail).
    ///
    /// A `String` has its own entry point: through the generic one below, called from another
    /// module, unspecialised, a dotted quad cost ~600 instructions (a `Substring` made of the
    /// text, the UTF-8 walked through witness tables); the control plane parses several per session.
    public init?(_ text: String) {
        var text = text
        if let v4 = text.withUTF8({ IPAddress.parseIPv4($0) }) {
            self.init(ipv4: v4)
        } else if let v6 = IPAddress.parseIPv6(Substring(text)) {
            self = v6
        } else {
            return nil
        }
    }

    /// As `init?(_: String)`, for any text (a `Substring` of a longer one, say).
    public init?(_ text: some StringProtocol) {
        self.init(String(text))
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    /// The 16-bit groups of the IPv6 form.
    public var groups: [UInt16] {
        (0..<8).map { i in
            let word = i < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> (48 - 16 * UInt64(i % 4)))
        }
    }

    /// Dotted quad for IPv4; RFC 5952 canonical text for IPv6 (longest zero run compressed).
    public var description: String {
        if isIPv4 {
            let v = ipv4
            return "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
        }
        let g = groups
        var bestStart = -1, bestLength = 0, runStart = -1
        for i in 0...8 {
            if i < 8 && g[i] == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLength && i - runStart >= 2 { bestStart = runStart; bestLength = i - runStart }
                runStart = -1
            }
        }
        func hex(_ range: Range<Int>) -> String {
            g[range].map { String($0, radix: 16) }.joined(separator: ":")
        }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    /// A dotted quad from its UTF-8 bytes (nil: not one), for parsers that already hold the
    /// bytes; the same rules as `init?(_:)` (no leading zeros, each octet 0...255).
    public static func ipv4(utf8 bytes: UnsafeBufferPointer<UInt8>) -> UInt32? {
        parseIPv4(bytes)
    }

    /// Four decimal octets (0...255, no leading zeros, digits only), separated by dots. One pass
    /// over the UTF-8: the control plane parses several addresses per session it validates.
    static func parseIPv4(_ text: Substring) -> UInt32? {
        text.utf8.withContiguousStorageIfAvailable(parseIPv4) ?? parseIPv4(text.utf8)
    }

    static func parseIPv4<Bytes: Sequence<UInt8>>(_ text: Bytes) -> UInt32? {
        var value: UInt32 = 0
        var octet: UInt32 = 0
        var digits = 0
        var dots = 0
        for byte in text {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, dots < 3 else { return nil }
                value = value << 8 | octet
                dots += 1
                octet = 0
                digits = 0
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                guard digits < 3, digits == 0 || octet != 0 else { return nil }  // at most 3 digits, no leading zero
                octet = octet * 10 + UInt32(byte - UInt8(ascii: "0"))
                guard octet <= 255 else { return nil }
                digits += 1
            } else {
                return nil
            }
        }
        guard dots == 3, digits > 0 else { return nil }
        return value << 8 | octet
    }

    static func parseIPv6(_ text: Substring) -> IPAddress? {
        guard text.count >= 2, text.count <= 45 else { return nil }
        let pieces = text.components(separatedBy: "::")
        guard pieces.count <= 2 else { return nil }
        func groups(_ part: Substring, allowIPv4Tail: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, field) in fields.enumerated() {
                if allowIPv4Tail && index == fields.count - 1 && field.contains(".") {
                    guard let v4 = parseIPv4(field) else { return nil }
                    result.append(UInt16(v4 >> 16))
                    result.append(UInt16(v4 & 0xFFFF))
                } else {
                    guard (1...4).contains(field.count), let g = UInt16(field, radix: 16) else { return nil }
                    result.append(g)
                }
            }
            return result
        }
        var all: [UInt16]
        if pieces.count == 2 {
            guard let head = groups(pieces[0], allowIPv4Tail: false),
                  let tail = groups(pieces[1], allowIPv4Tail: true),
                  head.count + tail.count <= 7 else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let only = groups(pieces[0], allowIPv4Tail: true), only.count == 8 else { return nil }
            all = only
        }
        var high: UInt64 = 0, low: UInt64 = 0
        for i in 0..<4 { high = high << 16 | UInt64(all[i]) }
        for i in 4..<8 { low = low << 16 | UInt64(all[i]) }
        return IPAddress(high: high, low: low)
    }
}

extension Substring {
    /// Splits on a multi-character separator without Foundation.
    fileprivate func components(separatedBy separator: String) -> [Substring] {
        var result: [Substring] = []
        var start = startIndex
        var index = startIndex
        while index < endIndex {
            if self[index...].hasPrefix(separator) {
                result.append(self[start..<index])
                index = self.index(index, offsetBy: separator.count)
                start = index
            } else {
                index = self.index(after: index)
            }
        }
        result.append(self[start..<endIndex])
        return result
    }
}
