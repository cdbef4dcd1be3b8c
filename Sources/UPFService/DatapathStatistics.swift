import UPFControl
import UPFDatapath
import UPFDPDK
import UPFPackets

/// A reading of the data path's counters (summed over workers) and of the ports' own
/// statistics: what `stats` returns over the socket and what the replay harness reports.
public struct DatapathStatistics: Sendable, Codable, Equatable {
    public struct Port: Sendable, Codable, Equatable {
        public var name: String
        public var role: String
        public var device: String
        public var rxPackets: UInt64
        public var rxBytes: UInt64
        public var txPackets: UInt64
        public var txBytes: UInt64
        public var txDropped: UInt64
        /// The device's own view (rte_eth_stats); nil when it could not be read.
        public var deviceStats: EthPort.Stats?
    }

    public struct Counter: Sendable, Codable, Equatable {
        public var name: String
        public var packets: UInt64
        public var bytes: UInt64?
    }

    public struct Worker: Sendable, Codable, Equatable {
        public var index: Int
        public var lcore: UInt32
        public var running: Bool
        public var packets: UInt64
        /// The worker thread's timer slack (1000 ns when it naps); nil where not reported.
        public var timerSlackNs: Int? = nil
    }

    /// Steering per engine (those a session steered to at some point and still in the policy):
    /// per instance, and the packets that found no usable instance.
    public struct Engine: Sendable, Codable, Equatable {
        public struct Instance: Sendable, Codable, Equatable {
            public var index: Int
            public var port: String
            public var up: Bool
            public var packets: UInt64
            public var bytes: UInt64
        }
        public var id: String
        public var index: Int
        public var packets: UInt64
        public var bytes: UInt64
        public var fallbackDrop: UInt64
        public var fallbackCore: UInt64
        public var instances: [Instance]
    }

    public var status: String
    public var ports: [Port]
    public var workers: [Worker]
    public var actions: [Counter]
    /// Every reason with a non-zero count, parser reasons first.
    public var drops: [Counter]
    public var dropped: UInt64
    public var engines: [Engine]
    /// What the service answered, took in or originated itself (`LocalCounter`), every counter.
    public var local: [Counter]
    /// Received packets that were answered or taken in: with forwarded and dropped packets they
    /// account for everything received.
    public var answered: UInt64
    public var absorbed: UInt64

    /// A next hop configured by address, and what ARP/ND made of it.
    public struct NextHop: Sendable, Codable, Equatable {
        public var port: String
        public var address: String
        /// nil: not resolved (packets towards it are dropped as `next_hop_unresolved`).
        public var mac: String?
    }
    public var nextHops: [NextHop]

    /// A GTP-U peer supervised with Echo Requests (`gtpu.echo_peers`).
    public struct GTPUPeer: Sendable, Codable, Equatable {
        public var address: String
        public var port: String
        /// `unknown` (no answer yet), `up`, `down`.
        public var state: String
        public var echoRequestsSent: UInt64
        public var echoResponses: UInt64
    }
    public var gtpuPeers: [GTPUPeer]

