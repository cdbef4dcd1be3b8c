import Synchronization
import UPFPackets
import UPFPolicy

/// The fast-path side of `SessionTables`: one per worker thread, obtained once from
/// `SessionTables.reader(_:)` and kept in the worker's own state. A plain struct of pointers into
/// the tables' raw memory: no lock, no allocation, no reference counting, nothing that blocks.
///
/// Rules for the worker:
/// - Only one thread uses reader `i`.
/// - Handles and matches found through the reader stay valid until its next `quiescent()` or
///   `offline()`; call `quiescent()` between bursts (never while holding a handle). Until it is
///   called, retired versions cannot be freed and the control thread eventually gets
///   `TableError.reclaimPending`.
/// - A worker that stops polling calls `offline()` (and `online()` before its next lookup).
/// - The `SessionTables` must outlive its readers.
@frozen
public struct TableReader: @unchecked Sendable {
    @usableFromInline let records: UnsafePointer<SessionRecord>
    @usableFromInline let uplink: KeyIndex
    @usableFromInline let downlinkV4: KeyIndex
    @usableFromInline let downlinkV6: KeyIndex
    @usableFromInline let epoch: UnsafeMutablePointer<Atomic<UInt64>>
    /// This reader's QSBR counter: the epoch it last announced (UInt64.max = offline).
    @usableFromInline let announced: UnsafeMutablePointer<Atomic<UInt64>>
    public let index: Int

    init(records: UnsafePointer<SessionRecord>, uplink: KeyIndex, downlinkV4: KeyIndex, downlinkV6: KeyIndex,
         epoch: UnsafeMutablePointer<Atomic<UInt64>>, announced: UnsafeMutablePointer<Atomic<UInt64>>, index: Int) {
        self.records = records
        self.uplink = uplink
        self.downlinkV4 = downlinkV4
        self.downlinkV6 = downlinkV6
        self.epoch = epoch
        self.announced = announced
        self.index = index
    }

    @usableFromInline static let uplinkKey = 0
    @usableFromInline static let ipv4Key = 1
    @usableFromInline static let ipv6Key = 2

    /// True when `record` holds the key (`kind` is a constant at every call site, so the switch
    /// folds away).
    @inlinable @inline(__always)
    func holds(_ record: UnsafePointer<SessionRecord>, kind: Int, key: UInt64, low: UInt64) -> Bool {
        switch kind {
        case TableReader.uplinkKey:
            return record.pointee.n3TEID == UInt32(truncatingIfNeeded: key)
        case TableReader.ipv4Key:
            return record.pointee.ueIPv4 == UInt32(truncatingIfNeeded: key)
                && record.pointee.flags & SessionRecord.hasIPv4 != 0
        default:
            return record.pointee.ueIPv6.high == key && low & record.pointee.ueIPv6LowMask == record.pointee.ueIPv6.low
                && record.pointee.flags & SessionRecord.hasIPv6 != 0
        }
    }

    /// Probes the key's two buckets (see KeyIndex for why a miss re-checks the change counter).
    @inlinable @inline(__always)
    func find(_ index: KeyIndex, hash: UInt64, tag: UInt32, kind: Int, key: UInt64, low: UInt64) -> SessionHandle? {
        let (first, second) = index.bucketPair(hash)
        while true {
            let before = index.changes.pointee.load(ordering: .acquiring)
            var bucket = first
            var round = 0
            while round < 2 {
                let base = index.cells + bucket &* KeyIndex.cellsPerBucket
                var k = 0
                while k < KeyIndex.cellsPerBucket {
                    let cell = base[k].load(ordering: .acquiring)
                    if UInt32(truncatingIfNeeded: cell >> 32) == tag && UInt32(truncatingIfNeeded: cell) != 0 {
                        let record = records + KeyIndex.record(cell)
                        if holds(record, kind: kind, key: key, low: low) { return SessionHandle(record) }
                    }
                    k &+= 1
                }
                bucket = second
                round &+= 1
            }
            if index.changes.pointee.load(ordering: .acquiring) == before { return nil }
        }
    }

