import CDPDK
#if canImport(Glibc)
import Glibc
#endif

/// An in-memory Ethernet port (`rte_eth_from_rings`): the caller enqueues frames that the port
/// then receives on RX queue 0, and dequeues what the data path transmits on any TX queue. The
/// replay harness and the benchmarks feed the real data path through these, so replay itself is
/// not the bottleneck and nothing touches a network.
public struct RingPort {
    public let port: EthPort
    /// Feeds RX queue 0.
    public let rxRing: OpaquePointer
    /// TX queue i writes `txRings[i]`.
    public let txRings: [OpaquePointer]

    /// Creates the rings (`size` entries each, a power of two) and the port `name` with one RX
    /// queue and `txQueues` TX queues.
    public static func create(name: String, txQueues: Int, size: Int = 4096) throws(DPDKError) -> RingPort {
        guard txQueues >= 1, size >= 64, size & (size - 1) == 0 else {
            throw DPDKError(operation: "ring port \(name)", code: EINVAL)
        }
        var made: [OpaquePointer] = []
        func ring(_ suffix: String) throws(DPDKError) -> OpaquePointer {
            // rte_ring names are at most 31 characters.
            let label = String("\(name)_\(suffix)".suffix(31))
            guard let r = cdpdk_ring_create(label, UInt32(size), Int32(CDPDK_SOCKET_ID_ANY)) else {
                made.forEach { cdpdk_ring_free($0) }
                throw DPDKError.fromRteErrno("rte_ring_create(\(label))")
            }
            made.append(r)
            return r
        }
        let rx = try ring("rx")
        var tx: [OpaquePointer] = []
        for i in 0..<txQueues { tx.append(try ring("tx\(i)")) }
        let rxList: [OpaquePointer?] = [rx]
        let txList: [OpaquePointer?] = tx
        let id = rxList.withUnsafeBufferPointer { r in
            txList.withUnsafeBufferPointer { t in
                cdpdk_port_from_rings(name, r.baseAddress, 1, t.baseAddress, UInt32(t.count), Int32(CDPDK_SOCKET_ID_ANY))
            }
        }
        guard id >= 0 else {
            made.forEach { cdpdk_ring_free($0) }
            throw DPDKError(operation: "rte_eth_from_rings(\(name))", code: -id)
        }
        return RingPort(port: EthPort(id: UInt16(id)), rxRing: rx, txRings: tx)
    }

    /// Offers `count` mbufs to the port's RX side; returns how many fit (the rest stay the caller's).
    @inlinable
    public func feed(_ mbufs: UnsafeMutablePointer<OpaquePointer?>, count: Int) -> Int {
        Int(cdpdk_ring_enqueue_burst(rxRing, mbufs, UInt32(count)))
    }

    /// Takes back up to `capacity` frames the data path has not received (at shutdown).
    public func takeBackInput(into mbufs: UnsafeMutablePointer<OpaquePointer?>, capacity: Int) -> Int {
        Int(cdpdk_ring_dequeue_burst(rxRing, mbufs, UInt32(capacity)))
    }

    /// Frames not yet received by the data path.
    public var pendingInput: Int { Int(cdpdk_ring_count(rxRing)) }

    /// Takes up to `capacity` transmitted mbufs from TX queue `queue`'s ring.
    @inlinable
    public func drain(queue: Int, into mbufs: UnsafeMutablePointer<OpaquePointer?>, capacity: Int) -> Int {
        Int(cdpdk_ring_dequeue_burst(txRings[queue], mbufs, UInt32(capacity)))
    }

    /// Frees the rings. The port must be closed first.
    public func freeRings() {
        cdpdk_ring_free(rxRing)
        txRings.forEach { cdpdk_ring_free($0) }
    }
}

extension EthPort {
    /// As `configure(rxQueues:txQueues:ringSize:mempool:)`; with several RX queues, RSS on the
    /// GTP-U TEID where the device offers it, else on addresses and ports. Returns the RSS hash
    /// functions enabled (0: none; only queue 0 receives).
    public func configureWithRSS(rxQueues: Int, txQueues: Int, ringSize: Int, mempool: Mempool) throws(DPDKError) -> UInt64 {
        guard (1...Int(UInt16.max)).contains(rxQueues), (1...Int(UInt16.max)).contains(txQueues),
              (1...Int(UInt16.max)).contains(ringSize) else {
            throw DPDKError(operation: "configure(\(name))", code: EINVAL)
        }
        var rss: UInt64 = 0
        try DPDKError.check(
            cdpdk_port_configure_rss(id, UInt16(rxQueues), UInt16(txQueues), UInt16(ringSize), UInt16(ringSize),
                                     mempool.pointer, &rss),
            "configure(\(name), rx=\(rxQueues), tx=\(txQueues), ring=\(ringSize))")
        return rss
    }

    /// True when `rss` (from `configureWithRSS`) hashes on the GTP-U TEID.
    public static func rssUsesTEID(_ rss: UInt64) -> Bool { rss & cdpdk_rss_gtpu() != 0 }
}
