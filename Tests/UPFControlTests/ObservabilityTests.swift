import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing
import UPFPolicy
@testable import UPFControl

#if canImport(Glibc)
import Glibc
#endif

/// A `stats` answer shaped like the real one (ports, workers, actions, drops, engines).
func sampleStats(rx: UInt64 = 5, steered: UInt64 = 3, engines: Bool = true) -> JSONValue {
    var datapath: [(String, JSONValue)] = [
        ("status", .string("running")),
        ("ports", .array([
            .object([("name", .string("n3")), ("role", .string("n3")), ("device", .string("ring_n3")),
                     ("rx_packets", .int(rx)), ("rx_bytes", .int(rx * 100)), ("tx_packets", .int(0)), ("tx_bytes", .int(0)),
                     ("tx_dropped", .int(0)),
                     ("device_stats", .object([("ipackets", .int(rx)), ("opackets", .int(0)), ("imissed", .int(1)),
                                               ("ierrors", .int(0)), ("oerrors", .int(0)), ("rx_nombuf", .int(0))]))]),
        ])),
        ("workers", .array([.object([("index", .int(0)), ("lcore", .int(1)), ("running", .bool(true)), ("packets", .int(rx))])])),
        ("actions", .object([("steer", .object([("packets", .int(steered)), ("bytes", .int(steered * 80))]))])),
        ("drops", .object([("rule_drop", .int(2))])),
        ("dropped", .int(2)),
        ("local", .object([("echo_response_sent", .int(1)), ("events_lost", .int(0))])),
        ("answered", .int(1)),
        ("absorbed", .int(0)),
        ("next_hops", .array([.object([("port", .string("core")), ("address", .string("203.0.113.1")), ("mac", .null)])])),
    ]
    if engines {
        datapath.append(("engines", .array([.object([
            ("id", .string("llm")), ("packets", .int(steered)), ("bytes", .int(steered * 80)),
            ("fallback_drop", .int(0)), ("fallback_core", .int(1)),
            ("instances", .array([.object([("index", .int(0)), ("port", .string("engines")), ("up", .bool(true)),
                                           ("packets", .int(steered)), ("bytes", .int(steered * 80))])])),
        ])])))
    }
    return .object([
        ("version", .int(4)),
        ("datapath", .object(datapath)),
        ("sessions", .int(1)), ("engines", .int(1)), ("applications", .int(0)), ("policy_version", .int(4)),
        ("table", .object([("capacity", .int(100)), ("bytes_per_session", .int(242)), ("memory_bytes", .int(24200))])),
        ("requests", .object([("ok", .int(8)), ("failed", .int(1)), ("applied", .int(4)), ("refused", .int(1))])),
        ("errors", .object([("not_found", .int(1))])),
        ("clients", .object([("connected", .int(1)), ("accepted", .int(3)), ("refused", .int(0))])),
        ("events", .object([("subscribers", .int(0)), ("published", .int(5)), ("dropped", .int(0))])),
        ("uptime_seconds", .int(12)),
    ])
}

/// `name{labels} value` lines of an exposition, by series.
func parseExposition(_ text: String) -> [String: String] {
    var series: [String: String] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " ") else { continue }
        series[String(line[..<space])] = String(line[line.index(after: space)...])
    }
    return series
}

