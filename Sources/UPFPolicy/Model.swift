/// The policy model. Names follow PFCP (TS 29.244) so that an N4 front end maps one to one:
/// a session (SEID) holds rules (PDRs) that point at actions (FARs), QoS (QERs) and counters (URRs).
/// Engines are named steering targets; applications are named sets of destinations.
///
/// The file format (YAML or JSON) uses the snake_case keys of each `CodingKeys`. Every type
/// refuses unknown fields (`unknown_field`) so a typo never silently does nothing. Decoding checks
/// only shapes and number ranges; everything else is checked by `PolicyState.validated` /
/// `PolicyState.applying` (see Validation.swift). docs/policy.md documents every field.

// MARK: - Policy

public struct Policy: Codable, Sendable, Equatable {
    public var engines: [Engine]
    public var applications: [Application]
    public var sessions: [Session]

    public init(engines: [Engine] = [], applications: [Application] = [], sessions: [Session] = []) {
        self.engines = engines
        self.applications = applications
        self.sessions = sessions
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case engines, applications, sessions
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        engines = try c.list(Engine.self, .engines)
        applications = try c.list(Application.self, .applications)
        sessions = try c.list(Session.self, .sessions)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(engines, forKey: .engines)
        try c.encode(applications, forKey: .applications)
        try c.encode(sessions, forKey: .sessions)
    }
}

// MARK: - Engines

/// A named target that traffic can be steered to (e.g. an inference engine on this node).
public struct Engine: Codable, Sendable, Equatable {
    public var id: String
    /// At least one. The datapath spreads steered flows over the instances that are up.
    public var instances: [EngineInstance]
    /// What happens to steered traffic when no instance is up.
    public var fallback: EngineFallback
    /// Liveness probe; nil = instances are always considered up.
    public var probe: EngineProbe?

    public init(id: String, instances: [EngineInstance], fallback: EngineFallback = .core, probe: EngineProbe? = nil) {
        self.id = id
        self.instances = instances
        self.fallback = fallback
        self.probe = probe
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, instances, fallback, probe
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        instances = try c.decode([EngineInstance].self, forKey: .instances)
        fallback = try c.decodeIfPresent(EngineFallback.self, forKey: .fallback) ?? .core
        probe = try c.decodeIfPresent(EngineProbe.self, forKey: .probe)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(instances, forKey: .instances)
        try c.encode(fallback, forKey: .fallback)
        try c.encodeIfPresent(probe, forKey: .probe)
    }
}

/// One instance of an engine: the DPDK port it sits behind, its address and optionally its MAC
/// (when absent the datapath resolves it with ARP/ND).
public struct EngineInstance: Codable, Sendable, Equatable {
    /// The DPDK port name or index the instance is reached through (a number is accepted and kept as text).
    public var port: String
    /// IPv4 or IPv6 address text.
    public var address: String
    /// `aa:bb:cc:dd:ee:ff`, optional.
    public var mac: String?

    public init(port: String, address: String, mac: String? = nil) {
        self.port = port
        self.address = address
        self.mac = mac
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case port, address, mac
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // A port index may be written as a number.
        if let index = try? c.decode(UInt16.self, forKey: .port) {
            port = String(index)
        } else {
            port = try c.decode(String.self, forKey: .port)
        }
        address = try c.decode(String.self, forKey: .address)
        mac = try c.decodeIfPresent(String.self, forKey: .mac)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(port, forKey: .port)
        try c.encode(address, forKey: .address)
        try c.encodeIfPresent(mac, forKey: .mac)
    }
}

/// `core`: steered traffic continues as if the steer action were the session's forwarding to the
/// core (the next matching rule that does not steer). `drop`: it is dropped (sovereign data stays
/// on the node).
public enum EngineFallback: String, Codable, Sendable, Equatable, CaseIterable {
    case core, drop

    public init(from decoder: any Decoder) throws {
        self = try decodeEnum(decoder)
    }
}

public struct EngineProbe: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, Equatable, CaseIterable {
        case tcp, http

