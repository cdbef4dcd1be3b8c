import UPFPackets

// What the service answers or takes in itself, on the worker that received it: GTP-U path
// management (TS 29.281 §7.2, §7.3), ARP (RFC 826) and Neighbour Discovery (RFC 4861) for its
// own addresses, and learning the MACs of next hops configured by address.
//
// Answers are written into the received mbuf and leave through the port they came in on, to the
// sender's MAC: the Ethernet header (and any VLAN tags) stays where it is, the network layer
// onwards is rebuilt from scratch. All of this is off the G-PDU path: nothing here is inlined
// into it.

extension PacketProcessor {
    // MARK: GTP-U signalling

    /// Echo, Error Indication, End Marker and Supported Extension Headers Notification addressed
    /// to port `port`'s own address (checked by the caller).
    @usableFromInline @inline(never)
    mutating func takeSignalling(frame: UnsafeMutableRawPointer, room: Int, port: Int) -> PacketVerdict {
        switch parsed.kind {
        case .echoRequest:
            // §7.2.2: to the request's source address and UDP source port, its sequence number.
            guard let outer = GTPUOuterHeader(source: parsed.outerDestination, destination: parsed.outerSource,
                                              destinationPort: parsed.udpSourcePort)
            else { return drop(.noLocalAddressForPeer) }
            let l3 = Int(parsed.l3Offset)
            guard let n = try? GTPUMessageBuilder.echoResponse(sequence: parsed.sequenceNumber, outer: outer,
                                                               into: answerBuffer(frame, room: room, at: l3))
            else { return drop(.noRoomForAnswer) }
            return answer(frame: frame, length: l3 &+ n, port: port, counter: .echoResponseSent)
        case .echoResponse:
            counters.count(LocalCounter.echoResponseReceived)
            raise(DatapathEvent(kind: .echoResponse, port: UInt8(truncatingIfNeeded: port), teid: UInt32(parsed.sequenceNumber),
                                peer: parsed.outerSource, source: parsed.outerSource))
            return .dropped
        case .errorIndication:
            counters.count(LocalCounter.errorIndicationReceived)
            raise(DatapathEvent(kind: .errorIndication, port: UInt8(truncatingIfNeeded: port), teid: parsed.teidDataI,
                                peer: parsed.gsnAddress, source: parsed.outerSource))
            return .dropped
        case .endMarker:
            counters.count(LocalCounter.endMarkerReceived)
            raise(DatapathEvent(kind: .endMarker, port: UInt8(truncatingIfNeeded: port), teid: parsed.teid,
                                peer: parsed.outerSource, source: parsed.outerSource))
            return .dropped
        case .supportedExtensionHeadersNotification:
            counters.count(LocalCounter.extensionHeadersNotificationReceived)
            return .dropped
        default:
            return drop(.gtpuSignallingUnhandled)
        }
    }

    /// A G-PDU for a TEID no session has: an Error Indication (§7.3.1) back to its sender when
    /// the sender's and the worker's rates allow, else a counted drop (`unknown_teid`). Either
    /// way the G-PDU itself goes no further.
    @usableFromInline @inline(never)
    mutating func answerUnknownTEID(frame: UnsafeMutableRawPointer, room: Int, port: Int) -> PacketVerdict {
        guard let meter = errorIndications, meter.allow(parsed.outerSource, now: ticks),
              let outer = GTPUOuterHeader(source: parsed.outerDestination, destination: parsed.outerSource)
        else { return drop(.unknownTEID) }
        let l3 = Int(parsed.l3Offset)
        // The UDP Port extension tells the peer which of its sockets sent the G-PDU, since the
        // Error Indication itself goes to port 2152.
        guard let n = try? GTPUMessageBuilder.errorIndication(teid: parsed.teid, peerAddress: parsed.outerDestination,
                                                              triggeringSourcePort: parsed.udpSourcePort, outer: outer,
                                                              into: answerBuffer(frame, room: room, at: l3))
        else { return drop(.noRoomForAnswer) }
        return answer(frame: frame, length: l3 &+ n, port: port, counter: .errorIndicationSent)
    }

