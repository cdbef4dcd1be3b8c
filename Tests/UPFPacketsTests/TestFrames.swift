import UPFPackets

/// Hand assembly of test frames, byte by byte, from the header layouts of the RFCs and of
/// TS 29.281 / TS 38.415 — deliberately independent of the project's own builders.
enum TestFrames {
    static func hex(_ text: String) -> [UInt8] {
        let digits = text.filter { !$0.isWhitespace }
        var bytes: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            bytes.append(UInt8(digits[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count { sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]); i += 2 }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func ethernet(_ payload: [UInt8], etherType: UInt16 = 0x0800, vlans: [(tpid: UInt16, vid: UInt16)] = []) -> [UInt8] {
        var frame = hex("020000000002 020000000001")
        for tag in vlans { frame += be16(tag.tpid) + be16(tag.vid) }
        return frame + be16(etherType) + payload
    }

    static func ipv4(src: UInt32 = 0x0A00_0001, dst: UInt32 = 0x0A00_0002, proto: UInt8 = 17,
                     _ payload: [UInt8], id: UInt16 = 1, flagsFragment: UInt16 = 0, options: [UInt8] = [],
                     totalLengthOverride: Int? = nil, ihlOverride: UInt8? = nil, badChecksum: Bool = false,
                     version: UInt8 = 4, tos: UInt8 = 0) -> [UInt8] {
        let headerLength = 20 + options.count
        let ihl = ihlOverride ?? UInt8(headerLength / 4)
        let total = totalLengthOverride ?? headerLength + payload.count
        var header = [version << 4 | ihl, tos] + be16(UInt16(total)) + be16(id) + be16(flagsFragment) + [64, proto, 0, 0]
            + be32(src) + be32(dst) + options
        let sum = checksum(header)
        header[10] = UInt8(sum >> 8)
        header[11] = UInt8(sum & 0xFF) ^ (badChecksum ? 0x5A : 0)
        return header + payload
    }

    static let v6a: [UInt8] = hex("20010db8000000000000000000000001")
    static let v6b: [UInt8] = hex("20010db8000000000000000000000002")

    static func ipv6(src: [UInt8] = v6a, dst: [UInt8] = v6b, nextHeader: UInt8 = 17, _ payload: [UInt8],
                     payloadLengthOverride: Int? = nil, trafficClass: UInt8 = 0) -> [UInt8] {
        let first = UInt32(6) << 28 | UInt32(trafficClass) << 20
        return be32(first) + be16(UInt16(payloadLengthOverride ?? payload.count)) + [nextHeader, 64] + src + dst + payload
    }

    static func udp(sport: UInt16 = 2152, dport: UInt16 = 2152, _ payload: [UInt8], checksum: UInt16 = 0,
                    lengthOverride: Int? = nil) -> [UInt8] {
        be16(sport) + be16(dport) + be16(UInt16(lengthOverride ?? 8 + payload.count)) + be16(checksum) + payload
    }

    static func tcp(sport: UInt16 = 40000, dport: UInt16 = 80, dataOffsetWords: UInt8 = 5, payload: [UInt8] = []) -> [UInt8] {
        be16(sport) + be16(dport) + be32(1) + be32(0) + [dataOffsetWords << 4, 0x18] + be16(65535) + [0, 0, 0, 0]
            + Array(repeating: 0, count: max(0, Int(dataOffsetWords) * 4 - 20)) + payload
    }

    static func icmpEcho() -> [UInt8] { hex("0800f7fe00010001") }

    /// A GTP-U header and what follows it. `optional` adds the 4 optional octets even when no
    /// flag asks for them (the parser must then ignore them); `nextExtension` is octet 12.
    static func gtp(flags: UInt8 = 0x30, type: UInt8 = 0xFF, teid: UInt32 = 0x1234, sequence: UInt16 = 0,
                    npdu: UInt8 = 0, nextExtension: UInt8 = 0, extensions: [UInt8] = [], _ payload: [UInt8],
                    lengthOverride: Int? = nil) -> [UInt8] {
        var rest: [UInt8] = []
        if flags & 0x07 != 0 { rest += be16(sequence) + [npdu, nextExtension] }
        rest += extensions + payload
        return [flags, type] + be16(UInt16(lengthOverride ?? rest.count)) + be32(teid) + rest
    }

    /// An uplink PDU Session Container (type 1) with a QFI, next type 0.
    static func pscUplink(qfi: UInt8, next: UInt8 = 0) -> [UInt8] { [0x01, 0x10, qfi & 0x3F, next] }
    /// A downlink PDU Session Container (type 0).
    static func pscDownlink(qfi: UInt8, rqi: Bool = false, ppi: UInt8? = nil, next: UInt8 = 0) -> [UInt8] {
        var content: [UInt8] = [0x00, (ppi != nil ? 0x80 : 0) | (rqi ? 0x40 : 0) | (qfi & 0x3F)]
        if let ppi { content.append(ppi << 5) }
        while (content.count + 2) % 4 != 0 { content.append(0) }
        return [UInt8((content.count + 2) / 4)] + content + [next]
    }

    static let innerUDP = ipv4(src: 0x0A3C_0001, dst: 0xC0A8_0164, proto: 17, udp(sport: 5000, dport: 8080, [1, 2, 3, 4]))

    /// Ethernet / IPv4 / UDP 2152 around a GTP-U datagram.
    static func n3(_ gtpBytes: [UInt8], sport: UInt16 = 2152) -> [UInt8] {
        ethernet(ipv4(src: 0xC0A8_0001, dst: 0xC0A8_0002, udp(sport: sport, gtpBytes)))
    }

    static func parse(_ frame: [UInt8], link: LinkLayer = .ethernet,
                      options: ParserOptions = ParserOptions()) -> Result<ParsedPacket, DropReason> {
        frame.withUnsafeBytes { PacketParser.parse($0, link: link, options: options) }
    }

    static func dropReason(_ frame: [UInt8], options: ParserOptions = ParserOptions()) -> DropReason? {
        if case .failure(let reason) = parse(frame, options: options) { return reason }
        return nil
    }

    static func parsed(_ frame: [UInt8], link: LinkLayer = .ethernet, options: ParserOptions = ParserOptions()) -> ParsedPacket? {
        if case .success(let packet) = parse(frame, link: link, options: options) { return packet }
        return nil
    }
}