        public init(from decoder: any Decoder) throws {
            self = try decodeEnum(decoder)
        }
    }

    public var kind: Kind
    public var port: UInt16
    /// HTTP only: the path to GET (starts with `/`).
    public var path: String?
    public var intervalMs: UInt32
    /// How long one probe may take (connect, and for http the answer); nil = the default,
    /// `min(interval_ms, 1000)`. At most `interval_ms`.
    public var timeoutMs: UInt32?
    /// Consecutive failed probes before an instance is taken down; nil = 3. One success brings
    /// it back.
    public var failuresBeforeDown: UInt32?

    public init(kind: Kind, port: UInt16, path: String? = nil, intervalMs: UInt32, timeoutMs: UInt32? = nil,
                failuresBeforeDown: UInt32? = nil) {
        self.kind = kind
        self.port = port
        self.path = path
        self.intervalMs = intervalMs
        self.timeoutMs = timeoutMs
        self.failuresBeforeDown = failuresBeforeDown
    }

    public static let defaultFailuresBeforeDown: UInt32 = 3
    public var effectiveTimeoutMs: UInt32 { timeoutMs ?? min(intervalMs, 1000) }
    public var effectiveFailuresBeforeDown: UInt32 { failuresBeforeDown ?? EngineProbe.defaultFailuresBeforeDown }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case kind, port, path
        case intervalMs = "interval_ms"
        case timeoutMs = "timeout_ms"
        case failuresBeforeDown = "failures_before_down"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(Kind.self, forKey: .kind)
        port = try c.integer(UInt16.self, .port)
        path = try c.decodeIfPresent(String.self, forKey: .path)
        intervalMs = try c.integer(UInt32.self, .intervalMs)
        timeoutMs = try c.integerIfPresent(UInt32.self, .timeoutMs)
        failuresBeforeDown = try c.integerIfPresent(UInt32.self, .failuresBeforeDown)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(port, forKey: .port)
        try c.encodeIfPresent(path, forKey: .path)
        try c.encode(intervalMs, forKey: .intervalMs)
        try c.encodeIfPresent(timeoutMs, forKey: .timeoutMs)
        try c.encodeIfPresent(failuresBeforeDown, forKey: .failuresBeforeDown)
    }
}

// MARK: - Applications

/// A named set of destinations that rules can match by name (`Rule.application`), in addition to
/// their own SDF filter. A packet belongs to the application when its destination address is in one
/// of the prefixes (any, if none), its destination port in one of the ranges (any, if none) and its
/// protocol equal to `protocol` (any, if nil). At least one of the three must be given.
public struct Application: Codable, Sendable, Equatable {
    public var id: String
    public var destinationPrefixes: [String]
    public var destinationPorts: [PortRange]
    public var `protocol`: UInt8?

    public init(id: String, destinationPrefixes: [String] = [], destinationPorts: [PortRange] = [], protocol: UInt8? = nil) {
        self.id = id
        self.destinationPrefixes = destinationPrefixes
        self.destinationPorts = destinationPorts
        self.protocol = `protocol`
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id
        case destinationPrefixes = "destination_prefixes"
        case destinationPorts = "destination_ports"
        case `protocol`
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        destinationPrefixes = try c.list(String.self, .destinationPrefixes)
        destinationPorts = try c.list(PortRange.self, .destinationPorts)
        `protocol` = try c.integerIfPresent(UInt8.self, .protocol)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encodeList(destinationPrefixes, forKey: .destinationPrefixes)
        try c.encodeList(destinationPorts, forKey: .destinationPorts)
        try c.encodeIfPresent(`protocol`, forKey: .protocol)
    }
}

// MARK: - Sessions

