import Synchronization

/// A lock-free hash index over raw memory for the workers: key → record index.
///
/// Bucketized two-choice (cuckoo) hashing: 8 cells of 8 bytes per bucket (one 64-byte cache line),
/// each key has two candidate buckets, so a lookup reads at most two cache lines. There are no
/// probe chains, hence no tombstones: a delete stores 0 and the cell is free at once. Cells =
/// 2 × capacity (load ≤ 0.5, average 4 of 8 cells used per bucket), so an insert almost always
/// finds a free cell in its first bucket; when both buckets are full, a breadth-first search
/// finds a short path of moves ("cuckoo displacement", bounded: at most `maxSearch` buckets).
///
/// Cell: `tag << 32 | (record + 1)`; 0 = free. The tag is the key itself for 32-bit keys (TEID,
/// IPv4) and a 32-bit digest for the IPv6 /64; either way the reader checks the full key in the
/// record before taking it.
///
/// Readers and moves: a move writes the entry into its other bucket (release), increments the
/// index's change counter (release), then overwrites the old cell (release). A reader loads the
/// counter (acquire) before probing and, only when it found nothing, again after; if it changed,
/// it probes again. A reader that saw the old cell overwritten sees the increment (acquire chain),
/// and a reader whose first load already saw the increment sees the copy, so a key that is in
/// the index is never missed because of a move. Readers never wait for the writer: a retry
/// happens only when a move completed during the reader's own probe.
@frozen @usableFromInline
struct KeyIndex {
    @usableFromInline let cells: UnsafeMutablePointer<Atomic<UInt64>>
    @usableFromInline let buckets: Int
    /// Incremented by every move (own cache line).
    @usableFromInline let changes: UnsafeMutablePointer<Atomic<UInt64>>

    @usableFromInline static let cellsPerBucket = 8
    static let maxSearch = 512

    init(cells: UnsafeMutablePointer<Atomic<UInt64>>, buckets: Int, changes: UnsafeMutablePointer<Atomic<UInt64>>) {
        precondition(buckets >= 2)
        self.cells = cells
        self.buckets = buckets
        self.changes = changes
    }

    var cellCount: Int { buckets * KeyIndex.cellsPerBucket }

    // MARK: Hashing

    @inlinable @inline(__always)
    static func hash32(_ key: UInt32) -> UInt64 {
        mix(UInt64(key))
    }

    @inlinable @inline(__always)
    static func hash64(_ key: UInt64) -> UInt64 {
        mix(key)
    }

    /// A 64-bit finalizer (splitmix64): both halves of the result are well mixed.
    @inlinable @inline(__always)
    static func mix(_ key: UInt64) -> UInt64 {
        var z = key &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inlinable @inline(__always)
    static func tag64(_ key: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: key ^ (key >> 32))
    }

    @inlinable @inline(__always)
    static func cell(tag: UInt32, record: Int) -> UInt64 {
        UInt64(tag) << 32 | UInt64(truncatingIfNeeded: record &+ 1)
    }

    /// The record a live cell names.
    @inlinable @inline(__always)
    static func record(_ cell: UInt64) -> Int {
        Int(UInt32(truncatingIfNeeded: cell)) &- 1
    }

    /// The two candidate buckets of a hash (multiply-shift reduction of each half: any bucket
    /// count works).
    @inlinable @inline(__always)
    func bucketPair(_ hash: UInt64) -> (Int, Int) {
        let n = UInt64(truncatingIfNeeded: buckets)
        let first = Int(truncatingIfNeeded: ((hash >> 32) &* n) >> 32)
        var second = Int(truncatingIfNeeded: ((hash & 0xFFFF_FFFF) &* n) >> 32)
        if second == first { second = first &+ 1 == buckets ? 0 : first &+ 1 }
        return (first, second)
    }

    // MARK: Writer side (the control thread only)

    /// Position of the live cell with `tag` whose record satisfies `isKey`.
    func find(hash: UInt64, tag: UInt32, _ isKey: (Int) -> Bool) -> Int? {
        let (a, b) = bucketPair(hash)
        for bucket in [a, b] {
            for p in bucket * KeyIndex.cellsPerBucket..<(bucket + 1) * KeyIndex.cellsPerBucket {
                let c = cells[p].load(ordering: .relaxed)
                if c != 0, UInt32(truncatingIfNeeded: c >> 32) == tag, isKey(KeyIndex.record(c)) { return p }
            }
        }
        return nil
    }

