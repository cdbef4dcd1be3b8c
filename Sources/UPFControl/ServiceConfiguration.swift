// upfd's configuration file (YAML). Every field is optional and has the default shown in
// `ServiceConfiguration.defaultYAML`; unknown fields and bad values stop start-up with the path of
// the field, so a typo never silently runs with a default.

import Foundation
import Logging
import NIOCore
import UPFPolicy

public struct ServiceConfiguration: Sendable, Equatable {
    public struct Control: Sendable, Equatable {
        public var socket = "/run/upfd/control.sock"
        /// Names or numeric uids. Root and the service's own user are always allowed.
        public var allowedUsers: [String] = []
        /// Group given access to the socket (mode 0660) so that allowed users other than the
        /// owner can reach it; nil = owner only (0600).
        public var socketGroup: String?
        public var maxLineBytes = 1 << 20
        public var idleTimeoutSeconds: Double = 30
        public var maxClients = 64
        public var eventQueue = 1024
        /// CPUs for the control plane's threads (socket I/O, policy, snapshots); empty = where
        /// EAL leaves them, the main lcore's CPU (`ThreadAffinity`).
        public var cpus: [Int] = []
    }

    /// The Prometheus endpoint (docs/observability.md); off unless `metrics.listen` is set.
    public struct Metrics: Sendable, Equatable {
        /// `ADDRESS:PORT`, a literal address; nil = no endpoint.
        public var listen: String?
        /// Permits a non-loopback `listen` (the endpoint has no authentication or TLS).
        public var allowRemote = false
    }

    public var control = Control()
    public var metrics = Metrics()
    public var stateFile = "/var/lib/upfd/state.json"
    public var limits = PolicyLimits()
    public var logLevel = Logger.Level.info
    /// EAL, ports, workers: the DPDK data path.
    public var dataplane = DataplaneConfiguration()

    public init() {}

    /// The configuration used when `upfd` is started without `--config`.
    public static let defaultYAML = """
        # upfd configuration. Every field is optional; these are the defaults.
        control:
          socket: /run/upfd/control.sock   # Unix socket; its directory is created 0750 when missing
          allowed_users: []                # names or uids besides root and upfd's own user
          # socket_group: upfctl           # lets allowed_users reach the socket (0660 instead of 0600)
          max_line_bytes: 1048576          # longest request line
          idle_timeout_seconds: 30         # a client with no complete request for this long is closed
          max_clients: 64                  # concurrent connections
          event_queue: 1024                # events held per `events` subscriber before dropping
          cpus: []                         # CPUs for the control threads; [] = the EAL main lcore's CPU
        state_file: /var/lib/upfd/state.json  # applied policy; <state_file>.journal beside it
        metrics:                           # Prometheus endpoint (GET /metrics); off unless listen is set
          # listen: "127.0.0.1:9464"       # a literal loopback address and port
          allow_remote: false              # true permits a non-loopback address (no auth, no TLS: see docs)
        limits:
          max_sessions: 1000000
          max_rules_per_session: 64
          max_engines: 256
          max_applications: 1024
          max_filter_entries: 32
        log_level: info                    # trace, debug, info, notice, warning, error, critical

        # The data path (docs/configuration.md). This default runs anywhere: three net_null ports
        # that receive nothing and discard what is sent, so upfd starts on any machine and serves
        # the control socket; real deployments name PCI devices (eal.pci) or other virtual devices.
        eal:
          lcores: "0,1"                    # the first is the main lcore (control), the rest are workers
          memory_mb: 512
          huge_pages: false                # true for production (hugepages mounted)
          pci: []                          # PCI devices to use; empty = --no-pci (never probe the host's NICs)
          vdevs: ["net_null0,no-rx=1", "net_null1,no-rx=1", "net_null2,no-rx=1"]
        ports:
          - { name: n3, device: net_null0, role: n3, ipv4: 192.0.2.1, next_hop_mac: "02:00:00:00:01:01" }
          - { name: core, device: net_null1, role: core, ipv4: 203.0.113.2, next_hop_mac: "02:00:00:00:02:01" }
          - { name: engines, device: net_null2, role: engine, ipv4: 192.168.50.1 }
        workers:
          burst: 32
          tx_drain_us: 100
          idle_rounds: 1024                # nap after this many empty polls (0 = busy-poll: dedicated cores)
          idle_sleep_us: 100
        mbufs: 16383
        rule_counters_per_session: 8
        gtpu:                              # path management (TS 29.281 §7)
          error_indications_per_peer: 10   # per second, per GTP-U peer (0 = never send one)
          error_indications_total: 1000    # per second, whatever the peers
        neighbors:                         # next hops given as ports[].next_hop (resolved by ARP/ND)
          retry_ms: 1000                   # between requests while unresolved or refreshing
          refresh_s: 30                    # ask again when not heard from for this long
          expiry_s: 90                     # forget (drop as next_hop_unresolved) after this long
        qos:
          burst_ms: 10                     # MBR burst tolerance (GCRA): how far ahead of the rate a meter may run
        health:
          link_interval_ms: 500            # how often engine ports' link state is read (0 = never)

        """

