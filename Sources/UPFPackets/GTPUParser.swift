/// GTP-U v1 (TS 29.281 §5) and what it carries: the extension-header chain, path-management and
/// error messages, and the inner packet of a G-PDU.
enum GTPUParser {
    /// Parses the GTP-U datagram in `offset..<end` (the UDP payload).
    static func parse(_ bytes: PacketBytes, at offset: Int, end: Int, options: ParserOptions,
                      into packet: inout ParsedPacket) -> DropReason? {
        packet.gtpOffset = UInt32(truncatingIfNeeded: offset)
        guard end &- offset >= GTPU.mandatoryHeaderLength else { return .gtpTruncated }
        let flags = bytes.u8(offset)
        guard flags >> GTPU.Flag.versionShift == 1 else { return .gtpVersionNot1 }
        guard flags & GTPU.Flag.protocolType != 0 else { return .gtpPrime }
        let messageType = bytes.u8(offset &+ 1)
        let gtpLength = Int(bytes.u16(offset &+ 2))
        packet.gtpFlags = flags
        packet.messageType = messageType
        packet.teid = bytes.u32(offset &+ 4)
        // The Length field counts everything after the mandatory 8 octets; bytes past it within
        // the UDP payload are padding and are ignored.
        guard gtpLength <= end &- offset &- GTPU.mandatoryHeaderLength else { return .gtpLengthExceedsPayload }
        let gtpEnd = offset &+ GTPU.mandatoryHeaderLength + gtpLength
        var cursor = offset &+ GTPU.mandatoryHeaderLength
        let optionalFlags = GTPU.Flag.extensionHeader | GTPU.Flag.sequenceNumber | GTPU.Flag.nPDUNumber
        if flags & optionalFlags != 0 {
            guard gtpEnd &- cursor >= GTPU.optionalFieldsLength else { return .gtpLengthShorterThanHeaders }
            packet.sequenceNumber = bytes.u16(cursor)
            packet.nPDUNumber = bytes.u8(cursor &+ 2)
            // The next-extension-type octet means something only when E is set (§5.1): with S or
            // PN alone it is present but there is no chain.
            let nextType = flags & GTPU.Flag.extensionHeader != 0 ? bytes.u8(cursor &+ 3) : 0
            cursor += GTPU.optionalFieldsLength
            if nextType != GTPU.ExtensionType.noMore {
                if let reason = parseExtensions(bytes, first: nextType, at: &cursor, end: gtpEnd,
                                                options: options, into: &packet) {
                    return reason
                }
            }
        }
        packet.payloadOffset = UInt32(truncatingIfNeeded: cursor)
        packet.payloadEnd = UInt32(truncatingIfNeeded: gtpEnd)

        switch messageType {
        case GTPU.MessageType.gPDU:
            packet.kind = .gPDU
            guard packet.teid != 0 else { return .gpduTEIDZero }
            guard gtpEnd > cursor else { return .gpduEmpty }
            return InnerPacketParser.parse(bytes, at: cursor, end: gtpEnd, options: options, into: &packet)
        case GTPU.MessageType.echoRequest:
            packet.kind = .echoRequest
            // §7.2.1: Echo Request carries a sequence number so the response can be matched.
            guard flags & GTPU.Flag.sequenceNumber != 0 else { return .echoWithoutSequenceNumber }
            return parseInformationElements(bytes, at: cursor, end: gtpEnd, into: &packet)
        case GTPU.MessageType.echoResponse:
            packet.kind = .echoResponse
            guard flags & GTPU.Flag.sequenceNumber != 0 else { return .echoWithoutSequenceNumber }
            if let reason = parseInformationElements(bytes, at: cursor, end: gtpEnd, into: &packet) { return reason }
            return packet.hasRecovery ? nil : .gtpMissingMandatoryInformationElement
        case GTPU.MessageType.errorIndication:
            packet.kind = .errorIndication
            if let reason = parseInformationElements(bytes, at: cursor, end: gtpEnd, into: &packet) { return reason }
            return packet.hasTEIDDataI && packet.hasGSNAddress ? nil : .gtpMissingMandatoryInformationElement
        case GTPU.MessageType.endMarker:
            packet.kind = .endMarker
            return parseInformationElements(bytes, at: cursor, end: gtpEnd, into: &packet)
        case GTPU.MessageType.supportedExtensionHeadersNotification:
            packet.kind = .supportedExtensionHeadersNotification
            return parseInformationElements(bytes, at: cursor, end: gtpEnd, into: &packet)
        default:
            return .gtpUnknownMessageType
        }
    }

