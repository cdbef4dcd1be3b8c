import Foundation
import Testing
import UPFPolicy
@testable import UPFControl

#if canImport(Glibc)
import Glibc
#endif

/// A control service in this process, on a socket in a temporary directory.
final class ServiceHarness {
    let directory: String
    let configuration: ServiceConfiguration
    let service: ControlService
    var socket: String { configuration.control.socket }

    init(_ adjust: (inout ServiceConfiguration) -> Void = { _ in }) throws {
        directory = try makeTemporaryDirectory()
        var configuration = ServiceConfiguration()
        configuration.control.socket = "\(directory)/run/ctl.sock"
        configuration.stateFile = "\(directory)/state/state.json"
        configuration.limits.maxSessions = 500
        adjust(&configuration)
        self.configuration = configuration
        service = ControlService(configuration: configuration, logger: Fixture.logger)
        try service.start()
    }

    /// With an access policy that allows nobody at all (not even root): every client is forbidden.
    init(allowingNobody: Void) throws {
        directory = try makeTemporaryDirectory()
        var configuration = ServiceConfiguration()
        configuration.control.socket = "\(directory)/ctl.sock"
        configuration.stateFile = "\(directory)/state.json"
        configuration.limits.maxSessions = 10
        self.configuration = configuration
        service = ControlService(configuration: configuration, logger: Fixture.logger,
                                 access: AccessPolicy(allowedUIDs: [], includeDefaults: false))
        try service.start()
    }

    deinit {
        service.stop()
        removeDirectory(directory)
    }

    func client(timeout: Double = 10) throws -> TestClient { try TestClient(path: socket, timeout: timeout) }
}

func sessionLine(_ id: Int, _ seid: UInt64, teid: UInt32? = nil) -> String {
    let json = String(decoding: PolicyCoding.json(Fixture.session(seid, teid: teid)), as: UTF8.self)
    return #"{"id":\#(id),"op":"session.put","session":\#(json)}"#
}

