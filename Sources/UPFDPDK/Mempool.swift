import CDPDK
#if canImport(Glibc)
import Glibc
#endif

/// A pool of packet buffers (`rte_pktmbuf_pool_create`).
///
/// A value type holding DPDK's pointer: copies refer to the same pool, which lives until `free()`.
/// Ownership is explicit rather than tied to `deinit` because the pool must outlive every port
/// that fills from it and be freed before `EAL.cleanup()`, an order only the caller knows.
public struct Mempool {
    /// The `struct rte_mempool *`, for the per-packet helpers of CDPDK (e.g. `cdpdk_mbuf_alloc`).
    public let pointer: OpaquePointer
    public let name: String

    /// Creates a pool of `count` mbufs (2^k - 1 is optimal) with a per-lcore cache of `cacheSize`
    /// and `dataRoom` bytes of buffer each, on NUMA `socket` (nil: any socket). Put it on the
    /// socket of the ports that use it: a remote pool costs a QPI/UPI crossing per packet.
    public static func create(name: String, count: Int, cacheSize: Int = 256,
                              dataRoom: Int = Int(CDPDK_MBUF_DEFAULT_DATAROOM),
                              socket: Int32? = nil) throws(DPDKError) -> Mempool {
        guard count > 0, count <= Int(UInt32.max), cacheSize >= 0, cacheSize <= count,
              dataRoom > Int(CDPDK_MBUF_HEADROOM), dataRoom <= Int(UInt16.max) else {
            throw DPDKError(operation: "rte_pktmbuf_pool_create(\(name))", code: EINVAL)
        }
        let socketID = socket ?? Int32(CDPDK_SOCKET_ID_ANY)
        guard let pool = cdpdk_pktmbuf_pool_create(name, UInt32(count), UInt32(cacheSize),
                                                   UInt16(dataRoom), socketID) else {
            throw DPDKError.fromRteErrno("rte_pktmbuf_pool_create(\(name), n=\(count), socket=\(socketID))")
        }
        return Mempool(pointer: pool, name: name)
    }

    /// Mbufs taken from the pool and not yet returned (per-lcore caches count as returned).
    /// Zero once every port is closed means no mbuf leaked.
    public var inUseCount: Int { Int(cdpdk_mempool_in_use_count(pointer)) }

    /// Mbufs available to allocate, including those in per-lcore caches.
    public var availableCount: Int { Int(cdpdk_mempool_avail_count(pointer)) }

    /// Number of mbufs the pool was created with.
    public var size: Int { Int(cdpdk_mempool_size(pointer)) }

    /// Returns the pool's memory. Close every port that uses it first; the value must not be used
    /// afterwards.
    public func free() { cdpdk_mempool_free(pointer) }
}
