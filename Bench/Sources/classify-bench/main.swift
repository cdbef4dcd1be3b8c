// classify-bench: session lookup + rule match cost, session update rate through the control
// socket, and request-to-fast-path latency. Run through tools/bench-classify.
//
//   classify-bench lookup  --sessions N [--rounds R] [--round-lookups L]   timing, one lookup at a time
//   classify-bench burst   --sessions N [--rounds R] [--round-lookups L]   timing, bursts of 32 (lookup*Burst)
//   classify-bench count   --sessions N --lookups L [--only classify|lookup] [--burst]
//                                                                          fixed work, for callgrind
//   classify-bench memory  --sessions N                                    bytes per session
//   classify-bench socket  --socket PATH [--sessions N] [--batch B] [--singles S] [--windows 1,2]
//   classify-bench latency --dir DIR [--sessions N] [--samples S]          in-process ControlService
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Synchronization
import UPFControl
import UPFDatapath
import UPFPackets
import UPFPolicy

// MARK: - Helpers

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("classify-bench: \(message)\n".utf8))
    exit(2)
}

func now() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let mode = arguments.first else { fail("usage: classify-bench lookup|count|memory|socket|latency …") }
func option(_ name: String, _ fallback: Int) -> Int {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return fallback }
    guard let v = Int(arguments[i + 1].replacingUnderscores) else { fail("\(name): not a number") }
    return v
}
func stringOption(_ name: String) -> String? {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}
extension String {
    var replacingUnderscores: String { String(filter { $0 != "_" }) }
}

/// xorshift64*, fixed seed.
struct Random {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
}

/// Session i's N3 TEID: a bijection of 1...2^32-1 (odd multiplier), so TEIDs are spread like
/// allocated ones, never 0, all distinct.
func teid(_ i: Int) -> UInt32 {
    var t = UInt32(truncatingIfNeeded: i + 1) &* 2_654_435_761
    if t == 0 { t = 1 }
    return t
}
func ueIPv4(_ i: Int) -> UInt32 { 0x0A00_0000 | UInt32(truncatingIfNeeded: i + 1) }  // 10.0.0.0/8
func dotted(_ a: UInt32) -> String { "\(a >> 24).\(a >> 16 & 255).\(a >> 8 & 255).\(a & 255)" }

// MARK: - The session under test

/// Four rules: uplink steer to an engine for 198.51.100.0/24 TCP 443 or 8000-8080 (precedence
/// 10), uplink drop of 203.0.113.0/24 UDP (20), the uplink default to an N9 peer (100), the
/// downlink default to the gNB (100).
func sessionJSON(seid: Int) -> String {
    let t = teid(seid)
    let ue = dotted(ueIPv4(seid))
    return """
    {"seid":\(seid + 1),"ue_ipv4":"\(ue)","n3":{"teid":\(t),"address":"192.0.2.1"},\
    "gnb":{"teid":\(t ^ 0x5A5A_5A5A == 0 ? 1 : t ^ 0x5A5A_5A5A),"address":"192.0.2.200"},\
    "rules":[\
    {"id":1,"precedence":10,"source":"access","match":{"destination_prefixes":["198.51.100.0/24"],"protocol":6,"destination_ports":[443,"8000-8080"]},"action":1},\
    {"id":2,"precedence":20,"source":"access","match":{"destination_prefixes":["203.0.113.0/24"],"protocol":17},"action":2},\
    {"id":3,"precedence":100,"source":"access","action":3},\
    {"id":4,"precedence":100,"source":"core","action":4}],\
    "actions":[{"id":1,"type":"steer","engine":"llm"},{"id":2,"type":"drop"},\
    {"id":3,"type":"n9","peer":"10.9.0.1","teid":77},{"id":4,"type":"n3"}]}
    """
}

let engineJSON = #"{"id":"llm","instances":[{"port":"0","address":"10.100.0.2"}],"fallback":"core"}"#

