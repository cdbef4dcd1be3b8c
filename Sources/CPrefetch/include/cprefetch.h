// CPrefetch: the prefetch instructions UPFDatapath needs, without importing DPDK.
//
// Swift 6.3 exposes no prefetch intrinsic (the Builtin module is the standard library's own), so
// the session tables' burst lookups reach `__builtin_prefetch` through this header. The functions
// are `static inline`: Swift imports them through Clang and inlines them into the caller, so a
// call compiles to a single instruction (x86-64 `prefetcht0` / `prefetcht1`, AArch64
// `prfm pldl1keep` / `prfm pldl2keep`), no call and no C ABI crossing.
//
// Both are hints: they never fault, even on an invalid address, and do nothing the program
// could observe.
#ifndef CPREFETCH_H
#define CPREFETCH_H

/// Starts loading the cache line of `p` into every cache level, L1 included (for reading).
static inline __attribute__((always_inline)) void cprefetch_read(const void *p)
{
    __builtin_prefetch(p, 0, 3);
}

/// Starts loading the cache line of `p` into L2 (and L3), not L1. Many such prefetches in flight
/// do not occupy the L1's few miss buffers, which the loads of the code running meanwhile need;
/// the line then costs an L2 hit (~14 cycles) when read.
static inline __attribute__((always_inline)) void cprefetch_read_l2(const void *p)
{
    __builtin_prefetch(p, 0, 2);
}

/// Starts loading the cache line of `p` for writing (x86-64 `prefetchw` where the CPU has it):
/// a counter the code will increment soon.
static inline __attribute__((always_inline)) void cprefetch_write(const void *p)
{
    __builtin_prefetch(p, 1, 2);
}

#endif
