import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A built `upfd` running as a child process, with its socket and state in a temporary directory.
final class UpfdInstance {
    let directory: URL
    let socket: String
    let stateFile: String
    let configFile: String
    let logFile: String
    private(set) var process: Process?

    /// `control` and `top` are extra YAML lines for the `control:` section and the top level.
    init(idleTimeout: Double = 2, maxSessions: Int = 2000, control: [String] = [], top: [String] = []) throws {
        // Short path: Unix socket paths are limited to 107 bytes.
        directory = URL(fileURLWithPath: "/tmp/upfd-it-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        chmod(directory.path, 0o755)
        socket = directory.appendingPathComponent("run/control.sock").path
        stateFile = directory.appendingPathComponent("state/state.json").path
        configFile = directory.appendingPathComponent("upfd.yaml").path
        logFile = directory.appendingPathComponent("upfd.log").path
        let yaml = (["control:", "  socket: \(socket)", "  idle_timeout_seconds: \(idleTimeout)"] + control.map { "  " + $0 }
            + ["state_file: \(stateFile)", "limits:", "  max_sessions: \(maxSessions)", "log_level: info"] + top)
            .joined(separator: "\n") + "\n"
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: configFile))
    }

    deinit {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts upfd and waits until its socket answers.
    func start() throws {
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        try log.seekToEnd()
        let process = Process()
        process.executableURL = Paths.executable("upfd")
        process.arguments = ["--config", configFile]
        process.standardError = log
        process.standardOutput = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if !process.isRunning {
                throw UpfdTestError("upfd exited with \(process.terminationStatus) at start-up:\n\(self.log)")
            }
            if let client = try? SocketClient(path: socket), (try? client.call(#"{"op":"health"}"#)) != nil { return }
            usleep(50_000)
        }
        throw UpfdTestError("upfd did not answer on \(socket) within 20 s:\n\(self.log)")
    }

    /// SIGTERM, and the exit status.
    @discardableResult
    func stop() -> Int32 {
        guard let process else { return -1 }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        self.process = nil
        return process.terminationStatus
    }

    func killHard() {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    /// The running upfd's process id.
    var pid: Int32? { process?.processIdentifier }

    func client(timeout: Double = 30) throws -> SocketClient { try SocketClient(path: socket, timeout: timeout) }

    /// One request on a fresh connection.
    func call(_ line: String) throws -> [String: Any] { try client().call(line) }

    /// `stats` fields that a refused request must leave as they were.
    func fingerprint() throws -> String {
        let stats = try call(#"{"op":"stats"}"#)
        let policy = try call(#"{"op":"policy.get"}"#)
        let policyText = String(decoding: try JSONSerialization.data(withJSONObject: policy["policy"] ?? [:], options: [.sortedKeys]), as: UTF8.self)
        return "v\(stats["version"] ?? "?") s\(stats["sessions"] ?? "?") e\(stats["engines"] ?? "?") \(policyText)"
    }

    func upfctl(_ arguments: [String], timeout: TimeInterval = 60) throws -> ProcessResult {
        try runProcess(Paths.executable("upfctl"), ["--socket", socket] + arguments, timeout: timeout)
    }
}

struct UpfdTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A blocking client for the control socket.
final class SocketClient {
    private(set) var fd: Int32 = -1
    private var buffer: [UInt8] = []

    init(path: String, timeout: Double = 30) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            fd = -1  // a throwing class init still runs deinit: never close a number twice
            throw UpfdTestError("connect \(path): \(reason)")
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { if fd >= 0 { close(fd) } }

    /// False when the peer closed before everything was written.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    func readLine() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeFirst(newline + 1)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            buffer += chunk[0..<n]
        }
    }

    func call(_ line: String) throws -> [String: Any] {
        send(line + "\n")
        guard let response = readLine() else { throw UpfdTestError("no response to \(line.prefix(100))") }
        return try parseObject(response)
    }
}

func parseObject(_ line: String) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw UpfdTestError("not a JSON object: \(line.prefix(200))")
    }
    return object
}

extension Dictionary where Key == String, Value == Any {
    var ok: Bool { self["ok"] as? Bool == true }
    var code: String? { (self["error"] as? [String: Any])?["code"] as? String }
    var path: String? { (self["error"] as? [String: Any])?["path"] as? String }
    var message: String? { (self["error"] as? [String: Any])?["message"] as? String }
    func int(_ key: String) -> Int? { (self[key] as? NSNumber)?.intValue }
}

/// Sessions as the protocol spells them.
enum Policies {
    static func session(_ seid: Int, teid: Int? = nil, ue: String? = nil, engine: String? = nil) -> String {
        let ueAddress = ue ?? "10.\(60 + seid / 62500).\(seid / 250 % 250).\(seid % 250 + 1)"
        let action = engine.map { #"{"id":1,"type":"steer","engine":"\#($0)"}"# } ?? #"{"id":1,"type":"n6"}"#
        return #"{"seid":\#(seid),"ue_ipv4":"\#(ueAddress)","n3":{"teid":\#(teid ?? seid + 1000),"address":"192.0.2.1"},"rules":[{"id":1,"precedence":10,"source":"access","action":1}],"actions":[\#(action)]}"#
    }

    static func put(_ seid: Int, id: Int = 1, teid: Int? = nil, ue: String? = nil, engine: String? = nil) -> String {
        #"{"id":\#(id),"op":"session.put","session":\#(session(seid, teid: teid, ue: ue, engine: engine))}"#
    }

    static let engine = #"{"id":"llm","instances":[{"port":"0","address":"10.100.0.2"}],"fallback":"drop"}"#
}
