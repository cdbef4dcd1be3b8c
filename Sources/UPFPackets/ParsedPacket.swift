/// What the parser saw in a packet.
public enum PacketKind: UInt8, Sendable {
    case gPDU
    case echoRequest
    case echoResponse
    case errorIndication
    case endMarker
    case supportedExtensionHeadersNotification
    /// IP (or other EtherType) traffic that is not GTP-U on the GTP-U port.
    case nonGTP
    case arp
    /// A piece of an outer IPv4 datagram; the caller reassembles (`IPv4Reassembler`) and parses
    /// the whole. A non-first fragment is never read as GTP-U.
    case outerFragment

    /// Stable label used by the decoder's JSON (`arp` is reported as `non_gtp` there).
    public var name: String {
        switch self {
        case .gPDU: "gpdu"
        case .echoRequest: "echo_request"
        case .echoResponse: "echo_response"
        case .errorIndication: "error_indication"
        case .endMarker: "end_marker"
        case .supportedExtensionHeadersNotification: "ext_hdr_notification"
        case .nonGTP: "non_gtp"
        case .arp: "arp"
        case .outerFragment: "fragment"
        }
    }
}

/// The PDU Session Container (TS 38.415 §5.5.2) of a GTP-U packet, when present.
@frozen
public struct PDUSessionInformation: Sendable, Equatable {
    public var present: Bool = false
    /// 0 = DL PDU SESSION INFORMATION, 1 = UL PDU SESSION INFORMATION.
    public var pduType: UInt8 = 0
    public var qfi: UInt8 = 0
    /// Reflective QoS Indicator (DL only).
    public var rqi: Bool = false
    /// Paging Policy Presence and the Paging Policy Indicator it announces (DL only).
    public var ppp: Bool = false
    public var ppi: UInt8 = 0

    @inlinable public init() {}
}

/// The inner (tunnelled) packet's addresses and ports: what SDF filters match on.
@frozen
public struct InnerFlow: Sendable, Equatable {
    public var source: IPAddress = .zero
    public var destination: IPAddress = .zero
    /// Ports of TCP, UDP and SCTP; zero for other protocols and for non-first fragments.
    public var sourcePort: UInt16 = 0
    public var destinationPort: UInt16 = 0

    /// 4 or 6; 0 when there is no inner packet.
    public var version: UInt8 = 0
    /// The upper-layer protocol after any IPv6 extension headers.
    public var proto: UInt8 = 0
    /// IPv4 TOS / IPv6 Traffic Class.
    public var trafficClass: UInt8 = 0
    public var hasPorts: Bool = false
    /// A non-first fragment of the inner packet: no ports to match on.
    public var isFragment: Bool = false

    @inlinable public init() {}
}

/// The result of parsing one packet: a compact value of addresses, ports, GTP-U fields and
/// offsets into the original bytes (nothing is copied out of the packet but these numbers).
///
/// Offsets count from the start of the bytes handed to the parser.
@frozen
public struct ParsedPacket: Sendable {
    public var outerSource: IPAddress = .zero
    public var outerDestination: IPAddress = .zero
    public var gsnAddress: IPAddress = .zero

    // Inner packet of a G-PDU
    public var inner = InnerFlow()

    // Outer IP and UDP
    public var l3Offset: UInt32 = 0
    /// End of the outer IP datagram (bytes past it are link-layer padding).
    public var l3End: UInt32 = 0
    public var l4Offset: UInt32 = 0

    // GTP-U
    public var gtpOffset: UInt32 = 0
    public var teid: UInt32 = 0
    public var pdcpNumber: UInt32 = 0
    /// Start and end of what follows the GTP-U headers: the T-PDU of a G-PDU, or the IEs.
    public var payloadOffset: UInt32 = 0
    public var payloadEnd: UInt32 = 0
    public var teidDataI: UInt32 = 0
    public var innerL4Offset: UInt32 = 0

    // Link layer
    public var etherType: UInt16 = 0
    /// The VLAN ID of the outermost tag, when `vlanCount > 0`.
    public var outerVLAN: UInt16 = 0
    public var udpSourcePort: UInt16 = 0
    public var udpDestinationPort: UInt16 = 0
    /// For `outerFragment`: identification, offset in bytes, more-fragments flag.
    public var fragmentID: UInt16 = 0
    public var fragmentOffset: UInt16 = 0
    public var sequenceNumber: UInt16 = 0
    public var udpPortExtension: UInt16 = 0

    public var kind: PacketKind = .nonGTP
    public var vlanCount: UInt8 = 0
    /// 4 or 6; 0 when the frame does not carry IP.
    public var outerVersion: UInt8 = 0
    public var outerProtocol: UInt8 = 0
    public var outerTrafficClass: UInt8 = 0
    public var moreFragments: Bool = false
    public var gtpFlags: UInt8 = 0
    public var messageType: UInt8 = 0
    public var nPDUNumber: UInt8 = 0
    public var extensionCount: UInt8 = 0
    /// Extension headers without comprehension-required bits that were skipped.
    public var skippedExtensionCount: UInt8 = 0
    public var hasUDPPortExtension: Bool = false
    public var hasPDCPNumber: Bool = false

    // Information elements of path-management and error messages
    public var hasRecovery: Bool = false
    public var recoveryCounter: UInt8 = 0
    public var hasTEIDDataI: Bool = false
    public var hasGSNAddress: Bool = false
    public var psc = PDUSessionInformation()

    @inlinable public init() {}

    /// Bytes of the T-PDU (the inner packet) of a G-PDU.
    @inlinable public var payloadLength: Int { Int(payloadEnd) - Int(payloadOffset) }
}
