import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The built `upfd` over its real socket: BAD_INPUTS cases 20-27, concurrency, restarts, upfctl.
/// Every refusal must be a clear error, leave the state as it was, and leave the server serving.
@Suite(.serialized) struct ControlSocketTests {
    /// Sends `request`, expects a refusal with `code` (and `path`), then checks nothing changed
    /// and the server still answers.
    func expectRefused(_ upfd: UpfdInstance, _ request: String, code: String, path: String? = nil,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = try upfd.fingerprint()
        let response = try upfd.call(request)
        #expect(!response.ok, "accepted: \(request.prefix(120))", sourceLocation: sourceLocation)
        #expect(response.code == code, "\(response)", sourceLocation: sourceLocation)
        if let path { #expect(response.path == path, "\(response)", sourceLocation: sourceLocation) }
        #expect(!(response.message ?? "").isEmpty, sourceLocation: sourceLocation)
        #expect(try upfd.fingerprint() == before, "state changed by \(request.prefix(120))", sourceLocation: sourceLocation)
        #expect(try upfd.call(#"{"op":"health"}"#)["status"] as? String == "ok", sourceLocation: sourceLocation)
    }

    @Test func socketIsOwnerOnlyAndGoneAfterSIGTERM() throws {
        let upfd = try UpfdInstance()
        try upfd.start()
        var info = stat()
        #expect(stat(upfd.socket, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(stat((upfd.socket as NSString).deletingLastPathComponent, &info) == 0 && info.st_mode & 0o777 == 0o750)
        let version = try upfd.call(#"{"id":"v","op":"version"}"#)
        #expect(version["id"] as? String == "v" && version["software"] as? String != nil)
        #expect(upfd.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: upfd.socket))
        #expect(upfd.log.contains("data path running") && upfd.log.contains("upfd stopped"), "\(upfd.log)")
    }

    /// `control.cpus`: the control plane's loops run on the CPUs given; without it they stay on
    /// the CPU EAL gives the main thread (its main lcore's).
    @Test(.enabled(if: sysconf(Int32(_SC_NPROCESSORS_ONLN)) >= 2, "needs two CPUs"))
    func controlThreadsRunOnTheConfiguredCPUs() throws {
        func cpusAllowed(_ statusPath: String) -> String {
            let status = (try? String(contentsOfFile: statusPath, encoding: .utf8)) ?? ""
            return status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }?
                .split(separator: "\t").last.map(String.init) ?? "?"
        }
        /// Thread name → its CPUs (the first thread of a name), and "main" → the main thread's.
        func allowed(_ pid: Int32) -> [String: String] {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            var result = ["main": cpusAllowed("/proc/\(pid)/status")]
            for task in tasks {
                let comm = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8)) ?? ""
                let name = comm.trimmingCharacters(in: .whitespacesAndNewlines)
                if result[name] == nil { result[name] = cpusAllowed("/proc/\(pid)/task/\(task)/status") }
            }
            return result
        }
        let pinned = try UpfdInstance(control: ["cpus: [0, 1]"])
        try pinned.start()
        let pid = try #require(pinned.pid)
        let threads = allowed(pid)
        #expect(threads["NIO-ELT-1-#1"] == "0-1" && threads["NIO-ELT-2-#1"] == "0-1", "\(threads)")
        #expect(pinned.stop() == 0)

        let plain = try UpfdInstance()
        try plain.start()
        let plainThreads = allowed(try #require(plain.pid))
        #expect(plainThreads["NIO-ELT-1-#1"] == plainThreads["main"] && plainThreads["NIO-ELT-2-#1"] == plainThreads["main"],
                "\(plainThreads)")
        #expect(plain.stop() == 0)

