import CPrefetch
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

    // MARK: Burst lookups

    /// Looks up `count` N3 TEIDs at once (uplink G-PDUs of one receive burst): `into[i]` is the
    /// session of `teids[i]`, as `lookupUplink(teid:)` would give it, or nil. Also starts loading
    /// each found session's rule lines, so classify the burst right after this call.
    ///
    /// Why: at 1M sessions a lookup is two dependent cache misses (index bucket, then record)
    /// and classification one more (the rule block), each a DRAM access and often a page walk.
    /// One at a time they add up; here each stage first issues the loads of the whole burst
    /// and only then uses them — hash every key and prefetch its bucket; probe the buckets and
    /// prefetch the records they name; check the records and prefetch the rule blocks — so the
    /// misses of up to `burstChunk` packets are in flight together (the staged prefetching of
    /// DPDK's `rte_hash_lookup_bulk`). Same results, same memory-ordering argument as the
    /// single lookups: a candidate found in its first bucket is taken only once its record is
    /// seen to hold the key; anything else goes through the single lookup's full probe.
    ///
    /// No allocation, no escaping closure (the stages' scratch is on the stack). `teids` and
    /// `into` need `count` elements each; a count above `burstChunk` is processed
    /// in chunks. `prefetchingRules: false` leaves the rule blocks alone (a caller that will not
    /// classify: the lines would only take memory bandwidth).
    @inlinable
    public func lookupUplinkBurst(teids: UnsafePointer<UInt32>, count: Int, into: UnsafeMutablePointer<SessionHandle?>,
                                  prefetchingRules: Bool = true) {
        lookupBurst(BurstKeys(base: UnsafeRawPointer(teids), form: BurstKeys.teids), count: count, into: into,
                    prefetchingRules: prefetchingRules)
    }

    /// `lookupDownlink(ipv4:)` for a burst (see `lookupUplinkBurst`).
    @inlinable
    public func lookupDownlinkBurst(ipv4: UnsafePointer<UInt32>, count: Int, into: UnsafeMutablePointer<SessionHandle?>,
                                    prefetchingRules: Bool = true) {
        lookupBurst(BurstKeys(base: UnsafeRawPointer(ipv4), form: BurstKeys.ipv4), count: count, into: into,
                    prefetchingRules: prefetchingRules)
    }

    /// `lookupDownlink(_:)` for a burst of UE addresses, IPv4 and IPv6 mixed (see
    /// `lookupUplinkBurst`).
    @inlinable
    public func lookupDownlinkBurst(_ ues: UnsafePointer<IPAddress>, count: Int, into: UnsafeMutablePointer<SessionHandle?>,
                                    prefetchingRules: Bool = true) {
        lookupBurst(BurstKeys(base: UnsafeRawPointer(ues), form: BurstKeys.addresses), count: count, into: into,
                    prefetchingRules: prefetchingRules)
    }

    /// Keys a burst lookup handles in one pass of its stages: enough misses to keep the memory
    /// system busy, few enough that the lines an early stage prefetched are still in cache when
    /// the next stage reads them (a worker's receive burst is 32).
    public static let burstChunk = 32

    /// A burst's keys: where they are and their form.
    @frozen @usableFromInline
    struct BurstKeys {
        @usableFromInline let base: UnsafeRawPointer
        @usableFromInline let form: Int

        /// `UInt32` N3 TEIDs.
        @usableFromInline static let teids = 0
        /// `UInt32` UE IPv4 addresses.
        @usableFromInline static let ipv4 = 1
        /// `IPAddress` UE addresses, either family.
        @usableFromInline static let addresses = 2

        @inlinable @inline(__always)
        init(base: UnsafeRawPointer, form: Int) {
            self.base = base
            self.form = form
        }
    }

    /// What probing key `i` of a burst needs: the index, the record check and the tag. (`form`
    /// is a constant in each public entry point, so all but one case folds away.)
    @frozen @usableFromInline
    struct Probe {
        @usableFromInline var index: KeyIndex
        @usableFromInline var kind: Int
        @usableFromInline var key: UInt64
        @usableFromInline var low: UInt64
        @usableFromInline var tag: UInt32

        @inlinable @inline(__always)
        init(index: KeyIndex, kind: Int, key: UInt64, low: UInt64, tag: UInt32) {
            self.index = index
            self.kind = kind
            self.key = key
            self.low = low
            self.tag = tag
        }

        /// The key's hash (computed once per key by the first stage, and again only by the
        /// full probe of a key the fast path did not settle).
        @inlinable @inline(__always)
        var hash: UInt64 {
            kind == TableReader.ipv6Key ? KeyIndex.hash64(key) : KeyIndex.hash32(UInt32(truncatingIfNeeded: key))
        }
    }

    @inlinable @inline(__always)
    func probe(_ keys: BurstKeys, _ i: Int) -> Probe {
        switch keys.form {
        case BurstKeys.teids:
            let t = keys.base.assumingMemoryBound(to: UInt32.self)[i]
            return Probe(index: uplink, kind: TableReader.uplinkKey, key: UInt64(t), low: 0, tag: t)
        case BurstKeys.ipv4:
            let a = keys.base.assumingMemoryBound(to: UInt32.self)[i]
            return Probe(index: downlinkV4, kind: TableReader.ipv4Key, key: UInt64(a), low: 0, tag: a)
        default:
            let ue = keys.base.assumingMemoryBound(to: IPAddress.self)[i]
            if ue.isIPv4 {
                let a = ue.ipv4
                return Probe(index: downlinkV4, kind: TableReader.ipv4Key, key: UInt64(a), low: 0, tag: a)
            }
            return Probe(index: downlinkV6, kind: TableReader.ipv6Key, key: ue.high, low: ue.low,
                         tag: KeyIndex.tag64(ue.high))
        }
    }

    /// The three stages of a burst lookup (see `lookupUplinkBurst`). Between stages each key's
    /// two bucket numbers wait in a small scratch array on the stack (`burstChunk` words), so
    /// the hash is computed once per key.
    @inlinable @inline(__always)
    func lookupBurst(_ keys: BurstKeys, count: Int, into out: UnsafeMutablePointer<SessionHandle?>, prefetchingRules: Bool) {
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: TableReader.burstChunk) { scratch in
            let buckets = scratch.baseAddress.unsafelyUnwrapped
            var start = 0
            while start < count {
                let end = min(count, start &+ TableReader.burstChunk)
                // 1. Hash every key; prefetch its first bucket.
                var i = start
                while i < end {
                    let p = probe(keys, i)
                    let (first, second) = p.index.bucketPair(p.hash)
                    buckets[i &- start] = UInt64(truncatingIfNeeded: first) | UInt64(truncatingIfNeeded: second) << 32
                    prefetch(p.index.cells + first &* KeyIndex.cellsPerBucket, toL2: prefetchingRules)
                    i &+= 1
                }
                // 2. Probe each first bucket: prefetch the record its first tag match names (kept
                //    in `out`, not yet checked), or, with no match there, the second bucket.
                i = start
                while i < end {
                    let p = probe(keys, i)
                    let pair = buckets[i &- start]
                    let candidate = firstTagMatch(p.index, bucket: Int(truncatingIfNeeded: UInt32(truncatingIfNeeded: pair)),
                                                  tag: p.tag)
                    out[i] = candidate
                    if let c = candidate {
                        prefetch(c.record, toL2: prefetchingRules)
                    } else {
                        prefetch(p.index.cells + Int(truncatingIfNeeded: pair >> 32) &* KeyIndex.cellsPerBucket,
                                 toL2: prefetchingRules)
                    }
                    i &+= 1
                }
                // 3. Take a candidate whose record holds the key; otherwise the full probe (both
                //    buckets, the change counter). Prefetch the rule lines of what was found.
                i = start
                while i < end {
                    let p = probe(keys, i)
                    let found: SessionHandle?
                    if let c = out[i], holds(c.record, kind: p.kind, key: p.key, low: p.low) {
                        found = c
                    } else {
                        found = find(p.index, hash: p.hash, tag: p.tag, kind: p.kind, key: p.key, low: p.low)
                        out[i] = found
                    }
                    if prefetchingRules, let h = found { h.prefetchRules() }
                    i &+= 1
                }
                start = end
            }
        }
    }

    /// Prefetches for the burst stages. With the rule lines too (up to 4 per session), a burst
    /// of 32 puts ~190 lines in flight; prefetched into L1 they fill its few miss buffers and
    /// stall the stages' own loads, so then everything goes to L2 (at 1M sessions this took
    /// lookup+classify from ~130 to ~60–80 ns). Without rule lines, L1 prefetches are the faster
    /// ones (lookup alone ~41 against ~64 ns). Measurements: docs/BENCHMARKS.md.
    @inlinable @inline(__always)
    func prefetch(_ p: UnsafeRawPointer, toL2: Bool) {
        if toL2 { cprefetch_read_l2(p) } else { cprefetch_read(p) }
    }

    /// The record named by the first live cell of `bucket` with `tag` (unchecked: the caller
    /// checks the key in the record before taking it).
    @inlinable @inline(__always)
    func firstTagMatch(_ index: KeyIndex, bucket: Int, tag: UInt32) -> SessionHandle? {
        let base = index.cells + bucket &* KeyIndex.cellsPerBucket
        var k = 0
        while k < KeyIndex.cellsPerBucket {
            let cell = base[k].load(ordering: .acquiring)
            if UInt32(truncatingIfNeeded: cell >> 32) == tag && UInt32(truncatingIfNeeded: cell) != 0 {
                return SessionHandle(records + KeyIndex.record(cell))
            }
            k &+= 1
        }
        return nil
    }

    // MARK: Prefetching

    /// The cache line a lookup of `teid` reads first (its first bucket), for a caller that
    /// prefetches on its own (the burst lookups above do it all). A random lookup in 1M
    /// sessions is two DRAM misses (bucket, record), classification one or two more (the rule
    /// block).
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
