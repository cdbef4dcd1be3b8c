/// What can be wrong with an IP header, independent of whether it is the outer (transport) or the
/// inner (user) header; `outerReason` / `innerReason` name the counter for each place.
enum IPHeaderFault: Error {
    case truncated
    case versionMismatch
    case badHeaderLength
    case badTotalLength
    case totalLengthExceedsPayload
    case badChecksum
    case payloadLengthZero
    case jumbogram
    case extensionTruncated
    case extensionChainTooLong

    var outerReason: DropReason {
        switch self {
        case .truncated: .outerIPv4Truncated
        case .versionMismatch: .outerIPVersionMismatch
        case .badHeaderLength: .outerIPv4BadHeaderLength
        case .badTotalLength, .totalLengthExceedsPayload: .outerIPv4BadTotalLength
        case .badChecksum: .outerIPv4BadChecksum
        case .payloadLengthZero, .jumbogram: .outerIPv6BadPayloadLength
        case .extensionTruncated: .outerIPv6ExtensionTruncated
        case .extensionChainTooLong: .outerIPv6ExtensionChainTooLong
        }
    }

    var innerReason: DropReason {
        switch self {
        case .truncated: .innerIPv4Truncated
        case .versionMismatch: .innerIPVersionUnknown
        case .badHeaderLength: .innerIPv4BadHeaderLength
        case .badTotalLength: .innerIPv4BadTotalLength
        case .totalLengthExceedsPayload: .innerIPv4TotalLengthExceedsPayload
        case .badChecksum: .innerIPv4BadChecksum
        case .payloadLengthZero: .innerIPv6PayloadLengthZero
        case .jumbogram: .innerIPv6Jumbogram
        case .extensionTruncated: .innerIPv6ExtensionTruncated
        case .extensionChainTooLong: .innerIPv6ExtensionChainTooLong
        }
    }

    /// IPv6 has its own truncation and length counters; the shared cases above are IPv4's.
    var outerIPv6Reason: DropReason {
        switch self {
        case .truncated: .outerIPv6Truncated
        case .totalLengthExceedsPayload, .badTotalLength: .outerIPv6BadPayloadLength
        default: outerReason
        }
    }
    var innerIPv6Reason: DropReason {
        switch self {
        case .truncated: .innerIPv6Truncated
        case .totalLengthExceedsPayload, .badTotalLength: .innerIPv6PayloadLengthExceedsPayload
        default: innerReason
        }
    }
}

/// The fields of an IPv4 header that the parser needs, after its lengths were checked.
struct IPv4Header {
    var proto: UInt8
    var tos: UInt8
    var identification: UInt16
    /// Fragment offset in bytes.
    var fragmentOffset: UInt16
    var moreFragments: Bool
    var payloadOffset: Int
    /// End of the datagram as announced by Total Length (trailing bytes are padding).
    var end: Int

    var isFragment: Bool { moreFragments || fragmentOffset != 0 }

    /// Reads the header at `offset`; `end` is where the bytes present stop.
    @inline(__always)
    static func read(_ bytes: PacketBytes, at offset: Int, end: Int,
                     verifyChecksum: Bool) -> Result<IPv4Header, IPHeaderFault> {
        guard end &- offset >= 20 else { return .failure(.truncated) }
        let versionIHL = bytes.u8(offset)
        guard versionIHL >> 4 == 4 else { return .failure(.versionMismatch) }
        let headerLength = Int(versionIHL & 0x0F) * 4
        guard headerLength >= 20 else { return .failure(.badHeaderLength) }
        guard headerLength <= end &- offset else { return .failure(.truncated) }
        let totalLength = Int(bytes.u16(offset &+ 2))
        guard totalLength >= headerLength else { return .failure(.badTotalLength) }
        guard totalLength <= end &- offset else { return .failure(.totalLengthExceedsPayload) }
        if verifyChecksum && !InternetChecksum.isValidIPv4Header(UnsafeRawBufferPointer(start: bytes.base + offset, count: headerLength)) {
            return .failure(.badChecksum)
        }
        let flagsFragment = bytes.u16(offset &+ 6)
        return .success(IPv4Header(
            proto: bytes.u8(offset &+ 9),
            tos: bytes.u8(offset &+ 1),
            identification: bytes.u16(offset &+ 4),
            fragmentOffset: (flagsFragment & 0x1FFF) &* 8,
            moreFragments: flagsFragment & 0x2000 != 0,
            payloadOffset: offset &+ headerLength,
            end: offset &+ totalLength))
    }
}

/// The fields of an IPv6 header and its extension chain that the parser needs.
struct IPv6Header {
    /// The upper-layer protocol after the extension headers.
    var proto: UInt8
    var trafficClass: UInt8
    var payloadOffset: Int
    var end: Int
    /// A Fragment header was present.
    var isFragment: Bool
    /// The fragment is not the first one (no upper-layer header in it).
    var isLaterFragment: Bool

    static func read(_ bytes: PacketBytes, at offset: Int, end: Int) -> Result<IPv6Header, IPHeaderFault> {
        guard end &- offset >= 40 else { return .failure(.truncated) }
        let first = bytes.u32(offset)
        guard first >> 28 == 6 else { return .failure(.versionMismatch) }
        let payloadLength = Int(bytes.u16(offset &+ 4))
        var next = bytes.u8(offset &+ 6)
        if payloadLength == 0 && next != IPProtocol.ipv6NoNext {
            // A zero length is only legal with a Jumbo Payload option (RFC 2675), which a UPF
            // has no use for on a 1500-9000 octet path.
            return .failure(next == IPProtocol.hopByHop ? .jumbogram : .payloadLengthZero)
        }
        guard payloadLength <= end &- offset &- 40 else { return .failure(.totalLengthExceedsPayload) }
        let datagramEnd = offset &+ 40 + payloadLength
        var cursor = offset &+ 40
        var extensions = 0
        var isFragment = false
        var isLaterFragment = false
        loop: while true {
            switch next {
            case IPProtocol.hopByHop, IPProtocol.ipv6Routing, IPProtocol.ipv6DestinationOptions,
                 IPProtocol.ah, IPProtocol.ipv6Fragment, IPProtocol.mobilityHeader:
                extensions += 1
                guard extensions <= ParserLimits.maxIPv6ExtensionHeaders else {
                    return .failure(.extensionChainTooLong)
                }
                guard datagramEnd &- cursor >= 8 else { return .failure(.extensionTruncated) }
                let length: Int
                switch next {
                case IPProtocol.ipv6Fragment:
                    length = 8
                    isFragment = true
                    if bytes.u16(cursor &+ 2) & 0xFFF8 != 0 { isLaterFragment = true }
                case IPProtocol.ah:
                    length = (Int(bytes.u8(cursor &+ 1)) + 2) * 4
                default:
                    length = (Int(bytes.u8(cursor &+ 1)) + 1) * 8
                }
                guard length <= datagramEnd &- cursor else { return .failure(.extensionTruncated) }
                next = bytes.u8(cursor)
                cursor += length
                if isLaterFragment { break loop }
            default:
                break loop
            }
        }
        return .success(IPv6Header(
            proto: next,
            trafficClass: UInt8(truncatingIfNeeded: first >> 20),
            payloadOffset: cursor,
            end: datagramEnd,
            isFragment: isFragment,
            isLaterFragment: isLaterFragment))
    }
}
