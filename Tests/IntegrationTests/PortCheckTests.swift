import Foundation
import Testing

/// `upf-replay port-check` run as a subprocess (EAL can be initialised once per process), on
/// virtual devices only. Every run uses `--no-shconf --no-telemetry`, so runs leave no files and
/// share no sockets; the suite is serialized anyway because each run busy-polls pinned lcores and
/// the machine has two cores.
@Suite(.serialized)
struct PortCheckTests {
    /// EAL memory without hugepages. DPDK 22.11 refuses `--in-memory` with `--no-huge`;
    /// `--no-shconf` gives the same isolation.
    static let ealBase = "--no-huge -m 512 --no-shconf --no-telemetry"

    /// The fields of port-check's JSON report the tests look at.
    struct Report: Decodable {
        var ok: Bool
        var failures: [String]
        var lcore: UInt32
        var ranOnWorker: Bool
        var requested: Int
        var produced: Int
        var sent: Int
        var unsent: Int
        var received: Int
        var matched: Int
        var mismatched: Int
        var unexpected: Int
        var verified: Bool
        var mempoolInUseAtExit: Int?
        var ports: [Port]

        struct Port: Decodable {
            var name: String
            var driver: String?
            var stats: Stats?
        }

        struct Stats: Decodable {
            var ipackets: UInt64
            var opackets: UInt64
        }
    }

    private func portCheck(_ arguments: [String]) throws -> ProcessResult {
        try runProcess(Paths.executable("upf-replay"), ["port-check"] + arguments, timeout: 60)
    }

