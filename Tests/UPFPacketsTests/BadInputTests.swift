import Testing
@testable import UPFPackets

/// Cases 1-19 of `shared/BAD_INPUTS.md`, inputs that crashed or hung other UPFs: each is dropped
/// with its named reason (or parsed as the harmless thing it is), never read out of bounds.
///
/// Every vector is also parsed from an exactly-sized heap copy by `assertContained`, so under the
/// address sanitizer a read one byte past the packet fails the test.
@Suite struct BadInputTests {
    typealias F = TestFrames

    /// Parses a copy that ends exactly where the bytes end, and every prefix of it: truncation
    /// anywhere must give a drop or a parse, never a crash.
    func assertContained(_ frame: [UInt8], link: LinkLayer = .ethernet, options: ParserOptions = ParserOptions()) {
        for length in 0...frame.count {
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(length, 1), alignment: 1)
            defer { copy.deallocate() }
            frame.withUnsafeBytes { copy.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
            _ = PacketParser.parse(UnsafeRawBufferPointer(rebasing: copy[0..<length]), link: link, options: options)
        }
    }

    /// The bare GTP-U bytes as one raw IP datagram around them.
    func gtpOnly(_ gtp: [UInt8]) -> [UInt8] { F.n3(gtp) }

    @Test("1: extension header length 0 (endless loop elsewhere)")
    func case01ExtensionLengthZero() {
        let asGiven = F.hex("36ff003400000001000000ff00")
        #expect(F.dropReason(gtpOnly(asGiven)) == .gtpLengthExceedsPayload)
        // The same header with a consistent GTP length reaches the extension walk.
        var consistent = asGiven
        consistent[3] = 5
        #expect(F.dropReason(gtpOnly(consistent)) == .gtpExtensionZeroLength)
        assertContained(gtpOnly(asGiven)); assertContained(gtpOnly(consistent))
    }

    @Test("2: header cut right after the next-extension-type octet")
    func case02CutAfterNextType() {
        let asGiven = F.hex("36ff003400000001000000ff")
        #expect(F.dropReason(gtpOnly(asGiven)) == .gtpLengthExceedsPayload)
        var consistent = asGiven
        consistent[3] = 4
        #expect(F.dropReason(gtpOnly(consistent)) == .gtpExtensionTruncated)
        assertContained(gtpOnly(consistent))
    }

    @Test("3: E set, next type non-zero, no extension bytes at all")
    func case03NoExtensionBytes() {
        let gtp = F.gtp(flags: 0x34, nextExtension: 0x85, [])
        #expect(gtp.count == 12)
        #expect(F.dropReason(gtpOnly(gtp)) == .gtpExtensionTruncated)
        assertContained(gtpOnly(gtp))
    }

    @Test("4: a chain of very many small extension headers")
    func case04LongChain() {
        let chain: [UInt8] = (0..<5000).flatMap { _ -> [UInt8] in [0x01, 0xAA, 0xBB, 0x03] }
        let gtp = F.gtp(flags: 0x34, nextExtension: 0x03, extensions: chain, F.innerUDP)
        #expect(F.dropReason(gtpOnly(gtp)) == .gtpExtensionChainTooLong)
        // Within the bound, the same unknown (skippable) header parses.
        let short: [UInt8] = (0..<7).flatMap { i -> [UInt8] in [0x01, 0xAA, 0xBB, i == 6 ? 0 : 0x03] }
        #expect(F.parsed(gtpOnly(F.gtp(flags: 0x34, nextExtension: 0x03, extensions: short, F.innerUDP)))?.skippedExtensionCount == 7)
    }

    @Test("5: extension length running past the end of the packet")
    func case05ExtensionPastEnd() {
        let gtp = F.gtp(flags: 0x34, nextExtension: 0x85, extensions: [0x40, 0x10, 0x01], [])
        #expect(F.dropReason(gtpOnly(gtp)) == .gtpExtensionTruncated)
        assertContained(gtpOnly(gtp))
    }

