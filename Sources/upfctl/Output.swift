// Reading input files, decoding responses, and printing for humans.

import Foundation
import UPFPolicy

// MARK: - Input files

/// Model values as JSON text for a request.
func json<T: Encodable>(_ value: T) -> String {
    String(decoding: PolicyCoding.json(value), as: UTF8.self)
}

/// A local file that cannot be used: reported like a server refusal, with the file name.
func fileFailure(_ file: String, _ error: PolicyError) -> CtlFailure {
    CtlFailure(status: Exit.refused,
               message: "\(file): \(error.code): \(error.message)" + (error.path.isEmpty ? "" : " (at \(error.path))"))
}

func readText(_ file: String) throws(CtlFailure) -> String {
    let data: Data
    do {
        data = try Data(contentsOf: URL(fileURLWithPath: file))
    } catch {
        throw CtlFailure(status: Exit.refused, message: "\(file): cannot be read (\(error.localizedDescription))")
    }
    guard let text = String(data: data, encoding: .utf8) else {
        throw fileFailure(file, PolicyError(code: PolicyError.Code.invalidUTF8, message: "the file is not valid UTF-8", path: ""))
    }
    return text
}

func loadPolicy(_ file: String) throws(CtlFailure) -> Policy {
    do {
        return try Policy.load(path: file)
    } catch {
        throw fileFailure(file, error)
    }
}

/// Any model value from a YAML or JSON file (JSON is YAML).
func loadDocument<T: Decodable>(_ type: T.Type, _ file: String) throws(CtlFailure) -> T {
    let text = try readText(file)
    do {
        return try PolicyCoding.decode(T.self, yaml: text)
    } catch {
        throw fileFailure(file, error)
    }
}

/// One session, or a list of them.
func loadSessions(_ file: String) throws(CtlFailure) -> [Session] {
    let text = try readText(file)
    if isList(text) {
        do {
            return try PolicyCoding.decode([Session].self, yaml: text)
        } catch {
            throw fileFailure(file, error)
        }
    }
    do {
        return [try PolicyCoding.decode(Session.self, yaml: text)]
    } catch {
        throw fileFailure(file, error)
    }
}

/// A list of changes, bare or as `{"changes":[…]}`.
func loadChanges(_ file: String) throws(CtlFailure) -> [PolicyChange] {
    struct ChangesDocument: Decodable {
        var changes: [PolicyChange]
    }
    let text = try readText(file)
    do {
        if isList(text) { return try PolicyCoding.decode([PolicyChange].self, yaml: text) }
        return try PolicyCoding.decode(ChangesDocument.self, yaml: text).changes
    } catch {
        throw fileFailure(file, error)
    }
}

/// True when the document's top level is a list (`[` in JSON, `- ` in YAML).
func isList(_ text: String) -> Bool {
    for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
        let trimmed = line.drop { $0 == " " || $0 == "\t" || $0 == "\r" }
        if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix("---") { continue }
        return trimmed.hasPrefix("[") || trimmed.hasPrefix("- ") || trimmed == "-"
    }
    return false
}

// MARK: - Responses

struct SessionResponse: Decodable {
    var session: Session
    /// The data path's counters of the session (absent without a data path).
    var counters: SessionCounters?
}

/// `counters` of `session.get` and of `stats` with `session`.
struct SessionCounters: Decodable {
    struct Rule: Decodable {
        var id: UInt16
        var position: Int
        var packets: UInt64
        var bytes: UInt64
        var shared: Bool?
    }
    var packets: UInt64
    var bytes: UInt64
    var rules: [Rule]
}

struct SessionStatsResponse: Decodable {
    var seid: UInt64
    var counters: SessionCounters?

    init(from decoder: any Decoder) throws {
        enum Keys: String, CodingKey { case seid, counters }
        let c = try decoder.container(keyedBy: Keys.self)
        seid = try c.decode(UInt64.self, forKey: .seid)
        // "not_running" (a string) without a data path.
        counters = try? c.decodeIfPresent(SessionCounters.self, forKey: .counters)
    }
}

struct SessionListResponse: Decodable {
    var version: UInt64
    var sessions: [Session]
    var nextCursor: String?
    var total: Int
    enum CodingKeys: String, CodingKey {
        case version, sessions, total
        case nextCursor = "next_cursor"
    }
}

struct EngineListResponse: Decodable {
    struct Entry: Decodable {
        var id: String
        var state: String
        var sessions: Int
        var engine: Engine
    }
    var engines: [Entry]
}

struct PolicyResponse: Decodable {
    var version: UInt64
    var policy: Policy
}

struct HealthResponse: Decodable {
    var status: String
    var control: String
    var datapath: String
    var problems: [String: String]?
}

