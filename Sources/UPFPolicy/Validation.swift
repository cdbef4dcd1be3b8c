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
    /// Engines the session steers to, with the index of the first action naming each.
    var engines: [(id: String, action: Int)]
    /// Applications the session's rules name, with the index of the first rule naming each.
    var applications: [(id: String, rule: Int)]

    static func == (a: SessionKeys, b: SessionKeys) -> Bool {
        a.n3 == b.n3 && a.ueIPv4 == b.ueIPv4 && a.ueIPv6 == b.ueIPv6 && a.engines.map(\.id) == b.engines.map(\.id)
            && a.applications.map(\.id) == b.applications.map(\.id)
    }
}

/// The checks of one object on its own (cross references and collisions are `PolicyState`'s).
///
/// Paths are taken as autoclosures and only put together for an error: a session passes through
/// these checks on every put, and building its dozens of paths cost more than the checks.
enum Check {
    typealias Code = PolicyError.Code
    typealias Path = () -> String

    static func fail(_ code: String, _ path: String, _ message: String) -> PolicyError {
        PolicyError(code: code, message: message, path: path)
    }

    static func join(_ path: String, _ field: String) -> String { path.isEmpty ? field : "\(path).\(field)" }

    /// `rules[3]` under `path`.
    static func element(_ path: String, _ list: String, _ index: Int) -> String { "\(join(path, list))[\(index)]" }