/// A PFCP session: one UE's PDU session on this UPF.
public struct Session: Codable, Sendable, Equatable {
    public var seid: UInt64
    /// The UE's IPv4 address (an address, or `a.b.c.d/32`).
    public var ueIPv4: String?
    /// The UE's IPv6 address or prefix, /64 to /128 (`2001:db8:1:2::/64`; an address alone means /128).
    public var ueIPv6: String?
    /// Local uplink F-TEID: G-PDUs from the gNB arrive with this TEID on this address.
    public var n3: FTEID
    /// The gNB's F-TEID for downlink; nil until known (downlink is then buffered or dropped as the
    /// rules say).
    public var gnb: FTEID?
    /// QFI put in the PDU Session Container of downlink G-PDUs when no QER gives one (1...63).
    public var defaultQFI: UInt8
    /// PDRs. Evaluated in precedence order (lower value first); at least one.
    public var rules: [Rule]
    /// FARs.
    public var actions: [Action]
    /// QERs.
    public var qos: [QoS]
    /// URRs.
    public var counters: [UsageRule]

    public init(seid: UInt64, ueIPv4: String? = nil, ueIPv6: String? = nil, n3: FTEID, gnb: FTEID? = nil,
                defaultQFI: UInt8 = 9, rules: [Rule] = [], actions: [Action] = [], qos: [QoS] = [],
                counters: [UsageRule] = []) {
        self.seid = seid
        self.ueIPv4 = ueIPv4
        self.ueIPv6 = ueIPv6
        self.n3 = n3
        self.gnb = gnb
        self.defaultQFI = defaultQFI
        self.rules = rules
        self.actions = actions
        self.qos = qos
        self.counters = counters
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case seid
        case ueIPv4 = "ue_ipv4"
        case ueIPv6 = "ue_ipv6"
        case n3, gnb
        case defaultQFI = "default_qfi"
        case rules, actions, qos, counters
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        seid = try c.integer(UInt64.self, .seid)
        ueIPv4 = try c.decodeIfPresent(String.self, forKey: .ueIPv4)
        ueIPv6 = try c.decodeIfPresent(String.self, forKey: .ueIPv6)
        n3 = try c.decode(FTEID.self, forKey: .n3)
        gnb = try c.decodeIfPresent(FTEID.self, forKey: .gnb)
        defaultQFI = try c.integerIfPresent(UInt8.self, .defaultQFI) ?? 9
        rules = try c.decode([Rule].self, forKey: .rules)
        actions = try c.list(Action.self, .actions)
        qos = try c.list(QoS.self, .qos)
        counters = try c.list(UsageRule.self, .counters)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(seid, forKey: .seid)
        try c.encodeIfPresent(ueIPv4, forKey: .ueIPv4)
        try c.encodeIfPresent(ueIPv6, forKey: .ueIPv6)
        try c.encode(n3, forKey: .n3)
        try c.encodeIfPresent(gnb, forKey: .gnb)
        try c.encode(defaultQFI, forKey: .defaultQFI)
        try c.encode(rules, forKey: .rules)
        try c.encode(actions, forKey: .actions)
        try c.encodeList(qos, forKey: .qos)
        try c.encodeList(counters, forKey: .counters)
    }
}

/// A fully qualified TEID: a TEID (never 0) and the IPv4/IPv6 address it is valid on.
public struct FTEID: Codable, Sendable, Equatable, Hashable {
    public var teid: UInt32
    public var address: String

    public init(teid: UInt32, address: String) {
        self.teid = teid
        self.address = address
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case teid, address
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        teid = try c.integer(UInt32.self, .teid)
        address = try c.decode(String.self, forKey: .address)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(teid, forKey: .teid)
        try c.encode(address, forKey: .address)
    }
}

// MARK: - Rules (PDR)

/// Where a packet came from: `access` = uplink from the gNB (N3), `core` = downlink from N6/N9,
/// `engine` = traffic coming back from a steering engine.
public enum SourceInterface: String, Codable, Sendable, Equatable, CaseIterable {
    case access, core, engine

    public init(from decoder: any Decoder) throws {
        self = try decodeEnum(decoder)
    }
}

