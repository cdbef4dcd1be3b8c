// upfctl: the command line client of upfd's control socket (docs/control-protocol.md).

import ArgumentParser
import Foundation
import UPFPolicy

@main
enum UPFCtlMain {
    /// ArgumentParser's own exit statuses are remapped so that usage errors are 2, whatever the
    /// library's default (64), and our failures print `upfctl: …` with their own status.
    static func main() {
        do {
            var command = try UPFCtl.parseAsRoot(hoistingGlobalOptions(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch let failure as CtlFailure {
            printError("upfctl: \(failure.message)")
            exit(failure.status)
        } catch let code as ExitCode {
            exit(code.rawValue)
        } catch {
            let code = UPFCtl.exitCode(for: error)
            if code == .success {
                print(UPFCtl.fullMessage(for: error))
                exit(0)
            }
            printError(UPFCtl.fullMessage(for: error))
            exit(code == .validationFailure ? Exit.usage : code.rawValue)
        }
    }
}

/// `upfctl --json stats` reads naturally, but ArgumentParser only gives options to the command
/// that declares them: move the connection options written before the subcommand to its end.
func hoistingGlobalOptions(_ arguments: [String]) -> [String] {
    var leading: [String] = []
    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        if argument == "--json" {
            leading.append(argument)
            index += 1
        } else if argument == "--socket" || argument == "--timeout", index + 1 < arguments.count {
            leading += [argument, arguments[index + 1]]
            index += 2
        } else if argument.hasPrefix("--socket=") || argument.hasPrefix("--timeout=") {
            leading.append(argument)
            index += 1
        } else {
            break
        }
    }
    let rest = Array(arguments[index...])
    guard !leading.isEmpty, !rest.isEmpty else { return arguments }
    // Before a `--` that ends the options, or at the end.
    if let separator = rest.firstIndex(of: "--") {
        return Array(rest[..<separator]) + leading + Array(rest[separator...])
    }
    return rest + leading
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

struct UPFCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upfctl",
        abstract: "Control a running upfd over its Unix socket.",
        discussion: """
            Exit status: 0 done; 1 the request was refused (printed as \
            `upfctl: <code>: <message> (at <path>)`) or a local file is invalid; 2 usage error; \
            3 cannot connect to upfd (or the connection broke). Every command takes --socket PATH \
            (default $UPFCTL_SOCKET, else /run/upfd/control.sock), --json (the server's JSON lines) \
            and --timeout SECONDS, before or after the command. The protocol is described in \
            docs/control-protocol.md.
            """,
        subcommands: [Apply.self, SessionCommand.self, EngineCommand.self, PolicyCommand.self, Stats.self, Watch.self,
                      Events.self, Health.self, VersionCommand.self])
}

/// Options every subcommand takes.
struct Connection: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The control socket (default: $UPFCTL_SOCKET or /run/upfd/control.sock).", valueName: "path"))
    var socket: String?

    @Flag(name: .long, help: "Machine output: the server's JSON lines.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for an answer.", valueName: "seconds"))
    var timeout: Double = 30

    var socketPath: String {
        socket ?? ProcessInfo.processInfo.environment["UPFCTL_SOCKET"].flatMap { $0.isEmpty ? nil : $0 } ?? "/run/upfd/control.sock"
    }

    func connect() throws(CtlFailure) -> ControlClient {
        try ControlClient(path: socketPath, timeoutSeconds: timeout)
    }

    func validate() throws {
        guard timeout >= 0, timeout.isFinite else { throw ValidationError("--timeout must be 0 or more seconds") }
    }
}

// MARK: - apply

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply a policy file (engines, applications, sessions) as one transaction.",
        discussion: """
            By default every engine, application and session in FILE is put (created or replaced); \
            what the service has and FILE does not name is kept. With --replace, what FILE does not \
            name is deleted too, so the service's policy becomes exactly FILE. With --changes, FILE \
            is a list of changes ([{"op":"put_session","session":{…}}, …] or {"changes":[…]}). \
            FILE is YAML or JSON (.yaml, .yml, .json). Either all of it applies or nothing does.
            """)

    @OptionGroup var connection: Connection

    @Flag(name: .long, help: "Also delete what FILE does not name.")
    var replace = false

    @Flag(name: .long, help: "FILE is a list of changes, not a policy.")
    var changes = false

    @Argument(help: ArgumentHelp("Policy file (or changes file with --changes).", valueName: "file"))
    var file: String

    func validate() throws {
        if replace && changes { throw ValidationError("--replace and --changes cannot be combined") }
    }

    func run() throws {
        let fields: [(String, String)]
        let op: String
        if changes {
            op = "apply"
            fields = [("changes", json(try loadChanges(file)))]
        } else {
            op = "policy.put"
            let policy = try loadPolicy(file)
            fields = [("policy", json(policy)), ("replace", replace ? "true" : "false")]
        }
        let client = try connection.connect()
        let (head, raw) = try client.call(op, fields)
        printApplied(head: head, raw: raw, json: connection.json)
    }
}

