import CDPDK
#if canImport(Glibc)
import Glibc
#endif

/// A function EAL runs on a worker lcore. It must be a C function pointer (a global `func` or a
/// closure literal that captures nothing): its state travels through the raw pointer argument,
/// which keeps per-worker state in one place the worker reaches without locks or reference counts.
public typealias LcoreFunction = @convention(c) (UnsafeMutableRawPointer?) -> Int32

/// The logical cores EAL runs on (`-l`/`--lcores`): one main lcore, the thread that initialised
/// EAL, and worker lcores, pinned threads that wait for work given with `launch`.
public enum Lcores {
    /// Number of lcores, main included.
    public static var count: Int { Int(cdpdk_lcore_count()) }

    /// The main lcore's id.
    public static var main: UInt32 { cdpdk_main_lcore() }

    /// The calling thread's lcore id, nil on a thread EAL did not create.
    public static var current: UInt32? {
        let id = cdpdk_lcore_id()
        return Int(id) >= Int(CDPDK_MAX_LCORE) ? nil : id
    }

    /// Worker lcore ids in ascending order (empty when EAL runs on one lcore).
    public static var workers: [UInt32] {
        var result: [UInt32] = []
        var next = cdpdk_next_worker_lcore(UInt32(bitPattern: Int32(CDPDK_LCORE_ITER_START)))
        while Int(next) < Int(CDPDK_MAX_LCORE) {
            result.append(next)
            next = cdpdk_next_worker_lcore(next)
        }
        return result
    }

    /// NUMA socket of an lcore.
    public static func socketID(of lcore: UInt32) -> Int32 { Int32(bitPattern: cdpdk_lcore_socket_id(lcore)) }

    /// Runs `function(argument)` on worker `lcore`. The worker must be idle (`EBUSY` otherwise);
    /// `argument` must stay valid until `wait(lcore)` returns.
    public static func launch(_ function: LcoreFunction, argument: UnsafeMutableRawPointer?,
                              on lcore: UInt32) throws(DPDKError) {
        try DPDKError.check(cdpdk_remote_launch(function, argument, lcore), "rte_eal_remote_launch(lcore \(lcore))")
    }

    /// Waits for worker `lcore` to finish; returns what its function returned.
    @discardableResult
    public static func wait(_ lcore: UInt32) -> Int32 { cdpdk_wait_lcore(lcore) }

    /// Waits for every worker to finish.
    public static func waitAll() { cdpdk_wait_all_lcores() }
}