        let missing = try UpfdInstance(control: ["cpus: [0, 4095]"])
        #expect(throws: (any Error).self) { try missing.start() }
        #expect(missing.log.contains("control.cpus[1]"), "\(missing.log)")
    }

    /// Cases 20-23: refused by validation, with the path of the offending field.
    @Test func invalidPoliciesAreRefusedPrecisely() throws {
        let upfd = try UpfdInstance()
        try upfd.start()
        #expect(try upfd.call(Policies.put(1)).ok)
        func put(_ session: String) -> String { #"{"id":7,"op":"session.put","session":\#(session)}"# }
        let base = Policies.session(2)
        func with(_ replace: String, _ by: String) -> String { put(base.replacingOccurrences(of: replace, with: by)) }
        let rule = #""rules":[{"id":1,"precedence":10,"source":"access","action":1}]"#
        func ruleWith(_ extra: String) -> String { #""rules":[{"id":1,"precedence":10,"source":"access","action":1,\#(extra)}]"# }
        // 20: a rule with no action; dangling references.
        try expectRefused(upfd, with(rule, #""rules":[{"id":1,"precedence":10,"source":"access"}]"#),
                          code: "missing_field", path: "session.rules[0].action")
        try expectRefused(upfd, with(#""action":1"#, #""action":9"#), code: "dangling_reference", path: "session.rules[0].action")
        try expectRefused(upfd, with(rule, ruleWith(#""qos":4"#)), code: "dangling_reference", path: "session.rules[0].qos")
        try expectRefused(upfd, with(#"{"id":1,"type":"n6"}"#, #"{"id":1,"type":"steer","engine":"nope"}"#),
                          code: "dangling_reference", path: "session.actions[0].engine")
        // 21: collisions with session 1.
        try expectRefused(upfd, put(Policies.session(2, teid: 1001)), code: "collision", path: "session.n3.teid")
        try expectRefused(upfd, put(Policies.session(2, ue: "10.60.0.2")), code: "collision", path: "session.ue_ipv4")
        // 22: TEID 0, out-of-range and negative numbers, an address flag with no address.
        try expectRefused(upfd, put(Policies.session(2, teid: 0)), code: "out_of_range", path: "session.n3.teid")
        try expectRefused(upfd, with(#""precedence":10"#, #""precedence":-5"#), code: "out_of_range", path: "session.rules[0].precedence")
        try expectRefused(upfd, with(#""teid":1002"#, #""teid":4294967296"#), code: "out_of_range", path: "session.n3.teid")
        try expectRefused(upfd, with(#""ue_ipv4":"10.60.0.3""#, #""ue_ipv4":"""#), code: "invalid_address", path: "session.ue_ipv4")
        // 23: unparsable filters, reversed port ranges, prefix lengths past 32/128.
        try expectRefused(upfd, with(rule, ruleWith(#""match":{"destination_prefixes":["permit"]}"#)),
                          code: "invalid_address", path: "session.rules[0].match.destination_prefixes[0]")
        try expectRefused(upfd, with(rule, ruleWith(#""match":{"destination_ports":["9000-8000"]}"#)),
                          code: "invalid_range", path: "session.rules[0].match.destination_ports[0]")
        try expectRefused(upfd, with(rule, ruleWith(#""match":{"destination_prefixes":["10.0.0.0/33"]}"#)),
                          code: "invalid_prefix", path: "session.rules[0].match.destination_prefixes[0]")
        try expectRefused(upfd, with(rule, ruleWith(#""match":{"source_prefixes":["2001:db8::/129"]}"#)),
                          code: "invalid_prefix", path: "session.rules[0].match.source_prefixes[0]")
        // A batch whose last change is bad applies nothing of the ones before it.
        try expectRefused(upfd, #"{"op":"apply","changes":[{"op":"put_session","session":\#(Policies.session(3))},{"op":"put_session","session":\#(Policies.session(4, teid: 1003))}]}"#,
                          code: "collision", path: "changes[1].session.n3.teid")
        #expect(upfd.stop() == 0)
    }

    /// Case 24: thousands of sessions from one client until the table is full.
    @Test func fillingTheTableEndsInTableFull() throws {
        let upfd = try UpfdInstance(maxSessions: 2000)
        try upfd.start()
        let client = try upfd.client()
        var accepted = 0
        var refusal: [String: Any]?
        // Pipelined in chunks: the server answers in order, one request at a time.
        var seid = 1
        while refusal == nil && seid <= 2100 {
            let chunk = (seid..<seid + 100).map { Policies.put($0, id: $0) }.joined(separator: "\n") + "\n"
            client.send(chunk)
            for _ in 0..<100 {
                let response = try parseObject(try #require(client.readLine()))
                if response.ok { accepted += 1 } else if refusal == nil { refusal = response }
            }
            seid += 100
        }
        #expect(accepted == 2000)
        #expect(refusal?.code == "table_full")
        #expect(refusal?.path == "session")
        #expect(refusal?.int("id") == 2001)
        let stats = try upfd.call(#"{"op":"stats"}"#)
        #expect(stats.int("sessions") == 2000)
        #expect((stats["table"] as? [String: Any])?["capacity"] as? Int == 2000)
        #expect((stats["errors"] as? [String: Any])?["table_full"] as? Int == 100)
        // Still serving: make room and put again.
        #expect(try upfd.call(#"{"op":"session.delete","seid":1}"#).ok)
        #expect(try upfd.call(Policies.put(5000)).ok)
        #expect(upfd.stop() == 0)
    }

    /// Case 25: malformed lines of every kind.
    @Test func malformedRequestsAreRefused() throws {
        let upfd = try UpfdInstance()
        try upfd.start()
        #expect(try upfd.call(Policies.put(1)).ok)
        try expectRefused(upfd, "", code: "empty_request")
        try expectRefused(upfd, #"{"id":1,"op":"session.put","session":{"seid":2,"n3":{"teid":5,"#, code: "syntax_error")
        try expectRefused(upfd, #"{"id":1,"op":"session.destroy","seid":1}"#, code: "unknown_operation", path: "op")
        try expectRefused(upfd, #"{"id":1,"op":"session.delete","seid":1,"force":true}"#, code: "unknown_field", path: "force")
        try expectRefused(upfd, Policies.put(2).replacingOccurrences(of: #""seid":2,"#, with: #""seid":2,"colour":"red","#),
                          code: "unknown_field", path: "session.colour")
        try expectRefused(upfd, "[]", code: "not_an_object")
        try expectRefused(upfd, #"{"op":"session.delete","seid":1,"seid":2}"#, code: "syntax_error")
        try expectRefused(upfd, String(repeating: "[", count: 200_000), code: "syntax_error")  // nesting bound

        // Invalid UTF-8 inside a string.
        let before = try upfd.fingerprint()
        let raw = try upfd.client()
        raw.send(Array(#"{"id":1,"op":"session.delete","seid":1,"x":""#.utf8) + [0xC0, 0xAF, 0xFF] + Array("\"}\n".utf8))
        #expect(try parseObject(try #require(raw.readLine())).code == "invalid_utf8")
        // The same connection keeps working after a refused line.
        #expect(try raw.call(#"{"op":"health"}"#).ok)

        // A line of several megabytes: refused as soon as it passes the limit, then closed.
        let long = try upfd.client()
        let body = #"{"id":1,"op":"apply","changes":["# + String(repeating: #"{"op":"delete_session","seid":1},"#, count: 150_000)
        nonisolated(unsafe) let sender = long
        let writer = Thread { sender.send(body + #"{"op":"delete_session","seid":1}]}"# + "\n") }
        writer.start()
        let answer = try parseObject(try #require(long.readLine()))
        #expect(answer.code == "line_too_long")
        #expect(long.readLine() == nil)
        #expect(try upfd.fingerprint() == before)
        #expect(upfd.stop() == 0)
    }

    /// Case 26: deleting what is not there, and the same request twice.
    @Test func missingSessionsAndRepeatedRequests() throws {
        let upfd = try UpfdInstance()
        try upfd.start()
        try expectRefused(upfd, #"{"op":"session.delete","seid":77}"#, code: "not_found", path: "seid")
        try expectRefused(upfd, #"{"op":"session.get","seid":77}"#, code: "not_found", path: "seid")
        try expectRefused(upfd, #"{"op":"engine.delete","engine_id":"ghost"}"#, code: "not_found", path: "engine_id")
        try expectRefused(upfd, #"{"op":"apply","changes":[{"op":"delete_session","seid":77}]}"#, code: "not_found",
                          path: "changes[0].seid")
        let first = try upfd.call(Policies.put(1))
        let second = try upfd.call(Policies.put(1))
        #expect(first.ok && second.ok)
        #expect(first.int("version") == 1 && second.int("version") == 1)
        #expect(second["changed"] as? Bool == false)
        #expect(try upfd.call(#"{"op":"session.delete","seid":1}"#).ok)
        try expectRefused(upfd, #"{"op":"session.delete","seid":1}"#, code: "not_found")
        #expect(upfd.stop() == 0)
    }

    /// Case 27: a client that never writes is closed after the idle timeout.
    @Test func aSilentClientIsClosedAfterTheIdleTimeout() throws {
        let upfd = try UpfdInstance(idleTimeout: 1)
        try upfd.start()
        let silent = try upfd.client(timeout: 10)
        let started = Date()
        let line = try #require(silent.readLine())
        let waited = Date().timeIntervalSince(started)
        #expect(try parseObject(line).code == "idle_timeout")
        #expect(silent.readLine() == nil)
        #expect(waited > 0.8 && waited < 5)
        #expect(try upfd.call(#"{"op":"health"}"#).ok)
        #expect(upfd.stop() == 0)
    }

    /// Case 27: a user that is not allowed. The socket's group lets `nobody` reach the file, so
    /// the refusal comes from the peer-credential check, not from file permissions.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
                   && FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")))
    func aForbiddenUserIsRefused() throws {
        let upfd = try UpfdInstance(control: ["socket_group: nogroup"])
        try upfd.start()
        let before = try upfd.fingerprint()
        let script = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.connect(sys.argv[1])
            s.sendall(b'{"id":1,"op":"session.delete","seid":1}\\n')
            print(s.makefile().read(), end="")
            """
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/setpriv"),
                                    ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c", script, upfd.socket],
                                    timeout: 30)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 1)
        let response = try parseObject(String(lines.first ?? ""))
        #expect(response.code == "forbidden")
        #expect(response.message?.contains("nobody") == true)
        #expect(try upfd.fingerprint() == before)
        let stats = try upfd.call(#"{"op":"stats"}"#)
        #expect((stats["clients"] as? [String: Any])?["refused"] as? Int == 1)
        #expect(upfd.stop() == 0)
    }

    @Test func manyConcurrentClients() throws {
        let upfd = try UpfdInstance()
        try upfd.start()
        let socket = upfd.socket
        let lock = NSLock()
        nonisolated(unsafe) var failures: [String] = []
        DispatchQueue.concurrentPerform(iterations: 40) { k in
            do {
                let client = try SocketClient(path: socket)
                for i in 0..<10 {
                    let seid = k * 10 + i + 1
                    let put = try client.call(Policies.put(seid, id: seid))
                    let get = try client.call(#"{"op":"session.get","seid":\#(seid)}"#)
                    if !put.ok || !get.ok || put.int("id") != seid { lock.withLock { failures.append("\(seid): \(put)") } }
                }
            } catch {
                lock.withLock { failures.append("client \(k): \(error)") }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        let stats = try upfd.call(#"{"op":"stats"}"#)
        #expect(stats.int("sessions") == 400)
        #expect(stats.int("version") == 400)
        #expect(upfd.stop() == 0)
    }

    /// The applied policy survives SIGKILL; damaged state stops start-up with a clear error.
    @Test func restartKeepsThePolicyAndRefusesDamagedState() throws {
        let upfd = try UpfdInstance()
        try upfd.start()
        #expect(try upfd.call(#"{"op":"engine.put","engine":\#(Policies.engine)}"#).ok)
        for seid in 1...20 { #expect(try upfd.call(Policies.put(seid, engine: seid % 2 == 0 ? "llm" : nil)).ok) }
        #expect(try upfd.call(#"{"op":"session.delete","seid":7}"#).ok)
        let before = try upfd.fingerprint()
        upfd.killHard()  // no snapshot at exit: the journal alone must carry the changes

        try upfd.start()  // the stale socket file is replaced
        #expect(try upfd.fingerprint() == before)
        #expect(try upfd.call(#"{"op":"version"}"#).int("policy_version") == 22)
        #expect(upfd.stop() == 0)  // writes a snapshot
        try upfd.start()
        #expect(try upfd.fingerprint() == before)

        // A second instance on the same socket refuses to start rather than steal it.
        let second = try runProcess(Paths.executable("upfd"), ["--config", upfd.configFile], timeout: 30)
        #expect(second.status == 1)
        #expect(second.stderr.contains("is upfd already running?"), "\(second.stderr)")
        #expect(upfd.stop() == 0)

        // A corrupt snapshot: start-up stops and names the file and the problem.
        try Data(#"{"format":"upfd-state","format_version":1,"version":22,"policy":{"sessions":[{"seid":"#.utf8)
            .write(to: URL(fileURLWithPath: upfd.stateFile))
        let corrupt = try runProcess(Paths.executable("upfd"), ["--config", upfd.configFile], timeout: 30)
        #expect(corrupt.status == 1)
        #expect(corrupt.stderr.contains(upfd.stateFile), "\(corrupt.stderr)")
        #expect(corrupt.stderr.contains("corrupt"), "\(corrupt.stderr)")
        #expect(!FileManager.default.fileExists(atPath: upfd.socket))

        // A corrupt journal line, likewise.
        try FileManager.default.removeItem(atPath: upfd.stateFile)
        try Data("{\"version\":1,\"changes\":[]}\nnot json\n".utf8).write(to: URL(fileURLWithPath: upfd.stateFile + ".journal"))
        let journal = try runProcess(Paths.executable("upfd"), ["--config", upfd.configFile], timeout: 30)
        #expect(journal.status == 1)
        #expect(journal.stderr.contains(upfd.stateFile + ".journal") && journal.stderr.contains("line 2"), "\(journal.stderr)")

        // An unreadable state file (a directory in its place).
        try FileManager.default.removeItem(atPath: upfd.stateFile + ".journal")
        try FileManager.default.createDirectory(atPath: upfd.stateFile, withIntermediateDirectories: false)
        let unreadable = try runProcess(Paths.executable("upfd"), ["--config", upfd.configFile], timeout: 30)
        #expect(unreadable.status == 1)
        #expect(unreadable.stderr.contains(upfd.stateFile), "\(unreadable.stderr)")
    }

    @Test func aBadConfigurationNamesTheField() throws {
        let upfd = try UpfdInstance(top: ["colour: blue"])
        let result = try runProcess(Paths.executable("upfd"), ["--config", upfd.configFile], timeout: 30)
        #expect(result.status == 1)
        #expect(result.stderr.contains("colour"), "\(result.stderr)")
        let help = try runProcess(Paths.executable("upfd"), ["--help"], timeout: 30)
        #expect(help.status == 0)
        #expect(help.stdout.contains("SIGTERM") && help.stdout.contains("lcore"))
        let defaults = try runProcess(Paths.executable("upfd"), ["--print-default-config"], timeout: 30)
        #expect(defaults.stdout.contains("socket: /run/upfd/control.sock") && defaults.stdout.contains("net_null0"))
    }

    @Test func upfctlEndToEnd() throws {
        let upfd = try UpfdInstance()
        try upfd.start()
        let dir = upfd.directory.path
        let policy = """
            engines:
              - id: llm
                instances: [{port: "0", address: 10.100.0.2}]
                fallback: drop
            sessions:
              - seid: 1
                ue_ipv4: 10.60.0.1
                n3: {teid: 1001, address: 192.0.2.1}
                rules: [{id: 1, precedence: 10, source: access, action: 1}]
                actions: [{id: 1, type: steer, engine: llm}]
              - seid: 2
                ue_ipv4: 10.60.0.2
                n3: {teid: 1002, address: 192.0.2.1}
                rules: [{id: 1, precedence: 10, source: access, action: 1}]
                actions: [{id: 1, type: n6}]
            """
        try Data(policy.utf8).write(to: URL(fileURLWithPath: "\(dir)/policy.yaml"))
        try Data(Policies.session(3).utf8).write(to: URL(fileURLWithPath: "\(dir)/s3.json"))
        try Data(#"{"id":"vision","instances":[{"port":"1","address":"10.100.0.3"}]}"#.utf8)
            .write(to: URL(fileURLWithPath: "\(dir)/engine.json"))

        // An event stream, started before the changes.
        let events = Process()
        events.executableURL = Paths.executable("upfctl")
        events.arguments = ["events", "--count", "3", "--json", "--socket", upfd.socket]
        let eventsOut = Pipe()
        events.standardOutput = eventsOut
        try events.run()
        // Health checks publish engine_state (up / down) whenever an engine's liveness changes
        // (vision's instance is on a port that is no engine port: down): read the stream here
        // too, without them.
        let stream = try upfd.client(timeout: 5)
        #expect(try stream.call(#"{"op":"events"}"#).ok)
        Thread.sleep(forTimeInterval: 0.5)

        var r = try upfd.upfctl(["apply", "\(dir)/policy.yaml"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("policy version 1"))
        r = try upfd.upfctl(["session", "list"])
        #expect(r.status == 0 && r.stdout.contains("10.60.0.2") && r.stdout.contains("2 of 2"), "\(r.stdout)")
        r = try upfd.upfctl(["session", "add", "\(dir)/s3.json"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try upfd.upfctl(["session", "show", "3"])
        #expect(r.status == 0 && r.stdout.contains("seid: 3"), "\(r.stdout)")
        r = try upfd.upfctl(["--json", "session", "show", "3"])
        #expect(try parseObject(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).ok)
        r = try upfd.upfctl(["engine", "put", "\(dir)/engine.json"])
        #expect(r.status == 0, "\(r.stderr)")

        events.waitUntilExit()
        let eventLines = String(decoding: eventsOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").map(String.init)
        #expect(events.terminationStatus == 0)
        #expect(eventLines.count == 3)
        var changes: [String] = []
        while !changes.contains(where: { $0.contains(#""event":"policy_applied","version":2"#) }), let line = stream.readLine() {
            if !line.contains(#""state":"up""#) && !line.contains(#""state":"down""#) { changes.append(line) }
        }
        #expect(changes.first?.contains(#""event":"engine_state""#) == true, "\(changes)")
        #expect(changes.contains { $0.contains(#""event":"policy_applied","version":2"#) }, "\(changes)")

        r = try upfd.upfctl(["engine", "list"])
        #expect(r.stdout.contains("llm") && r.stdout.contains("vision"), "\(r.stdout)")
        // Refused: exit 1 with the server's error.
        r = try upfd.upfctl(["engine", "del", "llm"])
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("upfctl: in_use: ") && r.stderr.contains("(at engine_id)"), "\(r.stderr)")
        r = try upfd.upfctl(["session", "del", "99"])
        #expect(r.status == 1 && r.stderr.contains("upfctl: not_found:"), "\(r.stderr)")
        // --replace: the policy becomes exactly the file (session 3 and engine vision go).
        r = try upfd.upfctl(["apply", "--replace", "\(dir)/policy.yaml"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try upfd.upfctl(["--json", "session", "list"])
        let listed = try parseObject(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect((listed["sessions"] as? [[String: Any]])?.compactMap { $0["seid"] as? Int } == [1, 2])
        r = try upfd.upfctl(["engine", "list", "--json"])
        #expect(!r.stdout.contains("vision"))
        r = try upfd.upfctl(["stats"])
        #expect(r.status == 0 && r.stdout.contains("sessions") && r.stdout.contains("2 of 2000"), "\(r.stdout)")
        r = try upfd.upfctl(["watch", "--interval", "0.2", "--count", "2"])
        #expect(r.status == 0 && r.stdout.components(separatedBy: "--- ").count == 3, "\(r.stdout)")
        r = try upfd.upfctl(["health"])
        #expect(r.status == 0 && r.stdout.contains("status: ok"))
        // A local file that does not parse: exit 1, naming the file and the field.
        try Data("sessions:\n  - seid: -1\n".utf8).write(to: URL(fileURLWithPath: "\(dir)/bad.yaml"))
        r = try upfd.upfctl(["apply", "\(dir)/bad.yaml"])
        #expect(r.status == 1 && r.stderr.contains("bad.yaml") && r.stderr.contains("sessions[0].seid"), "\(r.stderr)")
        // Usage errors: 2. Cannot connect: 3.
        r = try upfd.upfctl(["session", "show", "abc"])
        #expect(r.status == 2)
        r = try upfd.upfctl(["frobnicate"])
        #expect(r.status == 2)
        r = try runProcess(Paths.executable("upfctl"), ["stats", "--socket", "\(dir)/nothing.sock"], timeout: 30)
        #expect(r.status == 3 && r.stderr.contains("cannot connect"), "\(r.stderr)")
        r = try runProcess(Paths.executable("upfctl"), ["health"], timeout: 30, environment: ["UPFCTL_SOCKET": upfd.socket])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(upfd.stop() == 0)
    }
}
