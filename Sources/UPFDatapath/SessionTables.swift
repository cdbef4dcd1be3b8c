import Synchronization
import UPFPackets
import UPFPolicy

/// Why `SessionTables.put` or `delete` refused a change. A refused change changes nothing.
public enum TableError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A new session, and `capacity` sessions are already there.
    case full(capacity: Int)
    /// No free session record or slot right now: retired versions wait for a reader to pass a
    /// quiescent point (a worker that stopped calling `quiescent()`, or a burst of updates larger
    /// than the spare records). Retry after the readers move on.
    case reclaimPending
    /// The key belongs to another session.
    case keyInUse(TableKey, ownerSEID: UInt64)
    /// No room for the key in its index (both buckets full and no short path of moves): not
    /// expected below capacity, reported rather than trapped.
    case indexFull(TableKey)
    case notFound(seid: UInt64)
    /// The compiled session is inconsistent (a pool range or index out of bounds, too many rules).
    case invalidSession(String)

    public var description: String {
        switch self {
        case .full(let capacity): "table full (\(capacity) sessions)"
        case .reclaimPending: "no free record until the workers pass a quiescent point"
        case .keyInUse(let key, let owner): "\(key) belongs to session \(owner)"
        case .indexFull(let key): "no room in the index for \(key)"
        case .notFound(let seid): "no session \(seid)"
        case .invalidSession(let why): "invalid compiled session: \(why)"
        }
    }
}

/// A lookup key of the tables.
public enum TableKey: Equatable, Sendable, CustomStringConvertible {
    case teid(UInt32)
    case ueIPv4(UInt32)
    /// The /64 (high 64 bits) of a UE IPv6 prefix.
    case ueIPv6(UInt64)

    public var description: String {
        switch self {
        case .teid(let t): "N3 TEID \(t)"
        case .ueIPv4(let a): "UE IPv4 \(IPAddress(ipv4: a))"
        case .ueIPv6(let h): "UE IPv6 \(IPAddress(high: h, low: 0))/64"
        }
    }
}

/// The session tables of the data path, and their single writer's (the control thread's) API.
///
/// Layout (all reserved at `init`, nothing allocated per put except the version's rule block):
/// - a slab of `capacity + spare` 128-byte `SessionRecord`s (one per session *version*);
/// - three lock-free indexes for the workers (`KeyIndex`: two-choice buckets of eight 8-byte atomic
///   cells, 2 × capacity cells each): N3 TEID → record, UE IPv4 → record, UE IPv6 /64 → record;
/// - a control-only SEID index (16-byte cells, 2 × capacity slots, backward-shift deletion);
/// - free stacks of records and of stable session slots, and a FIFO of retired records;
/// - the QSBR epoch, the indexes' change counters and one counter per reader, a cache line each.
/// Each version's rules and pools (ports, prefixes, rules, QoS, counter indices) are one
/// contiguous block cut by `put` from the rule-block chunks (`RuleBlockAllocator`), freed with
/// its record. The record slab, the reader indexes and large rule-block chunks are on 2 MiB
/// transparent huge pages where the system allows (`LargeBlock`).
///
/// Updates (RCU): `put` writes a *free* record (and its rule block) with plain stores, then
/// publishes it with release stores into the index cells (replacing the old version's cells in
/// place, so a reader finds either the old or the new version, never neither and never a mix).
/// The old record is retired with token `t = epoch.wrappingAdd(1)` (sequentially consistent),
/// taken after all its cells were unlinked. `reclaim()` frees the retired records whose `t` is
/// ≤ every reader's announced epoch.
///
/// Memory ordering. Reader: lookups load cells with acquire, read the record with plain loads;
/// `quiescent()` loads the epoch (acquire) and stores it into its counter (release). Writer:
/// `reclaim` loads the counters with acquire after a sequentially consistent fence.
/// 1. Reads of a record by a reader happen before its reuse: the reader's release store of an
///    epoch ≥ t is read by the writer's acquire load, so everything the reader did before that
///    `quiescent()` — including any use of the old record — happens before the free and the
///    rewrite that follow in the writer.
/// 2. After that `quiescent()` the reader cannot reach the old record: it read an epoch ≥ t
///    with acquire from the writer's RMW (all epoch writes are RMWs of the one writer, so a
///    release sequence), and the unlink stores precede that RMW in the writer; so its later
///    acquire loads of the cells see the unlink (or later) stores.
/// 3. A new version is complete when seen: its plain stores precede the release store of the
///    cell, which the reader's acquire load reads.
/// 4. `offline()`/`online()`: `online` stores its counter and fences (sequentially
///    consistent); `reclaim` fences before reading counters. Either `reclaim` sees the counter
///    (an epoch < t: it waits) or the reader's later loads see the unlink (Dekker).
/// 5. Moves inside an index (two-choice displacement, rare) are covered by the index's change
///    counter: see `KeyIndex`.
/// A put changes up to three cells, one after another: a packet looked up by TEID may already
/// see the new version while one looked up by UE address still sees the old one; each lookup
/// sees one whole version, and by any one key a reader never goes back to an older version.
/// Index cells themselves are reused at once (a freed cell can take another key immediately):
/// a cell is one atomic word, a reader checks the key in the record it names, and that record
/// cannot be reused while the reader may hold it (1–2), so no reader classifies against a
/// record of another session.
///
/// Threading: all methods of this class are for one thread at a time (the control thread);
/// `TableReader`s are for the workers. The tables must outlive every reader in use.
public final class SessionTables: @unchecked Sendable {
    /// Sessions the tables hold at most.
    public let capacity: Int
    /// Extra records (and slots) for versions (and sessions) retired but not yet reclaimed.
    public let spareRecords: Int
    /// Stable session slots are 0..<slotCount (`capacity + spareRecords`): a deleted session's
    /// slot is reused only after reclamation (spare slots cover the wait, like spare records).
    /// Size per-session arrays (counters, meters) with this.
    public var slotCount: Int { recordCount }
    /// The MBR meters indexed by this table's slots (`resetMeters`); set once before the first
    /// put by whoever runs the data path.
    public var meters: MeterTable?
    public let readerCount: Int
    /// Live sessions.
    public private(set) var count = 0

