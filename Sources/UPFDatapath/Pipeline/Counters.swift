import CPrefetch
import Synchronization
import UPFPackets

/// Why the data path (beyond the parser's `DropReason`s) dropped a packet. Raw values index the
/// counters, so cases are only appended; `name` is the stable label of stats and reports.
public enum DatapathDrop: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// A G-PDU whose TEID is no session's local F-TEID.
    case unknownTEID = 0
    /// A downlink packet (N6, engine) whose destination is no session's UE address.
    case noSessionForUE
    /// The session has no rule the packet matches (no default rule for that direction).
    case noMatchingRule
    /// The matching rule's action is `drop`.
    case ruleDrop
    /// Steered, no engine instance up, and the engine's fallback is `drop`.
    case engineDownDrop
    /// Downlink for a session whose gNB F-TEID is not known.
    case noGNBTunnel
    /// A core action (N9, N6) on a data path without a core port.
    case noCorePort
    /// The egress port has no next-hop MAC configured.
    case nextHopUnknown
    /// The action is `buffer` on a worker configured to hold nothing (`buffering.packets_per_worker: 0`).
    case bufferingUnavailable
    /// The new headers do not fit in the mbuf's headroom.
    case headroomExhausted
    /// The encapsulated packet would exceed the 65535-octet IP limit.
    case encapsulationTooLarge
    /// The egress port has no address of the tunnel peer's family.
    case noLocalAddressForPeer
    /// GTP-U (or anything) on N3 addressed to an address that is not the service's.
    case notAddressedToUPF
    /// Non-GTP-U IP traffic addressed to the service itself (e.g. a ping).
    case localTrafficUnhandled
    /// A GTP-U message the service does not take on the port it arrived on (e.g. signalling
    /// sent towards an engine port's address); path management answers n3 and core.
    case gtpuSignallingUnhandled
    /// ARP that neither asks for one of the port's addresses nor comes from its next hop.
    case arpUnhandled
    /// Neither IPv4, IPv6 nor ARP.
    case notIP
    /// Plain IP arriving on N3 (N3 carries GTP-U only).
    case notGTPUOnN3
    /// An outer IPv4 fragment (GTP-U peers send whole packets; reassembly is not on the fast path).
    case outerFragment
    /// A frame in more than one mbuf segment.
    case multiSegment
    /// The egress TX queue was full.
    case txQueueFull
    /// An uplink rule allows UE-to-UE forwarding, but the destination is no session's UE.
    case hairpinNoSession
    /// A packet arrived on a port the data path does not know.
    case unknownPort
    /// The rule's QER closes the gate in the packet's direction.
    case gateClosed
    /// The egress port's next hop is configured by address and not (or no longer) resolved by ARP/ND.
    case nextHopUnresolved
    /// An answer (Echo Response, Error Indication, ARP/ND reply) does not fit in the mbuf.
    case noRoomForAnswer
    /// Over the QER's maximum bit rate in the packet's direction (its GCRA meter, `MeterTable`).
    case mbrExceeded
    /// The action is `buffer` and the session already holds its FAR's `limit` packets, or the
    /// worker's buffer store (`buffering.*_per_worker`) is full.
    case bufferFull
    /// Held longer than `buffering.hold_ms` without the session being updated to forward.
    case bufferExpired
    /// Held for a session that was deleted (or whose slot went to another session), or held
    /// when the worker stopped.
    case bufferDiscarded

    public var name: String {
        switch self {
        case .unknownTEID: "unknown_teid"
        case .noSessionForUE: "no_session_for_ue"
        case .noMatchingRule: "no_matching_rule"
        case .ruleDrop: "rule_drop"
        case .engineDownDrop: "engine_down_drop"
        case .noGNBTunnel: "no_gnb_tunnel"
        case .noCorePort: "no_core_port"
        case .nextHopUnknown: "next_hop_unknown"
        case .bufferingUnavailable: "buffering_unavailable"
        case .headroomExhausted: "headroom_exhausted"
        case .encapsulationTooLarge: "encapsulation_too_large"
        case .noLocalAddressForPeer: "no_local_address_for_peer"
        case .notAddressedToUPF: "not_addressed_to_upf"
        case .localTrafficUnhandled: "local_traffic_unhandled"
        case .gtpuSignallingUnhandled: "gtpu_signalling_unhandled"
        case .arpUnhandled: "arp_unhandled"
        case .notIP: "not_ip"
        case .notGTPUOnN3: "not_gtpu_on_n3"
        case .outerFragment: "outer_fragment"
        case .multiSegment: "multi_segment"
        case .txQueueFull: "tx_queue_full"
        case .hairpinNoSession: "hairpin_no_session"
        case .unknownPort: "unknown_port"
        case .gateClosed: "gate_closed"
        case .nextHopUnresolved: "next_hop_unresolved"
        case .noRoomForAnswer: "no_room_for_answer"
        case .mbrExceeded: "mbr_exceeded"
        case .bufferFull: "buffer_full"
        case .bufferExpired: "buffer_expired"
        case .bufferDiscarded: "buffer_discarded"
        }
    }

    public var description: String { name }
}

