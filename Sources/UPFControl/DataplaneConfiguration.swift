// The data-path part of upfd's configuration: EAL, ports with their roles and addresses, workers.
// Like the rest of the file, every field is checked at start-up and a bad one names its path.

import UPFDatapath
import UPFPackets
import UPFPolicy

public struct DataplaneConfiguration: Sendable, Equatable {
    /// The DPDK Environment Abstraction Layer's arguments, in named form.
    public struct EAL: Sendable, Equatable {
        /// Logical cores (`-l`): the main lcore runs the control thread, the others are workers.
        public var lcores = "0,1"
        /// `--main-lcore`; nil = the first of `lcores`.
        public var mainLcore: Int?
        /// `-m`: memory in MiB.
        public var memoryMB = 512
        /// false adds `--no-huge` (anywhere, slower); true needs hugepages mounted.
        public var hugePages = false
        /// PCI devices to use (`-a`). Empty adds `--no-pci`: the machine's own NICs are never probed.
        public var pci: [String] = []
        /// Virtual devices (`--vdev`), e.g. `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`.
        public var vdevs: [String] = ["net_null0,no-rx=1", "net_null1,no-rx=1", "net_null2,no-rx=1"]
        /// Passed to EAL last, unchanged.
        public var extraArgs: [String] = []
        /// `--file-prefix`; nil = `--no-shconf` (no shared runtime files; one process per prefix).
        public var filePrefix: String?
        /// DPDK telemetry (`/var/run/dpdk/<file_prefix>/dpdk_telemetry.v2`, read by
        /// `dpdk-telemetry.py`): port statistics straight from the drivers, served by an EAL
        /// control thread off the workers' cores. Needs `file_prefix` (its own runtime directory).
        public var telemetry = false
    }

    public struct Port: Sendable, Equatable {
        /// The name the policy's engine instances and the stats use.
        public var name: String
        /// The DPDK device name (a `--vdev` name such as `net_pcap0`, or a PCI address).
        public var device: String
        public var role: PortRole
        public var ipv4: String?
        public var ipv6: String?
        /// Source MAC of frames sent on the port; nil = the device's own.
        public var mac: String?
        /// The next hop's MAC (gNB side router, central UPF / DN gateway), when it is static.
        public var nextHopMAC: String?
        /// The next hop's IP address, when its MAC is to be resolved by ARP (IPv4) or Neighbour
        /// Discovery (IPv6). Exclusive with `nextHopMAC`.
        public var nextHop: String?
        public var ringSize = 1024

        public init(name: String, device: String, role: PortRole, ipv4: String? = nil, ipv6: String? = nil,
                    mac: String? = nil, nextHopMAC: String? = nil, nextHop: String? = nil, ringSize: Int = 1024) {
            self.name = name
            self.device = device
            self.role = role
            self.ipv4 = ipv4
            self.ipv6 = ipv6
            self.mac = mac
            self.nextHopMAC = nextHopMAC
            self.nextHop = nextHop
            self.ringSize = ringSize
        }
    }

    public struct Workers: Sendable, Equatable {
        /// Worker lcores; nil = every lcore of `eal.lcores` but the main one.
        public var lcores: [Int]?
        public var burst = 32
        public var txDrainMicroseconds = 100
        /// Consecutive empty poll rounds before a nap (0 = never nap: dedicated cores).
        public var idleRounds = 1024
        public var idleSleepMicroseconds = 100
    }

    /// The default ports: idle `net_null` devices (see `ServiceConfiguration.defaultYAML`).
    public static let defaultPorts: [Port] = [
        Port(name: "n3", device: "net_null0", role: .n3, ipv4: "192.0.2.1", nextHopMAC: "02:00:00:00:01:01"),
        Port(name: "core", device: "net_null1", role: .core, ipv4: "203.0.113.2", nextHopMAC: "02:00:00:00:02:01"),
        Port(name: "engines", device: "net_null2", role: .engine, ipv4: "192.168.50.1"),
    ]