    func freeCell(in bucket: Int) -> Int? {
        for p in bucket * KeyIndex.cellsPerBucket..<(bucket + 1) * KeyIndex.cellsPerBucket
        where cells[p].load(ordering: .relaxed) == 0 {
            return p
        }
        return nil
    }

    /// A step of a displacement path: the entry at `cell` moves into the bucket of this node.
    struct Node {
        var bucket: Int
        var parent: Int
        var cell: Int
    }

    /// Where a new key goes: the free cell to fill first, and when that cell is not in one of the
    /// key's buckets, the moves that bring a free cell there: the entry at `source` (in bucket
    /// `nodes[node].bucket`) moves to `free`, then each node's `cell` moves into the cell its child
    /// vacated, up to a root node (one of the key's buckets).
    struct Placement {
        var free: Int
        var nodes: [Node] = []
        var source = -1
        var node = -1
    }

    /// Where a new key of `hash` goes: a free cell of one of its buckets, or a path of moves
    /// (breadth-first, at most `maxSearch` buckets). `hashOfRecord` gives the hash of the key of
    /// the entry of a record in this index. Nil when there is no room (practically never at a
    /// load of 0.5).
    func plan(hash: UInt64, hashOfRecord: (Int) -> UInt64) -> Placement? {
        let (a, b) = bucketPair(hash)
        if let f = freeCell(in: a) ?? freeCell(in: b) { return Placement(free: f) }
        var nodes = [Node(bucket: a, parent: -1, cell: -1), Node(bucket: b, parent: -1, cell: -1)]
        var seen: Set<Int> = [a, b]
        var i = 0
        while i < nodes.count && nodes.count < KeyIndex.maxSearch {
            let node = nodes[i]
            for p in node.bucket * KeyIndex.cellsPerBucket..<(node.bucket + 1) * KeyIndex.cellsPerBucket {
                let c = cells[p].load(ordering: .relaxed)
                let (x, y) = bucketPair(hashOfRecord(KeyIndex.record(c)))
                let other = x == node.bucket ? y : x
                if let f = freeCell(in: other) {
                    return Placement(free: f, nodes: nodes, source: p, node: i)
                }
                if !seen.contains(other) {
                    seen.insert(other)
                    nodes.append(Node(bucket: other, parent: i, cell: p))
                }
            }
            i += 1
        }
        return nil
    }

    /// Inserts a new cell (the caller checked the key is absent and that `plan` found room).
    /// The release stores publish the record.
    func insert(hash: UInt64, tag: UInt32, record: Int, hashOfRecord: (Int) -> UInt64) {
        guard let placement = plan(hash: hash, hashOfRecord: hashOfRecord) else {
            preconditionFailure("KeyIndex.insert without room (check with plan first)")
        }
        let value = KeyIndex.cell(tag: tag, record: record)
        if placement.source < 0 {
            cells[placement.free].store(value, ordering: .releasing)
            return
        }
        var destination = placement.free
        var source = placement.source
        var node = placement.nodes[placement.node]
        while true {
            move(from: source, to: destination)
            destination = source
            if node.parent < 0 { break }
            source = node.cell
            node = placement.nodes[node.parent]
        }
        cells[destination].store(value, ordering: .releasing)
    }

    /// Copies a cell into a free one and counts the change; the caller then overwrites `source`.
    func move(from source: Int, to destination: Int) {
        cells[destination].store(cells[source].load(ordering: .relaxed), ordering: .releasing)
        changes.pointee.wrappingAdd(1, ordering: .releasing)
    }

    /// Points the cell at `position` at another record with the same key.
    func replace(at position: Int, tag: UInt32, record: Int) {
        cells[position].store(KeyIndex.cell(tag: tag, record: record), ordering: .releasing)
    }

    func remove(at position: Int) {
        cells[position].store(0, ordering: .releasing)
    }

    /// Live cells, and cells outside the first bucket of their key (diagnostics, O(cells)).
    func census(hashOfRecord: (Int) -> UInt64) -> (live: Int, secondBucket: Int) {
        var live = 0, second = 0
        for p in 0..<cellCount {
            let c = cells[p].load(ordering: .relaxed)
            guard c != 0 else { continue }
            live += 1
            if bucketPair(hashOfRecord(KeyIndex.record(c))).0 != p / KeyIndex.cellsPerBucket { second += 1 }
        }
        return (live, second)
    }
}
