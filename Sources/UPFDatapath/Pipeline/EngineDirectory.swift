import Synchronization
import UPFPackets

/// Where steered traffic goes: per engine index (the numbers compiled steering actions carry),
/// its instances (port + MAC), which of them are up, and the fallback when none is.
///
/// Written by the control thread (engine changes) and, later, by health checks; read by every
/// worker per steered packet. Each engine's entry is a sequence lock over atomic words: the
/// writer makes the sequence odd, rewrites the words, makes it even again; a reader that saw an
/// odd or changed sequence reads again. Readers never block and never see a mix of two versions
/// of one engine (the words are atomics, so there is no data race either). Writes are rare
/// (engine changes), so a reader retries at most a handful of times.
public final class EngineDirectory: @unchecked Sendable {
    public static let maxInstances = 8
    /// Words per engine: sequence, header, then one per instance.
    @usableFromInline static let stride = 2 + maxInstances

    public let capacity: Int
    @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt64>>

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        let count = capacity * EngineDirectory.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * 8, alignment: 64)
        raw.initializeMemory(as: UInt64.self, repeating: 0, count: count)
        words = raw.bindMemory(to: Atomic<UInt64>.self, capacity: count)
    }

    deinit {
        UnsafeMutableRawPointer(words).deallocate()
    }

    /// One instance as the data path needs it.
    public struct Instance: Sendable, Equatable {
        public var port: UInt16
        /// nil: not known (until ARP/ND resolution exists, such an instance is not used).
        public var mac: MACAddress?
        public var up: Bool
        public init(port: UInt16, mac: MACAddress?, up: Bool = true) {
            self.port = port
            self.mac = mac
            self.up = up
        }
    }

    /// Publishes engine `index`. Control thread only (one writer).
    public func set(_ index: Int, instances: [Instance], fallbackDrop: Bool) {
        precondition(index >= 0 && index < capacity && instances.count <= EngineDirectory.maxInstances)
        var up: UInt64 = 0
        for (i, instance) in instances.enumerated() where instance.up && instance.mac != nil { up |= 1 << UInt64(i) }
        let header = EngineView.header(EngineView.present | (fallbackDrop ? EngineView.fallbackDropBit : 0)
                                       | UInt64(instances.count) << 8, up: up)
        write(index) { base in
            base[1].store(header, ordering: .relaxed)
            for i in 0..<EngineDirectory.maxInstances {
                let word = i < instances.count
                    ? UInt64(instances[i].port) << 48 | (instances[i].mac?.value ?? 0) & 0xFFFF_FFFF_FFFF : 0
                base[2 + i].store(word, ordering: .relaxed)
            }
        }
    }

    /// Marks instance `instance` of engine `index` up or down (health). Control thread only.
    public func setUp(_ index: Int, instance: Int, up: Bool) {
        precondition(index >= 0 && index < capacity && instance >= 0 && instance < EngineDirectory.maxInstances)
        let base = words + index * EngineDirectory.stride
        var header = base[1].load(ordering: .relaxed)
        let bit = UInt64(1) << UInt64(instance)
        let usable = base[2 + instance].load(ordering: .relaxed) & 0xFFFF_FFFF_FFFF != 0
        let upMask = header >> 16 & 0xFF
        header = EngineView.header(header & 0xFFFF, up: up && usable ? upMask | bit : upMask & ~bit)
        write(index) { $0[1].store(header, ordering: .relaxed) }
    }

    /// Removes engine `index`: steering to it applies the `core` fallback until it is set again
    /// (the policy never removes an engine that sessions still steer to).
    public func clear(_ index: Int) {
        precondition(index >= 0 && index < capacity)
        write(index) { base in
            for i in 1..<EngineDirectory.stride { base[i].store(0, ordering: .relaxed) }
        }
    }

    /// The current entry of engine `index` (for stats and tests).
    public func snapshot(_ index: Int) -> (instances: [Instance], fallbackDrop: Bool)? {
        view.read(index) { header, base in
            guard header & EngineView.present != 0 else { return nil }
            let count = Int(header >> 8 & 0xFF)
            let instances = (0..<count).map { i -> Instance in
                let word = base[2 + i].load(ordering: .relaxed)
                let mac = word & 0xFFFF_FFFF_FFFF
                return Instance(port: UInt16(word >> 48), mac: mac == 0 ? nil : MACAddress(mac),
                                up: header >> UInt64(16 + i) & 1 != 0)
            }
            return (instances, header & EngineView.fallbackDropBit != 0)
        }
    }

    public var view: EngineView { EngineView(words: words, capacity: capacity) }

    private func write(_ index: Int, _ body: (UnsafeMutablePointer<Atomic<UInt64>>) -> Void) {
        let base = words + index * EngineDirectory.stride
        let sequence = base[0].load(ordering: .relaxed)
        base[0].store(sequence &+ 1, ordering: .relaxed)       // odd: readers retry
        atomicMemoryFence(ordering: .releasing)                  // ... before any new word is seen
        body(base)
        base[0].store(sequence &+ 2, ordering: .releasing)      // even: the words are consistent
    }
}

