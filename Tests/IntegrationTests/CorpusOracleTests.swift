import Foundation
import Testing

/// An independent oracle for the decoder: for every capture of the shared corpus,
/// `upf-replay decode --json` and tshark must agree frame by frame on the kind, TEID, QFI and the
/// inner 5-tuple. The derivation rules (which tshark layer is the outer IP, the GTP-U header and
/// the inner packet; when a drop is predicted or accepted) are documented at the top of
/// `Tests/Oracles/tshark_oracle.py`. Among them: GTP-U is only UDP *destination* port 2152
/// (TS 29.281 §4.4.2) — tshark also dissects GTP on GTP-C's 2123 and on packets merely *from*
/// 2152, and the data path of a user plane must treat both as non-GTP traffic (`non_gtp`).
///
/// Skipped when the corpus (`../shared/corpus/pcaps`) is absent, or when tshark or
/// /usr/bin/python3 is missing outside CI. With `CI` set in the environment, a missing tool is a
/// failure: CI installs tshark, so there the oracle must run.
@Suite struct CorpusOracleTests {
    static let python = URL(fileURLWithPath: "/usr/bin/python3")
    static let script = Paths.packageRoot.appendingPathComponent("Tests/Oracles/tshark_oracle.py")
    static let inCI = ProcessInfo.processInfo.environment["CI"].map { !$0.isEmpty && $0 != "0" && $0 != "false" } ?? false

    /// The tshark on PATH, if any.
    static let tshark: URL? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").lazy
            .map { URL(fileURLWithPath: String($0)).appendingPathComponent("tshark") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    static let toolsPresent = tshark != nil && FileManager.default.isExecutableFile(atPath: python.path)

    /// Capture files of the corpus, sorted; empty when the corpus is absent.
    static let captures: [String] = {
        guard let corpus = Paths.corpus,
              let names = try? FileManager.default.contentsOfDirectory(atPath: corpus.path) else { return [] }
        return names.filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") || $0.hasSuffix(".cap") }.sorted()
    }()

    @Test("decoder agrees with tshark on kind, TEID, QFI and inner 5-tuple, frame by frame",
          .enabled(if: Paths.corpus != nil, "corpus absent: no ../shared/corpus/pcaps beside the package"),
          .enabled(if: toolsPresent || inCI, "tshark or /usr/bin/python3 not installed (required in CI)"),
          arguments: captures)
    func agreesWithTshark(capture: String) throws {
        try #require(Self.tshark != nil, "tshark is not on PATH, but CI must run the corpus oracle")
        try #require(FileManager.default.isExecutableFile(atPath: Self.python.path),
                     "/usr/bin/python3 is missing, but CI must run the corpus oracle")
        let corpus = try #require(Paths.corpus)
        let binary = Paths.executable("upf-replay")
        try #require(FileManager.default.isExecutableFile(atPath: binary.path),
                     "upf-replay was not built (looked for \(binary.path))")
        let file = corpus.appendingPathComponent(capture)
        let result = try runProcess(Self.python, [Self.script.path, binary.path, file.path], timeout: 300)
        #expect(result.status == 0, """
            \(capture): decoder and tshark disagree (exit \(result.status)):
            \(result.stdout)\(result.stderr.isEmpty ? "" : "\nstderr:\n\(result.stderr)")
            """)
        // The summary line, accepted drops and notes, visible in the test log when it passes too.
        if result.status == 0 { print(result.stdout, terminator: "") }
    }
}
