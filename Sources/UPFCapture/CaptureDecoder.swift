import UPFPackets

/// What the data path makes of one captured frame.
public struct DecodedFrame {
    public enum Outcome {
        case parsed(ParsedPacket)
        case dropped(DropReason)
        /// An outer IPv4 fragment held until its datagram is complete.
        case fragmentHeld
    }

    public var number: Int
    public var outcome: Outcome

    /// The kind label of the decoder's output (`drop` for refusals; ARP is `non_gtp`).
    public var kindName: String {
        switch outcome {
        case .parsed(let packet): packet.kind == .arp ? PacketKind.nonGTP.name : packet.kind.name
        case .dropped: "drop"
        case .fragmentHeld: PacketKind.outerFragment.name
        }
    }

    /// One JSON object: `{"frame":N,"kind":…,"reason":…,"teid":N,"qfi":N,"inner":{…}}`, with
    /// only the fields that apply.
    public var jsonLine: String {
        var line = "{\"frame\":\(number),\"kind\":\"\(kindName)\""
        switch outcome {
        case .dropped(let reason):
            line += ",\"reason\":\"\(reason.name)\""
        case .fragmentHeld:
            break
        case .parsed(let packet):
            guard packet.kind != .nonGTP && packet.kind != .arp else { break }
            line += ",\"teid\":\(packet.teid)"
            if packet.psc.present { line += ",\"qfi\":\(packet.psc.qfi)" }
            if packet.kind == .gPDU && packet.inner.version != 0 {
                let inner = packet.inner
                line += ",\"inner\":{\"version\":\(inner.version),\"src\":\"\(inner.source)\""
                line += ",\"dst\":\"\(inner.destination)\",\"proto\":\(inner.proto)"
                if inner.hasPorts { line += ",\"sport\":\(inner.sourcePort),\"dport\":\(inner.destinationPort)" }
                line += "}"
            }
        }
        return line + "}"
    }

    /// One human line, e.g. `7 gpdu teid=0x1 qfi=9 ipv4 10.0.0.1 -> 10.0.0.2 icmp`.
    public var textLine: String {
        var line = "\(number) \(kindName)"
        switch outcome {
        case .dropped(let reason):
            line += " reason=\(reason.name)"
        case .fragmentHeld:
            line += " (held for reassembly)"
        case .parsed(let packet):
            guard packet.kind != .nonGTP && packet.kind != .arp else {
                if packet.outerVersion != 0 {
                    line += " ipv\(packet.outerVersion) \(packet.outerSource) -> \(packet.outerDestination) proto=\(packet.outerProtocol)"
                } else if packet.kind == .arp {
                    line += " arp"
                } else {
                    line += " ethertype=0x\(String(packet.etherType, radix: 16))"
                }
                break
            }
            line += " teid=0x\(String(packet.teid, radix: 16))"
            line += " \(packet.outerSource) -> \(packet.outerDestination)"
            if packet.psc.present {
                line += " psc=\(packet.psc.pduType == GTPU.PDUType.uplink ? "ul" : "dl") qfi=\(packet.psc.qfi)"
            }
            if packet.gtpFlags & GTPU.Flag.sequenceNumber != 0 { line += " seq=\(packet.sequenceNumber)" }
            if packet.hasRecovery { line += " recovery=\(packet.recoveryCounter)" }
            if packet.hasTEIDDataI { line += " teid_data_i=0x\(String(packet.teidDataI, radix: 16))" }
            if packet.hasGSNAddress { line += " gsn=\(packet.gsnAddress)" }
            if packet.hasUDPPortExtension { line += " udp_port_ext=\(packet.udpPortExtension)" }
            if packet.kind == .gPDU && packet.inner.version != 0 {
                let inner = packet.inner
                func endpoint(_ address: IPAddress, _ port: UInt16) -> String {
                    guard inner.hasPorts else { return "\(address)" }
                    return inner.version == 6 ? "[\(address)]:\(port)" : "\(address):\(port)"
                }
                line += " | ipv\(inner.version) \(endpoint(inner.source, inner.sourcePort))"
                line += " -> \(endpoint(inner.destination, inner.destinationPort)) proto=\(inner.proto)"
            }
        }
        return line
    }
}

/// Reads a capture and runs every frame through the parser and the outer-IPv4 reassembler, the
/// way the data path sees traffic, counting every kind and drop reason.
public final class CaptureDecoder {
    private let reader: PcapReader
    private let link: LinkLayer
    private let options: ParserOptions
    private let reassembler = IPv4Reassembler()
    public private(set) var drops = DropCounters()
    public private(set) var kinds: [String: Int] = [:]
    public private(set) var frames = 0

    public init(path: String, options: ParserOptions = ParserOptions()) throws {
        reader = try PcapReader(path: path)
        self.options = options
        switch CaptureLinkType(rawValue: reader.dataLinkType) {
        case .ethernet: link = .ethernet
        case .linuxSLL: link = .linuxSLL
        case .linuxSLL2: link = .linuxSLL2
        case .raw, .ipv4, .ipv6, .rawAlternate, .rawAlternate14: link = .rawIP
        case nil:
            throw CaptureError("\(path): link type \(reader.dataLinkType) is not one the data path reads "
                + "(Ethernet, Linux SLL, SLL2, raw IP)")
        }
    }

    /// Datagrams whose fragments never all arrived (counted once the capture ends).
    public var reassemblyEvicted: UInt64 { reassembler.evicted }

    /// The next decoded frame, nil at the end of the capture.
    public func next() throws -> DecodedFrame? {
        guard let frame = try reader.next() else {
            reassembler.flush()
            if reassembler.evicted > 0 {
                for _ in 0..<reassembler.evicted { drops.count(.outerFragmentEvicted) }
            }
            return nil
        }
        frames += 1
        let bytes = PacketBytes(frame.bytes)
        var packet = ParsedPacket()
        var outcome: DecodedFrame.Outcome
        if let reason = PacketParser.parse(bytes, link: link, options: options, into: &packet) {
            outcome = .dropped(reason)
        } else if packet.kind == .outerFragment {
            let now = UInt64(frame.timestampSeconds) &* 1_000_000_000 &+ UInt64(frame.timestampMicroseconds) &* 1000
            switch reassembler.add(bytes, packet: packet, nowNanos: now) {
            case .held:
                outcome = .fragmentHeld
            case .dropped(let reason):
                outcome = .dropped(reason)
            case .complete(let datagram):
                var whole = ParsedPacket()
                if let reason = PacketParser.parse(PacketBytes(datagram), link: .rawIP, options: options, into: &whole) {
                    outcome = .dropped(reason)
                } else {
                    outcome = .parsed(whole)
                }
            }
        } else {
            outcome = .parsed(packet)
        }
        let decoded = DecodedFrame(number: frame.number, outcome: outcome)
        if case .dropped(let reason) = outcome { drops.count(reason) }
        kinds[decoded.kindName, default: 0] += 1
        return decoded
    }
}