@Suite struct PrometheusExporterTests {
    @Test func everyNumberOfTheSnapshotBecomesASeries() {
        let samples = PrometheusExporter.samples(from: sampleStats())
        func value(_ name: String, _ labels: [(String, String)] = []) -> UInt64? {
            samples.first { $0.name == name && $0.labels == labels.map { MetricSample.Label($0.0, $0.1) } }?.value
        }
        let n3 = [("port", "n3"), ("role", "n3")]
        #expect(value("upfd_port_rx_packets_total", n3) == 5)
        #expect(value("upfd_port_rx_bytes_total", n3) == 500)
        #expect(value("upfd_port_device_rx_missed_total", n3) == 1)
        #expect(value("upfd_worker_packets_total", [("worker", "0"), ("lcore", "1")]) == 5)
        #expect(value("upfd_worker_running", [("worker", "0"), ("lcore", "1")]) == 1)
        #expect(value("upfd_action_packets_total", [("action", "steer")]) == 3)
        #expect(value("upfd_action_bytes_total", [("action", "steer")]) == 240)
        #expect(value("upfd_drops_total", [("reason", "rule_drop")]) == 2)
        #expect(value("upfd_dropped_packets_total") == 2)
        #expect(value("upfd_local_packets_total", [("counter", "echo_response_sent")]) == 1)
        #expect(value("upfd_answered_packets_total") == 1 && value("upfd_absorbed_packets_total") == 0)
        #expect(value("upfd_next_hop_resolved", [("port", "core"), ("address", "203.0.113.1")]) == 0)
        #expect(value("upfd_engine_steered_packets_total", [("engine", "llm"), ("instance", "0"), ("port", "engines")]) == 3)
        #expect(value("upfd_engine_fallback_packets_total", [("engine", "llm"), ("fallback", "core")]) == 1)
        #expect(value("upfd_datapath_running") == 1)
        #expect(value("upfd_sessions") == 1 && value("upfd_policy_version") == 4)
        #expect(value("upfd_control_requests_total", [("result", "failed")]) == 1)
        #expect(value("upfd_control_errors_total", [("code", "not_found")]) == 1)
        #expect(value("upfd_control_connections_total", [("result", "accepted")]) == 3)
        #expect(value("upfd_events_published_total") == 5)
        #expect(value("upfd_uptime_seconds") == 12)
        // Counters are named *_total, gauges are not.
        for sample in samples {
            #expect(sample.name.hasPrefix("upfd_"))
            #expect(sample.name.hasSuffix("_total") == (sample.kind == .counter), "\(sample.name)")
        }
        // Without a data path (a string there) only the control plane's series remain.
        var stats = sampleStats()
        if case .object(var fields) = stats {
            fields[1] = ("datapath", .string("not_running"))
            stats = .object(fields)
        }
        #expect(!PrometheusExporter.samples(from: stats).contains { $0.name.hasPrefix("upfd_port_") })
    }

    @Test func rendersTheTextFormatWithTypesAndHelp() {
        let text = String(decoding: PrometheusExporter().render(sampleStats()), as: UTF8.self)
        #expect(text.contains("# TYPE upfd_port_rx_packets_total counter\n"))
        #expect(text.contains("# HELP upfd_port_rx_packets_total Packets received on the port by the workers.\n"))
        #expect(text.contains("upfd_port_rx_packets_total{port=\"n3\",role=\"n3\"} 5\n"))
        #expect(text.contains("# TYPE upfd_sessions gauge\n"))
        #expect(text.contains("upfd_engine_steered_bytes_total{engine=\"llm\",instance=\"0\",port=\"engines\"} 240\n"))
        let series = parseExposition(text)
        #expect(series["upfd_drops_total{reason=\"rule_drop\"}"] == "2")
        #expect(series["upfd_sessions"].flatMap(Double.init) == 1)
    }

    @Test func laterScrapesShowTheSnapshotsValuesResetsAndRemovals() {
        let exporter = PrometheusExporter()
        _ = exporter.render(sampleStats(rx: 5, steered: 3))
        var series = parseExposition(String(decoding: exporter.render(sampleStats(rx: 9, steered: 4)), as: UTF8.self))
        #expect(series["upfd_port_rx_packets_total{port=\"n3\",role=\"n3\"}"] == "9")
        #expect(series["upfd_action_packets_total{action=\"steer\"}"] == "4")
        // A counter that went down (what it counts was reset) shows the new value, not a sum.
        series = parseExposition(String(decoding: exporter.render(sampleStats(rx: 2, steered: 4)), as: UTF8.self))
        #expect(series["upfd_port_rx_packets_total{port=\"n3\",role=\"n3\"}"] == "2")
        // An engine that left the snapshot leaves the output.
        series = parseExposition(String(decoding: exporter.render(sampleStats(engines: false)), as: UTF8.self))
        #expect(!series.keys.contains { $0.hasPrefix("upfd_engine_") })
        #expect(series["upfd_port_rx_packets_total{port=\"n3\",role=\"n3\"}"] == "5")
    }
}

