import CPrefetch
import UPFPackets
import UPFPolicy

/// One version of one session in the record slab: 128 bytes, 64-byte aligned, written by the
/// control thread only while the record is free (unreachable), published by the release store of
/// an index cell, and never written again until it has been retired and reclaimed (see
/// SessionTables.swift for the ordering argument).
///
/// The first cache line holds everything a lookup *and* a classification read — the keys, the
/// rule block's address, rule count and the pools' offsets in it — so classifying a packet
/// touches this one line of the record and then only the rule block; the second line holds what
/// actions read (tunnel ends, QoS, counters). (The pools used to be two pointers in the second
/// line: one more line per packet, and at 1M sessions one more miss.)
@frozen @usableFromInline
struct SessionRecord {
    // Cache line 0: keys, rules.
    @usableFromInline var seid: UInt64                       // 0
    /// The version's contiguous block: port pool, prefix pool, rules, QoS, counter indices; nil
    /// when all are empty (see `SessionTables.write` for why in this order).
    @usableFromInline var block: UnsafeRawPointer?           // 8
    @usableFromInline var n3TEID: UInt32                     // 16
    @usableFromInline var ueIPv4: UInt32                     // 20
    @usableFromInline var ruleCount: UInt16                  // 24
    @usableFromInline var flags: UInt8                       // 26
    /// Cache lines of the block that classification may read (both pools and the rules), at
    /// most 255: what `SessionHandle.prefetchRules` loads (up to its limit).
    @usableFromInline var hotLines: UInt8                    // 27
    /// Stable per-session index (kept across versions, reused after delete + reclaim).
    @usableFromInline var slot: UInt32                       // 28
    /// The UE's IPv6 prefix, masked; indexed by `high`.
    @usableFromInline var ueIPv6: IPAddress                  // 32
    /// Mask of the low 64 bits (0 for a /64).
    @usableFromInline var ueIPv6LowMask: UInt64              // 48
    /// Byte offsets in `block` of the rules and of the prefix pool (the port pool is at 0).
    @usableFromInline var rulesAt: UInt32                    // 56
    @usableFromInline var prefixesAt: UInt32                 // 60
    // Cache line 1: tunnel ends, QoS, counters.
    @usableFromInline var qos: UnsafePointer<CompiledQoS>?   // 64
    @usableFromInline var counters: UnsafePointer<UInt16>?   // 72
    @usableFromInline var n3Address: IPAddress               // 80
    @usableFromInline var gnbAddress: IPAddress              // 96
    /// Per-table put counter when this version was written.
    @usableFromInline var generation: UInt32                 // 112
    @usableFromInline var gnbTEID: UInt32                    // 116
    /// Size of `block` (how the control thread frees it).
    @usableFromInline var blockBytes: UInt32                 // 120
    @usableFromInline var defaultQFI: UInt8                  // 124
    /// Free (keeps the size at 128).
    @usableFromInline var spare8: UInt8 = 0                  // 125
    /// Entries at `qos` (the control thread compares versions' QERs to reset their meters).
    @usableFromInline var qosCount: UInt16 = 0               // 126

    @usableFromInline static let hasIPv4: UInt8 = 1
    @usableFromInline static let hasIPv6: UInt8 = 2
    @usableFromInline static let hasGNB: UInt8 = 4

    /// The rules of this version, in evaluation order (`ruleCount` of them; only read when
    /// `ruleCount` > 0, which implies a block).
    @inlinable @inline(__always)
    var rules: UnsafePointer<CompiledRule> {
        (block.unsafelyUnwrapped + Int(rulesAt)).assumingMemoryBound(to: CompiledRule.self)
    }

    /// The pools of this version, from the offsets in the first line (with `rules`).
    @inlinable @inline(__always)
    var pools: CompiledPools {
        let base = block.unsafelyUnwrapped
        return CompiledPools(prefixes: (base + Int(prefixesAt)).assumingMemoryBound(to: CompiledPrefix.self),
                             ports: base.assumingMemoryBound(to: CompiledPortRange.self))
    }
}

/// A session found by a lookup. Valid until the reader that found it calls `quiescent()` (or
/// `offline()`): the version it points at may be retired at any time, but is not freed before.
/// Two words of plain pointer, no reference counting.
@frozen
public struct SessionHandle {
    @usableFromInline let record: UnsafePointer<SessionRecord>

    @inlinable
    init(_ record: UnsafePointer<SessionRecord>) {
        self.record = record
    }