    @inlinable
    func raise(_ event: DatapathEvent) {
        guard let events else { return }
        if !events.push(event) { counters.count(LocalCounter.eventsLost) }
    }

    // MARK: ARP

    /// An ARP request for one of the port's IPv4 addresses is answered; ARP from the port's
    /// next hop (request or reply) teaches its MAC; anything else is dropped (`arp_unhandled`).
    @usableFromInline @inline(never)
    mutating func answerARP(_ bytes: PacketBytes, frame: UnsafeMutableRawPointer, room: Int, port: Int) -> PacketVerdict {
        let l3 = Int(parsed.l3Offset)
        guard let arp = ARPPacket.read(bytes, at: l3) else { return drop(.arpUnhandled) }
        let info = ports[port]
        let fromNextHop = info.nextHopAddress.map { $0.isIPv4 && $0.ipv4 == arp.senderIP } ?? false
        if fromNextHop && arp.senderMAC.value != 0 {
            neighbors.learn(port, mac: arp.senderMAC, now: ticks)
        }
        if arp.operation == ARPPacket.request, let own = info.ipv4, arp.targetIP == own {
            guard room >= l3 &+ ARPPacket.length else { return drop(.noRoomForAnswer) }
            let p = frame + l3
            p.storeBigEndian(UInt16(1), toByteOffset: 0)
            p.storeBigEndian(EtherType.ipv4, toByteOffset: 2)
            p.storeByte(6, toByteOffset: 4)
            p.storeByte(4, toByteOffset: 5)
            p.storeBigEndian(ARPPacket.reply, toByteOffset: 6)
            PacketProcessor.writeMAC(info.mac, at: p + 8)
            p.storeBigEndian(own, toByteOffset: 14)
            PacketProcessor.writeMAC(arp.senderMAC, at: p + 18)
            p.storeBigEndian(arp.senderIP, toByteOffset: 24)
            return answer(frame: frame, length: l3 &+ ARPPacket.length, port: port, counter: .arpReplySent)
        }
        if fromNextHop {
            counters.count(LocalCounter.arpFromNextHop)
            return .dropped
        }
        return drop(.arpUnhandled)
    }

    // MARK: Neighbour Discovery

    /// True for the port's own IPv6 address, its solicited-node multicast address and the
    /// all-nodes address: where Neighbour Solicitations and Advertisements for it are sent.
    @inlinable
    static func isLinkScope(_ destination: IPAddress, _ port: PortInfo) -> Bool {
        guard let own = port.ipv6 else { return false }
        return destination == own || destination == solicitedNode(own) || destination == allNodes
    }

    @usableFromInline static let allNodes = IPAddress(high: 0xFF02_0000_0000_0000, low: 1)

    @inlinable
    static func solicitedNode(_ address: IPAddress) -> IPAddress {
        IPAddress(high: 0xFF02_0000_0000_0000, low: 0x0000_0001_FF00_0000 | address.low & 0xFF_FFFF)
    }