    let recordCount: Int
    let records: UnsafeMutablePointer<SessionRecord>
    let uplink: KeyIndex
    let downlinkV4: KeyIndex
    let downlinkV6: KeyIndex
    let recordBlock: LargeBlock
    let indexBlock: LargeBlock

    struct SEIDCell {
        var seid: UInt64
        /// record + 1; 0 = empty.
        var record: UInt32
        var slot: UInt32
    }
    let seidCells: UnsafeMutablePointer<SEIDCell>
    let seidSlots: Int

    let freeRecords: UnsafeMutablePointer<UInt32>
    var freeRecordCount = 0
    let freeSlots: UnsafeMutablePointer<UInt32>
    var freeSlotCount = 0

    struct Retired {
        var token: UInt64
        var record: UInt32
        /// slot + 1 when the session was deleted (the slot is freed with the record); 0 otherwise.
        var slotPlusOne: UInt32
    }
    let retired: UnsafeMutablePointer<Retired>
    var retiredHead = 0
    var retiredCount = 0

    /// Epoch in its own cache line, then one line per reader counter.
    let qsbr: UnsafeMutableRawPointer
    let epoch: UnsafeMutablePointer<Atomic<UInt64>>

    var generation: UInt32 = 0
    /// Rule blocks allocated and not yet freed (live versions + retired ones).
    public private(set) var ruleBlocks = 0
    /// Where rule blocks come from (control thread only).
    var ruleAllocator: RuleBlockAllocator

    /// Bytes reserved for rule blocks so far (whole chunks; kept until the tables go away).
    public var ruleBlockBytes: Int { ruleAllocator.reservedBytes }

    // MARK: Sizing

    static let recordSize = 128

    static func defaultSpare(_ capacity: Int) -> Int { max(64, capacity / 16) }
    /// Cells of each reader index: 2 × capacity, whole buckets, at least two buckets.
    static func indexSlots(_ capacity: Int) -> Int {
        max(2 * KeyIndex.cellsPerBucket, (2 * capacity + KeyIndex.cellsPerBucket - 1) / KeyIndex.cellsPerBucket * KeyIndex.cellsPerBucket)
    }

    /// Lines of the control block: epoch, three change counters, then one per reader.
    static let readerLine0 = 4