@Suite struct MetricsConfigurationTests {
    @Test func listenAddressesAreLiteralAndLoopbackUnlessAllowed() throws {
        #expect(try MetricsEndpoint.parse("127.0.0.1:9464", allowRemote: false).get() == MetricsEndpoint(host: "127.0.0.1", port: 9464))
        #expect(try MetricsEndpoint.parse("127.3.0.9:1", allowRemote: false).get().host == "127.3.0.9")
        #expect(try MetricsEndpoint.parse("[::1]:9464", allowRemote: false).get() == MetricsEndpoint(host: "::1", port: 9464))
        #expect(MetricsEndpoint.parse("0.0.0.0:9464", allowRemote: false) == .failure(.notLoopback))
        #expect(MetricsEndpoint.parse("192.0.2.7:9464", allowRemote: false) == .failure(.notLoopback))
        #expect(MetricsEndpoint.parse("[::]:9464", allowRemote: false) == .failure(.notLoopback))
        #expect(try MetricsEndpoint.parse("192.0.2.7:9464", allowRemote: true).get().allowRemote)
        #expect(MetricsEndpoint.parse("localhost:9464", allowRemote: false) == .failure(.address))
        #expect(MetricsEndpoint.parse("127.0.0.1", allowRemote: false) == .failure(.syntax))
        #expect(MetricsEndpoint.parse("::1:9464", allowRemote: false) == .failure(.syntax))
        #expect(MetricsEndpoint.parse("127.0.0.1:0", allowRemote: false) == .failure(.port))
        #expect(MetricsEndpoint.parse("127.0.0.1:70000", allowRemote: false) == .failure(.port))
    }

    @Test func theSectionIsOffByDefaultAndCheckedAtStartUp() throws {
        #expect(ServiceConfiguration().metrics.listen == nil)
        #expect(try ServiceConfiguration.parse(yaml: ServiceConfiguration.defaultYAML).metricsEndpoint() == nil)
        let on = try ServiceConfiguration.parse(yaml: "metrics: {listen: \"127.0.0.1:9464\"}\n")
        #expect(try on.metricsEndpoint() == MetricsEndpoint(host: "127.0.0.1", port: 9464))
        do {
            _ = try ServiceConfiguration.parse(yaml: "metrics: {listen: \"0.0.0.0:9464\"}\n", source: "upfd.yaml")
            Issue.record("a non-loopback address was accepted")
        } catch {
            #expect(error.path == "metrics.listen")
            #expect(error.description.contains("allow_remote"))
        }
        let remote = try ServiceConfiguration.parse(yaml: "metrics: {listen: \"0.0.0.0:9464\", allow_remote: true}\n")
        #expect(try remote.metricsEndpoint()?.host == "0.0.0.0")
        #expect(throws: ConfigurationError.self) { try ServiceConfiguration.parse(yaml: "metrics: {port: 9464}\n") }
    }
}

@Suite struct RateLimitTests {
    @Test func theBucketAllowsABurstThenTheRate() {
        var bucket = TokenBucket(burst: 3, perSecond: 2)
        #expect((0..<5).map { _ in bucket.take(now: 10) } == [true, true, true, false, false])
        #expect(bucket.take(now: 10.4) == false)   // 0.8 of a token
        #expect(bucket.take(now: 10.5) == true)    // one whole token after 0.5 s
        #expect(bucket.take(now: 100) && bucket.take(now: 100) && bucket.take(now: 100) && !bucket.take(now: 100))
        #expect(bucket.take(now: 50) == false)     // time going backwards adds nothing
    }

