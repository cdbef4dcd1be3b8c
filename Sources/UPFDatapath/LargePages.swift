#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A zeroed, 64-byte-aligned block of memory for the tables' big arrays, backed by 2 MiB
/// transparent huge pages where the system allows it.
///
/// Why: at 1M sessions the workers read random 64-byte lines of ~200 MB (records, indexes) and
/// ~400 MB of rule blocks. With 4 KiB pages nearly every such read also misses the TLB (a few
/// thousand entries cover ~12 MB) and walks the page tables — in a virtual machine a
/// two-dimensional walk — before the miss to DRAM even starts. With 2 MiB pages the same TLB
/// covers gigabytes.
///
/// How: on Linux, blocks of at least `hugePage` bytes are anonymous mappings aligned to 2 MiB with
/// `madvise(MADV_HUGEPAGE)` (honoured when `/sys/kernel/mm/transparent_hugepage/enabled` is
/// `always` or `madvise`, the usual default); they are touched at once (zeroed), so the pages —
/// huge ones if the kernel has them — are faulted in here, never on the fast path. Smaller blocks,
/// other systems, or a failed mapping use the ordinary allocator. A mapping is rounded up to
/// whole huge pages (`footprint`: at most 2 MiB more per array).
struct LargeBlock {
    let base: UnsafeMutableRawPointer
    let byteCount: Int
    /// Mapped with `mmap` (freed with `munmap`) rather than allocated.
    let mapped: Bool

    static let hugePage = 2 << 20

    /// `byteCount` zeroed bytes; mapped on huge pages from 2 MiB up (tests make many small
    /// tables: a huge page each would be waste).
    init(byteCount: Int) {
        self.byteCount = max(byteCount, 64)
        if self.byteCount >= LargeBlock.hugePage, let p = LargeBlock.mapHuge(self.byteCount) {
            base = p
            mapped = true
        } else {
            base = UnsafeMutableRawPointer.allocate(byteCount: self.byteCount, alignment: 64)
            mapped = false
        }
        // Fault every page in now (zeroing a fresh mapping is also what binds it).
        // memset: the same zeroes, without a per-byte loop in debug builds (startup time).
        memset(base, 0, self.byteCount)
    }

    func free() {
        if mapped {
            LargeBlock.unmap(base, byteCount)
        } else {
            base.deallocate()
        }
    }

    /// The memory a block of `n` bytes takes: whole huge pages when it is mapped.
    static func footprint(_ n: Int) -> Int {
        n >= hugePage ? mappedLength(n) : n
    }

    /// The length a mapping of `n` bytes takes: whole 2 MiB pages.
    static func mappedLength(_ n: Int) -> Int { (n + hugePage - 1) & ~(hugePage - 1) }

    /// An anonymous mapping of `n` bytes starting on a 2 MiB boundary, advised for huge pages;
    /// nil when mapping fails (the caller falls back to the allocator).
    private static func mapHuge(_ n: Int) -> UnsafeMutableRawPointer? {
        #if os(Linux)
        let length = mappedLength(n)
        // Over-map by one huge page, then trim both ends to the aligned part.
        guard let raw = mmap(nil, length + hugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              raw != UnsafeMutableRawPointer(bitPattern: -1) else { return nil }
        let address = UInt(bitPattern: raw)
        let aligned = (address + UInt(hugePage) - 1) & ~UInt(hugePage - 1)
        let head = Int(aligned - address)
        if head > 0 { munmap(raw, head) }
        let tail = hugePage - head
        if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + UInt(length))!, tail) }
        let p = UnsafeMutableRawPointer(bitPattern: aligned)!
        _ = madvise(p, length, MADV_HUGEPAGE)   // advice only: 4 KiB pages if refused
        return p
        #else
        return nil
        #endif
    }

    private static func unmap(_ p: UnsafeMutableRawPointer, _ n: Int) {
        #if os(Linux)
        munmap(p, mappedLength(n))
        #endif
    }
}
