import Foundation
import Testing

// Buffering (issue 5, QoS): the `buffer` action on the built binaries, through the replay's socket.
extension FastPathTests {
    @Test("buffer: held per session within its limit (the rest buffer_full), one downlink_data event per session, released in order when the session is updated to forward",
          .enabled(if: toolsPresent, toolsMessage))
    func bufferingHoldsReportsOnceAndReleasesInOrder() throws {
        let c = try FastPathCase("buffering")
        defer { c.remove() }
        let manifestData = try Data(contentsOf: URL(fileURLWithPath: c.path("manifest.json")))
        let manifest = try #require(try JSONSerialization.jsonObject(with: manifestData) as? [String: Any])
        let release = try JSONSerialization.data(withJSONObject: try #require(manifest["release_session"]))
        let paced = try PacedReplay(c, rate: 100)
        defer { paced.remove() }
        let (replay, control, events) = (paced.process, paced.control, paced.events)

        // Session 1 starts buffering after 1.2 s of traffic; update it 0.5 s after its report.
        var reports: [Int] = []
        while !reports.contains(1), let line = events.readLine() {
            if let event = try? parseObject(line), event["event"] as? String == "downlink_data", let seid = event.int("seid") {
                reports.append(seid)
            }
        }
        try #require(reports.contains(1), "no downlink_data event for session 1 (saw \(reports))")
        Thread.sleep(forTimeInterval: 0.5)
        let put = try control.call(#"{"id":9,"op":"session.put","session":\#(String(decoding: release, as: UTF8.self))}"#)
        #expect(put.ok, "session.put: \(put)")

        let result = replay.finish(timeout: 60)
        let run = ReplayRun(result: result, outputDirectory: c.outputDirectory)
        try run.requireSuccess()
        // The rest of the events: no second report for either session.
        while let line = events.readLine() {
            if let event = try? parseObject(line), event["event"] as? String == "downlink_data", let seid = event.int("seid") {
                reports.append(seid)
            }
        }
        #expect(reports.sorted() == [1, 2], "one downlink_data event per session, not per packet: \(reports)")

        let buffered = run.local("buffered") ?? -1
        let released = run.local("buffer_released") ?? -1
        print("buffering: buffered \(buffered), released \(released), drops \(run.drops)")
        // Session 2 holds its limit (5) to the end and drops the other 15; session 1 held what
        // came before the update (at 100 pps for ~0.5 s) and got all of it back.
        #expect(run.drops == ["buffer_full": 15], "drops: \(run.drops)")
        #expect(released >= 20 && buffered == released + 5, "buffered \(buffered), released \(released)")

        let tags = try readEgress(run.output("n3")).compactMap(\.tag)
        let session1 = tags.filter { $0 <= 200 }
        #expect(session1 == Array(1...200), "session 1's packets, held ones first, in arrival order: \(session1.prefix(40))…")
        #expect(tags.filter { $0 > 300 } == Array(301...400))
        #expect(!tags.contains { (201...220).contains($0) }, "session 2 still buffers: nothing of it may leave")
    }
}