    /// Reads and checks a configuration file. Errors name the file and the field.
    public static func load(path: String) throws(ConfigurationError) -> ServiceConfiguration {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigurationError(source: path, path: "", message: "no such file")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError(source: path, path: "", message: "cannot read: \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(source: path, path: "", message: "not valid UTF-8")
        }
        return try parse(yaml: text, source: path)
    }

    public static func parse(yaml: String, source: String = "configuration") throws(ConfigurationError) -> ServiceConfiguration {
        if yaml.allSatisfy({ $0.isWhitespace }) { return ServiceConfiguration() }
        let config: ServiceConfiguration
        do {
            config = try PolicyCoding.decode(ServiceConfiguration.self, yaml: yaml)
        } catch {
            // A file of comments only is an empty document: all defaults.
            if error.code == PolicyError.Code.emptyDocument { return ServiceConfiguration() }
            throw ConfigurationError(source: source, path: error.path, message: error.message)
        }
        try config.check(source: source)
        return config
    }

    /// Range checks that decoding cannot express.
    func check(source: String) throws(ConfigurationError) {
        func fail(_ path: String, _ message: String) -> ConfigurationError {
            ConfigurationError(source: source, path: path, message: message)
        }
        guard !control.socket.isEmpty else { throw fail("control.socket", "must not be empty") }
        guard control.socket.utf8.count < UnixSocket.maxPathLength else {
            throw fail("control.socket", "longer than \(UnixSocket.maxPathLength - 1) bytes (a Unix socket path limit)")
        }
        for (i, user) in control.allowedUsers.enumerated() where Accounts.uid(of: user) == nil {
            throw fail("control.allowed_users[\(i)]", "no such user '\(user)'")
        }
        if let group = control.socketGroup, Accounts.gid(of: group) == nil {
            throw fail("control.socket_group", "no such group '\(group)'")
        }
        guard (64...(256 << 20)).contains(control.maxLineBytes) else {
            throw fail("control.max_line_bytes", "must be in 64...\(256 << 20)")
        }
        guard control.idleTimeoutSeconds.isFinite, (0.05...86_400).contains(control.idleTimeoutSeconds) else {
            throw fail("control.idle_timeout_seconds", "must be in 0.05...86400")
        }
        guard (1...100_000).contains(control.maxClients) else { throw fail("control.max_clients", "must be in 1...100000") }
        guard (1...1_000_000).contains(control.eventQueue) else { throw fail("control.event_queue", "must be in 1...1000000") }
        let configuredCPUs = Int(sysconf(Int32(_SC_NPROCESSORS_CONF)))
        for (i, cpu) in control.cpus.enumerated() {
            guard cpu >= 0, cpu < configuredCPUs, cpu <= ThreadAffinity.maxCPU else {
                throw fail("control.cpus[\(i)]", "CPU \(cpu) does not exist (this machine has CPUs 0...\(configuredCPUs - 1))")
            }
            guard !control.cpus[..<i].contains(cpu) else { throw fail("control.cpus[\(i)]", "CPU \(cpu) is listed twice") }
        }
        if metrics.listen != nil { _ = try metricsEndpoint(source: source) }
        guard !stateFile.isEmpty, !stateFile.hasSuffix("/") else { throw fail("state_file", "must name a file") }
        let positive: [(String, Int)] = [
            ("limits.max_sessions", limits.maxSessions), ("limits.max_rules_per_session", limits.maxRulesPerSession),
            ("limits.max_engines", limits.maxEngines), ("limits.max_applications", limits.maxApplications),
            ("limits.max_filter_entries", limits.maxFilterEntries),
        ]
        for (path, value) in positive where value < 1 { throw fail(path, "must be at least 1") }
        // The session tables reserve their memory up front (about 230 bytes per session).
        guard limits.maxSessions <= 1 << 30 else { throw fail("limits.max_sessions", "must be at most \(1 << 30)") }
        try dataplane.check(fail: fail)
    }

