#if canImport(Glibc)
import Glibc
#endif

// The frame mix of parse-bench, built in memory from a fixed seed.
//
//   70 %  uplink G-PDU: flags 0x34, UL PDU Session Container, inner IPv4 TCP (2/3) or UDP (1/3)
//   20 %  downlink G-PDU: DL PDU Session Container (1 in 4 with RQI, 1 in 10 with PPP/PPI),
//         inner IPv4 TCP/UDP
//    5 %  G-PDU with UL PSC and inner IPv6 TCP/UDP (3 in 10 behind a Hop-by-Hop header)
//    3 %  path management: Echo Request (40 %), Echo Response with Recovery (40 %),
//         Error Indication with TEID Data I and GSN Address (20 %)
//    2 %  bad packets, cycling through the cases of BAD_INPUTS.md (plus a DNS answer from 2152)
//
// Transport: Ethernet/IPv4 (DF set, UDP checksum 0); 1 G-PDU in 10 carries an 802.1Q tag and
// 1 in 20 travels over outer IPv6 (with a UDP checksum). Inner payloads: 60 % 1200-1380 octets,
// 40 % 0-100 octets; 1 TCP segment in 2 carries 12 octets of options.

/// xorshift64*: a fixed, portable sequence.
struct RNG {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func u16() -> UInt16 { UInt16(truncatingIfNeeded: next() >> 17) }
    mutating func u32() -> UInt32 { UInt32(truncatingIfNeeded: next() >> 11) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
}

enum Category: Int, CaseIterable {
    case uplink, downlink, innerIPv6, pathManagement, bad
    var name: String {
        switch self {
        case .uplink: "uplink G-PDU (UL PSC, inner IPv4)"
        case .downlink: "downlink G-PDU (DL PSC, inner IPv4)"
        case .innerIPv6: "G-PDU with inner IPv6"
        case .pathManagement: "echo / error indication"
        case .bad: "bad packets"
        }
    }
}

// MARK: - byte helpers

extension Array where Element == UInt8 {
    mutating func u8(_ v: UInt8) { append(v) }
    mutating func u16(_ v: UInt16) { append(UInt8(v >> 8)); append(UInt8(v & 0xFF)) }
    mutating func u32(_ v: UInt32) { u16(UInt16(v >> 16)); u16(UInt16(v & 0xFFFF)) }
    mutating func set16(_ offset: Int, _ v: UInt16) { self[offset] = UInt8(v >> 8); self[offset + 1] = UInt8(v & 0xFF) }
}

func onesComplement(_ bytes: ArraySlice<UInt8>) -> UInt16 {
    var sum: UInt32 = 0
    var i = bytes.startIndex
    while i + 1 < bytes.endIndex {
        sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
        i += 2
    }
    if i < bytes.endIndex { sum += UInt32(bytes[i]) << 8 }
    while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
    return ~UInt16(sum)
}

// MARK: - headers

func ethernet(vlan: UInt16?, etherType: UInt16) -> [UInt8] {
    var b: [UInt8] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02]
    if let vlan { b.u16(0x8100); b.u16(vlan) }
    b.u16(etherType)
    return b
}

func ipv4(proto: UInt8, source: UInt32, destination: UInt32, payload: [UInt8], tos: UInt8 = 0,
          identification: UInt16 = 0, flags: UInt16 = 0x4000, totalLength: Int? = nil,
          ihl: UInt8 = 5, corruptChecksum: Bool = false) -> [UInt8] {
    var h: [UInt8] = []
    h.u8(0x40 | ihl); h.u8(tos); h.u16(UInt16(totalLength ?? 20 + payload.count)); h.u16(identification)
    h.u16(flags); h.u8(64); h.u8(proto); h.u16(0); h.u32(source); h.u32(destination)
    h.set16(10, onesComplement(h[...]) ^ (corruptChecksum ? 0x0101 : 0))
    return h + payload
}

func ipv6(nextHeader: UInt8, source: (UInt64, UInt64), destination: (UInt64, UInt64), payload: [UInt8],
          trafficClass: UInt8 = 0) -> [UInt8] {
    var h: [UInt8] = []
    h.u32(0x6000_0000 | UInt32(trafficClass) << 20 | 0x1_2345); h.u16(UInt16(payload.count))
    h.u8(nextHeader); h.u8(64)
    for word in [source.0, source.1, destination.0, destination.1] {
        h.u32(UInt32(word >> 32)); h.u32(UInt32(word & 0xFFFF_FFFF))
    }
    return h + payload
}

