// Micro benchmarks (ordo-one/benchmark): parse, classify at 1k / 100k / 1M sessions, with
// malloc-count thresholds of 0 in steady state (setup is outside the measurement).
//   swift package --package-path Bench --scratch-path .build-bench-micro benchmark --target UPFMicro
// tools/bench --micro runs them and fails when a benchmark's mallocCountTotal is not 0.

import Benchmark
import UPFDatapath
import UPFPackets
import UPFPolicy

// MARK: - Inputs

/// One uplink G-PDU as gen-traffic writes it: Ethernet / IPv4 / UDP 2152 / GTP-U with a UL PDU
/// Session Container (QFI 9) / inner IPv4 TCP to 198.51.100.7:443.
func uplinkFrame() -> [UInt8] {
    func checksum(_ b: [UInt8]) -> UInt16 {
        var s: UInt32 = 0
        var i = 0
        while i + 1 < b.count { s += UInt32(b[i]) << 8 | UInt32(b[i + 1]); i += 2 }
        while s >> 16 != 0 { s = (s & 0xFFFF) + (s >> 16) }
        return ~UInt16(s)
    }
    func ipv4(_ src: [UInt8], _ dst: [UInt8], _ proto: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let total = 20 + payload.count
        var h: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 255), 0, 0, 0x40, 0, 64, proto, 0, 0] + src + dst
        let c = checksum(h)
        h[10] = UInt8(c >> 8); h[11] = UInt8(c & 255)
        return h + payload
    }
    let tcp: [UInt8] = [0x9c, 0x41, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 30)
    let inner = ipv4([10, 0, 0, 1], [198, 51, 100, 7], 6, tcp)
    let teid: UInt32 = 2_654_435_761
    let gtpLength = inner.count + 8
    let gtp: [UInt8] = [0x34, 0xff, UInt8(gtpLength >> 8), UInt8(gtpLength & 255),
                        UInt8(teid >> 24), UInt8(teid >> 16 & 255), UInt8(teid >> 8 & 255), UInt8(teid & 255),
                        0, 0, 0, 0x85, 1, 0x10, 9, 0] + inner
    let udpLength = 8 + gtp.count
    let udp: [UInt8] = [0x08, 0x68, 0x08, 0x68, UInt8(udpLength >> 8), UInt8(udpLength & 255), 0, 0] + gtp
    return [2, 0, 0, 0, 1, 0xfe, 2, 0, 0, 0, 1, 1, 8, 0] + ipv4([192, 0, 2, 100], [192, 0, 2, 1], 17, udp)
}

func teid(_ i: Int) -> UInt32 {
    var t = UInt32(truncatingIfNeeded: i + 1) &* 2_654_435_761
    if t == 0 { t = 1 }
    return t
}

/// The classify-bench session: steer (198.51.100.0/24 TCP 443, 8000-8080), drop, N9 default, downlink.
func template() -> CompiledSession {
    var s = Session(seid: 1, ueIPv4: "10.0.0.1", n3: FTEID(teid: 1, address: "192.0.2.1"),
                    gnb: FTEID(teid: 99, address: "192.0.2.200"))
    s.rules = [
        Rule(id: 1, precedence: 10, source: .access,
             match: SDFFilter(destinationPrefixes: ["198.51.100.0/24"], protocol: 6,
                              destinationPorts: [PortRange(443), PortRange(low: 8000, high: 8080)]),
             action: 1),
        Rule(id: 2, precedence: 20, source: .access,
             match: SDFFilter(destinationPrefixes: ["203.0.113.0/24"], protocol: 17), action: 2),
        Rule(id: 3, precedence: 100, source: .access, action: 3),
        Rule(id: 4, precedence: 100, source: .core, action: 4),
    ]
    s.actions = [Action(id: 1, kind: .steer(engine: "llm")), Action(id: 2, kind: .drop),
                 Action(id: 3, kind: .forwardN9(peer: "10.9.0.1", teid: 77)), Action(id: 4, kind: .forwardN3)]
    return CompiledSession.compile(s, engines: ["llm": 0], applications: [:])
}