    /// GTP-U path management (TS 29.281 §7): how often Error Indications may be sent.
    public struct PathManagement: Sendable, Equatable {
        /// Error Indications per second to one peer (0 = never send any).
        public var errorIndicationsPerPeer: Double = 10
        /// Error Indications per second in total, whatever the peers (spoofed sources must not
        /// make the UPF a reflector).
        public var errorIndicationsTotal: Double = 1000
        /// A GTP-U peer whose path is supervised with Echo Requests (§7.2.1): its address and
        /// the port (name) it is reached on.
        public struct EchoPeer: Sendable, Equatable {
            public var address: String
            public var port: String
            public init(address: String, port: String) {
                self.address = address
                self.port = port
            }
        }
        public var echoPeers: [EchoPeer] = []
        /// Seconds between Echo Requests to each peer (T3-RESPONSE), and how many unanswered
        /// requests in a row make it down (N3-REQUESTS): a `peer_state` event either way.
        public var echoIntervalSeconds: Double = 60
        public var echoMisses = 3
    }

    /// Resolution of next hops given by address (`ports[].next_hop`).
    public struct Neighbors: Sendable, Equatable {
        public var retryMilliseconds = 1000
        public var refreshSeconds: Double = 30
        public var expirySeconds: Double = 90
    }

    /// QoS enforcement.
    public struct QoS: Sendable, Equatable {
        /// MBR burst tolerance: how far (in time) a meter's schedule may run ahead of real time,
        /// so that a sender at the rate whose packets arrive bunched (RX bursts, scheduling
        /// jitter upstream) is not cut. At rate R about R × burst more bytes pass in a burst.
        public var burstMilliseconds: Double = 10
    }

    /// Engine health checks (probes are configured per engine in the policy).
    public struct Health: Sendable, Equatable {
        /// How often each engine port's link state is read; 0 = never (links count as up).
        public var linkIntervalMilliseconds = 500
    }

    /// Packets held for sessions whose rule says `buffer` (each worker has its own store).
    public struct Buffering: Sendable, Equatable {
        /// Packets one worker may hold in all (0: `buffer` drops as `buffering_unavailable`).
        /// They come out of `mbufs`, which must cover them (checked).
        public var packetsPerWorker = 1024
        /// Sessions one worker may hold packets for at once.
        public var sessionsPerWorker = 256
        /// How long a packet may wait for its session to be updated to forward (`buffer_expired`).
        public var holdMilliseconds = 5000
    }

    public var eal = EAL()
    public var buffering = Buffering()
    public var qos = QoS()
    public var health = Health()
    public var ports: [Port] = DataplaneConfiguration.defaultPorts
    public var gtpu = PathManagement()
    public var neighbors = Neighbors()
    public var workers = Workers()
    /// Mbufs in the pool shared by every port (per NUMA socket).
    public var mbufs = 16383
    /// Rules counted per session (by evaluation position; later rules share the last counter).
    public var ruleCountersPerSession = 8

    public init() {}

    /// The EAL argument vector (after the program name).
    public func ealArguments() -> [String] {
        // "L@C" elements map lcores to CPUs (EAL's --lcores): more lcores than CPUs, e.g. two
        // workers on a two-core machine, "0@0,1@1,2@0".
        var args = eal.lcores.contains("@") ? ["--lcores", eal.lcores] : ["-l", eal.lcores]
        if let main = eal.mainLcore { args += ["--main-lcore", String(main)] }
        args += ["-m", String(eal.memoryMB)]
        if !eal.hugePages { args.append("--no-huge") }
        if let prefix = eal.filePrefix { args += ["--file-prefix", prefix] } else { args.append("--no-shconf") }
        if !eal.telemetry { args.append("--no-telemetry") }
        if eal.pci.isEmpty { args.append("--no-pci") } else { for device in eal.pci { args += ["-a", device] } }
        for vdev in eal.vdevs { args += ["--vdev", vdev] }
        return args + eal.extraArgs
    }