func udp(source: UInt16, destination: UInt16, payload: [UInt8], checksum: UInt16 = 0) -> [UInt8] {
    var h: [UInt8] = []
    h.u16(source); h.u16(destination); h.u16(UInt16(8 + payload.count)); h.u16(checksum)
    return h + payload
}

func tcp(source: UInt16, destination: UInt16, options: Int, payload: [UInt8], rng: inout RNG) -> [UInt8] {
    var h: [UInt8] = []
    h.u16(source); h.u16(destination); h.u32(rng.u32()); h.u32(rng.u32())
    h.u8(UInt8((20 + options) / 4) << 4); h.u8(0x18); h.u16(0xFFFF); h.u16(rng.u16()); h.u16(0)
    h += [UInt8](repeating: 0x01, count: options)
    return h + payload
}

/// GTP-U header; `optional` is the 4 octets of sequence / N-PDU / next type when any of E, S, PN.
func gtpu(flags: UInt8, type: UInt8, teid: UInt32, optional: [UInt8] = [], body: [UInt8],
          length: Int? = nil) -> [UInt8] {
    var h: [UInt8] = []
    h.u8(flags); h.u8(type); h.u16(UInt16(length ?? optional.count + body.count)); h.u32(teid)
    return h + optional + body
}

func ulPSC(qfi: UInt8) -> [UInt8] { [1, 0x10, qfi & 0x3F, 0] }

func dlPSC(qfi: UInt8, rqi: Bool, ppi: UInt8?) -> [UInt8] {
    if let ppi { return [2, 0x00, 0x80 | (rqi ? 0x40 : 0) | qfi, ppi << 5, 0, 0, 0, 0] }
    return [1, 0x00, (rqi ? 0x40 : 0) | qfi, 0]
}

// MARK: - the mix

struct MixBuilder {
    var rng: RNG
    var badIndex = 0
    let upfN3: UInt32 = 0x0A00_0001        // 10.0.0.1
    let upfN3v6: (UInt64, UInt64) = (0x2001_0DB8_0000_0001, 1)

    init(seed: UInt64) { rng = RNG(seed: seed) }

    mutating func payload() -> [UInt8] {
        let n = rng.chance(60) ? 1200 + rng.below(181) : rng.below(101)
        return [UInt8](repeating: 0xA5, count: n)
    }

    mutating func innerIPv4() -> [UInt8] {
        let ue = 0x0A2D_0000 | UInt32(rng.below(65536))                 // 10.45.x.y
        let server = 0x5DB8_0000 | UInt32(rng.below(65536))             // 93.184.x.y
        let body = payload()
        if rng.below(3) < 2 {
            let segment = tcp(source: UInt16(32768 + rng.below(28000)), destination: rng.chance(80) ? 443 : 80,
                              options: rng.chance(50) ? 12 : 0, payload: body, rng: &rng)
            return ipv4(proto: 6, source: ue, destination: server, payload: segment, identification: rng.u16())
        }
        let datagram = udp(source: UInt16(32768 + rng.below(28000)), destination: rng.chance(50) ? 443 : 53,
                           payload: body, checksum: rng.u16())
        return ipv4(proto: 17, source: ue, destination: server, payload: datagram, identification: rng.u16())
    }

    mutating func innerIPv6() -> [UInt8] {
        let ue: (UInt64, UInt64) = (0x2001_0DB8_00AA_0000 | UInt64(rng.below(65536)), rng.next())
        let server: (UInt64, UInt64) = (0x2606_2800_0220_0001, 0x0248_1893_25C8_1946)
        let body = payload()
        let proto: UInt8
        var l4: [UInt8]
        if rng.below(3) < 2 {
            proto = 6
            l4 = tcp(source: UInt16(32768 + rng.below(28000)), destination: 443, options: rng.chance(50) ? 12 : 0,
                     payload: body, rng: &rng)
        } else {
            proto = 17
            l4 = udp(source: UInt16(32768 + rng.below(28000)), destination: 443, payload: body, checksum: rng.u16())
        }
        if rng.chance(30) {
            // Hop-by-Hop with one PadN option.
            l4 = [proto, 0, 1, 4, 0, 0, 0, 0] + l4
            return ipv6(nextHeader: 0, source: ue, destination: server, payload: l4)
        }
        return ipv6(nextHeader: proto, source: ue, destination: server, payload: l4)
    }

