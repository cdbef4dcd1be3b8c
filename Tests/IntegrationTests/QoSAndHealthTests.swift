import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 5: MBR meters and engine health, on the built binaries (`upf-replay run`), inputs from
/// `Tests/Oracles/fastpath_cases.py` (cases `mbr-*` and `health`). In `FastPathTests`' suite so
/// that they are serialized with the other runs that pin the machine's two cores.
extension FastPathTests {
    /// Two workers on a two-core machine: lcore 2 shares CPU 0 with the main lcore (EAL's
    /// `--lcores` mapping), so the two workers run on different CPUs.
    static let twoWorkers = "0@0,1@1,2@0"

    struct MeterRun {
        var offered: Int
        var passed: Int
        var exceeded: Int
        var workerPackets: [Int]
        var drops: [String: Int]
        var elapsed: Double
        var loss: Double { Double(exceeded) / Double(offered) }
    }

    /// One `mbr-*` case at its real rate; `output` is the port the metered packets leave on.
    func meterRun(_ name: String, lcores: String, output: String) throws -> MeterRun {
        let c = try FastPathCase(name)
        defer { c.remove() }
        let rate = try #require(c.manifest.rate)
        let result = try runProcess(Paths.executable("upf-replay"),
                                    c.replayArguments(expect: false) + ["--rate", String(rate), "--lcores", lcores], timeout: 60)
        let run = ReplayRun(result: result, outputDirectory: c.outputDirectory)
        try run.requireSuccess()
        let workers = ((run.report["datapath"] as? [String: Any])?["workers"] as? [[String: Any]] ?? [])
            .map { ($0["packets"] as? NSNumber)?.intValue ?? -1 }
        let m = MeterRun(offered: c.manifest.frames.count, passed: run.outputPackets(output) ?? -1,
                         exceeded: run.drops["mbr_exceeded"] ?? 0, workerPackets: workers, drops: run.drops,
                         elapsed: (run.report["elapsed_seconds"] as? NSNumber)?.doubleValue ?? -1)
        print("\(name) (\(lcores)): offered \(m.offered) at \(rate) pps in \(m.elapsed) s, passed \(m.passed), "
              + "mbr_exceeded \(m.exceeded) (loss \(String(format: "%.2f", m.loss * 100)) %), workers \(m.workerPackets)")
        #expect(m.passed + m.exceeded == m.offered, "\(name): every packet passed or was counted mbr_exceeded")
        #expect(Set(m.drops.keys).isSubset(of: ["mbr_exceeded"]), "\(name): drops \(m.drops)")
        return m
    }

    @Test("QoS MBR uplink (one worker): 0.99x the limit passes whole, 2x loses 50% +- 2% as mbr_exceeded",
          .enabled(if: toolsPresent, toolsMessage))
    func mbrUplink() throws {
        let under = try meterRun("mbr-uplink-0.99", lcores: "0,1", output: "core")
        #expect(under.exceeded == 0 && under.passed == under.offered, "0.99x: \(under.exceeded) over the limit")
        let over = try meterRun("mbr-uplink-2", lcores: "0,1", output: "core")
        #expect(abs(over.loss - 0.5) <= 0.02, "2x: loss \(over.loss)")
    }