    /// Walks the extension-header chain (§5.2): each header is a length octet in units of 4
    /// octets, its content, and the type of the next one. The walk is bounded in count, and every
    /// length is checked against the GTP-U Length before the header is read.
    static func parseExtensions(_ bytes: PacketBytes, first: UInt8, at cursor: inout Int, end: Int,
                                options: ParserOptions, into packet: inout ParsedPacket) -> DropReason? {
        var type = first
        var count = 0
        while type != GTPU.ExtensionType.noMore {
            count += 1
            guard count <= ParserLimits.maxGTPExtensionHeaders else { return .gtpExtensionChainTooLong }
            guard end &- cursor >= 1 else { return .gtpExtensionTruncated }
            let length = Int(bytes.u8(cursor)) * 4
            guard length > 0 else { return .gtpExtensionZeroLength }
            guard length <= end &- cursor else { return .gtpExtensionTruncated }
            switch type {
            case GTPU.ExtensionType.pduSessionContainer:
                if let reason = parsePDUSessionContainer(bytes, at: cursor &+ 1, contentLength: length - 2,
                                                          options: options, into: &packet) {
                    return reason
                }
            case GTPU.ExtensionType.udpPort:
                guard length == 4 else { return .gtpExtensionBadLength }
                packet.hasUDPPortExtension = true
                packet.udpPortExtension = bytes.u16(cursor &+ 1)
            case GTPU.ExtensionType.pdcpPDUNumber:
                guard length == 4 else { return .gtpExtensionBadLength }
                packet.hasPDCPNumber = true
                packet.pdcpNumber = UInt32(bytes.u16(cursor &+ 1))
            case GTPU.ExtensionType.longPDCPPDUNumber:
                guard length == 8 else { return .gtpExtensionBadLength }
                packet.hasPDCPNumber = true
                packet.pdcpNumber = bytes.u32(cursor) & 0x0003_FFFF
            case GTPU.ExtensionType.serviceClassIndicator, GTPU.ExtensionType.ranContainer,
                 GTPU.ExtensionType.xwRANContainer, GTPU.ExtensionType.nrRANContainer:
                // Known, carried transparently; nothing here the user plane acts on.
                break
            default:
                // §5.2.1: an endpoint must understand a header whose type has bit 8 set; without
                // it the header may be skipped.
                guard type & GTPU.ExtensionType.comprehensionRequiredByEndpoint == 0 else {
                    return .gtpExtensionComprehensionRequired
                }
                packet.skippedExtensionCount &+= 1
            }
            type = bytes.u8(cursor &+ length - 1)
            cursor += length
        }
        packet.extensionCount = UInt8(count)
        return nil
    }

    /// The PDU Session Container (TS 38.415 §5.5.2.1 DL, §5.5.2.2 UL). `contentLength` excludes
    /// the length and next-type octets. The flags announce optional fields; the content must hold
    /// them all.
    static func parsePDUSessionContainer(_ bytes: PacketBytes, at offset: Int, contentLength: Int,
                                         options: ParserOptions, into packet: inout ParsedPacket) -> DropReason? {
        guard contentLength >= 2 else { return .pscBadLength }
        let first = bytes.u8(offset)
        let second = bytes.u8(offset &+ 1)
        let pduType = first >> 4
        var required = 2
        var psc = PDUSessionInformation()
        psc.present = true
        psc.pduType = pduType
        psc.qfi = second & 0x3F
        switch pduType {
        case GTPU.PDUType.downlink:
            guard options.direction != .uplink else { return .pscWrongDirection }
            let qmp = first & 0x08 != 0, snp = first & 0x04 != 0, msnp = first & 0x02 != 0
            psc.ppp = second & 0x80 != 0
            psc.rqi = second & 0x40 != 0
            if psc.ppp { required += 1 }
            if qmp { required += 8 }
            if snp { required += 3 }
            if msnp { required += 4 }
            guard contentLength >= required else { return .pscBadLength }
            if psc.ppp { psc.ppi = bytes.u8(offset &+ 2) >> 5 }
        case GTPU.PDUType.uplink:
            guard options.direction != .downlink else { return .pscWrongDirection }
            let qmp = first & 0x08 != 0, dlDelay = first & 0x04 != 0
            let ulDelay = first & 0x02 != 0, snp = first & 0x01 != 0
            let n3n9Delay = second & 0x80 != 0, newIE = second & 0x40 != 0
            if qmp { required += 24 }
            if dlDelay { required += 4 }
            if ulDelay { required += 4 }
            if snp { required += 3 }
            if n3n9Delay { required += 4 }
            if newIE { required += 1 }
            guard contentLength >= required else { return .pscBadLength }
        default:
            return .pscBadPDUType
        }
        guard psc.qfi != 0 else { return .pscQFIZero }
        packet.psc = psc
        return nil
    }