/// A PDR. A packet matches when it arrives on `source`, satisfies `match` (absent or all-empty =
/// any), carries `qfi` (if given, uplink only) and belongs to `application` (if given). Of the
/// matching rules the one with the lowest `precedence` wins (PFCP order); ties are broken by the
/// lower `id`.
public struct Rule: Codable, Sendable, Equatable {
    public var id: UInt16
    public var precedence: UInt32
    public var source: SourceInterface
    public var match: SDFFilter?
    public var qfi: UInt8?
    public var application: String?
    /// far_id: the `Action.id` applied to matching packets.
    public var action: UInt32
    /// qer_id: a `QoS.id` of the same session.
    public var qos: UInt32?
    /// urr_ids: `UsageRule.id`s of the same session.
    public var counters: [UInt32]

    public init(id: UInt16, precedence: UInt32, source: SourceInterface, match: SDFFilter? = nil, qfi: UInt8? = nil,
                application: String? = nil, action: UInt32, qos: UInt32? = nil, counters: [UInt32] = []) {
        self.id = id
        self.precedence = precedence
        self.source = source
        self.match = match
        self.qfi = qfi
        self.application = application
        self.action = action
        self.qos = qos
        self.counters = counters
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, precedence, source, match, qfi, application, action, qos, counters
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.integer(UInt16.self, .id)
        precedence = try c.integer(UInt32.self, .precedence)
        source = try c.decode(SourceInterface.self, forKey: .source)
        match = try c.decodeIfPresent(SDFFilter.self, forKey: .match)
        qfi = try c.integerIfPresent(UInt8.self, .qfi)
        application = try c.decodeIfPresent(String.self, forKey: .application)
        action = try c.integer(UInt32.self, .action)
        qos = try c.integerIfPresent(UInt32.self, .qos)
        counters = try c.list(UInt32Value.self, .counters).map(\.value)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(precedence, forKey: .precedence)
        try c.encode(source, forKey: .source)
        try c.encodeIfPresent(match, forKey: .match)
        try c.encodeIfPresent(qfi, forKey: .qfi)
        try c.encodeIfPresent(application, forKey: .application)
        try c.encode(action, forKey: .action)
        try c.encodeIfPresent(qos, forKey: .qos)
        try c.encodeList(counters, forKey: .counters)
    }
}

/// A UInt32 list element decoded with the out-of-range diagnostics.
struct UInt32Value: Decodable {
    var value: UInt32
    init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().integer(UInt32.self)
    }
}

/// An SDF filter (the structured form of a PFCP flow description). Every list empty / field nil
/// means "any" for that field; a filter with every field empty matches all packets (the same as
/// no `match` at all). For uplink (`source: access`) source = UE, destination = remote; for
/// downlink (`source: core`) source = remote, destination = UE, as the packet's own headers say.
/// Port ranges only match TCP, UDP and SCTP packets.
public struct SDFFilter: Codable, Sendable, Equatable {
    public var sourcePrefixes: [String]
    public var destinationPrefixes: [String]
    public var `protocol`: UInt8?
    public var sourcePorts: [PortRange]
    public var destinationPorts: [PortRange]
    public var tos: TOSMatch?

    public init(sourcePrefixes: [String] = [], destinationPrefixes: [String] = [], protocol: UInt8? = nil,
                sourcePorts: [PortRange] = [], destinationPorts: [PortRange] = [], tos: TOSMatch? = nil) {
        self.sourcePrefixes = sourcePrefixes
        self.destinationPrefixes = destinationPrefixes
        self.protocol = `protocol`
        self.sourcePorts = sourcePorts
        self.destinationPorts = destinationPorts
        self.tos = tos
    }

