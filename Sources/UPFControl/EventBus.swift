// The in-process event bus: the control thread and (later) the data path publish, `events`
// connections subscribe.
//
// Publishing must never wait for a subscriber: the publisher may be the thread that owns the
// policy, and a client that stops reading must not stall it. Each subscriber therefore has its own
// bounded queue; `publish` only appends under a short lock (or counts a drop when the queue is
// full) and leaves the writing to the subscriber's own event loop.

import Synchronization

/// One event line: `{"event":name, …fields}`.
public struct ControlEvent: Sendable, Equatable {
    public var name: String
    public var fields: [(String, JSONValue)]

    public init(_ name: String, _ fields: [(String, JSONValue)] = []) {
        self.name = name
        self.fields = fields
    }

    public static func == (lhs: ControlEvent, rhs: ControlEvent) -> Bool {
        lhs.json == rhs.json
    }

    public var json: JSONValue { .object([("event", .string(name))] + fields) }

    /// Well-known events, so publishers and docs agree on names.
    public static func policyApplied(version: UInt64, sessions: Int, engines: Int) -> ControlEvent {
        ControlEvent("policy_applied", [("version", .int(version)), ("sessions", .int(sessions)), ("engines", .int(engines))])
    }

    public static func engineState(id: String, state: String) -> ControlEvent {
        ControlEvent("engine_state", [("id", .string(id)), ("state", .string(state))])
    }

    /// A GTP-U peer reported that it has no tunnel `teid` at `peer` (TS 29.281 §7.3.1): the
    /// session using it is stale on that side.
    public static func errorIndication(port: String, source: String, teid: UInt32, peer: String) -> ControlEvent {
        ControlEvent("error_indication", [("port", .string(port)), ("source", .string(source)), ("teid", .int(UInt64(teid))),
                                          ("peer", .string(peer))])
    }

    /// The last packet of tunnel `teid` from `source` before a path switch (TS 29.281 §7.3.2).
    public static func endMarker(port: String, source: String, teid: UInt32) -> ControlEvent {
        ControlEvent("end_marker", [("port", .string(port)), ("source", .string(source)), ("teid", .int(UInt64(teid)))])
    }

    /// Downlink data arrived for session `seid` and is being buffered (its rule says
    /// `buffer`): once per session version, not per packet (TS 29.244 §5.2.3.1, the report the
    /// SMF pages the UE on). The packets go out when the session is updated to forward.
    public static func downlinkData(seid: UInt64, port: String) -> ControlEvent {
        ControlEvent("downlink_data", [("seid", .int(seid)), ("port", .string(port))])
    }

    /// A supervised GTP-U peer (`gtpu.echo_peers`) changed state: `down` after `unanswered`
    /// Echo Requests in a row went unanswered, `up` when it answers (TS 29.281 §7.2.1).
    public static func peerState(peer: String, port: String, state: String, unanswered: Int) -> ControlEvent {
        ControlEvent("peer_state", [("peer", .string(peer)), ("port", .string(port)), ("state", .string(state)),
                                    ("unanswered", .int(UInt64(unanswered)))])
    }

    public static func eventsDropped(_ count: UInt64) -> ControlEvent {
        ControlEvent("events_dropped", [("count", .int(count))])
    }
}

/// Something that receives events. `offer` is called on the publisher's thread and must return
/// at once.
public protocol EventSubscriber: AnyObject, Sendable {
    func offer(_ event: ControlEvent)
}

/// A subscriber's bounded queue: at most `capacity` events wait; an event that finds the queue
/// full is dropped and counted, and an `events_dropped` notice takes the place of the gap — after
/// the events that came before it, before those that came after it. Kept apart from any channel
/// so the rule is testable on its own.
public struct BoundedEventQueue: Sendable {
    public let capacity: Int
    private enum Entry: Sendable {
        case event(ControlEvent)
        case gap(UInt64)
    }
    private var items: [Entry] = []
    private var head = 0
    /// Events (not notices) waiting.
    public private(set) var count = 0
    /// Events dropped since the last notice was queued.
    public private(set) var droppedSinceNotice: UInt64 = 0
    public private(set) var droppedTotal: UInt64 = 0

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    public var isEmpty: Bool { head == items.count && droppedSinceNotice == 0 }

    /// Appends, or counts a drop when full. Returns false on a drop.
    @discardableResult
    public mutating func offer(_ event: ControlEvent) -> Bool {
        if count >= capacity {
            droppedSinceNotice += 1
            droppedTotal += 1
            return false
        }
        if droppedSinceNotice > 0 {
            // A notice per gap: there are never more notices than events, so memory stays bounded.
            items.append(.gap(droppedSinceNotice))
            droppedSinceNotice = 0
        }
        items.append(.event(event))
        count += 1
        return true
    }

    /// The next line to write, in order; a gap at the end is reported once the queue has drained.
    public mutating func next() -> ControlEvent? {
        guard head < items.count else {
            guard droppedSinceNotice > 0 else { return nil }
            defer { droppedSinceNotice = 0 }
            return .eventsDropped(droppedSinceNotice)
        }
        let entry = items[head]
        head += 1
        if head >= 256 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        switch entry {
        case .event(let event):
            count -= 1
            return event
        case .gap(let dropped):
            return .eventsDropped(dropped)
        }
    }
}

public final class EventBus: Sendable {
    private struct State {
        var subscribers: [ObjectIdentifier: any EventSubscriber] = [:]
        var published: UInt64 = 0
    }
    private let state = Mutex(State())
    private let dropped = Atomic<UInt64>(0)

    public init() {}

    public func subscribe(_ subscriber: any EventSubscriber) {
        state.withLock { $0.subscribers[ObjectIdentifier(subscriber)] = subscriber }
    }

    public func unsubscribe(_ subscriber: any EventSubscriber) {
        _ = state.withLock { $0.subscribers.removeValue(forKey: ObjectIdentifier(subscriber)) }
    }

    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }
    public var publishedCount: UInt64 { state.withLock { $0.published } }
    /// Events dropped across all subscribers (reported by `stats`).
    public var droppedCount: UInt64 { dropped.load(ordering: .relaxed) }

    /// Called by subscribers when they drop, so `stats` can report the total.
    public func noteDropped() {
        dropped.add(1, ordering: .relaxed)
    }

    /// Hands `event` to every subscriber. Never blocks on a subscriber.
    public func publish(_ event: ControlEvent) {
        let targets = state.withLock { state -> [any EventSubscriber] in
            state.published += 1
            return Array(state.subscribers.values)
        }
        for subscriber in targets { subscriber.offer(event) }
    }
}