@Suite(.serialized) struct ServerTests {
    @Test func answersInOrderOnOneConnection() throws {
        let h = try ServiceHarness()
        let c = try h.client()
        c.send(sessionLine(1, 1) + "\n" + #"{"id":2,"op":"session.get","seid":1}"# + "\n" + #"{"id":3,"op":"session.get","seid":2}"# + "\n")
        let responses = (0..<3).compactMap { _ in c.readLine() }.map { try? JSONValue.parse($0) }
        #expect(responses.map { $0?["id"] } == [.number("1"), .number("2"), .number("3")])
        #expect(responses[0]?.isOK == true && responses[1]?.isOK == true)
        #expect(responses[2]?.errorCode == "not_found")
    }

    /// A client that sends its next lines before the answer to a large batch (pipelining): the
    /// server parses the next line while the batch is applied, and still validates and answers
    /// each line in order against the state the lines before it left.
    @Test func pipelinedLinesAreValidatedInOrderAgainstTheStateBeforeThem() throws {
        let h = try ServiceHarness()
        let c = try h.client()
        let batch = (1...300).map { seid in
            #"{"op":"put_session","session":"# + String(decoding: PolicyCoding.json(Fixture.session(UInt64(seid))), as: UTF8.self) + "}"
        }
        var lines = [#"{"id":1,"op":"apply","changes":["# + batch.joined(separator: ",") + "]}"]
        lines.append(#"{"id":2,"op":"session.get","seid":300}"#)                         // in the batch before it
        lines.append(sessionLine(3, 1000, teid: 300 + 100))                               // the TEID of session 300
        lines.append(#"{"id":4,"op":"session.delete","#)                                 // not JSON
        lines.append(#"{"id":5,"op":"session.delete","seid":300}"#)
        lines.append(sessionLine(6, 1000, teid: 300 + 100))                               // free again
        c.send(lines.joined(separator: "\n") + "\n")
        let answers = (0..<lines.count).compactMap { _ in c.readLine() }.map { try? JSONValue.parse($0) }
        try #require(answers.count == lines.count)
        #expect(answers.map { $0?["id"] } == [.number("1"), .number("2"), .number("3"), .null, .number("5"), .number("6")])
        #expect(answers[0]?.isOK == true && answers[1]?.isOK == true)
        #expect(answers[2]?.errorCode == "collision", "\(String(describing: answers[2]))")
        #expect(answers[3]?.errorCode == "syntax_error", "\(String(describing: answers[3]))")
        #expect(answers[4]?.isOK == true && answers[5]?.isOK == true)
        let versions = [0, 1, 4, 5].map { answers[$0]?["version"] }
        #expect(versions == [.number("1"), .number("1"), .number("2"), .number("3")], "\(versions)")
    }

    @Test func manyConcurrentClients() throws {
        let h = try ServiceHarness()
        let clients = 24, perClient = 10
        let failures = NSLock()
        nonisolated(unsafe) var problems: [String] = []
        let socket = h.socket
        DispatchQueue.concurrentPerform(iterations: clients) { k in
            do {
                let c = try TestClient(path: socket)
                for i in 0..<perClient {
                    let seid = UInt64(k * 100 + i + 1)
                    let put = try c.call(sessionLine(i, seid))
                    let get = try c.call(#"{"id":"g","op":"session.get","seid":\#(seid)}"#)
                    if !put.isOK || !get.isOK { failures.withLock { problems.append("\(seid): \(put) \(get)") } }
                }
            } catch {
                failures.withLock { problems.append("client \(k): \(error)") }
            }
        }
        #expect(problems.isEmpty, "\(problems.prefix(3))")
        let stats = try h.client().call(#"{"op":"stats"}"#)
        #expect(stats["sessions"] == .int(clients * perClient))
        #expect(stats["version"] == .int(clients * perClient))
    }

    @Test func aForbiddenClientGetsOneErrorLineAndIsClosed() throws {
        let h = try ServiceHarness(allowingNobody: ())
        let c = try h.client()
        c.send(#"{"id":1,"op":"session.delete","seid":1}"# + "\n")
        let line = try #require(c.readLine())
        let response = try JSONValue.parse(line)
        #expect(response.errorCode == "forbidden")
        #expect(c.readLine() == nil)
        #expect(h.service.metrics.snapshot.connectionsRefused == 1)
        #expect(h.service.core.currentVersion == 0)
    }

    @Test func anIdleClientIsClosed() throws {
        let h = try ServiceHarness { $0.control.idleTimeoutSeconds = 0.3 }
        let c = try h.client()
        let started = ContinuousClock.now
        let line = try #require(c.readLine())
        #expect(try JSONValue.parse(line).errorCode == "idle_timeout")
        #expect(c.readLine() == nil)
        #expect(ContinuousClock.now - started < .seconds(5))
        // A client that dribbles bytes without finishing a line is idle too.
        let slow = try h.client()
        slow.send("{\"op\":")
        #expect(try JSONValue.parse(try #require(slow.readLine())).errorCode == "idle_timeout")
    }

    @Test func tooManyClientsAreRefused() throws {
        let h = try ServiceHarness { $0.control.maxClients = 2 }
        let a = try h.client(), b = try h.client()
        #expect(try a.call(#"{"op":"health"}"#).isOK)
        #expect(try b.call(#"{"op":"health"}"#).isOK)
        let c = try h.client()
        #expect(try JSONValue.parse(try #require(c.readLine())).errorCode == "too_many_clients")
        _ = a  // keep a and b connected until here
        _ = b
    }

    @Test func aLongLineIsRefusedAndNothingApplied() throws {
        let h = try ServiceHarness { $0.control.maxLineBytes = 4096 }
        let c = try h.client()
        let long = sessionLine(1, 1).dropLast() + String(repeating: " ", count: 5000) + "}"
        c.send(long + "\n")
        #expect(try JSONValue.parse(try #require(c.readLine())).errorCode == "line_too_long")
        #expect(c.readLine() == nil)
        #expect(try h.client().call(#"{"op":"session.get","seid":1}"#).errorCode == "not_found")
    }

    @Test func answersAnUnterminatedLastLineAtHalfClose() throws {
        let h = try ServiceHarness()
        let c = try h.client()
        c.send(#"{"id":9,"op":"version"}"#)
        c.shutdownWrite()
        let response = try JSONValue.parse(try #require(c.readLine()))
        #expect(response["id"] == .number("9") && response.isOK)
        #expect(c.readLine() == nil)
    }

    @Test func eventsStreamPolicyChanges() throws {
        let h = try ServiceHarness()
        let subscriber = try h.client()
        #expect(try subscriber.call(#"{"id":1,"op":"events"}"#)["subscribed"] == .bool(true))
        let c = try h.client()
        #expect(try c.call(#"{"op":"engine.put","engine":{"id":"llm","instances":[{"port":"0","address":"10.0.0.9"}]}}"#).isOK)
        #expect(try c.call(sessionLine(2, 1)).isOK)
        let events = (0..<3).compactMap { _ in subscriber.readLine() }
        #expect(events == [
            #"{"event":"engine_state","id":"llm","state":"configured"}"#,
            #"{"event":"policy_applied","version":1,"sessions":0,"engines":1}"#,
            #"{"event":"policy_applied","version":2,"sessions":1,"engines":1}"#,
        ])
    }

    @Test func aSlowSubscriberLosesEventsNotTheServer() throws {
        let h = try ServiceHarness { $0.control.eventQueue = 8 }
        let slow = try h.client()
        #expect(try slow.call(#"{"op":"events"}"#).isOK)
        // Far more than the socket buffers and the queue hold, while the subscriber reads nothing.
        let padding = String(repeating: "x", count: 1000)
        for i in 0..<20_000 {
            h.service.bus.publish(ControlEvent("usage", [("seq", .int(i)), ("pad", .string(padding))]))
        }
        // The server still answers at once.
        let started = ContinuousClock.now
        #expect(try h.client().call(#"{"op":"health"}"#).isOK)
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(h.service.bus.droppedCount > 0)
        // The subscriber gets events and, in place of each gap, how many it missed: every event
        // is accounted for, in order. A gap at the very end is reported with the next event, so
        // drain what is there, publish one more, and read up to it.
        var delivered = 0
        var dropped = 0
        var expectedSeq = 0
        var sentFinal = false
        while true {
            guard let line = slow.readLine() else {
                if sentFinal { break }
                h.service.bus.publish(ControlEvent("usage", [("seq", .int(20_000))]))
                sentFinal = true
                continue
            }
            let event = try JSONValue.parse(line)
            if event["event"] == .string("events_dropped") {
                let count = event["count"]?.intValue ?? 0
                dropped += count
                expectedSeq += count  // the gap is exactly where the notice is
            } else {
                #expect(event["seq"]?.intValue == expectedSeq)
                if event["seq"]?.intValue == 20_000 { break }
                expectedSeq += 1
                delivered += 1
            }
        }
        #expect(sentFinal, "the drained subscriber received the event published after the flood")
        #expect(dropped > 0)
        #expect(delivered + dropped == 20_000)
    }

    @Test func restartRestoresThePolicy() throws {
        let directory: String
        do {
            let h = try ServiceHarness()
            #expect(try h.client().call(sessionLine(1, 42)).isOK)
            directory = h.directory
            h.service.stop()
            var configuration = h.configuration
            configuration.control.socket = "\(directory)/run/ctl2.sock"
            let again = ControlService(configuration: configuration, logger: Fixture.logger)
            try again.start()
            defer { again.stop() }
            let got = try TestClient(path: configuration.control.socket).call(#"{"op":"session.get","seid":42}"#)
            #expect(got.isOK)
            #expect(got["version"] == .int(1))
        }
    }
}
