/// Why the parser refused a packet: one case per reason, each counted by the data path.
///
/// The raw value indexes counter arrays (`DropCounters`), so cases are only ever appended.
/// `name` is the stable snake_case label used in counters, logs and the decoder's JSON.
public enum DropReason: UInt8, CaseIterable, Sendable, Error, CustomStringConvertible {
    // Link layer
    case frameTooShort = 1
    case vlanTooDeep
    case unsupportedLinkType

    // Outer IP
    case outerIPVersionMismatch
    case outerIPv4Truncated
    case outerIPv4BadHeaderLength
    case outerIPv4BadTotalLength
    case outerIPv4BadChecksum
    case outerIPv6Truncated
    case outerIPv6BadPayloadLength
    case outerIPv6ExtensionTruncated
    case outerIPv6ExtensionChainTooLong
    case outerIPv6Fragment
    case outerFragmentOverlap
    case outerFragmentTooLarge
    case outerFragmentEvicted
    case outerFragmentMisaligned

    // Outer UDP
    case udpTruncated
    case udpBadLength
    case udpZeroChecksumOverIPv6

    // GTP-U header
    case gtpTruncated
    case gtpVersionNot1
    case gtpPrime
    case gtpLengthExceedsPayload
    case gtpLengthShorterThanHeaders
    case gtpUnknownMessageType
    case gtpExtensionZeroLength
    case gtpExtensionTruncated
    case gtpExtensionChainTooLong
    case gtpExtensionBadLength
    case gtpExtensionComprehensionRequired
    case pscBadLength
    case pscBadPDUType
    case pscQFIZero
    case pscWrongDirection

    // GTP-U messages
    case echoWithoutSequenceNumber
    case gtpMalformedInformationElement
    case gtpMissingMandatoryInformationElement
    case gpduTEIDZero
    case gpduEmpty

    // Inner packet (the T-PDU)
    case innerIPVersionUnknown
    case innerIPv4Truncated
    case innerIPv4BadHeaderLength
    case innerIPv4BadTotalLength
    case innerIPv4TotalLengthExceedsPayload
    case innerIPv4BadChecksum
    case innerIPv6Truncated
    case innerIPv6PayloadLengthZero
    case innerIPv6PayloadLengthExceedsPayload
    case innerIPv6ExtensionTruncated
    case innerIPv6ExtensionChainTooLong
    case innerIPv6Jumbogram
    case innerL4Truncated

    /// Number of counter slots needed to index by raw value.
    public static let counterSlots = Int(DropReason.allCases.map(\.rawValue).max()!) + 1

    public var description: String { name }

    /// Stable label for counters, logs and JSON.
    public var name: String {
        switch self {
        case .frameTooShort: "frame_too_short"
        case .vlanTooDeep: "vlan_too_deep"
        case .unsupportedLinkType: "unsupported_link_type"
        case .outerIPVersionMismatch: "outer_ip_version_mismatch"
        case .outerIPv4Truncated: "outer_ipv4_truncated"
        case .outerIPv4BadHeaderLength: "outer_ipv4_bad_header_length"
        case .outerIPv4BadTotalLength: "outer_ipv4_bad_total_length"
        case .outerIPv4BadChecksum: "outer_ipv4_bad_checksum"
        case .outerIPv6Truncated: "outer_ipv6_truncated"
        case .outerIPv6BadPayloadLength: "outer_ipv6_bad_payload_length"
        case .outerIPv6ExtensionTruncated: "outer_ipv6_extension_truncated"
        case .outerIPv6ExtensionChainTooLong: "outer_ipv6_extension_chain_too_long"
        case .outerIPv6Fragment: "outer_ipv6_fragment"
        case .outerFragmentOverlap: "outer_fragment_overlap"
        case .outerFragmentTooLarge: "outer_fragment_too_large"
        case .outerFragmentEvicted: "outer_fragment_evicted"
        case .outerFragmentMisaligned: "outer_fragment_misaligned"
        case .udpTruncated: "udp_truncated"
        case .udpBadLength: "udp_bad_length"
        case .udpZeroChecksumOverIPv6: "udp_zero_checksum_over_ipv6"
        case .gtpTruncated: "gtp_truncated"
        case .gtpVersionNot1: "gtp_version_not_1"
        case .gtpPrime: "gtp_prime"
        case .gtpLengthExceedsPayload: "gtp_length_exceeds_payload"
        case .gtpLengthShorterThanHeaders: "gtp_length_shorter_than_headers"
        case .gtpUnknownMessageType: "gtp_unknown_message_type"
        case .gtpExtensionZeroLength: "gtp_extension_zero_length"
        case .gtpExtensionTruncated: "gtp_extension_truncated"
        case .gtpExtensionChainTooLong: "gtp_extension_chain_too_long"
        case .gtpExtensionBadLength: "gtp_extension_bad_length"
        case .gtpExtensionComprehensionRequired: "gtp_extension_comprehension_required"
        case .pscBadLength: "psc_bad_length"
        case .pscBadPDUType: "psc_bad_pdu_type"
        case .pscQFIZero: "psc_qfi_zero"
        case .pscWrongDirection: "psc_wrong_direction"
        case .echoWithoutSequenceNumber: "echo_without_sequence_number"
        case .gtpMalformedInformationElement: "gtp_malformed_information_element"
        case .gtpMissingMandatoryInformationElement: "gtp_missing_mandatory_information_element"
        case .gpduTEIDZero: "gpdu_teid_zero"
        case .gpduEmpty: "gpdu_empty"
        case .innerIPVersionUnknown: "inner_ip_version_unknown"
        case .innerIPv4Truncated: "inner_ipv4_truncated"
        case .innerIPv4BadHeaderLength: "inner_ipv4_bad_header_length"
        case .innerIPv4BadTotalLength: "inner_ipv4_bad_total_length"
        case .innerIPv4TotalLengthExceedsPayload: "inner_ipv4_total_length_exceeds_payload"
        case .innerIPv4BadChecksum: "inner_ipv4_bad_checksum"
        case .innerIPv6Truncated: "inner_ipv6_truncated"
        case .innerIPv6PayloadLengthZero: "inner_ipv6_payload_length_zero"
        case .innerIPv6PayloadLengthExceedsPayload: "inner_ipv6_payload_length_exceeds_payload"
        case .innerIPv6ExtensionTruncated: "inner_ipv6_extension_truncated"
        case .innerIPv6ExtensionChainTooLong: "inner_ipv6_extension_chain_too_long"
        case .innerIPv6Jumbogram: "inner_ipv6_jumbogram"
        case .innerL4Truncated: "inner_l4_truncated"
        }
    }
}

/// Per-reason drop counters with no allocation after creation: a flat array indexed by raw value.
/// One instance per worker, so no counter is ever written by two threads.
public struct DropCounters: Sendable {
    @usableFromInline var storage: [UInt64] = Array(repeating: 0, count: DropReason.counterSlots)

    public init() {}

    @inlinable
    public mutating func count(_ reason: DropReason) {
        storage[Int(reason.rawValue)] &+= 1
    }

    public subscript(reason: DropReason) -> UInt64 { storage[Int(reason.rawValue)] }

    public var total: UInt64 { storage.reduce(0, &+) }

    /// The non-zero counters, in declaration order.
    public var nonZero: [(DropReason, UInt64)] {
        DropReason.allCases.compactMap { self[$0] > 0 ? ($0, self[$0]) : nil }
    }
}