    @Test("6: GTP Length larger than the UDP payload, and smaller than the headers it announces")
    func case06LengthMismatch() {
        let tooLong = F.gtp(F.innerUDP, lengthOverride: 0x3033)
        #expect(F.dropReason(gtpOnly(tooLong)) == .gtpLengthExceedsPayload)
        let tooShort = F.gtp(flags: 0x32, sequence: 1, F.innerUDP, lengthOverride: 2)
        #expect(F.dropReason(gtpOnly(tooShort)) == .gtpLengthShorterThanHeaders)
        let cutsExtension = F.gtp(flags: 0x34, nextExtension: 0x85, extensions: F.pscUplink(qfi: 1), F.innerUDP, lengthOverride: 6)
        #expect(F.dropReason(gtpOnly(cutsExtension)) == .gtpExtensionTruncated)
        assertContained(gtpOnly(tooLong)); assertContained(gtpOnly(cutsExtension))
    }

    @Test("7: S or PN without E: optional octets present, no extension chain")
    func case07SequenceWithoutExtension() throws {
        for flags: UInt8 in [0x32, 0x31, 0x33] {
            // The next-extension-type octet is non-zero, but E is clear: it must be ignored.
            let gtp = F.gtp(flags: flags, sequence: 9, nextExtension: 0x85, F.innerUDP)
            let packet = try #require(F.parsed(gtpOnly(gtp)))
            #expect(packet.kind == .gPDU && !packet.psc.present && packet.extensionCount == 0)
            #expect(packet.inner.destinationPort == 8080)
        }
    }

    @Test("8: version other than 1, or PT = 0 (GTP')")
    func case08VersionAndPT() {
        #expect(F.dropReason(gtpOnly(F.gtp(flags: 0x50, F.innerUDP))) == .gtpVersionNot1)
        #expect(F.dropReason(gtpOnly(F.gtp(flags: 0x10, F.innerUDP))) == .gtpVersionNot1)
        #expect(F.dropReason(gtpOnly(F.gtp(flags: 0x20, F.innerUDP))) == .gtpPrime)
    }

    @Test("9: unknown message type, Echo Request without sequence number, G-PDU with TEID 0")
    func case09MessageTypeAndTEID() {
        #expect(F.dropReason(gtpOnly(F.gtp(type: 0x63, F.innerUDP))) == .gtpUnknownMessageType)
        #expect(F.dropReason(gtpOnly(F.gtp(flags: 0x30, type: 1, teid: 0, []))) == .echoWithoutSequenceNumber)
        #expect(F.dropReason(gtpOnly(F.gtp(teid: 0, F.innerUDP))) == .gpduTEIDZero)
        #expect(F.dropReason(gtpOnly(F.gtp(teid: 5, []))) == .gpduEmpty)
    }

    @Test("10: unknown TEID parses as a G-PDU; the session lookup of the data path drops it")
    func case10UnknownTEIDIsAParseableGPDU() {
        // The parser has no session table; it must not refuse a well-formed G-PDU, so that the data
        // path can answer with a rate-limited Error Indication (TS 29.281 §7.3.1).
        #expect(F.parsed(gtpOnly(F.gtp(teid: 0xFFFF_FFFF, F.innerUDP)))?.teid == 0xFFFF_FFFF)
    }

    @Test("11: unknown extension, comprehension required vs not")
    func case11ComprehensionBits() {
        let skippable = F.gtp(flags: 0x34, nextExtension: 0x01, extensions: [0x01, 0, 0, 0], F.innerUDP)
        #expect(F.parsed(gtpOnly(skippable))?.skippedExtensionCount == 1)
        let required = F.gtp(flags: 0x34, nextExtension: 0x81 | 0x40, extensions: [0x01, 0, 0, 0], F.innerUDP)
        #expect(F.dropReason(gtpOnly(required)) == .gtpExtensionComprehensionRequired)
    }

