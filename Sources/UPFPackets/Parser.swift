/// How the bytes handed to the parser begin.
public enum LinkLayer: Sendable {
    case ethernet
    /// Linux "cooked" capture v1 (16-octet header, protocol in octets 14-15).
    case linuxSLL
    /// Linux "cooked" capture v2 (20-octet header, protocol in octets 0-1).
    case linuxSLL2
    /// No link header: the bytes start with an IPv4 or IPv6 header.
    case rawIP
}

/// Which PDU Session Container type the receiving port expects (TS 38.415: UL on N3 ingress,
/// DL towards the gNB).
public enum TunnelDirection: Sendable {
    case any
    case uplink
    case downlink
}

/// Knobs of the parser; the defaults are what the N3 port of a UPF wants.
public struct ParserOptions: Sendable {
    /// The UDP destination port that means GTP-U.
    public var gtpPort: UInt16 = GTPU.udpPort
    /// The PDU Session Container type accepted; the other one is `psc_wrong_direction`.
    public var direction: TunnelDirection = .any
    /// Verify the outer IPv4 header checksum (turn off when the NIC has verified it).
    public var verifyOuterIPv4Checksum: Bool = true
    /// Verify the inner IPv4 header checksum before the packet leaves the tunnel.
    public var verifyInnerIPv4Checksum: Bool = true

    public init() {}
}

/// Bounds that keep a hostile packet from making the parser loop long (cases 1, 4 and 17 of the
/// bad-input list): real traffic carries at most three GTP-U extensions and a few IPv6 ones.
public enum ParserLimits {
    public static let maxVLANTags = 2
    public static let maxGTPExtensionHeaders = 8
    public static let maxIPv6ExtensionHeaders = 8
}

/// Parses packets into `ParsedPacket` values: every header is bounds-checked against the bytes
/// present before any field of it is read, and every refusal is a `DropReason`.
public enum PacketParser {
    /// Parses one packet. Returns nil when `packet` describes it, or the reason it must be dropped.
    public static func parse(_ bytes: PacketBytes, link: LinkLayer = .ethernet,
                             options: ParserOptions = ParserOptions(),
                             into packet: inout ParsedPacket) -> DropReason? {
        packet = ParsedPacket()
        switch link {
        case .ethernet:
            return parseEthernet(bytes, options: options, into: &packet)
        default:
            return parseOtherLink(bytes, link: link, options: options, into: &packet)
        }
    }

    @inline(never)
    static func parseOtherLink(_ bytes: PacketBytes, link: LinkLayer, options: ParserOptions,
                               into packet: inout ParsedPacket) -> DropReason? {
        switch link {
        case .ethernet:
            return parseEthernet(bytes, options: options, into: &packet)
        case .linuxSLL:
            guard bytes.count >= 16 else { return .frameTooShort }
            return parseNetwork(bytes, etherType: bytes.u16(14), at: 16, options: options, into: &packet)
        case .linuxSLL2:
            guard bytes.count >= 20 else { return .frameTooShort }
            return parseNetwork(bytes, etherType: bytes.u16(0), at: 20, options: options, into: &packet)
        case .rawIP:
            guard bytes.count >= 1 else { return .frameTooShort }
            let version = bytes.u8(0) >> 4
            let etherType = version == 6 ? EtherType.ipv6 : EtherType.ipv4
            return parseNetwork(bytes, etherType: etherType, at: 0, options: options, into: &packet)
        }
    }

    /// Convenience for tests and tools: the parsed value or the drop reason.
    public static func parse(_ buffer: UnsafeRawBufferPointer, link: LinkLayer = .ethernet,
                             options: ParserOptions = ParserOptions()) -> Result<ParsedPacket, DropReason> {
        var packet = ParsedPacket()
        if let reason = parse(PacketBytes(buffer), link: link, options: options, into: &packet) {
            return .failure(reason)
        }
        return .success(packet)
    }

    static func parseEthernet(_ bytes: PacketBytes, options: ParserOptions,
                              into packet: inout ParsedPacket) -> DropReason? {
        guard bytes.count >= 14 else { return .frameTooShort }
        var offset = 12
        var etherType = bytes.u16(offset)
        var tags = 0
        while etherType == EtherType.vlan || etherType == EtherType.qinq {
            tags += 1
            guard tags <= ParserLimits.maxVLANTags else { return .vlanTooDeep }
            guard bytes.count >= offset &+ 6 else { return .frameTooShort }
            if tags == 1 { packet.outerVLAN = bytes.u16(offset &+ 2) & 0x0FFF }
            offset += 4
            etherType = bytes.u16(offset)
        }
        packet.vlanCount = UInt8(tags)
        return parseNetwork(bytes, etherType: etherType, at: offset &+ 2, options: options, into: &packet)
    }