    /// Bytes reserved for `capacity` sessions, excluding rule blocks and the per-reader lines.
    public static func reservedBytes(capacity: Int, spareRecords: Int? = nil) -> Int {
        let records = capacity + (spareRecords ?? defaultSpare(capacity))
        let slots = indexSlots(capacity)
        return LargeBlock.footprint(records * recordSize)                  // record slab
            + LargeBlock.footprint(3 * slots * MemoryLayout<UInt64>.stride)  // TEID, IPv4, IPv6 indexes
            + max(8, 2 * capacity) * MemoryLayout<SEIDCell>.stride  // SEID index
            + records * MemoryLayout<UInt32>.stride        // free records
            + records * MemoryLayout<UInt32>.stride        // free slots
            + records * MemoryLayout<Retired>.stride       // retire FIFO
    }

    /// Bytes per session (without rules) at `capacity`: `reservedBytes / capacity`.
    public static func bytesPerSession(capacity: Int, spareRecords: Int? = nil) -> Double {
        Double(reservedBytes(capacity: capacity, spareRecords: spareRecords)) / Double(capacity)
    }

    // MARK: Life cycle

    /// Reserves everything for `capacity` sessions and `readers` worker threads. Readers start
    /// online at epoch 0: until a reader calls `quiescent()` (or `offline()`) nothing it may
    /// have seen is freed.
    public convenience init(capacity: Int, readers: Int, spareRecords: Int? = nil) {
        self.init(capacity: capacity, readers: readers, spareRecords: spareRecords,
                  indexCells: SessionTables.indexSlots(capacity))
    }

    /// `indexCells` per reader index (tests: a fuller index than the default 2 × capacity).
    init(capacity: Int, readers: Int, spareRecords: Int?, indexCells cellsPerIndex: Int) {
        precondition(capacity >= 1 && capacity <= 1 << 30, "capacity must be 1...2^30")
        precondition(readers >= 0 && readers <= 4096, "readers must be 0...4096")
        self.capacity = capacity
        self.spareRecords = max(1, spareRecords ?? SessionTables.defaultSpare(capacity))
        self.readerCount = readers
        recordCount = capacity + self.spareRecords
        ruleAllocator = RuleBlockAllocator(capacity: capacity)

        // The two arrays the workers read at random: on huge pages when large (see LargeBlock).
        recordBlock = LargeBlock(byteCount: recordCount * SessionTables.recordSize)
        records = recordBlock.base.bindMemory(to: SessionRecord.self, capacity: recordCount)

        let slots = max(2, cellsPerIndex / KeyIndex.cellsPerBucket) * KeyIndex.cellsPerBucket
        indexBlock = LargeBlock(byteCount: 3 * slots * 8)   // zeroed: 0 = empty
        let cells = indexBlock.base.bindMemory(to: Atomic<UInt64>.self, capacity: 3 * slots)

        let qsbrBytes = 64 * (SessionTables.readerLine0 + readers)
        let control = UnsafeMutableRawPointer.allocate(byteCount: qsbrBytes, alignment: 64)
        control.initializeMemory(as: UInt8.self, repeating: 0, count: qsbrBytes)
        for line in 0..<(SessionTables.readerLine0 + readers) {
            _ = (control + 64 * line).bindMemory(to: Atomic<UInt64>.self, capacity: 1)
        }
        qsbr = control
        epoch = control.assumingMemoryBound(to: Atomic<UInt64>.self)
        func line(_ i: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
            (control + 64 * i).assumingMemoryBound(to: Atomic<UInt64>.self)
        }
        let buckets = slots / KeyIndex.cellsPerBucket
        uplink = KeyIndex(cells: cells, buckets: buckets, changes: line(1))
        downlinkV4 = KeyIndex(cells: cells + slots, buckets: buckets, changes: line(2))
        downlinkV6 = KeyIndex(cells: cells + 2 * slots, buckets: buckets, changes: line(3))

        seidSlots = max(8, 2 * capacity)
        seidCells = .allocate(capacity: seidSlots)
        seidCells.initialize(repeating: SEIDCell(seid: 0, record: 0, slot: 0), count: seidSlots)

        freeRecords = .allocate(capacity: recordCount)
        for i in 0..<recordCount { freeRecords[i] = UInt32(recordCount - 1 - i) }
        freeRecordCount = recordCount
        freeSlots = .allocate(capacity: recordCount)
        for i in 0..<recordCount { freeSlots[i] = UInt32(recordCount - 1 - i) }
        freeSlotCount = recordCount
        retired = .allocate(capacity: recordCount)
    }