    @inlinable public var seid: UInt64 { record.pointee.seid }
    /// The session's stable index in 0..<`SessionTables.slotCount`: the same for every version of the session,
    /// reused by another session only after this one was deleted and reclaimed. Index per-session
    /// state (counters, meters) with it.
    @inlinable public var slot: Int { Int(record.pointee.slot) }
    /// Which put wrote this version (a per-table counter, wrapping).
    @inlinable public var generation: UInt32 { record.pointee.generation }
    @inlinable public var n3TEID: UInt32 { record.pointee.n3TEID }
    @inlinable public var n3Address: IPAddress { record.pointee.n3Address }
    @inlinable public var defaultQFI: UInt8 { record.pointee.defaultQFI }
    @inlinable public var ruleCount: Int { Int(record.pointee.ruleCount) }
    /// The first cache line of the session version's rule block (for prefetching); nil when the
    /// session has no rules, pools, QoS or counters.
    @inlinable public var rulesAddress: UnsafeRawPointer? { record.pointee.block }

    /// Starts loading the cache lines `classify` may read — the pools and the rules, which are
    /// contiguous at the start of one block — all at once (into L2), at most `maxPrefetchLines`,
    /// so their misses overlap instead of following one another as the rule walk reaches them.
    /// The burst lookups call it for every session they find; a caller of the single lookups
    /// can call it itself, as early as possible before `classify`.
    @inlinable
    public func prefetchRules() {
        guard let base = record.pointee.block else { return }
        let lines = min(Int(record.pointee.hotLines), SessionHandle.maxPrefetchLines)
        var line = 0
        while line < lines {
            cprefetch_read_l2(base + line &* 64)
            line &+= 1
        }
    }

    /// At most this many lines of a rule block are prefetched (256 bytes): the pools and the
    /// first rules — with two prefixes and two port ranges, rules 0–2, which is where most
    /// packets of a usual session stop. More costs memory bandwidth, which is what a burst at
    /// 1M sessions runs out of; fewer leaves a dependent miss for the packets that go on to the
    /// later rules (with the 4-rule benchmark session, 4 lines beat both 3 and all 6: see
    /// docs/BENCHMARKS.md).
    public static let maxPrefetchLines = 4

    @inlinable public var ueIPv4: UInt32? {
        record.pointee.flags & SessionRecord.hasIPv4 != 0 ? record.pointee.ueIPv4 : nil
    }

    /// The gNB's F-TEID for downlink, nil when not known yet.
    @inlinable public var gnb: CompiledFTEID? {
        record.pointee.flags & SessionRecord.hasGNB != 0
            ? CompiledFTEID(teid: record.pointee.gnbTEID, address: record.pointee.gnbAddress) : nil
    }

    /// The rule at `index` in evaluation order (0..<ruleCount).
    @inlinable public func rule(_ index: Int) -> CompiledRule {
        precondition(index >= 0 && index < ruleCount)
        return record.pointee.rules[index]
    }

    /// The first rule, in precedence order, that `flow` matches. `qfi` is the packet's QFI (0 if
    /// none), `source` where it came from. No allocation, no reference counting.
    @inlinable
    public func classify(flow: InnerFlow, qfi: UInt8, source: SourceInterface) -> RuleMatch? {
        let n = Int(record.pointee.ruleCount)
        guard n > 0 else { return nil }
        let rules = record.pointee.rules
        let pools = record.pointee.pools
        let code = source.compiledCode
        var i = 0
        while i < n {
            if CompiledRule.matches(rules + i, flow, qfi: qfi, source: code, pools: pools) {
                return RuleMatch(index: i, rule: rules + i, record: record)
            }
            i &+= 1
        }
        return nil
    }
}

/// The rule a packet matched. Valid as long as the `SessionHandle` it came from.
@frozen
public struct RuleMatch {
    /// Position in the session's evaluation order.
    public let index: Int
    @usableFromInline let rule: UnsafePointer<CompiledRule>
    @usableFromInline let record: UnsafePointer<SessionRecord>

    @inlinable
    init(index: Int, rule: UnsafePointer<CompiledRule>, record: UnsafePointer<SessionRecord>) {
        self.index = index
        self.rule = rule
        self.record = record
    }

    /// The PDR id.
    @inlinable public var id: UInt16 { rule.pointee.id }
    @inlinable public var precedence: UInt32 { rule.pointee.precedence }
    @inlinable public var action: CompiledAction { rule.pointee.action }
    @inlinable public var compiledRule: CompiledRule { rule.pointee }

    /// Index of the rule's QER in the session's `qos` (`Session.qos` order), nil when none.
    @inlinable public var qosIndex: Int? {
        let q = rule.pointee.qos
        return q == CompiledRule.noQoS ? nil : Int(q)
    }

    /// The rule's QER, nil when none.
    @inlinable public var qos: CompiledQoS? {
        let q = rule.pointee.qos
        return q == CompiledRule.noQoS ? nil : record.pointee.qos.unsafelyUnwrapped[Int(q)]
    }

    /// The rule's counter indices (into the session's `counterIDs`, `Session.counters` order).
    @inlinable public var counters: UnsafeBufferPointer<UInt16> {
        let r = rule.pointee.counters
        guard r.count != 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: record.pointee.counters.unsafelyUnwrapped + Int(r.start), count: Int(r.count))
    }
}