struct VersionResponse: Decodable {
    var software: String
    var policyVersion: UInt64
    var protocolVersion: Int
    enum CodingKeys: String, CodingKey {
        case software
        case policyVersion = "policy_version"
        case protocolVersion = "protocol"
    }
}

struct ApplyResponse: Decodable {
    struct Delta: Decodable {
        var putSessions: Int
        var deletedSessions: Int
        var putEngines: Int
        var deletedEngines: Int
        var putApplications: Int
        var deletedApplications: Int
        enum CodingKeys: String, CodingKey {
            case putSessions = "put_sessions"
            case deletedSessions = "deleted_sessions"
            case putEngines = "put_engines"
            case deletedEngines = "deleted_engines"
            case putApplications = "put_applications"
            case deletedApplications = "deleted_applications"
        }
    }
    var version: UInt64
    var changed: Bool
    var delta: Delta?
}

struct StatsResponse: Decodable {
    struct Table: Decodable {
        var capacity: Int
        var bytesPerSession: Int
        var memoryBytes: Int
        enum CodingKeys: String, CodingKey {
            case capacity
            case bytesPerSession = "bytes_per_session"
            case memoryBytes = "memory_bytes"
        }
    }
    struct Requests: Decodable {
        var ok: UInt64
        var failed: UInt64
        var applied: UInt64
        var refused: UInt64
    }
    struct Clients: Decodable {
        var connected: Int
        var accepted: UInt64
        var refused: UInt64
    }
    struct Events: Decodable {
        var subscribers: Int
        var published: UInt64
        var dropped: UInt64
    }
    /// The data path's counters (`datapath` object; a string when it is not running).
    struct Datapath: Decodable {
        struct Port: Decodable {
            var name: String
            var role: String
            var rxPackets: UInt64
            var rxBytes: UInt64
            var txPackets: UInt64
            var txBytes: UInt64
            var txDropped: UInt64
            enum CodingKeys: String, CodingKey {
                case name, role
                case rxPackets = "rx_packets", rxBytes = "rx_bytes", txPackets = "tx_packets", txBytes = "tx_bytes"
                case txDropped = "tx_dropped"
            }
        }
        struct Counted: Decodable {
            var packets: UInt64
            var bytes: UInt64
        }
        struct Worker: Decodable {
            var index: Int
            var lcore: Int
            var running: Bool
            var packets: UInt64
        }
        struct Engine: Decodable {
            struct Instance: Decodable {
                var index: Int
                var port: String
                var up: Bool
                var packets: UInt64
                var bytes: UInt64
            }
            var id: String
            var packets: UInt64
            var bytes: UInt64
            var fallbackDrop: UInt64
            var fallbackCore: UInt64
            var instances: [Instance]
            enum CodingKeys: String, CodingKey {
                case id, packets, bytes, instances
                case fallbackDrop = "fallback_drop", fallbackCore = "fallback_core"
            }
        }
        var status: String
        var ports: [Port]
        var workers: [Worker]
        var actions: [String: Counted]
        var drops: [String: UInt64]
        var engines: [Engine]?
    }
    var datapath: Datapath?
    var version: UInt64
    var sessions: Int
    var engines: Int
    var applications: Int
    var table: Table
    var requests: Requests
    var errors: [String: UInt64]
    var clients: Clients
    var events: Events
    var uptimeSeconds: Int64
    enum CodingKeys: String, CodingKey {
        case datapath, version, sessions, engines, applications, table, requests, errors, clients, events
        case uptimeSeconds = "uptime_seconds"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // "not_running" (a string) when upfd runs without a data path.
        datapath = try? c.decodeIfPresent(Datapath.self, forKey: .datapath)
        version = try c.decode(UInt64.self, forKey: .version)
        sessions = try c.decode(Int.self, forKey: .sessions)
        engines = try c.decode(Int.self, forKey: .engines)
        applications = try c.decode(Int.self, forKey: .applications)
        table = try c.decode(Table.self, forKey: .table)
        requests = try c.decode(Requests.self, forKey: .requests)
        errors = try c.decode([String: UInt64].self, forKey: .errors)
        clients = try c.decode(Clients.self, forKey: .clients)
        events = try c.decode(Events.self, forKey: .events)
        uptimeSeconds = try c.decode(Int64.self, forKey: .uptimeSeconds)
    }
}

func decodeResponse<T: Decodable>(_ type: T.Type, _ raw: Data) throws(CtlFailure) -> T {
    do {
        return try JSONDecoder().decode(T.self, from: raw)
    } catch {
        throw CtlFailure(status: Exit.cannotConnect, message: "unexpected response from upfd (\(error))")
    }
}

// MARK: - Printing

func printRaw(_ line: Data) {
    FileHandle.standardOutput.write(line + Data([0x0A]))
}