    /// Engine and application ids: 1...64 characters of letters, digits, `.`, `_`, `-` (ASCII).
    static func identifier(_ id: String, _ path: @autoclosure Path, _ what: String) throws(PolicyError) {
        guard !id.isEmpty else { throw fail(Code.invalidField, path(), "\(what) id is empty") }
        guard id.utf8.count <= 64, id.utf8.allSatisfy({ byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"): true
            default: false
            }
        }) else {
            throw fail(Code.invalidField, path(), "\(what) id '\(id)' must be 1 to 64 letters, digits, '.', '_' or '-'")
        }
    }

    static func address(_ text: String, _ path: @autoclosure Path) throws(PolicyError) -> IPAddress {
        guard let address = IPAddress(text) else {
            throw fail(Code.invalidAddress, path(), "'\(text)' is not an IPv4 or IPv6 address")
        }
        return address
    }

    static func prefix(_ text: String, _ path: @autoclosure Path) throws(PolicyError) -> IPPrefix {
        switch IPPrefix.parse(text) {
        case .success(let prefix): return prefix
        case .failure(.address(let message)): throw fail(Code.invalidAddress, path(), message)
        case .failure(.length(let message)), .failure(.hostBits(let message)): throw fail(Code.invalidPrefix, path(), message)
        }
    }

    static func teid(_ teid: UInt32, _ path: @autoclosure Path) throws(PolicyError) {
        if teid == 0 { throw fail(Code.outOfRange, path(), "TEID 0 is reserved and cannot identify a tunnel") }
    }

    static func qfi(_ qfi: UInt8, _ path: @autoclosure Path) throws(PolicyError) {
        guard (1...63).contains(qfi) else { throw fail(Code.outOfRange, path(), "QFI \(qfi) is out of range 1...63") }
    }

    static func fteid(_ fteid: FTEID, _ path: @autoclosure Path) throws(PolicyError) -> N3Key {
        try teid(fteid.teid, join(path(), "teid"))
        return N3Key(teid: fteid.teid, address: try address(fteid.address, join(path(), "address")))
    }

    static func ports(_ ranges: [PortRange], _ path: @autoclosure Path) throws(PolicyError) {
        for (i, range) in ranges.enumerated() where range.low > range.high {
            throw fail(Code.invalidRange, "\(path())[\(i)]",
                       "port range \(range.low)-\(range.high) is reversed (write \(range.high)-\(range.low))")
        }
    }

    static let portProtocols: Set<UInt8> = [6, 17, 132]

    /// Prefixes, port ranges and protocol of a filter or an application (`side`: `source` or
    /// `destination`, the fields' prefix under `path`). Returns the address families of the
    /// prefixes (v4, v6).
    static func destinations(prefixes: [String], ports: [PortRange], protocol proto: UInt8?, side: String,
                             _ path: @autoclosure Path) throws(PolicyError) -> (v4: Bool, v6: Bool) {
        var v4 = false, v6 = false
        for (i, text) in prefixes.enumerated() {
            let p = try prefix(text, "\(join(path(), side + "_prefixes"))[\(i)]")
            if p.isIPv4 { v4 = true } else { v6 = true }
        }
        try Check.ports(ports, join(path(), side + "_ports"))
        if let proto, !ports.isEmpty, !portProtocols.contains(proto) {
            throw fail(Code.invalidFilter, join(path(), "protocol"),
                       "port ranges only match TCP (6), UDP (17) or SCTP (132), not protocol \(proto)")
        }
        return (v4, v6)
    }

    /// An SDF filter. Every field empty = match all (allowed).
    static func filter(_ f: SDFFilter, _ path: @autoclosure Path, _ limits: PolicyLimits) throws(PolicyError) {
        let entries = f.sourcePrefixes.count + f.destinationPrefixes.count + f.sourcePorts.count + f.destinationPorts.count
        if entries > limits.maxFilterEntries {
            throw fail(Code.tableFull, path(),
                       "filter has \(entries) prefixes and port ranges, more than the limit of \(limits.maxFilterEntries)")
        }
        let source = try destinations(prefixes: f.sourcePrefixes, ports: f.sourcePorts, protocol: f.protocol, side: "source", path())
        let destination = try destinations(prefixes: f.destinationPrefixes, ports: f.destinationPorts, protocol: f.protocol,
                                           side: "destination", path())
        if !f.sourcePrefixes.isEmpty && !f.destinationPrefixes.isEmpty
            && !(source.v4 && destination.v4) && !(source.v6 && destination.v6) {
            throw fail(Code.invalidFilter, path(),
                       "source and destination prefixes are of different address families: the filter can never match")
        }
        if let tos = f.tos {
            if tos.mask == 0 {
                throw fail(Code.invalidFilter, join(path(), "tos.mask"), "a TOS mask of 0 matches everything; leave tos out")
            }
            if tos.value & ~tos.mask != 0 {
                throw fail(Code.invalidFilter, join(path(), "tos.value"),
                           "TOS value \(tos.value) has bits outside mask \(tos.mask): the filter can never match")
            }
        }
    }

    static func application(_ a: Application, _ path: @autoclosure Path, _ limits: PolicyLimits) throws(PolicyError) {
        try identifier(a.id, join(path(), "id"), "application")
        if a.destinationPrefixes.isEmpty && a.destinationPorts.isEmpty && a.protocol == nil {
            throw fail(Code.invalidFilter, path(),
                       "application '\(a.id)' matches everything: give destination_prefixes, destination_ports or protocol")
        }
        let entries = a.destinationPrefixes.count + a.destinationPorts.count
        if entries > limits.maxFilterEntries {
            throw fail(Code.tableFull, path(),
                       "application has \(entries) prefixes and port ranges, more than the limit of \(limits.maxFilterEntries)")
        }
        _ = try destinations(prefixes: a.destinationPrefixes, ports: a.destinationPorts, protocol: a.protocol,
                             side: "destination", path())
    }

    static func engine(_ e: Engine, _ path: @autoclosure Path) throws(PolicyError) {
        try identifier(e.id, join(path(), "id"), "engine")
        if e.instances.isEmpty {
            throw fail(Code.invalidField, join(path(), "instances"), "engine '\(e.id)' needs at least one instance")
        }
        var seen: [IPAddress: Int] = [:]
        for (i, instance) in e.instances.enumerated() {
            func p() -> String { element(path(), "instances", i) }
            if instance.port.isEmpty { throw fail(Code.invalidField, join(p(), "port"), "the port is empty") }
            let a = try address(instance.address, join(p(), "address"))
            if let earlier = seen[a] {
                throw fail(Code.duplicateID, join(p(), "address"),
                           "address \(a) is already instances[\(earlier)] of engine '\(e.id)'")
            }
            seen[a] = i
            if let mac = instance.mac, MACAddress(mac) == nil {
                throw fail(Code.invalidAddress, join(p(), "mac"), "'\(mac)' is not a MAC address like 02:00:00:00:00:01")
            }
        }
        if let probe = e.probe {
            func p() -> String { join(path(), "probe") }
            if probe.port == 0 { throw fail(Code.outOfRange, join(p(), "port"), "probe port 0 is out of range 1...65535") }
            if !(10...3_600_000).contains(probe.intervalMs) {
                throw fail(Code.outOfRange, join(p(), "interval_ms"),
                           "probe interval \(probe.intervalMs) ms is out of range 10...3600000")
            }
            if let timeout = probe.timeoutMs, !(1...probe.intervalMs).contains(timeout) {
                throw fail(Code.outOfRange, join(p(), "timeout_ms"),
                           "probe timeout \(timeout) ms is out of range 1...\(probe.intervalMs) (at most interval_ms)")
            }
            if let failures = probe.failuresBeforeDown, !(1...100).contains(failures) {
                throw fail(Code.outOfRange, join(p(), "failures_before_down"),
                           "failures_before_down \(failures) is out of range 1...100")
            }
            switch probe.kind {
            case .http:
                guard let probePath = probe.path else {
                    throw fail(Code.missingField, join(p(), "path"), "an http probe needs a path such as /health")
                }
                if !probePath.hasPrefix("/") || probePath.contains(where: { $0 == " " || $0.isNewline }) {
                    throw fail(Code.invalidField, join(p(), "path"), "'\(probePath)' is not an HTTP path such as /health")
                }
            case .tcp:
                if probe.path != nil { throw fail(Code.invalidField, join(p(), "path"), "a tcp probe has no path") }
            }
        }
    }

    /// Ids must be unique within their list. Lists of a session are short (a handful of rules):
    /// comparing with the ids before is cheaper than hashing, up to `linearUniqueLimit` entries.
    /// `id` reads the id through a pointer into the list: handed an element, even from the list's
    /// buffer, the call copied it (a rule: a retain and a release of each of its lists and strings).
    static func unique<T, ID: Hashable & CustomStringConvertible>(_ list: [T], _ id: (UnsafePointer<T>) -> ID,
                                                                  _ path: @autoclosure Path,
                                                                  _ what: String) throws(PolicyError) {
        // The ids once, read in place: `id(list[j])` copied an element per call.
        let ids = list.withUnsafeBufferPointer { buffer in (0..<buffer.count).map { id(buffer.baseAddress! + $0) } }
        func duplicate(_ i: Int, _ earlier: Int) -> PolicyError {
            let path = path()
            return fail(Code.duplicateID, "\(path)[\(i)].id",
                        "\(what) id \(ids[i]) is used twice (\(path)[\(earlier)] and \(path)[\(i)])")
        }
        if ids.count <= linearUniqueLimit {
            for i in ids.indices.dropFirst() {
                if let earlier = ids[..<i].firstIndex(of: ids[i]) { throw duplicate(i, earlier) }
            }
            return
        }
        var seen: [ID: Int] = [:]
        seen.reserveCapacity(ids.count)
        for (i, value) in ids.enumerated() {
            if let earlier = seen.updateValue(i, forKey: value) { throw duplicate(i, earlier) }
        }
    }

    static let linearUniqueLimit = 16

    /// Everything about a session that does not depend on other sessions, engines or applications.
    static func session(_ s: Session, _ path: @autoclosure Path, _ limits: PolicyLimits) throws(PolicyError) -> SessionKeys {
        if s.seid == 0 { throw fail(Code.outOfRange, join(path(), "seid"), "SEID 0 is reserved (it addresses the node, not a session)") }
        var ueIPv4: IPAddress?
        if let text = s.ueIPv4 {
            func p() -> String { join(path(), "ue_ipv4") }
            let prefix = try prefix(text, p())
            guard prefix.isIPv4 else { throw fail(Code.invalidAddress, p(), "'\(text)' is not an IPv4 address (IPv6 goes in ue_ipv6)") }
            guard prefix.familyLength == 32 else {
                throw fail(Code.invalidPrefix, p(), "'\(text)': a UE IPv4 address is one address (/32)")
            }
            ueIPv4 = prefix.address
        }
        var ueIPv6: IPPrefix?
        if let text = s.ueIPv6 {
            func p() -> String { join(path(), "ue_ipv6") }
            let prefix = try prefix(text, p())
            guard !prefix.isIPv4 && text.utf8.contains(UInt8(ascii: ":")) else {
                throw fail(Code.invalidAddress, p(), "'\(text)' is not an IPv6 address or prefix (IPv4 goes in ue_ipv4)")
            }
            guard prefix.length >= 64 else {
                throw fail(Code.invalidPrefix, p(), "'\(text)': a UE IPv6 prefix is /64 to /128 (TS 23.501 gives a UE a /64)")
            }
            ueIPv6 = prefix
        }
        let n3 = try fteid(s.n3, join(path(), "n3"))
        if let gnb = s.gnb { _ = try fteid(gnb, join(path(), "gnb")) }
        try qfi(s.defaultQFI, join(path(), "default_qfi"))

        if s.rules.isEmpty { throw fail(Code.invalidField, join(path(), "rules"), "session \(s.seid) has no rules: give at least one") }
        for (list, count) in [("rules", s.rules.count), ("actions", s.actions.count), ("qos", s.qos.count),
                              ("counters", s.counters.count)] where count > limits.maxRulesPerSession {
            throw fail(Code.tableFull, join(path(), list),
                       "\(list) table of session \(s.seid) full: \(count) given, the limit is \(limits.maxRulesPerSession)")
        }
        try unique(s.rules, { $0.pointee.id }, join(path(), "rules"), "rule")
        try unique(s.actions, { $0.pointee.id }, join(path(), "actions"), "action")
        try unique(s.qos, { $0.pointee.id }, join(path(), "qos"), "qos")
        try unique(s.counters, { $0.pointee.id }, join(path(), "counters"), "counter")

        var engines: [(id: String, action: Int)] = []
        for (i, action) in s.actions.enumerated() {
            func p() -> String { element(path(), "actions", i) }
            switch action.kind {
            case .steer(let engine):
                try identifier(engine, join(p(), "engine"), "engine")
                if !engines.contains(where: { $0.id == engine }) { engines.append((engine, i)) }
            case .forwardN9(let peer, let teid):
                _ = try address(peer, join(p(), "peer"))
                try Check.teid(teid, join(p(), "teid"))
            case .buffer(let limit):
                if !(1...65536).contains(limit) {
                    throw fail(Code.outOfRange, join(p(), "limit"), "buffer limit \(limit) is out of range 1...65536 packets")
                }
            case .forwardN3:
                if s.gnb == nil {
                    throw fail(Code.missingField, join(path(), "gnb"),
                               "action \(action.id) forwards to N3 but session \(s.seid) has no gnb F-TEID (buffer until it is known)")
                }
            case .forwardN6, .drop:
                break
            }
        }
        var metered = 0
        for (i, q) in s.qos.enumerated() {
            func p() -> String { element(path(), "qos", i) }
            if let value = q.qfi { try qfi(value, join(p(), "qfi")) }
            if q.mbrUplinkKbps != nil || q.mbrDownlinkKbps != nil {
                metered += 1
                if metered > CompiledQoS.maxMetersPerSession {
                    throw fail(Code.tableFull, p(), "session \(s.seid) has more than \(CompiledQoS.maxMetersPerSession) QERs "
                               + "with an MBR (the data path keeps \(CompiledQoS.maxMetersPerSession) meters per session)")
                }
            }
            if q.mbrUplinkKbps == 0 {
                throw fail(Code.outOfRange, join(p(), "mbr_uplink_kbps"), "an MBR of 0 is out of range: close the gate instead")
            }
            if q.mbrDownlinkKbps == 0 {
                throw fail(Code.outOfRange, join(p(), "mbr_downlink_kbps"), "an MBR of 0 is out of range: close the gate instead")
            }
        }
        for (i, counter) in s.counters.enumerated() where counter.volumeThresholdBytes == 0 {
            throw fail(Code.outOfRange, "\(element(path(), "counters", i)).volume_threshold_bytes",
                       "a volume threshold of 0 bytes is out of range: leave it out for no threshold")
        }

        var applications: [(id: String, rule: Int)] = []
        // The rules in place (`rule` points into the array): a `for` over `s.rules` copied each
        // one, a retain and a release of each of its lists and strings.
        try s.rules.withUnsafeBufferPointer { (rules) throws(PolicyError) in
            for i in rules.indices {
                let rule = rules.baseAddress! + i
                func p() -> String { element(path(), "rules", i) }
                // The first action with the id (ids are unique, checked above).
                guard let kind = s.actions.first(where: { $0.id == rule.pointee.action })?.kind else {
                    throw fail(Code.danglingReference, join(p(), "action"),
                               "rule \(rule.pointee.id) names action \(rule.pointee.action), which session \(s.seid) does not define"
                               + " (actions: \(s.actions.map { String($0.id) }.joined(separator: ", ")))")
                }
                if rule.pointee.source == .engine, kind.engine != nil {
                    throw fail(Code.invalidField, join(p(), "action"),
                               "rule \(rule.pointee.id) matches traffic coming back from an engine and cannot steer it to an engine again")
                }
                if let q = rule.pointee.qos, !s.qos.contains(where: { $0.id == q }) {
                    throw fail(Code.danglingReference, join(p(), "qos"),
                               "rule \(rule.pointee.id) names qos \(q), which session \(s.seid) does not define")
                }
                // Long lists (a rule's counters are not bounded by the limits) are checked with sets.
                let hashed = rule.pointee.counters.count > linearUniqueLimit
                let counterIDs = hashed ? Set(s.counters.map(\.id)) : []
                var seen = Set<UInt32>()
                for (j, counter) in rule.pointee.counters.enumerated() {
                    if hashed ? !counterIDs.contains(counter) : !s.counters.contains(where: { $0.id == counter }) {
                        throw fail(Code.danglingReference, "\(join(p(), "counters"))[\(j)]",
                                   "rule \(rule.pointee.id) names counter \(counter), which session \(s.seid) does not define")
                    }
                    if hashed ? !seen.insert(counter).inserted : rule.pointee.counters[..<j].contains(counter) {
                        throw fail(Code.duplicateID, "\(join(p(), "counters"))[\(j)]", "rule \(rule.pointee.id) names counter \(counter) twice")
                    }
                }
                if let value = rule.pointee.qfi { try qfi(value, join(p(), "qfi")) }
                if let app = rule.pointee.application {
                    try identifier(app, join(p(), "application"), "application")
                    if !applications.contains(where: { $0.id == app }) { applications.append((app, i)) }
                }
                if let match = rule.pointee.match { try filter(match, join(p(), "match"), limits) }
            }
        }

        return SessionKeys(n3: n3, ueIPv4: ueIPv4, ueIPv6: ueIPv6, engines: engines, applications: applications)
    }
}
