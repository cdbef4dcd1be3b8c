import UPFPackets

// The compiled (numeric) form of a session: what the fast path walks.
//
// Every type here is trivial (no references, no Array/String inside the per-rule types), so a
// session's rules and their pools can be copied into one contiguous raw allocation by the datapath
// (`SessionTables.put`) and walked with plain loads. `CompiledSession` itself is the control-side
// container (it holds Arrays); it is produced by `CompiledSession.compile(_:engines:applications:)`
// (CompiledSession+Compile.swift) and matched by `CompiledRule.matches` (CompiledMatch.swift).
//
// Variable-length parts of a rule (prefixes, port ranges, counter indices) live in per-session
// pools; a rule names its share of a pool with a `CompiledPoolRange`. A rule therefore has no
// fixed limit on prefixes or ports, and a rule with none costs nothing for them.

/// A slice of one of a session's pools: `count` entries from `start`.
@frozen
public struct CompiledPoolRange: Sendable, Equatable, Hashable {
    public var start: UInt16
    public var count: UInt16

    @inlinable
    public init(start: UInt16, count: UInt16) {
        self.start = start
        self.count = count
    }

    public static let empty = CompiledPoolRange(start: 0, count: 0)
}

/// An address prefix as a pre-masked value and its mask, in the 128-bit space of `IPAddress`
/// (IPv4 v4-mapped: `10.0.0.0/8` is `::ffff:10.0.0.0/104`, so an IPv4 prefix never matches an
/// IPv6 address and `0.0.0.0/0` matches every IPv4 address and nothing else).
@frozen
public struct CompiledPrefix: Sendable, Equatable, Hashable {
    public var value: IPAddress
    public var mask: IPAddress

    /// `length` 0...128 in the 128-bit space; `address` is masked here.
    @inlinable
    public init(address: IPAddress, length: Int) {
        let n = max(0, min(128, length))
        let high: UInt64 = n >= 64 ? ~0 : (n == 0 ? 0 : ~(~UInt64(0) >> UInt64(n)))
        let low: UInt64 = n >= 128 ? ~0 : (n <= 64 ? 0 : ~(~UInt64(0) >> UInt64(n - 64)))
        mask = IPAddress(high: high, low: low)
        value = IPAddress(high: address.high & high, low: address.low & low)
    }

    /// The prefix length in the 128-bit space.
    @inlinable
    public var length: Int { mask.high.nonzeroBitCount + mask.low.nonzeroBitCount }

    @inlinable @inline(__always)
    public func contains(_ address: IPAddress) -> Bool {
        (address.high & mask.high) == value.high && (address.low & mask.low) == value.low
    }

    /// True when every address of `other` is in `self`.
    @inlinable
    public func covers(_ other: CompiledPrefix) -> Bool {
        other.length >= length && contains(other.value)
    }

    /// The addresses in both (prefixes nest or are disjoint).
    @inlinable
    public func intersection(_ other: CompiledPrefix) -> CompiledPrefix? {
        if covers(other) { return other }
        if other.covers(self) { return self }
        return nil
    }
}

/// An inclusive port range.
@frozen
public struct CompiledPortRange: Sendable, Equatable, Hashable {
    public var low: UInt16
    public var high: UInt16

    @inlinable
    public init(low: UInt16, high: UInt16) {
        self.low = low
        self.high = high
    }

    @inlinable @inline(__always)
    public func contains(_ port: UInt16) -> Bool { low <= port && port <= high }

    @inlinable
    public func intersection(_ other: CompiledPortRange) -> CompiledPortRange? {
        let lo = max(low, other.low), hi = min(high, other.high)
        return lo <= hi ? CompiledPortRange(low: lo, high: hi) : nil
    }
}

/// A FAR with its parameters resolved to numbers.
@frozen
public enum CompiledAction: Sendable, Equatable, Hashable {
    /// Steer to the engine of this index (the `engines` map given to `compile`).
    case steer(engine: UInt32)
    /// GTP-U towards another UPF.
    case forwardN9(peer: IPAddress, teid: UInt32)
    /// GTP-U towards the session's gNB F-TEID (downlink).
    case forwardN3
    /// Decapsulate towards the data network.
    case forwardN6
    case drop
    /// Hold up to `limit` packets.
    case buffer(limit: UInt32)
}

/// A QER, numeric. `UInt64.max` = no limit.
@frozen
public struct CompiledQoS: Sendable, Equatable, Hashable {
    public var id: UInt32
    public var gateUplinkOpen: Bool
    public var gateDownlinkOpen: Bool
    /// 0 = none (use the session's default QFI).
    public var qfi: UInt8
    /// Which of the session's meters enforces this QER's MBRs (0..<`maxMetersPerSession`, dense
    /// over the session's QERs that have an MBR, in `Session.qos` order); `noMeter` = no MBR.
    public var meter: UInt16
    public var mbrUplinkKbps: UInt64
    public var mbrDownlinkKbps: UInt64
    /// The MBRs as the data path's meters use them: the time one byte takes at the rate, in
    /// femtoseconds (8e12 / kbps), precomputed so that metering a packet is a multiplication,
    /// not a division. 0 = no limit in that direction.
    public var uplinkFemtosPerByte: UInt64
    public var downlinkFemtosPerByte: UInt64