func templateSession(rules: Bool) -> CompiledSession {
    var s = Session(seid: 1, ueIPv4: "10.0.0.1", n3: FTEID(teid: 1, address: "192.0.2.1"),
                    gnb: FTEID(teid: 99, address: "192.0.2.200"))
    if rules {
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
    }
    let c = CompiledSession.compile(s, engines: ["llm": 0], applications: [:])
    if rules && c.rules.count != 4 { fail("template compiled to \(c.rules.count) rules: \(c.notes)") }
    return c
}

func fill(_ tables: SessionTables, sessions n: Int, rules: Bool) {
    var c = templateSession(rules: rules)
    for i in 0..<n {
        c.seid = UInt64(i + 1)
        c.n3.teid = teid(i)
        c.ueIPv4 = ueIPv4(i)
        do { try tables.put(c) } catch { fail("put \(i): \(error)") }
    }
}

/// Uplink flows from UE addresses: 40 % to the engine prefix on 443/8080 (rule 1), 10 % UDP to
/// the dropped prefix (rule 2), 50 % elsewhere (rule 3, after checking 1 and 2).
func makeFlows(_ count: Int) -> [InnerFlow] {
    var r = Random(state: 0x1234_5678_9ABC_DEF1)
    return (0..<count).map { i in
        var f = InnerFlow()
        f.version = 4
        f.hasPorts = true
        f.source = IPAddress(ipv4: ueIPv4(Int(r.next() % 1000)))
        f.sourcePort = UInt16(truncatingIfNeeded: 32768 + r.next() % 28000)
        switch i % 10 {
        case 0..<4:
            f.destination = IPAddress(ipv4: 0xC633_6400 | UInt32(r.next() % 256))  // 198.51.100.x
            f.proto = 6
            f.destinationPort = i % 2 == 0 ? 443 : 8080
        case 4:
            f.destination = IPAddress(ipv4: 0xCB00_7100 | UInt32(r.next() % 256))  // 203.0.113.x
            f.proto = 17
            f.destinationPort = 53
        default:
            f.destination = IPAddress(ipv4: 0x5DB8_D800 | UInt32(r.next() % 256))  // 93.184.216.x
            f.proto = i % 3 == 0 ? 17 : 6
            f.destinationPort = i % 3 == 0 ? 443 : 443
        }
        return f
    }
}

/// Random TEIDs over the whole table (fixed length, so building it cancels in callgrind's
/// difference of two runs).
func makeLookups(sessions n: Int, count: Int) -> [UInt32] {
    var r = Random(state: 0x9E37_79B9_7F4A_7C15)
    return (0..<count).map { _ in teid(Int(r.next() % UInt64(n))) }
}

let flowCount = 1024
let lookupArray = 1 << 22

/// `count` lookups + classifications starting at `start` in the arrays; returns a checksum.
@inline(never)
func run(_ reader: TableReader, _ teids: UnsafeBufferPointer<UInt32>, _ flows: UnsafeBufferPointer<InnerFlow>,
         start: Int, count: Int, classify: Bool) -> Int {
    var sum = 0
    var i = start
    let mask = teids.count - 1
    for k in 0..<count {
        guard let h = reader.lookupUplink(teid: teids[i & mask]) else { fail("TEID not found") }
        if classify {
            guard let m = reader.classify(h, flow: flows[k & (flowCount - 1)], qfi: 9, source: .access) else {
                fail("no rule matched")
            }
            sum &+= m.index
        } else {
            sum &+= h.slot
        }
        i &+= 1
        if k & 31 == 31 { reader.quiescent() }  // once per burst of 32, as a worker would
    }
    return sum
}

/// The same work as `run`, a burst at a time as a worker does it: 32 TEIDs through
/// `lookupUplinkBurst` (which prefetches buckets, records and — when classifying — rule lines
/// for the whole burst), then the 32 classifications, then `quiescent()`. `start` and `count`
/// are multiples of 32.
@inline(never)
func runBursts(_ reader: TableReader, _ teids: UnsafeBufferPointer<UInt32>, _ flows: UnsafeBufferPointer<InnerFlow>,
               _ handles: UnsafeMutablePointer<SessionHandle?>, start: Int, count: Int, classify: Bool) -> Int {
    var sum = 0
    var i = start
    let mask = teids.count - 1
    var k = 0
    while k < count {
        reader.lookupUplinkBurst(teids: teids.baseAddress! + (i & mask), count: burst, into: handles, prefetchingRules: classify)
        for j in 0..<burst {
            guard let h = handles[j] else { fail("TEID not found") }
            if classify {
                guard let m = reader.classify(h, flow: flows[(k &+ j) & (flowCount - 1)], qfi: 9, source: .access) else {
                    fail("no rule matched")
                }
                sum &+= m.index
            } else {
                sum &+= h.slot
            }
        }
        reader.quiescent()
        i &+= burst
        k &+= burst
    }
    return sum
}

