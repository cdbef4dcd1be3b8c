import Synchronization
import UPFPackets

/// Something a worker saw that the control plane must hear about (and publish on the `events`
/// stream): a received Error Indication or End Marker, or the first packet buffered for a
/// session. A fixed-size value, so handing it over
/// allocates nothing.
@frozen
public struct DatapathEvent: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        /// A peer says it has no tunnel for `teid` (its TEID Data I) at `peer` (its GSN address).
        case errorIndication = 1
        /// The last packet on the tunnel `teid` from `peer` before a path switch.
        case endMarker = 2
        /// Downlink data arrived for session `seid` (version `generation`) whose rule buffers
        /// it (TS 29.244 §5.2.3.1: the SMF pages the UE). Raised by each worker once per
        /// session version; the control thread passes on one per version.
        case downlinkData = 3
        /// An Echo Response from `source` with sequence number `teid` (path supervision of the
        /// peers in `gtpu.echo`).
        case echoResponse = 4
        /// Control → worker: send an Echo Request with sequence `teid` to `peer` from port
        /// `port` (an `.endMarker` in that direction: send an End Marker on tunnel `teid` to
        /// `peer` from `source`).
        case echoRequest = 5
    }

    public var kind: Kind
    /// `PortTable` index of the port it arrived on.
    public var port: UInt8
    public var teid: UInt32
    /// Error Indication: the GSN Address IE (the peer's tunnel endpoint); End Marker: the outer source.
    public var peer: IPAddress
    /// The outer source address of the message.
    public var source: IPAddress
    /// `downlinkData`: the session and the version of it whose rule buffered the packet.
    public var seid: UInt64
    public var generation: UInt32

    @inlinable
    public init(kind: Kind, port: UInt8, teid: UInt32, peer: IPAddress, source: IPAddress, seid: UInt64 = 0,
                generation: UInt32 = 0) {
        self.kind = kind
        self.port = port
        self.teid = teid
        self.peer = peer
        self.source = source
        self.seid = seid
        self.generation = generation
    }
}

/// A bounded single-producer, single-consumer queue of events from one worker to the control
/// thread. The worker never waits: a full queue loses the event and the caller counts it
/// (`events_lost`). The consumer polls (`drain`) from the control thread.
///
/// Classic Lamport ring: the producer alone writes `tail`, the consumer alone writes `head`
/// (each on its own cache line); the release store of `tail` publishes the slot written before
/// it, the release store of `head` hands the slot back. The class owns the memory; the worker
/// holds a `Producer` (plain pointers, no reference counting per packet).
public final class DatapathEventQueue: @unchecked Sendable {
    public let capacity: Int
    let slots: UnsafeMutablePointer<DatapathEvent>
    /// Word 0: head (consumer), word 8: tail (producer).
    let indices: UnsafeMutablePointer<Atomic<Int>>

    /// `capacity` is rounded up to a power of two.
    public init(capacity: Int = 1024) {
        precondition(capacity > 0)
        var size = 1
        while size < capacity { size <<= 1 }
        self.capacity = size
        slots = .allocate(capacity: size)
        slots.initialize(repeating: DatapathEvent(kind: .endMarker, port: 0, teid: 0, peer: .zero, source: .zero), count: size)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 16 * 8, alignment: 64)
        raw.initializeMemory(as: Int.self, repeating: 0, count: 16)
        indices = raw.bindMemory(to: Atomic<Int>.self, capacity: 16)
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
        UnsafeMutableRawPointer(indices).deallocate()
    }

    /// The worker's side. The queue must outlive it.
    public var producer: Producer { Producer(slots: slots, indices: indices, mask: capacity - 1) }

    @frozen
    public struct Producer: @unchecked Sendable {
        @usableFromInline let slots: UnsafeMutablePointer<DatapathEvent>
        @usableFromInline let indices: UnsafeMutablePointer<Atomic<Int>>
        @usableFromInline let mask: Int

        @inlinable
        init(slots: UnsafeMutablePointer<DatapathEvent>, indices: UnsafeMutablePointer<Atomic<Int>>, mask: Int) {
            self.slots = slots
            self.indices = indices
            self.mask = mask
        }

        /// False when the queue is full (the event is lost; count it).
        @inlinable
        public func push(_ event: DatapathEvent) -> Bool {
            let t = indices[8].load(ordering: .relaxed)
            guard t &- indices[0].load(ordering: .acquiring) <= mask else { return false }
            slots[t & mask] = event
            indices[8].store(t &+ 1, ordering: .releasing)
            return true
        }
    }

    /// Consumer side (one thread: the control thread): hands every queued event to `body`,
    /// oldest first.
    public func drain(_ body: (DatapathEvent) -> Void) {
        var h = indices[0].load(ordering: .relaxed)
        let t = indices[8].load(ordering: .acquiring)
        while h != t {
            body(slots[h & (capacity - 1)])
            h &+= 1
            indices[0].store(h, ordering: .releasing)
        }
    }
}
