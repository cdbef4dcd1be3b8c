import UPFPackets
import UPFPolicy

/// What a port is for. N3 faces the gNBs (GTP-U), core faces the central UPF (N9, GTP-U) and the
/// data network (N6, plain IP), engine faces co-located inference engines (plain IP).
public enum PortRole: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case n3 = 0
    case core = 1
    case engine = 2

    public var description: String {
        switch self {
        case .n3: "n3"
        case .core: "core"
        case .engine: "engine"
        }
    }

    /// The PDR source interface of packets arriving on a port of this role.
    @inlinable
    public var sourceInterface: SourceInterface {
        switch self {
        case .n3: .access
        case .core: .core
        case .engine: .engine
        }
    }
}

/// One data-path port as the workers see it: fixed at start-up. The next hop is either a static
/// MAC from the configuration (`nextHop`) or an address resolved by ARP/ND at run time
/// (`nextHopAddress`, the MAC then lives in the `NeighborTable`).
@frozen
public struct PortInfo: Sendable, Equatable {
    public var role: PortRole
    /// The port's own MAC: the source of every frame sent on it.
    public var mac: MACAddress
    /// The service's own addresses on this port; GTP-U is recognised only when addressed to them.
    public var ipv4: UInt32?
    public var ipv6: IPAddress?
    /// Where routed traffic leaves through (the gateway towards the gNBs, the central UPF or
    /// the data network). nil = not configured: packets that need it are dropped, counted.
    public var nextHop: MACAddress?
    /// The next hop's address when its MAC is resolved by ARP (IPv4) or Neighbour Discovery (IPv6).
    public var nextHopAddress: IPAddress?

    public init(role: PortRole, mac: MACAddress, ipv4: UInt32? = nil, ipv6: IPAddress? = nil, nextHop: MACAddress? = nil,
                nextHopAddress: IPAddress? = nil) {
        self.role = role
        self.mac = mac
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.nextHop = nextHop
        self.nextHopAddress = nextHopAddress
    }

    /// True when `address` is one of this port's own addresses. Always inlined: called on every
    /// packet through `ports[i]`, a call copies the whole `PortInfo` (88 octets) to pass it.
    @inlinable @inline(__always)
    public func owns(_ address: IPAddress) -> Bool {
        if address.isIPv4 { return ipv4 == address.ipv4 }
        return ipv6 == address
    }

    /// This port's address of the same family as `peer` (the source of tunnels towards it).
    @inlinable
    public func address(towards peer: IPAddress) -> IPAddress? {
        if peer.isIPv4 { return ipv4.map { IPAddress(ipv4: $0) } }
        return ipv6
    }
}

/// The ports of one data path, indexed 0..<count in the order of the configuration. Immutable
/// once built, so workers read it without synchronisation.
public final class PortTable: @unchecked Sendable {
    public static let maxPorts = 16
    public let count: Int
    @usableFromInline let ports: UnsafeMutablePointer<PortInfo>
    /// Index of the N3 port (there is exactly one).
    public let n3: Int
    /// Index of the core port, or -1 when the data path has none (core actions are dropped).
    public let core: Int

    public enum Problem: Error, Equatable, CustomStringConvertible {
        case count(Int)
        case n3Ports(Int)
        case corePorts(Int)
        public var description: String {
            switch self {
            case .count(let n): "a data path has 1...\(PortTable.maxPorts) ports, not \(n)"
            case .n3Ports(let n): "exactly one port must have role n3 (found \(n))"
            case .corePorts(let n): "at most one port may have role core (found \(n))"
            }
        }
    }

    public init(_ infos: [PortInfo]) throws(Problem) {
        guard (1...PortTable.maxPorts).contains(infos.count) else { throw .count(infos.count) }
        let n3s = infos.indices.filter { infos[$0].role == .n3 }
        let cores = infos.indices.filter { infos[$0].role == .core }
        guard n3s.count == 1 else { throw .n3Ports(n3s.count) }
        guard cores.count <= 1 else { throw .corePorts(cores.count) }
        count = infos.count
        n3 = n3s[0]
        core = cores.first ?? -1
        ports = .allocate(capacity: infos.count)
        ports.initialize(from: infos, count: infos.count)
    }

    deinit {
        ports.deinitialize(count: count)
        ports.deallocate()
    }

    public subscript(index: Int) -> PortInfo { ports[index] }
    public var all: [PortInfo] { (0..<count).map { ports[$0] } }
}
