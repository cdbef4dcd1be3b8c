import UPFPackets

/// Where a rule's pool ranges point: the base of each pool of one session version. Plain pointers,
/// so the datapath can keep them in its raw session records; nil when the pool is empty (a range
/// of zero entries never dereferences its base).
@frozen
public struct CompiledPools: @unchecked Sendable {
    public var prefixes: UnsafePointer<CompiledPrefix>?
    public var ports: UnsafePointer<CompiledPortRange>?

    @inlinable
    public init(prefixes: UnsafePointer<CompiledPrefix>? = nil, ports: UnsafePointer<CompiledPortRange>? = nil) {
        self.prefixes = prefixes
        self.ports = ports
    }

    /// True when one of the prefixes of `range` contains `address`.
    @inlinable @inline(__always)
    public func anyPrefix(_ range: CompiledPoolRange, contains address: IPAddress) -> Bool {
        let base = prefixes.unsafelyUnwrapped + Int(range.start)
        var i = 0
        let n = Int(range.count)
        while i < n {
            if base[i].contains(address) { return true }
            i &+= 1
        }
        return false
    }

    /// True when one of the port ranges of `range` contains `port`.
    @inlinable @inline(__always)
    public func anyPort(_ range: CompiledPoolRange, contains port: UInt16) -> Bool {
        let base = ports.unsafelyUnwrapped + Int(range.start)
        var i = 0
        let n = Int(range.count)
        while i < n {
            if base[i].contains(port) { return true }
            i &+= 1
        }
        return false
    }
}

extension CompiledRule {
    /// The one rule matcher of the project, used by the datapath's classifier and by
    /// `CompiledSession.firstMatch`. `qfi` is the packet's QFI (0 when it has none), `source` a
    /// `SourceInterface.compiledCode`. No allocation, no reference counting.
    @inlinable @inline(__always)
    public func matches(_ flow: InnerFlow, qfi: UInt8, source: UInt8, pools: CompiledPools) -> Bool {
        withUnsafePointer(to: self) { CompiledRule.matches($0, flow, qfi: qfi, source: source, pools: pools) }
    }

    /// `matches` on a rule in place. The datapath calls this one: through a pointer each field
    /// is loaded where it is tested, where a copy of the rule (`rules[i].matches`) made the
    /// compiler load all 64 octets before the first test.
    @inlinable @inline(__always)
    public static func matches(_ rule: UnsafePointer<CompiledRule>, _ flow: InnerFlow, qfi: UInt8, source: UInt8,
                               pools: CompiledPools) -> Bool {
        if rule.pointee.source != source { return false }
        let flags = rule.pointee.flags
        if flags & Flags.hasQFI != 0 && rule.pointee.qfi != qfi { return false }
        if flags & Flags.hasProtocol != 0 && flow.proto != rule.pointee.proto { return false }
        if flow.trafficClass & rule.pointee.tosMask != rule.pointee.tosValue { return false }
        let sourcePrefixes = rule.pointee.sourcePrefixes
        if sourcePrefixes.count != 0 && !pools.anyPrefix(sourcePrefixes, contains: flow.source) { return false }
        let destinationPrefixes = rule.pointee.destinationPrefixes
        if destinationPrefixes.count != 0 && !pools.anyPrefix(destinationPrefixes, contains: flow.destination) {
            return false
        }
        let sourcePorts = rule.pointee.sourcePorts
        let destinationPorts = rule.pointee.destinationPorts
        if sourcePorts.count | destinationPorts.count != 0 {
            if !flow.hasPorts || flow.isFragment { return false }
            if sourcePorts.count != 0 && !pools.anyPort(sourcePorts, contains: flow.sourcePort) { return false }
            if destinationPorts.count != 0 && !pools.anyPort(destinationPorts, contains: flow.destinationPort) {
                return false
            }
        }
        return true
    }
}