    /// True when the filter matches every packet.
    public var isMatchAll: Bool {
        sourcePrefixes.isEmpty && destinationPrefixes.isEmpty && `protocol` == nil && sourcePorts.isEmpty
            && destinationPorts.isEmpty && tos == nil
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case sourcePrefixes = "source_prefixes"
        case destinationPrefixes = "destination_prefixes"
        case `protocol`
        case sourcePorts = "source_ports"
        case destinationPorts = "destination_ports"
        case tos
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sourcePrefixes = try c.list(String.self, .sourcePrefixes)
        destinationPrefixes = try c.list(String.self, .destinationPrefixes)
        `protocol` = try c.integerIfPresent(UInt8.self, .protocol)
        sourcePorts = try c.list(PortRange.self, .sourcePorts)
        destinationPorts = try c.list(PortRange.self, .destinationPorts)
        tos = try c.decodeIfPresent(TOSMatch.self, forKey: .tos)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeList(sourcePrefixes, forKey: .sourcePrefixes)
        try c.encodeList(destinationPrefixes, forKey: .destinationPrefixes)
        try c.encodeIfPresent(`protocol`, forKey: .protocol)
        try c.encodeList(sourcePorts, forKey: .sourcePorts)
        try c.encodeList(destinationPorts, forKey: .destinationPorts)
        try c.encodeIfPresent(tos, forKey: .tos)
    }
}

/// Matches when `(tos & mask) == value` (TOS / Traffic Class byte). `value` must have no bits
/// outside `mask`.
public struct TOSMatch: Codable, Sendable, Equatable {
    public var value: UInt8
    public var mask: UInt8

    public init(value: UInt8, mask: UInt8 = 0xFF) {
        self.value = value
        self.mask = mask
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case value, mask
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        value = try c.integer(UInt8.self, .value)
        mask = try c.integerIfPresent(UInt8.self, .mask) ?? 0xFF
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(value, forKey: .value)
        try c.encode(mask, forKey: .mask)
    }
}

/// An inclusive port range, coded as a number (`80`) or a string (`"8000-8080"`, `"443"`).
public struct PortRange: Codable, Sendable, Equatable, Hashable {
    public var low: UInt16
    public var high: UInt16

    public init(low: UInt16, high: UInt16) {
        self.low = low
        self.high = high
    }

    public init(_ port: UInt16) {
        self.init(low: port, high: port)
    }

    public func contains(_ port: UInt16) -> Bool { low <= port && port <= high }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        // YAML hands any scalar out as a string too, so numbers are tried first.
        if let port = try? c.decode(UInt16.self) {
            self.init(port)
            return
        }
        guard let text = try? c.decode(String.self) else {
            // A number that is not a port (negative, too large, fractional) or another type.
            let port = try c.integer(UInt16.self)
            self.init(port)
            return
        }
        switch PortRange.parse(text) {
        case .success(let range): self = range
        case .failure(var error):
            error.path = renderPath(decoder.codingPath)
            throw error
        }
    }

    /// The text form: `"443"`, `"8000-8080"` (spaces around the numbers allowed). A failure's
    /// path is empty: the caller knows where the text was.
    public static func parse(_ text: String) -> Result<PortRange, PolicyError> {
        if let range = text.utf8.withContiguousStorageIfAvailable(parseDigits) ?? nil { return .success(range) }
        return parseAny(text)
    }

    /// `443` or `8000-8080` written with digits only, in one pass over the bytes; nil sends
    /// everything else (spaces, every error with its message) to `parseAny`, which accepts the
    /// same texts. Why: the String splitting of `parseAny` cost ~8000 instructions a range, in
    /// the request parsing of every session update (callgrind).
    static func parseDigits(_ utf8: UnsafeBufferPointer<UInt8>) -> PortRange? {
        var low = 0, high = 0
        var digits = 0
        var inHigh = false
        for byte in utf8 {
            if byte == UInt8(ascii: "-") {
                guard !inHigh, digits > 0 else { return nil }
                inHigh = true
                digits = 0
                continue
            }
            let digit = byte &- UInt8(ascii: "0")
            guard digit <= 9 else { return nil }
            digits += 1
            if inHigh { high = high * 10 + Int(digit) } else { low = low * 10 + Int(digit) }
            guard low <= Int(UInt16.max), high <= Int(UInt16.max) else { return nil }
        }
        guard digits > 0 else { return nil }
        return inHigh ? PortRange(low: UInt16(low), high: UInt16(high)) : PortRange(UInt16(low))
    }

    /// Any port text, with the reason of a failure.
    static func parseAny(_ text: String) -> Result<PortRange, PolicyError> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        func port(_ s: Substring) -> Result<UInt16, PolicyError> {
            let t = s.trimmingSpaces
            guard !t.isEmpty, t.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                return .failure(PolicyError(code: PolicyError.Code.invalidRange,
                                            message: "'\(text)' is not a port or a port range like 8000-8080", path: ""))
            }
            guard let value = UInt16(t) else {
                return .failure(PolicyError(code: PolicyError.Code.outOfRange,
                                            message: "port \(t) in '\(text)' is out of range 0...65535", path: ""))
            }
            return .success(value)
        }
        switch parts.count {
        case 1:
            return port(parts[0]).map { PortRange($0) }
        case 2:
            return port(parts[0]).flatMap { low in port(parts[1]).map { PortRange(low: low, high: $0) } }
        default:
            return .failure(PolicyError(code: PolicyError.Code.invalidRange,
                                        message: "'\(text)' is not a port or a port range like 8000-8080", path: ""))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if low == high { try c.encode(low) } else { try c.encode("\(low)-\(high)") }
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }
}

