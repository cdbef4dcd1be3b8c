import Foundation
import Testing

// End Marker on a gNB change and echo supervision of a GTP-U peer (issue 5, path management),
// on the built binaries through the replay's socket; tshark decodes what left on n3.
extension FastPathTests {
    @Test("a put that changes the gNB F-TEID with end_marker: one End Marker on the old tunnel after its last G-PDU; a supervised peer goes up on its Echo Responses and down after 2 unanswered Echo Requests",
          .enabled(if: toolsPresent, toolsMessage))
    func endMarkerOnPathSwitchAndPeerSupervision() throws {
        let c = try FastPathCase("path-switch")
        defer { c.remove() }
        let manifestData = try Data(contentsOf: URL(fileURLWithPath: c.path("manifest.json")))
        let manifest = try #require(try JSONSerialization.jsonObject(with: manifestData) as? [String: Any])
        let moved = String(decoding: try JSONSerialization.data(withJSONObject: try #require(manifest["release_session"])),
                           as: UTF8.self)
        let paced = try PacedReplay(c, rate: 100)
        defer { paced.remove() }
        let (replay, control, events) = (paced.process, paced.control, paced.events)

        // Move the session once about 80 downlink packets went out to the first gNB.
        func sentToN3() throws -> Int {
            let stats = try control.call(#"{"op":"stats"}"#)
            let actions = (stats["datapath"] as? [String: Any])?["actions"] as? [String: Any]
            return ((actions?["n3"] as? [String: Any])?["packets"] as? Int) ?? 0
        }
        let moveBy = Date().addingTimeInterval(10)
        while try sentToN3() < 80, Date() < moveBy { usleep(20_000) }
        let put = try control.call(#"{"id":3,"op":"session.put","session":\#(moved),"end_marker":true}"#)
        #expect(put.ok && put["end_marker"] as? String == "sent", "session.put: \(put)")
        // Again, unchanged gNB: nothing to close.
        let again = try control.call(#"{"id":4,"op":"session.put","session":\#(moved),"end_marker":true}"#)
        #expect(again["end_marker"] as? String == "not_needed", "\(again)")

        // Peer supervision: up on the answers, down ~0.4 s after they stop (at 1 s + lead-in).
        var states: [String] = []
        while states.last != "down", let line = events.readLine() {
            if let event = try? parseObject(line), event["event"] as? String == "peer_state" {
                #expect(event["peer"] as? String == "192.0.2.100" && event["port"] as? String == "n3", "\(event)")
                states.append(event["state"] as? String ?? "?")
            }
        }
        #expect(states == ["up", "down"], "peer_state events: \(states)")
        let stats = try control.call(#"{"op":"stats"}"#)
        let peers = (stats["datapath"] as? [String: Any])?["gtpu_peers"] as? [[String: Any]] ?? []
        #expect(peers.count == 1 && peers.first?["state"] as? String == "down", "\(peers)")

        let result = replay.finish(timeout: 60)
        let run = ReplayRun(result: result, outputDirectory: c.outputDirectory)
        try run.requireSuccess()
        #expect(run.local("end_marker_sent") == 1 && run.local("signalling_unsent") == 0)
        #expect(run.local("echo_response_received") == 10)
        let echoes = run.local("echo_request_sent") ?? 0
        #expect(echoes >= 5, "Echo Requests every 0.2 s over ~3 s: \(echoes)")

        // n3: the End Marker on the old tunnel after its last G-PDU (§7.3.2: it closes the old
        // path; G-PDUs on the new path may already have left, the target gNB holds them until it).
        let rows = try PathManagementTests.fields(run.output("n3"), ["gtp.message", "gtp.teid", "ip.dst"])
        var kinds: [String] = []
        for row in rows {
            switch (row[0], row[1], row[2]) {   // tshark prints the message type in hex
            case ("0xff", "0x00001000", "192.0.2.100"): kinds.append("old")
            case ("0xfe", "0x00001000", "192.0.2.100"): kinds.append("end_marker")
            case ("0xff", "0x00001001", "192.0.2.101"): kinds.append("new")
            case ("0x01", "0x00000000", "192.0.2.100"): kinds.append("echo")
            default: kinds.append("unexpected \(row)")
            }
        }
        let endMarkers = kinds.indices.filter { kinds[$0] == "end_marker" }
        #expect(endMarkers.count == 1, "End Markers at \(endMarkers)")
        let lastOld = kinds.lastIndex(of: "old") ?? -1
        #expect(lastOld >= 0 && endMarkers.first.map { $0 > lastOld } == true, "End Marker at \(endMarkers), last old G-PDU at \(lastOld)")
        #expect(kinds.filter { $0 == "old" }.count + kinds.filter { $0 == "new" }.count == 200)
        #expect(!kinds.contains { $0.hasPrefix("unexpected") }, "\(kinds.filter { $0.hasPrefix("unexpected") })")
        #expect(rows.filter { $0[0] == "0x01" }.count == echoes, "every Echo Request counted left on n3")
        #expect(run.outputPackets("n3") == 200 + 1 + echoes)
    }
}
