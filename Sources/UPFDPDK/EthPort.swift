import CDPDK
import UPFPackets
#if canImport(Glibc)
import Glibc
#endif

/// An Ethernet port as DPDK numbers it: a PCI device named with `-a`, or a virtual device named
/// with `--vdev` (net_ring, net_pcap, net_tap, net_memif, ...).
///
/// Only the port id is stored: the value is trivially copyable and can be handed to worker lcores.
/// Setup calls throw `DPDKError`; the burst calls are inlined and never fail, they return a count.
public struct EthPort: Hashable, Sendable, CustomStringConvertible {
    public let id: UInt16

    public init(id: UInt16) { self.id = id }

    /// The port of the device called `name` (as given to `--vdev` without its arguments, or the
    /// PCI address). The error lists the ports that do exist, the usual fix for a typo.
    public init(named name: String) throws(DPDKError) {
        var port: UInt16 = 0
        let result = cdpdk_port_by_name(name, &port)
        guard result == 0 else {
            let known = EthPort.all.map(\.name)
            let list = known.isEmpty ? "no ports at all (check --vdev / -a in the EAL arguments)"
                                     : "ports: \(known.joined(separator: ", "))"
            throw DPDKError(operation: "port \(name)", code: result < 0 ? -result : ENODEV,
                            message: "no DPDK port named '\(name)'; \(list)")
        }
        self.id = port
    }

    /// Every port DPDK probed, in port id order.
    public static var all: [EthPort] {
        var ports: [EthPort] = []
        var next = cdpdk_port_next(0)
        while Int(next) < Int(CDPDK_MAX_ETHPORTS) {
            ports.append(EthPort(id: next))
            next = cdpdk_port_next(next + 1)
        }
        return ports
    }

