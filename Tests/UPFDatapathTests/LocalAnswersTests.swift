import Testing
import UPFPackets
import UPFPolicy
@testable import UPFDatapath

/// What the processor answers or takes in itself (`LocalAnswers.swift`): GTP-U path management,
/// ARP and Neighbour Discovery, next hops learnt by address. Frames are built by the project's
/// builders and read back by its parser; IntegrationTests checks the same through DPDK with tshark.
@Suite struct LocalAnswersTests {
    typealias P = PacketProcessorTests
    static let hz: UInt64 = 1_000_000_000   // one tick per nanosecond in these tests

    /// `PacketProcessorTests.Fixture`'s policy on ports whose core next hop is resolved by ARP
    /// and whose n3 port has an IPv6 address too, with an event queue and a limiter of 10 Error
    /// Indications per peer per second (1000 in total).
    final class Fixture {
        let base: P.Fixture
        let ports: PortTable
        let neighbors: NeighborTable
        let events = DatapathEventQueue(capacity: 4)
        let limiter: ErrorIndicationLimiter
        var processor: PacketProcessor

        init(perPeer: Double = 10, total: Double = 1000) throws {
            base = try P.Fixture()
            ports = try PortTable([
                PortInfo(role: .n3, mac: P.n3MAC, ipv4: ip("192.0.2.1").ipv4, ipv6: ip("2001:db8::1"), nextHop: P.gnbRouter),
                PortInfo(role: .core, mac: P.coreMAC, ipv4: ip("203.0.113.2").ipv4, ipv6: ip("2001:db8:c::2"),
                         nextHopAddress: ip("203.0.113.254")),
                PortInfo(role: .engine, mac: P.engineMAC, ipv4: ip("192.168.50.1").ipv4, ipv6: ip("2001:db8:e::1"),
                         nextHopAddress: ip("2001:db8:e::fe")),
            ])
            neighbors = NeighborTable(targets: ports.all.map(\.nextHopAddress),
                                      timing: NeighborTiming(retryTicks: 1_000, refreshTicks: 30_000, expiryTicks: 90_000))
            limiter = ErrorIndicationLimiter(perPeerRate: perPeer, totalRate: total, workers: 1, ticksPerSecond: LocalAnswersTests.hz)
            processor = PacketProcessor(reader: base.tables.reader(0), ports: ports, engines: base.engines,
                                        counters: base.counters.block(0), neighbors: neighbors, events: events,
                                        errorIndications: limiter)
            processor.ticks = 1
        }

        func local(_ counter: LocalCounter) -> UInt64 { base.counters.total(base.counters.layout.local(counter)) }
        func dropped(_ reason: DatapathDrop) -> UInt64 { base.dropped(reason) }
        func drainedEvents() -> [DatapathEvent] {
            var out: [DatapathEvent] = []
            events.drain { out.append($0) }
            return out
        }
    }

    /// A GTP-U message from the gNB (192.0.2.100, UDP source `sport`) to `destination`.
    static func signalling(_ build: (GTPUOuterHeader, UnsafeMutableRawBufferPointer) throws -> Int,
                           sport: UInt16 = 2152, destination: String = "192.0.2.1") -> [UInt8] {
        let outer = GTPUOuterHeader(source: ip("192.0.2.100"), destination: ip(destination), sourcePort: sport)!
        var bytes = [UInt8](repeating: 0, count: 200)
        let n = bytes.withUnsafeMutableBytes { raw in try! build(outer, raw) }
        return P.ethernet(Array(bytes[..<n]), to: P.n3MAC)
    }

    // MARK: GTP-U path management