func printApplied(head: ResponseHead, raw: Data, json: Bool) {
    if json { return printRaw(raw) }
    guard let response = try? JSONDecoder().decode(ApplyResponse.self, from: raw) else {
        print("ok, policy version \(head.version ?? 0)")
        return
    }
    guard response.changed, let d = response.delta else {
        print("no change (policy version \(response.version))")
        return
    }
    var parts: [String] = []
    func add(_ n: Int, _ what: String) { if n > 0 { parts.append("\(n) \(what)") } }
    add(d.putSessions, "session(s) put")
    add(d.deletedSessions, "session(s) deleted")
    add(d.putEngines, "engine(s) put")
    add(d.deletedEngines, "engine(s) deleted")
    add(d.putApplications, "application(s) put")
    add(d.deletedApplications, "application(s) deleted")
    print("applied: policy version \(response.version)" + (parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")"))
}

func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows {
        for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
    }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, cell in
            i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
    print(line(header))
    for row in rows { print(line(row)) }
}

func printStats(_ s: StatsResponse) {
    let uptime = "\(s.uptimeSeconds / 86400)d \(s.uptimeSeconds % 86400 / 3600)h \(s.uptimeSeconds % 3600 / 60)m \(s.uptimeSeconds % 60)s"
    printTable(["POLICY", ""], [
        ["version", String(s.version)],
        ["sessions", "\(s.sessions) of \(s.table.capacity)"],
        ["engines", String(s.engines)],
        ["applications", String(s.applications)],
        ["table memory", "\(s.table.memoryBytes / 1024) KiB (\(s.table.bytesPerSession) bytes per session)"],
        ["uptime", uptime],
    ])
    print("")
    printTable(["REQUESTS", ""], [
        ["ok", String(s.requests.ok)],
        ["failed", String(s.requests.failed)],
        ["changes applied", String(s.requests.applied)],
        ["changes refused", String(s.requests.refused)],
    ])
    print("")
    printTable(["CLIENTS", ""], [
        ["connected", String(s.clients.connected)],
        ["accepted", String(s.clients.accepted)],
        ["refused", String(s.clients.refused)],
        ["event subscribers", String(s.events.subscribers)],
        ["events published", String(s.events.published)],
        ["events dropped", String(s.events.dropped)],
    ])
    if !s.errors.isEmpty {
        print("")
        printTable(["ERROR CODE", "COUNT"], s.errors.sorted { $0.key < $1.key }.map { [$0.key, String($0.value)] })
    }
    guard let d = s.datapath else { return }
    print("")
    printTable(["PORT", "ROLE", "RX PKTS", "RX BYTES", "TX PKTS", "TX BYTES", "TX DROPPED"], d.ports.map {
        [$0.name, $0.role, String($0.rxPackets), String($0.rxBytes), String($0.txPackets), String($0.txBytes), String($0.txDropped)]
    })
    print("")
    printTable(["WORKER", "LCORE", "STATE", "PACKETS"], d.workers.map {
        [String($0.index), String($0.lcore), $0.running ? "running" : "stopped", String($0.packets)]
    })
    print("")
    printTable(["ACTION", "PACKETS", "BYTES"], d.actions.sorted { $0.key < $1.key }.map {
        [$0.key, String($0.value.packets), String($0.value.bytes)]
    })
    print("")
    printTable(["DROP REASON", "PACKETS"], d.drops.isEmpty ? [["(none)", "0"]] : d.drops.sorted { $0.key < $1.key }.map {
        [$0.key, String($0.value)]
    })
    if let engines = d.engines, !engines.isEmpty {
        print("")
        var rows: [[String]] = []
        for e in engines {
            rows.append([e.id, "all", "", "", String(e.packets), String(e.bytes), String(e.fallbackDrop), String(e.fallbackCore)])
            for i in e.instances {
                rows.append(["", String(i.index), i.port, i.up ? "up" : "down", String(i.packets), String(i.bytes), "", ""])
            }
        }
        printTable(["ENGINE", "INSTANCE", "PORT", "STATE", "STEERED PKTS", "STEERED BYTES", "FALLBACK DROP", "FALLBACK CORE"], rows)
    }
}

/// A session's counters: totals, then one row per rule in evaluation order.
func printSessionCounters(_ c: SessionCounters) {
    print("packets: \(c.packets)\nbytes: \(c.bytes)")
    printTable(["RULE", "POSITION", "PACKETS", "BYTES"], c.rules.map { r in
        [String(r.id), String(r.position), String(r.packets) + (r.shared == true ? " (shared)" : ""), String(r.bytes)]
    })
    if c.rules.contains(where: { $0.shared == true }) {
        print("(shared: rules from that position on are counted together; see rule_counters_per_session)")
    }
}
