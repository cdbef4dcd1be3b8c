// Persistence of the applied policy: a snapshot plus an append-only journal.
//
// Why not only a snapshot per batch: rewriting the whole policy after every `session.put` makes
// loading N sessions one by one cost O(N²) bytes written (100 000 sessions ≈ 50 MB per put). So
// each applied batch is appended to `<state_file>.journal` as one line and fdatasync'd before the
// client is answered (O(batch)); the line holds the changes as the client sent them when it can
// (`ChangesJSON`), so a batch is not encoded again. The snapshot `<state_file>` is rewritten
// atomically (temp file in the same directory, fsync, rename, fsync of the directory) when the
// journal has grown past the snapshot's size (O(1) amortised) — written on another thread while
// batches go on, the journal then keeping the entries appended meanwhile (`PendingSnapshot`) —
// and at clean shutdown. Start-up reads the snapshot and replays the journal. A journal line without its newline is a write that was never
// acknowledged (the process died before fdatasync returned) and is dropped; anything else that
// does not read back stops start-up: an empty policy in place of a corrupt one would silently
// drop every session.

import Foundation
import UPFPolicy

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why the state could not be read or written; always names the file.
public struct StateFileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var problem: String
    public var description: String { "state file \(path): \(problem)" }
}

/// The snapshot document: `{"format":"upfd-state","format_version":1,"policy":{…},"version":N}`.
struct StateSnapshot {
    static let formatName = "upfd-state"
    static let currentFormatVersion = 1

    var format: String
    var formatVersion: Int
    var version: UInt64
    var policy: Policy

    init(format: String = formatName, formatVersion: Int = currentFormatVersion, version: UInt64, policy: Policy) {
        self.format = format
        self.formatVersion = formatVersion
        self.version = version
        self.policy = policy
    }

    /// Reads the four fields (others are ignored, for files from later versions); the policy with
    /// the strictness of a request.
    init(json: JSONDocument) throws(PolicyError) {
        self = try PolicyJSONReader(json, at: "").read { (reader) throws(PolicyJSONReader.Failure) in
            var o = try reader.object(JSONDocument.root)
            return StateSnapshot(format: try reader.field(&o, "format", reader.string),
                                 formatVersion: try reader.field(&o, "format_version", reader.integer),
                                 version: try reader.field(&o, "version", reader.integer),
                                 policy: try reader.field(&o, "policy", reader.policy))
        }
    }

    /// The document's text with its newline, handed to `sink` in chunks of about `chunkBytes`
    /// (`sink` returns 0 or an errno; it is not called again after an error). Returns the bytes
    /// written and the error.
    func write(chunkBytes: Int = 1 << 20, to sink: @escaping (UnsafeRawBufferPointer) -> Int32) -> (bytes: Int, error: Int32) {
        var writer = PolicyJSONWriter(chunkBytes: chunkBytes, sink: sink)
        writer.snapshot(self)
        writer.newline()
        writer.drain()
        return (writer.drained, writer.sinkError)
    }
}

/// One journal line: the changes of one applied batch and the version it produced,
/// `{"version":N,"changes":[…]}`. Written by `StateStore.append`, read back with the same
/// reader as the requests that made it (other fields are ignored).
struct JournalEntry {
    var version: UInt64
    var changes: [PolicyChange]

    init(json: JSONDocument) throws(PolicyError) {
        (version, changes) = try PolicyJSONReader(json, at: "").read { (reader) throws(PolicyJSONReader.Failure) in
            var o = try reader.object(JSONDocument.root)
            let version: UInt64 = try reader.field(&o, "version", reader.integer)
            return (version, try reader.field(&o, "changes") { (value) throws(PolicyJSONReader.Failure) in
                try reader.list(value, reader.change)
            })
        }
    }
}

