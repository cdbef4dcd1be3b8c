import Foundation
import Testing
import UPFPolicy
@testable import UPFControl

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ConfigurationTests {
    @Test func theEmbeddedDefaultIsTheDefault() throws {
        let parsed = try ServiceConfiguration.parse(yaml: ServiceConfiguration.defaultYAML)
        #expect(parsed == ServiceConfiguration())
        #expect(parsed.control.socket == "/run/upfd/control.sock")
        #expect(parsed.stateFile == "/var/lib/upfd/state.json")
        #expect(parsed.control.maxLineBytes == 1 << 20)
        #expect(parsed.control.idleTimeoutSeconds == 30)
        #expect(try ServiceConfiguration.parse(yaml: "# nothing but a comment\n") == ServiceConfiguration())
    }

    @Test func readsEveryField() throws {
        let config = try ServiceConfiguration.parse(yaml: """
            control:
              socket: /tmp/x/ctl.sock
              allowed_users: [nobody, "1234"]
              socket_group: nogroup
              max_line_bytes: 4096
              idle_timeout_seconds: 0.5
              max_clients: 8
              event_queue: 16
              cpus: [0]
            state_file: /tmp/x/state.json
            limits: {max_sessions: 10, max_engines: 2}
            log_level: debug
            """)
        #expect(config.control.allowedUsers == ["nobody", "1234"])
        #expect(config.control.cpus == [0] && ServiceConfiguration().control.cpus.isEmpty)
        #expect(config.limits.maxSessions == 10 && config.limits.maxEngines == 2 && config.limits.maxRulesPerSession == 64)
        #expect(config.logLevel == .debug)
        let server = config.serverConfiguration()
        #expect(server.access.allowedUIDs.isSuperset(of: [0, 65534, 1234, geteuid()]))
        #expect(server.permissions.group == 65534)
        #expect(server.idleTimeout == .milliseconds(500))
    }

    @Test(arguments: [
        ("controll: {}", "controll"),
        ("control: {sockett: /x}", "control.sockett"),
        ("control: {max_line_bytes: lots}", "control.max_line_bytes"),
        ("control: {max_line_bytes: 10}", "control.max_line_bytes"),
        ("control: {idle_timeout_seconds: -1}", "control.idle_timeout_seconds"),
        ("control: {allowed_users: [root, no-such-user-here]}", "control.allowed_users[1]"),
        ("control: {socket_group: no-such-group-here}", "control.socket_group"),
        ("limits: {max_sessions: 0}", "limits.max_sessions"),
        ("limits: {max_session: 5}", "limits.max_session"),
        ("log_level: loud", "log_level"),
        ("state_file: /var/lib/upfd/", "state_file"),
        ("control: [1, 2]", "control"),
        ("control: {cpus: [0, -1]}", "control.cpus[1]"),
        ("control: {cpus: [0, 100000]}", "control.cpus[1]"),
        ("control: {cpus: [0, 0]}", "control.cpus[1]"),
        ("control: {cpus: 0}", "control.cpus"),
    ])
    func aBadFieldIsNamed(_ yaml: String, _ path: String) {
        do {
            _ = try ServiceConfiguration.parse(yaml: yaml, source: "test.yaml")
            Issue.record("accepted \(yaml)")
        } catch {
            #expect(error.path == path, "\(error)")
            #expect(error.description.hasPrefix("test.yaml: field \(path): "), "\(error)")
        }
    }

    @Test func aMissingFileIsNamed() {
        #expect(throws: ConfigurationError.self) { try ServiceConfiguration.load(path: "/nonexistent/upfd.yaml") }
    }

    @Test func theExampleConfigurationIsValid() throws {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Configs/upfd.yaml")
        _ = try ServiceConfiguration.load(path: example.path)
    }
}

@Suite struct SocketTests {
    @Test func createsAnOwnerOnlySocketInA0750Directory() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/run/ctl.sock"
        let fd = try UnixSocket.listen(path: path, permissions: SocketPermissions())
        defer { close(fd) }
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFSOCK)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(stat("\(dir)/run", &info) == 0 && info.st_mode & 0o777 == 0o750)
    }

    @Test func replacesAStaleSocketButNotALiveOne() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/ctl.sock"
        let live = try UnixSocket.listen(path: path, permissions: SocketPermissions())
        #expect(throws: SocketSetupError.self) { try UnixSocket.listen(path: path, permissions: SocketPermissions()) }
        close(live)  // the file stays, nobody listens: stale
        #expect(FileManager.default.fileExists(atPath: path))
        let again = try UnixSocket.listen(path: path, permissions: SocketPermissions())
        close(again)
    }

    @Test func neverReplacesAFileThatIsNotASocket() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/ctl.sock"
        try Data("precious".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: SocketSetupError.self) { try UnixSocket.listen(path: path, permissions: SocketPermissions()) }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "precious")
    }

    @Test func refusesAPathTooLongForSockaddr() {
        let path = "/tmp/" + String(repeating: "x", count: 120)
        #expect(throws: SocketSetupError.self) { try UnixSocket.listen(path: path, permissions: SocketPermissions()) }
    }

    @Test func peerCredentialsNameTheConnectingProcess() throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let peer = try #require(PeerCredentials.of(fd: fds[0]))
        #expect(peer.uid == geteuid())
        #expect(peer.pid == getpid())
    }

    @Test func accessPolicyAllowsRootTheServiceAndTheListed() {
        let policy = AccessPolicy(allowedUIDs: [1234])
        #expect(policy.allows(PeerCredentials(pid: 1, uid: 0, gid: 0)))
        #expect(policy.allows(PeerCredentials(pid: 1, uid: geteuid(), gid: 0)))
        #expect(policy.allows(PeerCredentials(pid: 1, uid: 1234, gid: 0)))
        #expect(!policy.allows(PeerCredentials(pid: 1, uid: 4321, gid: 0)))
        #expect(Accounts.uid(of: "root") == 0)
        #expect(Accounts.uid(of: "no-such-user-here") == nil)
    }
}
