import UPFPackets

/// Sizes of the tables, checked when sessions, engines and applications are added (`table_full`).
public struct PolicyLimits: Codable, Sendable, Equatable {
    public var maxSessions: Int
    /// Also bounds the actions, QoS and counters of one session (each list separately).
    public var maxRulesPerSession: Int
    public var maxEngines: Int
    public var maxApplications: Int
    /// Entries of one SDF filter or application: prefixes plus port ranges, all lists together.
    public var maxFilterEntries: Int

    public init(maxSessions: Int = 1_000_000, maxRulesPerSession: Int = 64, maxEngines: Int = 256,
                maxApplications: Int = 1024, maxFilterEntries: Int = 32) {
        self.maxSessions = maxSessions
        self.maxRulesPerSession = maxRulesPerSession
        self.maxEngines = maxEngines
        self.maxApplications = maxApplications
        self.maxFilterEntries = maxFilterEntries
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case maxSessions = "max_sessions"
        case maxRulesPerSession = "max_rules_per_session"
        case maxEngines = "max_engines"
        case maxApplications = "max_applications"
        case maxFilterEntries = "max_filter_entries"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PolicyLimits()
        maxSessions = try c.integerIfPresent(Int.self, .maxSessions) ?? d.maxSessions
        maxRulesPerSession = try c.integerIfPresent(Int.self, .maxRulesPerSession) ?? d.maxRulesPerSession
        maxEngines = try c.integerIfPresent(Int.self, .maxEngines) ?? d.maxEngines
        maxApplications = try c.integerIfPresent(Int.self, .maxApplications) ?? d.maxApplications
        maxFilterEntries = try c.integerIfPresent(Int.self, .maxFilterEntries) ?? d.maxFilterEntries
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(maxSessions, forKey: .maxSessions)
        try c.encode(maxRulesPerSession, forKey: .maxRulesPerSession)
        try c.encode(maxEngines, forKey: .maxEngines)
        try c.encode(maxApplications, forKey: .maxApplications)
        try c.encode(maxFilterEntries, forKey: .maxFilterEntries)
    }
}

/// A local N3 F-TEID as an index key.
public struct N3Key: Hashable, Sendable, CustomStringConvertible {
    public var teid: UInt32
    public var address: IPAddress

    public init(teid: UInt32, address: IPAddress) {
        self.teid = teid
        self.address = address
    }

    public var description: String { "teid \(teid) on \(address)" }
}

/// What a checked session contributes to the indexes of `PolicyState`.
struct SessionKeys: Sendable, Equatable {
    var n3: N3Key
    var ueIPv4: IPAddress?
    var ueIPv6: IPPrefix?
    /// Engines and applications the session refers to, with the path of the first reference.
    var engines: [(id: String, path: String)]
    var applications: [(id: String, path: String)]

    static func == (a: SessionKeys, b: SessionKeys) -> Bool {
        a.n3 == b.n3 && a.ueIPv4 == b.ueIPv4 && a.ueIPv6 == b.ueIPv6 && a.engines.map(\.id) == b.engines.map(\.id)
            && a.applications.map(\.id) == b.applications.map(\.id)
    }
}

/// The checks of one object on its own (cross references and collisions are `PolicyState`'s).
enum Check {
    typealias Code = PolicyError.Code

    static func fail(_ code: String, _ path: String, _ message: String) -> PolicyError {
        PolicyError(code: code, message: message, path: path)
    }

    static func join(_ path: String, _ field: String) -> String { path.isEmpty ? field : "\(path).\(field)" }

