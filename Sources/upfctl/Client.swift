// A plain POSIX client for upfd's control socket: one request line out, one response line back.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Exit statuses (documented in `upfctl --help` and docs/control-protocol.md).
enum Exit {
    static let ok: Int32 = 0
    /// The server (or upfctl, for a local file) refused the request.
    static let refused: Int32 = 1
    static let usage: Int32 = 2
    /// The socket cannot be reached, or the connection broke.
    static let cannotConnect: Int32 = 3
}

/// An error that ends upfctl with a message on standard error and an exit status.
struct CtlFailure: Error {
    var status: Int32
    var message: String

    /// `upfctl: <code>: <message> (at <path>)`
    static func refused(code: String, message: String, path: String) -> CtlFailure {
        CtlFailure(status: Exit.refused, message: "\(code): \(message)" + (path.isEmpty ? "" : " (at \(path))"))
    }
}

/// The envelope every response has.
struct ResponseHead: Decodable {
    struct ErrorBody: Decodable {
        var code: String
        var message: String
        var path: String?
    }
    var ok: Bool
    var version: UInt64?
    var error: ErrorBody?
}

final class ControlClient {
    let path: String
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []
    private var nextID = 1
    /// The longest response line accepted (a full `policy.get` can be large).
    static let maxResponseBytes = 512 << 20

    init(path: String, timeoutSeconds: Double) throws(CtlFailure) {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw CtlFailure(status: Exit.cannotConnect, message: "socket(): \(String(cString: strerror(errno)))") }
        // A throwing class init still runs deinit: every failure below closes and forgets the fd.
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            fd = -1
            throw CtlFailure(status: Exit.cannotConnect, message: "cannot connect to \(path): the path is too long for a Unix socket")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            fd = -1
            let hint: String
            switch code {
            case ENOENT: hint = "no such socket (is upfd running? see --socket or UPFCTL_SOCKET)"
            case ECONNREFUSED: hint = "connection refused (upfd is not running; the socket file is stale)"
            case EACCES: hint = "permission denied (the socket is owner-only; run as upfd's user or root, or see control.socket_group)"
            default: hint = String(cString: strerror(code))
            }
            throw CtlFailure(status: Exit.cannotConnect, message: "cannot connect to \(path): \(hint)")
        }
        setTimeout(timeoutSeconds)
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// 0 = wait forever (event streams).
    func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1e6))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends `{"id":N,"op":op,…fields}` where each field value is already JSON text, and returns
    /// the response line.
    func request(_ op: String, _ fields: [(String, String)] = []) throws(CtlFailure) -> Data {
        let id = nextID
        nextID += 1
        var line = "{\"id\":\(id),\"op\":\(jsonString(op))"
        for (key, value) in fields { line += ",\(jsonString(key)):\(value)" }
        line += "}\n"
        try send(Array(line.utf8))
        guard let response = try readLine() else {
            throw CtlFailure(status: Exit.cannotConnect, message: "upfd closed the connection without answering")
        }
        return response
    }

    /// Sends a request and decodes the response; a refusal becomes a `CtlFailure`.
    func call(_ op: String, _ fields: [(String, String)] = []) throws(CtlFailure) -> (head: ResponseHead, raw: Data) {
        let raw = try request(op, fields)
        let head = try decodeHead(raw)
        if !head.ok {
            let error = head.error
            throw CtlFailure.refused(code: error?.code ?? "error", message: error?.message ?? "request refused",
                                     path: error?.path ?? "")
        }
        return (head, raw)
    }

    func decodeHead(_ raw: Data) throws(CtlFailure) -> ResponseHead {
        do {
            return try JSONDecoder().decode(ResponseHead.self, from: raw)
        } catch {
            throw CtlFailure(status: Exit.cannotConnect, message: "unreadable response from upfd: \(String(decoding: raw.prefix(200), as: UTF8.self))")
        }
    }

    private func send(_ bytes: [UInt8]) throws(CtlFailure) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                // The server may have refused us and closed; its error line may still be readable.
                if let line = try? readLine(), let head = try? decodeHead(line), let error = head.error {
                    throw CtlFailure.refused(code: error.code, message: error.message, path: error.path ?? "")
                }
                throw CtlFailure(status: Exit.cannotConnect, message: "cannot send to \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// The next line (without its newline), or nil at end of stream.
    func readLine() throws(CtlFailure) -> Data? {
        var searchFrom = 0
        while true {
            if let newline = buffer[searchFrom...].firstIndex(of: 0x0A) {
                let line = Data(buffer[..<newline])
                buffer.removeFirst(newline + 1)
                return line
            }
            searchFrom = buffer.count
            guard buffer.count <= Self.maxResponseBytes else {
                throw CtlFailure(status: Exit.cannotConnect, message: "response from upfd longer than \(Self.maxResponseBytes) bytes")
            }
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw CtlFailure(status: Exit.cannotConnect, message: "no answer from upfd (timed out; see --timeout)")
                }
                throw CtlFailure(status: Exit.cannotConnect, message: "cannot read from \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                if buffer.isEmpty { return nil }
                let line = Data(buffer)
                buffer.removeAll()
                return line
            }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }
}

/// A JSON string literal.
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