    deinit {
        // Every version still allocated: live ones and retired ones.
        for i in 0..<seidSlots where seidCells[i].record != 0 {
            freeBlock(Int(seidCells[i].record) - 1)
        }
        var k = 0
        while k < retiredCount {
            freeBlock(Int(retired[(retiredHead + k) % recordCount].record))
            k += 1
        }
        ruleAllocator.releaseAll()
        recordBlock.free()
        indexBlock.free()
        seidCells.deallocate()
        freeRecords.deallocate()
        freeSlots.deallocate()
        retired.deallocate()
        qsbr.deallocate()
    }

    /// The reader for worker `index` (0..<readers). Call once per worker; keep it.
    public func reader(_ index: Int) -> TableReader {
        precondition(index >= 0 && index < readerCount, "reader index out of range")
        return TableReader(records: UnsafePointer(records), uplink: uplink, downlinkV4: downlinkV4,
                           downlinkV6: downlinkV6, epoch: epoch, announced: counter(index), index: index)
    }

    func counter(_ reader: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        (qsbr + 64 * (SessionTables.readerLine0 + reader)).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    // MARK: Queries (control side)

    public func contains(seid: UInt64) -> Bool { seidFind(seid) != nil }

    /// Retired versions not yet freed.
    public var pendingReclaim: Int { retiredCount }

    /// Records free for new versions now (without reclaiming).
    public var freeRecordsNow: Int { freeRecordCount }

    /// Bytes this instance reserved (excluding rule blocks).
    public var reservedBytes: Int {
        SessionTables.reservedBytes(capacity: capacity, spareRecords: spareRecords)
            + 64 * (SessionTables.readerLine0 + readerCount)
    }

    /// Live cells of the three reader indexes, and how many of them sit in their key's second
    /// bucket (O(capacity); diagnostics).
    public func indexCensus() -> (live: Int, secondBucket: Int) {
        var live = 0, second = 0
        for (index, hashOf) in [(uplink, hashUplink), (downlinkV4, hashV4), (downlinkV6, hashV6)] {
            let c = index.census(hashOfRecord: hashOf)
            live += c.live
            second += c.secondBucket
        }
        return (live, second)
    }

    /// Moves made in the reader indexes so far (cuckoo displacements).
    public var indexMoves: UInt64 {
        uplink.changes.pointee.load(ordering: .relaxed) + downlinkV4.changes.pointee.load(ordering: .relaxed)
            + downlinkV6.changes.pointee.load(ordering: .relaxed)
    }

    /// Called (on the control thread, inside `reclaim`) with each session slot freed for reuse:
    /// no reader can reach the slot's last session any more, so per-slot state (the rule
    /// counters) can be reset before another session gets the slot. See `DatapathCounters.resetSlot`.
    public var slotReleased: ((Int) -> Void)?

    /// The rule ids of the session's current version in evaluation order (control thread only:
    /// the writer reads what it wrote). nil when there is no such session.
    public func ruleIDs(seid: UInt64) -> [UInt16]? {
        guard let cell = seidFind(seid) else { return nil }
        let handle = SessionHandle(UnsafePointer(records + Int(seidCells[cell].record) - 1))
        return (0..<handle.ruleCount).map { handle.rule($0).id }
    }

    /// The stable slot of a session (see `SessionHandle.slot`).
    public func slot(seid: UInt64) -> Int? {
        seidFind(seid).map { Int(seidCells[$0].slot) }
    }

    // MARK: SEID index (control only, plain memory)

    func seidHome(_ seid: UInt64) -> Int {
        Int(truncatingIfNeeded: ((KeyIndex.hash64(seid) >> 32) &* UInt64(seidSlots)) >> 32)
    }

    func seidFind(_ seid: UInt64) -> Int? {
        var i = seidHome(seid)
        while seidCells[i].record != 0 {
            if seidCells[i].seid == seid { return i }
            i = i + 1 == seidSlots ? 0 : i + 1
        }
        return nil
    }

    func seidInsert(_ seid: UInt64, record: Int, slot: UInt32) {
        var i = seidHome(seid)
        while seidCells[i].record != 0 { i = i + 1 == seidSlots ? 0 : i + 1 }
        seidCells[i] = SEIDCell(seid: seid, record: UInt32(record + 1), slot: slot)
    }

    /// Backward-shift deletion (Knuth 6.4 Algorithm R): no tombstones in this index.
    func seidRemove(at position: Int) {
        var hole = position
        var j = position
        while true {
            j = j + 1 == seidSlots ? 0 : j + 1
            if seidCells[j].record == 0 { break }
            let h = seidHome(seidCells[j].seid)
            // The entry at j may move to the hole unless its home lies cyclically in (hole, j].
            let stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j)
            if !stays {
                seidCells[hole] = seidCells[j]
                hole = j
            }
        }
        seidCells[hole] = SEIDCell(seid: 0, record: 0, slot: 0)
    }