    /// The lcore ids of `eal.lcores` ("0-3", "0,2,4", "1-2,5").
    public static func parseLcoreList(_ text: String) -> [Int]? {
        var result: [Int] = []
        for element in text.split(separator: ",", omittingEmptySubsequences: false) {
            // "L@C": lcore L on CPU C (one CPU; CPU sets in parentheses are not taken).
            let pieces = element.split(separator: "@", omittingEmptySubsequences: false)
            guard pieces.count <= 2, pieces.count == 1 || (Int(pieces[1]).map { $0 >= 0 } ?? false) else { return nil }
            let part = pieces[0]
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingPrefix(" ")) }
            guard (1...2).contains(bounds.count), let low = bounds[0], let high = bounds.last!, low >= 0, high >= low,
                  high < 1024 else { return nil }
            result += Array(low...high)
        }
        return result.isEmpty ? nil : result
    }

    /// The data path's `PortTable` entries, in configuration order; `deviceMAC(i)` supplies the
    /// MAC of ports without `mac`.
    public func portInfos(deviceMAC: (Int) -> MACAddress) -> [PortInfo] {
        ports.enumerated().map { i, port in
            PortInfo(role: port.role, mac: port.mac.flatMap { MACAddress($0) } ?? deviceMAC(i),
                     ipv4: port.ipv4.flatMap { IPAddress($0) }.map(\.ipv4), ipv6: port.ipv6.flatMap { IPAddress($0) },
                     nextHop: port.nextHopMAC.flatMap { MACAddress($0) }, nextHopAddress: port.nextHop.flatMap { IPAddress($0) })
        }
    }

    /// Range and consistency checks that decoding cannot express.
    func check(fail: (String, String) -> ConfigurationError) throws(ConfigurationError) {
        guard let lcores = DataplaneConfiguration.parseLcoreList(eal.lcores) else {
            throw fail("eal.lcores", "'\(eal.lcores)' is not an lcore list such as \"0,1\" or \"0-3\"")
        }
        let main = eal.mainLcore ?? lcores[0]
        guard lcores.contains(main) else { throw fail("eal.main_lcore", "\(main) is not in eal.lcores") }
        if eal.telemetry && eal.filePrefix == nil {
            throw fail("eal.telemetry", "needs eal.file_prefix: the telemetry socket lives in that prefix's runtime directory")
        }
        guard (64...1_048_576).contains(eal.memoryMB) else { throw fail("eal.memory_mb", "must be in 64...1048576") }
        let workerLcores = workers.lcores ?? lcores.filter { $0 != main }
        guard !workerLcores.isEmpty else {
            throw fail("workers.lcores", "no worker lcore: eal.lcores needs one besides the main lcore (e.g. \"0,1\")")
        }
        for (i, lcore) in workerLcores.enumerated() where !lcores.contains(lcore) || lcore == main {
            throw fail("workers.lcores[\(i)]", "\(lcore) is not a worker lcore of eal.lcores '\(eal.lcores)'")
        }
        guard Set(workerLcores).count == workerLcores.count else { throw fail("workers.lcores", "lists an lcore twice") }
        guard (1...32).contains(workers.burst) else { throw fail("workers.burst", "must be in 1...32") }
        guard (1...100_000).contains(workers.txDrainMicroseconds) else { throw fail("workers.tx_drain_us", "must be in 1...100000") }
        guard workers.idleRounds >= 0 else { throw fail("workers.idle_rounds", "must not be negative") }
        guard (1...100_000).contains(workers.idleSleepMicroseconds) else { throw fail("workers.idle_sleep_us", "must be in 1...100000") }
        guard (1...PortTable.maxPorts).contains(ports.count) else {
            throw fail("ports", "needs 1...\(PortTable.maxPorts) ports (one with role n3)")
        }
        var names = Set<String>()
        for (i, port) in ports.enumerated() {
            let path = "ports[\(i)]"
            guard !port.name.isEmpty else { throw fail("\(path).name", "must not be empty") }
            guard names.insert(port.name).inserted else { throw fail("\(path).name", "'\(port.name)' is used twice") }
            guard !port.device.isEmpty else { throw fail("\(path).device", "must not be empty") }
            if let text = port.ipv4 {
                guard let a = IPAddress(text), a.isIPv4 else { throw fail("\(path).ipv4", "'\(text)' is not an IPv4 address") }
            }
            if let text = port.ipv6 {
                guard let a = IPAddress(text), !a.isIPv4 else { throw fail("\(path).ipv6", "'\(text)' is not an IPv6 address") }
            }
            if let text = port.mac, MACAddress(text) == nil { throw fail("\(path).mac", "'\(text)' is not a MAC address") }
            if let text = port.nextHopMAC, MACAddress(text) == nil {
                throw fail("\(path).next_hop_mac", "'\(text)' is not a MAC address")
            }
            if let text = port.nextHop {
                guard port.nextHopMAC == nil else {
                    throw fail("\(path).next_hop", "give either next_hop (resolved by ARP/ND) or next_hop_mac (static), not both")
                }
                guard let a = IPAddress(text) else { throw fail("\(path).next_hop", "'\(text)' is not an IP address") }
                guard a.isIPv4 ? port.ipv4 != nil : port.ipv6 != nil else {
                    throw fail("\(path).next_hop", "resolving \(a.isIPv4 ? "an IPv4" : "an IPv6") next hop needs the port's own \(a.isIPv4 ? "ipv4" : "ipv6") address")
                }
            }
            guard (64...32768).contains(port.ringSize) else { throw fail("\(path).ring_size", "must be in 64...32768") }
            if port.role == .n3 && port.ipv4 == nil && port.ipv6 == nil {
                throw fail("\(path)", "the n3 port needs ipv4 or ipv6: G-PDUs are recognised by their destination")
            }
        }
        let n3 = ports.filter { $0.role == .n3 }.count
        guard n3 == 1 else { throw fail("ports", "exactly one port must have role n3 (found \(n3))") }
        guard ports.filter({ $0.role == .core }).count <= 1 else { throw fail("ports", "at most one port may have role core") }
        // Rings and per-lcore caches hold mbufs too: too small a pool starves RX silently.
        let needed = ports.reduce(0) { $0 + $1.ringSize * 2 * workerLcores.count }
            + (1024 + buffering.packetsPerWorker) * workerLcores.count
        guard mbufs >= needed, mbufs <= 16_777_215 else {
            throw fail("mbufs", "must be in \(needed)...16777215 (ports' rings, bursts and buffering need \(needed))")
        }
        guard (1...64).contains(ruleCountersPerSession) else { throw fail("rule_counters_per_session", "must be in 1...64") }
        guard gtpu.errorIndicationsPerPeer.isFinite, (0...1_000_000).contains(gtpu.errorIndicationsPerPeer) else {
            throw fail("gtpu.error_indications_per_peer", "must be in 0...1000000 (per second)")
        }
        guard gtpu.errorIndicationsTotal.isFinite, (0...10_000_000).contains(gtpu.errorIndicationsTotal) else {
            throw fail("gtpu.error_indications_total", "must be in 0...10000000 (per second)")
        }
        guard gtpu.echoIntervalSeconds.isFinite, (0.1...3600).contains(gtpu.echoIntervalSeconds) else {
            throw fail("gtpu.echo_interval_s", "must be in 0.1...3600")
        }
        guard (1...100).contains(gtpu.echoMisses) else { throw fail("gtpu.echo_misses", "must be in 1...100") }
        for (i, peer) in gtpu.echoPeers.enumerated() {
            let path = "gtpu.echo_peers[\(i)]"
            guard let address = IPAddress(peer.address) else { throw fail("\(path).address", "'\(peer.address)' is not an IP address") }
            guard let p = ports.firstIndex(where: { $0.name == peer.port }) else {
                throw fail("\(path).port", "'\(peer.port)' is no port's name")
            }
            guard ports[p].role != .engine else { throw fail("\(path).port", "GTP-U peers are reached on the n3 or core port") }
            guard address.isIPv4 ? ports[p].ipv4 != nil : ports[p].ipv6 != nil else {
                throw fail("\(path).port", "port '\(peer.port)' has no \(address.isIPv4 ? "ipv4" : "ipv6") address to send from")
            }
            guard !gtpu.echoPeers[..<i].contains(where: { IPAddress($0.address) == address }) else {
                throw fail("\(path).address", "\(peer.address) is listed twice")
            }
        }
        guard (10...60_000).contains(neighbors.retryMilliseconds) else { throw fail("neighbors.retry_ms", "must be in 10...60000") }
        guard neighbors.refreshSeconds.isFinite, (0.1...86_400).contains(neighbors.refreshSeconds) else {
            throw fail("neighbors.refresh_s", "must be in 0.1...86400")
        }
        guard neighbors.expirySeconds.isFinite, neighbors.expirySeconds > neighbors.refreshSeconds, neighbors.expirySeconds <= 86_400 else {
            throw fail("neighbors.expiry_s", "must be above neighbors.refresh_s and at most 86400")
        }
        guard (0...3_600_000).contains(health.linkIntervalMilliseconds) else {
            throw fail("health.link_interval_ms", "must be in 0...3600000")
        }
        guard (0...1_000_000).contains(buffering.packetsPerWorker) else {
            throw fail("buffering.packets_per_worker", "must be in 0...1000000")
        }
        guard (1...65_536).contains(buffering.sessionsPerWorker) else {
            throw fail("buffering.sessions_per_worker", "must be in 1...65536")
        }
        guard (1...3_600_000).contains(buffering.holdMilliseconds) else { throw fail("buffering.hold_ms", "must be in 1...3600000") }
        guard qos.burstMilliseconds.isFinite, (0...60_000).contains(qos.burstMilliseconds) else {
            throw fail("qos.burst_ms", "must be in 0...60000")
        }
    }

    /// The worker lcores (checked).
    public var workerLcores: [Int] {
        let lcores = DataplaneConfiguration.parseLcoreList(eal.lcores) ?? []
        let main = eal.mainLcore ?? lcores.first ?? 0
        return workers.lcores ?? lcores.filter { $0 != main }
    }

    /// The port called `name`, or numbered `name` (a policy may give an index).
    public func portIndex(named name: String) -> Int? {
        if let i = ports.firstIndex(where: { $0.name == name }) { return i }
        if let i = Int(name), ports.indices.contains(i) { return i }
        return nil
    }
}

