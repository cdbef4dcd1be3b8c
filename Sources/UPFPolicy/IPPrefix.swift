import UPFPackets

/// An IPv4 or IPv6 prefix in the 128-bit space of `IPAddress` (IPv4 held v4-mapped, so an IPv4
/// `/n` is a `/96+n` here). The address has no bits set past the length.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    /// 0...128, in the 128-bit space.
    public let length: UInt8

    /// Masks `address` to `length` (0...128).
    public init(address: IPAddress, length: UInt8) {
        precondition(length <= 128)
        self.address = IPPrefix.mask(address, length)
        self.length = length
    }

    /// A host prefix (/32 for IPv4, /128 for IPv6).
    public init(host: IPAddress) {
        self.init(address: host, length: 128)
    }

    /// `10.0.0.0/8`, `2001:db8::/32`, or an address alone (a host prefix). Host bits set past the
    /// length are refused (`10.0.0.1/8`), as are lengths past 32/128.
    public init?(_ text: String) {
        guard case .success(let prefix) = IPPrefix.parse(text) else { return nil }
        self = prefix
    }

    public var isIPv4: Bool { address.isIPv4 && length >= 96 }

    /// The length as written: 0...32 for IPv4, 0...128 for IPv6.
    public var familyLength: UInt8 { isIPv4 ? length - 96 : length }

    public func contains(_ other: IPAddress) -> Bool {
        IPPrefix.mask(other, length) == address
    }

    /// True when one of the two prefixes contains the other.
    public func overlaps(_ other: IPPrefix) -> Bool {
        let shorter = min(length, other.length)
        return IPPrefix.mask(address, shorter) == IPPrefix.mask(other.address, shorter)
    }

    public var description: String { "\(address)/\(familyLength)" }

    public static func mask(_ address: IPAddress, _ length: UInt8) -> IPAddress {
        func bits(_ n: Int) -> UInt64 { n <= 0 ? 0 : n >= 64 ? ~0 : ~(~UInt64(0) >> UInt64(n)) }
        let n = Int(length)
        return IPAddress(high: address.high & bits(n), low: address.low & bits(n - 64))
    }

    enum Problem: Error, Equatable {
        case address(String)
        case length(String)
        case hostBits(String)
    }

    /// Parses with the reason of a failure.
    static func parse(_ text: String) -> Result<IPPrefix, Problem> {
        if let prefix = text.utf8.withContiguousStorageIfAvailable(parseIPv4Canonical) ?? nil {
            return .success(prefix)
        }
        return parseAny(text)
    }

    /// The common case, a valid IPv4 address or prefix, in one pass over the bytes; nil sends
    /// everything else (IPv6, every error with its message) to `parseAny`, which accepts the same
    /// texts. Why: a session carries several prefixes, validation and compilation both read
    /// them, and `parseAny`'s walk over String indices cost ~2000 instructions a prefix (this path:
    /// ~200) — a tenth of the policy thread's work per session update (callgrind).
    static func parseIPv4Canonical(_ utf8: UnsafeBufferPointer<UInt8>) -> IPPrefix? {
        var slash = 0
        while slash < utf8.count, utf8[slash] != UInt8(ascii: "/") { slash += 1 }
        guard let v4 = IPAddress.ipv4(utf8: UnsafeBufferPointer(rebasing: utf8[0..<slash])) else { return nil }
        var familyLength = 32
        if slash < utf8.count {
            let digits = utf8.count - slash - 1
            guard digits >= 1, digits <= 3 else { return nil }
            familyLength = 0
            for i in slash + 1..<utf8.count {
                let digit = utf8[i] &- UInt8(ascii: "0")
                guard digit <= 9 else { return nil }
                familyLength = familyLength * 10 + Int(digit)
            }
            guard familyLength <= 32 else { return nil }
        }
        let address = IPAddress(ipv4: v4)
        let prefix = IPPrefix(address: address, length: UInt8(familyLength + 96))
        return prefix.address == address ? prefix : nil
    }

    /// Any prefix text, with the reason of a failure.
    static func parseAny(_ text: String) -> Result<IPPrefix, Problem> {
        let slash = text.utf8.firstIndex(of: UInt8(ascii: "/"))
        let addressText = text[..<(slash ?? text.endIndex)]
        let isV6 = addressText.utf8.contains(UInt8(ascii: ":"))
        guard let address = IPAddress(addressText) else {
            return .failure(.address("'\(addressText)' is not an IPv4 or IPv6 address"))
        }
        let maximum: UInt8 = isV6 ? 128 : 32
        var familyLength = maximum
        if let slash {
            let lengthText = text[text.utf8.index(after: slash)...]
            guard !lengthText.isEmpty, lengthText.utf8.count <= 3, lengthText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  let value = UInt16(lengthText) else {
                return .failure(.length("'\(text)': '\(lengthText)' is not a prefix length"))
            }
            guard value <= maximum else {
                return .failure(.length("'\(text)': prefix length \(value) is longer than \(maximum)"))
            }
            familyLength = UInt8(value)
        }
        let length = isV6 ? familyLength : familyLength + 96
        let prefix = IPPrefix(address: address, length: length)
        guard prefix.address == address else {
            return .failure(.hostBits("'\(text)' has bits set past the prefix length (did you mean \(prefix)?)"))
        }
        return .success(prefix)
    }
}
