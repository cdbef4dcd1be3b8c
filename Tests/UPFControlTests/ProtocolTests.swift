import Testing
import UPFPolicy
@testable import UPFControl

/// Request parsing: every refusal has a code, a message and the path of the offending field.
@Suite struct ProtocolTests {
    func parse(_ line: String) -> ParsedRequest { ControlProtocol.parse(line: Array(line.utf8)) }

    func error(_ line: String) -> ControlError? {
        if case .failure(let error) = parse(line).result { return error }
        return nil
    }

    @Test func parsesEveryOperation() throws {
        let session = #"{"seid":7,"n3":{"teid":1,"address":"192.0.2.1"},"rules":[{"id":1,"precedence":1,"source":"access","action":1}],"actions":[{"id":1,"type":"drop"}]}"#
        let engine = #"{"id":"llm","instances":[{"port":"0","address":"10.0.0.2"}]}"#
        let cases: [(String, String)] = [
            (#"{"op":"apply","changes":[{"op":"delete_session","seid":7}]}"#, "apply"),
            (#"{"op":"policy.put","policy":{},"replace":true}"#, "policy.put"),
            (#"{"op":"policy.get"}"#, "policy.get"),
            (#"{"op":"session.put","session":\#(session)}"#, "session.put"),
            (#"{"op":"session.get","seid":7}"#, "session.get"),
            (#"{"op":"session.delete","seid":7}"#, "session.delete"),
            (#"{"op":"session.list","cursor":"7","limit":1000}"#, "session.list"),
            (#"{"op":"engine.put","engine":\#(engine)}"#, "engine.put"),
            (#"{"op":"engine.delete","engine_id":"llm"}"#, "engine.delete"),
            (#"{"op":"engine.list"}"#, "engine.list"),
            (#"{"op":"stats"}"#, "stats"),
            (#"{"op":"health"}"#, "health"),
            (#"{"op":"version"}"#, "version"),
            (#"{"op":"events"}"#, "events"),
        ]
        for (line, op) in cases {
            let request = try parse(line).result.get()
            #expect(request.op == op)
        }
        #expect(try parse(#"{"op":"session.list","cursor":"7","limit":5}"#).result.get() == .sessionList(after: 7, limit: 5))
        #expect(try parse(#"{"op":"session.list"}"#).result.get() == .sessionList(after: nil, limit: 100))
        #expect(try parse(#"{"op":"session.get","seid":18446744073709551615}"#).result.get() == .sessionGet(seid: .max))
    }

    @Test func echoesTheRequestID() {
        #expect(parse(#"{"id":"abc","op":"health"}"#).id == .string("abc"))
        #expect(parse(#"{"id":42,"op":"nope"}"#).id == .number("42"))
        #expect(parse(#"{"op":"health"}"#).id == .null)
        #expect(error(#"{"id":[1],"op":"health"}"#)?.path == "id")
    }

    @Test(arguments: [
        ("", "empty_request", ""),
        ("   \r", "empty_request", ""),
        (#"{"id":1,"op":"health""#, "syntax_error", ""),
        (#"{"id":1,"op":"health"} {}"#, "syntax_error", ""),
        ("[1,2]", "not_an_object", ""),
        ("42", "not_an_object", ""),
        (#"{"id":1}"#, "missing_field", "op"),
        (#"{"op":7}"#, "invalid_field", "op"),
        (#"{"op":"session.drop"}"#, "unknown_operation", "op"),
        (#"{"op":"health","verbose":true}"#, "unknown_field", "verbose"),
        (#"{"op":"session.get"}"#, "missing_field", "seid"),
        (#"{"op":"session.get","seid":null}"#, "missing_field", "seid"),
        (#"{"op":"session.get","seid":"7"}"#, "invalid_field", "seid"),
        (#"{"op":"session.get","seid":-1}"#, "out_of_range", "seid"),
        (#"{"op":"session.get","seid":1.5}"#, "out_of_range", "seid"),
        (#"{"op":"session.get","seid":18446744073709551616}"#, "out_of_range", "seid"),
        (#"{"op":"session.list","limit":1001}"#, "out_of_range", "limit"),
        (#"{"op":"session.list","limit":0}"#, "out_of_range", "limit"),
        (#"{"op":"session.list","cursor":7}"#, "invalid_field", "cursor"),
        (#"{"op":"apply","changes":{}}"#, "invalid_field", "changes"),
        (#"{"op":"apply"}"#, "missing_field", "changes"),
        (#"{"op":"apply","changes":[{"op":"explode"}]}"#, "unknown_operation", "changes[0].op"),
        (#"{"op":"apply","changes":[{"op":"delete_session","seid":1,"x":1}]}"#, "unknown_field", "changes[0].x"),
        (#"{"op":"apply","changes":[{"op":"delete_session","seid":-3}]}"#, "out_of_range", "changes[0].seid"),
        (#"{"op":"session.put","session":{"seid":1,"n3":{"teid":1,"address":"x"},"rules":[],"typo":1}}"#, "unknown_field", "session.typo"),
        (#"{"op":"session.put","session":{"seid":1,"n3":{"teid":99999999999,"address":"x"},"rules":[]}}"#, "out_of_range", "session.n3.teid"),
        (#"{"op":"session.put","session":{"seid":1,"rules":[]}}"#, "missing_field", "session.n3"),
        (#"{"op":"engine.delete","engine_id":""}"#, "invalid_field", "engine_id"),
        (#"{"op":"policy.put","policy":{},"replace":"yes"}"#, "invalid_field", "replace"),
        (#"{"op":"policy.put","policy":{"sessions":[{}]}}"#, "missing_field", "policy.sessions[0].seid"),
    ])
    func refusesWithCodeAndPath(_ line: String, _ code: String, _ path: String) {
        let refused = error(line)
        #expect(refused?.code == code, "\(line)")
        #expect(refused?.path == path, "\(line)")
        #expect(refused.map { !$0.message.isEmpty } == true)
    }

    @Test func refusesInvalidUTF8() {
        let line: [UInt8] = Array(#"{"op":"health","x":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        guard case .failure(let error) = ControlProtocol.parse(line: line).result else {
            Issue.record("accepted invalid UTF-8")
            return
        }
        #expect(error.code == "invalid_utf8")
    }

    @Test func responseShapes() {
        let ok = ControlProtocol.success(id: .number("3"), version: 9, [("changed", .bool(false))])
        #expect(ok.serialized == #"{"id":3,"ok":true,"version":9,"changed":false}"#)
        let refused = ControlProtocol.failure(id: .null, ControlError("not_found", "there is no session with SEID 4", path: "seid"))
        #expect(refused.serialized == #"{"id":null,"ok":false,"error":{"code":"not_found","message":"there is no session with SEID 4","path":"seid"}}"#)
    }
}

@Suite struct EventQueueTests {
    @Test func dropsWhenFullAndReportsTheGapWhereItWas() {
        var queue = BoundedEventQueue(capacity: 3)
        func applied(_ v: UInt64) -> ControlEvent { .policyApplied(version: v, sessions: 0, engines: 0) }
        for version in 1...10 as ClosedRange<UInt64> { queue.offer(applied(version)) }
        #expect(queue.droppedTotal == 7)
        #expect(queue.next() == applied(1))
        queue.offer(applied(11))  // room for one: the gap is reported before it
        #expect(queue.next() == applied(2))
        #expect(queue.next() == applied(3))
        #expect(queue.next() == .eventsDropped(7))
        #expect(queue.next() == applied(11))
        // A gap at the end is reported once the queue has drained.
        for version in 12...20 as ClosedRange<UInt64> { queue.offer(applied(version)) }
        #expect((0..<3).map { _ in queue.next() } == [applied(12), applied(13), applied(14)])
        #expect(queue.next() == .eventsDropped(6))
        #expect(queue.next() == nil)
        #expect(queue.isEmpty)
    }

    @Test func busNeverWaitsForASubscriber() {
        final class Counting: EventSubscriber, @unchecked Sendable {
            var seen = 0
            func offer(_ event: ControlEvent) { seen += 1 }
        }
        let bus = EventBus()
        let a = Counting(), b = Counting()
        bus.subscribe(a)
        bus.subscribe(b)
        bus.publish(ControlEvent("usage", [("seid", .int(1))]))
        bus.unsubscribe(b)
        bus.publish(ControlEvent("usage", [("seid", .int(2))]))
        #expect(a.seen == 2 && b.seen == 1)
        #expect(bus.publishedCount == 2)
        #expect(ControlEvent("usage", [("seid", .int(1))]).json.serialized == #"{"event":"usage","seid":1}"#)
    }
}