    public init(dataplane: Dataplane) {
        let c = dataplane.counters
        let layout = c.layout
        status = dataplane.status
        ports = dataplane.configuration.ports.enumerated().map { i, port in
            Port(name: port.name, role: port.role.description,
                 device: dataplane.ringPorts.isEmpty ? port.device : "ring_\(port.name)",
                 rxPackets: c.total(layout.port(i, .rxPackets)), rxBytes: c.total(layout.port(i, .rxBytes)),
                 txPackets: c.total(layout.port(i, .txPackets)), txBytes: c.total(layout.port(i, .txBytes)),
                 txDropped: c.total(layout.port(i, .txDropped)),
                 deviceStats: dataplane.status == "stopped" ? nil : try? dataplane.ports[i].stats())
        }
        workers = dataplane.workers.enumerated().map { i, w in
            Worker(index: i, lcore: dataplane.workerLcores[i], running: w.isRunning, packets: w.packetsProcessed,
                   timerSlackNs: w.timerSlackNanoseconds)
        }
        actions = ActionCounter.allCases.map { a in
            Counter(name: a.name, packets: c.total(layout.action(a)), bytes: c.total(layout.action(a) + 1))
        }
        var drops: [Counter] = []
        for reason in DropReason.allCases {
            let n = c.total(layout.parser(reason))
            if n > 0 { drops.append(Counter(name: reason.name, packets: n, bytes: nil)) }
        }
        for reason in DatapathDrop.allCases {
            let n = c.total(layout.datapath(reason))
            if n > 0 { drops.append(Counter(name: reason.name, packets: n, bytes: nil)) }
        }
        self.drops = drops
        dropped = drops.reduce(0) { $0 + $1.packets }
        local = LocalCounter.allCases.map { Counter(name: $0.name, packets: c.total(layout.local($0)), bytes: nil) }
        answered = LocalCounter.allCases.filter { $0.kind == .answered }.reduce(0) { $0 + c.total(layout.local($1)) }
        absorbed = LocalCounter.allCases.filter { $0.kind == .absorbed }.reduce(0) { $0 + c.total(layout.local($1)) }
        gtpuPeers = dataplane.peerSupervision.peers.map {
            GTPUPeer(address: $0.text, port: $0.portName, state: $0.state, echoRequestsSent: $0.sent, echoResponses: $0.answered)
        }
        nextHops = dataplane.configuration.ports.enumerated().compactMap { i, port in
            guard let address = port.nextHop else { return nil }
            return NextHop(port: port.name, address: address, mac: dataplane.neighbors.resolved(i).map { "\($0)" })
        }

        let baselines = dataplane.baselines.withLock { $0.engines }
        let portNames = dataplane.configuration.ports.map(\.name)
        engines = dataplane.sessionTables.engineIndices.sorted { $0.key < $1.key }.compactMap { id, index in
            guard index < layout.engines else { return nil }
            let base = baselines[index]
            func word(_ w: Int) -> UInt64 { dataplane.engineCounter(index, word: w, baseline: base) }
            let entry = dataplane.engines.snapshot(index)
            let instances = (entry?.instances ?? []).enumerated().map { i, instance in
                Engine.Instance(index: i, port: Int(instance.port) < portNames.count ? portNames[Int(instance.port)] : "?",
                                up: instance.up, packets: word(i * 2), bytes: word(i * 2 + 1))
            }
            let fallback = EngineDirectory.maxInstances * 2
            return Engine(id: id, index: index, packets: instances.reduce(0) { $0 &+ $1.packets },
                          bytes: instances.reduce(0) { $0 &+ $1.bytes },
                          fallbackDrop: word(fallback), fallbackCore: word(fallback + 1), instances: instances)
        }
    }

    public var json: JSONValue {
        func counters(_ list: [Counter]) -> JSONValue {
            .object(list.map { c in
                (c.name, c.bytes.map { .object([("packets", .int(c.packets)), ("bytes", .int($0))]) } ?? .int(c.packets))
            })
        }
        return .object([
            ("status", .string(status)),
            ("ports", .array(ports.map { p in
                var fields: [(String, JSONValue)] = [
                    ("name", .string(p.name)), ("role", .string(p.role)), ("device", .string(p.device)),
                    ("rx_packets", .int(p.rxPackets)), ("rx_bytes", .int(p.rxBytes)),
                    ("tx_packets", .int(p.txPackets)), ("tx_bytes", .int(p.txBytes)), ("tx_dropped", .int(p.txDropped)),
                ]
                if let d = p.deviceStats {
                    fields.append(("device_stats", .object([
                        ("ipackets", .int(d.ipackets)), ("opackets", .int(d.opackets)), ("imissed", .int(d.imissed)),
                        ("ierrors", .int(d.ierrors)), ("oerrors", .int(d.oerrors)), ("rx_nombuf", .int(d.rxNoMbuf)),
                    ])))
                }
                return .object(fields)
            })),
            ("workers", .array(workers.map { w in
                .object([("index", .int(w.index)), ("lcore", .int(w.lcore)), ("running", .bool(w.running)),
                         ("packets", .int(w.packets)), ("timer_slack_ns", w.timerSlackNs.map { .int($0) } ?? .null)])
            })),
            ("actions", counters(actions)),
            ("drops", counters(drops)),
            ("dropped", .int(dropped)),
            ("local", counters(local)),
            ("answered", .int(answered)),
            ("absorbed", .int(absorbed)),
            ("next_hops", .array(nextHops.map { h in
                .object([("port", .string(h.port)), ("address", .string(h.address)), ("mac", h.mac.map { .string($0) } ?? .null)])
            })),
            ("gtpu_peers", .array(gtpuPeers.map { p in
                .object([("address", .string(p.address)), ("port", .string(p.port)), ("state", .string(p.state)),
                         ("echo_requests_sent", .int(p.echoRequestsSent)), ("echo_responses", .int(p.echoResponses))])
            })),
            ("engines", .array(engines.map { e in
                .object([
                    ("id", .string(e.id)), ("packets", .int(e.packets)), ("bytes", .int(e.bytes)),
                    ("fallback_drop", .int(e.fallbackDrop)), ("fallback_core", .int(e.fallbackCore)),
                    ("instances", .array(e.instances.map { i in
                        .object([("index", .int(i.index)), ("port", .string(i.port)), ("up", .bool(i.up)),
                                 ("packets", .int(i.packets)), ("bytes", .int(i.bytes))])
                    })),
                ])
            })),
        ])
    }
}