    // MARK: Reader-index helpers (writer side)

    func findUplink(_ teid: UInt32) -> Int? {
        uplink.find(hash: KeyIndex.hash32(teid), tag: teid) { self.records[$0].n3TEID == teid }
    }

    func findV4(_ a: UInt32) -> Int? {
        downlinkV4.find(hash: KeyIndex.hash32(a), tag: a) {
            self.records[$0].ueIPv4 == a && self.records[$0].flags & SessionRecord.hasIPv4 != 0
        }
    }

    func findV6(_ high: UInt64) -> Int? {
        downlinkV6.find(hash: KeyIndex.hash64(high), tag: KeyIndex.tag64(high)) {
            self.records[$0].ueIPv6.high == high && self.records[$0].flags & SessionRecord.hasIPv6 != 0
        }
    }

    func hashUplink(_ r: Int) -> UInt64 { KeyIndex.hash32(records[r].n3TEID) }
    func hashV4(_ r: Int) -> UInt64 { KeyIndex.hash32(records[r].ueIPv4) }
    func hashV6(_ r: Int) -> UInt64 { KeyIndex.hash64(records[r].ueIPv6.high) }

    // MARK: Updates

    /// Checks that `put(session)` would succeed now, without changing anything but possibly
    /// reclaiming. (For a batch, check each change against the state the earlier ones leave.)
    public func check(_ session: CompiledSession) throws(TableError) {
        _ = try prepare(session)
    }

    /// What `put` found out before changing anything.
    struct Plan {
        var seidCell: Int?
        var oldRecord: Int?
    }

    func prepare(_ s: CompiledSession) throws(TableError) -> Plan {
        try SessionTables.validate(s)
        var plan = Plan()
        if let cell = seidFind(s.seid) {
            plan.seidCell = cell
            plan.oldRecord = Int(seidCells[cell].record) - 1
        } else if count >= capacity {
            throw .full(capacity: capacity)
        }
        func owner(_ position: Int?, in index: KeyIndex) -> UInt64? {
            guard let p = position else { return nil }
            let r = KeyIndex.record(index.cells[p].load(ordering: .relaxed))
            return records[r].seid == s.seid ? nil : records[r].seid
        }
        if let o = owner(findUplink(s.n3.teid), in: uplink) { throw .keyInUse(.teid(s.n3.teid), ownerSEID: o) }
        if let a = s.ueIPv4, let o = owner(findV4(a), in: downlinkV4) { throw .keyInUse(.ueIPv4(a), ownerSEID: o) }
        if let p = s.ueIPv6, let o = owner(findV6(p.high), in: downlinkV6) {
            throw .keyInUse(.ueIPv6(p.high), ownerSEID: o)
        }
        // Room for keys that are new to their index (a replaced key reuses its cell).
        let old = plan.oldRecord.map { records[$0] }
        if old?.n3TEID != s.n3.teid,
           uplink.plan(hash: KeyIndex.hash32(s.n3.teid), hashOfRecord: hashUplink) == nil {
            throw .indexFull(.teid(s.n3.teid))
        }
        if let a = s.ueIPv4, old.map({ $0.flags & SessionRecord.hasIPv4 == 0 || $0.ueIPv4 != a }) ?? true,
           downlinkV4.plan(hash: KeyIndex.hash32(a), hashOfRecord: hashV4) == nil {
            throw .indexFull(.ueIPv4(a))
        }
        if let p = s.ueIPv6, old.map({ $0.flags & SessionRecord.hasIPv6 == 0 || $0.ueIPv6.high != p.high }) ?? true,
           downlinkV6.plan(hash: KeyIndex.hash64(p.high), hashOfRecord: hashV6) == nil {
            throw .indexFull(.ueIPv6(p.high))
        }
        if freeRecordCount == 0 || (plan.oldRecord == nil && freeSlotCount == 0) { reclaim() }
        if freeRecordCount == 0 || (plan.oldRecord == nil && freeSlotCount == 0) { throw .reclaimPending }
        return plan
    }

