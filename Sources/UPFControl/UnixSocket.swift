// Creating the control socket file safely, and reading who is on the other end of a connection.
//
// The listening socket is made here rather than by NIO's `bind(unixDomainSocketPath:)` so that
// (1) the file is never reachable with looser permissions, not even between bind() and chmod():
// the socket inode's mode is set before bind and the umask is honoured; (2) a stale socket file is
// removed only after checking that nothing listens on it (NIO's cleanup would unlink a live
// service's socket); (3) a path that is not a socket is never deleted.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure setting up or inspecting the control socket, with the path and the system's reason.
public struct SocketSetupError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public var description: String { "control socket \(path): \(message)" }
}

func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

/// Owner and mode for the socket and its directory.
public struct SocketPermissions: Sendable, Equatable {
    /// Group allowed to reach the socket (mode 0660, directory 0750 group-owned), or nil for
    /// owner-only (socket 0600). Used to let `allowed_users` that are not the owner connect.
    public var group: gid_t?

    public init(group: gid_t? = nil) { self.group = group }

    var socketMode: mode_t { group == nil ? 0o600 : 0o660 }
    static let directoryMode: mode_t = 0o750
}

public enum UnixSocket {
    /// The longest path `sockaddr_un` can hold, including the terminating NUL.
    static var maxPathLength: Int { MemoryLayout.size(ofValue: sockaddr_un().sun_path) }

    /// Creates the parent directory (0750) when missing, removes a stale socket file, and returns a
    /// bound, listening, non-blocking socket with mode 0600 (0660 with a group).
    public static func listen(path: String, permissions: SocketPermissions, backlog: Int32 = 128) throws -> Int32 {
        guard !path.isEmpty else { throw SocketSetupError(path: path, message: "empty path") }
        guard path.utf8.count < maxPathLength else {
            throw SocketSetupError(path: path, message: "path longer than \(maxPathLength - 1) bytes")
        }
        try prepareDirectory(of: path, permissions: permissions)
        try removeIfStale(path: path)

        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketSetupError(path: path, message: "socket(): \(errnoText())") }
        var ok = false
        defer { if !ok { close(fd) } }

        // On Linux bind() creates the file with the socket inode's mode masked by the umask:
        // restricting the inode first means the file never exists with a wider mode.
        _ = fchmod(fd, permissions.socketMode)
        var address = try address(path: path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw SocketSetupError(path: path, message: "bind(): \(errnoText())") }
        // Belt and braces for systems where the inode mode is not honoured.
        guard chmod(path, permissions.socketMode) == 0 else {
            let reason = errnoText()
            unlink(path)
            throw SocketSetupError(path: path, message: "chmod(): \(reason)")
        }
        if let group = permissions.group, chown(path, uid_t.max, group) != 0 {
            let reason = errnoText()
            unlink(path)
            throw SocketSetupError(path: path, message: "chown to group \(group): \(reason)")
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let reason = errnoText()
            unlink(path)
            throw SocketSetupError(path: path, message: "listen(): \(reason)")
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        ok = true
        return fd
    }

    static func address(path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < maxPathLength else {
            throw SocketSetupError(path: path, message: "path longer than \(maxPathLength - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    /// Creates missing directories; the last one gets 0750 (and the group, when one is given).
    /// An existing directory is left as it is: it may be shared (`/run`, a test's temp dir).
    static func prepareDirectory(of path: String, permissions: SocketPermissions) throws {
        guard let slash = path.lastIndex(of: "/") else { return }
        let directory = String(path[..<slash])
        guard !directory.isEmpty else { return }
        var info = stat()
        if stat(directory, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw SocketSetupError(path: path, message: "\(directory) exists and is not a directory")
            }
            return
        }
        // Create parents first (0755, like `mkdir -p`), then the socket's own directory.
        var prefix = ""
        let components = directory.split(separator: "/", omittingEmptySubsequences: true)
        for (i, component) in components.enumerated() {
            prefix += (i == 0 && !directory.hasPrefix("/") ? "" : "/") + component
            let last = i == components.count - 1
            if mkdir(prefix, last ? SocketPermissions.directoryMode : 0o755) != 0 && errno != EEXIST {
                throw SocketSetupError(path: path, message: "cannot create directory \(prefix): \(errnoText())")
            }
        }
        // mkdir's mode is masked by the umask; set it exactly.
        guard chmod(directory, SocketPermissions.directoryMode) == 0 else {
            throw SocketSetupError(path: path, message: "chmod \(directory): \(errnoText())")
        }
        if let group = permissions.group, chown(directory, uid_t.max, group) != 0 {
            throw SocketSetupError(path: path, message: "chown \(directory) to group \(group): \(errnoText())")
        }
    }

    /// Removes `path` when it is a socket nobody listens on. A live socket means another service
    /// instance is running: starting would steal its clients, so that is an error. A file that is
    /// not a socket is never removed.
    static func removeIfStale(path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw SocketSetupError(path: path, message: "stat(): \(errnoText())")
        }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw SocketSetupError(path: path, message: "exists and is not a socket; refusing to replace it")
        }
        if isListening(path: path) {
            throw SocketSetupError(path: path, message: "another process is listening on it (is upfd already running?)")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw SocketSetupError(path: path, message: "cannot remove the stale socket: \(errnoText())")
        }
    }

    /// True when a connect() to `path` succeeds.
    static func isListening(path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard var address = try? address(path: path) else { return false }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return result == 0
    }
}

/// Who is on the other end of a Unix socket, as the kernel recorded it at connect() time.
public struct PeerCredentials: Sendable, Equatable {
    public var pid: pid_t
    public var uid: uid_t
    public var gid: gid_t

    public init(pid: pid_t, uid: uid_t, gid: gid_t) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    /// SO_PEERCRED on a connected socket.
    public static func of(fd: Int32) -> PeerCredentials? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } — Glibc hides it behind _GNU_SOURCE.
        var words: (UInt32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(UInt32, UInt32, UInt32)>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &words, &length) == 0, length == 12 else { return nil }
        return PeerCredentials(pid: pid_t(bitPattern: words.0), uid: words.1, gid: words.2)
    }
}

/// Which peers may use the socket. Root and the service's own user are always allowed: root can
/// reach the socket file anyway, and the service's user owns it.
public struct AccessPolicy: Sendable, Equatable {
    public var allowedUIDs: Set<uid_t>

    public init(allowedUIDs: Set<uid_t>, includeDefaults: Bool = true) {
        var uids = allowedUIDs
        if includeDefaults {
            uids.insert(0)
            uids.insert(geteuid())
        }
        self.allowedUIDs = uids
    }

    public func allows(_ peer: PeerCredentials) -> Bool { allowedUIDs.contains(peer.uid) }
}

/// Looks up users and groups by name or number (`"nobody"`, `"65534"`).
public enum Accounts {
    public static func uid(of user: String) -> uid_t? {
        if let number = uid_t(user) { return number }
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(user, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return entry.pw_uid
    }

    public static func gid(of group: String) -> gid_t? {
        if let number = gid_t(group) { return number }
        var entry = group_()
        var result: UnsafeMutablePointer<group_>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getgrnam_r(group, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return entry.gr_gid
    }

    public static func userName(of uid: uid_t) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return String(cString: entry.pw_name)
    }
}

/// `struct group` is spelled `group` in C, which Swift cannot use as a type name next to the
/// function `group`; the typealias keeps the call sites readable.
typealias group_ = group