// MARK: - Decoding

extension DataplaneConfiguration.EAL: Decodable {
    public init(from decoder: any Decoder) throws {
        try rejectUnknown(decoder, ["lcores", "main_lcore", "memory_mb", "huge_pages", "pci", "vdevs", "extra_args", "file_prefix", "telemetry"])
        let c = try decoder.container(keyedBy: ConfigKey.self)
        self.init()
        lcores = try c.decodeIfPresent(String.self, forKey: ConfigKey("lcores")) ?? lcores
        mainLcore = try c.decodeIfPresent(Int.self, forKey: ConfigKey("main_lcore"))
        memoryMB = try c.decodeIfPresent(Int.self, forKey: ConfigKey("memory_mb")) ?? memoryMB
        hugePages = try c.decodeIfPresent(Bool.self, forKey: ConfigKey("huge_pages")) ?? hugePages
        pci = try c.decodeIfPresent([String].self, forKey: ConfigKey("pci")) ?? []
        vdevs = try c.decodeIfPresent([String].self, forKey: ConfigKey("vdevs")) ?? []
        extraArgs = try c.decodeIfPresent([String].self, forKey: ConfigKey("extra_args")) ?? []
        filePrefix = try c.decodeIfPresent(String.self, forKey: ConfigKey("file_prefix"))
        telemetry = try c.decodeIfPresent(Bool.self, forKey: ConfigKey("telemetry")) ?? telemetry
    }
}

