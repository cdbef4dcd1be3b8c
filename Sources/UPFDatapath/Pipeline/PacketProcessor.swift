import UPFPackets
import UPFPolicy

/// What to do with a frame after `PacketProcessor.process`: send it on port `egress` (an index
/// into the `PortTable`) as the `length` octets that now start `offset` octets from where the
/// frame started (negative: new headers were written into the headroom in front of it), or drop
/// it (`egress < 0`; the reason is already counted) — or hold it: `isBuffered`, the session's
/// rule says `buffer` and `PacketProcessor.bufferRequest` says for which session.
@frozen
public struct PacketVerdict: Equatable, Sendable {
    public var egress: Int32
    public var offset: Int32
    public var length: Int32

    @inlinable
    public init(egress: Int32, offset: Int32, length: Int32) {
        self.egress = egress
        self.offset = offset
        self.length = length
    }

    public static let dropped = PacketVerdict(egress: -1, offset: 0, length: 0)
    public static let buffered = PacketVerdict(egress: -2, offset: 0, length: 0)
    /// Not to be sent (dropped, or to be held: see `isBuffered`).
    @inlinable public var isDropped: Bool { egress < 0 }
    /// To be held for the session of `PacketProcessor.bufferRequest` (the frame is unchanged).
    @inlinable public var isBuffered: Bool { egress == -2 }
}

/// For which session a `buffered` verdict asks the worker to hold the packet, and how it can
/// tell later whether that session changed: `key` is what the packet's session was found by
/// (the N3 TEID when `byTEID`, else the UE address), `generation` the version that buffered it.
@frozen
public struct BufferRequest: Sendable, Equatable {
    public var slot: UInt32
    public var generation: UInt32
    public var seid: UInt64
    /// The FAR's bound: packets held for the session at most.
    public var limit: UInt32
    public var byTEID: Bool
    public var teid: UInt32
    public var ue: IPAddress

    public init(slot: UInt32 = 0, generation: UInt32 = 0, seid: UInt64 = 0, limit: UInt32 = 0, byTEID: Bool = false,
                teid: UInt32 = 0, ue: IPAddress = .zero) {
        self.slot = slot
        self.generation = generation
        self.seid = seid
        self.limit = limit
        self.byTEID = byTEID
        self.teid = teid
        self.ue = ue
    }
}

/// The fast path of one worker: a frame in, the frame rewritten in place and a verdict out.
///
/// - N3 (uplink): G-PDU → session by TEID → first matching rule → steer (decapsulate, Ethernet
///   to the engine instance), N9 (re-encapsulate towards the central UPF), N6 (decapsulate, to
///   the core next hop), N3 (to another UE, only when a rule says so), drop.
/// - Core: GTP-U addressed to the service's core address (N9 downlink: session by TEID — local
///   TEIDs are unique per UPF, so the N3 F-TEID serves N9 as well); any other IP is N6 downlink
///   (session by the destination UE address; UDP to port 2152 of a UE is user data).
/// - Engine: plain IP from an engine → session by the destination UE address.
/// Downlink rules normally encapsulate towards the gNB with the session's TEID and a PDU Session
/// Container carrying the QFI (the rule's QER QFI, else the packet's, else the session default).
///
/// Egress headers are built from scratch: nothing of a received GTP-U header (flags, sequence,
/// extensions) is carried over. No allocation, class, existential or closure per packet; the
/// tables are reached through the `TableReader`'s pointers.
public struct PacketProcessor: @unchecked Sendable {
    public let reader: TableReader
    @usableFromInline let ports: UnsafeMutablePointer<PortInfo>
    @usableFromInline let portCount: Int
    @usableFromInline let n3: Int
    /// The `PortTable` index of the N3 port.
    public var n3PortIndex: Int { n3 }
    @usableFromInline let core: Int
    @usableFromInline let engines: EngineView
    public let counters: CounterBlock
    @usableFromInline let meters: MeterView
    /// The time the packets being processed arrived, in nanoseconds of the TSC (`MeterClock`):
    /// what the MBR meters measure rates against. The worker sets it once per receive burst.
    public var now: UInt64 = 0
    @usableFromInline var n3Options = ParserOptions()
    @usableFromInline var coreOptions = ParserOptions()
    @usableFromInline var userOptions = ParserOptions()
    /// Scratch: the packet being processed (reused, never reallocated).
    @usableFromInline var parsed = ParsedPacket()
    /// Next hops resolved by ARP/ND.
    @usableFromInline let neighbors: NeighborView
    /// Received Error Indications and End Markers, for the control thread.
    @usableFromInline let events: DatapathEventQueue.Producer?
    @usableFromInline let errorIndications: ErrorIndicationMeter?
    /// The worker's clock in TSC ticks, set once per poll round: answers are rate-limited and
    /// neighbours timed without reading the clock per packet (`now` is the meters' nanoseconds).
    public var ticks: UInt64 = 0
    /// Set with every `buffered` verdict (read it before the next packet).
    public var bufferRequest = BufferRequest()
    /// The slot of the session the last classified packet belonged to (not reset for packets
    /// that reach no session). The worker reads it after a packet that leaves while it holds
    /// packets for some session: see `DatapathWorker.run`.
    public var classifiedSlot: UInt32 = .max
    /// True while the worker hands buffered packets back (`release`): they were counted by
    /// the rule that buffered them and are not counted by a rule again.
    public var releasing = false
    /// The sessions of the current receive burst, looked up ahead (`beginBurst`, `peek`).
    @usableFromInline var ahead: BurstLookahead