    public static let noMeter: UInt16 = 0xFFFF
    /// QERs with an MBR per session: the data path keeps this many meters per session slot
    /// (uplink and downlink each: one cache line per session), validation refuses more.
    public static let maxMetersPerSession = 4

    @inlinable
    public init(id: UInt32, gateUplinkOpen: Bool = true, gateDownlinkOpen: Bool = true, qfi: UInt8 = 0,
                mbrUplinkKbps: UInt64 = .max, mbrDownlinkKbps: UInt64 = .max, meter: UInt16 = CompiledQoS.noMeter) {
        self.id = id
        self.gateUplinkOpen = gateUplinkOpen
        self.gateDownlinkOpen = gateDownlinkOpen
        self.qfi = qfi
        self.meter = meter
        self.mbrUplinkKbps = mbrUplinkKbps
        self.mbrDownlinkKbps = mbrDownlinkKbps
        uplinkFemtosPerByte = CompiledQoS.femtosPerByte(kbps: mbrUplinkKbps)
        downlinkFemtosPerByte = CompiledQoS.femtosPerByte(kbps: mbrDownlinkKbps)
    }

    /// 8 bits × 10^15 fs/s ÷ (kbps × 1000 bit/s); 0 for no limit (and for rates beyond 8 Pbit/s,
    /// where a byte takes less than a femtosecond).
    @inlinable
    public static func femtosPerByte(kbps: UInt64) -> UInt64 {
        kbps == .max || kbps == 0 ? 0 : 8_000_000_000_000 / kbps
    }

    /// True when a meter enforces an MBR of this QER.
    @inlinable public var metered: Bool { meter != CompiledQoS.noMeter }
}

extension SourceInterface {
    /// The number stored in `CompiledRule.source` (0 access, 1 core, 2 engine).
    @inlinable
    public var compiledCode: UInt8 {
        switch self {
        case .access: 0
        case .core: 1
        case .engine: 2
        }
    }
}

/// One PDR, numeric. 64 bytes; pools are those of its `CompiledSession` (or, in the datapath, of
/// the session version it was copied with).
@frozen
public struct CompiledRule: Sendable, Equatable {
    public var precedence: UInt32
    /// The PDR id (`Rule.id`).
    public var id: UInt16
    /// `SourceInterface.compiledCode`.
    public var source: UInt8
    /// Bits of `Flags`.
    public var flags: UInt8
    /// Required QFI when `flags` has `hasQFI`.
    public var qfi: UInt8
    /// Required upper-layer protocol when `flags` has `hasProtocol`.
    public var proto: UInt8
    /// Matches when `(trafficClass & tosMask) == tosValue`; mask 0 = any.
    public var tosValue: UInt8
    public var tosMask: UInt8
    /// Any of these (none = any address).
    public var sourcePrefixes: CompiledPoolRange
    public var destinationPrefixes: CompiledPoolRange
    /// Any of these (none = any port); a packet without ports (not TCP/UDP/SCTP, or a non-first
    /// fragment) never matches a rule that has port ranges.
    public var sourcePorts: CompiledPoolRange
    public var destinationPorts: CompiledPoolRange
    /// Indices into the session's counters (URRs, in `Session.counters` order).
    public var counters: CompiledPoolRange
    /// Index into the session's QoS (QERs, in `Session.qos` order); `CompiledRule.noQoS` = none.
    public var qos: UInt16
    public var action: CompiledAction

    public static let noQoS: UInt16 = 0xFFFF

    public enum Flags {
        public static let hasQFI: UInt8 = 1
        public static let hasProtocol: UInt8 = 2
    }

    @inlinable
    public init(precedence: UInt32, id: UInt16, source: UInt8, flags: UInt8 = 0, qfi: UInt8 = 0, proto: UInt8 = 0,
                tosValue: UInt8 = 0, tosMask: UInt8 = 0,
                sourcePrefixes: CompiledPoolRange = .empty, destinationPrefixes: CompiledPoolRange = .empty,
                sourcePorts: CompiledPoolRange = .empty, destinationPorts: CompiledPoolRange = .empty,
                counters: CompiledPoolRange = .empty, qos: UInt16 = CompiledRule.noQoS, action: CompiledAction) {
        self.precedence = precedence
        self.id = id
        self.source = source
        self.flags = flags
        self.qfi = qfi
        self.proto = proto
        self.tosValue = tosValue
        self.tosMask = tosMask
        self.sourcePrefixes = sourcePrefixes
        self.destinationPrefixes = destinationPrefixes
        self.sourcePorts = sourcePorts
        self.destinationPorts = destinationPorts
        self.counters = counters
        self.qos = qos
        self.action = action
    }
}

