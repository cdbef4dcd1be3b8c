import CDPDK

/// The DPDK Environment Abstraction Layer: initialised once per process, before any port,
/// mempool or lcore is used, and cleaned up once after every port is closed.
public enum EAL {
    /// The strings of the argv handed to `rte_eal_init`. EAL keeps pointers into them (some options
    /// are read after init), so they live until `cleanup()`. They are tracked in a separate array
    /// because EAL rewrites the argv it is given: it permutes it and stores argv[0] over the last
    /// consumed entry, so freeing through that argv would free one string twice and leak another.
    nonisolated(unsafe) private static var strings: [UnsafeMutablePointer<CChar>] = []
    nonisolated(unsafe) private static var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?

    /// Initialises EAL with `arguments` (EAL options only; `programName` becomes argv[0]).
    ///
    /// DPDK's log is sent to stderr first, so stdout stays free for the caller's own output.
    /// - Returns: the number of arguments EAL consumed (argv[0] included).
    /// - Throws: `DPDKError` with DPDK's reason, e.g. `EINVAL` for an unknown option, `EALREADY`
    ///   when EAL was already initialised in this process (it cannot be initialised twice).
    @discardableResult
    public static func initialize(arguments: [String], programName: String = "upfd") throws(DPDKError) -> Int {
        _ = cdpdk_log_to_stderr()
        let copies = ([programName] + arguments).map(duplicate)
        let vector = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: copies.count + 1)
        for (index, copy) in copies.enumerated() { vector[index] = copy }
        vector[copies.count] = nil
        let result = cdpdk_eal_init(Int32(copies.count), vector)
        if result < 0 {
            let error = DPDKError.fromRteErrno("rte_eal_init")
            release(copies, vector)
            throw error
        }
        strings = copies
        argv = vector
        return Int(result)
    }

    /// Releases EAL's memory (`rte_eal_cleanup`). Stop and close every port and free every mempool
    /// first: after this no DPDK object may be used.
    public static func cleanup() throws(DPDKError) {
        try DPDKError.check(cdpdk_eal_cleanup(), "rte_eal_cleanup")
        if let vector = argv { release(strings, vector) }
        argv = nil
        strings = []
    }

    /// TSC ticks per second, measured by EAL at initialisation.
    public static var tscHz: UInt64 { cdpdk_tsc_hz() }

    /// The time stamp counter: cheap enough to check a deadline once per burst.
    @inlinable @inline(__always)
    public static func rdtsc() -> UInt64 { cdpdk_rdtsc() }

    /// NUMA socket of the calling thread, nil on a thread EAL does not know.
    public static var socketID: Int32? {
        let socket = cdpdk_socket_id()
        return socket < 0 ? nil : socket
    }

    private static func duplicate(_ string: String) -> UnsafeMutablePointer<CChar> {
        let utf8 = Array(string.utf8CString)
        let copy = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count)
        copy.initialize(from: utf8, count: utf8.count)
        return copy
    }

    private static func release(_ copies: [UnsafeMutablePointer<CChar>],
                                _ vector: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) {
        for copy in copies { copy.deallocate() }
        vector.deallocate()
    }
}