    @Test func suppressedLinesAreCountedOnTheNextOneThatPasses() {
        let lines = CollectedLines()
        let logger = Logger(label: "t") { _ in CollectingHandler(lines: lines) }
        let now = Mutex(0.0)
        let log = RateLimitedLog(logger: logger, burst: 2, perSecond: 1, clock: { now.withLock { $0 } })
        for _ in 0..<10 { log.warning("refused") }
        #expect(lines.count == 2)
        #expect(log.pendingSuppressed == 8)
        now.withLock { $0 = 1 }
        log.warning("refused")
        #expect(lines.count == 3)
        #expect(lines.last?.1["suppressed"] == "8")
        #expect(log.pendingSuppressed == 0)
    }
}

final class CollectedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [(String, Logger.Metadata)] = []
    func append(_ line: (String, Logger.Metadata)) { lock.withLock { items.append(line) } }
    var count: Int { lock.withLock { items.count } }
    var last: (String, Logger.Metadata)? { lock.withLock { items.last } }
}

struct CollectingHandler: LogHandler {
    let lines: CollectedLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.append(("\(event.message)", event.metadata ?? [:]))
    }
}

/// One HTTP/1.1 exchange over a fresh TCP connection; the server closes after its answer.
func httpExchange(port: Int, _ request: String) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw ControlError("test", "connect: \(String(cString: strerror(errno)))") }
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let bytes = Array(request.utf8)
    var sent = 0
    while sent < bytes.count {
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { break }   // the server may refuse (431) before reading everything
        sent += n
    }
    var answer: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        answer += chunk[0..<n]
    }
    return String(decoding: answer, as: UTF8.self)
}

@Suite struct MetricsServerTests {
    @Test func servesGetMetricsOnlyWithBoundedRequests() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let scrapes = Atomic<Int>(0)
        let server = MetricsServer(endpoint: MetricsEndpoint(host: "127.0.0.1", port: 0), snapshot: {
            scrapes.add(1, ordering: .relaxed)
            return group.next().makeSucceededFuture(sampleStats())
        }, group: group, logger: Fixture.logger)
        let port = try #require(try server.start().port)
        defer { server.stop() }