// MARK: - Actions (FAR)

/// A FAR, coded flat: `{"id":1,"type":"steer","engine":"llm"}`, `{"id":2,"type":"n9","peer":"10.0.0.1","teid":1234}`,
/// `{"id":6,"type":"n3"}`, `{"id":3,"type":"n6"}`, `{"id":4,"type":"drop"}`, `{"id":5,"type":"buffer","limit":64}`.
public struct Action: Codable, Sendable, Equatable {
    public var id: UInt32
    public var kind: ActionKind

    public init(id: UInt32, kind: ActionKind) {
        self.id = id
        self.kind = kind
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, type, engine, peer, teid, limit
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        let extra: [CodingKeys]
        switch type {
        case "steer": extra = [.engine]
        case "n9": extra = [.peer, .teid]
        case "n3", "n6", "drop": extra = []
        case "buffer": extra = [.limit]
        default:
            throw PolicyError(code: PolicyError.Code.invalidField,
                              message: "unknown action type '\(type)' (expected steer, n9, n3, n6, drop or buffer)",
                              path: renderPath(c.codingPath + [CodingKeys.type]))
        }
        try rejectUnknownKeys(decoder, known: ([.id, .type] + extra).map(\.stringValue))
        id = try c.integer(UInt32.self, .id)
        switch type {
        case "steer": kind = .steer(engine: try c.decode(String.self, forKey: .engine))
        case "n9": kind = .forwardN9(peer: try c.decode(String.self, forKey: .peer), teid: try c.integer(UInt32.self, .teid))
        case "n3": kind = .forwardN3
        case "n6": kind = .forwardN6
        case "drop": kind = .drop
        default: kind = .buffer(limit: try c.integer(UInt32.self, .limit))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(kind.typeName, forKey: .type)
        switch kind {
        case .steer(let engine): try c.encode(engine, forKey: .engine)
        case .forwardN9(let peer, let teid):
            try c.encode(peer, forKey: .peer)
            try c.encode(teid, forKey: .teid)
        case .forwardN3, .forwardN6, .drop: break
        case .buffer(let limit): try c.encode(limit, forKey: .limit)
        }
    }
}

/// What a FAR does with the packets of the rules that point at it.
public enum ActionKind: Codable, Sendable, Equatable {
    /// Send to an instance of the engine (uplink); when none is up, the engine's fallback applies.
    case steer(engine: String)
    /// Encapsulate in GTP-U towards another UPF (N9) with this TEID.
    case forwardN9(peer: String, teid: UInt32)
    /// Encapsulate in GTP-U towards the session's gNB F-TEID (`Session.gnb`, required): downlink.
    case forwardN3
    /// Decapsulate and send to the data network (N6).
    case forwardN6
    case drop
    /// Hold up to `limit` packets (e.g. downlink before the gNB F-TEID is known).
    case buffer(limit: UInt32)

