// The Prometheus view of `stats`: the metrics endpoint renders exactly the object the socket
// returns for `{"op":"stats"}` (ControlCore.statsSnapshot builds both), so a scrape and
// `upfctl stats --json` taken at the same moment show the same numbers. At scrape time the
// snapshot's numbers are set into a swift-prometheus `PrometheusCollectorRegistry` (counters are
// advanced to the snapshot's value, gauges set) and the registry writes the text format.
//
// Per-session and per-rule counters are not exported: with up to a million sessions they would
// be a million series. They are read over the socket (`session.get`, `stats` with `session`).

import Prometheus
import Synchronization

/// One number of the snapshot as a Prometheus series.
public struct MetricSample: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case counter, gauge }

    public var name: String
    public var labels: [Label]
    public var value: UInt64
    public var kind: Kind

    public struct Label: Sendable, Equatable, Hashable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(_ name: String, _ labels: [Label] = [], _ value: UInt64, _ kind: Kind = .counter) {
        self.name = name
        self.labels = labels
        self.value = value
        self.kind = kind
    }
}

public final class PrometheusExporter: Sendable {
    /// The registry the snapshot is written into. upfd also hands it to swift-metrics
    /// (`PrometheusMetricsFactory`), so anything recorded through the Metrics API appears too.
    public let registry: PrometheusCollectorRegistry

    private struct SeriesKey: Hashable {
        var name: String
        var labels: [MetricSample.Label]
    }
    private enum Series {
        case counter(Counter, last: UInt64)
        case gauge(Gauge)
    }
    /// The series set by earlier scrapes (and the counters' last values). A lock: scrapes are
    /// rare and may overlap.
    private let series = Mutex<[SeriesKey: Series]>([:])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// Sets the registry to `stats` (the `stats` answer) and returns the exposition text.
    public func render(_ stats: JSONValue) -> [UInt8] {
        let samples = Self.samples(from: stats)
        return series.withLock { known in
            var seen = Set<SeriesKey>()
            for sample in samples {
                let key = SeriesKey(name: sample.name, labels: sample.labels)
                seen.insert(key)
                let labels = sample.labels.map { ($0.name, $0.value) }
                switch (sample.kind, known[key]) {
                case (.counter, .counter(let counter, let last)?):
                    // The data path's counters only grow, except when what they count is
                    // reset (a reused engine index, a restart): Prometheus reads a drop as a reset.
                    if sample.value < last { counter.reset() }
                    counter.increment(by: Self.int64(sample.value - (sample.value < last ? 0 : last)))
                    known[key] = .counter(counter, last: sample.value)
                case (.counter, _):
                    let counter = registry.makeCounter(descriptor: Self.descriptor(sample.name), labels: labels)
                    counter.reset()
                    counter.increment(by: Self.int64(sample.value))
                    known[key] = .counter(counter, last: sample.value)
                case (.gauge, .gauge(let gauge)?):
                    gauge.set(to: Double(sample.value))
                case (.gauge, _):
                    let gauge = registry.makeGauge(descriptor: Self.descriptor(sample.name), labels: labels)
                    gauge.set(to: Double(sample.value))
                    known[key] = .gauge(gauge)
                }
            }
            // Series the snapshot no longer has (an engine removed) leave the output.
            for (key, value) in known where !seen.contains(key) {
                switch value {
                case .counter(let counter, _): registry.unregisterCounter(counter)
                case .gauge(let gauge): registry.unregisterGauge(gauge)
                }
                known[key] = nil
            }
            return registry.emitToBuffer()
        }
    }

    private static func int64(_ value: UInt64) -> Int64 { Int64(clamping: value) }