/// What the data path did with the packets it forwarded (packets and bytes each).
public enum ActionCounter: Int, CaseIterable, Sendable {
    /// Uplink decapsulated to an engine.
    case steer = 0
    /// Re-encapsulated towards the central UPF.
    case forwardN9
    /// Decapsulated to the data network.
    case forwardN6
    /// Encapsulated towards the gNB (downlink from engines and the core).
    case forwardN3
    /// Uplink forwarded to another UE of this UPF because a rule allows it.
    case hairpin
    /// Steered while no engine instance was up, forwarded by the engine's `core` fallback.
    case engineFallbackCore

    public var name: String {
        switch self {
        case .steer: "steer"
        case .forwardN9: "n9"
        case .forwardN6: "n6"
        case .forwardN3: "n3"
        case .hairpin: "hairpin"
        case .engineFallbackCore: "engine_fallback_core"
        }
    }
}

/// Packets the service handled itself rather than forwarding or dropping: answers sent back out
/// of the ingress port (`answered`), messages taken in (`absorbed`), and frames it originated
/// (`originated`, e.g. ARP requests for a next hop). With the action and drop counters this
/// accounts for every received packet: rx = forwarded + answered + absorbed + dropped.
public enum LocalCounter: Int, CaseIterable, Sendable {
    /// Echo Request → Echo Response (TS 29.281 §7.2.2).
    case echoResponseSent = 0
    /// G-PDU for an unknown TEID → Error Indication (§7.3.1), within the peer's rate.
    case errorIndicationSent
    /// ARP request for one of the port's addresses → ARP reply.
    case arpReplySent
    /// Neighbour Solicitation for one of the port's addresses → Neighbour Advertisement.
    case neighborAdvertisementSent
    case echoResponseReceived
    /// Raised as an `error_indication` event.
    case errorIndicationReceived
    /// Raised as an `end_marker` event.
    case endMarkerReceived
    case extensionHeadersNotificationReceived
    /// ARP from a configured next hop: its MAC learnt or refreshed.
    case arpFromNextHop
    /// Neighbour Advertisement from a configured next hop: its MAC learnt or refreshed.
    case neighborAdvertisementFromNextHop
    /// ARP requests this service sent to resolve or refresh a next hop.
    case arpRequestSent
    /// Neighbour Solicitations this service sent to resolve or refresh a next hop.
    case neighborSolicitationSent
    /// Events the workers could not hand to the control thread (its queue was full).
    case eventsLost
    /// Packets taken into a session's buffer (its rule says `buffer`). Each leaves it later as
    /// `buffer_released` (then forwarded or dropped like any packet) or as a `buffer_*` drop;
    /// until then it is `held`: rx = forwarded + answered + absorbed + dropped + held.
    case buffered
    /// Buffered packets handed back to the fast path after their session was updated.
    case bufferReleased
    /// End Markers sent on a session's old downlink path (a put with `end_marker` that changed
    /// its gNB F-TEID), and Echo Requests sent to configured GTP-U peers (`gtpu.echo`).
    case endMarkerSent
    case echoRequestSent
    /// End Markers or Echo Requests that could not be sent: no next hop MAC, no local address of
    /// the peer's family, no mbuf, or too many asked for at once.
    case signallingUnsent