    @Test("12: PDU Session Container with wrong length, wrong PDU type, QFI 0, wrong direction")
    func case12PSC() {
        let tooShortContent = F.gtp(flags: 0x34, nextExtension: 0x85, extensions: [0x01, 0x08, 0x05, 0x00], F.innerUDP) // DL, QMP set, no timestamp
        #expect(F.dropReason(gtpOnly(tooShortContent)) == .pscBadLength)
        let wrongType = F.gtp(flags: 0x34, nextExtension: 0x85, extensions: [0x01, 0x20, 0x05, 0x00], F.innerUDP)
        #expect(F.dropReason(gtpOnly(wrongType)) == .pscBadPDUType)
        let qfiZero = F.gtp(flags: 0x34, nextExtension: 0x85, extensions: F.pscUplink(qfi: 0), F.innerUDP)
        #expect(F.dropReason(gtpOnly(qfiZero)) == .pscQFIZero)
        var uplinkPort = ParserOptions()
        uplinkPort.direction = .uplink
        let downlinkPSC = F.gtp(flags: 0x34, nextExtension: 0x85, extensions: F.pscDownlink(qfi: 5), F.innerUDP)
        #expect(F.dropReason(gtpOnly(downlinkPSC), options: uplinkPort) == .pscWrongDirection)
        #expect(F.parsed(gtpOnly(F.gtp(flags: 0x34, nextExtension: 0x85, extensions: F.pscUplink(qfi: 5), F.innerUDP)), options: uplinkPort) != nil)
        var downlinkPort = ParserOptions()
        downlinkPort.direction = .downlink
        let uplinkPSC = F.gtp(flags: 0x34, nextExtension: 0x85, extensions: F.pscUplink(qfi: 5), F.innerUDP)
        #expect(F.dropReason(gtpOnly(uplinkPSC), options: downlinkPort) == .pscWrongDirection)
    }

    @Test("13: a flood of Echo Requests mixed with unknown-TEID G-PDUs parses each one on its own")
    func case13EchoFlood() {
        var echoes = 0, gpdus = 0
        for i in 0..<10_000 {
            let frame = i % 2 == 0
                ? gtpOnly(F.gtp(flags: 0x32, type: 1, teid: 0, sequence: UInt16(i & 0xFFFF), []))
                : gtpOnly(F.gtp(teid: UInt32(0x8000_0000 | i), F.innerUDP))
            switch F.parsed(frame)?.kind {
            case .echoRequest: echoes += 1
            case .gPDU: gpdus += 1
            default: break
            }
        }
        #expect(echoes == 5000 && gpdus == 5000)
    }

