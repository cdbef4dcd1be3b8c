import Testing
@testable import UPFPackets

/// Byte vectors written from TS 29.281 and TS 38.415, one per message type, flag combination
/// and extension header.
@Suite struct GTPUParserTests {
    typealias F = TestFrames

    @Test func minimalGPDUCarriesInnerFiveTuple() throws {
        let frame = F.n3(F.gtp(teid: 0xDEAD_BEEF, F.innerUDP))
        let packet = try #require(F.parsed(frame))
        #expect(packet.kind == .gPDU)
        #expect(packet.teid == 0xDEAD_BEEF)
        #expect(packet.outerVersion == 4)
        #expect(packet.outerSource.description == "192.168.0.1")
        #expect(packet.outerDestination.description == "192.168.0.2")
        #expect(packet.udpDestinationPort == 2152)
        #expect(packet.gtpOffset == 14 + 20 + 8)
        #expect(packet.payloadOffset == 14 + 20 + 8 + 8)
        #expect(packet.payloadLength == F.innerUDP.count)
        #expect(!packet.psc.present)
        #expect(packet.inner.version == 4)
        #expect(packet.inner.source.description == "10.60.0.1")
        #expect(packet.inner.destination.description == "192.168.1.100")
        #expect(packet.inner.proto == 17)
        #expect(packet.inner.sourcePort == 5000 && packet.inner.destinationPort == 8080)
        #expect(packet.innerL4Offset == packet.payloadOffset + 20)
    }