    private static func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help[name] ?? "")
    }

    /// What each metric means (the `# HELP` lines); docs/observability.md lists the same.
    static let help: [String: String] = [
        "upfd_port_rx_packets_total": "Packets received on the port by the workers.",
        "upfd_port_rx_bytes_total": "Bytes received on the port by the workers.",
        "upfd_port_tx_packets_total": "Packets sent on the port by the workers.",
        "upfd_port_tx_bytes_total": "Bytes sent on the port by the workers.",
        "upfd_port_tx_dropped_total": "Packets the port's TX queue did not take.",
        "upfd_port_device_rx_packets_total": "The device's own received packets (rte_eth_stats ipackets).",
        "upfd_port_device_tx_packets_total": "The device's own sent packets (rte_eth_stats opackets).",
        "upfd_port_device_rx_missed_total": "Packets the device dropped for lack of RX descriptors (imissed).",
        "upfd_port_device_rx_errors_total": "Receive errors reported by the device (ierrors).",
        "upfd_port_device_tx_errors_total": "Transmit errors reported by the device (oerrors).",
        "upfd_port_device_rx_nombuf_total": "Receive failures for lack of mbufs (rx_nombuf).",
        "upfd_worker_packets_total": "Packets processed by the worker.",
        "upfd_worker_running": "1 while the worker runs.",
        "upfd_action_packets_total": "Packets forwarded, by action.",
        "upfd_action_bytes_total": "Bytes (inner packet) forwarded, by action.",
        "upfd_drops_total": "Packets dropped, by reason (docs/datapath.md).",
        "upfd_dropped_packets_total": "Packets dropped, every reason.",
        "upfd_local_packets_total": "Packets the service answered, took in or sent itself, by counter (docs/datapath.md).",
        "upfd_answered_packets_total": "Received packets the service answered.",
        "upfd_absorbed_packets_total": "Received packets the service took in (signalling, ARP/ND from next hops).",
        "upfd_next_hop_resolved": "1 when the next hop configured by address has a MAC from ARP/ND.",
        "upfd_engine_steered_packets_total": "Packets steered to the engine instance.",
        "upfd_engine_steered_bytes_total": "Bytes (inner packet) steered to the engine instance.",
        "upfd_engine_fallback_packets_total": "Steered packets that found no usable instance, by the engine's fallback.",
        "upfd_datapath_running": "1 while the data path runs with every worker.",
        "upfd_sessions": "Sessions in the policy.",
        "upfd_engines": "Engines in the policy.",
        "upfd_applications": "Applications in the policy.",
        "upfd_policy_version": "The policy version in force.",
        "upfd_session_table_capacity": "Sessions the tables can hold.",
        "upfd_session_table_memory_bytes": "Memory reserved by the session tables.",
        "upfd_control_requests_total": "Control requests answered, by result.",
        "upfd_control_changes_total": "Policy-changing requests, by result.",
        "upfd_control_errors_total": "Control errors, by code (including refused connections).",
        "upfd_control_clients": "Control connections open.",
        "upfd_control_connections_total": "Control connections, by result.",
        "upfd_event_subscribers": "Event stream subscribers.",
        "upfd_events_published_total": "Events published.",
        "upfd_events_dropped_total": "Events dropped because a subscriber fell behind.",
        "upfd_uptime_seconds": "Seconds since the control plane started.",
    ]

    // MARK: snapshot → samples

    /// The series of a `stats` answer. Pure: the unit tests check it field by field.
    public static func samples(from stats: JSONValue) -> [MetricSample] {
        typealias L = MetricSample.Label
        var out: [MetricSample] = []
        func number(_ value: JSONValue?) -> UInt64? {
            guard case .number(let text)? = value else { return nil }
            return UInt64(text)
        }
        func add(_ name: String, _ labels: [L], _ value: JSONValue?, _ kind: MetricSample.Kind = .counter) {
            if let n = number(value) { out.append(MetricSample(name, labels, n, kind)) }
        }
        func array(_ value: JSONValue?) -> [JSONValue] {
            if case .array(let items)? = value { return items }
            return []
        }
        func members(_ value: JSONValue?) -> [(String, JSONValue)] {
            if case .object(let items)? = value { return items }
            return []
        }
        func string(_ value: JSONValue?) -> String {
            if case .string(let s)? = value { return s }
            return number(value).map(String.init) ?? ""
        }

        if let datapath = stats["datapath"], case .object = datapath {
            out.append(MetricSample("upfd_datapath_running", [], string(datapath["status"]) == "running" ? 1 : 0, .gauge))
            for port in array(datapath["ports"]) {
                let labels = [L("port", string(port["name"])), L("role", string(port["role"]))]
                for field in ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "tx_dropped"] {
                    add("upfd_port_\(field)_total", labels, port[field])
                }
                if let device = port["device_stats"] {
                    for (field, name) in [("ipackets", "rx_packets"), ("opackets", "tx_packets"), ("imissed", "rx_missed"),
                                          ("ierrors", "rx_errors"), ("oerrors", "tx_errors"), ("rx_nombuf", "rx_nombuf")] {
                        add("upfd_port_device_\(name)_total", labels, device[field])
                    }
                }
            }
            for worker in array(datapath["workers"]) {
                let labels = [L("worker", string(worker["index"])), L("lcore", string(worker["lcore"]))]
                add("upfd_worker_packets_total", labels, worker["packets"])
                if case .bool(let running)? = worker["running"] {
                    out.append(MetricSample("upfd_worker_running", labels, running ? 1 : 0, .gauge))
                }
            }
            for (action, value) in members(datapath["actions"]) {
                add("upfd_action_packets_total", [L("action", action)], value["packets"])
                add("upfd_action_bytes_total", [L("action", action)], value["bytes"])
            }
            for (reason, value) in members(datapath["drops"]) {
                add("upfd_drops_total", [L("reason", reason)], value)
            }
            add("upfd_dropped_packets_total", [], datapath["dropped"])
            for (counter, value) in members(datapath["local"]) {
                add("upfd_local_packets_total", [L("counter", counter)], value)
            }
            add("upfd_answered_packets_total", [], datapath["answered"])
            add("upfd_absorbed_packets_total", [], datapath["absorbed"])
            for hop in array(datapath["next_hops"]) {
                let resolved: UInt64 = if case .string? = hop["mac"] { 1 } else { 0 }
                out.append(MetricSample("upfd_next_hop_resolved", [L("port", string(hop["port"])), L("address", string(hop["address"]))],
                                        resolved, .gauge))
            }
            for engine in array(datapath["engines"]) {
                let id = string(engine["id"])
                for instance in array(engine["instances"]) {
                    let labels = [L("engine", id), L("instance", string(instance["index"])), L("port", string(instance["port"]))]
                    add("upfd_engine_steered_packets_total", labels, instance["packets"])
                    add("upfd_engine_steered_bytes_total", labels, instance["bytes"])
                }
                add("upfd_engine_fallback_packets_total", [L("engine", id), L("fallback", "drop")], engine["fallback_drop"])
                add("upfd_engine_fallback_packets_total", [L("engine", id), L("fallback", "core")], engine["fallback_core"])
            }
        }
        add("upfd_sessions", [], stats["sessions"], .gauge)
        add("upfd_engines", [], stats["engines"], .gauge)
        add("upfd_applications", [], stats["applications"], .gauge)
        add("upfd_policy_version", [], stats["policy_version"], .gauge)
        add("upfd_session_table_capacity", [], stats["table"]?["capacity"], .gauge)
        add("upfd_session_table_memory_bytes", [], stats["table"]?["memory_bytes"], .gauge)
        if let requests = stats["requests"] {
            add("upfd_control_requests_total", [L("result", "ok")], requests["ok"])
            add("upfd_control_requests_total", [L("result", "failed")], requests["failed"])
            add("upfd_control_changes_total", [L("result", "applied")], requests["applied"])
            add("upfd_control_changes_total", [L("result", "refused")], requests["refused"])
        }
        for (code, value) in members(stats["errors"]) {
            add("upfd_control_errors_total", [L("code", code)], value)
        }
        if let clients = stats["clients"] {
            add("upfd_control_clients", [], clients["connected"], .gauge)
            add("upfd_control_connections_total", [L("result", "accepted")], clients["accepted"])
            add("upfd_control_connections_total", [L("result", "refused")], clients["refused"])
        }
        if let events = stats["events"] {
            add("upfd_event_subscribers", [], events["subscribers"], .gauge)
            add("upfd_events_published_total", [], events["published"])
            add("upfd_events_dropped_total", [], events["dropped"])
        }
        add("upfd_uptime_seconds", [], stats["uptime_seconds"], .gauge)
        return out
    }
}