/// A fully qualified TEID, numeric.
@frozen
public struct CompiledFTEID: Sendable, Equatable, Hashable {
    public var teid: UInt32
    public var address: IPAddress

    @inlinable
    public init(teid: UInt32, address: IPAddress) {
        self.teid = teid
        self.address = address
    }
}

/// A session, compiled: keys as numbers, rules sorted in evaluation order, pools.
///
/// This is the control-side value handed to `SessionTables.put`; the datapath copies the rules
/// and pools into one contiguous allocation per session version.
public struct CompiledSession: Sendable, Equatable {
    public var seid: UInt64
    /// Local uplink F-TEID: the uplink lookup key is `n3.teid` alone.
    public var n3: CompiledFTEID
    /// Downlink key (host order), when the session has IPv4.
    public var ueIPv4: UInt32?
    /// Downlink key: the UE's IPv6 prefix, masked to `ueIPv6PrefixLength` (64...128). The
    /// datapath indexes its first 64 bits (the /64 of 5G SLAAC) and checks the rest.
    public var ueIPv6: IPAddress?
    public var ueIPv6PrefixLength: UInt8
    /// Downlink tunnel towards the gNB; nil until known.
    public var gnb: CompiledFTEID?
    public var defaultQFI: UInt8
    /// In evaluation order: precedence ascending, then id ascending (the model's tie-break).
    public var rules: [CompiledRule]
    public var prefixes: [CompiledPrefix]
    public var ports: [CompiledPortRange]
    /// Pool of counter indices (into `counterIDs`) referenced by `CompiledRule.counters`.
    public var counters: [UInt16]
    /// URR id of each counter index (`Session.counters` order).
    public var counterIDs: [UInt32]
    /// QERs in `Session.qos` order (`CompiledRule.qos` indexes this).
    public var qos: [CompiledQoS]
    /// What the compiler could not use (unparsable text, dangling references) and what it did
    /// instead. Empty for a validated session.
    public var notes: [String]
    /// Ids of valid rules that no packet can match — their filter and their application exclude
    /// each other (disjoint prefixes or ports, different protocols) — left out of `rules`.
    public var neverMatching: [UInt16] = []

    public init(seid: UInt64, n3: CompiledFTEID, ueIPv4: UInt32? = nil, ueIPv6: IPAddress? = nil,
                ueIPv6PrefixLength: UInt8 = 64, gnb: CompiledFTEID? = nil, defaultQFI: UInt8 = 9,
                rules: [CompiledRule] = [], prefixes: [CompiledPrefix] = [], ports: [CompiledPortRange] = [],
                counters: [UInt16] = [], counterIDs: [UInt32] = [], qos: [CompiledQoS] = [], notes: [String] = []) {
        self.seid = seid
        self.n3 = n3
        self.ueIPv4 = ueIPv4
        self.ueIPv6 = ueIPv6
        self.ueIPv6PrefixLength = ueIPv6PrefixLength
        self.gnb = gnb
        self.defaultQFI = defaultQFI
        self.rules = rules
        self.prefixes = prefixes
        self.ports = ports
        self.counters = counters
        self.counterIDs = counterIDs
        self.qos = qos
        self.notes = notes
    }

    /// The prefixes, ports or counter indices of a rule (control side: tests, explanations).
    public func prefixes(_ range: CompiledPoolRange) -> ArraySlice<CompiledPrefix> {
        prefixes[Int(range.start)..<Int(range.start) + Int(range.count)]
    }

    public func ports(_ range: CompiledPoolRange) -> ArraySlice<CompiledPortRange> {
        ports[Int(range.start)..<Int(range.start) + Int(range.count)]
    }

    public func counterIndices(_ range: CompiledPoolRange) -> ArraySlice<UInt16> {
        counters[Int(range.start)..<Int(range.start) + Int(range.count)]
    }

    /// The reference classifier over this value (the datapath runs the same `CompiledRule.matches`
    /// over its raw copy): the index in `rules` of the first rule that matches, or nil.
    public func firstMatch(_ flow: InnerFlow, qfi: UInt8, source: SourceInterface) -> Int? {
        prefixes.withUnsafeBufferPointer { p in
            ports.withUnsafeBufferPointer { q in
                let pools = CompiledPools(prefixes: p.baseAddress, ports: q.baseAddress)
                let code = source.compiledCode
                for i in rules.indices where rules[i].matches(flow, qfi: qfi, source: code, pools: pools) {
                    return i
                }
                return nil
            }
        }
    }
}