    /// Wraps a GTP-U datagram in UDP, IP and Ethernet (VLAN and outer IPv6 now and then).
    mutating func transport(_ gtp: [UInt8], gnb: UInt32, allowVariants: Bool = true) -> [UInt8] {
        let vlan: UInt16? = allowVariants && rng.chance(10) ? UInt16(100 + rng.below(20)) : nil
        if allowVariants && rng.chance(5) {
            let gnb6: (UInt64, UInt64) = (0x2001_0DB8_0000_0002, UInt64(gnb))
            let datagram = udp(source: 2152, destination: 2152, payload: gtp, checksum: rng.u16() | 1)
            return ethernet(vlan: vlan, etherType: 0x86DD)
                + ipv6(nextHeader: 17, source: gnb6, destination: upfN3v6, payload: datagram, trafficClass: 0xB8)
        }
        let datagram = udp(source: rng.chance(70) ? 2152 : UInt16(49152 + rng.below(16384)), destination: 2152,
                           payload: gtp)
        return ethernet(vlan: vlan, etherType: 0x0800)
            + ipv4(proto: 17, source: gnb, destination: upfN3, payload: datagram, tos: 0xB8,
                   identification: rng.u16())
    }

    mutating func teid() -> UInt32 { rng.u32() | 1 }
    mutating func gnb() -> UInt32 { 0x0A0A_0000 | UInt32(rng.below(256)) }   // 10.10.0.x

    mutating func next() -> (Category, [UInt8]) {
        let roll = rng.below(1000)
        switch roll {
        case ..<700:
            let g = gtpu(flags: 0x34, type: 0xFF, teid: teid(), optional: [0, 0, 0, 0x85],
                         body: ulPSC(qfi: UInt8(1 + rng.below(9))) + innerIPv4())
            return (.uplink, transport(g, gnb: gnb()))
        case ..<900:
            let psc = dlPSC(qfi: UInt8(1 + rng.below(9)), rqi: rng.chance(25), ppi: rng.chance(10) ? UInt8(rng.below(8)) : nil)
            let g = gtpu(flags: 0x34, type: 0xFF, teid: teid(), optional: [0, 0, 0, 0x85], body: psc + innerIPv4())
            return (.downlink, transport(g, gnb: gnb()))
        case ..<950:
            let g = gtpu(flags: 0x34, type: 0xFF, teid: teid(), optional: [0, 0, 0, 0x85],
                         body: ulPSC(qfi: UInt8(1 + rng.below(9))) + innerIPv6())
            return (.innerIPv6, transport(g, gnb: gnb()))
        case ..<980:
            let sequence = rng.u16()
            let optional: [UInt8] = [UInt8(sequence >> 8), UInt8(sequence & 0xFF), 0, 0]
            let which = rng.below(10)
            let g: [UInt8]
            if which < 4 {
                g = gtpu(flags: 0x32, type: 1, teid: 0, optional: optional, body: [])
            } else if which < 8 {
                g = gtpu(flags: 0x32, type: 2, teid: 0, optional: optional, body: [14, UInt8(rng.below(256))])
            } else {
                var ies: [UInt8] = [16]; ies.u32(teid())
                ies += [133, 0, 4]; ies.u32(upfN3)
                g = gtpu(flags: 0x32, type: 26, teid: 0, optional: optional, body: ies)
            }
            return (.pathManagement, transport(g, gnb: gnb(), allowVariants: false))
        default:
            return (.bad, badFrame())
        }
    }