    public var name: String {
        switch self {
        case .echoResponseSent: "echo_response_sent"
        case .errorIndicationSent: "error_indication_sent"
        case .arpReplySent: "arp_reply_sent"
        case .neighborAdvertisementSent: "neighbor_advertisement_sent"
        case .echoResponseReceived: "echo_response_received"
        case .errorIndicationReceived: "error_indication_received"
        case .endMarkerReceived: "end_marker_received"
        case .extensionHeadersNotificationReceived: "extension_headers_notification_received"
        case .arpFromNextHop: "arp_from_next_hop"
        case .neighborAdvertisementFromNextHop: "neighbor_advertisement_from_next_hop"
        case .arpRequestSent: "arp_request_sent"
        case .neighborSolicitationSent: "neighbor_solicitation_sent"
        case .eventsLost: "events_lost"
        case .buffered: "buffered"
        case .bufferReleased: "buffer_released"
        case .endMarkerSent: "end_marker_sent"
        case .echoRequestSent: "echo_request_sent"
        case .signallingUnsent: "signalling_unsent"
        }
    }

    /// How the counter enters the accounting of received packets.
    public enum Kind: String, Sendable { case answered, absorbed, originated, other }

    public var kind: Kind {
        switch self {
        case .echoResponseSent, .errorIndicationSent, .arpReplySent, .neighborAdvertisementSent: .answered
        case .echoResponseReceived, .errorIndicationReceived, .endMarkerReceived, .extensionHeadersNotificationReceived,
             .arpFromNextHop, .neighborAdvertisementFromNextHop: .absorbed
        case .arpRequestSent, .neighborSolicitationSent, .endMarkerSent, .echoRequestSent: .originated
        case .eventsLost, .buffered, .bufferReleased, .signallingUnsent: .other
        }
    }
}

/// Per-port counters.
public enum PortCounter: Int, CaseIterable, Sendable {
    case rxPackets = 0, rxBytes, txPackets, txBytes, txDropped

    public var name: String {
        switch self {
        case .rxPackets: "rx_packets"
        case .rxBytes: "rx_bytes"
        case .txPackets: "tx_packets"
        case .txBytes: "tx_bytes"
        case .txDropped: "tx_dropped"
        }
    }
}

/// Where each counter sits in a worker's block of 64-bit words.
@frozen
public struct CounterLayout: Sendable, Equatable {
    /// Rules counted per session (by evaluation position; later rules share the last pair).
    public let rulesPerSession: Int
    public let sessionSlots: Int
    /// Engine indices counted (the engine directory's capacity); steering to a higher index is
    /// not counted per engine (the directory has no such engine either).
    public let engines: Int
    /// First word of the rule counters (after the per-engine ones).
    @usableFromInline let ruleBase: Int

    /// The static bases, copied into the value: a static `let` that is not a literal is a lazy
    /// global, and reading one on the per-packet path is a `swift_once` call each time (two per
    /// steered packet in `act`, callgrind).
    @usableFromInline let cachedParserBase: Int, cachedDatapathBase: Int, cachedActionBase: Int
    @usableFromInline let cachedLocalBase: Int, cachedEngineBase: Int, cachedEngineStride: Int