    static func parseNetwork(_ bytes: PacketBytes, etherType: UInt16, at offset: Int, options: ParserOptions,
                             into packet: inout ParsedPacket) -> DropReason? {
        packet.etherType = etherType
        packet.l3Offset = UInt32(truncatingIfNeeded: offset)
        switch etherType {
        case EtherType.ipv4:
            return parseOuterIPv4(bytes, at: offset, options: options, into: &packet)
        case EtherType.ipv6:
            return parseOuterIPv6(bytes, at: offset, options: options, into: &packet)
        case EtherType.arp:
            packet.kind = .arp
            return nil
        default:
            packet.kind = .nonGTP
            return nil
        }
    }

    static func parseOuterIPv4(_ bytes: PacketBytes, at offset: Int, options: ParserOptions,
                               into packet: inout ParsedPacket) -> DropReason? {
        let header: IPv4Header
        switch IPv4Header.read(bytes, at: offset, end: bytes.count, verifyChecksum: options.verifyOuterIPv4Checksum) {
        case .success(let h): header = h
        case .failure(let fault): return fault.outerReason
        }
        packet.outerVersion = 4
        packet.outerProtocol = header.proto
        packet.outerSource = bytes.ipv4Address(offset &+ 12)
        packet.outerDestination = bytes.ipv4Address(offset &+ 16)
        packet.outerTrafficClass = header.tos
        packet.l3End = UInt32(truncatingIfNeeded: header.end)
        if header.isFragment {
            // Reassembly happens in the caller; never read a fragment's payload as UDP/GTP-U.
            packet.kind = .outerFragment
            packet.fragmentID = header.identification
            packet.fragmentOffset = header.fragmentOffset
            packet.moreFragments = header.moreFragments
            packet.l4Offset = UInt32(truncatingIfNeeded: header.payloadOffset)
            return nil
        }
        return parseOuterTransport(bytes, proto: header.proto, at: header.payloadOffset, end: header.end,
                                   options: options, into: &packet)
    }

    @inline(never)
    static func parseOuterIPv6(_ bytes: PacketBytes, at offset: Int, options: ParserOptions,
                               into packet: inout ParsedPacket) -> DropReason? {
        let header: IPv6Header
        switch IPv6Header.read(bytes, at: offset, end: bytes.count) {
        case .success(let h): header = h
        case .failure(let fault): return fault.outerIPv6Reason
        }
        if header.isFragment { return .outerIPv6Fragment }
        packet.outerVersion = 6
        packet.outerProtocol = header.proto
        packet.outerSource = bytes.ipv6Address(offset &+ 8)
        packet.outerDestination = bytes.ipv6Address(offset &+ 24)
        packet.outerTrafficClass = header.trafficClass
        packet.l3End = UInt32(truncatingIfNeeded: header.end)
        return parseOuterTransport(bytes, proto: header.proto, at: header.payloadOffset, end: header.end,
                                   options: options, into: &packet)
    }

    static func parseOuterTransport(_ bytes: PacketBytes, proto: UInt8, at offset: Int, end: Int,
                                    options: ParserOptions, into packet: inout ParsedPacket) -> DropReason? {
        packet.l4Offset = UInt32(truncatingIfNeeded: offset)
        packet.kind = .nonGTP
        guard proto == IPProtocol.udp else { return nil }
        guard end &- offset >= 8 else { return .udpTruncated }
        packet.udpSourcePort = bytes.u16(offset)
        packet.udpDestinationPort = bytes.u16(offset &+ 2)
        guard packet.udpDestinationPort == options.gtpPort else { return nil }
        // Only the GTP-U port is held to UDP's rules here: other UDP is not ours to judge.
        let udpLength = Int(bytes.u16(offset &+ 4))
        guard udpLength >= 8, udpLength <= end &- offset else { return .udpBadLength }
        if packet.outerVersion == 6 && bytes.u16(offset &+ 6) == 0 { return .udpZeroChecksumOverIPv6 }
        return GTPUParser.parse(bytes, at: offset &+ 8, end: offset &+ udpLength, options: options, into: &packet)
    }
}