    /// The `PortTable`, `EngineDirectory` and the optional services (neighbours, event queue,
    /// Error Indication limiter, MBR meters) must outlive the processor. Without a limiter no
    /// Error Indication is sent; without a queue received signalling is counted but raises no
    /// event; without `meters` no MBR is enforced (unit tests that do not meter).
    public init(reader: TableReader, ports: PortTable, engines: EngineDirectory, counters: CounterBlock,
                neighbors: NeighborTable? = nil, events: DatapathEventQueue? = nil,
                errorIndications: ErrorIndicationLimiter? = nil, meters: MeterTable? = nil) {
        self.reader = reader
        self.ports = ports.ports
        self.portCount = ports.count
        self.n3 = ports.n3
        self.core = ports.core
        self.engines = engines.view
        self.counters = counters
        let table = neighbors ?? NeighborTable(ports: ports)
        precondition(table.portCount == ports.count)
        self.neighborTable = table
        self.neighbors = table.view
        self.events = events?.producer
        self.eventQueue = events
        self.errorIndications = errorIndications?.view
        self.limiter = errorIndications
        self.meters = meters?.view ?? .none
        let storage = BurstLookaheadStorage()
        self.lookaheadStorage = storage
        self.ahead = BurstLookahead(storage: storage)
        n3Options.direction = .uplink
        coreOptions.direction = .downlink
    }

    /// Kept only so that what the views point into lives as long as the processor.
    let neighborTable: NeighborTable
    let eventQueue: DatapathEventQueue?
    let limiter: ErrorIndicationLimiter?
    let lookaheadStorage: BurstLookaheadStorage

    // MARK: Entry

    /// Processes the frame of `length` octets at `frame` that arrived on port `ingress`.
    /// `headroom` octets in front of `frame` may be written (the mbuf's headroom),
    /// `tailroom` octets after it may be written too (answers such as an Echo Response can be
    /// longer than what they answer). `burstIndex`: the frame's index in a burst that was
    /// peeked (`peek`) and looked up ahead (`lookUpPeeked`), or -1.
    @inlinable
    public mutating func process(frame: UnsafeMutableRawPointer, length: Int, headroom: Int, tailroom: Int = 0,
                                 ingress: Int, burstIndex: Int = -1) -> PacketVerdict {
        ahead.current = burstIndex
        guard ingress >= 0 && ingress < portCount else { return drop(.unknownPort) }
        let bytes = PacketBytes(base: UnsafeRawPointer(frame), count: length)
        switch ports[ingress].role {
        case .n3: return fromN3(bytes, frame: frame, headroom: headroom, room: length &+ tailroom)
        case .core: return fromCore(bytes, frame: frame, headroom: headroom, room: length &+ tailroom, ingress: ingress)
        case .engine: return fromEngine(bytes, frame: frame, headroom: headroom, room: length &+ tailroom, ingress: ingress)
        }
    }

