import Foundation
import Testing
import UPFCapture

#if canImport(Glibc)
import Glibc
#endif

/// Issue 4, the fast path, end to end: scapy builds the inputs (`Tests/Oracles/fastpath_cases.py`),
/// `upf-replay run` pushes them through the real data path (DPDK ring ports, the worker on lcore 1),
/// and tshark decodes what each port sent. The harness's own JSON report supplies the counters.
///
/// Every case uses `Configs/replay/fastpath.yaml` (fixed MACs) and tags each user packet (inner
/// IPv4 Identification or IPv6 flow label) so that every output frame is traced to the input
/// frame it came from; its inner packet must leave the UPF byte for byte as scapy built it.
///
/// Serialized: each run pins lcores 0 and 1 (and the machine has two cores).
@Suite(.serialized)
struct FastPathTests {
    // MARK: The topology of Configs/replay/fastpath.yaml

    enum Net {
        static let n3MAC = "02:00:00:00:01:fe", gnbRouterMAC = "02:00:00:00:01:01"
        static let coreMAC = "02:00:00:00:02:fe", coreNextHopMAC = "02:00:00:00:02:01"
        static let enginesMAC = "02:00:00:00:50:fe", llmMAC = "02:00:00:00:50:10"
        static let n3IP = "192.0.2.1", coreIP = "203.0.113.2", peerIP = "203.0.113.1"
        static let gnbIP = "192.0.2.100", gnb2IP = "192.0.2.101"
    }

    static let python = URL(fileURLWithPath: "/usr/bin/python3")
    static let generator = Paths.packageRoot.appendingPathComponent("Tests/Oracles/fastpath_cases.py")

