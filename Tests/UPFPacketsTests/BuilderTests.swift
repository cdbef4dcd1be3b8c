import Foundation
import Testing
import UPFPackets

/// Byte vectors written by hand from TS 29.281 (GTP-U), TS 38.415 (PDU Session Container),
/// RFC 791/8200/768 (outer headers) and IEEE 802.1Q, one per builder and option.
@Suite struct BuilderTests {
    static let v4a: UInt32 = 0xC0A8_0001 // 192.168.0.1
    static let v4b: UInt32 = 0xC0A8_0002 // 192.168.0.2
    static let v6a = IPAddress("2001:db8::1")!
    static let v6b = IPAddress("2001:db8::2")!
    static let payload: [UInt8] = [0xDE, 0xAD, 0xBE, 0xEF]

    // MARK: Byte stores

    @Test func bigEndianStoresAtOddOffsets() {
        var bytes = [UInt8](repeating: 0, count: 32)
        bytes.withUnsafeMutableBytes { raw in
            let p = raw.baseAddress!
            p.storeByte(0x11, toByteOffset: 0)
            p.storeBigEndian(UInt16(0x2233), toByteOffset: 1)
            p.storeBigEndian(UInt32(0x4455_6677), toByteOffset: 3)
            p.storeBigEndian(UInt64(0x8899_AABB_CCDD_EEFF), toByteOffset: 7)
            p.storeIPv6Address(IPAddress("2001:db8::ff")!, toByteOffset: 15)
        }
        #expect(bytes == hx("11 2233 44556677 8899aabbccddeeff 20010db80000000000000000000000ff 00"))
    }

    // MARK: G-PDU encapsulation