    /// The `type` of the file format.
    public var typeName: String {
        switch self {
        case .steer: "steer"
        case .forwardN9: "n9"
        case .forwardN3: "n3"
        case .forwardN6: "n6"
        case .drop: "drop"
        case .buffer: "buffer"
        }
    }

    /// The engine this action steers to, if any.
    public var engine: String? {
        if case .steer(let engine) = self { engine } else { nil }
    }
}

// MARK: - QoS (QER) and counters (URR)

public enum Gate: String, Codable, Sendable, Equatable, CaseIterable {
    case open, closed

    public init(from decoder: any Decoder) throws {
        self = try decodeEnum(decoder)
    }
}

/// A QER: gates and maximum bit rates per direction, and the QFI to mark downlink with.
public struct QoS: Codable, Sendable, Equatable {
    public var id: UInt32
    public var gateUplink: Gate
    public var gateDownlink: Gate
    /// nil = no limit.
    public var mbrUplinkKbps: UInt64?
    public var mbrDownlinkKbps: UInt64?
    /// 1...63; overrides the session's default QFI for downlink.
    public var qfi: UInt8?

    public init(id: UInt32, gateUplink: Gate = .open, gateDownlink: Gate = .open, mbrUplinkKbps: UInt64? = nil,
                mbrDownlinkKbps: UInt64? = nil, qfi: UInt8? = nil) {
        self.id = id
        self.gateUplink = gateUplink
        self.gateDownlink = gateDownlink
        self.mbrUplinkKbps = mbrUplinkKbps
        self.mbrDownlinkKbps = mbrDownlinkKbps
        self.qfi = qfi
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id
        case gateUplink = "gate_uplink"
        case gateDownlink = "gate_downlink"
        case mbrUplinkKbps = "mbr_uplink_kbps"
        case mbrDownlinkKbps = "mbr_downlink_kbps"
        case qfi
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.integer(UInt32.self, .id)
        gateUplink = try c.decodeIfPresent(Gate.self, forKey: .gateUplink) ?? .open
        gateDownlink = try c.decodeIfPresent(Gate.self, forKey: .gateDownlink) ?? .open
        mbrUplinkKbps = try c.integerIfPresent(UInt64.self, .mbrUplinkKbps)
        mbrDownlinkKbps = try c.integerIfPresent(UInt64.self, .mbrDownlinkKbps)
        qfi = try c.integerIfPresent(UInt8.self, .qfi)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(gateUplink, forKey: .gateUplink)
        try c.encode(gateDownlink, forKey: .gateDownlink)
        try c.encodeIfPresent(mbrUplinkKbps, forKey: .mbrUplinkKbps)
        try c.encodeIfPresent(mbrDownlinkKbps, forKey: .mbrDownlinkKbps)
        try c.encodeIfPresent(qfi, forKey: .qfi)
    }
}

/// A URR: count the bytes and packets of the rules that name it; report when the volume
/// threshold (if any) is crossed.
public struct UsageRule: Codable, Sendable, Equatable {
    public var id: UInt32
    public var volumeThresholdBytes: UInt64?

    public init(id: UInt32, volumeThresholdBytes: UInt64? = nil) {
        self.id = id
        self.volumeThresholdBytes = volumeThresholdBytes
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id
        case volumeThresholdBytes = "volume_threshold_bytes"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.integer(UInt32.self, .id)
        volumeThresholdBytes = try c.integerIfPresent(UInt64.self, .volumeThresholdBytes)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encodeIfPresent(volumeThresholdBytes, forKey: .volumeThresholdBytes)
    }
}

/// String enums: an unknown value is `invalid_field` listing the accepted ones.
func decodeEnum<E: RawRepresentable & CaseIterable>(_ decoder: any Decoder) throws -> E where E.RawValue == String {
    let text = try decoder.singleValueContainer().decode(String.self)
    guard let value = E(rawValue: text) else {
        let expected = E.allCases.map(\.rawValue).joined(separator: ", ")
        throw PolicyError(code: PolicyError.Code.invalidField, message: "'\(text)' is not one of: \(expected)",
                          path: renderPath(decoder.codingPath))
    }
    return value
}
