import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 5, observability, on the built binaries: `upf-replay run` with the metrics endpoint on
/// (127.0.0.1, a free port) replays the `rules` case of `fastpath_cases.py` — ten packets of one
/// session over four rules with known outcomes — then keeps serving (`--linger`). `curl` fetches
/// /metrics; the numbers must be the ones `upfctl --json stats` reports, and the rule counters of
/// `session show` must be the packets and inner bytes the case sent to each rule.
@Suite(.serialized)
struct ObservabilityTests {
    static let curl = URL(fileURLWithPath: "/usr/bin/curl")
    static let toolsPresent = FastPathTests.toolsPresent && FileManager.default.isExecutableFile(atPath: curl.path)
    static let toolsMessage: Comment = "needs scapy, tshark and curl (tools/setup installs them)"

    /// A TCP port nobody listens on right now (bound to port 0, then released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw UpfdTestError("cannot bind a free port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// `name{labels} value` of an exposition, by series (`name{labels}`).
    static func exposition(_ text: String) -> [String: Double] {
        var series: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            series[String(line[..<space])] = value
        }
        return series
    }

    /// The series the `stats` answer should become, worked out here independently of upfd's
    /// exporter: data-path counters only (control counters move with every request, this one too).
    static func expectedSeries(_ stats: [String: Any]) -> [String: Double] {
        func number(_ value: Any?) -> Double? { (value as? NSNumber)?.doubleValue }
        var out: [String: Double] = [:]
        let datapath = stats["datapath"] as? [String: Any] ?? [:]
        for port in datapath["ports"] as? [[String: Any]] ?? [] {
            let labels = "port=\"\(port["name"] ?? "")\",role=\"\(port["role"] ?? "")\""
            for field in ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "tx_dropped"] {
                out["upfd_port_\(field)_total{\(labels)}"] = number(port[field])
            }
        }
        for worker in datapath["workers"] as? [[String: Any]] ?? [] {
            out["upfd_worker_packets_total{worker=\"\(worker["index"] ?? "")\",lcore=\"\(worker["lcore"] ?? "")\"}"] = number(worker["packets"])
        }
        for (action, value) in datapath["actions"] as? [String: [String: Any]] ?? [:] {
            out["upfd_action_packets_total{action=\"\(action)\"}"] = number(value["packets"])
            out["upfd_action_bytes_total{action=\"\(action)\"}"] = number(value["bytes"])
        }
        for (reason, value) in datapath["drops"] as? [String: Any] ?? [:] {
            out["upfd_drops_total{reason=\"\(reason)\"}"] = number(value)
        }
        for engine in datapath["engines"] as? [[String: Any]] ?? [] {
            let id = engine["id"] as? String ?? ""
            for instance in engine["instances"] as? [[String: Any]] ?? [] {
                let labels = "engine=\"\(id)\",instance=\"\(instance["index"] ?? "")\",port=\"\(instance["port"] ?? "")\""
                out["upfd_engine_steered_packets_total{\(labels)}"] = number(instance["packets"])
                out["upfd_engine_steered_bytes_total{\(labels)}"] = number(instance["bytes"])
            }
            out["upfd_engine_fallback_packets_total{engine=\"\(id)\",fallback=\"drop\"}"] = number(engine["fallback_drop"])
            out["upfd_engine_fallback_packets_total{engine=\"\(id)\",fallback=\"core\"}"] = number(engine["fallback_core"])
        }
        out["upfd_dropped_packets_total"] = number(datapath["dropped"])
        for (counter, value) in datapath["local"] as? [String: Any] ?? [:] {
            out["upfd_local_packets_total{counter=\"\(counter)\"}"] = number(value)
        }
        out["upfd_answered_packets_total"] = number(datapath["answered"])
        out["upfd_absorbed_packets_total"] = number(datapath["absorbed"])
        out["upfd_sessions"] = number(stats["sessions"])
        out["upfd_policy_version"] = number(stats["policy_version"])
        return out
    }

    static let dataPathPrefixes = ["upfd_port_rx", "upfd_port_tx", "upfd_worker_packets", "upfd_action_", "upfd_drops_",
                                   "upfd_engine_", "upfd_dropped_", "upfd_local_", "upfd_answered_", "upfd_absorbed_"]

    @Test("the metrics endpoint shows the numbers of upfctl stats --json; rule counters match the replay's packets",
          .enabled(if: toolsPresent, toolsMessage))
    func metricsMatchStatsAndRuleCountersMatchTheReplay() throws {
        let c = try FastPathCase("rules")
        defer { c.remove() }
        let port = try Self.freePort()
        let config = c.path("metrics.yaml")
        let base = try String(contentsOfFile: c.path("config.yaml"), encoding: .utf8)
        try (base + "\nmetrics:\n  listen: \"127.0.0.1:\(port)\"\n").write(toFile: config, atomically: true, encoding: .utf8)
        let socketDirectory = "/tmp/obs-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: socketDirectory) }
        let socket = socketDirectory + "/control.sock"
        let log = c.path("replay.log")
        var arguments = c.replayArguments(expect: false)
        arguments[arguments.firstIndex(of: "--config")! + 1] = config
        let replay = try BackgroundProcess(Paths.executable("upf-replay"),
                                           arguments + ["--socket", socket, "--linger", "60"], logFile: log)
        defer { replay.kill() }

        // Every packet has been through the data path when the harness says it lingers.
        let deadline = Date().addingTimeInterval(60)
        var logText = ""
        while Date() < deadline, replay.isRunning {
            logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if logText.contains("replay complete") { break }
            usleep(50_000)
        }
        try #require(logText.contains("replay complete"), "the replay did not complete:\n\(logText)")

        func upfctl(_ args: [String]) throws -> ProcessResult {
            try runProcess(Paths.executable("upfctl"), ["--socket", socket] + args, timeout: 30)
        }
        let metrics = try runProcess(Self.curl, ["-sS", "--max-time", "10", "http://127.0.0.1:\(port)/metrics"], timeout: 30)
        #expect(metrics.status == 0, "curl: \(metrics.stderr)")
        let statsRun = try upfctl(["--json", "stats"])
        #expect(statsRun.status == 0, "upfctl stats: \(statsRun.stderr)")
        let stats = try parseObject(statsRun.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let scraped = Self.exposition(metrics.stdout)
        let expected = Self.expectedSeries(stats)

        // Every data-path number of stats is on the endpoint, with the same value...
        #expect(expected.count > 20)
        for (series, value) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(scraped[series] == value, "\(series): metrics \(scraped[series].map { "\($0)" } ?? "missing"), stats \(value)")
        }
        // ... and the endpoint has no data-path series that stats does not have.
        for series in scraped.keys where Self.dataPathPrefixes.contains(where: series.hasPrefix) {
            #expect(expected[series] != nil, "\(series) is on the endpoint but not in stats")
        }
        // Counted what the case sent: 10 packets in, 3 steered to llm's one instance.
        let frames = c.manifest.frames
        #expect(scraped["upfd_port_rx_packets_total{port=\"n3\",role=\"n3\"}"] == Double(frames.count))
        #expect(scraped["upfd_engine_steered_packets_total{engine=\"llm\",instance=\"0\",port=\"engines\"}"] == 3)

        // Rules by their outcome in the case: 2 steers, 3 drops, 4 (QFI 3) goes to N6, 1 is the N9 default.
        let ruleOf = ["engines": 2, "rule_drop": 3, "core-n6": 4, "core": 1]
        var packets: [Int: Int] = [:], bytes: [Int: Int] = [:]
        for frame in frames {
            let rule = try #require(ruleOf[frame.outcome ?? ""], "unexpected outcome \(frame.outcome ?? "nil")")
            packets[rule, default: 0] += 1
            bytes[rule, default: 0] += frame.innerBytes.count
        }
        let show = try upfctl(["--json", "session", "show", "1"])
        #expect(show.status == 0, "upfctl session show: \(show.stderr)")
        let session = try parseObject(show.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let counters = try #require(session["counters"] as? [String: Any], "no counters in \(show.stdout)")
        let rules = counters["rules"] as? [[String: Any]] ?? []
        #expect(rules.map { $0.int("id") ?? -1 } == [2, 3, 4, 1], "evaluation order: \(rules)")
        for rule in rules {
            let id = rule.int("id") ?? -1
            #expect(rule.int("packets") == packets[id], "rule \(id) packets: \(rule)")
            #expect(rule.int("bytes") == bytes[id], "rule \(id) bytes: \(rule)")
        }
        #expect(counters.int("packets") == frames.count)
        #expect(counters.int("bytes") == frames.reduce(0) { $0 + $1.innerBytes.count })
        // The same numbers from stats with `session`, and as a table for humans.
        let perSession = try parseObject(try upfctl(["--json", "stats", "--session", "1"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines))
        #expect((perSession["counters"] as? [String: Any])?.int("packets") == frames.count)
        let human = try upfctl(["session", "show", "1"])
        #expect(human.stdout.contains("RULE  POSITION  PACKETS  BYTES"), "\(human.stdout)")
        let table = try upfctl(["stats"])
        #expect(table.stdout.contains("ENGINE") && table.stdout.contains("llm"), "\(table.stdout)")

        // Only GET /metrics.
        func status(_ extra: [String], _ path: String) throws -> String {
            try runProcess(Self.curl, ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"] + extra
                           + ["http://127.0.0.1:\(port)\(path)"], timeout: 30).stdout
        }
        #expect(try status([], "/") == "404")
        #expect(try status(["-X", "POST"], "/metrics") == "405")

        kill(replay.pid, SIGTERM)
        let result = replay.finish(timeout: 30)
        #expect(result.status == 0, "upf-replay exited \(result.status):\n\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    @Test("a non-loopback metrics address stops start-up unless allow_remote says otherwise")
    func nonLoopbackNeedsAllowRemote() throws {
        let directory = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("upfd.yaml").path
        let state = directory.appendingPathComponent("state.json").path
        try "state_file: \(state)\nmetrics: {listen: \"0.0.0.0:9464\"}\n".write(toFile: file, atomically: true, encoding: .utf8)
        let refused = try runProcess(Paths.executable("upfd"), ["--config", file, "--check"], timeout: 30)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("metrics.listen") && refused.stderr.contains("allow_remote"), "\(refused.stderr)")
        try "state_file: \(state)\nmetrics: {listen: \"0.0.0.0:9464\", allow_remote: true}\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        let allowed = try runProcess(Paths.executable("upfd"), ["--config", file, "--check"], timeout: 30)
        #expect(allowed.status == 0, "\(allowed.stderr)")
    }

    @Test("eal.telemetry: DPDK's telemetry socket serves the ports' driver counters, consistent with upfctl stats")
    func dpdkTelemetryServesPortStatistics() throws {
        let prefix = "upfd-tm-\(UUID().uuidString.prefix(8))"
        // net_null with RX: the port receives (zero-filled frames, dropped as not_ip) so its counters move.
        let upfd = try UpfdInstance(top: ["eal:", "  file_prefix: \(prefix)", "  telemetry: true",
                                          "  vdevs: [\"net_null0,size=64\", \"net_null1,no-rx=1\", \"net_null2,no-rx=1\"]"])
        try upfd.start()
        defer { upfd.stop(); try? FileManager.default.removeItem(atPath: "/var/run/dpdk/\(prefix)") }
        func upfdReceived() throws -> Int {
            let stats = try upfd.call(#"{"op":"stats"}"#)
            let ports = try #require((stats["datapath"] as? [String: Any])?["ports"] as? [[String: Any]])
            return try #require((ports[0]["device_stats"] as? [String: Any])?["ipackets"] as? Int)
        }
        let script = """
            import json, socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect("/var/run/dpdk/%s/dpdk_telemetry.v2" % sys.argv[1])
            json.loads(s.recv(1024))
            out = {}
            for query in ("/ethdev/list", "/ethdev/stats,0"):
                s.send(query.encode())
                out.update(json.loads(s.recv(65536)))
            print(json.dumps(out))
            """
        Thread.sleep(forTimeInterval: 0.5)
        let before = try upfdReceived()
        let result = try runProcess(FastPathTests.python, ["-c", script, prefix], timeout: 30)
        let after = try upfdReceived()
        #expect(result.status == 0, "telemetry client: \(result.stderr)")
        let answer = try parseObject(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(answer["/ethdev/list"] as? [Int] == [0, 1, 2], "\(answer)")
        let telemetry = try #require((answer["/ethdev/stats"] as? [String: Any])?["ipackets"] as? Int, "\(answer)")
        print("telemetry: ipackets \(before) (upfctl) <= \(telemetry) (telemetry) <= \(after) (upfctl)")
        #expect(before > 0 && before <= telemetry && telemetry <= after)
    }
}