    /// Information elements of GTP-U messages (§8): TV elements have lengths fixed by their type,
    /// TLV elements (type ≥ 128) carry a 2-octet length. An unknown TV type cannot be skipped.
    static func parseInformationElements(_ bytes: PacketBytes, at start: Int, end: Int,
                                         into packet: inout ParsedPacket) -> DropReason? {
        var cursor = start
        while cursor < end {
            let type = bytes.u8(cursor)
            let valueOffset: Int
            let valueLength: Int
            switch type {
            case GTPU.InformationElement.recovery:
                valueOffset = cursor &+ 1; valueLength = 1
            case GTPU.InformationElement.teidDataI:
                valueOffset = cursor &+ 1; valueLength = 4
            case GTPU.InformationElement.extensionHeaderTypeList:
                // TS 29.281 §8.5 (after 29.060 §7.7.40): a one-octet length.
                guard end &- cursor >= 2 else { return .gtpMalformedInformationElement }
                valueOffset = cursor &+ 2; valueLength = Int(bytes.u8(cursor &+ 1))
            case 128...:
                guard end &- cursor >= 3 else { return .gtpMalformedInformationElement }
                valueOffset = cursor &+ 3; valueLength = Int(bytes.u16(cursor &+ 1))
            default:
                return .gtpMalformedInformationElement
            }
            guard valueLength <= end &- valueOffset else { return .gtpMalformedInformationElement }
            switch type {
            case GTPU.InformationElement.recovery:
                packet.hasRecovery = true
                packet.recoveryCounter = bytes.u8(valueOffset)
            case GTPU.InformationElement.teidDataI:
                packet.hasTEIDDataI = true
                packet.teidDataI = bytes.u32(valueOffset)
            case GTPU.InformationElement.gsnAddress:
                switch valueLength {
                case 4: packet.gsnAddress = bytes.ipv4Address(valueOffset)
                case 16: packet.gsnAddress = bytes.ipv6Address(valueOffset)
                default: return .gtpMalformedInformationElement
                }
                packet.hasGSNAddress = true
            default:
                break
            }
            cursor = valueOffset &+ valueLength
        }
        return nil
    }
}

/// The T-PDU of a G-PDU: the user's IPv4 or IPv6 packet, read for the 5-tuple SDF filters match.
enum InnerPacketParser {
    static func parse(_ bytes: PacketBytes, at offset: Int, end: Int, options: ParserOptions,
                      into packet: inout ParsedPacket) -> DropReason? {
        var flow = InnerFlow()
        let l4Offset: Int
        let l4End: Int
        switch bytes.u8(offset) >> 4 {
        case 4:
            let header: IPv4Header
            switch IPv4Header.read(bytes, at: offset, end: end, verifyChecksum: options.verifyInnerIPv4Checksum) {
            case .success(let h): header = h
            case .failure(let fault): return fault.innerReason
            }
            flow.version = 4
            flow.source = bytes.ipv4Address(offset &+ 12)
            flow.destination = bytes.ipv4Address(offset &+ 16)
            flow.proto = header.proto
            flow.trafficClass = header.tos
            flow.isFragment = header.fragmentOffset != 0
            l4Offset = header.payloadOffset
            l4End = header.end
        case 6:
            let header: IPv6Header
            switch IPv6Header.read(bytes, at: offset, end: end) {
            case .success(let h): header = h
            case .failure(let fault): return fault.innerIPv6Reason
            }
            flow.version = 6
            flow.source = bytes.ipv6Address(offset &+ 8)
            flow.destination = bytes.ipv6Address(offset &+ 24)
            flow.proto = header.proto
            flow.trafficClass = header.trafficClass
            flow.isFragment = header.isLaterFragment
            l4Offset = header.payloadOffset
            l4End = header.end
        default:
            return .innerIPVersionUnknown
        }
        packet.innerL4Offset = UInt32(truncatingIfNeeded: l4Offset)
        if !flow.isFragment {
            // TCP, UDP and SCTP lead with the two ports; their headers must be whole to be trusted.
            let minimumHeader: Int
            switch flow.proto {
            case IPProtocol.tcp: minimumHeader = 20
            case IPProtocol.udp: minimumHeader = 8
            case IPProtocol.sctp: minimumHeader = 12
            default: minimumHeader = 0
            }
            if minimumHeader > 0 {
                guard l4End &- l4Offset >= minimumHeader else { return .innerL4Truncated }
                if flow.proto == IPProtocol.tcp {
                    let dataOffset = Int(bytes.u8(l4Offset &+ 12) >> 4) &* 4
                    guard dataOffset >= 20, dataOffset <= l4End &- l4Offset else { return .innerL4Truncated }
                }
                flow.sourcePort = bytes.u16(l4Offset)
                flow.destinationPort = bytes.u16(l4Offset &+ 2)
                flow.hasPorts = true
            }
        }
        packet.inner = flow
        return nil
    }
}