    @Test(arguments: [UInt8(0x31), 0x32, 0x33, 0x34, 0x35, 0x36, 0x37])
    func everyOptionalFlagCombination(flags: UInt8) throws {
        let hasE = flags & 0x04 != 0
        let frame = F.n3(F.gtp(flags: flags, teid: 7, sequence: 0xBEEF, npdu: 0x42,
                               nextExtension: hasE ? 0x85 : 0, extensions: hasE ? F.pscUplink(qfi: 5) : [], F.innerUDP))
        let packet = try #require(F.parsed(frame))
        #expect(packet.kind == .gPDU)
        #expect(packet.sequenceNumber == 0xBEEF)
        #expect(packet.nPDUNumber == 0x42)
        #expect(packet.psc.present == hasE)
        if hasE { #expect(packet.psc.qfi == 5 && packet.psc.pduType == 1) }
        #expect(packet.payloadOffset == 14 + 20 + 8 + 12 + (hasE ? 4 : 0))
        #expect(packet.inner.destinationPort == 8080)
    }

    @Test func downlinkPSCWithRQIAndPagingPolicy() throws {
        let frame = F.n3(F.gtp(flags: 0x34, nextExtension: 0x85, extensions: F.pscDownlink(qfi: 9, rqi: true, ppi: 5), F.innerUDP))
        let packet = try #require(F.parsed(frame))
        #expect(packet.psc == {
            var p = PDUSessionInformation(); p.present = true; p.pduType = 0; p.qfi = 9; p.rqi = true; p.ppp = true; p.ppi = 5; return p
        }())
    }

    @Test func uplinkPSCWithQoSMonitoringNeedsItsTimestamps() {
        // UL PDU type 1 with QMP set announces 24 octets of timestamps (TS 38.415 §5.5.2.2).
        let short: [UInt8] = [0x01, 0x18, 0x05, 0x00]
        #expect(F.dropReason(F.n3(F.gtp(flags: 0x34, nextExtension: 0x85, extensions: short, F.innerUDP))) == .pscBadLength)
        let full: [UInt8] = [0x07, 0x18, 0x05] + Array(repeating: 0, count: 24) + [0x00]
        let packet = F.parsed(F.n3(F.gtp(flags: 0x34, nextExtension: 0x85, extensions: full, F.innerUDP)))
        #expect(packet?.psc.qfi == 5)
    }

    @Test func udpPortAndPDCPExtensionsInAChain() throws {
        let extensions: [UInt8] = [0x01, 0x08, 0x68, 0xC0] + [0x01, 0x12, 0x34, 0x82] + [0x02, 0x03, 0xFF, 0xFF, 0, 0, 0, 0x85] + F.pscUplink(qfi: 1)
        let frame = F.n3(F.gtp(flags: 0x34, nextExtension: 0x40, extensions: extensions, F.innerUDP))
        let packet = try #require(F.parsed(frame))
        #expect(packet.hasUDPPortExtension && packet.udpPortExtension == 2152)
        #expect(packet.hasPDCPNumber && packet.pdcpNumber == 0x3FFFF) // the long PDCP number came last
        #expect(packet.extensionCount == 4)
        #expect(packet.psc.qfi == 1)
    }

    @Test func udpPortExtensionOfWrongLengthIsRefused() {
        let frame = F.n3(F.gtp(flags: 0x34, nextExtension: 0x40, extensions: [0x02, 0x08, 0x68, 0, 0, 0, 0, 0], F.innerUDP))
        #expect(F.dropReason(frame) == .gtpExtensionBadLength)
    }

    @Test func unknownExtensionWithoutComprehensionRequiredIsSkipped() throws {
        for type: UInt8 in [0x03, 0x23, 0x41, 0x7F] {
            let frame = F.n3(F.gtp(flags: 0x34, nextExtension: type, extensions: [0x01, 0xAA, 0xBB, 0x85] + F.pscUplink(qfi: 3), F.innerUDP))
            let packet = try #require(F.parsed(frame), "type 0x\(String(type, radix: 16))")
            #expect(packet.skippedExtensionCount == 1)
            #expect(packet.psc.qfi == 3)
        }
    }

    @Test func unknownExtensionWithComprehensionRequiredIsDropped() {
        for type: UInt8 in [0x86, 0xA1, 0xC1, 0xFE] {
            let frame = F.n3(F.gtp(flags: 0x34, nextExtension: type, extensions: [0x01, 0xAA, 0xBB, 0x00], F.innerUDP))
            #expect(F.dropReason(frame) == .gtpExtensionComprehensionRequired, "type 0x\(String(type, radix: 16))")
        }
    }

    @Test func echoRequestAndResponse() throws {
        let request = try #require(F.parsed(F.n3(F.gtp(flags: 0x32, type: 1, teid: 0, sequence: 0x1234, []))))
        #expect(request.kind == .echoRequest && request.sequenceNumber == 0x1234 && request.teid == 0)
        let response = try #require(F.parsed(F.n3(F.gtp(flags: 0x32, type: 2, teid: 0, sequence: 0x1234, [14, 7]))))
        #expect(response.kind == .echoResponse && response.hasRecovery && response.recoveryCounter == 7)
        #expect(F.dropReason(F.n3(F.gtp(flags: 0x32, type: 2, teid: 0, sequence: 1, []))) == .gtpMissingMandatoryInformationElement)
    }

    @Test func errorIndicationWithTEIDDataIGSNAddressAndUDPPort() throws {
        let ies: [UInt8] = [16] + F.be32(0xA0F2_2350) + [133, 0, 4, 192, 168, 0, 9]
        let frame = F.n3(F.gtp(flags: 0x36, type: 26, teid: 0, sequence: 0, nextExtension: 0x40, extensions: [0x01, 0x08, 0x68, 0x00], ies))
        let packet = try #require(F.parsed(frame))
        #expect(packet.kind == .errorIndication)
        #expect(packet.teidDataI == 0xA0F2_2350)
        #expect(packet.gsnAddress.description == "192.168.0.9")
        #expect(packet.udpPortExtension == 2152)
        let v6 = F.n3(F.gtp(flags: 0x32, type: 26, teid: 0, [16] + F.be32(5) + [133, 0, 16] + F.v6a))
        #expect(F.parsed(v6)?.gsnAddress.description == "2001:db8::1")
        let missing = F.n3(F.gtp(flags: 0x32, type: 26, teid: 0, [16] + F.be32(5)))
        #expect(F.dropReason(missing) == .gtpMissingMandatoryInformationElement)
        let badGSN = F.n3(F.gtp(flags: 0x32, type: 26, teid: 0, [16] + F.be32(5) + [133, 0, 5, 1, 2, 3, 4, 5]))
        #expect(F.dropReason(badGSN) == .gtpMalformedInformationElement)
        let overrun = F.n3(F.gtp(flags: 0x32, type: 26, teid: 0, [16] + F.be32(5) + [133, 0, 16, 1, 2]))
        #expect(F.dropReason(overrun) == .gtpMalformedInformationElement)
    }

    @Test func endMarkerAndSupportedExtensionHeadersNotification() throws {
        let endMarker = try #require(F.parsed(F.n3(F.gtp(flags: 0x30, type: 254, teid: 0x55, []))))
        #expect(endMarker.kind == .endMarker && endMarker.teid == 0x55)
        let notification = try #require(F.parsed(F.n3(F.gtp(flags: 0x32, type: 31, teid: 0, [141, 2, 0x40, 0x85]))))
        #expect(notification.kind == .supportedExtensionHeadersNotification)
    }

    @Test func vlanAndQinQAreWalked() throws {
        let ip = F.ipv4(src: 1, dst: 2, F.udp(F.gtp(F.innerUDP)))
        let one = try #require(F.parsed(F.ethernet(ip, vlans: [(0x8100, 100)])))
        #expect(one.vlanCount == 1 && one.outerVLAN == 100 && one.kind == .gPDU)
        let two = try #require(F.parsed(F.ethernet(ip, vlans: [(0x88A8, 200), (0x8100, 100)])))
        #expect(two.vlanCount == 2 && two.outerVLAN == 200 && two.kind == .gPDU)
        #expect(F.dropReason(F.ethernet(ip, vlans: [(0x88A8, 1), (0x8100, 2), (0x8100, 3)])) == .vlanTooDeep)
    }

    @Test func outerIPv6WithExtensionHeader() throws {
        let destinationOptions: [UInt8] = [17, 0, 1, 4, 0, 0, 0, 0]
        let udp = F.udp(F.gtp(F.innerUDP), checksum: 0x1234)
        let frame = F.ethernet(F.ipv6(nextHeader: 60, destinationOptions + udp), etherType: 0x86DD)
        let packet = try #require(F.parsed(frame))
        #expect(packet.outerVersion == 6 && packet.outerSource.description == "2001:db8::1" && packet.kind == .gPDU)
        #expect(packet.l4Offset == 14 + 40 + 8)
    }

    @Test func outerIPv6FaultsHaveIPv6Reasons() {
        // Found by the C reference parser: these were counted under the IPv4 names.
        let truncated = F.hex("02000000000202000000000186dd600000000008114020010db8000000000000000000000001")
        #expect(F.dropReason(truncated) == .outerIPv6Truncated)
        let lengthPastFrame = F.hex("02000000000202000000000186dd600000000100114020010db800000000000000000000000120010db800000000000000000000000208680868000800ff")
        #expect(F.dropReason(lengthPastFrame) == .outerIPv6BadPayloadLength)
    }

    @Test func outerIPv6ZeroUDPChecksumIsRefused() {
        let frame = F.ethernet(F.ipv6(F.udp(F.gtp(F.innerUDP), checksum: 0)), etherType: 0x86DD)
        #expect(F.dropReason(frame) == .udpZeroChecksumOverIPv6)
    }

    @Test func innerIPv6WithExtensionsAndTCP() throws {
        let hopByHop: [UInt8] = [6, 0, 1, 4, 0, 0, 0, 0]
        let inner = F.ipv6(nextHeader: 0, hopByHop + F.tcp(sport: 1234, dport: 443))
        let packet = try #require(F.parsed(F.n3(F.gtp(inner))))
        #expect(packet.inner.version == 6 && packet.inner.proto == 6)
        #expect(packet.inner.sourcePort == 1234 && packet.inner.destinationPort == 443)
        #expect(packet.inner.destination.description == "2001:db8::2")
    }

    @Test func innerICMPHasNoPorts() throws {
        let packet = try #require(F.parsed(F.n3(F.gtp(F.ipv4(proto: 1, F.icmpEcho())))))
        #expect(packet.inner.proto == 1 && !packet.inner.hasPorts)
    }

    @Test func arpAndOtherEtherTypes() {
        #expect(F.parsed(F.ethernet(Array(repeating: 0, count: 28), etherType: 0x0806))?.kind == .arp)
        #expect(F.parsed(F.ethernet(Array(repeating: 0, count: 28), etherType: 0x88CC))?.kind == .nonGTP)
    }

    @Test func linuxCookedAndRawIPLinks() throws {
        let ip = F.ipv4(src: 1, dst: 2, F.udp(F.gtp(teid: 9, F.innerUDP)))
        let sll = [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0] + F.be16(0x0800) + ip
        #expect(F.parsed(sll, link: .linuxSLL)?.teid == 9)
        let sll2 = F.be16(0x0800) + Array(repeating: 0, count: 18) + ip
        #expect(F.parsed(sll2, link: .linuxSLL2)?.teid == 9)
        #expect(F.parsed(ip, link: .rawIP)?.teid == 9)
    }

    @Test func gtpOnAnotherPortIsNotGTP() throws {
        let frame = F.ethernet(F.ipv4(F.udp(sport: 2152, dport: 2123, F.gtp(F.innerUDP))))
        #expect(F.parsed(frame)?.kind == .nonGTP)
    }

    @Test func paddingAfterGTPLengthIsIgnored() throws {
        let frame = F.n3(F.gtp(F.innerUDP) + [0xEE, 0xEE, 0xEE])
        let packet = try #require(F.parsed(frame))
        #expect(packet.payloadLength == F.innerUDP.count)
    }

    @Test func ethernetPaddingAfterIPTotalLengthIsIgnored() throws {
        let frame = F.ethernet(F.ipv4(F.udp(F.gtp(F.innerUDP)))) + [0, 0, 0, 0]
        #expect(F.parsed(frame)?.kind == .gPDU)
    }

    @Test func dropReasonNamesAreUniqueSnakeCase() {
        let names = DropReason.allCases.map(\.name)
        #expect(Set(names).count == names.count)
        for name in names { #expect(name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }, "\(name)") }
    }

    @Test func ipAddressText() {
        #expect(IPAddress("10.0.0.1")?.description == "10.0.0.1")
        #expect(IPAddress("2001:db8::1")?.description == "2001:db8::1")
        #expect(IPAddress("::")?.description == "::")
        #expect(IPAddress("fe80::1:0:0:1")?.description == "fe80::1:0:0:1")
        #expect(IPAddress("2001:db8:0:0:1:0:0:1")?.description == "2001:db8::1:0:0:1")
        #expect(IPAddress("::ffff:1.2.3.4")?.isIPv4 == true)
        for bad in ["", "1.2.3", "256.1.1.1", "01.2.3.4", "1::2::3", "12345::", "g::1", "1:2:3:4:5:6:7:8:9"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }
}