// MARK: - session

struct SessionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session", abstract: "Add, delete, show and list sessions.",
        subcommands: [Add.self, Delete.self, Show.self, List.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put a session (or a list of sessions, as one transaction) from a YAML or JSON file.")
        @OptionGroup var connection: Connection
        @Argument(help: ArgumentHelp("A session, or a list of sessions.", valueName: "file")) var file: String

        func run() throws {
            let sessions = try loadSessions(file)
            let client = try connection.connect()
            let (head, raw): (ResponseHead, Data)
            if sessions.count == 1 {
                (head, raw) = try client.call("session.put", [("session", json(sessions[0]))])
            } else {
                (head, raw) = try client.call("apply", [("changes", json(sessions.map { PolicyChange.putSession($0) }))])
            }
            printApplied(head: head, raw: raw, json: connection.json)
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "del", abstract: "Delete a session.")
        @OptionGroup var connection: Connection
        @Argument(help: ArgumentHelp("The session's SEID.", valueName: "seid")) var seid: UInt64

        func run() throws {
            let (head, raw) = try connection.connect().call("session.delete", [("seid", String(seid))])
            printApplied(head: head, raw: raw, json: connection.json)
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a session (YAML; JSON with --json).")
        @OptionGroup var connection: Connection
        @Argument(help: ArgumentHelp("The session's SEID.", valueName: "seid")) var seid: UInt64

        func run() throws {
            let (_, raw) = try connection.connect().call("session.get", [("seid", String(seid))])
            if connection.json { return printRaw(raw) }
            let response = try decodeResponse(SessionResponse.self, raw)
            print(PolicyCoding.yaml(response.session), terminator: "")
            if let counters = response.counters {
                print("# counters (since the session was created or its rules were reordered)")
                printSessionCounters(counters)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List sessions in SEID order.")
        @OptionGroup var connection: Connection
        @Option(help: ArgumentHelp("List at most this many (default: all).", valueName: "n")) var limit: Int?

        func validate() throws {
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() throws {
            let client = try connection.connect()
            var sessions: [Session] = []
            var cursor: String?
            var version: UInt64 = 0
            var total = 0
            repeat {
                let page = min(1000, (limit ?? Int.max) - sessions.count)
                var fields = [("limit", String(page))]
                if let cursor { fields.append(("cursor", jsonString(cursor))) }
                let (_, raw) = try client.call("session.list", fields)
                let response = try decodeResponse(SessionListResponse.self, raw)
                sessions += response.sessions
                cursor = response.nextCursor
                version = response.version
                total = response.total
            } while cursor != nil && sessions.count < (limit ?? Int.max)
            if connection.json {
                print("{\"version\":\(version),\"total\":\(total),\"sessions\":\(json(sessions))}")
                return
            }
            let rows = sessions.map { s -> [String] in
                [String(s.seid), s.ueIPv4 ?? "-", s.ueIPv6 ?? "-", "\(s.n3.teid)@\(s.n3.address)",
                 s.gnb.map { "\($0.teid)@\($0.address)" } ?? "-", String(s.rules.count)]
            }
            printTable(["SEID", "UE IPv4", "UE IPv6", "N3 F-TEID", "gNB F-TEID", "RULES"], rows)
            print("\(sessions.count) of \(total) session(s), policy version \(version)")
        }
    }
}

// MARK: - engine

struct EngineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine", abstract: "Put, delete and list engines.",
        subcommands: [Put.self, Delete.self, List.self])

    struct Put: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put an engine from a YAML or JSON file.")
        @OptionGroup var connection: Connection
        @Argument(help: ArgumentHelp("An engine.", valueName: "file")) var file: String

        func run() throws {
            let engine = try loadDocument(Engine.self, file)
            let (head, raw) = try connection.connect().call("engine.put", [("engine", json(engine))])
            printApplied(head: head, raw: raw, json: connection.json)
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "del", abstract: "Delete an engine (no session may steer to it).")
        @OptionGroup var connection: Connection
        @Argument(help: ArgumentHelp("The engine's id.", valueName: "id")) var id: String

        func run() throws {
            let (head, raw) = try connection.connect().call("engine.delete", [("engine_id", jsonString(id))])
            printApplied(head: head, raw: raw, json: connection.json)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List engines with their state.")
        @OptionGroup var connection: Connection

        func run() throws {
            let (_, raw) = try connection.connect().call("engine.list")
            if connection.json { return printRaw(raw) }
            let response = try decodeResponse(EngineListResponse.self, raw)
            let rows = response.engines.map { e -> [String] in
                [e.id, e.state, e.engine.instances.map { "\($0.address)@\($0.port)" }.joined(separator: ","),
                 e.engine.fallback.rawValue, String(e.sessions)]
            }
            printTable(["ID", "STATE", "INSTANCES", "FALLBACK", "SESSIONS"], rows)
        }
    }
}

// MARK: - policy

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Print the whole policy in force (YAML; JSON with --json).")
    @OptionGroup var connection: Connection

    func run() throws {
        let (_, raw) = try connection.connect().call("policy.get")
        if connection.json { return printRaw(raw) }
        let response = try decodeResponse(PolicyResponse.self, raw)
        print("# policy version \(response.version)")
        print(PolicyCoding.yaml(response.policy), terminator: "")
    }
}