    @inlinable @inline(__always)
    func drop(_ reason: DatapathDrop) -> PacketVerdict {
        counters.count(reason)
        return .dropped
    }

    @inlinable @inline(__always)
    func drop(_ reason: DropReason) -> PacketVerdict {
        counters.count(reason)
        return .dropped
    }

    // MARK: Ingress

    @inlinable
    mutating func fromN3(_ bytes: PacketBytes, frame: UnsafeMutableRawPointer, headroom: Int, room: Int) -> PacketVerdict {
        if let reason = PacketParser.parse(bytes, link: .ethernet, options: n3Options, into: &parsed) { return drop(reason) }
        switch parsed.kind {
        case .gPDU: break
        case .arp: return answerARP(bytes, frame: frame, room: room, port: n3)
        case .nonGTP:
            if parsed.outerVersion == 6 { return answerNeighborDiscovery(bytes, frame: frame, room: room, port: n3, otherwise: .notGTPUOnN3) }
            return drop(parsed.outerVersion == 0 ? .notIP : .notGTPUOnN3)
        case .outerFragment: return drop(.outerFragment)
        default:
            guard ports[n3].owns(parsed.outerDestination) else { return drop(.notAddressedToUPF) }
            return takeSignalling(frame: frame, room: room, port: n3)
        }
        guard ports[n3].owns(parsed.outerDestination) else { return drop(.notAddressedToUPF) }
        guard let session = uplinkSession(teid: parsed.teid) else { return answerUnknownTEID(frame: frame, room: room, port: n3) }
        return classifyAndAct(session, qfi: parsed.psc.present ? parsed.psc.qfi : 0, source: .access,
                              frame: frame, headroom: headroom)
    }

    @inlinable
    mutating func fromCore(_ bytes: PacketBytes, frame: UnsafeMutableRawPointer, headroom: Int, room: Int, ingress: Int) -> PacketVerdict {
        if let reason = PacketParser.parseUserPacket(bytes, options: userOptions, into: &parsed) { return drop(reason) }
        if parsed.inner.version == 0 {
            return parsed.kind == .arp ? answerARP(bytes, frame: frame, room: room, port: ingress) : drop(.notIP)
        }
        if parsed.inner.proto == IPProtocol.icmpv6 && parsed.inner.version == 6 && PacketProcessor.isLinkScope(parsed.inner.destination, ports[ingress]) {
            return answerNeighborDiscovery(bytes, frame: frame, room: room, port: ingress, otherwise: .localTrafficUnhandled)
        }
        if ports[ingress].owns(parsed.inner.destination) {
            // Addressed to the service: N9 GTP-U from the central UPF, or nothing we serve.
            guard parsed.inner.proto == IPProtocol.udp && parsed.inner.destinationPort == GTPU.udpPort
            else { return drop(.localTrafficUnhandled) }
            if let reason = PacketParser.parse(bytes, link: .ethernet, options: coreOptions, into: &parsed) {
                return drop(reason)
            }
            switch parsed.kind {
            case .gPDU: break
            case .outerFragment: return drop(.outerFragment)
            default: return takeSignalling(frame: frame, room: room, port: ingress)
            }
            guard let session = uplinkSession(teid: parsed.teid) else {
                return answerUnknownTEID(frame: frame, room: room, port: ingress)
            }
            return classifyAndAct(session, qfi: parsed.psc.present ? parsed.psc.qfi : 0, source: .core,
                                  frame: frame, headroom: headroom)
        }
        guard let session = downlinkSession(parsed.inner.destination) else { return drop(.noSessionForUE) }
        return classifyAndAct(session, qfi: 0, source: .core, frame: frame, headroom: headroom)
    }