    @Test func echoRequestIsAnsweredToItsSourcePortWithRecoveryAndTheSameSequence() throws {
        let f = try Fixture()
        var frame = P.Frame(Self.signalling({ o, b in
            try GTPUMessageBuilder.echoRequest(sequence: 0x1234, outer: o, into: b)
        }, sport: 40123))
        let (verdict, out) = frame.process(&f.processor, ingress: 0)
        #expect(verdict.egress == 0, "out of the port it came in on")
        // Sent to the request's source port: read it as GTP-U on that port.
        var options = ParserOptions()
        options.gtpPort = 40123
        var p = ParsedPacket()
        let failure = out.withUnsafeBytes { PacketParser.parse(PacketBytes($0), link: .ethernet, options: options, into: &p) }
        #expect(failure == nil)
        #expect(p.kind == .echoResponse && p.sequenceNumber == 0x1234 && p.teid == 0)
        #expect(p.hasRecovery && p.recoveryCounter == 0)
        #expect(p.outerSource == ip("192.0.2.1") && p.outerDestination == ip("192.0.2.100"))
        #expect(p.udpSourcePort == 2152 && p.udpDestinationPort == 40123)
        #expect(P.mac(out, at: 0) == MACAddress("02:00:00:00:99:99")! && P.mac(out, at: 6) == P.n3MAC)
        #expect(f.local(.echoResponseSent) == 1)
    }

    @Test func echoRequestToAnotherAddressIsNotOurs() throws {
        let f = try Fixture()
        var frame = P.Frame(Self.signalling({ o, b in
            try GTPUMessageBuilder.echoRequest(sequence: 1, outer: o, into: b)
        }, destination: "192.0.2.77"))
        let (verdict, _) = frame.process(&f.processor, ingress: 0)
        #expect(verdict.isDropped && f.dropped(.notAddressedToUPF) == 1 && f.local(.echoResponseSent) == 0)
    }

    @Test func unknownTEIDIsAnsweredWithAnErrorIndicationCarryingTheIEsAndTheUDPPort() throws {
        let f = try Fixture()
        let inner = P.ipv4Packet("10.45.0.1", "8.8.8.8")
        let encapsulation = GTPUEncapsulation(outer: GTPUOuterHeader(source: ip("192.0.2.100"), destination: ip("192.0.2.1"),
                                                                     sourcePort: 33333)!,
                                              teid: 0xDEAD_BEEF, pduSessionContainer: .uplink(qfi: 9))
        var packet = [UInt8](repeating: 0, count: encapsulation.headerLength) + inner
        packet.withUnsafeMutableBytes { raw in _ = try! encapsulation.write(into: raw, payloadLength: inner.count) }
        var frame = P.Frame(P.ethernet(packet, to: P.n3MAC))
        let (verdict, out) = frame.process(&f.processor, ingress: 0)
        #expect(verdict.egress == 0)
        let p = try #require(P.parse(out))
        #expect(p.kind == .errorIndication && p.teid == 0)
        #expect(p.hasTEIDDataI && p.teidDataI == 0xDEAD_BEEF)
        #expect(p.hasGSNAddress && p.gsnAddress == ip("192.0.2.1"))
        #expect(p.hasUDPPortExtension && p.udpPortExtension == 33333)
        #expect(p.gtpFlags & 0x06 == 0x06, "S and E set")
        #expect(p.outerDestination == ip("192.0.2.100") && p.udpDestinationPort == 2152)
        #expect(f.local(.errorIndicationSent) == 1 && f.dropped(.unknownTEID) == 0)
    }

    @Test func errorIndicationsAreRateLimitedPerPeerAndInTotal() throws {
        let f = try Fixture(perPeer: 10, total: 15)
        func unknown(from source: String) -> P.Frame {
            let inner = P.ipv4Packet("10.45.0.1", "8.8.8.8")
            let e = GTPUEncapsulation(outer: GTPUOuterHeader(source: ip(source), destination: ip("192.0.2.1"))!,
                                      teid: 0x0BAD, pduSessionContainer: nil)
            var packet = [UInt8](repeating: 0, count: e.headerLength) + inner
            packet.withUnsafeMutableBytes { raw in _ = try! e.write(into: raw, payloadLength: inner.count) }
            return P.Frame(P.ethernet(packet, to: P.n3MAC))
        }
        // 1000 G-PDUs from one peer over one simulated second (one per ms): 10 answers.
        for i in 0..<1000 {
            f.processor.ticks = 1 + UInt64(i) * 1_000_000
            var frame = unknown(from: "192.0.2.100")
            _ = frame.process(&f.processor, ingress: 0)
        }
        #expect(f.local(.errorIndicationSent) == 10)
        #expect(f.dropped(.unknownTEID) == 990)
        // 100 peers at the same instant: the total rate (one per 1/15 s) lets one through.
        let before = f.local(.errorIndicationSent)
        for k in 0..<100 {
            var frame = unknown(from: "198.18.0.\(k + 1)")
            _ = frame.process(&f.processor, ingress: 0)
        }
        #expect(f.local(.errorIndicationSent) - before == 1)
    }