extension DataplaneConfiguration.Port: Decodable {
    public init(from decoder: any Decoder) throws {
        try rejectUnknown(decoder, ["name", "device", "role", "ipv4", "ipv6", "mac", "next_hop_mac", "next_hop", "ring_size"])
        let c = try decoder.container(keyedBy: ConfigKey.self)
        self.init(name: "", device: "", role: .n3)
        name = try c.decode(String.self, forKey: ConfigKey("name"))
        device = try c.decode(String.self, forKey: ConfigKey("device"))
        let roleText = try c.decode(String.self, forKey: ConfigKey("role"))
        guard let role = PortRole.allCases.first(where: { $0.description == roleText }) else {
            throw PolicyError(code: PolicyError.Code.invalidField, message: "'\(roleText)' is not one of: n3, core, engine",
                              path: (decoder.codingPath.map(\.stringValue) + ["role"]).joined(separator: "."))
        }
        self.role = role
        ipv4 = try c.decodeIfPresent(String.self, forKey: ConfigKey("ipv4"))
        ipv6 = try c.decodeIfPresent(String.self, forKey: ConfigKey("ipv6"))
        mac = try c.decodeIfPresent(String.self, forKey: ConfigKey("mac"))
        nextHopMAC = try c.decodeIfPresent(String.self, forKey: ConfigKey("next_hop_mac"))
        nextHop = try c.decodeIfPresent(String.self, forKey: ConfigKey("next_hop"))
        ringSize = try c.decodeIfPresent(Int.self, forKey: ConfigKey("ring_size")) ?? ringSize
    }
}

extension DataplaneConfiguration.QoS: Decodable {
    public init(from decoder: any Decoder) throws {
        try rejectUnknown(decoder, ["burst_ms"])
        let c = try decoder.container(keyedBy: ConfigKey.self)
        self.init()
        burstMilliseconds = try c.decodeIfPresent(Double.self, forKey: ConfigKey("burst_ms")) ?? burstMilliseconds
    }
}