    /// Where the metrics endpoint listens; nil when it is off.
    public func metricsEndpoint(source: String = "configuration") throws(ConfigurationError) -> MetricsEndpoint? {
        guard let listen = metrics.listen else { return nil }
        switch MetricsEndpoint.parse(listen, allowRemote: metrics.allowRemote) {
        case .success(let endpoint): return endpoint
        case .failure(let error): throw ConfigurationError(source: source, path: "metrics.listen", message: error.description)
        }
    }

    /// The server's settings, with users and group resolved.
    public func serverConfiguration() -> ControlServerConfiguration {
        let uids = Set(control.allowedUsers.compactMap(Accounts.uid(of:)))
        return ControlServerConfiguration(
            socketPath: control.socket,
            access: AccessPolicy(allowedUIDs: uids),
            permissions: SocketPermissions(group: control.socketGroup.flatMap(Accounts.gid(of:))),
            maxLineBytes: control.maxLineBytes,
            idleTimeout: .nanoseconds(Int64(control.idleTimeoutSeconds * 1e9)),
            maxClients: control.maxClients,
            eventQueueCapacity: control.eventQueue)
    }
}

/// A configuration problem: the file, the field and what is wrong.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var source: String
    public var path: String
    public var message: String
    public var description: String {
        path.isEmpty ? "\(source): \(message)" : "\(source): field \(path): \(message)"
    }
}

// MARK: - Decoding

struct ConfigKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Refuses keys that are not in `known` with the same code and path style as the policy model.
func rejectUnknown(_ decoder: any Decoder, _ known: [String]) throws {
    let container = try decoder.container(keyedBy: ConfigKey.self)
    for key in container.allKeys.map(\.stringValue).sorted() where !known.contains(key) {
        let base = decoder.codingPath.map(\.stringValue).joined(separator: ".")
        throw PolicyError(code: PolicyError.Code.unknownField,
                          message: "unknown field '\(key)' (expected one of: \(known.joined(separator: ", ")))",
                          path: base.isEmpty ? key : base + "." + key)
    }
}