/// Owned by the thread that owns the policy; not thread-safe.
public final class StateStore {
    public let snapshotPath: String
    public var journalPath: String { snapshotPath + ".journal" }
    /// The journal is folded into a new snapshot once it is larger than this or the snapshot.
    public var compactionFloorBytes: Int

    private var journalFD: Int32 = -1
    private var journalBytes = 0
    private var snapshotBytes = 0
    /// The version of the snapshot on disk (as read or last written).
    private var snapshotVersion: UInt64 = 0

    public init(path: String, compactionFloorBytes: Int = 4 << 20) {
        self.snapshotPath = path
        self.compactionFloorBytes = compactionFloorBytes
    }

    deinit {
        closeJournal()
    }

    public struct Loaded<State> {
        public var state: State
        public var version: UInt64
        /// Journal entries replayed on top of the snapshot.
        public var replayed: Int
        /// A torn final journal line that was dropped (never acknowledged to a client).
        public var droppedTornTail: Bool
    }

    /// Reads the snapshot (missing = empty policy at version 0) into a state with `start`,
    /// replays the journal through `apply` (which validates, like a live request), and opens the
    /// journal for appending. Errors from the closures are reported against the file they came from.
    public func load<State>(start: (Policy, UInt64) throws -> State,
                            apply: (State, [PolicyChange], UInt64) throws -> State) throws(StateFileError) -> Loaded<State> {
        try Self.ensureDirectory(of: snapshotPath)
        try lockJournal()
        var policy = Policy()
        var version: UInt64 = 0
        if let data = try readFileIfPresent(snapshotPath) {
            snapshotBytes = data.count
            let snapshot = try decodeSnapshot(data)
            policy = snapshot.policy
            version = snapshot.version
            snapshotVersion = version
        }
        var state: State
        do {
            state = try start(policy, version)
        } catch {
            throw StateFileError(path: snapshotPath, problem: "holds a policy that does not validate: \(Self.describe(error)); "
                + "refusing to start with an empty policy")
        }

        var replayed = 0
        var droppedTail = false
        var goodBytes = 0
        if let data = try readFileIfPresent(journalPath) {
            let bytes = [UInt8](data)
            var start = 0
            var lineNumber = 0
            while start < bytes.count {
                lineNumber += 1
                guard let newline = bytes[start...].firstIndex(of: 0x0A) else {
                    droppedTail = true  // torn write: the client was never answered
                    break
                }
                let line = bytes[start..<newline]
                start = newline + 1
                let entry: JournalEntry
                do {
                    entry = try JournalEntry(json: try JSONDocument(Array(line)))
                } catch {
                    throw StateFileError(path: journalPath, problem: "line \(lineNumber) is corrupt: \(Self.describe(error)); "
                        + "refusing to start with a policy that misses changes")
                }
                goodBytes = start
                if entry.version <= version { continue }  // already in the snapshot (compaction was interrupted)
                guard entry.version == version + 1 else {
                    throw StateFileError(path: journalPath, problem: "line \(lineNumber) has version \(entry.version), "
                        + "expected \(version + 1): entries are missing")
                }
                do {
                    state = try apply(state, entry.changes, entry.version)
                } catch {
                    throw StateFileError(path: journalPath, problem: "line \(lineNumber) (version \(entry.version)) "
                        + "no longer applies: \(Self.describe(error))")
                }
                version = entry.version
                replayed += 1
            }
        }
        try cutJournal(to: goodBytes)
        return Loaded(state: state, version: version, replayed: replayed, droppedTornTail: droppedTail)
    }