    public init(sessionSlots: Int, rulesPerSession: Int, engines: Int = 0) {
        cachedParserBase = CounterLayout.parserBase
        cachedDatapathBase = CounterLayout.datapathBase
        cachedActionBase = CounterLayout.actionBase
        cachedLocalBase = CounterLayout.localBase
        cachedEngineBase = CounterLayout.engineBase
        cachedEngineStride = CounterLayout.engineStride
        precondition(sessionSlots >= 0 && rulesPerSession >= 1 && engines >= 0)
        precondition(PortCounter.allCases.count == CounterLayout.portStride)
        self.sessionSlots = sessionSlots
        self.rulesPerSession = rulesPerSession
        self.engines = engines
        ruleBase = CounterLayout.engineBase + engines * CounterLayout.engineStride
    }

    /// `PortCounter.allCases.count` as a literal (checked in `init`): `allCases` builds its array
    /// on every call, which on the per-packet path cost a static-object init, a `swift_once` and
    /// a release per packet (callgrind, tools/bench).
    @usableFromInline static let portStride = 5
    @inlinable public func port(_ port: Int, _ counter: PortCounter) -> Int {
        port &* CounterLayout.portStride &+ counter.rawValue
    }
    @usableFromInline static let parserBase = PortTable.maxPorts * CounterLayout.portStride
    @inlinable public func parser(_ reason: DropReason) -> Int { cachedParserBase &+ Int(reason.rawValue) }
    @usableFromInline static let datapathBase = parserBase + DropReason.counterSlots
    @inlinable public func datapath(_ reason: DatapathDrop) -> Int { cachedDatapathBase &+ Int(reason.rawValue) }
    @usableFromInline static let actionBase = datapathBase + DatapathDrop.allCases.count
    /// Packets; bytes are the next word.
    @inlinable public func action(_ action: ActionCounter) -> Int { cachedActionBase &+ action.rawValue &* 2 }
    @usableFromInline static let localBase = actionBase + ActionCounter.allCases.count * 2
    @inlinable public func local(_ counter: LocalCounter) -> Int { cachedLocalBase &+ counter.rawValue }

    /// Per engine: packets and bytes steered to each instance, then the two fallback counts.
    @usableFromInline static let engineBase = localBase + LocalCounter.allCases.count
    public static let engineStride = EngineDirectory.maxInstances * 2 + 2
    /// Packets steered to instance `instance` of engine `engine`; bytes next. Callers check
    /// `engine < engines`.
    @inlinable public func engineInstance(_ engine: Int, _ instance: Int) -> Int {
        cachedEngineBase &+ engine &* cachedEngineStride &+ instance &* 2
    }
    /// Packets of engine `engine` that met no usable instance: dropped (fallback `drop`), or
    /// forwarded by the next non-steering rule (fallback `core`).
    @inlinable public func engineFallback(_ engine: Int, drop: Bool) -> Int {
        cachedEngineBase &+ engine &* cachedEngineStride &+ EngineDirectory.maxInstances &* 2 &+ (drop ? 0 : 1)
    }

    /// Packets of the rule at evaluation position `position` of the session in `slot`; bytes next.
    @inlinable public func rule(slot: Int, position: Int) -> Int {
        ruleBase &+ (slot &* rulesPerSession &+ min(position, rulesPerSession &- 1)) &* 2
    }

    /// Words per worker, rounded up to a cache line so no two workers share one.
    public var wordsPerWorker: Int { (ruleBase + sessionSlots * rulesPerSession * 2 + 7) & ~7 }
}

/// Every worker's counters: one block each, written only by its worker (a relaxed load and
/// store, no read-modify-write, no shared cache line), read by the control thread at any time.
public final class DatapathCounters: @unchecked Sendable {
    public let layout: CounterLayout
    public let workers: Int
    @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt64>>