extension ServiceConfiguration: Decodable {
    public init(from decoder: any Decoder) throws {
        try rejectUnknown(decoder, ["control", "metrics", "state_file", "limits", "log_level", "eal", "ports", "workers", "mbufs",
                                    "rule_counters_per_session", "gtpu", "neighbors", "qos", "health", "buffering"])
        let c = try decoder.container(keyedBy: ConfigKey.self)
        self.init()
        control = try c.decodeIfPresent(Control.self, forKey: ConfigKey("control")) ?? Control()
        metrics = try c.decodeIfPresent(Metrics.self, forKey: ConfigKey("metrics")) ?? Metrics()
        stateFile = try c.decodeIfPresent(String.self, forKey: ConfigKey("state_file")) ?? stateFile
        limits = try c.decodeIfPresent(PolicyLimits.self, forKey: ConfigKey("limits")) ?? limits
        if let level = try c.decodeIfPresent(String.self, forKey: ConfigKey("log_level")) {
            guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
                throw PolicyError(code: PolicyError.Code.invalidField,
                                  message: "'\(level)' is not one of: \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))",
                                  path: "log_level")
            }
            logLevel = parsed
        }
        // A file without a data-path section runs the default one (net_null ports).
        if let eal = try c.decodeIfPresent(DataplaneConfiguration.EAL.self, forKey: ConfigKey("eal")) { dataplane.eal = eal }
        if let ports = try c.decodeIfPresent([DataplaneConfiguration.Port].self, forKey: ConfigKey("ports")) {
            dataplane.ports = ports
        }
        if let workers = try c.decodeIfPresent(DataplaneConfiguration.Workers.self, forKey: ConfigKey("workers")) {
            dataplane.workers = workers
        }
        dataplane.gtpu = try c.decodeIfPresent(DataplaneConfiguration.PathManagement.self, forKey: ConfigKey("gtpu")) ?? dataplane.gtpu
        dataplane.neighbors = try c.decodeIfPresent(DataplaneConfiguration.Neighbors.self, forKey: ConfigKey("neighbors"))
            ?? dataplane.neighbors
        if let qos = try c.decodeIfPresent(DataplaneConfiguration.QoS.self, forKey: ConfigKey("qos")) { dataplane.qos = qos }
        if let health = try c.decodeIfPresent(DataplaneConfiguration.Health.self, forKey: ConfigKey("health")) {
            dataplane.health = health
        }
        if let buffering = try c.decodeIfPresent(DataplaneConfiguration.Buffering.self, forKey: ConfigKey("buffering")) {
            dataplane.buffering = buffering
        }
        dataplane.mbufs = try c.decodeIfPresent(Int.self, forKey: ConfigKey("mbufs")) ?? dataplane.mbufs
        dataplane.ruleCountersPerSession = try c.decodeIfPresent(Int.self, forKey: ConfigKey("rule_counters_per_session"))
            ?? dataplane.ruleCountersPerSession
    }
}

extension ServiceConfiguration.Metrics: Decodable {
    public init(from decoder: any Decoder) throws {
        try rejectUnknown(decoder, ["listen", "allow_remote"])
        let c = try decoder.container(keyedBy: ConfigKey.self)
        self.init()
        listen = try c.decodeIfPresent(String.self, forKey: ConfigKey("listen"))
        allowRemote = try c.decodeIfPresent(Bool.self, forKey: ConfigKey("allow_remote")) ?? false
    }
}

extension ServiceConfiguration.Control: Decodable {
    public init(from decoder: any Decoder) throws {
        let keys = ["socket", "allowed_users", "socket_group", "max_line_bytes", "idle_timeout_seconds", "max_clients", "event_queue",
                    "cpus"]
        try rejectUnknown(decoder, keys)
        let c = try decoder.container(keyedBy: ConfigKey.self)
        self.init()
        socket = try c.decodeIfPresent(String.self, forKey: ConfigKey("socket")) ?? socket
        allowedUsers = try c.decodeIfPresent([String].self, forKey: ConfigKey("allowed_users")) ?? []
        socketGroup = try c.decodeIfPresent(String.self, forKey: ConfigKey("socket_group"))
        maxLineBytes = try c.decodeIfPresent(Int.self, forKey: ConfigKey("max_line_bytes")) ?? maxLineBytes
        idleTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: ConfigKey("idle_timeout_seconds")) ?? idleTimeoutSeconds
        maxClients = try c.decodeIfPresent(Int.self, forKey: ConfigKey("max_clients")) ?? maxClients
        eventQueue = try c.decodeIfPresent(Int.self, forKey: ConfigKey("event_queue")) ?? eventQueue
        cpus = try c.decodeIfPresent([Int].self, forKey: ConfigKey("cpus")) ?? []
    }
}