    static func validate(_ s: CompiledSession) throws(TableError) {
        guard s.rules.count <= Int(UInt16.max) else { throw .invalidSession("more than 65535 rules") }
        guard s.prefixes.count <= Int(UInt16.max), s.ports.count <= Int(UInt16.max),
              s.counters.count <= Int(UInt16.max), s.qos.count < Int(CompiledRule.noQoS) else {
            throw .invalidSession("a pool has more than 65535 entries")
        }
        if s.ueIPv6 != nil, !(64...128).contains(s.ueIPv6PrefixLength) {
            throw .invalidSession("IPv6 prefix length \(s.ueIPv6PrefixLength) is not 64...128")
        }
        func inside(_ r: CompiledPoolRange, _ n: Int) -> Bool { Int(r.start) + Int(r.count) <= n }
        for (i, r) in s.rules.enumerated() {
            guard inside(r.sourcePrefixes, s.prefixes.count), inside(r.destinationPrefixes, s.prefixes.count),
                  inside(r.sourcePorts, s.ports.count), inside(r.destinationPorts, s.ports.count),
                  inside(r.counters, s.counters.count),
                  r.qos == CompiledRule.noQoS || Int(r.qos) < s.qos.count else {
                throw .invalidSession("rule \(i) (id \(r.id)) points outside the session's pools")
            }
        }
        for i in s.rules.indices.dropFirst() where s.rules[i - 1].precedence > s.rules[i].precedence {
            throw .invalidSession("rules are not in precedence order")
        }
    }

    /// Adds a session or replaces its current version. O(1): one record, one rule block, at
    /// most three index cells changed with release stores, the old version retired. Workers see
    /// the old version or the new one, never a mix and never neither.
    public func put(_ s: CompiledSession) throws(TableError) {
        let plan = try prepare(s)

        // A free record: no reader can reach it (it was reclaimed or never used).
        freeRecordCount -= 1
        let r = Int(freeRecords[freeRecordCount])
        let slot: UInt32
        if let old = plan.oldRecord {
            slot = records[old].slot
        } else {
            freeSlotCount -= 1
            slot = freeSlots[freeSlotCount]
        }
        generation &+= 1
        write(s, into: r, slot: slot)
        resetMeters(of: s, slot: Int(slot), previous: plan.oldRecord)

        // Publish: replace the old version's cells in place where the key is unchanged, insert
        // new keys, then unlink keys the new version no longer has.
        let old = plan.oldRecord.map { records[$0] }
        let new = records[r]
        if let o = old, let p = findUplink(o.n3TEID), o.n3TEID == new.n3TEID {
            uplink.replace(at: p, tag: new.n3TEID, record: r)
        } else {
            uplink.insert(hash: KeyIndex.hash32(new.n3TEID), tag: new.n3TEID, record: r, hashOfRecord: hashUplink)
            if let o = old, let p = findUplink(o.n3TEID) { uplink.remove(at: p) }
        }
        let oldV4 = old.flatMap { $0.flags & SessionRecord.hasIPv4 != 0 ? $0.ueIPv4 : nil }
        let newV4 = new.flags & SessionRecord.hasIPv4 != 0 ? new.ueIPv4 : nil
        if let o = oldV4, o == newV4, let p = findV4(o) {
            downlinkV4.replace(at: p, tag: o, record: r)
        } else {
            if let n = newV4 { downlinkV4.insert(hash: KeyIndex.hash32(n), tag: n, record: r, hashOfRecord: hashV4) }
            if let o = oldV4, let p = findV4(o) { downlinkV4.remove(at: p) }
        }
        let oldV6 = old.flatMap { $0.flags & SessionRecord.hasIPv6 != 0 ? $0.ueIPv6.high : nil }
        let newV6 = new.flags & SessionRecord.hasIPv6 != 0 ? new.ueIPv6.high : nil
        if let o = oldV6, o == newV6, let p = findV6(o) {
            downlinkV6.replace(at: p, tag: KeyIndex.tag64(o), record: r)
        } else {
            if let n = newV6 {
                downlinkV6.insert(hash: KeyIndex.hash64(n), tag: KeyIndex.tag64(n), record: r, hashOfRecord: hashV6)
            }
            if let o = oldV6, let p = findV6(o) { downlinkV6.remove(at: p) }
        }

        if let cell = plan.seidCell, let o = plan.oldRecord {
            seidCells[cell].record = UInt32(r + 1)
            retire(o, freeingSlot: nil)
        } else {
            seidInsert(s.seid, record: r, slot: slot)
            count += 1
        }
    }

