import CDPDK

/// One packet buffer, as seen by the fast path: a `struct rte_mbuf *` (opaque to Swift, which does
/// not import the 64-byte aligned struct) with inlined accessors over CDPDK's helpers.
///
/// A struct of one pointer: no allocation, no reference counting. Whoever holds it owns the mbuf
/// until it is transmitted (the PMD then owns it) or freed.
@frozen
public struct Mbuf {
    public let pointer: OpaquePointer

    @inlinable @inline(__always)
    public init(_ pointer: OpaquePointer) { self.pointer = pointer }

    /// First byte of the packet data (first segment).
    @inlinable @inline(__always)
    public var data: UnsafeMutableRawPointer { cdpdk_mbuf_data(pointer) }

    /// Bytes in the first segment.
    @inlinable @inline(__always)
    public var dataLength: Int { Int(cdpdk_mbuf_data_len(pointer)) }

    /// Bytes in the whole packet.
    @inlinable @inline(__always)
    public var packetLength: Int { Int(cdpdk_mbuf_pkt_len(pointer)) }

    @inlinable @inline(__always)
    public var segmentCount: Int { Int(cdpdk_mbuf_nb_segs(pointer)) }

    @inlinable @inline(__always)
    public var port: UInt16 { cdpdk_mbuf_port(pointer) }

    @inlinable @inline(__always)
    public var offloadFlags: UInt64 { cdpdk_mbuf_ol_flags(pointer) }

    @inlinable @inline(__always)
    public var packetType: UInt32 { cdpdk_mbuf_packet_type(pointer) }

    @inlinable @inline(__always)
    public var headroom: Int { Int(cdpdk_mbuf_headroom(pointer)) }

    @inlinable @inline(__always)
    public var tailroom: Int { Int(cdpdk_mbuf_tailroom(pointer)) }

    /// Drops `count` bytes from the front (decapsulation); the new start, nil if too short.
    @inlinable @inline(__always)
    public func removeFirst(_ count: UInt16) -> UnsafeMutableRawPointer? { cdpdk_mbuf_adj(pointer, count) }

    /// Opens `count` bytes in front (encapsulation); the new start, nil without enough headroom.
    @inlinable @inline(__always)
    public func prepend(_ count: UInt16) -> UnsafeMutableRawPointer? { cdpdk_mbuf_prepend(pointer, count) }

    /// Opens `count` bytes at the end; their start, nil without enough tailroom.
    @inlinable @inline(__always)
    public func append(_ count: UInt16) -> UnsafeMutableRawPointer? { cdpdk_mbuf_append(pointer, count) }

    /// Sets data and packet length of a single-segment mbuf together.
    @inlinable @inline(__always)
    public func setLength(_ length: UInt16) { cdpdk_mbuf_set_len(pointer, length) }

    /// Copies `count` bytes at `offset` into `buffer` whatever the segmentation; false if the packet
    /// is shorter than `offset + count`.
    @inlinable
    public func copyBytes(offset: Int, count: Int, to buffer: UnsafeMutableRawPointer) -> Bool {
        guard offset >= 0, count >= 0, offset + count <= packetLength else { return false }
        guard let source = cdpdk_mbuf_read(pointer, UInt32(offset), UInt32(count), buffer) else { return false }
        if source != UnsafeRawPointer(buffer) { buffer.copyMemory(from: source, byteCount: count) }
        return true
    }

    /// Starts loading the first cache line of the data, to hide the miss on the next packet.
    @inlinable @inline(__always)
    public func prefetchData() { cdpdk_mbuf_prefetch_data(pointer) }

    /// One mbuf from `pool`, nil when it is empty.
    @inlinable @inline(__always)
    public static func allocate(from pool: Mempool) -> Mbuf? {
        guard let raw = cdpdk_mbuf_alloc(pool.pointer) else { return nil }
        return Mbuf(raw)
    }

    /// Frees this packet (all segments). Prefer `MbufBurst.free` for many at once.
    @inlinable @inline(__always)
    public func free() { cdpdk_mbuf_free(pointer) }

    /// Frees `count` mbufs of an array of pointers (all segments; nil entries are skipped).
    @inlinable
    public static func freeBulk(_ mbufs: UnsafeMutablePointer<OpaquePointer?>, count: Int) {
        if count > 0 { cdpdk_mbuf_free_bulk(mbufs, UInt32(count)) }
    }
}

/// A fixed array of mbuf pointers for one RX or TX burst, allocated once per worker and reused:
/// the burst loop then allocates nothing.
///
/// Deliberately not reference counted and without `deinit`: the owner calls `deallocate()` when
/// the worker ends, after freeing or transmitting every mbuf it still holds.
@frozen
public struct MbufBurst {
    /// DPDK's customary burst size: large enough to amortise the PMD call, small enough for L1.
    public static let capacity = 32

    public let slots: UnsafeMutablePointer<OpaquePointer?>

    public init() {
        slots = .allocate(capacity: MbufBurst.capacity)
        slots.initialize(repeating: nil, count: MbufBurst.capacity)
    }

    @inlinable @inline(__always)
    public subscript(index: Int) -> Mbuf {
        precondition(index >= 0 && index < MbufBurst.capacity)
        return Mbuf(slots[index].unsafelyUnwrapped)
    }

    /// Fills `slots[0..<count]` from `pool`, all or nothing.
    @inlinable @inline(__always)
    public func allocate(from pool: Mempool, count: Int) -> Bool {
        precondition(count >= 0 && count <= MbufBurst.capacity)
        return cdpdk_mbuf_alloc_bulk(pool.pointer, slots, UInt32(count)) == 0
    }

    /// Frees `slots[range]`: packets that were not transmitted, or that are done with.
    @inlinable @inline(__always)
    public func free(_ range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= MbufBurst.capacity)
        if range.isEmpty { return }
        cdpdk_mbuf_free_bulk(slots + range.lowerBound, UInt32(range.count))
    }

    /// Returns the slot array's memory. The mbufs it pointed to must already be freed or sent.
    public func deallocate() { slots.deallocate() }
}