    @Test("QoS MBR downlink on two workers charging one meter (core and engine ports): 0.99x passes, 2x loses 50% +- 2%",
          .enabled(if: toolsPresent, toolsMessage))
    func mbrDownlinkTwoWorkers() throws {
        for (name, factor) in [("mbr-downlink-0.99", 0.99), ("mbr-downlink-2", 2.0)] {
            let m = try meterRun(name, lcores: FastPathTests.twoWorkers, output: "n3")
            // Both workers processed half the packets each: the meter was shared.
            #expect(m.workerPackets.count == 2 && m.workerPackets.allSatisfy { $0 == m.offered / 2 },
                    "\(name): per-worker packets \(m.workerPackets)")
            if factor < 1 {
                #expect(m.exceeded == 0 && m.passed == m.offered, "0.99x: \(m.exceeded) over the limit")
            } else {
                #expect(abs(m.loss - 0.5) <= 0.02, "2x: loss \(m.loss)")
            }
        }
    }

    // MARK: Engine health

    /// A free TCP port on 127.0.0.1 (bound and released; the test binds it again later).
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw UpfdTestError("cannot bind a TCP port") }
        return UInt16(bigEndian: sa.sin_port)
    }

    /// A listening TCP socket on 127.0.0.1:`port` (the kernel completes the probes' handshakes).
    static func listen(on port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        sa.sin_port = port.bigEndian
        let ok = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        } && Glibc.listen(fd, 64) == 0
        guard ok else {
            close(fd)
            throw UpfdTestError("cannot listen on 127.0.0.1:\(port)")
        }
        return fd
    }

    struct Phase {
        var steer = 0, downDrop = 0, coreTx = 0, enginesTx = 0
    }

    static func phase(_ client: SocketClient) throws -> Phase {
        let stats = try client.call(#"{"op":"stats"}"#)
        let datapath = stats["datapath"] as? [String: Any] ?? [:]
        var p = Phase()
        p.steer = ((datapath["actions"] as? [String: Any])?["steer"] as? [String: Any])?.int("packets") ?? -1
        p.downDrop = (datapath["drops"] as? [String: Any])?.int("engine_down_drop") ?? 0
        for port in datapath["ports"] as? [[String: Any]] ?? [] {
            if port["name"] as? String == "core" { p.coreTx = port.int("tx_packets") ?? -1 }
            if port["name"] as? String == "engines" { p.enginesTx = port.int("tx_packets") ?? -1 }
        }
        return p
    }

    static func engineState(_ client: SocketClient) throws -> (state: String, instance: [String: Any]) {
        let list = try client.call(#"{"op":"engine.list"}"#)
        let engine = (list["engines"] as? [[String: Any]])?.first ?? [:]
        return (engine["state"] as? String ?? "?", (engine["instances"] as? [[String: Any]])?.first ?? [:])
    }

    static func waitFor(_ state: String, _ client: SocketClient, seconds: Double) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try engineState(client).state == state { return true }
            usleep(20_000)
        }
        return false
    }

    @Test("engine health: probe failing -> fallback drop (nothing to the core); listener started -> steering resumes; counters per phase",
          .enabled(if: toolsPresent, toolsMessage))
    func engineHealthFallbackAndRecovery() throws {
        let port = try FastPathTests.freePort()
        let c = try FastPathCase("health", environment: ["PROBE_PORT": String(port)])
        defer { c.remove() }
        let paced = try PacedReplay(c, rate: 100, eventsTimeout: 5)
        defer { paced.remove() }
        let (replay, control, events) = (paced.process, paced.control, paced.events)

        // Phase 1: nothing listens on the probe port.
        try #require(try FastPathTests.waitFor("down", control, seconds: 5), "engine never went down")
        let (_, downInstance) = try FastPathTests.engineState(control)
        #expect(downInstance["state"] as? String == "down" && downInstance["probe"] as? String == "down"
                && downInstance["link"] as? String == "up", "instance: \(downInstance)")
        let health = try control.call(#"{"op":"health"}"#)
        #expect(health["status"] as? String == "ok" && (health["engines"] as? [String: Any])?["llm"] as? String == "down",
                "health: \(health)")
        let a = try FastPathTests.phase(control)
        Thread.sleep(forTimeInterval: 1.5)
        let b = try FastPathTests.phase(control)
        print("down: steer \(a.steer)->\(b.steer), engine_down_drop \(a.downDrop)->\(b.downDrop), core tx \(b.coreTx)")
        #expect(b.steer == a.steer, "steered while the engine was down")
        #expect(b.downDrop - a.downDrop >= 100, "1.5 s at 100 pps: \(b.downDrop - a.downDrop) engine_down_drop")
        #expect(b.coreTx == 0, "fallback drop: nothing may go to the core")

        // Phase 2: the engine answers its probe.
        let listener = try FastPathTests.listen(on: port)
        defer { close(listener) }
        try #require(try FastPathTests.waitFor("up", control, seconds: 3), "engine never came back up")
        let c1 = try FastPathTests.phase(control)
        Thread.sleep(forTimeInterval: 1.5)
        let d = try FastPathTests.phase(control)
        print("up: steer \(c1.steer)->\(d.steer), engine_down_drop \(c1.downDrop)->\(d.downDrop), engines tx \(d.enginesTx)")
        #expect(d.steer - c1.steer >= 100, "steering resumed: \(d.steer - c1.steer) steered in 1.5 s")
        #expect(d.downDrop == c1.downDrop, "dropped as down after the engine came back")
        #expect(((try control.call(#"{"op":"health"}"#))["engines"] as? [String: Any])?["llm"] as? String == "up")

        let result = replay.finish(timeout: 60)
        let run = ReplayRun(result: result, outputDirectory: c.outputDirectory)
        try run.requireSuccess()
        let count = c.manifest.frames.count
        #expect(run.outputPackets("core") == 0)
        #expect((run.outputPackets("engines") ?? 0) + (run.drops["engine_down_drop"] ?? 0) == count, "drops: \(run.drops)")
        #expect(Set(run.drops.keys).isSubset(of: ["engine_down_drop"]), "drops: \(run.drops)")
        // The event stream saw the engine come back (its going down may precede the subscription:
        // the checks start with the data path, before the socket is served).
        var states: [String] = []
        while states.last != "up", let line = events.readLine() {
            if let event = try? parseObject(line), event["event"] as? String == "engine_state", let s = event["state"] as? String {
                states.append(s)
            }
        }
        #expect(states.last == "up" && !states.dropLast().contains("up"), "engine_state events: \(states)")
    }
}