extension DataplaneConfiguration.Health: Decodable {
    public init(from decoder: any Decoder) throws {
        try rejectUnknown(decoder, ["link_interval_ms"])
        let c = try decoder.container(keyedBy: ConfigKey.self)
        self.init()
        linkIntervalMilliseconds = try c.decodeIfPresent(Int.self, forKey: ConfigKey("link_interval_ms")) ?? linkIntervalMilliseconds
    }
}

extension DataplaneConfiguration.Workers: Decodable {
    public init(from decoder: any Decoder) throws {
        try rejectUnknown(decoder, ["lcores", "burst", "tx_drain_us", "idle_rounds", "idle_sleep_us"])
        let c = try decoder.container(keyedBy: ConfigKey.self)
        self.init()
        lcores = try c.decodeIfPresent([Int].self, forKey: ConfigKey("lcores"))
        burst = try c.decodeIfPresent(Int.self, forKey: ConfigKey("burst")) ?? burst
        txDrainMicroseconds = try c.decodeIfPresent(Int.self, forKey: ConfigKey("tx_drain_us")) ?? txDrainMicroseconds
        idleRounds = try c.decodeIfPresent(Int.self, forKey: ConfigKey("idle_rounds")) ?? idleRounds
        idleSleepMicroseconds = try c.decodeIfPresent(Int.self, forKey: ConfigKey("idle_sleep_us")) ?? idleSleepMicroseconds
    }
}

extension DataplaneConfiguration.PathManagement: Decodable {
    public init(from decoder: any Decoder) throws {
        try rejectUnknown(decoder, ["error_indications_per_peer", "error_indications_total", "echo_peers", "echo_interval_s",
                                    "echo_misses"])
        let c = try decoder.container(keyedBy: ConfigKey.self)
        self.init()
        errorIndicationsPerPeer = try c.decodeIfPresent(Double.self, forKey: ConfigKey("error_indications_per_peer"))
            ?? errorIndicationsPerPeer
        errorIndicationsTotal = try c.decodeIfPresent(Double.self, forKey: ConfigKey("error_indications_total")) ?? errorIndicationsTotal
        echoPeers = try c.decodeIfPresent([EchoPeer].self, forKey: ConfigKey("echo_peers")) ?? []
        echoIntervalSeconds = try c.decodeIfPresent(Double.self, forKey: ConfigKey("echo_interval_s")) ?? echoIntervalSeconds
        echoMisses = try c.decodeIfPresent(Int.self, forKey: ConfigKey("echo_misses")) ?? echoMisses
    }
}

extension DataplaneConfiguration.Neighbors: Decodable {
    public init(from decoder: any Decoder) throws {
        try rejectUnknown(decoder, ["retry_ms", "refresh_s", "expiry_s"])
        let c = try decoder.container(keyedBy: ConfigKey.self)
        self.init()
        retryMilliseconds = try c.decodeIfPresent(Int.self, forKey: ConfigKey("retry_ms")) ?? retryMilliseconds
        refreshSeconds = try c.decodeIfPresent(Double.self, forKey: ConfigKey("refresh_s")) ?? refreshSeconds
        expirySeconds = try c.decodeIfPresent(Double.self, forKey: ConfigKey("expiry_s")) ?? expirySeconds
    }
}

extension DataplaneConfiguration.Buffering: Decodable {
    public init(from decoder: any Decoder) throws {
        try rejectUnknown(decoder, ["packets_per_worker", "sessions_per_worker", "hold_ms"])
        let c = try decoder.container(keyedBy: ConfigKey.self)
        self.init()
        packetsPerWorker = try c.decodeIfPresent(Int.self, forKey: ConfigKey("packets_per_worker")) ?? packetsPerWorker
        sessionsPerWorker = try c.decodeIfPresent(Int.self, forKey: ConfigKey("sessions_per_worker")) ?? sessionsPerWorker
        holdMilliseconds = try c.decodeIfPresent(Int.self, forKey: ConfigKey("hold_ms")) ?? holdMilliseconds
    }
}

extension DataplaneConfiguration.PathManagement.EchoPeer: Decodable {
    public init(from decoder: any Decoder) throws {
        try rejectUnknown(decoder, ["address", "port"])
        let c = try decoder.container(keyedBy: ConfigKey.self)
        self.init(address: try c.decode(String.self, forKey: ConfigKey("address")),
                  port: try c.decode(String.self, forKey: ConfigKey("port")))
    }
}