let burst = 32

// MARK: - Modes

switch mode {
case "lookup", "burst", "count":
    let n = option("--sessions", 1000)
    let tables = SessionTables(capacity: n, readers: 1)
    fill(tables, sessions: n, rules: true)
    let reader = tables.reader(0)
    let teids = makeLookups(sessions: n, count: lookupArray)
    let flows = makeFlows(flowCount)
    let handles = UnsafeMutablePointer<SessionHandle?>.allocate(capacity: burst)
    let bursts = mode == "burst" || arguments.contains("--burst")
    // Which rule each flow class hits, checked once.
    var hits = [0, 0, 0, 0]
    if let h = reader.lookupUplink(teid: teid(0)) {
        for f in flows { hits[reader.classify(h, flow: f, qfi: 9, source: .access)!.index] += 1 }
    }
    teids.withUnsafeBufferPointer { t in
        flows.withUnsafeBufferPointer { f in
            func work(start: Int, count: Int, classify: Bool) -> Int {
                bursts ? runBursts(reader, t, f, handles, start: start, count: count, classify: classify)
                    : run(reader, t, f, start: start, count: count, classify: classify)
            }
            if mode == "count" {
                let l = option("--lookups", 100_000) / burst * burst
                let only = stringOption("--only") ?? "classify"
                print(work(start: 0, count: l, classify: only == "classify"))
                return
            }
            let rounds = option("--rounds", 9)
            let per = option("--round-lookups", 2_000_000) / burst * burst
            _ = work(start: 0, count: per, classify: true)  // warm-up
            var best = (lookup: Double.infinity, classify: Double.infinity)
            var sum = 0
            for round in 0..<rounds {
                let a = now()
                sum &+= work(start: round * per, count: per, classify: false)
                let b = now()
                sum &+= work(start: round * per + (bursts ? burst : 7), count: per, classify: true)
                let c = now()
                best.lookup = min(best.lookup, Double(b - a) / Double(per))
                best.classify = min(best.classify, Double(c - b) / Double(per))
            }
            print(String(format: "sessions %8d  %@  lookup %6.2f ns  lookup+classify %6.2f ns  (best of %d x %d; rule hits per 1024 flows %@; checksum %d)",
                         n, bursts ? "burst 32" : "single  ", best.lookup, best.classify, rounds, per, "\(hits)", sum))
        }
    }

case "memory":
    let n = option("--sessions", 1_000_000)
    // Resident bytes (/proc/self/statm): the tables zero everything they reserve, so it is touched.
    func heap() -> Int {
        let text = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? "0 0"
        return Int(text.split(separator: " ")[1])! * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
    var results: [String] = []
    for rules in [false, true] {
        let before = heap()
        let tables = SessionTables(capacity: n, readers: 1)
        let reserved = heap() - before
        fill(tables, sessions: n, rules: rules)
        let total = heap() - before
        results.append(String(format: "%@ rules: reserved %.1f B/session (resident measured %.1f), with %d sessions put %.1f B/session (rule blocks %.1f B/session resident, %.1f in chunks, %d blocks)",
                              rules ? "4" : "no", SessionTables.bytesPerSession(capacity: n),
                              Double(reserved) / Double(n), n, Double(total) / Double(n),
                              Double(total - reserved) / Double(n), Double(tables.ruleBlockBytes) / Double(n),
                              tables.ruleBlocks))
    }
    print("sessions \(n): bytesPerSession(capacity: \(n)) = \(SessionTables.bytesPerSession(capacity: n))")
    for r in results { print("  " + r) }

case "socket", "latency":
    runSocketModes()

default:
    fail("unknown mode \(mode)")
}

// MARK: - Socket client

final class LineClient {
    let fd: Int32
    var buffer: [UInt8] = []
    var start = 0

    init(path: String) {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { fail("socket path too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard ok == 0 else { fail("connect \(path): errno \(errno)") }
    }

    func send(_ line: String) {
        var data = Array(line.utf8)
        data.append(10)
        var off = 0
        while off < data.count {
            let n = data.withUnsafeBytes { write(fd, $0.baseAddress! + off, data.count - off) }
            guard n > 0 else { fail("write: errno \(errno)") }
            off += n
        }
    }

    func readLine() -> String {
        while true {
            if let nl = buffer[start...].firstIndex(of: 10) {
                let line = String(decoding: buffer[start..<nl], as: UTF8.self)
                start = nl + 1
                if start == buffer.count { buffer.removeAll(keepingCapacity: true); start = 0 }
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 65536) }
            guard n > 0 else { fail("read: connection closed (errno \(errno))") }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    func request(_ line: String) -> String {
        send(line)
        let answer = readLine()
        guard answer.contains("\"ok\":true") else { fail("refused: \(answer.prefix(400))") }
        return answer
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

/// Loads `n` sessions in batches of `batch` put_session changes; returns sessions/s. `window`:
/// how many requests are sent before their answers are read (1: one at a time; 2: the next batch
/// is on its way while the server applies the one before, as a pipelining client does).
func load(_ client: LineClient, sessions n: Int, batch: Int, first: Int = 0, window: Int = 1) -> Double {
    var id = 1000
    let a = now()
    var i = first
    var inFlight = 0
    while i < first + n || inFlight > 0 {
        if i < first + n, inFlight < window {
            let end = min(first + n, i + batch)
            let changes = (i..<end).map { #"{"op":"put_session","session":"# + sessionJSON(seid: $0) + "}" }
            id += 1
            client.send(#"{"id":\#(id),"op":"apply","changes":["# + changes.joined(separator: ",") + "]}")
            inFlight += 1
            i = end
            continue
        }
        let answer = client.readLine()
        guard answer.contains("\"ok\":true") else { fail("refused: \(answer.prefix(400))") }
        inFlight -= 1
    }
    return Double(n) / (Double(now() - a) / 1e9)
}

func runSocketModes() {
    let n = option("--sessions", 100_000)
    let batch = option("--batch", 1000)
    let samples = option("--samples", option("--singles", 2000))
    if mode == "socket" {
        guard let path = stringOption("--socket") else { fail("--socket PATH") }
        let client = LineClient(path: path)
        _ = client.request(#"{"id":1,"op":"engine.put","engine":"# + engineJSON + "}")
        // `--windows 1,2`: the sessions split evenly over runs with 1, then 2, requests in flight.
        let windows = (stringOption("--windows") ?? "1,2").split(separator: ",").map { Int($0) ?? 0 }
        guard !windows.isEmpty, windows.allSatisfy({ $0 >= 1 }) else { fail("--windows: a list of numbers >= 1") }
        var loaded = 0
        for (k, window) in windows.enumerated() {
            let count = (n - loaded) / (windows.count - k)
            let rate = load(client, sessions: count, batch: batch, first: loaded, window: window)
            print(String(format: "batched: sessions %d-%d in apply batches of %d, %d request(s) in flight: %.0f sessions/s",
                         loaded, loaded + count, batch, window, rate))
            loaded += count
        }
        var lat: [Double] = []
        for k in 0..<samples {
            let line = #"{"id":\#(k),"op":"session.put","session":"# + sessionJSON(seid: n + k) + "}"
            let a = now()
            _ = client.request(line)
            lat.append(Double(now() - a) / 1000)
        }
        lat.sort()
        if !lat.isEmpty { print(String(format: "single session.put at %d sessions (%d requests, one at a time): p50 %.1f us  p99 %.1f us  max %.1f us  (%.0f sessions/s)",
                     n, samples, percentile(lat, 0.5), percentile(lat, 0.99), lat.last!,
                     Double(samples) / (lat.reduce(0, +) / 1e6))) }
        let stats = client.request(#"{"id":2,"op":"stats"}"#)
        print("stats: " + String(stats.prefix(300)))
        return
    }
    // latency: an in-process ControlService with real SessionTables and one reader thread.
    guard let dir = stringOption("--dir") else { fail("--dir DIR") }
    var configuration = ServiceConfiguration()
    configuration.control.socket = dir + "/control.sock"
    configuration.control.maxLineBytes = 64 << 20
    configuration.stateFile = dir + "/state.json"
    configuration.limits.maxSessions = n + samples + 16
    configuration.logLevel = .warning
    var logger = Logger(label: "classify-bench")
    logger.logLevel = .warning
    let tables = SessionTables(capacity: configuration.limits.maxSessions, readers: 1)
    let service = ControlService(configuration: configuration, tables: DatapathSessionTables(tables: tables),
                                 persist: true, logger: logger)
    do { try service.start() } catch { fail("start: \(error)") }

    // The reader: a poll-mode worker that looks up the TEID being added until it sees it.
    let box = ReaderBox(reader: tables.reader(0))
    var thread = pthread_t()
    let unmanaged = Unmanaged.passRetained(box)
    pthread_create(&thread, nil, { raw in
        let box = Unmanaged<ReaderBox>.fromOpaque(raw!).takeRetainedValue()
        box.loop()
        return nil
    }, unmanaged.toOpaque())

    let client = LineClient(path: configuration.control.socket)
    _ = client.request(#"{"id":1,"op":"engine.put","engine":"# + engineJSON + "}")
    let rate = load(client, sessions: n, batch: batch)
    print(String(format: "in-process service: loaded %d sessions at %.0f sessions/s (batches of %d)", n, rate, batch))
    var toSeen: [Double] = []
    var toAnswer: [Double] = []
    for k in 0..<samples {
        let s = n + k
        let line = #"{"id":\#(k),"op":"session.put","session":"# + sessionJSON(seid: s) + "}"
        box.seenAt.store(0, ordering: .relaxed)
        box.target.store(teid(s), ordering: .releasing)
        let a = now()
        client.send(line)
        let answer = client.readLine()
        let b = now()
        guard answer.contains("\"ok\":true") else { fail("refused: \(answer.prefix(300))") }
        var seen = box.seenAt.load(ordering: .acquiring)
        while seen == 0 { seen = box.seenAt.load(ordering: .acquiring) }
        toSeen.append(Double(Int64(seen) - Int64(a)) / 1000)
        toAnswer.append(Double(b - a) / 1000)
    }
    box.stop.store(true, ordering: .releasing)
    pthread_join(thread, nil)
    toSeen.sort()
    toAnswer.sort()
    print(String(format: "request -> fast path sees the TEID, at %d sessions (%d session.put): p50 %.1f us  p99 %.1f us  max %.1f us",
                 n, samples, percentile(toSeen, 0.5), percentile(toSeen, 0.99), toSeen.last!))
    print(String(format: "request -> answer read by the client (same requests):              p50 %.1f us  p99 %.1f us  max %.1f us",
                 percentile(toAnswer, 0.5), percentile(toAnswer, 0.99), toAnswer.last!))
    service.stop(writeSnapshot: false)
}

final class ReaderBox: Sendable {
    let target = Atomic<UInt32>(0)
    let seenAt = Atomic<UInt64>(0)
    let stop = Atomic<Bool>(false)
    let reader: TableReader

    init(reader: TableReader) { self.reader = reader }

    /// Spins like a poll-mode worker: one lookup of the target TEID per iteration, a quiescent
    /// state after each. The time is taken by this thread when it first finds the session.
    func loop() {
        var iterations = 0
        while !stop.load(ordering: .relaxed) {
            let t = target.load(ordering: .acquiring)
            if t != 0, seenAt.load(ordering: .relaxed) == 0, reader.lookupUplink(teid: t) != nil {
                seenAt.store(now(), ordering: .releasing)
            }
            reader.quiescent()
            iterations &+= 1
        }
    }
}