    static let toolsPresent: Bool = {
        FileManager.default.isExecutableFile(atPath: python.path)
            && (try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["tshark", "--version"], timeout: 30).status) == 0
            && (try? runProcess(python, ["-c", "import scapy.contrib.gtp"], timeout: 30).status) == 0
    }()
    static let toolsMessage: Comment = "needs /usr/bin/python3 with scapy, and tshark (tools/setup installs them)"

    // MARK: 1. Uplink steer

    @Test("1: uplink G-PDUs with and without PSC are decapsulated and steered to the engine instance",
          .enabled(if: toolsPresent, toolsMessage))
    func uplinkSteer() throws {
        let c = try FastPathCase("steer")
        defer { c.remove() }
        let run = try c.replay()
        try run.requireSuccess()
        let sent = c.manifest.frames.count
        #expect(run.inputPackets("n3") == sent)
        #expect(run.outputPackets("engines") == sent && run.outputPackets("core") == 0 && run.outputPackets("n3") == 0)
        #expect(run.action("steer") == sent)
        #expect(run.actionBytes("steer") == c.manifest.frames.reduce(0) { $0 + $1.innerBytes.count })
        #expect(run.drops.isEmpty, "drops: \(run.drops)")

        let frames = try readEgress(run.output("engines"))
        #expect(frames.count == sent)
        let tags = expectInnerPackets(frames, c.manifest, port: "engines")
        #expect(tags == c.manifest.frames.compactMap(\.tag), "engines: frames out of order or missing")
        for f in frames {
            expectPlainFrame(f, c.manifest, source: Net.enginesMAC, destination: Net.llmMAC, port: "engines")
        }
    }

    // MARK: 2. N9

    @Test("2: the default N9 rule re-encapsulates: TEID 5000, core address to the peer, UL PSC with the QFI, nothing inherited",
          .enabled(if: toolsPresent, toolsMessage))
    func uplinkN9() throws {
        let c = try FastPathCase("n9")
        defer { c.remove() }
        let run = try c.replay()
        try run.requireSuccess()
        let sent = c.manifest.frames.count
        #expect(run.outputPackets("core") == sent && run.outputPackets("engines") == 0 && run.outputPackets("n3") == 0)
        #expect(run.action("n9") == sent)
        #expect(run.drops.isEmpty, "drops: \(run.drops)")

        let frames = try readEgress(run.output("core"))
        #expect(frames.count == sent)
        let tags = expectInnerPackets(frames, c.manifest, port: "core")
        #expect(tags == c.manifest.frames.compactMap(\.tag))
        for f in frames {
            guard let tag = f.tag, let qfi = c.manifest.qfi?[String(tag)] else { continue }
            // Input 13 had S, PN, an unknown extension and a PSC; 14 only the unknown extension;
            // 15 S without E: each leaves with flags 0x34 and the PSC alone.
            expectTunnelFrame(f, c.manifest, teid: 5000, outerSource: Net.coreIP, outerDestination: Net.peerIP,
                        source: Net.coreMAC, destination: Net.coreNextHopMAC, qfi: qfi, pduType: 1, port: "core")
        }
    }

    // MARK: 3. N6

    @Test("3: an n6 rule decapsulates to the core next hop", .enabled(if: toolsPresent, toolsMessage))
    func uplinkN6() throws {
        let c = try FastPathCase("n6")
        defer { c.remove() }
        let run = try c.replay()
        try run.requireSuccess()
        let sent = c.manifest.frames.count
        #expect(run.outputPackets("core") == sent && run.outputPackets("engines") == 0)
        #expect(run.action("n6") == sent)
        let frames = try readEgress(run.output("core"))
        #expect(expectInnerPackets(frames, c.manifest, port: "core") == c.manifest.frames.compactMap(\.tag))
        for f in frames {
            expectPlainFrame(f, c.manifest, source: Net.coreMAC, destination: Net.coreNextHopMAC, port: "core")
        }
    }

    // MARK: 4. Precedence, filters, drop

    @Test("4: a filtered rule of lower precedence value wins over the default rule of the same TEID; drop rules count rule_drop",
          .enabled(if: toolsPresent, toolsMessage))
    func rulePrecedenceAndDrop() throws {
        let c = try FastPathCase("rules")
        defer { c.remove() }
        let run = try c.replay()
        try run.requireSuccess()
        #expect(run.drops == ["rule_drop": 2], "drops: \(run.drops)")
        #expect(run.action("steer") == 3 && run.action("n9") == 4 && run.action("n6") == 1)

        let engines = try readEgress(run.output("engines"))
        let core = try readEgress(run.output("core"))
        let steered = expectInnerPackets(engines, c.manifest, port: "engines")
        let forwarded = expectInnerPackets(core, c.manifest, port: "core")
        #expect(steered == c.manifest.tags(outcome: "engines"), "flow A (the inference application) must be steered")
        #expect(forwarded == c.manifest.tags(outcomes: ["core", "core-n6"]), "flow B must go to N9, flow C (QFI 3) to N6")
        for f in engines {
            expectPlainFrame(f, c.manifest, source: Net.enginesMAC, destination: Net.llmMAC, port: "engines")
        }
        for f in core {
            guard let tag = f.tag else { continue }
            if c.manifest.frame(tag: tag)?.outcome == "core-n6" {
                expectPlainFrame(f, c.manifest, source: Net.coreMAC, destination: Net.coreNextHopMAC, port: "core")
            } else {
                expectTunnelFrame(f, c.manifest, teid: 5000, outerSource: Net.coreIP, outerDestination: Net.peerIP,
                            source: Net.coreMAC, destination: Net.coreNextHopMAC, qfi: 9, pduType: 1, port: "core")
            }
        }
    }

    @Test("4: engines without a usable instance: fallback core forwards by the next non-steering rule, fallback drop drops",
          .enabled(if: toolsPresent, toolsMessage))
    func engineFallback() throws {
        let c = try FastPathCase("fallback")
        defer { c.remove() }
        let run = try c.replay()
        try run.requireSuccess()
        #expect(run.outputPackets("engines") == 0, "no instance has a MAC: nothing may be sent to the engines port")
        #expect(run.action("engine_fallback_core") == 1 && run.action("n9") == 2 && run.action("steer") == 0)
        #expect(run.drops == ["engine_down_drop": 1], "drops: \(run.drops)")
        let core = try readEgress(run.output("core"))
        #expect(expectInnerPackets(core, c.manifest, port: "core") == [81, 83])
        for f in core {
            expectTunnelFrame(f, c.manifest, teid: 5000, outerSource: Net.coreIP, outerDestination: Net.peerIP,
                        source: Net.coreMAC, destination: Net.coreNextHopMAC, qfi: 9, pduType: 1, port: "core")
        }
    }

    // MARK: 5. Downlink

    @Test("5: downlink from an engine and from the core (N6) is encapsulated to the session's gNB with a DL PSC",
          .enabled(if: toolsPresent, toolsMessage))
    func downlink() throws {
        let c = try FastPathCase("downlink")
        defer { c.remove() }
        let run = try c.replay()
        try run.requireSuccess()
        let tunnels = try #require(c.manifest.tunnels)
        #expect(run.inputPackets("core") == 7 && run.inputPackets("engines") == 3)
        #expect(run.outputPackets("n3") == tunnels.count && run.outputPackets("core") == 0 && run.outputPackets("engines") == 0)
        #expect(run.action("n3") == tunnels.count)
        #expect(run.drops == ["no_session_for_ue": 1, "no_matching_rule": 1], "drops: \(run.drops)")
        // Session 3 buffers (no gNB yet): held, not sent, not dropped (BufferingTests releases such packets).
        #expect(run.local("buffered") == 1 && run.local("buffer_released") == 0)

        let frames = try readEgress(run.output("n3"))
        let tags = expectInnerPackets(frames, c.manifest, port: "n3")
        // Two input ports: their frames may interleave differently, each port's keep their order.
        #expect(tags.sorted() == tunnels.keys.compactMap { Int($0) }.sorted())
        for port in ["core", "engines"] {
            let ofPort = Set(c.manifest.frames.filter { $0.port == port }.compactMap(\.tag))
            let order = tags.filter { ofPort.contains($0) }
            #expect(order == order.sorted(), "frames from \(port) reordered: \(order)")
        }
        for f in frames {
            guard let tag = f.tag, let tunnel = tunnels[String(tag)] else { continue }
            expectTunnelFrame(f, c.manifest, teid: tunnel.teid, outerSource: Net.n3IP, outerDestination: tunnel.gnb,
                        source: Net.n3MAC, destination: Net.gnbRouterMAC, qfi: tunnel.qfi, pduType: 0, port: "n3")
        }
        // UDP to and from port 2152 of a UE is user data, encapsulated like any other.
        let userPorts = frames.filter { [53, 54].contains($0.tag) }
        #expect(userPorts.count == 2)
        for f in userPorts {
            #expect(f.all("udp.dstport").count >= 2, "tag \(f.tag ?? -1): the inner UDP datagram is inside the tunnel")
        }
    }

    // MARK: 6. UE to UE

    @Test("6: UE to UE goes where the default rule says (N9) unless an uplink n3 rule hairpins it to the other UE's gNB",
          .enabled(if: toolsPresent, toolsMessage))
    func ueToUE() throws {
        let c = try FastPathCase("ue-to-ue")
        defer { c.remove() }
        let run = try c.replay()
        try run.requireSuccess()
        #expect(run.action("hairpin") == 2 && run.action("n9") == 2 && run.action("n3") == 0)
        #expect(run.drops == ["hairpin_no_session": 1], "drops: \(run.drops)")

        let core = try readEgress(run.output("core"))
        let n3 = try readEgress(run.output("n3"))
        #expect(expectInnerPackets(core, c.manifest, port: "core") == [61, 63])
        #expect(expectInnerPackets(n3, c.manifest, port: "n3") == [62, 65])
        if core.count == 2 {
            // A -> B with only the default rule: A's N9 action, never B's gNB.
            expectTunnelFrame(core[0], c.manifest, teid: 5000, outerSource: Net.coreIP, outerDestination: Net.peerIP,
                        source: Net.coreMAC, destination: Net.coreNextHopMAC, qfi: 9, pduType: 1, port: "core")
            expectTunnelFrame(core[1], c.manifest, teid: 5002, outerSource: Net.coreIP, outerDestination: Net.peerIP,
                        source: Net.coreMAC, destination: Net.coreNextHopMAC, qfi: 9, pduType: 1, port: "core")
        }
        if n3.count == 2 {
            // C -> B: B's gNB tunnel and B's default QFI; C -> A: A's.
            expectTunnelFrame(n3[0], c.manifest, teid: 4097, outerSource: Net.n3IP, outerDestination: Net.gnb2IP,
                        source: Net.n3MAC, destination: Net.gnbRouterMAC, qfi: 5, pduType: 0, port: "n3")
            expectTunnelFrame(n3[1], c.manifest, teid: 4096, outerSource: Net.n3IP, outerDestination: Net.gnbIP,
                        source: Net.n3MAC, destination: Net.gnbRouterMAC, qfi: 9, pduType: 0, port: "n3")
        }
    }

    // MARK: 7. BAD_INPUTS.md 1-19

    @Test("7: BAD_INPUTS 1-19 between valid G-PDUs: each bad one dropped under its reason, every valid one forwarded",
          .enabled(if: toolsPresent, toolsMessage))
    func badInputs() throws {
        let c = try FastPathCase("bad-inputs")
        defer { c.remove() }
        let run = try c.replay()
        try run.requireSuccess()
        let expectedDrops = try #require(c.manifest.drops)
        let valid = try #require(c.manifest.valid)
        #expect(run.inputPackets("n3") == c.manifest.frames.count)
        #expect(run.outputPackets("core") == valid)
        #expect(run.action("n6") == valid)
        // Reason by reason, so that a difference names the case.
        for (reason, count) in expectedDrops.sorted(by: { $0.key < $1.key }) {
            let cases = c.manifest.frames.filter { $0.outcome == reason }.map(\.label)
            #expect(run.drops[reason] == count, "\(reason): expected \(count), got \(run.drops[reason] ?? 0) — cases: \(cases)")
        }
        let unexpected = run.drops.filter { expectedDrops[$0.key] == nil }
        #expect(unexpected.isEmpty, "drops under reasons no bad input should produce: \(unexpected)")
        #expect(run.dropped == c.manifest.bad)
        // Specifically named by the issue.
        #expect(run.drops["unknown_teid"] == 9, "case 10 and the 8 unknown TEIDs of case 13 (Error Indications off)")
        #expect(run.local("echo_response_sent") == 8 && c.manifest.answered == 8, "case 13's Echo Requests are answered")
        #expect(run.outputPackets("n3") == 8)
        #expect((run.drops["outer_fragment"] ?? 0) >= 2, "case 14's fragments")

        let frames = try readEgress(run.output("core"))
        let tags = expectInnerPackets(frames, c.manifest, port: "core")
        #expect(tags == c.manifest.tags(outcome: "core"), "the valid packets around the bad ones, in order")
        for f in frames {
            expectPlainFrame(f, c.manifest, source: Net.coreMAC, destination: Net.coreNextHopMAC, port: "core")
        }
        // Case 15: UDP 2152 -> 2152 inside the tunnel is user data, forwarded as it is.
        let inside = frames.filter { c.manifest.frame(tag: $0.tag ?? -1)?.label.hasPrefix("15") == true }
        #expect(inside.count == 1)
        if let f = inside.first {
            #expect(f.first("udp.srcport") == "2152" && f.first("udp.dstport") == "2152")
        }
    }

    // MARK: 8. Policy change while traffic flows

    @Test("8: a rule changed through the socket mid-replay: one switch point from steer to N9, no packet lost",
          .enabled(if: toolsPresent, toolsMessage))
    func policyChangeWhileReplaying() throws {
        let c = try FastPathCase("switch")
        defer { c.remove() }
        let count = try #require(c.manifest.count)
        // A short path: Unix socket paths are limited to 107 bytes.
        let socketDirectory = "/tmp/fp-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: socketDirectory) }
        let socket = socketDirectory + "/control.sock"
        let replay = try BackgroundProcess(Paths.executable("upf-replay"),
                                           c.replayArguments(expect: false) + ["--rate", "200", "--socket", socket])
        defer { replay.kill() }

        // The socket is served from just before the first packet.
        var started: Date?
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, replay.isRunning {
            if let client = try? SocketClient(path: socket, timeout: 2), (try? client.call(#"{"op":"health"}"#))?.ok == true {
                started = Date()
                break
            }
            usleep(20_000)
        }
        try #require(started != nil, "the replay's control socket never answered: \(replay.finish(timeout: 30).stderr)")
        Thread.sleep(until: started!.addingTimeInterval(1.0))
        let applied = try runProcess(Paths.executable("upfctl"),
                                     ["--socket", socket, "apply", "--changes", c.path(c.manifest.changes ?? "changes.yaml")],
                                     timeout: 30)
        let appliedAt = Date().timeIntervalSince(started!)
        #expect(applied.status == 0, "upfctl apply: \(applied.stdout)\(applied.stderr)")

        let result = replay.finish(timeout: 60)
        let run = ReplayRun(result: result, outputDirectory: c.outputDirectory)
        try run.requireSuccess()
        // --rate 200: 400 packets take about 2 s.
        let elapsed = (run.report["elapsed_seconds"] as? NSNumber)?.doubleValue ?? -1
        #expect(elapsed >= 1.8 && elapsed < 10, "400 packets at 200 pps took \(elapsed) s")
        let engines = try readEgress(run.output("engines"))
        let core = try readEgress(run.output("core"))
        let before = expectInnerPackets(engines, c.manifest, port: "engines")
        let after = expectInnerPackets(core, c.manifest, port: "core")
        // No packet lost, each went exactly one way.
        #expect(before.count + after.count == count, "engines \(before.count) + core \(after.count) != \(count) sent")
        #expect(Set(before).union(after) == Set(1...count))
        #expect(run.drops.isEmpty, "drops: \(run.drops)")
        // Both ways were used: the change landed mid-replay (applied \(appliedAt) s after the socket came up).
        #expect(!before.isEmpty && !after.isEmpty, "steered \(before.count), N9 \(after.count); change applied at \(appliedAt) s")
        // One switch point: every steered packet precedes every N9 packet.
        #expect(before == before.sorted() && after == after.sorted())
        if let lastSteered = before.max(), let firstN9 = after.min() {
            #expect(lastSteered < firstN9, "packets went the old way after the switch: last steered \(lastSteered), first N9 \(firstN9)")
        }
        for f in engines {
            expectPlainFrame(f, c.manifest, source: Net.enginesMAC, destination: Net.llmMAC, port: "engines")
        }
        for f in core {
            expectTunnelFrame(f, c.manifest, teid: 5000, outerSource: Net.coreIP, outerDestination: Net.peerIP,
                        source: Net.coreMAC, destination: Net.coreNextHopMAC, qfi: 9, pduType: 1, port: "core")
        }
    }

    // MARK: 9. Lifecycle

    @Test("9: thousands of frames on three ports as fast as the rings take them: all accounted for, every mbuf returned",
          .enabled(if: toolsPresent, toolsMessage))
    func stressAccountsForEveryFrame() throws {
        let c = try FastPathCase("stress")
        defer { c.remove() }
        let run = try c.replay()
        try run.requireSuccess()  // exit 0 includes the harness's mempool-whole check
        #expect(!run.result.stderr.lowercased().contains("leak"), "\(run.result.stderr.suffix(2000))")
        let counts = try #require(c.manifest.counts)
        let rounds = try #require(c.manifest.rounds)
        for (port, n) in counts { #expect(run.inputPackets(port) == n, "input \(port)") }
        let input = counts.values.reduce(0, +)
        let output = ["n3", "core", "engines"].reduce(0) { $0 + (run.outputPackets($1) ?? 0) }
        #expect(output + (run.dropped ?? -1) == input, "in \(input) != out \(output) + dropped \(run.dropped ?? -1)")
        #expect(run.answered == 0 && run.absorbed == 0)
        #expect(run.drops == ["gtp_extension_zero_length": rounds, "unknown_teid": rounds], "drops: \(run.drops)")
        // tshark reads back every frame the report claims.
        for port in ["n3", "core", "engines"] {
            let listed = try runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                        ["tshark", "-n", "-r", run.output(port), "-T", "fields", "-e", "frame.number"])
            #expect(listed.stdout.split(separator: "\n").count == run.outputPackets(port), "\(port).pcap")
        }
    }

    @Test("--json: the report is one strict JSON object (no name twice in an object)", .enabled(if: toolsPresent, toolsMessage))
    func reportIsStrictJSON() throws {
        let c = try FastPathCase("steer")
        defer { c.remove() }
        let run = try c.replay()
        try run.requireSuccess()
        // RFC 8259 §4: names SHOULD be unique; the project's own reader refuses duplicates, and a
        // reader that keeps the last one loses the first (here: which device a port is).
        let reportFile = c.path("report.json")
        try run.result.stdout.write(toFile: reportFile, atomically: true, encoding: .utf8)
        let strict = try runProcess(Self.python, ["-c", """
            import json, sys
            def pairs(items):
                keys = [k for k, _ in items]
                dup = sorted({k for k in keys if keys.count(k) > 1})
                if dup: sys.exit("duplicate names %s in an object with names %s" % (dup, keys))
                return dict(items)
            json.loads(open(sys.argv[1]).read(), object_pairs_hook=pairs)
            """, reportFile])
        #expect(strict.status == 0, "the --json report is not strict JSON: \(strict.stderr)")
    }

    @Test("the harness ignores the configuration's devices and EAL device lists (PCI, vdevs): ring ports only",
          .enabled(if: toolsPresent, toolsMessage))
    func configurationDevicesAreIgnored() throws {
        let c = try FastPathCase("devices")
        defer { c.remove() }
        let run = try c.replay()
        try run.requireSuccess()
        #expect(run.outputPackets("core") == 1)
        let frames = try readEgress(run.output("core"))
        #expect(expectInnerPackets(frames, c.manifest, port: "core") == [71])
    }

    @Test("without --config: the embedded default ports (core next hop 02:00:00:00:02:01, source MACs the ring ports')",
          .enabled(if: toolsPresent, toolsMessage))
    func embeddedDefaultConfiguration() throws {
        let c = try FastPathCase("n6")
        defer { c.remove() }
        // fastpath.yaml's expectations name its MACs: not for this run.
        var arguments = c.replayArguments(expect: false)
        arguments.removeSubrange(arguments.firstIndex(of: "--config")!...arguments.firstIndex(of: "--config")! + 1)
        let run = ReplayRun(result: try runProcess(Paths.executable("upf-replay"), arguments, timeout: 120),
                         outputDirectory: c.outputDirectory)
        #expect(run.result.status == 0, "\(run.diagnostics)")
        #expect(run.outputPackets("core") == c.manifest.frames.count)
        let frames = try readEgress(run.output("core"))
        #expect(expectInnerPackets(frames, c.manifest, port: "core") == c.manifest.frames.compactMap(\.tag))
        for f in frames {
            #expect(f.first("eth.dst") == Net.coreNextHopMAC)
            #expect(f.first("eth.src") != Net.coreMAC, "fastpath.yaml's MAC is not the default's")
            // A unicast address: the multicast bit of the first octet is clear.
            #expect(f.bytes.count > 6 && f.bytes[6] & 1 == 0, "source MAC \(f.first("eth.src") ?? "-")")
        }
    }

    @Test("--expect: a mismatch exits 2 with one readable line per difference", .enabled(if: toolsPresent, toolsMessage))
    func expectMismatch() throws {
        let c = try FastPathCase("n6")
        defer { c.remove() }
        let wrong = c.path("wrong-expect.yaml")
        try """
            ports:
              core:
                count: 4
                packets:
                  - { kind: gpdu, dst_mac: "02:00:00:00:02:01" }
            drops: { rule_drop: 1 }
            actions: { n6: 3 }
            """.write(toFile: wrong, atomically: true, encoding: .utf8)
        let result = try runProcess(Paths.executable("upf-replay"), c.replayArguments(expect: false) + ["--expect", wrong],
                                    timeout: 60)
        #expect(result.status == 2, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("ports.core.count: expected 4 frames, got 3"))
        #expect(result.stderr.contains("ports.core.packets[0].kind: expected gpdu, got ip"))
        #expect(result.stderr.contains("drops.rule_drop: expected 1, got 0"))
        #expect(!result.stderr.contains("dst_mac"), "a field that matches is not a difference")
        let report = ReplayRun(result: result, outputDirectory: c.outputDirectory)
        #expect(report.expectOK == false)
        #expect(report.mismatches.count == 3, "\(report.mismatches)")
    }

    @Test("an input on a port the configuration does not have: exit status 1 naming the ports", .enabled(if: toolsPresent, toolsMessage))
    func unknownInputPort() throws {
        let c = try FastPathCase("n6")
        defer { c.remove() }
        let result = try runProcess(Paths.executable("upf-replay"),
                                    ["run", "--config", c.path("config.yaml"), "--input", "n4=\(c.path("in-n3.pcap"))",
                                     "--output-dir", c.outputDirectory.path], timeout: 60)
        #expect(result.status == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("n3, core, engines"), "stderr: \(result.stderr)")
    }

    @Test("--wait-for-subscribers: needs --socket (exit 64 naming it)", .enabled(if: toolsPresent, toolsMessage))
    func waitForSubscribersNeedsTheSocket() throws {
        let c = try FastPathCase("n6")
        defer { c.remove() }
        let result = try runProcess(Paths.executable("upf-replay"),
                                    ["run", "--config", c.path("config.yaml"), "--input", "n3=\(c.path("in-n3.pcap"))",
                                     "--output-dir", c.outputDirectory.path, "--wait-for-subscribers", "1"], timeout: 60)
        #expect(result.status == 64, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("--wait-for-subscribers needs --socket"), "stderr: \(result.stderr)")
    }

    @Test("9: upfd on net_null ports starts in under 2 s (health says the data path runs) and exits 0 on SIGTERM")
    func upfdStartsAndStops() throws {
        let directory = URL(fileURLWithPath: "/tmp/upfd-fp-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let socket = directory.appendingPathComponent("run/control.sock").path
        let config = directory.appendingPathComponent("upfd.yaml").path
        // The embedded default (net_null ports on lcores 0,1; 1M-session tables) with the socket and
        // the state file moved to the temporary directory.
        try """
            control:
              socket: \(socket)
            state_file: \(directory.path)/state/state.json
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let log = directory.appendingPathComponent("upfd.log").path
        let upfd = try BackgroundProcess(Paths.executable("upfd"), ["--config", config], logFile: log)
        defer { upfd.kill() }
        let spawned = Date()

        var startup: TimeInterval?
        var lastHealth: [String: Any]?
        while Date().timeIntervalSince(spawned) < 20, upfd.isRunning {
            if let client = try? SocketClient(path: socket, timeout: 2), let health = try? client.call(#"{"op":"health"}"#) {
                lastHealth = health
                if health["datapath"] as? String == "running" {
                    startup = Date().timeIntervalSince(spawned)
                    break
                }
            }
            usleep(10_000)
        }
        let logText = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        let time = try #require(startup, "the data path never reported running; last health \(String(describing: lastHealth)); log:\n\(logText())")
        #expect(time < 2.0, "start-up took \(time) s (spawn to health with datapath running)")

        let health = try runProcess(Paths.executable("upfctl"), ["--socket", socket, "health"], timeout: 10)
        #expect(health.status == 0, "\(health.stdout)\(health.stderr)")
        #expect(health.stdout.contains("datapath: running"), "\(health.stdout)")

        let stopping = Date()
        kill(upfd.pid, SIGTERM)
        let result = upfd.finish(timeout: 15)
        let stopTime = Date().timeIntervalSince(stopping)
        #expect(result.status == 0, "exit status \(result.status); log:\n\(logText())")
        #expect(stopTime < 5, "SIGTERM to exit took \(stopTime) s")
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket file is left behind")
    }
}

// MARK: - Running a case

/// A case written by `fastpath_cases.py` into a temporary directory.
struct FastPathCase {
    struct Manifest: Decodable {
        struct Frame: Decodable {
            var port: String
            var tag: Int?
            var outcome: String?
            var label: String
            var inner: String?
            var version: Int?
            var src: String?
            var dst: String?

            var innerBytes: [UInt8] {
                guard let inner else { return [] }
                var bytes: [UInt8] = []
                var index = inner.startIndex
                while index < inner.endIndex {
                    let next = inner.index(index, offsetBy: 2)
                    bytes.append(UInt8(inner[index..<next], radix: 16)!)
                    index = next
                }
                return bytes
            }
        }
        struct Tunnel: Decodable {
            var teid: Int
            var gnb: String
            var qfi: Int
        }
        var inputs: [String: String]
        var frames: [Frame]
        var expect: String?
        var qfi: [String: Int]?
        var tunnels: [String: Tunnel]?
        var drops: [String: Int]?
        var valid: Int?
        var bad: Int?
        var count: Int?
        var changes: String?
        var counts: [String: Int]?
        var rounds: Int?
        var answered: Int?
        var flood: Int?
        var rate_per_peer: Int?
        var rate: Double?
        var limit_pps: Double?

        func frame(tag: Int) -> Frame? { frames.first { $0.tag == tag } }
        func tags(outcome: String) -> [Int] { tags(outcomes: [outcome]) }
        func tags(outcomes: Set<String>) -> [Int] {
            frames.filter { outcomes.contains($0.outcome ?? "") }.compactMap(\.tag)
        }
    }

    let name: String
    let directory: URL
    let manifest: Manifest
    var outputDirectory: URL { directory.appendingPathComponent("out") }

    init(_ name: String, environment: [String: String]? = nil) throws {
        self.name = name
        directory = try Paths.temporaryDirectory()
        let generated = try runProcess(FastPathTests.python, [FastPathTests.generator.path, name, directory.path], timeout: 120,
                                       environment: environment)
        guard generated.status == 0 else {
            try? FileManager.default.removeItem(at: directory)
            throw UpfdTestError("fastpath_cases.py \(name) failed: \(generated.stderr)")
        }
        manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: directory.appendingPathComponent("manifest.json")))
    }

    func path(_ file: String) -> String { directory.appendingPathComponent(file).path }

    func remove() { try? FileManager.default.removeItem(at: directory) }

    func replayArguments(expect: Bool = true) -> [String] {
        var arguments = ["run", "--config", path("config.yaml"), "--policy", path("policy.yaml"),
                         "--output-dir", outputDirectory.path, "--json"]
        for (port, file) in manifest.inputs.sorted(by: { $0.key < $1.key }) {
            arguments += ["--input", "\(port)=\(path(file))"]
        }
        if expect, let file = manifest.expect { arguments += ["--expect", path(file)] }
        return arguments
    }

    /// `upf-replay run --json` with the case's files (and its --expect file, when it has one).
    func replay(expect: Bool = true) throws -> ReplayRun {
        let result = try runProcess(Paths.executable("upf-replay"), replayArguments(expect: expect), timeout: 120)
        return ReplayRun(result: result, outputDirectory: outputDirectory)
    }
}

/// A finished replay: its exit status, output and `--json` report.
struct ReplayRun {
    let result: ProcessResult
    let outputDirectory: URL
    let report: [String: Any]

    init(result: ProcessResult, outputDirectory: URL) {
        self.result = result
        self.outputDirectory = outputDirectory
        let line = result.stdout.split(separator: "\n").last { $0.hasPrefix("{") }.map(String.init) ?? ""
        report = (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
    }

    /// stderr without DPDK's EAL chatter.
    var diagnostics: String {
        result.stderr.split(separator: "\n").filter { !$0.hasPrefix("EAL:") }.joined(separator: "\n")
    }

    /// Exit status 0, a report, and (when --expect was given) every expectation met.
    func requireSuccess(sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(result.status == 0, "upf-replay run exited \(result.status):\n\(diagnostics)", sourceLocation: sourceLocation)
        try #require(!report.isEmpty, "no JSON report on stdout:\n\(result.stdout)\n\(diagnostics)", sourceLocation: sourceLocation)
        if let ok = expectOK {
            #expect(ok, "--expect: \(mismatches.joined(separator: "\n"))", sourceLocation: sourceLocation)
        }
    }

    func output(_ port: String) -> String { outputDirectory.appendingPathComponent("\(port).pcap").path }

    private func object(_ keys: String...) -> [String: Any]? {
        var current: Any? = report
        for key in keys { current = (current as? [String: Any])?[key] }
        return current as? [String: Any]
    }

    private static func int(_ value: Any?) -> Int? { (value as? NSNumber)?.intValue }

    func inputPackets(_ port: String) -> Int? { ReplayRun.int(object("input", port)?["packets"]) }
    func outputPackets(_ port: String) -> Int? { ReplayRun.int(object("output", port)?["packets"]) }
    func action(_ name: String) -> Int? { ReplayRun.int(object("datapath", "actions", name)?["packets"]) }
    func actionBytes(_ name: String) -> Int? { ReplayRun.int(object("datapath", "actions", name)?["bytes"]) }
    var drops: [String: Int] { (object("datapath", "drops") ?? [:]).compactMapValues { ReplayRun.int($0) } }
    var dropped: Int? { ReplayRun.int(object("datapath")?["dropped"]) }
    /// A `LocalCounter` (answers, signalling taken in, requests sent).
    func local(_ name: String) -> Int? { ReplayRun.int(object("datapath", "local")?[name]) }
    var answered: Int? { ReplayRun.int(object("datapath")?["answered"]) }
    var absorbed: Int? { ReplayRun.int(object("datapath")?["absorbed"]) }
    var expectOK: Bool? { object("expect")?["ok"] as? Bool }
    var mismatches: [String] { object("expect")?["mismatches"] as? [String] ?? [] }
}

// MARK: - Output frames, decoded twice

/// One output frame: tshark's fields (every occurrence, outer first) and, from the bytes, the inner
/// IP packet it carries (after the GTP-U header and its extensions when it is a tunnel).
struct EgressFrame {
    let index: Int
    let bytes: [UInt8]
    let fields: [String: [String]]
    /// Outer IPv4/UDP 2152 from one of the UPF's addresses: a GTP-U tunnel the UPF wrote.
    let tunnel: Bool
    let inner: [UInt8]

    /// The inner IPv4 Identification or IPv6 flow label.
    var tag: Int? {
        guard let first = inner.first else { return nil }
        switch first >> 4 {
        case 4 where inner.count >= 20: return Int(inner[4]) << 8 | Int(inner[5])
        case 6 where inner.count >= 40: return (Int(inner[1]) & 0x0F) << 16 | Int(inner[2]) << 8 | Int(inner[3])
        default: return nil
        }
    }

    func all(_ field: String) -> [String] { fields[field] ?? [] }
    func first(_ field: String) -> String? { fields[field]?.first }

    /// tshark's reading of the inner header's `src`/`dst` (the outer is always IPv4 here).
    func innerAddress(_ which: String, version: Int) -> String? {
        let values = all(version == 6 ? "ipv6.\(which)" : "ip.\(which)")
        let position = tunnel && version == 4 ? 1 : 0
        return position < values.count ? values[position] : nil
    }
}

let egressTsharkFields = [
    "frame.len", "frame.protocols", "eth.src", "eth.dst", "eth.type", "ip.src", "ip.dst", "ip.len", "ip.ttl", "ip.flags.df",
    "ip.checksum.status", "ipv6.src", "ipv6.dst", "udp.srcport", "udp.dstport", "udp.checksum", "gtp.flags", "gtp.flags.e",
    "gtp.flags.s", "gtp.flags.pn", "gtp.message", "gtp.teid", "gtp.length", "gtp.ext_hdr.length",
    "gtp.ext_hdr.pdu_ses_con.qos_flow_id", "gtp.ext_hdr.pdu_ses_con.pdu_type",
]

let upfOwnAddresses: Set<[UInt8]> = [[192, 0, 2, 1], [203, 0, 113, 2]]

/// Reads `path` with tshark (fields) and with the capture reader (bytes).
func readEgress(_ path: String) throws -> [EgressFrame] {
    var arguments = ["tshark", "-n", "-r", path, "-o", "ip.check_checksum:TRUE", "-T", "fields",
                     "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in egressTsharkFields { arguments += ["-e", field] }
    let decoded = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), arguments, timeout: 60)
    guard decoded.status == 0 else { throw UpfdTestError("tshark -r \(path): \(decoded.stderr)") }
    let lines = decoded.stdout.split(separator: "\n", omittingEmptySubsequences: true)

    var frames: [EgressFrame] = []
    let reader = try PcapReader(path: path)
    while let frame = try reader.next() {
        let bytes = Array(frame.bytes)
        var fields: [String: [String]] = [:]
        if frames.count < lines.count {
            let values = lines[frames.count].split(separator: "\t", omittingEmptySubsequences: false)
            for (field, value) in zip(egressTsharkFields, values) where !value.isEmpty {
                fields[field] = value.split(separator: ",").map(String.init)
            }
        }
        let (tunnel, inner) = egressInnerPacket(bytes)
        frames.append(EgressFrame(index: frames.count + 1, bytes: bytes, fields: fields, tunnel: tunnel, inner: inner))
    }
    #expect(lines.count == frames.count, "tshark read \(lines.count) frames of \(path), the capture reader \(frames.count)")
    return frames
}

/// The inner IP packet of an output frame: after Ethernet, or after Ethernet/IPv4/UDP/GTP-U (and
/// its extension headers, each walked by its length) when the UPF wrote a tunnel.
func egressInnerPacket(_ b: [UInt8]) -> (tunnel: Bool, inner: [UInt8]) {
    guard b.count >= 14 else { return (false, []) }
    let etherType = Int(b[12]) << 8 | Int(b[13])
    guard etherType == 0x0800, b.count >= 14 + 20 + 8 + 8, upfOwnAddresses.contains(Array(b[26..<30])), b[23] == 17 else {
        return (false, Array(b[14...]))
    }
    let udp = 14 + Int(b[14] & 0x0F) * 4
    guard Int(b[udp + 2]) << 8 | Int(b[udp + 3]) == 2152 else { return (false, Array(b[14...])) }
    let gtp = udp + 8
    let gtpLength = Int(b[gtp + 2]) << 8 | Int(b[gtp + 3])
    let end = min(b.count, gtp + 8 + gtpLength)
    var offset = gtp + 8
    if b[gtp] & 0x07 != 0 {
        guard offset + 4 <= end else { return (true, []) }
        var next = b[offset + 3]
        offset += 4
        if b[gtp] & 0x04 != 0 {
            while next != 0 {
                guard offset < end, b[offset] > 0, offset + Int(b[offset]) * 4 <= end else { return (true, []) }
                let length = Int(b[offset]) * 4
                next = b[offset + length - 1]
                offset += length
            }
        }
    }
    return (true, Array(b[offset..<end]))
}

// MARK: - Checks

/// Every frame carries an inner packet the generator built, unchanged byte for byte, whose
/// addresses tshark reads as scapy wrote them. Returns the frames' tags in output order.
func expectInnerPackets(_ frames: [EgressFrame], _ manifest: FastPathCase.Manifest, port: String,
                sourceLocation: SourceLocation = #_sourceLocation) -> [Int] {
    var tags: [Int] = []
    for f in frames {
        guard let tag = f.tag, let built = manifest.frame(tag: tag) else {
            Issue.record("\(port) frame \(f.index): no inner packet of the inputs (\(f.inner.count) inner bytes)",
                         sourceLocation: sourceLocation)
            continue
        }
        tags.append(tag)
        #expect(f.inner == built.innerBytes,
                "\(port) frame \(f.index) (tag \(tag), \(built.label)): the inner packet differs from the one sent",
                sourceLocation: sourceLocation)
        let version = built.version ?? 4
        #expect(f.innerAddress("src", version: version) == built.src && f.innerAddress("dst", version: version) == built.dst,
                "\(port) frame \(f.index) (tag \(tag)): tshark reads inner \(f.innerAddress("src", version: version) ?? "-") -> \(f.innerAddress("dst", version: version) ?? "-"), sent \(built.src ?? "-") -> \(built.dst ?? "-")",
                sourceLocation: sourceLocation)
    }
    return tags
}

/// A decapsulated frame: Ethernet from `source` to `destination` around the inner packet, nothing else.
func expectPlainFrame(_ f: EgressFrame, _ manifest: FastPathCase.Manifest, source: String, destination: String, port: String,
                sourceLocation: SourceLocation = #_sourceLocation) {
    let what = "\(port) frame \(f.index) (tag \(f.tag ?? -1))"
    let version = f.tag.flatMap { manifest.frame(tag: $0)?.version } ?? 4
    #expect(!f.tunnel, "\(what): expected plain IP, got a GTP-U tunnel", sourceLocation: sourceLocation)
    #expect(f.first("eth.src") == source && f.first("eth.dst") == destination,
            "\(what): Ethernet \(f.first("eth.src") ?? "-") -> \(f.first("eth.dst") ?? "-"), expected \(source) -> \(destination)",
            sourceLocation: sourceLocation)
    #expect(f.first("eth.type") == (version == 6 ? "0x86dd" : "0x0800"), "\(what): EtherType \(f.first("eth.type") ?? "-")",
            sourceLocation: sourceLocation)
    #expect(f.bytes.count == f.inner.count + 14, "\(what): \(f.bytes.count) bytes for an inner packet of \(f.inner.count)",
            sourceLocation: sourceLocation)
    let firstLayer = f.first("frame.protocols")?.split(separator: ":").dropFirst(2).first
    #expect(firstLayer == (version == 6 ? "ipv6" : "ip"), "\(what): layers \(f.first("frame.protocols") ?? "-")",
            sourceLocation: sourceLocation)
}

/// A frame the UPF encapsulated: Ethernet, IPv4 (DF, TTL 64, good checksum), UDP 2152 (checksum 0),
/// GTP-U G-PDU with flags 0x34 (E for the PDU Session Container only), the TEID, exactly one
/// extension header (the PSC, of `pduType` 0 = DL / 1 = UL, with `qfi`) and the inner packet.
func expectTunnelFrame(_ f: EgressFrame, _ manifest: FastPathCase.Manifest, teid: Int, outerSource: String,
                 outerDestination: String, source: String, destination: String, qfi: Int, pduType: Int, port: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    let what = "\(port) frame \(f.index) (tag \(f.tag ?? -1))"
    func expectField(_ field: String, _ expected: String) {
        #expect(f.first(field) == expected, "\(what): \(field) = \(f.first(field) ?? "(absent)"), expected \(expected)",
                sourceLocation: sourceLocation)
    }
    #expect(f.tunnel, "\(what): expected a GTP-U tunnel from the UPF, got \(f.first("frame.protocols") ?? "-")",
            sourceLocation: sourceLocation)
    expectField("eth.src", source)
    expectField("eth.dst", destination)
    expectField("eth.type", "0x0800")
    expectField("ip.src", outerSource)
    expectField("ip.dst", outerDestination)
    expectField("ip.ttl", "64")
    expectField("ip.flags.df", "1")
    expectField("ip.checksum.status", "1")
    expectField("ip.len", String(f.bytes.count - 14))
    expectField("udp.dstport", "2152")
    expectField("udp.checksum", "0x0000")
    expectField("gtp.message", "0xff")
    expectField("gtp.flags", "0x34")
    expectField("gtp.flags.s", "0")
    expectField("gtp.flags.pn", "0")
    expectField("gtp.length", String(f.inner.count + 8))
    #expect(f.first("gtp.teid").flatMap(tsharkNumber) == teid, "\(what): TEID \(f.first("gtp.teid") ?? "-"), expected \(teid)",
            sourceLocation: sourceLocation)
    // The outer GTP-U header's extensions: tshark lists them before any of an inner lookalike's.
    let outerExtensions = f.tunnel ? outerGTPExtensionCount(f.bytes) : -1
    #expect(outerExtensions == 1, "\(what): \(outerExtensions) extension headers, expected only the PDU Session Container",
            sourceLocation: sourceLocation)
    expectField("gtp.ext_hdr.pdu_ses_con.qos_flow_id", String(qfi))
    expectField("gtp.ext_hdr.pdu_ses_con.pdu_type", String(pduType))
}

/// The number of extension headers of the first GTP-U header in the frame.
func outerGTPExtensionCount(_ b: [UInt8]) -> Int {
    let gtp = 14 + Int(b[14] & 0x0F) * 4 + 8
    guard b.count >= gtp + 12, b[gtp] & 0x04 != 0 else { return 0 }
    var next = b[gtp + 11], offset = gtp + 12, count = 0
    while next != 0, offset < b.count, b[offset] > 0, offset + Int(b[offset]) * 4 <= b.count {
        count += 1
        next = b[offset + Int(b[offset]) * 4 - 1]
        offset += Int(b[offset]) * 4
    }
    return count
}

/// tshark's numbers: decimal or 0x-prefixed hexadecimal.
func tsharkNumber(_ text: String) -> Int? {
    text.hasPrefix("0x") ? Int(text.dropFirst(2), radix: 16) : Int(text)
}

// MARK: - A child process that runs while the test works

final class BackgroundProcess: @unchecked Sendable {
    private let process = Process()
    private let out = Pipe(), err = Pipe()
    private let lock = NSLock()
    private var outData = Data(), errData = Data()
    private let readers = DispatchGroup()
    private let name: String

    /// Standard output and error go to pipes, or both to `logFile`.
    init(_ executable: URL, _ arguments: [String], logFile: String? = nil) throws {
        name = "\(executable.lastPathComponent) \(arguments.joined(separator: " "))"
        process.executableURL = executable
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        if let logFile {
            _ = FileManager.default.createFile(atPath: logFile, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
            process.standardOutput = handle
            process.standardError = handle
        } else {
            process.standardOutput = out
            process.standardError = err
        }
        try process.run()
        if logFile == nil {
            for (pipe, isOut) in [(out, true), (err, false)] {
                readers.enter()
                DispatchQueue.global().async { [self] in
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    lock.withLock { if isOut { outData = data } else { errData = data } }
                    readers.leave()
                }
            }
        }
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Waits for the exit (killing the process at the deadline, which fails the test).
    func finish(timeout: TimeInterval) -> ProcessResult {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            Issue.record("\(name) still running after \(timeout) s: killed")
            kill()
        }
        process.waitUntilExit()
        readers.wait()
        return lock.withLock {
            ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                          stderr: String(decoding: errData, as: UTF8.self))
        }
    }

    func kill() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// A case replayed at a paced rate with its control socket served, for tests that change the
/// policy or watch events while packets flow: the replay process, a client that has seen the
/// socket answer `health`, and a second connection subscribed to `events`.
struct PacedReplay {
    let process: BackgroundProcess
    let control: SocketClient
    let events: SocketClient
    /// The socket's directory (removed by `remove`).
    let directory: String

    init(_ c: FastPathCase, rate: Int, eventsTimeout: Double = 8) throws {
        directory = "/tmp/pr-\(UUID().uuidString.prefix(8))"
        let socket = directory + "/control.sock"
        let replay = try BackgroundProcess(Paths.executable("upf-replay"),
                                           c.replayArguments(expect: false) + ["--rate", String(rate), "--socket", socket])
        var client: SocketClient?
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, replay.isRunning, client == nil {
            if let s = try? SocketClient(path: socket, timeout: 5), (try? s.call(#"{"op":"health"}"#))?.ok == true { client = s }
            else { usleep(20_000) }
        }
        guard let client else {
            replay.kill()
            throw UpfdTestError("the replay's socket never answered: \(replay.finish(timeout: 30).stderr)")
        }
        let events = try SocketClient(path: socket, timeout: eventsTimeout)
        guard try events.call(#"{"op":"events"}"#).ok else {
            replay.kill()
            throw UpfdTestError("the events subscription was refused")
        }
        process = replay
        control = client
        self.events = events
    }

    /// Stops the replay if it still runs and removes the socket's directory.
    func remove() {
        process.kill()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