    /// A Neighbour Solicitation for the port's IPv6 address is answered with an Advertisement
    /// (solicited, override, with the target link-layer address); an Advertisement from the
    /// port's next hop teaches its MAC (the frame's source MAC); anything else is `otherwise`.
    @usableFromInline @inline(never)
    mutating func answerNeighborDiscovery(_ bytes: PacketBytes, frame: UnsafeMutableRawPointer, room: Int, port: Int,
                                          otherwise: DatapathDrop) -> PacketVerdict {
        let l3 = Int(parsed.l3Offset)
        let info = ports[port]
        // RFC 4861 §7.1.1/§7.1.2: hop limit 255 (never routed), ICMPv6 code 0, at least 24
        // octets of message; no extension headers in front (a node may refuse those).
        guard let own = info.ipv6, bytes.count >= l3 &+ 64, bytes.u8(l3) >> 4 == 6,
              bytes.u8(l3 &+ 6) == IPProtocol.icmpv6, bytes.u8(l3 &+ 7) == 255, bytes.u8(l3 &+ 41) == 0,
              Int(bytes.u16(l3 &+ 4)) >= 24, l3 &+ 40 &+ Int(bytes.u16(l3 &+ 4)) <= bytes.count
        else { return drop(otherwise) }
        let type = bytes.u8(l3 &+ 40)
        let target = bytes.ipv6Address(l3 &+ 48)
        let source = bytes.ipv6Address(l3 &+ 8)
        if type == ICMPHeader.neighborAdvertisement, let hop = info.nextHopAddress, !hop.isIPv4, target == hop {
            neighbors.learn(port, mac: PacketProcessor.readMAC(bytes, at: 6), now: ticks)
            counters.count(LocalCounter.neighborAdvertisementFromNextHop)
            return .dropped
        }
        guard type == ICMPHeader.neighborSolicitation, target == own else { return drop(otherwise) }
        let requester = PacketProcessor.readMAC(bytes, at: 6)
        // A solicitation from the unspecified address (duplicate address detection) is answered
        // to all nodes, not solicited (§7.2.4).
        let unspecified = source == .zero
        let destination = unspecified ? PacketProcessor.allNodes : source
        guard room >= l3 &+ 72 else { return drop(.noRoomForAnswer) }
        let p = frame + l3
        PacketProcessor.writeICMPv6(at: p, source: own, destination: destination, length: 32)
        p.storeByte(ICMPHeader.neighborAdvertisement, toByteOffset: 40)
        p.storeByte(0, toByteOffset: 41)
        p.storeBigEndian(UInt16(0), toByteOffset: 42)
        p.storeBigEndian(unspecified ? UInt32(0x2000_0000) : UInt32(0x6000_0000), toByteOffset: 44)  // S (unless DAD), O
        p.storeIPv6Address(own, toByteOffset: 48)
        p.storeByte(2, toByteOffset: 64)                    // target link-layer address option
        p.storeByte(1, toByteOffset: 65)
        PacketProcessor.writeMAC(info.mac, at: p + 66)
        PacketProcessor.fillICMPv6Checksum(at: p, length: 32)
        if unspecified { PacketProcessor.writeMAC(MACAddress(0x3333_0000_0001), at: frame) }
        let verdict = answer(frame: frame, length: l3 &+ 72, port: port, counter: .neighborAdvertisementSent)
        if !unspecified { PacketProcessor.writeMAC(requester, at: frame) }
        return verdict
    }

    // MARK: Requests this service originates

    /// Writes into `frame` (at least 86 octets) the ARP request or Neighbour Solicitation that
    /// resolves port `port`'s next hop and returns its length (0: the port has nothing to ask
    /// with, e.g. no address of the next hop's family). Counted as originated.
    public func writeNeighborRequest(port: Int, into frame: UnsafeMutableRawPointer, capacity: Int) -> Int {
        let info = ports[port]
        guard let hop = info.nextHopAddress, capacity >= 86 else { return 0 }
        if hop.isIPv4 {
            guard let own = info.ipv4 else { return 0 }
            PacketProcessor.writeEthernet(at: frame, destination: .broadcast, source: info.mac, etherType: EtherType.arp)
            let p = frame + 14
            p.storeBigEndian(UInt16(1), toByteOffset: 0)
            p.storeBigEndian(EtherType.ipv4, toByteOffset: 2)
            p.storeByte(6, toByteOffset: 4)
            p.storeByte(4, toByteOffset: 5)
            p.storeBigEndian(ARPPacket.request, toByteOffset: 6)
            PacketProcessor.writeMAC(info.mac, at: p + 8)
            p.storeBigEndian(own, toByteOffset: 14)
            PacketProcessor.writeMAC(MACAddress(0), at: p + 18)
            p.storeBigEndian(hop.ipv4, toByteOffset: 24)
            // Padded to Ethernet's 60-octet minimum (some peers ignore runts).
            (frame + 42).initializeMemory(as: UInt8.self, repeating: 0, count: 18)
            counters.count(LocalCounter.arpRequestSent)
            return 60
        }
        guard let own = info.ipv6 else { return 0 }
        let group = PacketProcessor.solicitedNode(hop)
        PacketProcessor.writeEthernet(at: frame, destination: MACAddress(0x3333_0000_0000 | group.low & 0xFFFF_FFFF),
                                      source: info.mac, etherType: EtherType.ipv6)
        let p = frame + 14
        PacketProcessor.writeICMPv6(at: p, source: own, destination: group, length: 32)
        p.storeByte(ICMPHeader.neighborSolicitation, toByteOffset: 40)
        p.storeByte(0, toByteOffset: 41)
        p.storeBigEndian(UInt16(0), toByteOffset: 42)
        p.storeBigEndian(UInt32(0), toByteOffset: 44)
        p.storeIPv6Address(hop, toByteOffset: 48)
        p.storeByte(1, toByteOffset: 64)                    // source link-layer address option
        p.storeByte(1, toByteOffset: 65)
        PacketProcessor.writeMAC(info.mac, at: p + 66)
        PacketProcessor.fillICMPv6Checksum(at: p, length: 32)
        counters.count(LocalCounter.neighborSolicitationSent)
        return 14 + 72
    }

