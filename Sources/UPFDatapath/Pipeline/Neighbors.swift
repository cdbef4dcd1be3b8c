import Synchronization
import UPFPackets

/// Timing of next-hop resolution, in TSC ticks (converted once from the configuration).
public struct NeighborTiming: Sendable, Equatable {
    /// Between requests while a next hop is unresolved, or being refreshed.
    public var retryTicks: UInt64
    /// A resolved next hop not heard from for this long is asked again (unicast is not needed:
    /// the request is broadcast, any answer refreshes it).
    public var refreshTicks: UInt64
    /// A resolved next hop not heard from for this long is forgotten: packets towards it are
    /// dropped (`next_hop_unresolved`) until it answers again.
    public var expiryTicks: UInt64

    public init(retryTicks: UInt64, refreshTicks: UInt64, expiryTicks: UInt64) {
        self.retryTicks = retryTicks
        self.refreshTicks = refreshTicks
        self.expiryTicks = expiryTicks
    }

    public static func seconds(retry: Double, refresh: Double, expiry: Double, ticksPerSecond: UInt64) -> NeighborTiming {
        let hz = Double(ticksPerSecond)
        return NeighborTiming(retryTicks: UInt64(retry * hz), refreshTicks: UInt64(refresh * hz), expiryTicks: UInt64(expiry * hz))
    }
}

/// The next hops that are configured by address (`ports[].next_hop`) rather than by MAC: one
/// per port, so the table is bounded by the ports. Each port's entry is two atomic words — the
/// MAC (0 = unresolved) and when it was last heard from — written by whichever worker receives
/// the next hop's ARP or Neighbour Advertisement (a plain store: the last writer wins, and every
/// writer writes what the next hop said), read by every worker per routed packet (one relaxed
/// load). Worker 0 sends the requests and expires stale entries.
public final class NeighborTable: @unchecked Sendable {
    public let portCount: Int
    /// Per port: the next hop's address, nil when the port has none to resolve.
    public let targets: [IPAddress?]
    public let timing: NeighborTiming
    @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt64>>
    /// Per port: when worker 0 last asked (worker 0 only).
    let lastRequest: UnsafeMutablePointer<UInt64>

    @usableFromInline static let resolvedBit: UInt64 = 1 << 63

    public init(targets: [IPAddress?], timing: NeighborTiming) {
        precondition(targets.count <= PortTable.maxPorts)
        portCount = targets.count
        self.targets = targets
        self.timing = timing
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, targets.count) * 2 * 8, alignment: 64)
        raw.initializeMemory(as: UInt64.self, repeating: 0, count: max(1, targets.count) * 2)
        words = raw.bindMemory(to: Atomic<UInt64>.self, capacity: max(1, targets.count) * 2)
        lastRequest = .allocate(capacity: max(1, targets.count))
        lastRequest.initialize(repeating: 0, count: max(1, targets.count))
    }

    public convenience init(ports: PortTable) {
        self.init(targets: Array(repeating: nil, count: ports.count), timing: NeighborTiming(retryTicks: 1, refreshTicks: 1, expiryTicks: 1))
    }

    deinit {
        UnsafeMutableRawPointer(words).deallocate()
        lastRequest.deallocate()
    }

    public var view: NeighborView { NeighborView(words: words, count: portCount) }

    /// The resolved MAC of port `port`'s next hop (control thread, stats).
    public func resolved(_ port: Int) -> MACAddress? { view.mac(port) }

    /// Expires stale entries and says which ports need a request now (bit p = port p).
    /// Worker 0 only.
    public func due(now: UInt64) -> UInt32 {
        var mask: UInt32 = 0
        for p in 0..<portCount where targets[p] != nil {
            let word = words[p &* 2].load(ordering: .relaxed)
            let heard = words[p &* 2 &+ 1].load(ordering: .relaxed)
            let age = now &- heard
            if word != 0 && age > timing.expiryTicks {
                words[p &* 2].store(0, ordering: .relaxed)
            }
            let resolved = word != 0 && age <= timing.expiryTicks
            guard !resolved || age > timing.refreshTicks else { continue }
            if lastRequest[p] == 0 || now &- lastRequest[p] >= timing.retryTicks {
                lastRequest[p] = now == 0 ? 1 : now
                mask |= 1 << UInt32(p)
            }
        }
        return mask
    }
}

/// The workers' side of `NeighborTable`.
@frozen
public struct NeighborView: @unchecked Sendable {
    @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt64>>
    @usableFromInline let count: Int