final class ClassifyState: @unchecked Sendable {
    let tables: SessionTables
    let reader: TableReader
    let teids: UnsafeMutablePointer<UInt32>
    let flows: UnsafeMutablePointer<InnerFlow>
    let handles: UnsafeMutablePointer<SessionHandle?>
    static let lookups = 1 << 16

    init(sessions n: Int) {
        tables = SessionTables(capacity: n, readers: 1)
        var c = template()
        for i in 0..<n {
            c.seid = UInt64(i + 1)
            c.n3.teid = teid(i)
            c.ueIPv4 = 0x0A00_0000 | UInt32(truncatingIfNeeded: i + 1)
            try! tables.put(c)
        }
        reader = tables.reader(0)
        teids = .allocate(capacity: ClassifyState.lookups)
        flows = .allocate(capacity: 32)
        handles = .allocate(capacity: 32)
        handles.initialize(repeating: nil, count: 32)
        var r: UInt64 = 0x9E37_79B9_7F4A_7C15
        for k in 0..<ClassifyState.lookups {
            r ^= r >> 12; r ^= r << 25; r ^= r >> 27
            teids[k] = teid(Int((r &* 2_685_821_657_736_338_717) % UInt64(n)))
        }
        for j in 0..<32 {
            var f = InnerFlow()
            f.version = 4
            f.hasPorts = true
            f.source = IPAddress(ipv4: 0x0A00_0001)
            f.sourcePort = UInt16(40000 + j)
            f.proto = j % 10 == 4 ? 17 : 6
            f.destination = IPAddress(ipv4: j % 10 < 4 ? 0xC633_6407 : (j % 10 == 4 ? 0xCB00_7105 : 0x5DB8_D801))
            f.destinationPort = 443
            (flows + j).initialize(to: f)
        }
        reader.online()
    }
}

nonisolated(unsafe) var classifyStates: [Int: ClassifyState] = [:]
nonisolated(unsafe) var frameStorage: UnsafeMutableRawPointer?
nonisolated(unsafe) var frameLength = 0

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        scalingFactor: .kilo,
        maxDuration: .seconds(1),
        maxIterations: 200,
        thresholds: [.mallocCountTotal: .init(absolute: [.p100: 0])]
    )

    Benchmark("parse: uplink G-PDU with PSC, inner IPv4 TCP (x1000)") { benchmark in
        var packet = ParsedPacket()
        let bytes = PacketBytes(base: UnsafeRawPointer(frameStorage!), count: frameLength)
        for _ in benchmark.scaledIterations {
            let reason = PacketParser.parse(bytes, link: .ethernet, options: ParserOptions(), into: &packet)
            blackHole(reason)
            blackHole(packet.teid)
        }
    } setup: {
        let f = uplinkFrame()
        let p = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 64)
        f.withUnsafeBytes { (p + 2).copyMemory(from: $0.baseAddress!, byteCount: f.count) }
        frameStorage = p + 2
        frameLength = f.count
    }

    for n in [1000, 100_000, 1_000_000] {
        Benchmark("classify: 32-packet burst lookup + rule match, \(n) sessions (x1000 bursts)") { benchmark in
            let s = classifyStates[n]!
            var k = 0
            var sum = 0
            for _ in benchmark.scaledIterations {
                s.reader.lookupUplinkBurst(teids: s.teids + (k & (ClassifyState.lookups - 1)), count: 32, into: s.handles)
                for j in 0..<32 {
                    if let h = s.handles[j], let m = s.reader.classify(h, flow: s.flows[j], qfi: 9, source: .access) {
                        sum &+= m.index
                    }
                }
                s.reader.quiescent()
                k &+= 32
            }
            blackHole(sum)
        } setup: {
            if classifyStates[n] == nil { classifyStates[n] = ClassifyState(sessions: n) }
        }
    }
}