    @Test("14: outer IPv4 fragments: held for reassembly, never parsed as GTP-U")
    func case14OuterFragments() throws {
        let gtp = F.gtp(teid: 77, F.ipv4(proto: 17, F.udp(sport: 1, dport: 2, Array(repeating: 0xAB, count: 64))))
        let udp = F.udp(gtp)
        let first = Array(udp[0..<48]), second = Array(udp[48...])
        // The second fragment begins with bytes that look like a GTP-U header on port 2152.
        let later = F.ethernet(F.ipv4(src: 0xC0A8_0001, dst: 0xC0A8_0002, proto: 17, second, id: 9, flagsFragment: 6))
        let laterPacket = try #require(F.parsed(later))
        #expect(laterPacket.kind == .outerFragment && laterPacket.teid == 0 && laterPacket.fragmentOffset == 48)
        let head = F.ethernet(F.ipv4(src: 0xC0A8_0001, dst: 0xC0A8_0002, proto: 17, first, id: 9, flagsFragment: 0x2000))
        let headPacket = try #require(F.parsed(head))
        #expect(headPacket.kind == .outerFragment && headPacket.moreFragments)

        let reassembler = IPv4Reassembler(maxDatagrams: 4)
        let heldOutcome = later.withUnsafeBytes { reassembler.add(PacketBytes($0), packet: laterPacket, nowNanos: 0) }
        guard case .held = heldOutcome else { Issue.record("expected held"); return }
        let whole: ParsedPacket? = head.withUnsafeBytes { bytes in
            guard case .complete(let datagram) = reassembler.add(PacketBytes(bytes), packet: headPacket, nowNanos: 1) else { return nil }
            if case .success(let packet) = PacketParser.parse(datagram, link: .rawIP) { return packet }
            return nil
        }
        #expect(whole?.kind == .gPDU && whole?.teid == 77 && whole?.inner.destinationPort == 2)
        #expect(reassembler.pending == 0)

        // An overlapping fragment drops the datagram; a misaligned middle fragment is refused.
        let overlap = F.ethernet(F.ipv4(src: 0xC0A8_0001, dst: 0xC0A8_0002, proto: 17, Array(udp[0..<56]), id: 10, flagsFragment: 0x2000))
        let overlapPacket = try #require(F.parsed(overlap))
        _ = overlap.withUnsafeBytes { reassembler.add(PacketBytes($0), packet: overlapPacket, nowNanos: 2) }
        let overlapping = F.ethernet(F.ipv4(src: 0xC0A8_0001, dst: 0xC0A8_0002, proto: 17, second, id: 10, flagsFragment: 6))
        let overlappingPacket = try #require(F.parsed(overlapping))
        let result = overlapping.withUnsafeBytes { reassembler.add(PacketBytes($0), packet: overlappingPacket, nowNanos: 3) }
        guard case .dropped(.outerFragmentOverlap) = result else { Issue.record("expected overlap drop, got \(result)"); return }
        let misaligned = F.ethernet(F.ipv4(proto: 17, Array(udp[0..<13]), id: 11, flagsFragment: 0x2000))
        let misalignedPacket = try #require(F.parsed(misaligned))
        let misalignedResult = misaligned.withUnsafeBytes { reassembler.add(PacketBytes($0), packet: misalignedPacket, nowNanos: 4) }
        guard case .dropped(.outerFragmentMisaligned) = misalignedResult else { Issue.record("expected misaligned"); return }

        // A datagram whose last fragment never comes is evicted after the timeout.
        reassembler.flush()
        #expect(reassembler.pending == 0 && reassembler.evicted >= 0)
        assertContained(later); assertContained(head)
    }

    @Test("15: UDP to port 2152 that is not GTP: DNS from 2152, and UDP 2152 inside the tunnel")
    func case15NotGTP() throws {
        let dns = F.ethernet(F.ipv4(F.udp(sport: 2152, dport: 53, F.hex("12340100000100000000000003777777076578616d706c6503636f6d0000010001"))))
        #expect(F.parsed(dns)?.kind == .nonGTP)
        let innerLookalike = F.ipv4(src: 0x0A00_0001, dst: 0x0A00_0002, proto: 17, F.udp(sport: 2152, dport: 2152, F.gtp(teid: 99, F.innerUDP)))
        let packet = try #require(F.parsed(F.n3(F.gtp(teid: 5, innerLookalike), sport: 2158)))
        #expect(packet.kind == .gPDU && packet.teid == 5)
        #expect(packet.inner.sourcePort == 2152 && packet.inner.destinationPort == 2152)
    }

    @Test("16: inner IPv4 IHL < 5, IHL past the end, Total Length larger than present")
    func case16InnerIPv4Lengths() {
        let ihl4 = F.ipv4(proto: 17, F.udp([1]), ihlOverride: 4)
        #expect(F.dropReason(F.n3(F.gtp(ihl4))) == .innerIPv4BadHeaderLength)
        let ihl15 = F.ipv4(proto: 17, [1, 2, 3, 4], ihlOverride: 15)
        #expect(F.dropReason(F.n3(F.gtp(ihl15))) == .innerIPv4Truncated)
        let announced1480 = F.ipv4(proto: 6, F.tcp() + Array(repeating: 0, count: 132), totalLengthOverride: 1480)
        #expect(F.dropReason(F.n3(F.gtp(announced1480))) == .innerIPv4TotalLengthExceedsPayload)
        let shorterThanHeader = F.ipv4(proto: 17, F.udp([1]), totalLengthOverride: 12)
        #expect(F.dropReason(F.n3(F.gtp(shorterThanHeader))) == .innerIPv4BadTotalLength)
        assertContained(F.n3(F.gtp(ihl15))); assertContained(F.n3(F.gtp(announced1480)))
    }

