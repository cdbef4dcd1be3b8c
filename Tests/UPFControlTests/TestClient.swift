import Foundation
@testable import UPFControl

#if canImport(Glibc)
import Glibc
#endif

/// A blocking client for the control socket, with a receive timeout so a bug shows as a failure.
final class TestClient {
    private(set) var fd: Int32 = -1
    private var buffer: [UInt8] = []

    init(path: String, timeout: Double = 10) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = try UnixSocket.address(path: path)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            close(fd)
            fd = -1  // a throwing class init still runs deinit: never close a number twice
            throw ControlError("connect", String(cString: strerror(errno)))
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Writes everything; false when the server closed on us.
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

    func send(_ text: String) { send(Array(text.utf8)) }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// The next line, or nil at end of stream / timeout.
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

    /// Sends one request and returns the parsed response.
    func call(_ line: String) throws -> JSONValue {
        send(line + "\n")
        guard let response = readLine() else { throw ControlError("closed", "no response to \(line.prefix(80))") }
        return try JSONValue.parse(response)
    }
}

extension JSONValue {
    var isOK: Bool { self["ok"] == .bool(true) }
    var errorCode: String? {
        if case .string(let code)? = self["error"]?["code"] { return code }
        return nil
    }
    var errorPath: String? {
        if case .string(let path)? = self["error"]?["path"] { return path }
        return nil
    }
    var intValue: Int? {
        if case .number(let text) = self { return Int(text) }
        return nil
    }
}
