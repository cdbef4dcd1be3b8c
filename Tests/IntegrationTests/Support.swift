import Foundation
import Testing

/// Where things are, seen from a test process.
enum Paths {
    /// The package root (this file is Tests/IntegrationTests/Support.swift).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `../shared/corpus/pcaps` beside the checkout; nil when it is absent.
    static let corpus: URL? = {
        let url = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/corpus/pcaps")
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }()

    /// A built executable of this package. `swift test` builds every product into the same folder
    /// as the test bundle, so the executables sit beside it.
    static func executable(_ name: String) -> URL {
        let bundleDir = Bundle.main.bundleURL
        var candidates = [bundleDir.appendingPathComponent(name)]
        if let argv0 = CommandLine.arguments.first {
            candidates.append(URL(fileURLWithPath: argv0).deletingLastPathComponent().appendingPathComponent(name))
        }
        candidates.append(packageRoot.appendingPathComponent(".build/debug/\(name)"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    /// A fresh temporary directory, removed by the caller.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("upfd-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// The outcome of running a process to completion.
struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a process with a deadline; a process still running at the deadline is killed and the
/// test fails, so a hang shows as a failure instead of a stuck suite.
@discardableResult
func runProcess(_ executable: URL, _ arguments: [String], timeout: TimeInterval = 120,
                environment: [String: String]? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Drain both pipes concurrently so a chatty child never blocks on a full pipe.
    let outBox = DataBox(), errBox = DataBox()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { outBox.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    var outData: Data { outBox.data }
    var errData: Data { errBox.data }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        process.terminate()
        kill(process.processIdentifier, SIGKILL)
        group.wait()
        process.waitUntilExit()
        Issue.record("\(executable.lastPathComponent) \(arguments.joined(separator: " ")) timed out after \(timeout)s")
        return ProcessResult(status: -1, stdout: String(decoding: outData, as: UTF8.self),
                             stderr: String(decoding: errData, as: UTF8.self))
    }
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// Filled by exactly one reader thread, read only after the DispatchGroup says it is done.
private final class DataBox: @unchecked Sendable {
    var data = Data()
}