/// The outcome of choosing an instance for a steered packet.
@frozen
public enum EngineChoice: Equatable {
    /// `index`: the instance's position in the engine's list (what per-instance counters use).
    case instance(port: Int, mac: MACAddress, index: Int)
    /// No instance is up: forward as the session would without steering.
    case fallbackCore
    /// No instance is up: drop (the data must not leave the node).
    case fallbackDrop
}

/// The workers' side of `EngineDirectory`: two words of plain pointer.
@frozen
public struct EngineView: @unchecked Sendable {
    @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt64>>
    public let capacity: Int

    // Header word: bit 0 present, bit 1 fallback drop, bits 8-15 instances, bits 16-23 which are
    // up, bits 24-27 how many are up, bits 32-55 the up instances' indices in ascending order,
    // 3 bits each. The last two are derived from the mask by the writer so that a reader picks
    // the k-th up instance with one shift: a loop clearing k bits cost a branch mispredicted on
    // every other flow with two instances.
    @usableFromInline static let present: UInt64 = 1
    @usableFromInline static let fallbackDropBit: UInt64 = 2

    /// `low` (bits 0-15) with the up mask `up` and the fields derived from it.
    static func header(_ low: UInt64, up: UInt64) -> UInt64 {
        var order: UInt64 = 0
        var n: UInt64 = 0
        for i in 0..<UInt64(EngineDirectory.maxInstances) where up >> i & 1 != 0 {
            order |= i << (3 &* n)
            n &+= 1
        }
        return low & 0xFFFF | (up & 0xFF) << 16 | n << 24 | order << 32
    }

    @inlinable
    init(words: UnsafeMutablePointer<Atomic<UInt64>>, capacity: Int) {
        self.words = words
        self.capacity = capacity
    }

    /// Reads engine `index` consistently (the sequence-lock read side).
    @inlinable
    func read<T>(_ index: Int, _ body: (UInt64, UnsafeMutablePointer<Atomic<UInt64>>) -> T) -> T {
        let base = words + index &* EngineDirectory.stride
        while true {
            let before = base[0].load(ordering: .acquiring)
            if before & 1 == 0 {
                let result = body(base[1].load(ordering: .relaxed), base)
                atomicMemoryFence(ordering: .acquiring)
                if base[0].load(ordering: .relaxed) == before { return result }
            }
        }
    }

    /// The instance of engine `index` for a flow of hash `flowHash`: the same instance for the
    /// same flow as long as the set of up instances does not change (the up instances are
    /// numbered in order and the hash picks one by multiply-shift, Lemire's fast range).
    @inlinable
    public func choose(_ index: Int, flowHash: UInt64) -> EngineChoice {
        guard index >= 0 && index < capacity else { return .fallbackCore }
        return read(index) { header, base in
            guard header & EngineView.present != 0 else { return .fallbackCore }
            let n = header >> 24 & 0xF       // instances up
            guard n != 0 else { return header & EngineView.fallbackDropBit != 0 ? .fallbackDrop : .fallbackCore }
            let k = (UInt64(UInt32(truncatingIfNeeded: flowHash ^ flowHash >> 32)) &* n) >> 32
            let i = Int(truncatingIfNeeded: header &>> (32 &+ 3 &* k)) & 7
            let word = base[2 &+ i].load(ordering: .relaxed)
            return .instance(port: Int(word >> 48), mac: MACAddress(word & 0xFFFF_FFFF_FFFF), index: i)
        }
    }
}