    public init(layout: CounterLayout, workers: Int) {
        precondition(workers >= 1)
        self.layout = layout
        self.workers = workers
        let count = layout.wordsPerWorker * workers
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * 8, alignment: 64)
        raw.initializeMemory(as: UInt64.self, repeating: 0, count: count)
        words = raw.bindMemory(to: Atomic<UInt64>.self, capacity: count)
    }

    deinit { UnsafeMutableRawPointer(words).deallocate() }

    /// Worker `index`'s writable block.
    public func block(_ index: Int) -> CounterBlock {
        precondition(index >= 0 && index < workers)
        return CounterBlock(words: words + index * layout.wordsPerWorker, layout: layout)
    }

    /// The sum over workers of word `offset`.
    public func total(_ offset: Int) -> UInt64 {
        var sum: UInt64 = 0
        for w in 0..<workers { sum &+= words[w * layout.wordsPerWorker + offset].load(ordering: .relaxed) }
        return sum
    }

    /// Zeroes the rule counters of session slot `slot` in every worker's block, so the session
    /// that gets the slot next starts from 0. Control thread only, and only for a slot no worker
    /// can reach: `SessionTables` calls it (through `slotReleased`) when it frees a slot, after
    /// every worker passed a quiescent point since the slot's last session was unlinked. The
    /// workers' last writes to the slot happen before their quiescent point (release), which the
    /// table's reclaim observed (acquire); the slot's next session is published after these
    /// stores (release) — so a worker never adds to a stale value and never sees one.
    public func resetSlot(_ slot: Int) {
        precondition(slot >= 0 && slot < layout.sessionSlots)
        let first = layout.rule(slot: slot, position: 0)
        for w in 0..<workers {
            let base = words + w * layout.wordsPerWorker + first
            for i in 0..<(layout.rulesPerSession * 2) { base[i].store(0, ordering: .relaxed) }
        }
    }

    /// Worker `worker`'s value of word `offset`.
    public func value(worker: Int, _ offset: Int) -> UInt64 {
        words[worker * layout.wordsPerWorker + offset].load(ordering: .relaxed)
    }
}

/// One worker's counters (see `DatapathCounters`).
@frozen
public struct CounterBlock: @unchecked Sendable {
    @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt64>>
    public let layout: CounterLayout

    @inlinable
    init(words: UnsafeMutablePointer<Atomic<UInt64>>, layout: CounterLayout) {
        self.words = words
        self.layout = layout
    }

    /// Adds `amount` to word `offset`. Single writer: a plain load and store (no lock prefix).
    @inlinable @inline(__always)
    public func add(_ offset: Int, _ amount: UInt64 = 1) {
        let word = words + offset
        word.pointee.store(word.pointee.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }

    @inlinable @inline(__always)
    public func count(_ reason: DatapathDrop) { add(layout.datapath(reason)) }

    /// Starts loading, for writing, the line of the first rule counters of the session in `slot`.
    @inlinable @inline(__always)
    public func prefetchRuleCounters(slot: Int) {
        cprefetch_write(UnsafeRawPointer(words + layout.rule(slot: slot, position: 0)))
    }

    @inlinable @inline(__always)
    public func count(_ reason: DropReason) { add(layout.parser(reason)) }

    /// A packet steered to instance `instance` of engine `engine` (one pair of adjacent words,
    /// like the action counters). Engines beyond the layout are not counted per engine.
    @inlinable @inline(__always)
    public func countSteered(engine: Int, instance: Int, bytes: Int) {
        guard engine < layout.engines else { return }
        let offset = layout.engineInstance(engine, instance)
        add(offset)
        add(offset &+ 1, UInt64(truncatingIfNeeded: bytes))
    }

    /// A packet of engine `engine` that found no usable instance (see `CounterLayout.engineFallback`).
    @inlinable @inline(__always)
    public func countFallback(engine: Int, drop: Bool) {
        guard engine < layout.engines else { return }
        add(layout.engineFallback(engine, drop: drop))
    }

    @inlinable @inline(__always)
    public func count(_ counter: LocalCounter) { add(layout.local(counter)) }

    @inlinable @inline(__always)
    public func count(_ action: ActionCounter, bytes: Int) {
        let offset = layout.action(action)
        add(offset)
        add(offset &+ 1, UInt64(truncatingIfNeeded: bytes))
    }
}