    /// Appends one applied batch and waits until it is on disk. On failure the journal is cut
    /// back to where it was, so a later append does not follow a partial line.
    ///
    /// `text`, when given, is `changes` as JSON text — what the client sent — and is written as it
    /// is: a batch is not encoded a second time (that cost more than applying it). Without it, or
    /// if it spans lines (JSON allows a newline between tokens; an entry must be one line), the
    /// changes are encoded.
    public func append(version: UInt64, changes: [PolicyChange], text: ChangesJSON? = nil) throws(StateFileError) {
        guard journalFD >= 0 else { throw StateFileError(path: journalPath, problem: "journal is not open") }
        // The line in three writes, the client's bytes written from where they are: joining them
        // into one array copied ~650 KB per batch of 1000 sessions into freshly mapped pages
        // (the kernel zeroing them was ~4 % of the policy thread). A crash between the writes
        // leaves a torn last line, which `load` drops as it drops any torn write.
        let head = Array(#"{"version":\#(version),"changes":"#.utf8)
        let body: ArraySlice<UInt8>
        if let text, !text.utf8.withUnsafeBufferPointer({ $0.count > 0 && memchr($0.baseAddress!, 0x0A, $0.count) != nil }) {
            body = text.utf8
        } else {
            var writer = PolicyJSONWriter()
            writer.changes(changes)
            body = writer.bytes[...]
        }
        let tail: [UInt8] = [UInt8(ascii: "}"), 0x0A]
        let before = journalBytes
        do throws(StateFileError) {
            try writeAll(journalFD, head, path: journalPath)
            try writeAll(journalFD, body, path: journalPath)
            try writeAll(journalFD, tail, path: journalPath)
            guard fdatasync(journalFD) == 0 else {
                throw StateFileError(path: journalPath, problem: "fdatasync: \(errnoText())")
            }
        } catch {
            _ = ftruncate(journalFD, off_t(before))
            _ = lseek(journalFD, off_t(before), SEEK_SET)
            throw error
        }
        journalBytes = before + head.count + body.count + tail.count
    }

    /// True when the journal is worth folding into a new snapshot.
    public var shouldCompact: Bool { journalBytes > max(compactionFloorBytes, snapshotBytes) }

    /// Writes `policy` as the new snapshot and empties the journal, here and now.
    public func compact(policy: Policy, version: UInt64) throws(StateFileError) {
        let pending = beginCompaction(version: version)
        try finishCompaction(pending, snapshotBytes: try pending.write(policy: policy))
    }

    /// A snapshot to be written away from the thread that owns the store.
    ///
    /// Why: encoding and writing a large policy takes long (seconds for a million sessions), and
    /// the owner thread must go on applying requests meanwhile. `beginCompaction` notes how far
    /// the journal goes; `write` (any thread) writes the snapshot of that version; then
    /// `finishCompaction` (owner thread) drops the journal entries the snapshot holds and keeps
    /// those appended since. A crash at any point leaves a snapshot and a journal that load to the
    /// last acknowledged version: entries already in the snapshot are skipped by version on load.
    public struct PendingSnapshot: Sendable {
        public let version: UInt64
        /// The journal's length at `beginCompaction`: the entries up to `version`.
        let journalBytes: Int
        let snapshotPath: String

        /// Writes the snapshot file atomically and returns its size. Any thread.
        public func write(policy: Policy) throws(StateFileError) -> Int {
            try StateStore.writeSnapshotFile(StateSnapshot(version: version, policy: policy), at: snapshotPath)
        }
    }

    /// Starts a compaction at `version`, the version of the last entry appended.
    public func beginCompaction(version: UInt64) -> PendingSnapshot {
        PendingSnapshot(version: version, journalBytes: journalBytes, snapshotPath: snapshotPath)
    }

    /// Ends a compaction whose snapshot was written (`snapshotBytes` long): the journal keeps only
    /// what was appended since `beginCompaction`. A compaction overtaken by a later one does nothing.
    public func finishCompaction(_ pending: PendingSnapshot, snapshotBytes bytes: Int) throws(StateFileError) {
        guard pending.version >= snapshotVersion, pending.journalBytes <= journalBytes else { return }
        snapshotVersion = pending.version
        snapshotBytes = bytes
        guard journalFD >= 0 else { return }
        if journalBytes == pending.journalBytes {
            guard ftruncate(journalFD, 0) == 0, lseek(journalFD, 0, SEEK_SET) >= 0, fsync(journalFD) == 0 else {
                // The snapshot is already complete; the old entries are skipped by version on load.
                throw StateFileError(path: journalPath, problem: "cannot empty the journal after a snapshot: \(errnoText())")
            }
            journalBytes = 0
        } else {
            try keepJournal(from: pending.journalBytes)
        }
    }

    /// Replaces the journal with its bytes from `offset` on (entries appended during a
    /// compaction): a new file, locked, written and synced, renamed over the journal.
    private func keepJournal(from offset: Int) throws(StateFileError) {
        var tail = [UInt8](repeating: 0, count: journalBytes - offset)
        var done = 0
        while done < tail.count {
            let n = tail.withUnsafeMutableBytes { pread(journalFD, $0.baseAddress! + done, $0.count - done, off_t(offset + done)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw StateFileError(path: journalPath, problem: "cannot read the journal back: \(errnoText())") }
            done += n
        }
        let temporary = "\(journalPath).tmp-\(getpid())"
        let fd = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw StateFileError(path: temporary, problem: "cannot create: \(errnoText())") }
        do throws(StateFileError) {
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { throw StateFileError(path: temporary, problem: "cannot lock: \(errnoText())") }
            try writeAll(fd, tail, path: temporary)
            guard fsync(fd) == 0 else { throw StateFileError(path: temporary, problem: "fsync: \(errnoText())") }
            guard rename(temporary, journalPath) == 0 else {
                throw StateFileError(path: journalPath, problem: "rename from \(temporary): \(errnoText())")
            }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(journalFD)
        journalFD = fd
        journalBytes = tail.count
        try Self.syncDirectory(of: journalPath)
    }

    /// Writes `policy` as the snapshot (and nothing else).
    public func writeSnapshot(policy: Policy, version: UInt64) throws(StateFileError) {
        snapshotBytes = try Self.writeSnapshotFile(StateSnapshot(version: version, policy: policy), at: snapshotPath)
        snapshotVersion = max(snapshotVersion, version)
    }

    /// Atomic replacement: temp file in the same directory, fsync, rename, fsync the directory.
    /// Returns the size written.
    static func writeSnapshotFile(_ snapshot: StateSnapshot, at path: String) throws(StateFileError) -> Int {
        try ensureDirectory(of: path)
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw StateFileError(path: temporary, problem: "cannot create: \(errnoText())") }
        let written: Int
        do throws(StateFileError) {
            let (bytes, error) = snapshot.write { chunk in writeAll(fd, chunk) }
            if error != 0 { throw StateFileError(path: temporary, problem: "write: \(errnoText(error))") }
            written = bytes
            guard fsync(fd) == 0 else { throw StateFileError(path: temporary, problem: "fsync: \(errnoText())") }
            guard close(fd) == 0 else { throw StateFileError(path: temporary, problem: "close: \(errnoText())") }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let reason = errnoText()
            unlink(temporary)
            throw StateFileError(path: path, problem: "rename from \(temporary): \(reason)")
        }
        try syncDirectory(of: path)
        return written
    }

    // MARK: helpers

    /// The directory a state file is in.
    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let dir = String(path[..<slash])
        return dir.isEmpty ? "/" : dir
    }