    @Test("17: inner IPv6 payload length 0 with Next Header ≠ 0; chains and jumbo options past the buffer")
    func case17InnerIPv6() {
        let zero = F.ipv6(nextHeader: 17, F.udp([1, 2]), payloadLengthOverride: 0)
        #expect(F.dropReason(F.n3(F.gtp(zero))) == .innerIPv6PayloadLengthZero)
        let jumbo = F.ipv6(nextHeader: 0, [17, 0, 0xC2, 4, 0, 1, 0, 0], payloadLengthOverride: 0)
        #expect(F.dropReason(F.n3(F.gtp(jumbo))) == .innerIPv6Jumbogram)
        let chainPastEnd = F.ipv6(nextHeader: 0, [60, 200, 0, 0, 0, 0, 0, 0])
        #expect(F.dropReason(F.n3(F.gtp(chainPastEnd))) == .innerIPv6ExtensionTruncated)
        let longChain = F.ipv6(nextHeader: 60, (0..<20).flatMap { _ in [UInt8(60), 0, 0, 0, 0, 0, 0, 0] })
        #expect(F.dropReason(F.n3(F.gtp(longChain))) == .innerIPv6ExtensionChainTooLong)
        let lengthPastEnd = F.ipv6(nextHeader: 17, F.udp([1, 2]), payloadLengthOverride: 900)
        #expect(F.dropReason(F.n3(F.gtp(lengthPastEnd))) == .innerIPv6PayloadLengthExceedsPayload)
        assertContained(F.n3(F.gtp(chainPastEnd))); assertContained(F.n3(F.gtp(jumbo)))
    }

    @Test("18: TCP/UDP header cut short; IP version neither 4 nor 6")
    func case18L4AndVersion() {
        let shortTCP = F.ipv4(proto: 6, Array(F.tcp()[0..<12]))
        #expect(F.dropReason(F.n3(F.gtp(shortTCP))) == .innerL4Truncated)
        let optionsPastEnd = F.ipv4(proto: 6, Array(F.tcp(dataOffsetWords: 15)[0..<20]))
        #expect(F.dropReason(F.n3(F.gtp(optionsPastEnd))) == .innerL4Truncated)
        let dataOffsetBelowMinimum = F.ipv4(proto: 6, F.tcp(dataOffsetWords: 4) + [0, 0, 0, 0])
        #expect(F.dropReason(F.n3(F.gtp(dataOffsetBelowMinimum))) == .innerL4Truncated)
        let shortUDP = F.ipv4(proto: 17, [0, 1, 0, 2])
        #expect(F.dropReason(F.n3(F.gtp(shortUDP))) == .innerL4Truncated)
        let version7 = F.ipv4(proto: 17, F.udp([1]), version: 7)
        #expect(F.dropReason(F.n3(F.gtp(version7))) == .innerIPVersionUnknown)
    }

    @Test("19: inner IPv4 header with a bad checksum")
    func case19InnerChecksum() {
        let bad = F.ipv4(proto: 17, F.udp([1, 2, 3]), badChecksum: true)
        #expect(F.dropReason(F.n3(F.gtp(bad))) == .innerIPv4BadChecksum)
        var noCheck = ParserOptions()
        noCheck.verifyInnerIPv4Checksum = false
        #expect(F.parsed(F.n3(F.gtp(bad)), options: noCheck)?.kind == .gPDU)
    }

    @Test("outer headers: truncation at every length never crashes")
    func everyPrefixOfValidFrames() {
        let frames = [
            F.n3(F.gtp(flags: 0x37, sequence: 1, npdu: 2, nextExtension: 0x85, extensions: F.pscDownlink(qfi: 9, ppi: 1), F.innerUDP)),
            F.ethernet(F.ipv6(nextHeader: 60, [17, 0, 1, 4, 0, 0, 0, 0] + F.udp(F.gtp(F.innerUDP), checksum: 1)), etherType: 0x86DD),
            F.n3(F.gtp(flags: 0x32, type: 26, teid: 0, [16] + F.be32(5) + [133, 0, 16] + F.v6a)),
        ]
        for frame in frames {
            assertContained(frame)
            assertContained(Array(frame[14...]), link: .rawIP)
        }
    }
}