    @inlinable
    init(words: UnsafeMutablePointer<Atomic<UInt64>>, count: Int) {
        self.words = words
        self.count = count
    }

    @inlinable @inline(__always)
    public func mac(_ port: Int) -> MACAddress? {
        let word = words[port &* 2].load(ordering: .relaxed)
        return word == 0 ? nil : MACAddress(word & 0xFFFF_FFFF_FFFF)
    }

    /// Records that port `port`'s next hop said it is at `mac`, at time `now`.
    @inlinable
    public func learn(_ port: Int, mac: MACAddress, now: UInt64) {
        words[port &* 2 &+ 1].store(now, ordering: .relaxed)
        words[port &* 2].store(NeighborTable.resolvedBit | mac.value & 0xFFFF_FFFF_FFFF, ordering: .relaxed)
    }
}

/// Error Indications (TS 29.281 §7.3.1) are answers to packets anybody can send, so they are
/// rate-limited twice per worker: per peer (the outer source; a direct-mapped table of 256
/// entries: a peer that shares its entry with another takes it over, starting afresh) and in
/// total (spoofed sources must not turn the UPF into a reflector). Each is a virtual-scheduling
/// meter with no burst: at most one Error Indication per `interval` — so with W workers a peer
/// gets at most `rate × seconds + W`, and never a flood.
public final class ErrorIndicationLimiter: @unchecked Sendable {
    public static let entries = 256
    /// Ticks between two Error Indications to one peer from this worker; 0 = never send one.
    public let peerInterval: UInt64
    /// Ticks between two Error Indications from this worker to anybody.
    public let totalInterval: UInt64
    @usableFromInline let keys: UnsafeMutablePointer<IPAddress>
    /// Per entry: the earliest tick the next one may go; the last word is the total meter.
    @usableFromInline let next: UnsafeMutablePointer<UInt64>

    /// Rates are per second for the whole service; each of `workers` workers gets its share.
    public init(perPeerRate: Double, totalRate: Double, workers: Int, ticksPerSecond: UInt64) {
        let hz = Double(ticksPerSecond) * Double(max(1, workers))
        peerInterval = perPeerRate > 0 ? UInt64(hz / perPeerRate) : 0
        totalInterval = totalRate > 0 ? UInt64(hz / totalRate) : 0
        keys = .allocate(capacity: ErrorIndicationLimiter.entries)
        keys.initialize(repeating: .zero, count: ErrorIndicationLimiter.entries)
        next = .allocate(capacity: ErrorIndicationLimiter.entries + 1)
        next.initialize(repeating: 0, count: ErrorIndicationLimiter.entries + 1)
    }

    deinit {
        keys.deallocate()
        next.deallocate()
    }

    public var view: ErrorIndicationMeter {
        ErrorIndicationMeter(keys: keys, next: next, peerInterval: peerInterval, totalInterval: totalInterval)
    }
}

/// One worker's side of `ErrorIndicationLimiter` (its own instance: no sharing).
@frozen
public struct ErrorIndicationMeter: @unchecked Sendable {
    @usableFromInline let keys: UnsafeMutablePointer<IPAddress>
    @usableFromInline let next: UnsafeMutablePointer<UInt64>
    @usableFromInline let peerInterval: UInt64
    @usableFromInline let totalInterval: UInt64

    @inlinable
    init(keys: UnsafeMutablePointer<IPAddress>, next: UnsafeMutablePointer<UInt64>, peerInterval: UInt64, totalInterval: UInt64) {
        self.keys = keys
        self.next = next
        self.peerInterval = peerInterval
        self.totalInterval = totalInterval
    }

    /// Whether an Error Indication to `peer` may go at `now`; if so it is accounted.
    public func allow(_ peer: IPAddress, now: UInt64) -> Bool {
        guard peerInterval > 0 else { return false }
        let i = Int(truncatingIfNeeded: KeyIndex.mix(peer.low ^ peer.high &* 0x9E37_79B9_7F4A_7C15)) & (ErrorIndicationLimiter.entries - 1)
        let total = ErrorIndicationLimiter.entries
        if keys[i] != peer {
            keys[i] = peer
            next[i] = 0
        }
        guard now >= next[i], totalInterval == 0 || now >= next[total] else { return false }
        next[i] = now &+ peerInterval
        if totalInterval > 0 { next[total] = now &+ totalInterval }
        return true
    }
}