    /// Creates the state directory (0750) when missing, like the socket's.
    private static func ensureDirectory(of path: String) throws(StateFileError) {
        let dir = directory(of: path)
        var info = stat()
        if stat(dir, &info) == 0 { return }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o750])
        } catch {
            throw StateFileError(path: path, problem: "cannot create directory \(dir): \(error.localizedDescription)")
        }
    }

    private static func syncDirectory(of path: String) throws(StateFileError) {
        let dir = directory(of: path)
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StateFileError(path: dir, problem: "cannot open directory to fsync: \(errnoText())") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StateFileError(path: dir, problem: "fsync directory: \(errnoText())") }
    }

    /// Opens the journal and takes an exclusive lock on it for as long as this store lives: two
    /// processes appending to one journal (or one compacting under the other) would corrupt it.
    private func lockJournal() throws(StateFileError) {
        if journalFD >= 0 { return }
        let fd = open(journalPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw StateFileError(path: journalPath, problem: "cannot open for appending: \(errnoText())") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK {
                throw StateFileError(path: journalPath, problem: "in use by another process (is upfd already running?)")
            }
            throw StateFileError(path: journalPath, problem: "cannot lock: \(errnoText(code))")
        }
        journalFD = fd
    }

    /// Positions the journal for appending after its last complete line, cutting a torn tail so
    /// the next entry starts on a line of its own.
    private func cutJournal(to length: Int) throws(StateFileError) {
        var info = stat()
        guard fstat(journalFD, &info) == 0 else { throw StateFileError(path: journalPath, problem: "fstat: \(errnoText())") }
        if Int(info.st_size) != length {
            guard ftruncate(journalFD, off_t(length)) == 0, fsync(journalFD) == 0 else {
                throw StateFileError(path: journalPath, problem: "cannot cut the torn last line: \(errnoText())")
            }
        }
        guard lseek(journalFD, off_t(length), SEEK_SET) >= 0 else {
            throw StateFileError(path: journalPath, problem: "lseek: \(errnoText())")
        }
        journalBytes = length
    }

    /// Releases the journal (and its lock). The store cannot append afterwards.
    public func closeJournal() {
        if journalFD >= 0 {
            close(journalFD)
            journalFD = -1
        }
    }

    private func readFileIfPresent(_ path: String) throws(StateFileError) -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw StateFileError(path: path, problem: "cannot read: \(errnoText())")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw StateFileError(path: path, problem: "fstat: \(errnoText())") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw StateFileError(path: path, problem: "not a regular file") }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw StateFileError(path: path, problem: "cannot read: \(errnoText())")
            }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return data
    }

    private func decodeSnapshot(_ data: Data) throws(StateFileError) -> StateSnapshot {
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            throw StateFileError(path: snapshotPath, problem: "is empty or blank (corrupt); refusing to start with an empty policy")
        }
        let snapshot: StateSnapshot
        do {
            snapshot = try StateSnapshot(json: try JSONDocument(Array(data)))
        } catch {
            throw StateFileError(path: snapshotPath, problem: "is corrupt: \(Self.describe(error)); refusing to start with an empty policy")
        }
        guard snapshot.format == StateSnapshot.formatName else {
            throw StateFileError(path: snapshotPath, problem: "is not an upfd state file (format '\(snapshot.format)')")
        }
        guard snapshot.formatVersion == StateSnapshot.currentFormatVersion else {
            throw StateFileError(path: snapshotPath, problem: "has format_version \(snapshot.formatVersion); this upfd reads \(StateSnapshot.currentFormatVersion)")
        }
        return snapshot
    }

    /// A one-line reason for decoding and policy errors.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as PolicyError: return error.description
        case let error as ControlError: return error.description
        case let error as JSONSyntaxError: return "not valid JSON (\(error.message))"
        default: return "\(error)"
        }
    }
}

private func writeAll(_ fd: Int32, _ data: some ContiguousBytes, path: String) throws(StateFileError) {
    let result: Int32 = data.withUnsafeBytes { writeAll(fd, $0) }
    if result != 0 { throw StateFileError(path: path, problem: "write: \(errnoText(result))") }
}

/// Writes all of `raw` (retrying short writes and EINTR); returns 0 or the errno.
private func writeAll(_ fd: Int32, _ raw: UnsafeRawBufferPointer) -> Int32 {
    var offset = 0
    while offset < raw.count {
        let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        offset += n
    }
    return 0
}