    /// Engine and application ids: 1...64 characters of letters, digits, `.`, `_`, `-`.
    static func identifier(_ id: String, _ path: String, _ what: String) throws(PolicyError) {
        guard !id.isEmpty else { throw fail(Code.invalidField, path, "\(what) id is empty") }
        guard id.utf8.count <= 64,
              id.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) })
        else {
            throw fail(Code.invalidField, path, "\(what) id '\(id)' must be 1 to 64 letters, digits, '.', '_' or '-'")
        }
    }

    static func address(_ text: String, _ path: String) throws(PolicyError) -> IPAddress {
        guard let address = IPAddress(text) else {
            throw fail(Code.invalidAddress, path, "'\(text)' is not an IPv4 or IPv6 address")
        }
        return address
    }

    static func prefix(_ text: String, _ path: String) throws(PolicyError) -> IPPrefix {
        switch IPPrefix.parse(text) {
        case .success(let prefix): return prefix
        case .failure(.address(let message)): throw fail(Code.invalidAddress, path, message)
        case .failure(.length(let message)), .failure(.hostBits(let message)): throw fail(Code.invalidPrefix, path, message)
        }
    }

    static func teid(_ teid: UInt32, _ path: String) throws(PolicyError) {
        if teid == 0 { throw fail(Code.outOfRange, path, "TEID 0 is reserved and cannot identify a tunnel") }
    }

    static func qfi(_ qfi: UInt8, _ path: String) throws(PolicyError) {
        guard (1...63).contains(qfi) else { throw fail(Code.outOfRange, path, "QFI \(qfi) is out of range 1...63") }
    }

    static func fteid(_ fteid: FTEID, _ path: String) throws(PolicyError) -> N3Key {
        try teid(fteid.teid, join(path, "teid"))
        return N3Key(teid: fteid.teid, address: try address(fteid.address, join(path, "address")))
    }

    static func ports(_ ranges: [PortRange], _ path: String) throws(PolicyError) {
        for (i, range) in ranges.enumerated() where range.low > range.high {
            throw fail(Code.invalidRange, "\(path)[\(i)]",
                       "port range \(range.low)-\(range.high) is reversed (write \(range.high)-\(range.low))")
        }
    }

    static let portProtocols: Set<UInt8> = [6, 17, 132]

    /// Prefixes, port ranges and protocol of a filter or an application. Returns the address
    /// families of the prefixes (v4, v6).
    static func destinations(prefixes: [String], prefixesPath: String, ports: [PortRange], portsPath: String,
                             protocol proto: UInt8?, protocolPath: String) throws(PolicyError) -> (v4: Bool, v6: Bool) {
        var v4 = false, v6 = false
        for (i, text) in prefixes.enumerated() {
            let p = try prefix(text, "\(prefixesPath)[\(i)]")
            if p.isIPv4 { v4 = true } else { v6 = true }
        }
        try Check.ports(ports, portsPath)
        if let proto, !ports.isEmpty, !portProtocols.contains(proto) {
            throw fail(Code.invalidFilter, protocolPath,
                       "port ranges only match TCP (6), UDP (17) or SCTP (132), not protocol \(proto)")
        }
        return (v4, v6)
    }

    /// An SDF filter. Every field empty = match all (allowed).
    static func filter(_ f: SDFFilter, _ path: String, _ limits: PolicyLimits) throws(PolicyError) {
        let entries = f.sourcePrefixes.count + f.destinationPrefixes.count + f.sourcePorts.count + f.destinationPorts.count
        if entries > limits.maxFilterEntries {
            throw fail(Code.tableFull, path,
                       "filter has \(entries) prefixes and port ranges, more than the limit of \(limits.maxFilterEntries)")
        }
        let source = try destinations(prefixes: f.sourcePrefixes, prefixesPath: join(path, "source_prefixes"),
                                      ports: f.sourcePorts, portsPath: join(path, "source_ports"),
                                      protocol: f.protocol, protocolPath: join(path, "protocol"))
        let destination = try destinations(prefixes: f.destinationPrefixes, prefixesPath: join(path, "destination_prefixes"),
                                           ports: f.destinationPorts, portsPath: join(path, "destination_ports"),
                                           protocol: f.protocol, protocolPath: join(path, "protocol"))
        if !f.sourcePrefixes.isEmpty && !f.destinationPrefixes.isEmpty
            && !(source.v4 && destination.v4) && !(source.v6 && destination.v6) {
            throw fail(Code.invalidFilter, path,
                       "source and destination prefixes are of different address families: the filter can never match")
        }
        if let tos = f.tos {
            if tos.mask == 0 {
                throw fail(Code.invalidFilter, join(path, "tos.mask"), "a TOS mask of 0 matches everything; leave tos out")
            }
            if tos.value & ~tos.mask != 0 {
                throw fail(Code.invalidFilter, join(path, "tos.value"),
                           "TOS value \(tos.value) has bits outside mask \(tos.mask): the filter can never match")
            }
        }
    }

    static func application(_ a: Application, _ path: String, _ limits: PolicyLimits) throws(PolicyError) {
        try identifier(a.id, join(path, "id"), "application")
        if a.destinationPrefixes.isEmpty && a.destinationPorts.isEmpty && a.protocol == nil {
            throw fail(Code.invalidFilter, path,
                       "application '\(a.id)' matches everything: give destination_prefixes, destination_ports or protocol")
        }
        let entries = a.destinationPrefixes.count + a.destinationPorts.count
        if entries > limits.maxFilterEntries {
            throw fail(Code.tableFull, path,
                       "application has \(entries) prefixes and port ranges, more than the limit of \(limits.maxFilterEntries)")
        }
        _ = try destinations(prefixes: a.destinationPrefixes, prefixesPath: join(path, "destination_prefixes"),
                             ports: a.destinationPorts, portsPath: join(path, "destination_ports"),
                             protocol: a.protocol, protocolPath: join(path, "protocol"))
    }

    static func engine(_ e: Engine, _ path: String) throws(PolicyError) {
        try identifier(e.id, join(path, "id"), "engine")
        if e.instances.isEmpty {
            throw fail(Code.invalidField, join(path, "instances"), "engine '\(e.id)' needs at least one instance")
        }
        var seen: [IPAddress: Int] = [:]
        for (i, instance) in e.instances.enumerated() {
            let p = "\(join(path, "instances"))[\(i)]"
            if instance.port.isEmpty { throw fail(Code.invalidField, join(p, "port"), "the port is empty") }
            let a = try address(instance.address, join(p, "address"))
            if let earlier = seen[a] {
                throw fail(Code.duplicateID, join(p, "address"),
                           "address \(a) is already instances[\(earlier)] of engine '\(e.id)'")
            }
            seen[a] = i
            if let mac = instance.mac, MACAddress(mac) == nil {
                throw fail(Code.invalidAddress, join(p, "mac"), "'\(mac)' is not a MAC address like 02:00:00:00:00:01")
            }
        }
        if let probe = e.probe {
            let p = join(path, "probe")
            if probe.port == 0 { throw fail(Code.outOfRange, join(p, "port"), "probe port 0 is out of range 1...65535") }
            if !(10...3_600_000).contains(probe.intervalMs) {
                throw fail(Code.outOfRange, join(p, "interval_ms"),
                           "probe interval \(probe.intervalMs) ms is out of range 10...3600000")
            }
            switch probe.kind {
            case .http:
                guard let probePath = probe.path else {
                    throw fail(Code.missingField, join(p, "path"), "an http probe needs a path such as /health")
                }
                if !probePath.hasPrefix("/") || probePath.contains(where: { $0 == " " || $0.isNewline }) {
                    throw fail(Code.invalidField, join(p, "path"), "'\(probePath)' is not an HTTP path such as /health")
                }
            case .tcp:
                if probe.path != nil { throw fail(Code.invalidField, join(p, "path"), "a tcp probe has no path") }
            }
        }
    }

    /// Ids must be unique within their list.
    static func unique<T>(_ list: [T], _ id: (T) -> some Hashable & CustomStringConvertible, _ path: String,
                          _ what: String) throws(PolicyError) {
        var seen: [AnyHashable: Int] = [:]
        for (i, item) in list.enumerated() {
            let key = id(item)
            if let earlier = seen[AnyHashable(key)] {
                throw fail(Code.duplicateID, "\(path)[\(i)].id", "\(what) id \(key) is used twice (\(path)[\(earlier)] and \(path)[\(i)])")
            }
            seen[AnyHashable(key)] = i
        }
    }

    /// Everything about a session that does not depend on other sessions, engines or applications.
    static func session(_ s: Session, _ path: String, _ limits: PolicyLimits) throws(PolicyError) -> SessionKeys {
        if s.seid == 0 { throw fail(Code.outOfRange, join(path, "seid"), "SEID 0 is reserved (it addresses the node, not a session)") }
        var ueIPv4: IPAddress?
        if let text = s.ueIPv4 {
            let p = join(path, "ue_ipv4")
            let prefix = try prefix(text, p)
            guard prefix.isIPv4 else { throw fail(Code.invalidAddress, p, "'\(text)' is not an IPv4 address (IPv6 goes in ue_ipv6)") }
            guard prefix.familyLength == 32 else {
                throw fail(Code.invalidPrefix, p, "'\(text)': a UE IPv4 address is one address (/32)")
            }
            ueIPv4 = prefix.address
        }
        var ueIPv6: IPPrefix?
        if let text = s.ueIPv6 {
            let p = join(path, "ue_ipv6")
            let prefix = try prefix(text, p)
            guard !prefix.isIPv4 && text.contains(":") else {
                throw fail(Code.invalidAddress, p, "'\(text)' is not an IPv6 address or prefix (IPv4 goes in ue_ipv4)")
            }
            guard prefix.length >= 64 else {
                throw fail(Code.invalidPrefix, p, "'\(text)': a UE IPv6 prefix is /64 to /128 (TS 23.501 gives a UE a /64)")
            }
            ueIPv6 = prefix
        }
        let n3 = try fteid(s.n3, join(path, "n3"))
        if let gnb = s.gnb { _ = try fteid(gnb, join(path, "gnb")) }
        try qfi(s.defaultQFI, join(path, "default_qfi"))

        let rulesPath = join(path, "rules")
        if s.rules.isEmpty { throw fail(Code.invalidField, rulesPath, "session \(s.seid) has no rules: give at least one") }
        for (list, count) in [("rules", s.rules.count), ("actions", s.actions.count), ("qos", s.qos.count),
                              ("counters", s.counters.count)] where count > limits.maxRulesPerSession {
            throw fail(Code.tableFull, join(path, list),
                       "\(list) table of session \(s.seid) full: \(count) given, the limit is \(limits.maxRulesPerSession)")
        }
        try unique(s.rules, \.id, rulesPath, "rule")
        try unique(s.actions, \.id, join(path, "actions"), "action")
        try unique(s.qos, \.id, join(path, "qos"), "qos")
        try unique(s.counters, \.id, join(path, "counters"), "counter")

        var engines: [(id: String, path: String)] = []
        var actionKinds: [UInt32: ActionKind] = [:]
        for (i, action) in s.actions.enumerated() {
            let p = "\(join(path, "actions"))[\(i)]"
            actionKinds[action.id] = action.kind
            switch action.kind {
            case .steer(let engine):
                try identifier(engine, join(p, "engine"), "engine")
                if !engines.contains(where: { $0.id == engine }) { engines.append((engine, join(p, "engine"))) }
            case .forwardN9(let peer, let teid):
                _ = try address(peer, join(p, "peer"))
                try Check.teid(teid, join(p, "teid"))
            case .buffer(let limit):
                if !(1...65536).contains(limit) {
                    throw fail(Code.outOfRange, join(p, "limit"), "buffer limit \(limit) is out of range 1...65536 packets")
                }
            case .forwardN3:
                if s.gnb == nil {
                    throw fail(Code.missingField, join(path, "gnb"),
                               "action \(action.id) forwards to N3 but session \(s.seid) has no gnb F-TEID (buffer until it is known)")
                }
            case .forwardN6, .drop:
                break
            }
        }
        for (i, q) in s.qos.enumerated() {
            let p = "\(join(path, "qos"))[\(i)]"
            if let value = q.qfi { try qfi(value, join(p, "qfi")) }
            if q.mbrUplinkKbps == 0 {
                throw fail(Code.outOfRange, join(p, "mbr_uplink_kbps"), "an MBR of 0 is out of range: close the gate instead")
            }
            if q.mbrDownlinkKbps == 0 {
                throw fail(Code.outOfRange, join(p, "mbr_downlink_kbps"), "an MBR of 0 is out of range: close the gate instead")
            }
        }
        for (i, counter) in s.counters.enumerated() where counter.volumeThresholdBytes == 0 {
            throw fail(Code.outOfRange, "\(join(path, "counters"))[\(i)].volume_threshold_bytes",
                       "a volume threshold of 0 bytes is out of range: leave it out for no threshold")
        }

        let qosIDs = Set(s.qos.map(\.id)), counterIDs = Set(s.counters.map(\.id))
        var applications: [(id: String, path: String)] = []
        for (i, rule) in s.rules.enumerated() {
            let p = "\(rulesPath)[\(i)]"
            guard let kind = actionKinds[rule.action] else {
                throw fail(Code.danglingReference, join(p, "action"),
                           "rule \(rule.id) names action \(rule.action), which session \(s.seid) does not define"
                           + " (actions: \(s.actions.map { String($0.id) }.joined(separator: ", ")))")
            }
            if rule.source == .engine, kind.engine != nil {
                throw fail(Code.invalidField, join(p, "action"),
                           "rule \(rule.id) matches traffic coming back from an engine and cannot steer it to an engine again")
            }
            if let q = rule.qos, !qosIDs.contains(q) {
                throw fail(Code.danglingReference, join(p, "qos"),
                           "rule \(rule.id) names qos \(q), which session \(s.seid) does not define")
            }
            var seen = Set<UInt32>()
            for (j, counter) in rule.counters.enumerated() {
                if !counterIDs.contains(counter) {
                    throw fail(Code.danglingReference, "\(join(p, "counters"))[\(j)]",
                               "rule \(rule.id) names counter \(counter), which session \(s.seid) does not define")
                }
                if !seen.insert(counter).inserted {
                    throw fail(Code.duplicateID, "\(join(p, "counters"))[\(j)]", "rule \(rule.id) names counter \(counter) twice")
                }
            }
            if let value = rule.qfi { try qfi(value, join(p, "qfi")) }
            if let app = rule.application {
                try identifier(app, join(p, "application"), "application")
                if !applications.contains(where: { $0.id == app }) { applications.append((app, join(p, "application"))) }
            }
            if let match = rule.match { try filter(match, join(p, "match"), limits) }
        }
        return SessionKeys(n3: n3, ueIPv4: ueIPv4, ueIPv6: ueIPv6, engines: engines, applications: applications)
    }
}
