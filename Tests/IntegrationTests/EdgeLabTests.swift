import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 7: a UE's real kernel TCP/UDP through the built upfd (DPDK net_af_packet on veths in
/// network namespaces) into a co-located scikit-learn engine and back (`tools/edge-lab`,
/// docs/edge-lab.md). `tools/edge-lab test` brings the lab up, runs the phases of
/// `tools/edgelab/scenario.py` and tears it down; its JSON report carries, per phase, the changes
/// of upfd's counters (`upfctl --json stats`), of the engines', the core responder's and the gNB
/// simulator's, and what the UE's client got. This test checks those numbers itself.
///
/// In `FastPathTests`' suite: upfd's worker pins lcore 1, so it must not run beside the other
/// data-path runs.
extension FastPathTests {
    static let edgeLab = Paths.packageRoot.appendingPathComponent("tools/edge-lab")

    /// Network namespaces, veth pairs and TUN devices can be made here (root, not in a
    /// restricted container): `tools/edge-lab check`.
    static let edgeLabPossible: Bool = {
        guard getuid() == 0 else { return false }
        return (try? runProcess(edgeLab, ["check"], timeout: 30).status) == 0
    }()
    static let edgeLabMessage: Comment =
        "needs root and the right to create network namespaces, veth pairs and TUN devices (tools/edge-lab check)"

    struct LabPhase {
        var name: String
        var deltas: [String: Int]
        var client: [String: Any]
        func d(_ key: String) -> Int { deltas[key] ?? Int.min }
        func client(_ key: String) -> [String: Any] { client[key] as? [String: Any] ?? [:] }
    }

