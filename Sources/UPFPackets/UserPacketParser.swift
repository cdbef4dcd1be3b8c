/// Plain (untunnelled) user packets: what arrives on N6 from the data network and on engine ports
/// from the inference engines, Ethernet-framed IPv4 or IPv6 addressed to a UE.
///
/// The inner-packet rules of the G-PDU parser apply unchanged (header checks, the IPv4 header
/// checksum, whole TCP/UDP/SCTP port headers), so a packet is judged the same whether it came
/// through a tunnel or not. A UDP packet to port 2152 is user data here: only the caller decides
/// that a frame is GTP-U (by its destination being one of the service's own addresses).
extension PacketParser {
    /// Parses an Ethernet frame carrying a plain IP packet. On success the result's `inner` is
    /// the packet's flow, `payloadOffset..<payloadEnd` the IP datagram (Ethernet padding
    /// excluded), `l3Offset` its start and `kind` `.nonGTP`. ARP and other EtherTypes are not
    /// errors: `kind` says `.arp` or `.nonGTP` with `inner.version == 0`.
    public static func parseUserPacket(_ bytes: PacketBytes, options: ParserOptions = ParserOptions(),
                                       into packet: inout ParsedPacket) -> DropReason? {
        packet = ParsedPacket()
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
        packet.etherType = etherType
        let l3 = offset &+ 2
        packet.l3Offset = UInt32(truncatingIfNeeded: l3)
        packet.kind = etherType == EtherType.arp ? .arp : .nonGTP
        guard etherType == EtherType.ipv4 || etherType == EtherType.ipv6 else { return nil }
        guard bytes.count > l3 else { return etherType == EtherType.ipv4 ? .innerIPv4Truncated : .innerIPv6Truncated }
        // The EtherType and the version nibble must agree, as on the outer header of a tunnel.
        guard bytes.u8(l3) >> 4 == (etherType == EtherType.ipv4 ? 4 : 6) else { return .outerIPVersionMismatch }
        return InnerPacketParser.parseUserDatagram(bytes, at: l3, options: options, into: &packet)
    }
}

extension InnerPacketParser {
    /// The inner-packet checks on a datagram that starts at `offset` and ends where its own length
    /// field says (frames may carry link-layer padding after it).
    static func parseUserDatagram(_ bytes: PacketBytes, at offset: Int, options: ParserOptions,
                                  into packet: inout ParsedPacket) -> DropReason? {
        let end: Int
        if bytes.u8(offset) >> 4 == 4 {
            guard bytes.count &- offset >= 20 else { return .innerIPv4Truncated }
            end = offset &+ Int(bytes.u16(offset &+ 2))
            guard end <= bytes.count else { return .innerIPv4TotalLengthExceedsPayload }
        } else {
            guard bytes.count &- offset >= 40 else { return .innerIPv6Truncated }
            let payloadLength = Int(bytes.u16(offset &+ 4))
            // A jumbogram (payload length 0 + Hop-by-Hop option) is refused by the inner parser.
            end = offset &+ 40 &+ payloadLength
            guard end <= bytes.count else { return .innerIPv6PayloadLengthExceedsPayload }
        }
        packet.payloadOffset = UInt32(truncatingIfNeeded: offset)
        packet.payloadEnd = UInt32(truncatingIfNeeded: end)
        packet.l3End = UInt32(truncatingIfNeeded: end)
        return parse(bytes, at: offset, end: end, options: options, into: &packet)
    }
}
