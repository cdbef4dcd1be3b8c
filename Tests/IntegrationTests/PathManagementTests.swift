import Foundation
import Testing

/// GTP-U path management and L2 through the built `upf-replay` (the real data path on ring
/// ports), inputs from `Tests/Oracles/fastpath_cases.py`, outputs decoded by tshark.
@Suite(.serialized) struct PathManagementTests {
    typealias F = FastPathTests

    /// tshark's fields of every frame of `file` (one array per frame, in order).
    static func fields(_ file: String, _ names: [String], decodeAs: [String] = []) throws -> [[String]] {
        var arguments = ["tshark", "-n", "-r", file, "-T", "fields", "-E", "occurrence=f"]
        for d in decodeAs { arguments += ["-d", d] }
        for name in names { arguments += ["-e", name] }
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), arguments, timeout: 60)
        try #require(result.status == 0, "tshark: \(result.stderr)")
        return result.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            .map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    @Test("Echo Request → one Echo Response; ARP request → one ARP reply; a flood of 10,000 unknown-TEID G-PDUs → Error Indications at most at the per-peer rate, with the right IEs; a received Error Indication shows in `upfctl events`",
          .enabled(if: F.toolsPresent, F.toolsMessage))
    func echoErrorIndicationAndEvents() throws {
        let c = try FastPathCase("path-management")
        defer { c.remove() }
        let flood = try #require(c.manifest.flood)
        let ratePerPeer = try #require(c.manifest.rate_per_peer)
        let socketDirectory = "/tmp/pm-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: socketDirectory) }
        let socket = socketDirectory + "/control.sock"
        // 10,000 packets per second: the flood lasts about a second of real time. The replay
        // holds its first packet until `upfctl events` below has subscribed: the gNB's Error
        // Indication is the capture's last frame, and under load a subscriber started after the
        // socket appeared could miss it.
        let pps = 10_000.0
        let replay = try BackgroundProcess(Paths.executable("upf-replay"),
                                           c.replayArguments(expect: false)
                                               + ["--rate", "\(Int(pps))", "--socket", socket, "--wait-for-subscribers", "1"])
        defer { replay.kill() }
        var events: BackgroundProcess?
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, replay.isRunning, events == nil {
            if FileManager.default.fileExists(atPath: socket) {
                events = try BackgroundProcess(Paths.executable("upfctl"), ["--socket", socket, "--json", "events"])
            } else {
                usleep(5_000)
            }
        }
        let subscriber = try #require(events, "the replay's socket never appeared")
        defer { subscriber.kill() }
        let run = ReplayRun(result: replay.finish(timeout: 60), outputDirectory: c.outputDirectory)
        try run.requireSuccess()
        usleep(200_000)   // the control thread moves worker events every 10 ms
        subscriber.kill()
        let received = subscriber.finish(timeout: 5).stdout

        let elapsed = (run.report["elapsed_seconds"] as? NSNumber)?.doubleValue ?? 0
        let local = (run.report["datapath"] as? [String: Any])?["local"] as? [String: Any] ?? [:]
        func counted(_ name: String) -> Int { (local[name] as? NSNumber)?.intValue ?? -1 }
        let sentEI = counted("error_indication_sent")
        // One worker: at most one per 1/rate s, plus the first.
        let bound = Int((elapsed * Double(ratePerPeer)).rounded(.up)) + 1
        #expect(sentEI >= 1 && sentEI <= bound, "\(sentEI) Error Indications in \(elapsed) s at \(ratePerPeer)/s per peer")
        #expect(sentEI + (run.drops["unknown_teid"] ?? 0) == flood, "each unknown-TEID G-PDU answered or counted")
        #expect(counted("echo_response_sent") == 1 && counted("arp_reply_sent") == 1 && counted("error_indication_received") == 1)
        #expect(run.outputPackets("n3") == 2 + sentEI)
        #expect(run.outputPackets("core") == 0 && run.outputPackets("engines") == 0)

        // tshark: the Echo Response goes back to the request's source port 40000.
        let frames = try Self.fields(run.output("n3"), [
            "eth.src", "eth.dst", "ip.src", "ip.dst", "udp.srcport", "udp.dstport", "gtp.message", "gtp.seq_number",
            "gtp.recovery", "gtp.teid", "gtp.teid_data", "gtp.gsn_ipv4", "gtp.ext_hdr.udp_port", "arp.opcode",
            "arp.src.proto_ipv4", "arp.src.hw_mac", "arp.dst.proto_ipv4",
        ], decodeAs: ["udp.port==40000,gtp"])
        #expect(frames.count == 2 + sentEI)
        let echo = frames.filter { $0[6] == "0x02" }
        try #require(echo.count == 1, "\(frames)")
        #expect(echo[0][0] == F.Net.n3MAC && echo[0][1] == F.Net.gnbRouterMAC)
        #expect(echo[0][2] == F.Net.n3IP && echo[0][3] == F.Net.gnbIP && echo[0][4] == "2152" && echo[0][5] == "40000")
        #expect(echo[0][7] == "0x4242" && echo[0][8] == "0", "same sequence, Recovery 0")
        let arp = frames.filter { $0[13] == "2" }
        try #require(arp.count == 1)
        #expect(arp[0][14] == F.Net.n3IP && arp[0][15] == F.Net.n3MAC && arp[0][16] == "192.0.2.254")
        let indications = frames.filter { $0[6] == "0x1a" }
        #expect(indications.count == sentEI)
        for f in indications {
            #expect(f[2] == F.Net.n3IP && f[3] == F.Net.gnbIP && f[5] == "2152")
            #expect(f[9] == "0x00000000" && f[10] == "0x0badc0de" && f[11] == F.Net.n3IP && f[12] == "33333",
                    "TEID 0, TEID Data I, GSN Address, UDP Port extension: \(f)")
        }

        // The gNB's Error Indication reached the event stream.
        let lines = received.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let reported = lines.filter { $0["event"] as? String == "error_indication" }
        #expect(reported.count == 1, "events: \(received)")
        if let e = reported.first {
            #expect((e["teid"] as? NSNumber)?.intValue == 0x1000 && e["peer"] as? String == F.Net.gnbIP
                    && e["port"] as? String == "n3")
        }
    }

    @Test("A core next hop given by address: an ARP request goes out first, the reply teaches its MAC, every N9 packet goes to it",
          .enabled(if: F.toolsPresent, F.toolsMessage))
    func nextHopResolvedByARP() throws {
        let c = try FastPathCase("next-hop-arp")
        defer { c.remove() }
        let count = try #require(c.manifest.count)
        let result = try runProcess(Paths.executable("upf-replay"), c.replayArguments(expect: false) + ["--rate", "500"],
                                    timeout: 120)
        let run = ReplayRun(result: result, outputDirectory: c.outputDirectory)
        try run.requireSuccess()
        #expect(run.drops.isEmpty, "drops: \(run.drops)")
        let frames = try Self.fields(run.output("core"), ["eth.dst", "eth.src", "arp.opcode", "arp.src.proto_ipv4",
                                                          "arp.dst.proto_ipv4", "gtp.teid"])
        try #require(!frames.isEmpty)
        #expect(frames[0] == ["ff:ff:ff:ff:ff:ff", F.Net.coreMAC, "1", F.Net.coreIP, F.Net.peerIP, ""], "first: the ARP request")
        let tunnels = frames.filter { $0[5] == "0x00001388" }
        #expect(tunnels.count == count)
        #expect(tunnels.allSatisfy { $0[0] == F.Net.coreNextHopMAC && $0[1] == F.Net.coreMAC })
        let hops = (run.report["datapath"] as? [String: Any])?["next_hops"] as? [[String: Any]] ?? []
        #expect(hops.count == 1 && hops.first?["mac"] as? String == F.Net.coreNextHopMAC)
    }
}