// MARK: - stats, watch, health, version

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the service's counters.",
        discussion: """
            Policy, requests, clients, then the data path: ports, workers, actions, drop reasons             and engines (steered packets per instance, fallbacks). With --session, the counters             of that session only: totals and each rule's packets and bytes.
            """)
    @OptionGroup var connection: Connection
    @Option(help: ArgumentHelp("Only this session's counters (per rule).", valueName: "seid")) var session: UInt64?

    func run() throws {
        if let session {
            let (_, raw) = try connection.connect().call("stats", [("session", String(session))])
            if connection.json { return printRaw(raw) }
            let response = try decodeResponse(SessionStatsResponse.self, raw)
            guard let counters = response.counters else {
                print("session \(response.seid): no data path counters (the data path is not running)")
                return
            }
            print("session \(response.seid)")
            printSessionCounters(counters)
            return
        }
        let (_, raw) = try connection.connect().call("stats")
        if connection.json { return printRaw(raw) }
        printStats(try decodeResponse(StatsResponse.self, raw))
    }
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the counters every few seconds.")
    @OptionGroup var connection: Connection
    @Option(help: ArgumentHelp("Seconds between refreshes.", valueName: "seconds")) var interval: Double = 2
    @Option(help: ArgumentHelp("Stop after this many refreshes (default: until interrupted).", valueName: "n")) var count: Int?

    func validate() throws {
        guard interval > 0, interval.isFinite else { throw ValidationError("--interval must be more than 0 seconds") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        let client = try connection.connect()
        var shown = 0
        while count.map({ shown < $0 }) ?? true {
            if shown > 0 { Thread.sleep(forTimeInterval: interval) }
            let (_, raw) = try client.call("stats")
            if connection.json {
                printRaw(raw)
            } else {
                if shown > 0 { print("") }
                print("--- \(ISO8601DateFormatter().string(from: Date()))")
                printStats(try decodeResponse(StatsResponse.self, raw))
            }
            fflush(nil)
            shown += 1
        }
    }
}

struct Health: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Is the service healthy? (exit 1 when degraded)")
    @OptionGroup var connection: Connection

    func run() throws {
        let (_, raw) = try connection.connect().call("health")
        let response = try decodeResponse(HealthResponse.self, raw)
        if connection.json { printRaw(raw) } else {
            print("status: \(response.status)\ncontrol: \(response.control)\ndatapath: \(response.datapath)")
            for (key, value) in (response.problems ?? [:]).sorted(by: { $0.key < $1.key }) { print("problem: \(key): \(value)") }
        }
        if response.status != "ok" { throw ExitCode(Exit.refused) }
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Show the service's software and policy versions.")
    @OptionGroup var connection: Connection

    func run() throws {
        let (_, raw) = try connection.connect().call("version")
        if connection.json { return printRaw(raw) }
        let response = try decodeResponse(VersionResponse.self, raw)
        print("upfd \(response.software), policy version \(response.policyVersion), protocol \(response.protocolVersion)")
    }
}

// MARK: - events

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the service's events as they happen (policy_applied, engine_state, …).")
    @OptionGroup var connection: Connection
    @Option(help: ArgumentHelp("Stop after this many events (default: until interrupted).", valueName: "n")) var count: Int?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        let client = try connection.connect()
        _ = try client.call("events")
        client.setTimeout(0)
        var seen = 0
        while count.map({ seen < $0 }) ?? true {
            guard let line = try client.readLine() else {
                throw CtlFailure(status: Exit.cannotConnect, message: "upfd closed the event stream")
            }
            if connection.json {
                printRaw(line)
            } else {
                print(describeEvent(line))
            }
            fflush(nil)
            seen += 1
        }
    }

    func describeEvent(_ line: Data) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
              let name = object["event"] as? String else {
            return String(decoding: line, as: UTF8.self)
        }
        let time = ISO8601DateFormatter().string(from: Date())
        let fields = object.filter { $0.key != "event" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return ([time, name] + fields).joined(separator: " ")
    }
}