    @Test("edge lab: UE HTTP through upfd gets the engine's prediction; non-steered flows reach the core only; instance down -> the other; all down -> fallback core, then drop; engines back -> steering resumes",
          .enabled(if: edgeLabPossible, edgeLabMessage), .timeLimit(.minutes(3)))
    func edgeLabEndToEnd() throws {
        let binaries = Paths.executable("upfd").deletingLastPathComponent().path
        let prefix = "elt\(getpid() % 100_000)"
        let environment = ["UPFD_BIN_DIR": binaries, "EDGE_LAB_PREFIX": prefix, "EDGE_LAB_DIR": "/tmp/upfd-lab-\(prefix)"]

        // The venv (scikit-learn from PyPI) and gnb-sim (gcc); quick when they are there.
        let setup = try runProcess(FastPathTests.edgeLab, ["setup"], timeout: 600, environment: environment)
        try #require(setup.status == 0, "tools/edge-lab setup failed:\n\(setup.stderr)\(setup.stdout)")

        let started = Date()
        let result = try runProcess(FastPathTests.edgeLab, ["test"], timeout: 150, environment: environment)
        let elapsed = Date().timeIntervalSince(started)
        print("tools/edge-lab test: exit \(result.status) in \(String(format: "%.1f", elapsed)) s")
        for line in result.stderr.split(separator: "\n") where line.hasPrefix("edge-lab:") || line.hasPrefix("scenario [") {
            print("  " + line)
        }
        let lines = result.stdout.split(separator: "\n")
        let report = try #require(lines.last.flatMap { try? parseObject(String($0)) },
                                  "no JSON report from tools/edge-lab test (exit \(result.status)):\n\(result.stderr.suffix(4000))")
        #expect(result.status == 0 && report["ok"] as? Bool == true,
                "scenario failures: \(report["failures"] ?? "?")\n\(result.stderr.suffix(3000))")

        // upfd's worker naps when idle here (the lab's default): with a 1 µs timer slack.
        let workers = report["workers"] as? [[String: Any]] ?? []
        #expect(!workers.isEmpty && workers.allSatisfy { $0.int("timer_slack_ns") == 1000 }, "workers: \(workers)")

        var phases: [String: LabPhase] = [:]
        for p in report["phases"] as? [[String: Any]] ?? [] {
            let name = p["name"] as? String ?? "?"
            let deltas = (p["deltas"] as? [String: Any] ?? [:]).compactMapValues { ($0 as? NSNumber)?.intValue }
            phases[name] = LabPhase(name: name, deltas: deltas, client: p["client"] as? [String: Any] ?? [:])
            print("phase \(name): " + deltas.filter { $0.value != 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        #expect(Set(phases.keys) == ["steer", "core", "one-down", "fallback-core", "fallback-drop", "back"],
                "phases run: \(phases.keys.sorted())")

        if let p = phases["steer"] {
            let one = p.client("one"), many = p.client("many")
            let answer = (one["answers"] as? [[String: Any]])?.first ?? [:]
            #expect(answer.int("prediction") == answer.int("label") && answer.int("label") == 1,
                    "image 42 (a 1): \(answer)")
            #expect(["eng1", "eng2"].contains(answer["from"] as? String ?? ""), "answered by \(answer["from"] ?? "?")")
            #expect(many.int("correct") == 16, "16 flows: \(many)")
            #expect(p.d("instance1") > 0 && p.d("instance2") > 0, "flows hashed over both instances: \(p.deltas)")
            #expect(p.d("steer") == p.d("instance1") + p.d("instance2"))
            #expect(p.d("eng1_predictions") + p.d("eng2_predictions") == 17)
            #expect(p.d("core_tx") <= p.d("arp_replies") && p.d("responder_packets") == 0, "steered traffic reached the core side")
            #expect(p.d("n3") > 0 && p.d("gnb_dl_ok") == p.d("gnb_dl_packets") && p.d("gnb_dl_wrong_teid") == 0
                    && p.d("gnb_dl_wrong_qfi") == 0 && p.d("gnb_dl_no_psc") == 0,
                    "answers re-encapsulated with the gNB TEID and QFI: \(p.deltas)")
            #expect(p.d("dropped") == 0)
        }
        if let p = phases["core"] {
            #expect(p.client("http").int("answered") == 4 && p.client("udp").int("echoed") == 5, "\(p.client)")
            #expect(p.d("n6") > 0 && p.d("responder_packets") == p.d("n6"), "N6 packets vs. what the responder saw: \(p.deltas)")
            #expect(p.d("responder_http") == 4 && p.d("responder_udp") == 5)
            #expect(p.d("steer") == 0 && p.d("eng1_tx") == 0 && p.d("eng2_tx") == 0
                    && p.d("eng1_predictions") == 0 && p.d("eng2_predictions") == 0, "a non-steered flow reached an engine")
            #expect(p.d("dropped") == 0)
        }
        if let p = phases["one-down"] {
            #expect(p.client.int("correct") == 16 && (p.client["by_instance"] as? [String: Any])?.keys.sorted() == ["eng2"],
                    "with engine 1 stopped: \(p.client["by_instance"] ?? "?")")
            #expect(p.d("instance1") == 0 && p.d("instance2") > 0 && p.d("eng1_tx") == 0)
            #expect(p.d("engine_fallback_core") == 0 && p.d("dropped") == 0 && p.d("core_tx") <= p.d("arp_replies"))
        }
        if let p = phases["fallback-core"] {
            #expect(p.client.int("answered") == 4 && (p.client["by_instance"] as? [String: Any])?.keys.sorted() == ["core-responder"],
                    "fallback core: \(p.client)")
            #expect(p.d("engine_fallback_core") > 0 && p.d("fallback_core") == p.d("engine_fallback_core"))
            #expect(p.d("responder_to_engine_address") > 0 && p.d("steer") == 0 && p.d("dropped") == 0)
        }
        if let p = phases["fallback-drop"] {
            #expect(p.client.int("answered") == 0, "fallback drop, yet answered: \(p.client)")
            #expect(p.d("engine_down_drop") > 0 && p.d("fallback_drop") == p.d("engine_down_drop"), "\(p.deltas)")
            #expect(p.d("core_tx") <= p.d("arp_replies") && p.d("responder_packets") == 0 && p.d("n6") == 0
                    && p.d("engine_fallback_core") == 0, "fallback drop: something reached the core side: \(p.deltas)")
            #expect(p.d("steer") == 0)
        }
        if let p = phases["back"] {
            #expect(p.client.int("correct") == 16)
            #expect(p.d("instance1") > 0 && p.d("instance2") > 0, "steering resumed on both: \(p.deltas)")
            #expect(p.d("engine_down_drop") == 0 && p.d("engine_fallback_core") == 0 && p.d("core_tx") <= p.d("arp_replies"))
        }

        // Torn down: no namespace of this run, no run directory.
        let namespaces = try runProcess(URL(fileURLWithPath: "/usr/sbin/ip"), ["netns", "list"], timeout: 10).stdout
        #expect(!namespaces.contains("\(prefix)-"), "namespaces left behind: \(namespaces)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/upfd-lab-\(prefix)"))
    }
}
