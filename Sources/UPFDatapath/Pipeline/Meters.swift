import Synchronization
import UPFPolicy

/// The MBR meters of every session: per session slot, `CompiledQoS.maxMetersPerSession` meters
/// (one per QER that has an MBR) × 2 directions, each one 64-bit word — exactly one cache line
/// per session, so meters of different sessions never share a line between workers.
///
/// Each word is a GCRA in virtual-scheduling form (ITU-T I.371, the "leaky bucket" of ATM): the
/// word is the theoretical arrival time (TAT) in nanoseconds of the next packet at the rate. A
/// packet of L bytes at time `now` conforms when `TAT - now ≤ tolerance`; then
/// `TAT = max(TAT, now) + L × (time per byte)`. A non-conforming packet leaves the word alone.
/// Why a single word: several workers may meter the same session at once (a UE's downlink from
/// the core and from an engine arrive on ports that different workers poll), and one
/// compare-and-swap per packet keeps the meter exact across them with no lock and no
/// per-worker share of the rate to rebalance. A failed CAS means another worker just advanced
/// the TAT: retry with the value it saw (a few times at most under real contention).
///
/// Why nanoseconds of the TSC: the rate a packet is measured against is real (wall-clock) time.
/// The worker reads the TSC once per poll round and converts it (`MeterClock`); packets of one
/// burst share that instant, which is when they arrived for the purpose of the meter.
/// The per-packet increment is truncated to whole nanoseconds (under 0.1 % at 1000-byte packets
/// up to 8 Gbit/s; at 64-byte packets and 10 Gbit/s, 51.2 ns → 51 ns, 0.4 % over the rate).
///
/// Reset: the control thread stores 0 into the words of a slot (a TAT of 0 is "long idle": the
/// next packet conforms and restarts the schedule). A store racing a worker's CAS is safe: the
/// CAS either happened before (the reset wins) or fails and retries on 0. Done when a session
/// takes a slot (a new session: the slot's previous owner was reclaimed, so no worker meters it)
/// and when a put changes a QER's meter assignment or rates; a worker still holding the previous
/// version until its next quiescent point may meter a burst with the old rate after the reset.
public final class MeterTable: @unchecked Sendable {
    public let slots: Int
    /// Burst tolerance: how far ahead of real time a meter's schedule may run, in nanoseconds.
    /// At rate R it admits a burst of about R × tolerance bytes above the rate (plus one packet).
    public let toleranceNanoseconds: UInt64
    private let block: LargeBlock
    @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt64>>

    /// Words per slot: meters × directions.
    @usableFromInline static let wordsPerSlot = CompiledQoS.maxMetersPerSession * 2

    public init(slots: Int, toleranceNanoseconds: UInt64) {
        precondition(slots > 0)
        self.slots = slots
        self.toleranceNanoseconds = toleranceNanoseconds
        block = LargeBlock(byteCount: slots * MeterTable.wordsPerSlot * 8)
        words = block.base.bindMemory(to: Atomic<UInt64>.self, capacity: slots * MeterTable.wordsPerSlot)
    }

    deinit { block.free() }

    public var view: MeterView { MeterView(words: words, slots: slots, tolerance: toleranceNanoseconds) }

    /// Restarts every meter of `slot` (control thread).
    public func reset(slot: Int) {
        precondition(slot >= 0 && slot < slots)
        let base = words + slot * MeterTable.wordsPerSlot
        for i in 0..<MeterTable.wordsPerSlot { base[i].store(0, ordering: .relaxed) }
    }

    /// Restarts meter `meter` (both directions) of `slot` (control thread).
    public func reset(slot: Int, meter: Int) {
        precondition(slot >= 0 && slot < slots && meter >= 0 && meter < CompiledQoS.maxMetersPerSession)
        let base = words + slot * MeterTable.wordsPerSlot + meter * 2
        base[0].store(0, ordering: .relaxed)
        base[1].store(0, ordering: .relaxed)
    }

    /// The TAT of a meter (tests, diagnostics).
    public func theoreticalArrival(slot: Int, meter: Int, uplink: Bool) -> UInt64 {
        words[slot * MeterTable.wordsPerSlot + meter * 2 + (uplink ? 0 : 1)].load(ordering: .relaxed)
    }
}

/// The workers' side of `MeterTable`: a pointer and two numbers. `words` nil = no meters (a
/// processor built without a table, in unit tests): every packet conforms.
@frozen
public struct MeterView: @unchecked Sendable {
    @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt64>>?
    @usableFromInline let slots: Int
    @usableFromInline let tolerance: UInt64

    @inlinable
    init(words: UnsafeMutablePointer<Atomic<UInt64>>?, slots: Int, tolerance: UInt64) {
        self.words = words
        self.slots = slots
        self.tolerance = tolerance
    }

    public static let none = MeterView(words: nil, slots: 0, tolerance: 0)

    /// True when `bytes` at time `now` (ns) conform to meter `meter` of `slot` in the direction
    /// whose time per byte is `femtosPerByte` (0: no limit that way); the meter is charged.
    @inlinable @inline(__always)
    public func conforms(slot: Int, meter: Int, uplink: Bool, bytes: Int, femtosPerByte: UInt64, now: UInt64) -> Bool {
        guard femtosPerByte != 0, let words, slot < slots, meter < CompiledQoS.maxMetersPerSession else { return true }
        let word = words + (slot &* MeterTable.wordsPerSlot &+ meter &* 2 &+ (uplink ? 0 : 1))
        // ≤ 65535 bytes × 8e12 fs: no overflow. Division by a constant: a multiplication.
        let increment = UInt64(truncatingIfNeeded: bytes) &* femtosPerByte / 1_000_000
        var tat = word.pointee.load(ordering: .relaxed)
        while true {
            // Wrapping comparison: a TAT in the past (or 0 after a reset) restarts at `now`.
            let start = Int64(bitPattern: tat &- now) > 0 ? tat : now
            if start &- now > tolerance { return false }
            let (exchanged, seen) = word.pointee.compareExchange(expected: tat, desired: start &+ increment,
                                                                 ordering: .relaxed)
            if exchanged { return true }
            tat = seen
        }
    }
}

/// TSC cycles to nanoseconds: `(cycles × multiplier) >> 32` in 128-bit arithmetic (no overflow
/// at any uptime), so the worker's once-per-round conversion is one multiplication.
@frozen
public struct MeterClock: Sendable {
    public let multiplier: UInt64

    public init(cyclesPerSecond: UInt64) {
        precondition(cyclesPerSecond > 0)
        multiplier = UInt64((Double(1_000_000_000) * 4_294_967_296.0 / Double(cyclesPerSecond)).rounded())
    }

    @inlinable @inline(__always)
    public func nanoseconds(_ cycles: UInt64) -> UInt64 {
        let (high, low) = cycles.multipliedFullWidth(by: multiplier)
        return high << 32 | low >> 32
    }
}