    @Test func noLimiterMeansNoErrorIndication() throws {
        let base = try P.Fixture()
        var frame = P.Frame(P.gpdu(teid: 999, qfi: 9, inner: P.ipv4Packet("10.45.0.1", "8.8.8.8")))
        let (verdict, _) = frame.process(&base.processor, ingress: 0)
        #expect(verdict.isDropped && base.dropped(.unknownTEID) == 1)
    }

    @Test func receivedErrorIndicationAndEndMarkerRaiseEventsAndAreCounted() throws {
        let f = try Fixture()
        var ei = P.Frame(Self.signalling({ o, b in
            try GTPUMessageBuilder.errorIndication(teid: 4096, peerAddress: ip("192.0.2.100"), triggeringSourcePort: nil,
                                                   outer: o, into: b)
        }))
        #expect(ei.process(&f.processor, ingress: 0).0.isDropped)
        var em = P.Frame(Self.signalling({ o, b in
            try GTPUMessageBuilder.endMarker(teid: 256, outer: o, into: b)
        }))
        #expect(em.process(&f.processor, ingress: 0).0.isDropped)
        let events = f.drainedEvents()
        #expect(events == [
            DatapathEvent(kind: .errorIndication, port: 0, teid: 4096, peer: ip("192.0.2.100"), source: ip("192.0.2.100")),
            DatapathEvent(kind: .endMarker, port: 0, teid: 256, peer: ip("192.0.2.100"), source: ip("192.0.2.100")),
        ])
        #expect(f.local(.errorIndicationReceived) == 1 && f.local(.endMarkerReceived) == 1)
        #expect(f.base.counters.total(f.base.counters.layout.datapath(.gtpuSignallingUnhandled)) == 0)
    }

    @Test func aFullEventQueueLosesEventsCountedNeverBlocks() throws {
        let f = try Fixture()   // capacity 4
        for _ in 0..<6 {
            var em = P.Frame(Self.signalling({ o, b in
                try GTPUMessageBuilder.endMarker(teid: 256, outer: o, into: b)
            }))
            _ = em.process(&f.processor, ingress: 0)
        }
        #expect(f.drainedEvents().count == 4)
        #expect(f.local(.eventsLost) == 2 && f.local(.endMarkerReceived) == 6)
    }

    // MARK: ARP

    static func macBytes(_ mac: MACAddress) -> [UInt8] {
        (0..<6).map { UInt8(truncatingIfNeeded: mac.value >> (40 - 8 * UInt64($0))) }
    }

    static func arp(operation: UInt16, senderMAC: MACAddress, senderIP: String, targetIP: String,
                    to destination: MACAddress = .broadcast) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: 28)
        p.withUnsafeMutableBytes { raw in
            let b = raw.baseAddress!
            b.storeBigEndian(UInt16(1), toByteOffset: 0)
            b.storeBigEndian(UInt16(0x0800), toByteOffset: 2)
            b.storeByte(6, toByteOffset: 4)
            b.storeByte(4, toByteOffset: 5)
            b.storeBigEndian(operation, toByteOffset: 6)
            b.storeBigEndian(UInt32(truncatingIfNeeded: senderMAC.value >> 16), toByteOffset: 8)
            b.storeBigEndian(UInt16(truncatingIfNeeded: senderMAC.value), toByteOffset: 12)
            b.storeBigEndian(ip(senderIP).ipv4, toByteOffset: 14)
            b.storeBigEndian(ip(targetIP).ipv4, toByteOffset: 24)
        }
        var frame = P.ethernet(p, to: destination, etherType: 0x0806)
        frame.replaceSubrange(6..<12, with: Self.macBytes(senderMAC))
        return frame
    }

    @Test func arpRequestForThePortsAddressIsAnsweredOnEveryPort() throws {
        let f = try Fixture()
        let asker = MACAddress("02:00:00:00:77:01")!
        for (port, own, mac) in [(0, "192.0.2.1", P.n3MAC), (1, "203.0.113.2", P.coreMAC), (2, "192.168.50.1", P.engineMAC)] {
            var frame = P.Frame(Self.arp(operation: 1, senderMAC: asker, senderIP: "10.9.9.9", targetIP: own))
            let (verdict, out) = frame.process(&f.processor, ingress: port)
            #expect(verdict.egress == Int32(port) && out.count == 42)
            let reply = try #require(out.withUnsafeBytes { ARPPacket.read(PacketBytes($0), at: 14) })
            #expect(reply == ARPPacket(operation: 2, senderMAC: mac, senderIP: ip(own).ipv4, targetMAC: asker, targetIP: ip("10.9.9.9").ipv4))
            #expect(P.mac(out, at: 0) == asker && P.mac(out, at: 6) == mac)
        }
        #expect(f.local(.arpReplySent) == 3)
        var other = P.Frame(Self.arp(operation: 1, senderMAC: asker, senderIP: "10.9.9.9", targetIP: "192.0.2.99"))
        #expect(other.process(&f.processor, ingress: 0).0.isDropped)
        #expect(f.dropped(.arpUnhandled) == 1)
    }

    @Test func aNextHopGivenByAddressIsResolvedByARPBeforeTrafficFlowsAndExpires() throws {
        let f = try Fixture()
        let n9 = P.gpdu(teid: 256, qfi: 9, inner: P.ipv4Packet("10.45.0.1", "8.8.8.8", proto: 17, sport: 5353, dport: 53))
        var early = P.Frame(n9)
        #expect(early.process(&f.processor, ingress: 0).0.isDropped)
        #expect(f.dropped(.nextHopUnresolved) == 1)

        // Worker 0 asks: an ARP request for 203.0.113.254 from the core port.
        #expect(f.neighbors.due(now: 10) == 0b110, "core (ARP) and engine (ND) are unresolved")
        #expect(f.neighbors.due(now: 500) == 0, "not again before retry")
        var request = [UInt8](repeating: 0, count: 128)
        let n = request.withUnsafeMutableBytes { f.processor.writeNeighborRequest(port: 1, into: $0.baseAddress!, capacity: 128) }
        #expect(n == 60 && P.mac(request, at: 0) == .broadcast && request[12] == 0x08 && request[13] == 0x06)
        let asked = try #require(request.withUnsafeBytes { ARPPacket.read(PacketBytes($0), at: 14) })
        #expect(asked.operation == 1 && asked.senderIP == ip("203.0.113.2").ipv4 && asked.targetIP == ip("203.0.113.254").ipv4)

        // The router answers; the next G-PDU goes to it.
        let router = MACAddress("02:00:00:00:fe:fe")!
        f.processor.ticks = 1_000
        var reply = P.Frame(Self.arp(operation: 2, senderMAC: router, senderIP: "203.0.113.254", targetIP: "203.0.113.2",
                                     to: P.coreMAC))
        #expect(reply.process(&f.processor, ingress: 1).0.isDropped)
        #expect(f.local(.arpFromNextHop) == 1 && f.neighbors.resolved(1) == router)
        var later = P.Frame(n9)
        let (verdict, out) = later.process(&f.processor, ingress: 0)
        #expect(verdict.egress == 1 && P.mac(out, at: 0) == router)

        // Refreshed after 30 000 ticks of silence, forgotten after 90 000.
        #expect(f.neighbors.due(now: 20_000) & 0b010 == 0)
        #expect(f.neighbors.due(now: 40_000) & 0b010 != 0)
        _ = f.neighbors.due(now: 100_000)
        #expect(f.neighbors.resolved(1) == nil)
        var expired = P.Frame(n9)
        #expect(expired.process(&f.processor, ingress: 0).0.isDropped)
        #expect(f.dropped(.nextHopUnresolved) == 2)
    }

    // MARK: Neighbour Discovery

    /// An ICMPv6 ND message (hop limit 255) from `source` to `destination`, checksummed.
    static func nd(type: UInt8, source: String, destination: String, target: String, from mac: MACAddress) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: 40 + 32)
        p.withUnsafeMutableBytes { raw in
            let b = raw.baseAddress!
            PacketProcessor.writeICMPv6(at: b, source: ip(source), destination: ip(destination), length: 32)
            b.storeByte(type, toByteOffset: 40)
            b.storeIPv6Address(ip(target), toByteOffset: 48)
            b.storeByte(type == 135 ? 1 : 2, toByteOffset: 64)
            b.storeByte(1, toByteOffset: 65)
            PacketProcessor.writeMAC(mac, at: b + 66)
            PacketProcessor.fillICMPv6Checksum(at: b, length: 32)
        }
        var frame = P.ethernet(p, to: MACAddress(0x3333_FF00_0001), etherType: 0x86DD)
        frame.replaceSubrange(6..<12, with: Self.macBytes(mac))
        return frame
    }

    static func icmpv6ChecksumIsValid(_ frame: [UInt8]) -> Bool {
        frame.withUnsafeBytes { raw in
            let bytes = PacketBytes(raw)
            let length = Int(bytes.u16(14 + 4))
            var sum = InternetChecksum()
            sum.addIPv6PseudoHeader(source: bytes.ipv6Address(14 + 8), destination: bytes.ipv6Address(14 + 24),
                                    nextHeader: 58, length: length)
            sum.add(bytes: raw.baseAddress! + 54, count: length)
            return sum.onesComplementSum == 0xFFFF
        }
    }

    @Test func neighborSolicitationForThePortsAddressIsAdvertised() throws {
        let f = try Fixture()
        let asker = MACAddress("02:00:00:00:77:06")!
        for (port, own, mac) in [(0, "2001:db8::1", P.n3MAC), (1, "2001:db8:c::2", P.coreMAC)] {
            let group = PacketProcessor.solicitedNode(ip(own))
            var frame = P.Frame(Self.nd(type: 135, source: "fe80::77", destination: "\(group)", target: own, from: asker))
            let (verdict, out) = frame.process(&f.processor, ingress: port)
            #expect(verdict.egress == Int32(port) && out.count == 14 + 72)
            #expect(out[14 + 40] == 136 && out[14 + 7] == 255)
            #expect(out.withUnsafeBytes { PacketBytes($0).ipv6Address(14 + 48) } == ip(own), "target")
            #expect(out.withUnsafeBytes { PacketBytes($0).ipv6Address(14 + 24) } == ip("fe80::77"), "to the solicitor")
            #expect(out[14 + 44] == 0x60, "solicited and override")
            #expect(out[14 + 64] == 2 && P.mac(out, at: 14 + 66) == mac, "target link-layer address")
            #expect(P.mac(out, at: 0) == asker && P.mac(out, at: 6) == mac)
            #expect(Self.icmpv6ChecksumIsValid(out))
        }
        #expect(f.local(.neighborAdvertisementSent) == 2)
        var other = P.Frame(Self.nd(type: 135, source: "fe80::77", destination: "ff02::1:ff00:99", target: "2001:db8::99", from: asker))
        #expect(other.process(&f.processor, ingress: 0).0.isDropped)
    }

    @Test func anIPv6NextHopIsSolicitedAndLearntFromItsAdvertisement() throws {
        let f = try Fixture()
        var request = [UInt8](repeating: 0, count: 128)
        let n = request.withUnsafeMutableBytes { f.processor.writeNeighborRequest(port: 2, into: $0.baseAddress!, capacity: 128) }
        #expect(n == 86 && Self.icmpv6ChecksumIsValid(Array(request[..<n])))
        #expect(P.mac(request, at: 0) == MACAddress(0x3333_FF00_00FE), "solicited-node group of ...::fe")
        #expect(request[14 + 40] == 135)
        let router = MACAddress("02:00:00:00:e0:fe")!
        var na = P.Frame(Self.nd(type: 136, source: "2001:db8:e::fe", destination: "2001:db8:e::1", target: "2001:db8:e::fe",
                                 from: router))
        #expect(na.process(&f.processor, ingress: 2).0.isDropped)
        #expect(f.neighbors.resolved(2) == router && f.local(.neighborAdvertisementFromNextHop) == 1)
    }
}