    /// Outer IPv4, no container: flags 0x30, GTP-U Length = payload only, UDP checksum zero.
    @Test func encapsulationIPv4Plain() throws {
        let e = GTPUEncapsulation(outer: GTPUOuterHeader(addresses: .ipv4(source: Self.v4a, destination: Self.v4b)),
                                  teid: 0x1234_5678)
        #expect(e.headerLength == 36)
        let (written, bytes) = try encapsulate(e, payload: Self.payload)
        #expect(written == 36)
        #expect(bytes == hx("""
            45000028 00004000 4011b971 c0a80001 c0a80002
            08680868 00140000
            30ff0004 12345678
            deadbeef
            """))
    }

    /// Outer IPv4 with a DL container (QFI 9, RQI): flags 0x34 (E only, never S or PN),
    /// sequence 0, N-PDU 0, next type 0x85, then 01 | 0x00 (type 0) | 0x49 (RQI, QFI 9) | 00.
    /// TOS, TTL, Identification and DF as configured.
    @Test func encapsulationIPv4DownlinkContainer() throws {
        let outer = GTPUOuterHeader(addresses: .ipv4(source: Self.v4a, destination: Self.v4b), hopLimit: 255,
                                    trafficClass: 0xB8, ipv4Identification: 0x1234, dontFragment: false)
        let e = GTPUEncapsulation(outer: outer, teid: 0x1234_5678, pduSessionContainer: .downlink(qfi: 9, rqi: true))
        #expect(e.headerLength == 44)
        let (written, bytes) = try encapsulate(e, payload: Self.payload)
        #expect(written == 44)
        #expect(bytes == hx("""
            45b80030 12340000 ff11277d c0a80001 c0a80002
            08680868 001c0000
            34ff000c 12345678 00000085 01004900
            deadbeef
            """))
    }

    /// A DL container with a PPI sets PPP and takes 8 octets: length 2, type 0, 0x81 (PPP, QFI 1),
    /// PPI 5 in the top three bits (0xa0), three octets of padding, next type 0.
    @Test func encapsulationDownlinkContainerWithPPI() throws {
        let e = GTPUEncapsulation(outer: GTPUOuterHeader(addresses: .ipv4(source: Self.v4a, destination: Self.v4b)),
                                  teid: 0x1234_5678, pduSessionContainer: .downlink(qfi: 1, ppi: 5))
        #expect(e.headerLength == 48)
        let (_, bytes) = try encapsulate(e, payload: Self.payload)
        #expect(Array(bytes[28...]) == hx("34ff0010 12345678 00000085 020081a0 00000000 deadbeef"))
        #expect(Array(bytes[0..<4]) == hx("45000034"))
        #expect(Array(bytes[24..<26]) == hx("0020")) // UDP length: 8 + 20 of GTP-U header + 4
    }

    /// Outer IPv6 with an UL container (QFI 5): version/traffic class/flow label word 6b812345,
    /// payload length, next header 17, hop limit 64, and the mandatory UDP checksum.
    @Test func encapsulationIPv6UplinkContainer() throws {
        let outer = GTPUOuterHeader(addresses: .ipv6(source: Self.v6a, destination: Self.v6b),
                                    trafficClass: 0xB8, flowLabel: 0x12345)
        let e = GTPUEncapsulation(outer: outer, teid: 0x1234_5678, pduSessionContainer: .uplink(qfi: 5))
        #expect(e.headerLength == 64)
        let (written, bytes) = try encapsulate(e, payload: Self.payload)
        #expect(written == 64)
        #expect(bytes == hx("""
            6b812345 001c1140
            20010db8000000000000000000000001 20010db8000000000000000000000002
            08680868 001c5187
            34ff000c 12345678 00000085 01100500
            deadbeef
            """))
    }

    /// The UDP checksum option over IPv4 covers the payload and verifies.
    @Test func encapsulationIPv4WithUDPChecksum() throws {
        var outer = GTPUOuterHeader(addresses: .ipv4(source: Self.v4a, destination: Self.v4b), ipv4UDPChecksum: true)
        outer.dscp = 46
        #expect(outer.trafficClass == 0xB8)
        let e = GTPUEncapsulation(outer: outer, teid: 7, pduSessionContainer: .downlink(qfi: 63))
        let inner = (0..<101).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        let (_, bytes) = try encapsulate(e, payload: inner)
        #expect(bytes[1] == 0xB8)
        let udp = Array(bytes[20...])
        #expect(udp[6] != 0 || udp[7] != 0)
        udp.withUnsafeBytes { #expect(InternetChecksum.isValidUDPIPv4(source: Self.v4a, destination: Self.v4b, datagram: $0)) }
        Array(bytes[0..<20]).withUnsafeBytes { #expect(InternetChecksum.isValidIPv4Header($0)) }
    }

    /// Out-of-range QFI and PPI are masked to their widths rather than corrupting the neighbours.
    @Test func containerFieldsAreMasked() throws {
        let e = GTPUEncapsulation(outer: GTPUOuterHeader(addresses: .ipv4(source: Self.v4a, destination: Self.v4b)),
                                  teid: 1, pduSessionContainer: .downlink(qfi: 0xFF, rqi: false, ppi: 0xFF))
        let (_, bytes) = try encapsulate(e, payload: [])
        #expect(Array(bytes[40...]) == hx("02 00 bf e0 000000 00"))
    }

    @Test func outerHeaderFamilyFromAddresses() {
        let v4 = GTPUOuterHeader(source: IPAddress(ipv4: Self.v4a), destination: IPAddress("10.0.0.1")!)
        #expect(v4?.addresses == .ipv4(source: Self.v4a, destination: 0x0A00_0001))
        #expect(v4?.length == 28)
        let v6 = GTPUOuterHeader(source: Self.v6a, destination: Self.v6b)
        #expect(v6?.addresses == .ipv6(source: Self.v6a, destination: Self.v6b))
        #expect(v6?.length == 48)
        #expect(GTPUOuterHeader(source: Self.v6a, destination: IPAddress(ipv4: Self.v4a)) == nil)
    }

    // MARK: Bounds

    /// A short buffer is refused with the required size and left untouched.
    @Test func encapsulationBufferTooSmall() {
        let v4 = GTPUEncapsulation(outer: GTPUOuterHeader(addresses: .ipv4(source: Self.v4a, destination: Self.v4b)),
                                   teid: 1)
        var buffer = [UInt8](repeating: 0xAA, count: 35)
        #expect(write(v4, into: &buffer, payloadLength: 0) == .failure(.bufferTooSmall(required: 36, available: 35)))
        #expect(buffer.allSatisfy { $0 == 0xAA })

        // Without a UDP checksum the payload is not read, so the header alone must fit.
        var headerOnly = [UInt8](repeating: 0, count: 36)
        #expect(write(v4, into: &headerOnly, payloadLength: 1000) == .success(36))
        #expect(Array(headerOnly[2..<4]) == hx("040c")) // 1036 = 20 + 8 + 8 + 1000

        // With one (IPv6, or the IPv4 option) the payload must be in the buffer too.
        let v6 = GTPUEncapsulation(outer: GTPUOuterHeader(addresses: .ipv6(source: Self.v6a, destination: Self.v6b)),
                                   teid: 1)
        var short6 = [UInt8](repeating: 0xAA, count: 56 + 99)
        #expect(write(v6, into: &short6, payloadLength: 100) == .failure(.bufferTooSmall(required: 156, available: 155)))
        #expect(short6.allSatisfy { $0 == 0xAA })

        var empty: [UInt8] = []
        #expect(write(v4, into: &empty, payloadLength: 0) == .failure(.bufferTooSmall(required: 36, available: 0)))
    }

    /// Lengths that would overflow a 16-bit length field, or are negative, are refused.
    @Test func encapsulationLengthLimits() {
        let v4 = GTPUEncapsulation(outer: GTPUOuterHeader(addresses: .ipv4(source: Self.v4a, destination: Self.v4b)),
                                   teid: 1)
        #expect(v4.maximumPayloadLength == 65499)
        var buffer = [UInt8](repeating: 0, count: 65535)
        #expect(write(v4, into: &buffer, payloadLength: 65500) == .failure(.lengthOutOfRange(length: 65500, maximum: 65499)))
        #expect(write(v4, into: &buffer, payloadLength: -1) == .failure(.lengthOutOfRange(length: -1, maximum: 65499)))
        #expect(write(v4, into: &buffer, payloadLength: 65499) == .success(36))
        #expect(Array(buffer[2..<4]) == hx("ffff"))

        // IPv6 Payload Length excludes the IPv6 header; a full-size datagram is checksummed.
        let v6 = GTPUEncapsulation(outer: GTPUOuterHeader(addresses: .ipv6(source: Self.v6a, destination: Self.v6b)),
                                   teid: 1, pduSessionContainer: .uplink(qfi: 1))
        #expect(v6.maximumPayloadLength == 65535 - 8 - 16)
        var big = [UInt8](repeating: 0x5A, count: 40 + 65535)
        #expect(write(v6, into: &big, payloadLength: 65511) == .success(64))
        #expect(Array(big[4..<6]) == hx("ffff"))
        Array(big[40...]).withUnsafeBytes {
            #expect(InternetChecksum.isValidUDPIPv6(source: Self.v6a, destination: Self.v6b, datagram: $0))
        }
        #expect(write(v6, into: &big, payloadLength: 65512) == .failure(.lengthOutOfRange(length: 65512, maximum: 65511)))
    }

    // MARK: Signalling messages (GTP-U part only)

    /// §7.2.1: 0x32 (S), type 1, Length 4, TEID 0, sequence, N-PDU 0, next type 0.
    @Test func echoRequest() throws {
        let bytes = try message(16) { b throws(PacketBuildError) in
            try GTPUMessageBuilder.echoRequest(sequence: 0x1234, outer: nil, into: b)
        }
        #expect(bytes == hx("32010004 00000000 12340000"))
    }

    /// §7.2.2: type 2, Length 6, the request's sequence, Recovery IE (14) with restart counter 0.
    @Test func echoResponse() throws {
        let bytes = try message(16) { b throws(PacketBuildError) in
            try GTPUMessageBuilder.echoResponse(sequence: 0x1234, outer: nil, into: b)
        }
        #expect(bytes == hx("32020006 00000000 12340000 0e00"))
    }

    /// §7.3.1 with the UDP Port extension header (§5.2.2.1): flags 0x36 (E, S), type 26, TEID 0,
    /// next type 0x40; extension 01 | port 40000 | 00; TEID Data I (16, TV); GTP-U Peer Address
    /// (133, TLV length 4). Length = 4 + 4 + 5 + 7 = 20.
    @Test func errorIndicationIPv4WithUDPPort() throws {
        let bytes = try message(64) { b throws(PacketBuildError) in
            try GTPUMessageBuilder.errorIndication(teid: 0xDEAD_BEEF, peerAddress: IPAddress(ipv4: Self.v4b),
                                                   triggeringSourcePort: 40000, outer: nil, into: b)
        }
        #expect(bytes == hx("361a0014 00000000 00000040 019c4000 10deadbeef 850004c0a80002"))
    }

    /// §7.3.1 without the extension: flags 0x32, next type 0; a 16-octet peer address.
    @Test func errorIndicationIPv6WithoutUDPPort() throws {
        let bytes = try message(64) { b throws(PacketBuildError) in
            try GTPUMessageBuilder.errorIndication(teid: 0xDEAD_BEEF, peerAddress: Self.v6a, triggeringSourcePort: nil,
                                                   sequence: 5, outer: nil, into: b)
        }
        #expect(bytes == hx("321a001c 00000000 00050000 10deadbeef 850010 20010db8000000000000000000000001"))
    }

    /// §7.3.2: flags 0x30 (no S), type 254, Length 0, the tunnel's TEID, nothing after.
    @Test func endMarker() throws {
        let bytes = try message(16) { b throws(PacketBuildError) in
            try GTPUMessageBuilder.endMarker(teid: 0x0102_0304, outer: nil, into: b)
        }
        #expect(bytes == hx("30fe0000 01020304"))
    }

    /// §7.2.3 + §8.5: type 31, S, TEID 0; IE 141 with a one-octet count and the types.
    @Test func supportedExtensionHeadersNotification() throws {
        let bytes = try message(32) { b throws(PacketBuildError) in
            try GTPUMessageBuilder.supportedExtensionHeadersNotification(
                extensionTypes: [GTPU.ExtensionType.udpPort, GTPU.ExtensionType.pduSessionContainer],
                sequence: 7, outer: nil, into: b)
        }
        #expect(bytes == hx("321f0008 00000000 00070000 8d024085"))

        var buffer = [UInt8](repeating: 0, count: 512)
        let tooMany = [UInt8](repeating: 0x40, count: 256)
        let result = buffer.withUnsafeMutableBytes { b in
            catching { () throws(PacketBuildError) in
                try GTPUMessageBuilder.supportedExtensionHeadersNotification(extensionTypes: tooMany, outer: nil, into: b)
            }
        }
        #expect(result == .failure(.lengthOutOfRange(length: 256, maximum: 255)))
    }

    /// A complete Echo Response datagram back to the requester's port: IPv4 (Total Length 42,
    /// checksum filled), UDP 2152 → 40000 with Length 22, then the message.
    @Test func echoResponseWithOuterIPv4() throws {
        let outer = GTPUOuterHeader(addresses: .ipv4(source: 0x0A00_0001, destination: 0x0A00_0002),
                                    destinationPort: 40000)
        let bytes = try message(64) { b throws(PacketBuildError) in
            try GTPUMessageBuilder.echoResponse(sequence: 0x1234, outer: outer, into: b)
        }
        #expect(bytes == hx("""
            4500002a 00004000 401126c1 0a000001 0a000002
            08689c40 00160000
            32020006 00000000 12340000 0e00
            """))
    }

    /// An End Marker over IPv6 carries a valid, never-zero UDP checksum.
    @Test func endMarkerWithOuterIPv6() throws {
        let outer = GTPUOuterHeader(addresses: .ipv6(source: Self.v6a, destination: Self.v6b))
        let bytes = try message(64) { b throws(PacketBuildError) in
            try GTPUMessageBuilder.endMarker(teid: 0x0102_0304, outer: outer, into: b)
        }
        #expect(bytes.count == 56)
        #expect(Array(bytes[0..<8]) == hx("60000000 00101140"))
        #expect(Array(bytes[40..<46]) == hx("08680868 0010"))
        #expect(Array(bytes[48...]) == hx("30fe0000 01020304"))
        Array(bytes[40...]).withUnsafeBytes {
            #expect(InternetChecksum.isValidUDPIPv6(source: Self.v6a, destination: Self.v6b, datagram: $0))
        }
    }

    @Test func messageBufferTooSmall() {
        let outer = GTPUOuterHeader(addresses: .ipv4(source: Self.v4a, destination: Self.v4b))
        var buffer = [UInt8](repeating: 0xAA, count: 39)
        let withOuter = buffer.withUnsafeMutableBytes { b in
            catching { () throws(PacketBuildError) in try GTPUMessageBuilder.echoRequest(sequence: 1, outer: outer, into: b) }
        }
        #expect(withOuter == .failure(.bufferTooSmall(required: 40, available: 39)))
        let errorIndication = buffer.withUnsafeMutableBytes { b in
            catching { () throws(PacketBuildError) in
                try GTPUMessageBuilder.errorIndication(teid: 1, peerAddress: Self.v6a, triggeringSourcePort: 1,
                                                       outer: nil, into: UnsafeMutableRawBufferPointer(rebasing: b[0..<39]))
            }
        }
        #expect(errorIndication == .failure(.bufferTooSmall(required: 40, available: 39)))
        #expect(buffer.allSatisfy { $0 == 0xAA })
        let none = catching { () throws(PacketBuildError) in
            try GTPUMessageBuilder.endMarker(teid: 1, outer: nil, into: UnsafeMutableRawBufferPointer(start: nil, count: 0))
        }
        #expect(none == .failure(.bufferTooSmall(required: 8, available: 0)))
    }

    // MARK: Ethernet

    @Test func ethernetHeader() throws {
        let dst = MACAddress(0x02, 0, 0, 0, 0, 0x02), src = MACAddress("02:00:00:00:00:01")!
        var plain = [UInt8](repeating: 0, count: 14)
        let n = plain.withUnsafeMutableBytes { b in
            catching { () throws(PacketBuildError) in
                try EthernetHeaderBuilder(destination: dst, source: src, etherType: EtherType.ipv4).write(into: b)
            }
        }
        #expect(n == .success(14))
        #expect(plain == hx("020000000002 020000000001 0800"))

        var tagged = [UInt8](repeating: 0, count: 18)
        let header = EthernetHeaderBuilder(destination: dst, source: src,
                                           vlan: .init(vlanID: 100, priority: 5), etherType: EtherType.ipv6)
        #expect(header.length == 18)
        let m = tagged.withUnsafeMutableBytes { b in catching { () throws(PacketBuildError) in try header.write(into: b) } }
        #expect(m == .success(18))
        #expect(tagged == hx("020000000002 020000000001 8100 a064 86dd"))

        var short = [UInt8](repeating: 0xAA, count: 17)
        let r = short.withUnsafeMutableBytes { b in catching { () throws(PacketBuildError) in try header.write(into: b) } }
        #expect(r == .failure(.bufferTooSmall(required: 18, available: 17)))
        #expect(short.allSatisfy { $0 == 0xAA })
    }

    @Test func macAddressText() {
        #expect(MACAddress("AA-bb-0c-d:e:FF") == MACAddress(0xAABB_0C0D_0EFF))
        #expect(MACAddress(0xAABB_0C0D_0EFF).description == "aa:bb:0c:0d:0e:ff")
        #expect(MACAddress("aa:bb:cc:dd:ee") == nil)
        #expect(MACAddress("aa:bb:cc:dd:ee:ff:00") == nil)
        #expect(MACAddress("aa:bb:cc:dd:ee:fff") == nil)
        #expect(MACAddress("") == nil)
    }

    /// Ethernet, then the encapsulation, in one buffer in front of the inner packet.
    @Test func ethernetThenEncapsulation() throws {
        let e = GTPUEncapsulation(outer: GTPUOuterHeader(addresses: .ipv4(source: Self.v4a, destination: Self.v4b)),
                                  teid: 0x1234_5678)
        let eth = EthernetHeaderBuilder(destination: .broadcast, source: MACAddress(1), etherType: EtherType.ipv4)
        var frame = [UInt8](repeating: 0, count: 14 + 36) + Self.payload
        let total = frame.withUnsafeMutableBytes { b in
            catching { () throws(PacketBuildError) in
                let l2 = try eth.write(into: b)
                return l2 + (try e.write(into: UnsafeMutableRawBufferPointer(rebasing: b[l2...]), payloadLength: 4))
            }
        }
        #expect(total == .success(50))
        #expect(frame == hx("ffffffffffff 000000000001 0800")
                + hx("45000028 00004000 4011b971 c0a80001 c0a80002 08680868 00140000 30ff0004 12345678 deadbeef"))
    }
}

// MARK: - Cross-check against scapy

/// Independent oracles. Scapy decodes what the builders wrote, recomputes every checksum and
/// length, and rebuilds each datagram from its decoding; tshark (Wireshark's dissectors) decodes
/// the same datagrams from a capture file and verifies the checksums. Any difference fails.
/// Tshark also covers what scapy gets wrong: the position of the next-type octet after PSC
/// padding and the one-octet length of IE 141.
@Suite struct BuilderScapyOracleTests {
    /// One datagram per builder and option, all with real outer headers.
    static func datagrams() throws -> [(name: String, bytes: [UInt8])] {
        let v4a: UInt32 = 0x0A00_0001, v4b: UInt32 = 0x0A00_0002
        let v6a = IPAddress("2001:db8:1::a")!, v6b = IPAddress("2001:db8:2::b")!
        // A real inner IPv4/UDP packet, so scapy can decode behind the GTP-U header.
        var innerIPv4 = hx("45000021 00000000 40110000 0a3c0001 c0a80164 13881f90 000d0000 0102030405")
        innerIPv4.withUnsafeMutableBytes { InternetChecksum.fillIPv4Header(UnsafeMutableRawBufferPointer(rebasing: $0[0..<20])) }

        var datagrams: [(name: String, bytes: [UInt8])] = []
        func gpdu(_ name: String, _ e: GTPUEncapsulation) throws {
            datagrams.append((name, try encapsulate(e, payload: innerIPv4).bytes))
        }
        try gpdu("gpdu_v4_udp_checksum", GTPUEncapsulation(
            outer: GTPUOuterHeader(addresses: .ipv4(source: v4a, destination: v4b), sourcePort: 33333, ipv4UDPChecksum: true),
            teid: 0x0000_0101))
        try gpdu("gpdu_v4_dl_ppi", GTPUEncapsulation(
            outer: GTPUOuterHeader(addresses: .ipv4(source: v4a, destination: v4b), trafficClass: 0xB8,
                                   ipv4Identification: 0xBEEF, ipv4UDPChecksum: true),
            teid: 0xFFFF_FFFE, pduSessionContainer: .downlink(qfi: 9, rqi: true, ppi: 3)))
        try gpdu("gpdu_v4_dl_no_checksum", GTPUEncapsulation(
            outer: GTPUOuterHeader(addresses: .ipv4(source: v4a, destination: v4b)),
            teid: 0x0102_0304, pduSessionContainer: .downlink(qfi: 1)))
        try gpdu("gpdu_v6_ul", GTPUEncapsulation(
            outer: GTPUOuterHeader(addresses: .ipv6(source: v6a, destination: v6b), trafficClass: 0x28, flowLabel: 0xABCDE),
            teid: 0x8000_0001, pduSessionContainer: .uplink(qfi: 5)))
        func signalling(_ name: String, _ body: (UnsafeMutableRawBufferPointer) throws(PacketBuildError) -> Int) throws {
            datagrams.append((name, try message(256, body)))
        }
        let o4 = GTPUOuterHeader(addresses: .ipv4(source: v4a, destination: v4b), ipv4UDPChecksum: true)
        let o6 = GTPUOuterHeader(addresses: .ipv6(source: v6a, destination: v6b))
        try signalling("echo_request_v6") { b throws(PacketBuildError) in
            try GTPUMessageBuilder.echoRequest(sequence: 0xBEEF, outer: o6, into: b)
        }
        try signalling("echo_response_v4") { b throws(PacketBuildError) in
            try GTPUMessageBuilder.echoResponse(sequence: 0xBEEF, outer: o4, into: b)
        }
        try signalling("error_indication_v4_port") { b throws(PacketBuildError) in
            try GTPUMessageBuilder.errorIndication(teid: 0xDEAD_BEEF, peerAddress: IPAddress(ipv4: v4a),
                                                   triggeringSourcePort: 40000, sequence: 1, outer: o4, into: b)
        }
        try signalling("error_indication_v6") { b throws(PacketBuildError) in
            try GTPUMessageBuilder.errorIndication(teid: 0x0000_0042, peerAddress: v6a, triggeringSourcePort: nil,
                                                   outer: o6, into: b)
        }
        try signalling("end_marker_v6") { b throws(PacketBuildError) in
            try GTPUMessageBuilder.endMarker(teid: 0x8000_0001, outer: o6, into: b)
        }
        try signalling("sehn_v4") { b throws(PacketBuildError) in
            try GTPUMessageBuilder.supportedExtensionHeadersNotification(
                extensionTypes: [0x40, 0x85, 0xC0], sequence: 9, outer: o4, into: b)
        }
        return datagrams
    }

    @Test(.enabled(if: ScapyOracle.isAvailable, "needs /usr/bin/python3 with scapy (scapy.contrib.gtp)"))
    func scapyDecodesAndAgreesOnChecksums() throws {
        let expected: [String: [String: String]] = [
            "gpdu_v4_udp_checksum": ["flags": "0x30", "type": "255", "teid": "0x101", "sport": "33333",
                                     "udp_checksum": "nonzero", "inner_src": "10.60.0.1"],
            "gpdu_v4_dl_ppi": ["flags": "0x34", "type": "255", "teid": "0xfffffffe", "seq": "0x0", "npdu": "0",
                               "next_ex": "0x85", "psc_len": "2", "psc_type": "0", "psc_qfi": "9", "psc_rqi": "1",
                               "psc_ppp": "1", "psc_ppi": "3", "psc_next": "0x0", "tos": "0xb8", "ip_id": "0xbeef",
                               "inner_src": "10.60.0.1"],
            "gpdu_v4_dl_no_checksum": ["flags": "0x34", "psc_len": "1", "psc_type": "0", "psc_qfi": "1",
                                       "psc_rqi": "0", "psc_ppp": "0", "udp_checksum": "zero", "inner_src": "10.60.0.1"],
            "gpdu_v6_ul": ["flags": "0x34", "teid": "0x80000001", "psc_len": "1", "psc_type": "1", "psc_qfi": "5",
                           "tc": "0x28", "fl": "0xabcde", "udp_checksum": "nonzero", "inner_src": "10.60.0.1"],
            "echo_request_v6": ["flags": "0x32", "type": "1", "teid": "0x0", "seq": "0xbeef", "length": "4",
                                "udp_checksum": "nonzero"],
            "echo_response_v4": ["flags": "0x32", "type": "2", "teid": "0x0", "seq": "0xbeef", "length": "6",
                                 "ies": "14:0"],
            "error_indication_v4_port": ["flags": "0x36", "type": "26", "teid": "0x0", "seq": "0x1", "next_ex": "0x40",
                                         "udp_port_ext": "40000", "udp_port_ext_len": "1",
                                         "ies": "16:0xdeadbeef;133:10.0.0.1"],
            "error_indication_v6": ["flags": "0x32", "type": "26", "next_ex": "0x0",
                                    "ies": "16:0x42;133:2001:db8:1::a"],
            "end_marker_v6": ["flags": "0x30", "type": "254", "teid": "0x80000001", "length": "0",
                              "udp_checksum": "nonzero"],
            "sehn_v4": ["flags": "0x32", "type": "31", "seq": "0x9", "ies": "141:3:0x40,0x85,0xc0"],
        ]

        let reports = try ScapyOracle.decode(try Self.datagrams())
        #expect(Set(reports.keys) == Set(expected.keys))
        for (name, fields) in expected {
            guard let report = reports[name] else { continue }
            #expect(report.failures.isEmpty, "\(name): scapy disagrees: \(report.failures)")
            for (key, value) in fields {
                #expect(report.fields[key] == value, "\(name).\(key): scapy decoded \(report.fields[key] ?? "nothing")")
            }
        }
    }

    @Test(.enabled(if: TsharkOracle.isAvailable, "needs tshark on the PATH"))
    func tsharkDecodesAndVerifiesChecksums() throws {
        // Checksum status: 1 good, 0 bad, 3 not present (UDP zero over IPv4). The first occurrence
        // is the outer header; the inner packet's own checksums follow.
        let v4 = ["ip.checksum.status": "1"]
        let expected: [String: [String: String]] = [
            "gpdu_v4_udp_checksum": v4.merging(["udp.checksum.status": "1", "gtp.flags": "0x30", "gtp.message": "0xff",
                                                "gtp.length": "33", "gtp.teid": "0x00000101"]) { $1 },
            "gpdu_v4_dl_ppi": v4.merging(["udp.checksum.status": "1", "gtp.flags": "0x34", "gtp.length": "45",
                                          "gtp.teid": "0xfffffffe", "gtp.ext_hdr.length": "2",
                                          "gtp.ext_hdr.pdu_ses_con.pdu_type": "0", "gtp.ext_hdr.pdu_ses_con.qos_flow_id": "9",
                                          "gtp.ext_hdr.pdu_ses_cont.rqi": "1", "gtp.ext_hdr.pdu_ses_cont.ppp": "1",
                                          "gtp.ext_hdr.pdu_ses_cont.ppi": "3", "gtp.ext_hdr.next": "0x85,0x00"]) { $1 },
            "gpdu_v4_dl_no_checksum": v4.merging(["udp.checksum.status": "3", "gtp.flags": "0x34", "gtp.length": "41",
                                                  "gtp.ext_hdr.length": "1", "gtp.ext_hdr.pdu_ses_con.pdu_type": "0",
                                                  "gtp.ext_hdr.pdu_ses_con.qos_flow_id": "1",
                                                  "gtp.ext_hdr.pdu_ses_cont.ppp": "0"]) { $1 },
            "gpdu_v6_ul": ["udp.checksum.status": "1", "gtp.flags": "0x34", "gtp.length": "41", "gtp.teid": "0x80000001",
                           "gtp.ext_hdr.pdu_ses_con.pdu_type": "1", "gtp.ext_hdr.pdu_ses_con.qos_flow_id": "5"],
            "echo_request_v6": ["udp.checksum.status": "1", "gtp.flags": "0x32", "gtp.message": "0x01", "gtp.length": "4",
                                "gtp.teid": "0x00000000", "gtp.seq_number": "0xbeef"],
            "echo_response_v4": v4.merging(["udp.checksum.status": "1", "gtp.flags": "0x32", "gtp.message": "0x02",
                                            "gtp.length": "6", "gtp.seq_number": "0xbeef", "gtp.recovery": "0"]) { $1 },
            "error_indication_v4_port": v4.merging(["udp.checksum.status": "1", "gtp.flags": "0x36", "gtp.message": "0x1a",
                                                    "gtp.length": "20", "gtp.teid": "0x00000000", "gtp.seq_number": "0x0001",
                                                    "gtp.ext_hdr.udp_port": "40000", "gtp.teid_data": "0xdeadbeef",
                                                    "gtp.gsn_ipv4": "10.0.0.1"]) { $1 },
            "error_indication_v6": ["udp.checksum.status": "1", "gtp.flags": "0x32", "gtp.message": "0x1a",
                                    "gtp.length": "28", "gtp.teid_data": "0x00000042", "gtp.gsn_ipv6": "2001:db8:1::a"],
            "end_marker_v6": ["udp.checksum.status": "1", "gtp.flags": "0x30", "gtp.message": "0xfe", "gtp.length": "0",
                              "gtp.teid": "0x80000001"],
            "sehn_v4": v4.merging(["udp.checksum.status": "1", "gtp.flags": "0x32", "gtp.message": "0x1f",
                                   "gtp.length": "9", "gtp.num_ext_hdr_types": "3", "gtp.ext_hdr_type": "64,133,192"]) { $1 },
        ]
        let datagrams = try Self.datagrams()
        let fields = Array(Set(expected.values.flatMap(\.keys))).sorted()
        let decoded = try TsharkOracle.decode(datagrams.map(\.bytes), fields: fields)
        #expect(decoded.count == datagrams.count)
        for (index, datagram) in datagrams.enumerated() where index < decoded.count {
            let row = decoded[index]
            #expect(row["_ws.malformed"] == "", "\(datagram.name): tshark reports a malformed packet")
            #expect(row["_ws.expert.severity"]?.isEmpty ?? true, "\(datagram.name): tshark expert info \(row["_ws.expert.message"] ?? "")")
            for (key, value) in expected[datagram.name] ?? [:] {
                // Checksum statuses: the outer header is the first occurrence.
                let got = key.hasSuffix("checksum.status") ? row[key]?.split(separator: ",").first.map(String.init) : row[key]
                #expect(got == value, "\(datagram.name).\(key): tshark decoded \(row[key] ?? "nothing")")
            }
        }
    }
}

/// Writes datagrams to a raw-IP capture file (LINKTYPE_RAW) and reads fields back with tshark.
enum TsharkOracle {
    static let executable: String? = ["/usr/bin/tshark", "/usr/local/bin/tshark"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    static var isAvailable: Bool { executable != nil }

    static func decode(_ datagrams: [[UInt8]], fields: [String]) throws -> [[String: String]] {
        guard let executable else { return [] }
        var capture = Data()
        func le32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { capture.append(contentsOf: $0) } }
        func le16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { capture.append(contentsOf: $0) } }
        le32(0xA1B2_C3D4); le16(2); le16(4); le32(0); le32(0); le32(65535); le32(101)
        for (i, d) in datagrams.enumerated() {
            le32(UInt32(i)); le32(0); le32(UInt32(d.count)); le32(UInt32(d.count))
            capture.append(contentsOf: d)
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("upfd-builders-\(UUID().uuidString).pcap")
        try capture.write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let all = ["_ws.malformed", "_ws.expert.severity", "_ws.expert.message"] + fields
        var arguments = ["-n", "-r", file.path, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
                         "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]
        for field in all { arguments += ["-e", field] }
        let result = try ScapyOracle.run(arguments, input: "", executable: executable)
        guard result.status == 0 else {
            Issue.record("tshark exited with \(result.status): \(result.stderr)")
            return []
        }
        return result.stdout.split(separator: "\n").map { line in
            let values = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            var row: [String: String] = [:]
            for (i, field) in all.enumerated() { row[field] = i < values.count ? values[i] : "" }
            return row
        }
    }
}

/// Runs scapy over hex datagrams, one per line, and reads back one JSON report per datagram.
enum ScapyOracle {
    static let python = "/usr/bin/python3"

    static let isAvailable: Bool = {
        guard FileManager.default.isExecutableFile(atPath: python) else { return false }
        return (try? run(["-c", "import scapy.layers.inet, scapy.layers.inet6, scapy.contrib.gtp"], input: ""))?.status == 0
    }()

    struct Report {
        var fields: [String: String]
        var failures: [String]
    }

    static func decode(_ datagrams: [(name: String, bytes: [UInt8])]) throws -> [String: Report] {
        let input = datagrams.map { "\($0.name) \($0.bytes.map { String(format: "%02x", $0) }.joined())" }
            .joined(separator: "\n") + "\n"
        let result = try run(["-c", script], input: input)
        guard result.status == 0 else {
            Issue.record("scapy oracle exited with \(result.status): \(result.stderr)")
            return [:]
        }
        var reports: [String: Report] = [:]
        for line in result.stdout.split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            guard let name = object?["name"] as? String else { continue }
            reports[name] = Report(fields: object?["fields"] as? [String: String] ?? [:],
                                   failures: object?["failures"] as? [String] ?? ["unreadable report"])
        }
        return reports
    }

    static func run(_ arguments: [String], input: String,
                    executable: String = python) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        // Drain stderr on the side so that a chatty interpreter never blocks on a full pipe.
        let errorData = LockedData()
        let drain = Thread { errorData.set(stderr.fileHandleForReading.readDataToEndOfFile()) }
        drain.start()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errorData.isSet { Thread.sleep(forTimeInterval: 0.01) }
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: errorData.get(), as: UTF8.self))
    }

    /// Decodes each datagram with scapy and checks it against scapy's own arithmetic: IPv4 header
    /// checksum (scapy.utils.checksum), UDP checksum (in4_chksum / in6_chksum over the pseudo-
    /// header, zero sent as 0xffff), IP/UDP/GTP-U lengths, and a rebuild from the decoded layers
    /// with every length and checksum deleted (so scapy recomputes them) that must give the same
    /// octets. Scapy's IE 141 has a two-octet length, contrary to TS 29.281 §8.5 (one octet), so
    /// that IE is read by hand.
    static let script = #"""
import sys, json
from scapy.packet import Raw, NoPayload
from scapy.layers.inet import IP, UDP, in4_chksum
from scapy.layers.inet6 import IPv6, in6_chksum
from scapy.utils import checksum
import scapy.contrib.gtp as gtp

def layers(p):
    out = []
    while p is not None and not isinstance(p, NoPayload):
        out.append(p)
        p = p.payload
    return out

def ie_text(ie):
    t = ie.ietype
    if t == 14: return "14:%d" % ie.restart_counter
    if t == 16: return "16:%s" % hex(ie.TEIDI)
    if t == 133: return "133:%s" % (ie.ipv4_address if ie.length == 4 else ie.ipv6_address)
    return "%d:?" % t

for line in sys.stdin:
    line = line.strip()
    if not line: continue
    name, hexs = line.split()
    raw = bytes.fromhex(hexs)
    f, failures = {}, []
    v4 = raw[0] >> 4 == 4
    pkt = IP(raw) if v4 else IPv6(raw)
    hl = 20 if v4 else 40
    udp = pkt[UDP]
    if v4:
        h = bytearray(raw[:20]); h[10:12] = b"\0\0"
        if checksum(bytes(h)) != pkt.chksum: failures.append("ipv4 header checksum %s, scapy %s" % (hex(pkt.chksum), hex(checksum(bytes(h)))))
        if pkt.len != len(raw): failures.append("ipv4 total length")
        f["tos"] = hex(pkt.tos); f["ip_id"] = hex(pkt.id); f["ttl"] = str(pkt.ttl)
    else:
        if pkt.plen != len(raw) - 40: failures.append("ipv6 payload length")
        f["tc"] = hex(pkt.tc); f["fl"] = hex(pkt.fl); f["hlim"] = str(pkt.hlim)
    if udp.len != len(raw) - hl: failures.append("udp length")
    f["sport"] = str(udp.sport); f["dport"] = str(udp.dport)
    u = bytearray(raw[hl:]); u[6:8] = b"\0\0"
    if udp.chksum == 0:
        f["udp_checksum"] = "zero"
        if not v4: failures.append("zero udp checksum over ipv6")
    else:
        f["udp_checksum"] = "nonzero"
        want = in4_chksum(17, pkt, bytes(u)) if v4 else in6_chksum(17, pkt, bytes(u))
        if want == 0: want = 0xffff
        if want != udp.chksum: failures.append("udp checksum %s, scapy %s" % (hex(udp.chksum), hex(want)))
    ls = layers(pkt)
    g = next((l for l in ls if isinstance(l, gtp.GTPHeader)), None)
    if g is None:
        failures.append("no gtp header")
    else:
        go = hl + 8
        f["flags"] = hex(raw[go]); f["type"] = str(g.gtp_type); f["length"] = str(g.length); f["teid"] = hex(g.teid)
        if g.length != len(raw) - go - 8: failures.append("gtp length")
        if g.E or g.S or g.PN:
            f["seq"] = hex(g.seq); f["npdu"] = str(g.npdu); f["next_ex"] = hex(g.next_ex)
        for l in ls:
            if isinstance(l, gtp.GTPPDUSessionContainer):
                f["psc_len"] = str(l.ExtHdrLen); f["psc_type"] = str(l.type); f["psc_qfi"] = str(l.QFI)
                f["psc_next"] = hex(l.NextExtHdr)
                if l.type == 0:
                    f["psc_rqi"] = str(l.RQI); f["psc_ppp"] = str(l.PPP)
                    if l.PPP: f["psc_ppi"] = str(l.PPI)
            if isinstance(l, gtp.GTP_UDPPort_ExtensionHeader):
                f["udp_port_ext"] = str(l.udp_port); f["udp_port_ext_len"] = str(l.length)
                if l.next_ex != 0: failures.append("udp port extension next type")
                rest = bytes(l.payload)
                ies = gtp.GTPErrorIndication(rest).IE_list
                f["ies"] = ";".join(ie_text(i) for i in ies)
                if sum(len(bytes(i)) for i in ies) != len(rest): failures.append("trailing octets after IEs")
            if isinstance(l, (gtp.GTPEchoResponse, gtp.GTPErrorIndication)):
                f["ies"] = ";".join(ie_text(i) for i in l.IE_list)
            if l.__class__ in (IP, IPv6) and l is not pkt:
                f["inner_src"] = l.src
        if g.gtp_type == 31:
            b = raw[go + 12:]
            f["ies"] = "%d:%d:%s" % (b[0], b[1], ",".join(hex(x) for x in b[2:]))
            if len(b) != 2 + b[1]: failures.append("ie 141 count")
    # Rebuild with every length and checksum left to scapy.
    r = pkt.copy()
    if v4:
        del r.chksum; del r.len
    else:
        del r.plen
    del r[UDP].len
    if udp.chksum != 0: del r[UDP].chksum
    for l in layers(r):
        if isinstance(l, gtp.GTPHeader): l.length = None
        if isinstance(l, gtp.GTPPDUSessionContainer): l.ExtHdrLen = None
    rebuilt = bytes(r)
    if rebuilt != raw: failures.append("scapy rebuild differs: %s" % rebuilt.hex())
    print(json.dumps({"name": name, "fields": f, "failures": failures}), flush=True)
"""#
}

/// A Data slot written by one thread and read by another.
private final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data: Data?
    func set(_ value: Data) { lock.lock(); data = value; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return data != nil }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data ?? Data() }
}

// MARK: - Helpers (file-private: the test module is shared with the parser's tests)

/// Octets from hex text; spaces and newlines are ignored.
private func hx(_ text: String) -> [UInt8] {
    let digits = Array(text.filter { $0.isHexDigit })
    precondition(digits.count % 2 == 0, "odd number of hex digits")
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

private func catching<T>(_ body: () throws(PacketBuildError) -> T) -> Result<T, PacketBuildError> {
    do throws(PacketBuildError) {
        return .success(try body())
    } catch {
        return .failure(error)
    }
}

/// Places `payload` after the header space, encapsulates, and returns the whole datagram.
private func encapsulate(_ e: GTPUEncapsulation, payload: [UInt8]) throws(PacketBuildError) -> (written: Int, bytes: [UInt8]) {
    var buffer = [UInt8](repeating: 0xAA, count: e.headerLength) + payload
    let result = write(e, into: &buffer, payloadLength: payload.count)
    return (try result.get(), buffer)
}

private func write(_ e: GTPUEncapsulation, into buffer: inout [UInt8], payloadLength: Int) -> Result<Int, PacketBuildError> {
    buffer.withUnsafeMutableBytes { b in
        catching { () throws(PacketBuildError) in try e.write(into: b, payloadLength: payloadLength) }
    }
}

/// Runs a message builder on a buffer of `capacity` octets and returns what it wrote.
private func message(_ capacity: Int, _ body: (UnsafeMutableRawBufferPointer) throws(PacketBuildError) -> Int) throws(PacketBuildError) -> [UInt8] {
    var buffer = [UInt8](repeating: 0xAA, count: capacity)
    let result = buffer.withUnsafeMutableBytes { b in catching { () throws(PacketBuildError) in try body(b) } }
    return Array(buffer[0..<(try result.get())])
}
