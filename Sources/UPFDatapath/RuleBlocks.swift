/// Where the rule blocks of session versions live (rules, prefix and port pools, QoS, counter
/// indices: one block per version, see `SessionTables.write`). Control thread only.
///
/// Why not `malloc`: a 64-byte-aligned `malloc` of the common 4-rule block (328 bytes) took 448
/// bytes, and a million of them lay scattered over ~450 MB of 4 KiB pages, so the worker's read
/// of a rule block was, at 1M sessions, a TLB miss and a page walk before the DRAM miss. Here a
/// block is a whole number of cache lines (the 4-rule block: 6 lines, 384 bytes) cut from large
/// chunks — 2 MiB on huge pages when the table is large (`LargeBlock`) — one after another.
///
/// Freed blocks go to a free list per size (in lines) and are reused by the next block of that
/// size; chunks go back to the system only with the tables (like a DPDK mempool, the memory of a
/// peak of sessions stays reserved for the next one; with the sizes sessions really have, the
/// lists recycle it). Blocks above `maxLines` lines come from the ordinary allocator.
struct RuleBlockAllocator {
    static let line = 64
    /// The largest block cut from chunks: 4 KiB (about 60 rules with their pools).
    static let maxLines = 64

    /// Bytes per chunk: 2 MiB (a huge page) when a table this large needs many, else 64 KiB.
    let chunkBytes: Int
    /// Head of the free list of blocks of `i` lines (linked through each free block's first word).
    private var freeLists: [UnsafeMutableRawPointer?]
    private var chunks: [LargeBlock] = []
    private var next: UnsafeMutableRawPointer?
    private var remaining = 0

    init(capacity: Int) {
        chunkBytes = capacity >= 8192 ? LargeBlock.hugePage : 64 << 10
        freeLists = Array(repeating: nil, count: RuleBlockAllocator.maxLines + 1)
    }

    /// Bytes taken from the system for chunks so far.
    var reservedBytes: Int { chunks.count * chunkBytes }

    static func lines(_ byteCount: Int) -> Int { (byteCount + line - 1) / line }

    /// A 64-byte-aligned block of at least `byteCount` bytes (uninitialised).
    mutating func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        let n = RuleBlockAllocator.lines(byteCount)
        guard n <= RuleBlockAllocator.maxLines else {
            return UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: RuleBlockAllocator.line)
        }
        if let p = freeLists[n] {
            freeLists[n] = UnsafeMutableRawPointer(bitPattern: p.load(as: UInt.self))
            return p
        }
        let bytes = n * RuleBlockAllocator.line
        if remaining < bytes {
            // The tail of the old chunk (less than maxLines lines) is left unused.
            let chunk = LargeBlock(byteCount: chunkBytes)
            chunks.append(chunk)
            next = chunk.base
            remaining = chunkBytes
        }
        let p = next.unsafelyUnwrapped
        next = p + bytes
        remaining -= bytes
        return p
    }

    /// Returns a block of `byteCount` bytes (as given to `allocate`). No reader may reach it.
    mutating func free(_ p: UnsafeMutableRawPointer, byteCount: Int) {
        let n = RuleBlockAllocator.lines(byteCount)
        guard n <= RuleBlockAllocator.maxLines else {
            p.deallocate()
            return
        }
        p.storeBytes(of: UInt(bitPattern: freeLists[n]), as: UInt.self)
        freeLists[n] = p
    }

    /// Gives every chunk back (the tables are going away: no block is in use any more).
    mutating func releaseAll() {
        for c in chunks { c.free() }
        chunks.removeAll()
        freeLists = Array(repeating: nil, count: RuleBlockAllocator.maxLines + 1)
        next = nil
        remaining = 0
    }
}