    private func decodeReport(_ result: ProcessResult) throws -> Report {
        let json = try #require(result.stdout.split(separator: "\n").last { $0.hasPrefix("{") },
                                "no JSON report on stdout; stderr: \(result.stderr)")
        return try JSONDecoder().decode(Report.self, from: Data(json.utf8))
    }

    @Test("net_ring loopback: one burst of 32 comes back identical, no mbuf leaked")
    func ringLoopback() throws {
        let result = try portCheck([
            "--eal", "\(Self.ealBase) -l 0-1 --vdev=net_ring0", "--tx-port", "net_ring0", "--rx-port", "net_ring0",
            "--count", "32", "--timeout", "10", "--json",
        ])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let report = try decodeReport(result)
        #expect(report.ok, "\(report.failures)")
        #expect(report.ranOnWorker, "the loop should run on worker lcore 1")
        #expect(report.lcore == 1)
        #expect(report.verified)
        #expect(report.sent == 32)
        #expect(report.received == 32)
        #expect(report.matched == 32)
        #expect(report.mismatched == 0 && report.unexpected == 0 && report.unsent == 0)
        #expect(report.mempoolInUseAtExit == 0)
        let ring = try #require(report.ports.first { $0.name == "net_ring0" })
        #expect(ring.stats?.opackets == 32)
        #expect(ring.stats?.ipackets == 32)
    }

    @Test("net_ring loopback with the defaults and human-readable output")
    func defaults() throws {
        let result = try portCheck([])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("port-check: OK"))
        #expect(result.stdout.contains("matched           32 byte for byte"))
        #expect(result.stdout.contains("0 of 8191 mbufs at exit"))
        // DPDK's log goes to stderr, so stdout is only the report.
        #expect(!result.stdout.contains("EAL:"))
    }

    @Test("a single lcore runs the loop on the main lcore, many bursts")
    func mainLcoreManyBursts() throws {
        let result = try portCheck([
            "--eal", "\(Self.ealBase) -l 0 --vdev=net_ring0", "--count", "5000", "--timeout", "30", "--json",
        ])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let report = try decodeReport(result)
        #expect(!report.ranOnWorker)
        #expect(report.sent == 5000 && report.received == 5000 && report.matched == 5000)
        #expect(report.mempoolInUseAtExit == 0)
    }

    @Test("net_pcap: frames read from an rx_pcap port are written unchanged to a tx_pcap port")
    func pcapSourceToPcapFile() throws {
        let directory = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("in.pcap").path
        let output = directory.appendingPathComponent("out.pcap").path

        // scapy builds the input: an oracle independent of this package. Lengths cover the minimum
        // frame, odd sizes, a full 1514-byte frame and one larger than an mbuf (chained on RX).
        let lengths = [60, 64, 65, 100, 127, 128, 256, 511, 1000, 1514, 3000, 77]
        let script = """
            import sys
            from scapy.all import Ether, IP, UDP, Raw, wrpcap
            frames = []
            for i, n in enumerate(int(x) for x in sys.argv[2].split(',')):
                p = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/IP(src='10.0.0.1', dst='10.0.0.2', id=i)/UDP(sport=1000+i, dport=2152)
                frames.append(p/Raw(bytes((i + k) % 256 for k in range(n - len(p)))))
            wrpcap(sys.argv[1], frames)
            """
        let scapy = try runProcess(URL(fileURLWithPath: "/usr/bin/python3"),
                                   ["-c", script, input, lengths.map(String.init).joined(separator: ",")])
        try #require(scapy.status == 0, "scapy failed: \(scapy.stderr)")

        let result = try portCheck([
            "--eal", "\(Self.ealBase) -l 0-1 --vdev=net_pcap0,rx_pcap=\(input) --vdev=net_pcap1,tx_pcap=\(output)",
            "--source-port", "net_pcap0", "--tx-port", "net_pcap1", "--timeout", "10", "--json",
        ])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let report = try decodeReport(result)
        #expect(report.ok, "\(report.failures)")
        #expect(!report.verified, "a tx_pcap port is not a loopback: nothing to compare")
        #expect(report.sent == lengths.count)
        #expect(report.mempoolInUseAtExit == 0)

        // tshark decodes what net_pcap wrote (complete once the port was closed).
        let tshark = try runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                    ["tshark", "-r", output, "-T", "fields", "-e", "frame.len"])
        try #require(tshark.status == 0, "tshark failed: \(tshark.stderr)")
        let written = tshark.stdout.split(whereSeparator: \.isNewline).compactMap { Int($0) }
        #expect(written == lengths)

        // And scapy confirms the bytes themselves are unchanged, frame by frame.
        let compare = try runProcess(URL(fileURLWithPath: "/usr/bin/python3"), ["-c", """
            import sys
            from scapy.all import rdpcap
            a, b = rdpcap(sys.argv[1]), rdpcap(sys.argv[2])
            sys.exit(0 if [bytes(p) for p in a] == [bytes(p) for p in b] else 1)
            """, input, output])
        #expect(compare.status == 0, "out.pcap differs from in.pcap: \(compare.stderr)")
    }

    @Test("frames that never arrive: loss reported, exit status 1, stranded mbufs drained (no leak)")
    func lossIsReported() throws {
        // Two independent ring devices: what is sent on net_ring0 loops back to net_ring0, never
        // to net_ring1, and stays in net_ring0's ring until port-check drains it.
        let result = try portCheck([
            "--eal", "\(Self.ealBase) -l 0-1 --vdev=net_ring0 --vdev=net_ring1",
            "--tx-port", "net_ring0", "--rx-port", "net_ring1", "--timeout", "0.3", "--json",
        ])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("port-check: FAILED: lost 32 of 32 frames (received 0 on net_ring1)"))
        let report = try decodeReport(result)
        #expect(!report.ok)
        #expect(report.sent == 32 && report.received == 0)
        #expect(report.mempoolInUseAtExit == 0)
    }

    @Test("bad EAL arguments: a readable error and exit status 2, no crash")
    func badEALArguments() throws {
        let result = try portCheck(["--eal", "--definitely-not-an-eal-option -l 0", "--json"])
        #expect(result.status == 2, "stdout: \(result.stdout)\nstderr: \(result.stderr)")
        #expect(result.stderr.contains("port-check: error: EAL initialisation failed: Invalid argument"))
        #expect(!result.stderr.contains("crashed"))
        // EAL's usage text is diagnostic: it must not land in the (JSON) report stream.
        #expect(result.stdout.isEmpty, "stdout: \(result.stdout)")
    }

    @Test("an unknown port name: exit status 2 and the list of ports that do exist")
    func unknownPort() throws {
        let result = try portCheck(["--eal", "\(Self.ealBase) -l 0 --vdev=net_ring0", "--tx-port", "net_ring7"])
        #expect(result.status == 2, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("no DPDK port named 'net_ring7'; ports: net_ring0"))
    }
}