    // MARK: Lookups

    /// The session whose local N3 TEID is `teid` (uplink G-PDUs).
    @inlinable
    public func lookupUplink(teid: UInt32) -> SessionHandle? {
        find(uplink, hash: KeyIndex.hash32(teid), tag: teid, kind: TableReader.uplinkKey, key: UInt64(teid), low: 0)
    }

    /// The session of a UE address (downlink: the inner destination): IPv4 by the full address,
    /// IPv6 by its /64 and then the session's prefix length.
    @inlinable
    public func lookupDownlink(_ ue: IPAddress) -> SessionHandle? {
        ue.isIPv4 ? lookupDownlink(ipv4: ue.ipv4) : lookupDownlink(ipv6: ue)
    }

    @inlinable
    public func lookupDownlink(ipv4: UInt32) -> SessionHandle? {
        find(downlinkV4, hash: KeyIndex.hash32(ipv4), tag: ipv4, kind: TableReader.ipv4Key, key: UInt64(ipv4), low: 0)
    }

    @inlinable
    public func lookupDownlink(ipv6: IPAddress) -> SessionHandle? {
        find(downlinkV6, hash: KeyIndex.hash64(ipv6.high), tag: KeyIndex.tag64(ipv6.high), kind: TableReader.ipv6Key,
             key: ipv6.high, low: ipv6.low)
    }

    // MARK: Prefetching

    /// The cache line a lookup of `teid` reads first (its first bucket). A burst loop can
    /// prefetch it a few packets ahead (UPFDatapath itself has no prefetch instruction; the DPDK
    /// layer has `cdpdk_prefetch`). A random lookup in 1M sessions is two DRAM misses (bucket,
    /// record), classification one or two more (the rule block).
    @inlinable
    public func uplinkPrefetchAddress(teid: UInt32) -> UnsafeRawPointer {
        UnsafeRawPointer(uplink.cells + uplink.bucketPair(KeyIndex.hash32(teid)).0 &* KeyIndex.cellsPerBucket)
    }

    /// The first bucket a downlink lookup of `ue` reads.
    @inlinable
    public func downlinkPrefetchAddress(_ ue: IPAddress) -> UnsafeRawPointer {
        if ue.isIPv4 {
            return UnsafeRawPointer(downlinkV4.cells
                + downlinkV4.bucketPair(KeyIndex.hash32(ue.ipv4)).0 &* KeyIndex.cellsPerBucket)
        }
        return UnsafeRawPointer(downlinkV6.cells
            + downlinkV6.bucketPair(KeyIndex.hash64(ue.high)).0 &* KeyIndex.cellsPerBucket)
    }

    // MARK: Classification

    /// The first rule of `session`, in precedence order, that the packet matches (see
    /// `SessionHandle.classify`).
    @inlinable
    public func classify(_ session: SessionHandle, flow: InnerFlow, qfi: UInt8, source: SourceInterface) -> RuleMatch? {
        session.classify(flow: flow, qfi: qfi, source: source)
    }

    // MARK: Quiescent-state reporting

    /// Announces that this reader holds no handle: everything retired before now may be freed.
    /// Call it between bursts. Cost when nothing changed: two loads.
    @inlinable
    public func quiescent() {
        let now = epoch.pointee.load(ordering: .acquiring)
        if announced.pointee.load(ordering: .relaxed) != now {
            announced.pointee.store(now, ordering: .releasing)
        }
    }

    /// The reader stops reading (idle worker): the control thread no longer waits for it.
    @inlinable
    public func offline() {
        announced.pointee.store(.max, ordering: .releasing)
    }

    /// The reader resumes after `offline()`; call before its next lookup.
    @inlinable
    public func online() {
        let now = epoch.pointee.load(ordering: .sequentiallyConsistent)
        announced.pointee.store(now, ordering: .sequentiallyConsistent)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
    }
}