    @inlinable
    mutating func fromEngine(_ bytes: PacketBytes, frame: UnsafeMutableRawPointer, headroom: Int, room: Int, ingress: Int) -> PacketVerdict {
        if let reason = PacketParser.parseUserPacket(bytes, options: userOptions, into: &parsed) { return drop(reason) }
        if parsed.inner.version == 0 {
            return parsed.kind == .arp ? answerARP(bytes, frame: frame, room: room, port: ingress) : drop(.notIP)
        }
        if parsed.inner.proto == IPProtocol.icmpv6 && parsed.inner.version == 6 && PacketProcessor.isLinkScope(parsed.inner.destination, ports[ingress]) {
            return answerNeighborDiscovery(bytes, frame: frame, room: room, port: ingress, otherwise: .localTrafficUnhandled)
        }
        if ports[ingress].owns(parsed.inner.destination) { return drop(.localTrafficUnhandled) }
        guard let session = downlinkSession(parsed.inner.destination) else { return drop(.noSessionForUE) }
        return classifyAndAct(session, qfi: 0, source: .engine, frame: frame, headroom: headroom)
    }

    // MARK: Rules and actions

    @inlinable
    mutating func classifyAndAct(_ session: SessionHandle, qfi: UInt8, source: SourceInterface,
                                 frame: UnsafeMutableRawPointer, headroom: Int) -> PacketVerdict {
        classifiedSlot = UInt32(truncatingIfNeeded: session.slot)
        guard let match = session.classify(flow: parsed.inner, qfi: qfi, source: source) else {
            return drop(.noMatchingRule)
        }
        if !releasing {
            let rule = counters.layout.rule(slot: session.slot, position: match.index)
            counters.add(rule)
            counters.add(rule &+ 1, UInt64(truncatingIfNeeded: parsed.payloadLength))
        }
        return act(match, session: session, qfi: qfi, source: source, frame: frame, headroom: headroom, fallback: false,
                   charged: CompiledQoS.noMeter)
    }