        let ok = try httpExchange(port: port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(ok.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(ok.prefix(200))")
        #expect(ok.lowercased().contains("content-type: text/plain; version=0.0.4"))
        #expect(ok.contains("upfd_port_rx_packets_total{port=\"n3\",role=\"n3\"} 5\n"))
        #expect(try httpExchange(port: port, "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 200"))
        #expect(try httpExchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 404"))
        #expect(try httpExchange(port: port, "GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 404"))
        let post = try httpExchange(port: port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        #expect(post.hasPrefix("HTTP/1.1 405"))
        #expect(post.lowercased().contains("allow: get"))
        #expect(try httpExchange(port: port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 405"))
        let huge = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: " + String(repeating: "a", count: 3 * MetricsServer.maxRequestBytes) + "\r\n\r\n"
        #expect(try httpExchange(port: port, huge).hasPrefix("HTTP/1.1 431"))
        #expect(try httpExchange(port: port, "NOT HTTP AT ALL\r\n\r\n").hasPrefix("HTTP/1.1 400"))
        // Only the two GET /metrics took a snapshot.
        #expect(scrapes.load(ordering: .relaxed) == 2)
    }
}

/// A data path that reports fixed rule counters.
final class FixedCounters: DatapathObserver {
    let values: [(packets: UInt64, bytes: UInt64)]
    let countedRulesPerSession: Int
    init(_ values: [(packets: UInt64, bytes: UInt64)], counted: Int) {
        self.values = values
        countedRulesPerSession = counted
    }
    var status: String { "running" }
    func statistics() -> JSONValue { .object([("status", .string("running"))]) }
    func ruleCounters(seid: UInt64, positions: Int) -> [(packets: UInt64, bytes: UInt64)]? {
        Array(values.prefix(positions))
    }
}

@Suite struct SessionCounterTests {
    static func session() -> Session {
        Session(seid: 7, ueIPv4: "10.60.0.7", n3: FTEID(teid: 700, address: "192.0.2.1"),
                rules: [Rule(id: 5, precedence: 50, source: .access, action: 1),
                        Rule(id: 9, precedence: 10, source: .access, action: 1),
                        Rule(id: 2, precedence: 10, source: .access, action: 1)],
                actions: [Action(id: 1, kind: .forwardN6)])
    }

    static func rules(_ counters: JSONValue?) -> [[String: String]] {
        guard case .array(let items)? = counters?["rules"] else { return [] }
        return items.map { item in
            guard case .object(let fields) = item else { return [:] }
            var out: [String: String] = [:]
            for (key, value) in fields {
                switch value {
                case .number(let n): out[key] = n
                case .bool(let b): out[key] = String(b)
                default: break
                }
            }
            return out
        }
    }

    @Test func sessionGetReportsEachRuleByIdInEvaluationOrder() throws {
        let h = try CoreHarness()
        h.core.datapath = FixedCounters([(3, 300), (7, 700), (1, 100)], counted: 8)
        _ = try h.ok(.sessionPut(Self.session()))
        let reply = try h.ok(.sessionGet(seid: 7))
        let counters = try #require(reply["counters"])
        #expect(counters["packets"] == .int(11) && counters["bytes"] == .int(1100))
        // Precedence, then id: 2 and 9 (precedence 10), then 5.
        #expect(Self.rules(counters) == [
            ["id": "2", "position": "0", "packets": "3", "bytes": "300"],
            ["id": "9", "position": "1", "packets": "7", "bytes": "700"],
            ["id": "5", "position": "2", "packets": "1", "bytes": "100"],
        ])
        // The same numbers from stats with `session`.
        let stats = try h.ok(.sessionStats(seid: 7))
        #expect(stats["seid"] == .int(7) && stats["counters"] == counters)
        #expect(h.refusal(.sessionStats(seid: 8))?.code == "not_found")
        #expect(h.refusal(.sessionStats(seid: 8))?.path == "session")
    }

    @Test func rulesBeyondTheCountedPositionsShareTheLastCounter() throws {
        let h = try CoreHarness()
        h.core.datapath = FixedCounters([(3, 300), (7, 700)], counted: 2)
        _ = try h.ok(.sessionPut(Self.session()))
        let counters = try #require(try h.ok(.sessionGet(seid: 7))["counters"])
        #expect(counters["packets"] == .int(10))
        #expect(Self.rules(counters) == [
            ["id": "2", "position": "0", "packets": "3", "bytes": "300"],
            ["id": "9", "position": "1", "packets": "7", "bytes": "700", "shared": "true"],
            ["id": "5", "position": "2", "packets": "7", "bytes": "700", "shared": "true"],
        ])
    }

    @Test func withoutADataPathThereAreNoCounters() throws {
        let h = try CoreHarness()
        _ = try h.ok(.sessionPut(Self.session()))
        #expect(try h.ok(.sessionGet(seid: 7))["counters"] == nil)
        #expect(try h.ok(.sessionStats(seid: 7))["counters"] == .string("not_running"))
    }

    @Test func statsTakesASessionOption() throws {
        func parse(_ line: String) -> Result<ControlRequest, ControlError> { ControlProtocol.parse(line: Array(line.utf8)).result }
        #expect(try parse(#"{"op":"stats","session":18446744073709551615}"#).get() == .sessionStats(seid: .max))
        #expect(try parse(#"{"op":"stats"}"#).get() == .stats)
        #expect(try parse(#"{"op":"stats","session":null}"#).get() == .stats)
        let wrong = parse(#"{"op":"stats","session":"7"}"#)
        guard case .failure(let error) = wrong else { Issue.record("a string SEID was accepted"); return }
        #expect(error.code == "invalid_field" && error.path == "session")
        guard case .failure(let unknown) = parse(#"{"op":"stats","seid":7}"#) else { Issue.record("accepted"); return }
        #expect(unknown.code == "unknown_field")
    }
}