    // MARK: Helpers

    /// The writable octets from `offset` of the frame on.
    @usableFromInline
    func answerBuffer(_ frame: UnsafeMutableRawPointer, room: Int, at offset: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: frame + offset, count: max(0, room &- offset))
    }

    /// Turns the frame around: to the sender's MAC, from the port's, out of the port it came in on.
    @usableFromInline
    func answer(frame: UnsafeMutableRawPointer, length: Int, port: Int, counter: LocalCounter) -> PacketVerdict {
        let requester = PacketProcessor.readMAC(PacketBytes(base: UnsafeRawPointer(frame), count: 12), at: 6)
        PacketProcessor.writeMAC(requester, at: frame)
        PacketProcessor.writeMAC(ports[port].mac, at: frame + 6)
        counters.count(counter)
        return PacketVerdict(egress: Int32(truncatingIfNeeded: port), offset: 0, length: Int32(truncatingIfNeeded: length))
    }

    @usableFromInline
    static func readMAC(_ bytes: PacketBytes, at offset: Int) -> MACAddress {
        MACAddress(UInt64(bytes.u32(offset)) << 16 | UInt64(bytes.u16(offset &+ 4)))
    }

    @usableFromInline
    static func writeMAC(_ mac: MACAddress, at p: UnsafeMutableRawPointer) {
        p.storeBigEndian(UInt32(truncatingIfNeeded: mac.value >> 16), toByteOffset: 0)
        p.storeBigEndian(UInt16(truncatingIfNeeded: mac.value), toByteOffset: 4)
    }

    /// An IPv6 header for an ICMPv6 message of `length` octets (hop limit 255: link-local ND).
    @usableFromInline
    static func writeICMPv6(at p: UnsafeMutableRawPointer, source: IPAddress, destination: IPAddress, length: Int) {
        p.storeBigEndian(UInt32(0x6000_0000), toByteOffset: 0)
        p.storeBigEndian(UInt16(truncatingIfNeeded: length), toByteOffset: 4)
        p.storeByte(IPProtocol.icmpv6, toByteOffset: 6)
        p.storeByte(255, toByteOffset: 7)
        p.storeIPv6Address(source, toByteOffset: 8)
        p.storeIPv6Address(destination, toByteOffset: 24)
    }

    /// The ICMPv6 checksum (RFC 4443 §2.3) of the message behind the IPv6 header at `p`.
    @usableFromInline
    static func fillICMPv6Checksum(at p: UnsafeMutableRawPointer, length: Int) {
        let bytes = PacketBytes(base: UnsafeRawPointer(p), count: 40 &+ length)
        var sum = InternetChecksum()
        sum.addIPv6PseudoHeader(source: bytes.ipv6Address(8), destination: bytes.ipv6Address(24),
                                nextHeader: IPProtocol.icmpv6, length: length)
        sum.add(bytes: UnsafeRawPointer(p + 40), count: length)
        p.storeBigEndian(sum.checksum, toByteOffset: 42)
    }
}