    /// Restarts the MBR meters a new version cannot inherit, before it is published: all of a
    /// slot a session newly takes, and those of a replaced session whose QER (id or rates)
    /// assigned to the meter changed. (A worker still on the previous version may charge a
    /// reset meter with the old rate until its next quiescent point: at most a burst.)
    func resetMeters(of s: CompiledSession, slot: Int, previous: Int?) {
        guard let meters else { return }
        guard let old = previous else {
            meters.reset(slot: slot)
            return
        }
        let oldQoS = records[old].qos.map { UnsafeBufferPointer(start: $0, count: Int(records[old].qosCount)) }
            ?? UnsafeBufferPointer(start: nil, count: 0)
        for m in 0..<CompiledQoS.maxMetersPerSession {
            let before = oldQoS.first { Int($0.meter) == m }
            let after = s.qos.first { Int($0.meter) == m }
            let same = before?.id == after?.id && before?.mbrUplinkKbps == after?.mbrUplinkKbps
                && before?.mbrDownlinkKbps == after?.mbrDownlinkKbps
            if !same { meters.reset(slot: slot, meter: m) }
        }
    }

    /// Removes a session: its cells are unlinked at once, its record, rule block and slot are
    /// freed once every reader has passed a quiescent point. O(1).
    public func delete(seid: UInt64) throws(TableError) {
        guard let cell = seidFind(seid) else { throw .notFound(seid: seid) }
        let r = Int(seidCells[cell].record) - 1
        let slot = seidCells[cell].slot
        let rec = records[r]
        if let p = findUplink(rec.n3TEID) { uplink.remove(at: p) }
        if rec.flags & SessionRecord.hasIPv4 != 0, let p = findV4(rec.ueIPv4) { downlinkV4.remove(at: p) }
        if rec.flags & SessionRecord.hasIPv6 != 0, let p = findV6(rec.ueIPv6.high) { downlinkV6.remove(at: p) }
        seidRemove(at: cell)
        count -= 1
        retire(r, freeingSlot: slot)
    }