    @inlinable
    mutating func act(_ match: RuleMatch, session: SessionHandle, qfi: UInt8, source: SourceInterface,
                      frame: UnsafeMutableRawPointer, headroom: Int, fallback: Bool, charged: UInt16) -> PacketVerdict {
        let uplink = source == .access
        let qos = match.qos
        if let qos {
            if !(uplink ? qos.gateUplinkOpen : qos.gateDownlinkOpen) { return drop(.gateClosed) }
            // MBR: the inner packet's length (the user data the QER is about, the same whatever
            // tunnel it came in or leaves in) against the QER's meter in this direction. A meter
            // already charged for this packet (steer falling back to a rule with the same QER)
            // is not charged twice.
            if qos.meter != CompiledQoS.noMeter && qos.meter != charged
                && !meters.conforms(slot: session.slot, meter: Int(qos.meter), uplink: uplink, bytes: parsed.payloadLength,
                                    femtosPerByte: uplink ? qos.uplinkFemtosPerByte : qos.downlinkFemtosPerByte, now: now) {
                return drop(.mbrExceeded)
            }
        }
        // The QFI a tunnel carries: the rule's QER marks it, else the packet's, else the default.
        let markedQFI = qos.map(\.qfi).flatMap { $0 == 0 ? nil : $0 } ?? (qfi != 0 ? qfi : session.defaultQFI)

        switch match.action {
        case .steer(let engine):
            switch engines.choose(Int(engine), flowHash: PacketProcessor.flowHash(parsed.inner)) {
            case let .instance(port, mac, instance):
                let verdict = emitPlain(frame: frame, headroom: headroom, egress: port, destination: mac, action: .steer)
                // Per engine and instance, only what actually left (as the `steer` action counts).
                if !verdict.isDropped {
                    counters.countSteered(engine: Int(engine), instance: instance, bytes: parsed.payloadLength)
                }
                return verdict
            case .fallbackDrop:
                counters.countFallback(engine: Int(engine), drop: true)
                return drop(.engineDownDrop)
            case .fallbackCore:
                guard !fallback, let next = session.classifySkippingSteer(flow: parsed.inner, qfi: qfi, source: source,
                                                                          after: match.index)
                else { return drop(.noMatchingRule) }
                counters.countFallback(engine: Int(engine), drop: false)
                counters.count(.engineFallbackCore, bytes: parsed.payloadLength)
                return act(next, session: session, qfi: qfi, source: source, frame: frame, headroom: headroom, fallback: true,
                           charged: qos?.meter ?? CompiledQoS.noMeter)
            }

        case let .forwardN9(peer, teid):
            guard core >= 0 else { return drop(.noCorePort) }
            guard let source = ports[core].address(towards: peer),
                  let outer = GTPUOuterHeader(source: source, destination: peer)
            else { return drop(.noLocalAddressForPeer) }
            // Towards the PSA UPF the container is the uplink one (TS 38.415 on N9).
            let encapsulation = GTPUEncapsulation(outer: outer, teid: teid, pduSessionContainer: .uplink(qfi: markedQFI))
            return emitTunnel(encapsulation, frame: frame, headroom: headroom, egress: core, action: .forwardN9)

        case .forwardN6:
            guard core >= 0 else { return drop(.noCorePort) }
            guard let nextHop = nextHop(core) else { return drop(nextHopDrop(core)) }
            return emitPlain(frame: frame, headroom: headroom, egress: core, destination: nextHop, action: .forwardN6)

        case .forwardN3:
            if uplink {
                // UE to UE: only because this rule says so; the other UE's session carries it.
                guard let target = reader.lookupDownlink(parsed.inner.destination) else { return drop(.hairpinNoSession) }
                return encapsulateTowardsGNB(target, qfi: target.defaultQFI, frame: frame, headroom: headroom, action: .hairpin)
            }
            return encapsulateTowardsGNB(session, qfi: markedQFI, frame: frame, headroom: headroom, action: .forwardN3)

        case .drop:
            return drop(.ruleDrop)

        case .buffer(let limit):
            // The session was found by its N3 TEID for what came in tunnelled (N3, N9), else
            // by the UE address; the worker looks it up the same way to see it change.
            let tunnelled = source == .access || parsed.kind == .gPDU
            bufferRequest = BufferRequest(slot: UInt32(truncatingIfNeeded: session.slot), generation: session.generation,
                                          seid: session.seid, limit: limit, byTEID: tunnelled, teid: session.n3TEID,
                                          ue: tunnelled ? .zero : parsed.inner.destination)
            return .buffered
        }
    }

    @inlinable
    func encapsulateTowardsGNB(_ session: SessionHandle, qfi: UInt8, frame: UnsafeMutableRawPointer, headroom: Int,
                               action: ActionCounter) -> PacketVerdict {
        guard let gnb = session.gnb else { return drop(.noGNBTunnel) }
        // The session's own N3 address is the tunnel's source when the families agree.
        let local = session.n3Address
        let source = local.isIPv4 == gnb.address.isIPv4 && local != .zero ? local : ports[n3].address(towards: gnb.address)
        guard let source, let outer = GTPUOuterHeader(source: source, destination: gnb.address) else {
            return drop(.noLocalAddressForPeer)
        }
        let encapsulation = GTPUEncapsulation(outer: outer, teid: gnb.teid, pduSessionContainer: .downlink(qfi: qfi))
        return emitTunnel(encapsulation, frame: frame, headroom: headroom, egress: n3, action: action)
    }

    /// The version of the session `request` was made for as it is now (its slot and
    /// generation), nil when no session has that key any more.
    @inlinable
    public func currentVersion(of request: BufferRequest) -> (slot: UInt32, generation: UInt32)? {
        let found = request.byTEID ? reader.lookupUplink(teid: request.teid) : reader.lookupDownlink(request.ue)
        guard let found else { return nil }
        return (UInt32(truncatingIfNeeded: found.slot), found.generation)
    }

    /// Hands `event` to the control thread (counted as `events_lost` when its queue is full).
    public func raiseEvent(_ event: DatapathEvent) { raise(event) }

    // MARK: Emitting