    /// Cases of ../shared/BAD_INPUTS.md, in turn.
    mutating func badFrame() -> [UInt8] {
        let ul: [UInt8] = [0, 0, 0, 0x85]
        let inner = innerIPv4()
        defer { badIndex += 1 }
        switch badIndex % 15 {
        case 0: // 1: extension header length 0 (the bytes as reported: GTP Length overruns too)
            return transport([0x36, 0xFF, 0x00, 0x34, 0, 0, 0, 1, 0, 0, 0, 0xFF, 0x00], gnb: gnb(), allowVariants: false)
        case 1: // 1: extension header length 0 with a consistent GTP Length
            return transport([0x36, 0xFF, 0x00, 0x05, 0, 0, 0, 1, 0, 0, 0, 0xFF, 0x00], gnb: gnb(), allowVariants: false)
        case 2: // 2: cut right after the next-extension-type octet
            return transport([0x36, 0xFF, 0x00, 0x34, 0, 0, 0, 1, 0, 0, 0, 0xFF], gnb: gnb(), allowVariants: false)
        case 3: // 6: GTP Length larger than the UDP payload
            return transport(gtpu(flags: 0x30, type: 0xFF, teid: teid(), body: inner, length: 0x3033), gnb: gnb())
        case 4: // 19: inner bad IPv4 header checksum
            var bad = inner; bad[10] ^= 0x5A
            return transport(gtpu(flags: 0x34, type: 0xFF, teid: teid(), optional: ul, body: ulPSC(qfi: 9) + bad), gnb: gnb())
        case 5: // 9: G-PDU with TEID 0
            return transport(gtpu(flags: 0x30, type: 0xFF, teid: 0, body: inner), gnb: gnb())
        case 6: // 9: unknown message type
            return transport(gtpu(flags: 0x30, type: 99, teid: teid(), body: [1, 2, 3, 4]), gnb: gnb())
        case 7: // 12: PSC with QFI 0
            return transport(gtpu(flags: 0x34, type: 0xFF, teid: teid(), optional: ul, body: ulPSC(qfi: 0) + inner), gnb: gnb())
        case 8: // 16: inner IHL < 5
            var bad = inner; bad[0] = 0x44
            return transport(gtpu(flags: 0x30, type: 0xFF, teid: teid(), body: bad), gnb: gnb())
        case 9: // 18: inner version nibble 7
            var bad = inner; bad[0] = 0x75
            return transport(gtpu(flags: 0x30, type: 0xFF, teid: teid(), body: bad), gnb: gnb())
        case 10: // 18: inner TCP cut short
            let short = ipv4(proto: 6, source: 0x0A2D_0001, destination: 0x5DB8_0001, payload: [0x80, 0x00, 0x01, 0xBB, 0, 0, 0, 1])
            return transport(gtpu(flags: 0x30, type: 0xFF, teid: teid(), body: short), gnb: gnb())
        case 11: // 15: DNS from port 2152 (not GTP-U; not a drop)
            let dns = udp(source: 2152, destination: 53, payload: [0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0])
            return ethernet(vlan: nil, etherType: 0x0800) + ipv4(proto: 17, source: gnb(), destination: 0x0808_0808, payload: dns)
        case 12: // outer IPv4 header checksum wrong
            let g = gtpu(flags: 0x30, type: 0xFF, teid: teid(), body: inner)
            return ethernet(vlan: nil, etherType: 0x0800)
                + ipv4(proto: 17, source: gnb(), destination: upfN3, payload: udp(source: 2152, destination: 2152, payload: g),
                       corruptChecksum: true)
        case 13: // 16: inner Total Length larger than what is present
            let bad = ipv4(proto: 6, source: 0x0A2D_0001, destination: 0x5DB8_0001,
                           payload: tcp(source: 40000, destination: 443, options: 0, payload: [1, 2, 3], rng: &rng),
                           totalLength: 1480)
            return transport(gtpu(flags: 0x30, type: 0xFF, teid: teid(), body: bad), gnb: gnb())
        default: // 11: unknown extension header with comprehension required
            return transport(gtpu(flags: 0x34, type: 0xFF, teid: teid(), optional: [0, 0, 0, 0xC5],
                                  body: [1, 0, 0, 0] + inner), gnb: gnb())
        }
    }
}

/// Frames laid out like mbufs: one per 2 KiB slot, 128 octets of headroom, so that the IP header
/// behind Ethernet sits at 2 mod 4 as on a NIC.
struct FrameSet {
    struct Ref { var base: UnsafeRawPointer; var count: Int }

    static let slotSize = 2048
    static let headroom = 128

    let storage: UnsafeMutableRawPointer
    let refs: UnsafeMutablePointer<Ref>
    let count: Int
    var categories: [Category]

    init(count: Int, seed: UInt64) {
        self.count = count
        storage = .allocate(byteCount: count * Self.slotSize, alignment: 64)
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: count * Self.slotSize)
        refs = .allocate(capacity: count)
        categories = []
        var builder = MixBuilder(seed: seed)
        for i in 0..<count {
            let (category, bytes) = builder.next()
            precondition(bytes.count <= Self.slotSize - Self.headroom)
            let base = storage + i * Self.slotSize + Self.headroom
            bytes.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            refs[i] = Ref(base: UnsafeRawPointer(base), count: bytes.count)
            categories.append(category)
        }
    }

    /// Writes the frames as a classic pcap (for tshark).
    func writePcap(to path: String) -> Bool {
        var out: [UInt8] = []
        func le32(_ v: UInt32) { out += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)] }
        func le16(_ v: UInt16) { out += [UInt8(v & 0xFF), UInt8(v >> 8)] }
        le32(0xA1B2_C3D4); le16(2); le16(4); le32(0); le32(0); le32(65535); le32(1)
        for i in 0..<count {
            let r = refs[i]
            le32(UInt32(i)); le32(0); le32(UInt32(r.count)); le32(UInt32(r.count))
            out += UnsafeRawBufferPointer(start: r.base, count: r.count)
        }
        guard let file = fopen(path, "wb") else { return false }
        defer { fclose(file) }
        return fwrite(out, 1, out.count, file) == out.count
    }
}
