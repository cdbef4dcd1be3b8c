import Foundation
import Testing
import UPFPolicy
@testable import UPFControl

#if canImport(Glibc)
import Glibc
#endif

/// Persistence: snapshot + journal, atomic replacement, and refusing to start on damage.
@Suite struct StateStoreTests {
    typealias Loaded = StateStore.Loaded<PolicyState>

    static func load(_ store: StateStore, limits: PolicyLimits = PolicyLimits()) throws(StateFileError) -> Loaded {
        try store.load(start: { policy, version in try PolicyState.validated(policy, limits: limits, version: version) },
                       apply: { state, changes, _ in try state.applying(changes, limits: limits).0 })
    }

    @Test func missingStateStartsEmpty() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let loaded = try Self.load(StateStore(path: "\(dir)/sub/state.json"))
        #expect(loaded.version == 0)
        #expect(loaded.state.sessionCount == 0)
        var info = stat()
        #expect(stat("\(dir)/sub", &info) == 0 && info.st_mode & 0o777 == 0o750)
    }

    @Test func journalReplaysOnTopOfTheSnapshot() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/state.json"
        do {
            let store = StateStore(path: path)
            _ = try Self.load(store)
            try store.writeSnapshot(policy: Policy(sessions: [Fixture.session(1)]), version: 1)
            try store.append(version: 2, changes: [.putSession(Fixture.session(2))])
            try store.append(version: 3, changes: [.deleteSession(seid: 1)])
        }
        let loaded = try Self.load(StateStore(path: path))
        #expect(loaded.version == 3)
        #expect(loaded.replayed == 2)
        #expect(loaded.state.policy == Policy(sessions: [Fixture.session(2)]))
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(stat(path + ".journal", &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["state.json", "state.json.journal"])
    }

    @Test func theRequestsTextIsJournaledAsItIs() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/state.json"
        let sent = #"[{"op":"put_session","session":{"rules":[{"action":1,"id":1,"precedence":10,"source":"access"}],"#
            + #""actions":[{"id":1,"type":"n6"}], "n3":{"address":"192.0.2.1","teid":101},"seid":1,"ue_ipv4":"10.60.0.2"}}]"#
        let changes = try JSONDocument(sent).policyChanges()
        #expect(changes == [.putSession(Fixture.session(1))])
        do {
            let store = StateStore(path: path)
            _ = try Self.load(store)
            // As the server hands it over: a slice of the request line, not starting at 0.
            let head = Array(#"{"id":7,"op":"apply","changes":"#.utf8)
            let line = head + Array(sent.utf8) + Array("}".utf8)
            let changesText = line[head.count..<(head.count + sent.utf8.count)]
            #expect(changesText.first == UInt8(ascii: "[") && changesText.last == UInt8(ascii: "]"))
            try store.append(version: 1, changes: changes, text: ChangesJSON(changesText))
            // Text that spans lines cannot be a journal line: the changes are encoded instead.
            try store.append(version: 2, changes: [.deleteSession(seid: 1)],
                             text: ChangesJSON(Array("[\n{\"op\":\"delete_session\",\"seid\":1}]".utf8)))
            try store.append(version: 3, changes: changes)
        }
        let journal = try String(contentsOfFile: path + ".journal", encoding: .utf8)
        #expect(journal.split(separator: "\n").first == #"{"version":1,"changes":\#(sent)}"#)
        #expect(journal.split(separator: "\n").count == 3)
        let loaded = try Self.load(StateStore(path: path))
        #expect(loaded.version == 3 && loaded.replayed == 3)
        #expect(loaded.state.policy == Policy(sessions: [Fixture.session(1)]))
    }

    @Test func compactionFoldsTheJournalIntoTheSnapshot() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/state.json"
        let store = StateStore(path: path, compactionFloorBytes: 100)
        _ = try Self.load(store)
        try store.append(version: 1, changes: [.putSession(Fixture.session(1))])
        #expect(store.shouldCompact)
        try store.compact(policy: Policy(sessions: [Fixture.session(1)]), version: 1)
        #expect(!store.shouldCompact)
        #expect((try Data(contentsOf: URL(fileURLWithPath: path + ".journal"))).isEmpty)
        store.closeJournal()  // the journal is locked while a store holds it
        let loaded = try Self.load(StateStore(path: path))
        #expect(loaded.version == 1 && loaded.replayed == 0)
        #expect(loaded.state.session(seid: 1) == Fixture.session(1))
    }

    @Test func aCompactionKeepsWhatWasJournaledWhileItWasWritten() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/state.json"
        let store = StateStore(path: path)
        _ = try Self.load(store)
        try store.append(version: 1, changes: [.putSession(Fixture.session(1))])
        try store.append(version: 2, changes: [.putSession(Fixture.session(2))])
        let pending = store.beginCompaction(version: 2)
        // Batches go on while the snapshot of version 2 is written (elsewhere, in upfd).
        try store.append(version: 3, changes: [.putSession(Fixture.session(3))])
        let written = try pending.write(policy: Policy(sessions: [Fixture.session(1), Fixture.session(2)]))
        try store.append(version: 4, changes: [.deleteSession(seid: 1)])
        try store.finishCompaction(pending, snapshotBytes: written)
        // The journal holds versions 3 and 4 only, and appending goes on after them.
        let journal = try String(contentsOfFile: path + ".journal", encoding: .utf8)
        #expect(journal.split(separator: "\n").map { $0.prefix(12) } == [#"{"version":3"#, #"{"version":4"#])
        try store.append(version: 5, changes: [.putSession(Fixture.session(5))])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["state.json", "state.json.journal"])
        // The new journal is locked like the old one.
        #expect(throws: StateFileError.self) { try Self.load(StateStore(path: path)) }
        store.closeJournal()
        let loaded = try Self.load(StateStore(path: path))
        #expect(loaded.version == 5 && loaded.replayed == 3)
        #expect(loaded.state.policy.sessions.map(\.seid) == [2, 3, 5])
    }

    @Test func anOvertakenCompactionChangesNothing() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/state.json"
        let store = StateStore(path: path)
        _ = try Self.load(store)
        try store.append(version: 1, changes: [.putSession(Fixture.session(1))])
        let pending = store.beginCompaction(version: 1)
        let written = try pending.write(policy: Policy(sessions: [Fixture.session(1)]))
        try store.append(version: 2, changes: [.putSession(Fixture.session(2))])
        try store.compact(policy: Policy(sessions: [Fixture.session(1), Fixture.session(2)]), version: 2)
        try store.append(version: 3, changes: [.putSession(Fixture.session(3))])
        // Finishing the older compaction now would cut version 3 from the journal.
        try store.finishCompaction(pending, snapshotBytes: written)
        store.closeJournal()
        let loaded = try Self.load(StateStore(path: path))
        #expect(loaded.version == 3 && loaded.state.sessionCount == 3)
    }

    @Test func entriesAlreadyInTheSnapshotAreSkipped() throws {
        // A crash between writing the snapshot and emptying the journal.
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/state.json"
        let store = StateStore(path: path)
        _ = try Self.load(store)
        try store.append(version: 1, changes: [.putSession(Fixture.session(1))])
        try store.append(version: 2, changes: [.putSession(Fixture.session(2))])
        try store.writeSnapshot(policy: Policy(sessions: [Fixture.session(1), Fixture.session(2)]), version: 2)
        store.closeJournal()
        let loaded = try Self.load(StateStore(path: path))
        #expect(loaded.version == 2 && loaded.replayed == 0 && loaded.state.sessionCount == 2)
    }

    @Test func aTornLastLineIsDroppedAndCut() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/state.json"
        do {
            let store = StateStore(path: path)
            _ = try Self.load(store)
            try store.append(version: 1, changes: [.putSession(Fixture.session(1))])
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path + ".journal"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"version":2,"changes":[{"op":"delete_se"#.utf8))
        try handle.close()
        let store = StateStore(path: path)
        let loaded = try Self.load(store)
        #expect(loaded.droppedTornTail)
        #expect(loaded.version == 1)
        // The next entry starts on its own line.
        try store.append(version: 2, changes: [.putSession(Fixture.session(2))])
        store.closeJournal()
        let again = try Self.load(StateStore(path: path))
        #expect(again.version == 2 && !again.droppedTornTail && again.state.sessionCount == 2)
    }

    @Test(arguments: [
        ("", "empty"),
        ("{\"format\":\"upfd-state\"", "corrupt"),
        ("not json at all", "corrupt"),
        (#"{"format":"other","format_version":1,"version":1,"policy":{}}"#, "not an upfd state file"),
        (#"{"format":"upfd-state","format_version":9,"version":1,"policy":{}}"#, "format_version 9"),
        (#"{"format":"upfd-state","format_version":1,"version":1,"policy":{"sessions":[{"seid":1}]}}"#, "missing"),
        (#"{"format":"upfd-state","format_version":1,"version":1,"policy":{"sessions":[{"seid":1,"n3":{"teid":0,"address":"192.0.2.1"},"rules":[]}]}}"#, "does not validate"),
    ])
    func aDamagedSnapshotStopsStartUp(_ content: String, _ problem: String) throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/state.json"
        try Data(content.utf8).write(to: URL(fileURLWithPath: path))
        do {
            _ = try Self.load(StateStore(path: path))
            Issue.record("loaded a damaged state file")
        } catch {
            #expect(error.path == path)
            #expect(error.description.contains(path))
            #expect(error.description.contains(problem), "\(error)")
        }
        // The damaged file is left for inspection, not replaced.
        #expect(try String(contentsOfFile: path, encoding: .utf8) == content)
    }

    @Test func aDamagedJournalLineStopsStartUp() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/state.json"
        let lines = [
            #"{"version":1,"changes":[{"op":"delete_session","seid":1}]}"#,  // not_found on replay
        ]
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path + ".journal"))
        #expect(throws: StateFileError.self) { try Self.load(StateStore(path: path)) }
        try Data("garbage\n{}\n".utf8).write(to: URL(fileURLWithPath: path + ".journal"))
        do {
            _ = try Self.load(StateStore(path: path))
            Issue.record("loaded a damaged journal")
        } catch {
            #expect(error.description.contains("state.json.journal"))
            #expect(error.description.contains("line 1"))
        }
        let gap = #"{"version":5,"changes":[]}"# + "\n"
        try Data(gap.utf8).write(to: URL(fileURLWithPath: path + ".journal"))
        #expect(throws: StateFileError.self) { try Self.load(StateStore(path: path)) }
    }

    @Test func aSecondStoreOnTheSameFileIsRefused() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let first = StateStore(path: "\(dir)/state.json")
        _ = try Self.load(first)
        do {
            _ = try Self.load(StateStore(path: "\(dir)/state.json"))
            Issue.record("two stores share one journal")
        } catch {
            #expect(error.description.contains("in use by another process"))
        }
        first.closeJournal()
        _ = try Self.load(StateStore(path: "\(dir)/state.json"))
    }

    @Test func anUnreadableStateFileStopsStartUp() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/state.json"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        do {
            _ = try Self.load(StateStore(path: path))
            Issue.record("loaded a directory as the state file")
        } catch {
            #expect(error.description.contains(path))
        }
    }

    @Test func snapshotReplacementIsAtomic() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/state.json"
        let store = StateStore(path: path)
        _ = try Self.load(store)
        for version in 1...5 as ClosedRange<UInt64> {
            try store.writeSnapshot(policy: Policy(sessions: (1...version).map { Fixture.session($0) }), version: version)
            // Only the snapshot and the journal: no temporary file left behind.
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["state.json", "state.json.journal"])
        }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix("{") && text.hasSuffix("}\n"))
        store.closeJournal()
        #expect(try Self.load(StateStore(path: path)).state.sessionCount == 5)
    }
}