    /// Fills free record `r` and its rule block (plain stores: nothing can reach it yet).
    func write(_ s: CompiledSession, into r: Int, slot: UInt32) {
        // The block: ports | prefixes | rules | QoS | counter indices, each aligned for its type
        // (8 bytes at most: rules are not line-aligned). What classification reads comes first
        // and is contiguous, small pools before the rules, so the common case — the first
        // rule, or one of the first few, with a prefix and a port range or two — reads one or
        // two lines: with 2 prefixes and 2 port ranges, the pools are 72 bytes and rule 0's
        // match fields end in line 1 (rules first, it took line 0 plus the pools' lines 4–5).
        func align(_ n: Int, _ a: Int) -> Int { (n + a - 1) & ~(a - 1) }
        let prefixesAt = align(s.ports.count * MemoryLayout<CompiledPortRange>.stride,
                               MemoryLayout<CompiledPrefix>.alignment)
        let rulesAt = align(prefixesAt + s.prefixes.count * MemoryLayout<CompiledPrefix>.stride,
                            MemoryLayout<CompiledRule>.alignment)
        let rulesEnd = rulesAt + s.rules.count * MemoryLayout<CompiledRule>.stride
        let qosAt = align(rulesEnd, MemoryLayout<CompiledQoS>.alignment)
        let countersAt = align(qosAt + s.qos.count * MemoryLayout<CompiledQoS>.stride,
                               MemoryLayout<UInt16>.alignment)
        let total = countersAt + s.counters.count * MemoryLayout<UInt16>.stride

        var rec = SessionRecord(
            seid: s.seid, block: nil, n3TEID: s.n3.teid, ueIPv4: s.ueIPv4 ?? 0, ruleCount: UInt16(s.rules.count),
            flags: 0, hotLines: UInt8(min(255, (rulesEnd + 63) / 64)), slot: slot, ueIPv6: .zero, ueIPv6LowMask: 0,
            rulesAt: UInt32(rulesAt), prefixesAt: UInt32(prefixesAt), qos: nil, counters: nil,
            n3Address: s.n3.address, gnbAddress: s.gnb?.address ?? .zero, generation: generation,
            gnbTEID: s.gnb?.teid ?? 0, blockBytes: 0, defaultQFI: s.defaultQFI)
        if s.ueIPv4 != nil { rec.flags |= SessionRecord.hasIPv4 }
        if let p = s.ueIPv6 {
            let mask = CompiledPrefix(address: .zero, length: Int(s.ueIPv6PrefixLength)).mask
            rec.flags |= SessionRecord.hasIPv6
            rec.ueIPv6 = IPAddress(high: p.high & mask.high, low: p.low & mask.low)
            rec.ueIPv6LowMask = mask.low
        }
        if s.gnb != nil { rec.flags |= SessionRecord.hasGNB }

        if total > 0 {
            let block = ruleAllocator.allocate(byteCount: total)
            func copy<T>(_ items: [T], at offset: Int) -> UnsafePointer<T>? {
                guard !items.isEmpty else { return nil }
                let p = (block + offset).bindMemory(to: T.self, capacity: items.count)
                items.withUnsafeBufferPointer { p.initialize(from: $0.baseAddress!, count: items.count) }
                return UnsafePointer(p)
            }
            _ = copy(s.ports, at: 0)
            _ = copy(s.prefixes, at: prefixesAt)
            _ = copy(s.rules, at: rulesAt)
            rec.qos = copy(s.qos, at: qosAt)
            rec.qosCount = UInt16(truncatingIfNeeded: s.qos.count)
            rec.counters = copy(s.counters, at: countersAt)
            rec.block = UnsafeRawPointer(block)
            rec.blockBytes = UInt32(total)
            ruleBlocks += 1
        }
        records[r] = rec
    }

    func freeBlock(_ r: Int) {
        guard let block = records[r].block else { return }
        ruleAllocator.free(UnsafeMutableRawPointer(mutating: block), byteCount: Int(records[r].blockBytes))
        records[r].block = nil
        ruleBlocks -= 1
    }

    func retire(_ r: Int, freeingSlot slot: UInt32?) {
        // Taken after every cell of `r` was unlinked (release stores above, then this RMW).
        let token = epoch.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
        precondition(retiredCount < recordCount)
        retired[(retiredHead + retiredCount) % recordCount] =
            Retired(token: token, record: UInt32(r), slotPlusOne: slot.map { $0 + 1 } ?? 0)
        retiredCount += 1
    }

    /// Frees every retired version that all readers have passed (a reader that announced an
    /// epoch ≥ its token, or is offline). Returns how many were freed. O(freed + readers).
    @discardableResult
    public func reclaim() -> Int {
        guard retiredCount > 0 else { return 0 }
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        var safe = UInt64.max
        for i in 0..<readerCount {
            safe = min(safe, counter(i).pointee.load(ordering: .acquiring))
        }
        var freed = 0
        while retiredCount > 0 {
            let e = retired[retiredHead]
            guard e.token <= safe else { break }
            let r = Int(e.record)
            freeBlock(r)
            freeRecords[freeRecordCount] = e.record
            freeRecordCount += 1
            if e.slotPlusOne != 0 {
                slotReleased?(Int(e.slotPlusOne - 1))
                freeSlots[freeSlotCount] = e.slotPlusOne - 1
                freeSlotCount += 1
            }
            retiredHead = retiredHead + 1 == recordCount ? 0 : retiredHead + 1
            retiredCount -= 1
            freed += 1
        }
        return freed
    }
}