    /// The device name, or `port<N>` if DPDK no longer knows the port (e.g. after close).
    public var name: String {
        var buffer = [CChar](repeating: 0, count: Int(CDPDK_PORT_NAME_MAX))
        guard cdpdk_port_name(id, &buffer, buffer.count) == 0 else { return "port\(id)" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { "\(name) (port \(id))" }

    /// NUMA socket of the device, nil when unknown (virtual devices): then any socket will do.
    public var socketID: Int32? {
        let socket = cdpdk_port_socket_id(id)
        return socket < 0 ? nil : socket
    }

    /// What the device supports.
    public struct Info: Sendable, Equatable {
        public var driverName: String
        public var maxRxQueues: Int
        public var maxTxQueues: Int
        public var maxRxDescriptors: Int
        public var maxTxDescriptors: Int
    }

    public func info() throws(DPDKError) -> Info {
        var raw = cdpdk_port_info()
        try DPDKError.check(cdpdk_port_info_get(id, &raw), "rte_eth_dev_info_get(port \(id))")
        let driver = withUnsafeBytes(of: raw.driver_name) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        return Info(driverName: driver, maxRxQueues: Int(raw.max_rx_queues), maxTxQueues: Int(raw.max_tx_queues),
                    maxRxDescriptors: Int(raw.rx_desc_max), maxTxDescriptors: Int(raw.tx_desc_max))
    }

    /// Configures `rxQueues` RX and `txQueues` TX queues of `ringSize` descriptors (clamped to the
    /// device's limits), RX queues filling from `mempool`, all allocated on the port's socket.
    /// The port must be stopped.
    public func configure(rxQueues: Int, txQueues: Int, ringSize: Int = 1024, mempool: Mempool) throws(DPDKError) {
        guard (0...Int(UInt16.max)).contains(rxQueues), (0...Int(UInt16.max)).contains(txQueues),
              rxQueues + txQueues > 0, (1...Int(UInt16.max)).contains(ringSize) else {
            throw DPDKError(operation: "configure(\(name))", code: EINVAL)
        }
        try DPDKError.check(
            cdpdk_port_configure(id, UInt16(rxQueues), UInt16(txQueues), UInt16(ringSize), UInt16(ringSize),
                                 mempool.pointer),
            "configure(\(name), rx=\(rxQueues), tx=\(txQueues), ring=\(ringSize))")
    }

    public func start() throws(DPDKError) {
        try DPDKError.check(cdpdk_port_start(id), "rte_eth_dev_start(\(name))")
    }

    public func stop() throws(DPDKError) {
        try DPDKError.check(cdpdk_port_stop(id), "rte_eth_dev_stop(\(name))")
    }

    /// Releases the port's queues; the port id is invalid afterwards. net_pcap closes its output
    /// file here, so a tx_pcap capture is complete only after `close()`.
    public func close() throws(DPDKError) {
        let label = name
        try DPDKError.check(cdpdk_port_close(id), "rte_eth_dev_close(\(label))")
    }

    /// Receives frames for any destination MAC. Throws `ENOTSUP` on PMDs without the notion
    /// (net_ring), which callers usually ignore.
    public func enablePromiscuous() throws(DPDKError) {
        try DPDKError.check(cdpdk_port_promiscuous_enable(id), "rte_eth_promiscuous_enable(\(name))")
    }

    /// The basic counters of `rte_eth_stats`.
    public struct Stats: Sendable, Equatable, Codable {
        public var ipackets: UInt64
        public var opackets: UInt64
        /// Some virtual PMDs (net_ring) do not count bytes and report 0.
        public var ibytes: UInt64
        public var obytes: UInt64
        /// Dropped by the device because the RX ring was full: the worker is too slow.
        public var imissed: UInt64
        public var ierrors: UInt64
        public var oerrors: UInt64
        /// RX allocation failures: the mempool is too small for the rings and bursts in flight.
        public var rxNoMbuf: UInt64
    }

    public func stats() throws(DPDKError) -> Stats {
        var raw = cdpdk_port_stats()
        try DPDKError.check(cdpdk_port_stats_get(id, &raw), "rte_eth_stats_get(\(name))")
        return Stats(ipackets: raw.ipackets, opackets: raw.opackets, ibytes: raw.ibytes, obytes: raw.obytes,
                     imissed: raw.imissed, ierrors: raw.ierrors, oerrors: raw.oerrors, rxNoMbuf: raw.rx_nombuf)
    }

    public func resetStats() throws(DPDKError) {
        try DPDKError.check(cdpdk_port_stats_reset(id), "rte_eth_stats_reset(\(name))")
    }

    public func macAddress() throws(DPDKError) -> MACAddress {
        var bytes = [UInt8](repeating: 0, count: 6)
        try DPDKError.check(cdpdk_port_mac(id, &bytes), "rte_eth_macaddr_get(\(name))")
        return MACAddress(bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5])
    }

    /// Link state, read without waiting for autonegotiation.
    public struct Link: Sendable, Equatable {
        public var isUp: Bool
        /// 0 when unknown.
        public var speedMbps: UInt32
        public var fullDuplex: Bool
        public var autonegotiated: Bool
    }

    public func link() throws(DPDKError) -> Link {
        var raw = cdpdk_link()
        try DPDKError.check(cdpdk_port_link(id, &raw), "rte_eth_link_get_nowait(\(name))")
        return Link(isUp: raw.up != 0, speedMbps: raw.speed_mbps, fullDuplex: raw.full_duplex != 0,
                    autonegotiated: raw.autoneg != 0)
    }

    /// Receives up to `capacity` frames from `queue` into `mbufs`; returns how many. Never blocks.
    /// Only one thread may use a given queue.
    @inlinable @inline(__always)
    public func receive(queue: UInt16, into mbufs: UnsafeMutablePointer<OpaquePointer?>, capacity: Int) -> Int {
        Int(cdpdk_rx_burst(id, queue, mbufs, UInt16(truncatingIfNeeded: capacity)))
    }

    /// Hands up to `count` frames to `queue`; returns how many the PMD took (it now owns and frees
    /// them). `mbufs[result..<count]` still belong to the caller, to retry or free.
    @inlinable @inline(__always)
    public func transmit(queue: UInt16, _ mbufs: UnsafeMutablePointer<OpaquePointer?>, count: Int) -> Int {
        Int(cdpdk_tx_burst(id, queue, mbufs, UInt16(truncatingIfNeeded: count)))
    }
}