    /// The inner packet (`parsed.payloadOffset..<payloadEnd`) behind a new Ethernet header.
    @inlinable
    func emitPlain(frame: UnsafeMutableRawPointer, headroom: Int, egress: Int, destination: MACAddress,
                   action: ActionCounter) -> PacketVerdict {
        let inner = Int(parsed.payloadOffset)
        let length = parsed.payloadLength
        let start = inner &- 14
        guard start >= -headroom else { return drop(.headroomExhausted) }
        PacketProcessor.writeEthernet(at: frame + start, destination: destination, source: ports[egress].mac,
                                      etherType: parsed.inner.version == 6 ? EtherType.ipv6 : EtherType.ipv4)
        counters.count(action, bytes: length)
        return PacketVerdict(egress: Int32(truncatingIfNeeded: egress), offset: Int32(truncatingIfNeeded: start),
                             length: Int32(truncatingIfNeeded: length &+ 14))
    }

    /// The inner packet inside `encapsulation`, behind an Ethernet header to the egress port's next hop.
    @inlinable
    func emitTunnel(_ encapsulation: GTPUEncapsulation, frame: UnsafeMutableRawPointer, headroom: Int, egress: Int,
                    action: ActionCounter) -> PacketVerdict {
        guard let nextHop = nextHop(egress) else { return drop(nextHopDrop(egress)) }
        let inner = Int(parsed.payloadOffset)
        let length = parsed.payloadLength
        let header = encapsulation.headerLength
        let start = inner &- header &- 14
        guard start >= -headroom else { return drop(.headroomExhausted) }
        do {
            _ = try encapsulation.write(into: UnsafeMutableRawBufferPointer(start: frame + (inner &- header), count: header &+ length),
                                        payloadLength: length)
        } catch {
            return drop(.encapsulationTooLarge)
        }
        PacketProcessor.writeEthernet(at: frame + start, destination: nextHop, source: ports[egress].mac,
                                      etherType: encapsulation.outer.isIPv6 ? EtherType.ipv6 : EtherType.ipv4)
        counters.count(action, bytes: length)
        return PacketVerdict(egress: Int32(truncatingIfNeeded: egress), offset: Int32(truncatingIfNeeded: start),
                             length: Int32(truncatingIfNeeded: length &+ header &+ 14))
    }

    /// The MAC routed traffic leaves port `p` towards: the configured one, else the one ARP/ND resolved.
    @inlinable @inline(__always)
    func nextHop(_ p: Int) -> MACAddress? {
        if let mac = ports[p].nextHop { return mac }
        return ports[p].nextHopAddress == nil ? nil : neighbors.mac(p)
    }

    @inlinable
    func nextHopDrop(_ p: Int) -> DatapathDrop {
        ports[p].nextHopAddress == nil ? .nextHopUnknown : .nextHopUnresolved
    }

    @inlinable @inline(__always)
    static func writeEthernet(at p: UnsafeMutableRawPointer, destination: MACAddress, source: MACAddress, etherType: UInt16) {
        p.storeBigEndian(UInt32(truncatingIfNeeded: destination.value >> 16), toByteOffset: 0)
        p.storeBigEndian(UInt16(truncatingIfNeeded: destination.value), toByteOffset: 4)
        p.storeBigEndian(UInt32(truncatingIfNeeded: source.value >> 16), toByteOffset: 6)
        p.storeBigEndian(UInt16(truncatingIfNeeded: source.value), toByteOffset: 10)
        p.storeBigEndian(etherType, toByteOffset: 12)
    }

    /// A hash of the flow's 5-tuple for choosing an engine instance (the same flow, the same hash).
    @inlinable @inline(__always)
    public static func flowHash(_ flow: InnerFlow) -> UInt64 {
        let ports = UInt64(flow.sourcePort) << 16 | UInt64(flow.destinationPort) | UInt64(flow.proto) << 32
        var h = flow.source.low &* 0x9E37_79B9_7F4A_7C15
        h ^= flow.source.high &* 0xC2B2_AE3D_27D4_EB4F
        h ^= flow.destination.low &* 0x1656_67B1_9E37_79F9
        h ^= flow.destination.high &* 0x85EB_CA77_C2B2_AE63
        h ^= ports &* 0x27D4_EB2F_1656_67C5
        return KeyIndex.mix(h)
    }
}
