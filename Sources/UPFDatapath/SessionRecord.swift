import UPFPackets
import UPFPolicy

/// One version of one session in the record slab: 128 bytes, 64-byte aligned, written by the
/// control thread only while the record is free (unreachable), published by the release store of
/// an index cell, and never written again until it has been retired and reclaimed (see
/// SessionTables.swift for the ordering argument). The first cache line holds what a lookup and
/// a classification read; the second what actions read.
@frozen @usableFromInline
struct SessionRecord {
    // Cache line 0: keys, rules.
    @usableFromInline var seid: UInt64                       // 0
    /// Base of the version's contiguous block: rules first (also when there are none).
    @usableFromInline var rules: UnsafePointer<CompiledRule>? // 8
    @usableFromInline var n3TEID: UInt32                     // 16
    @usableFromInline var ueIPv4: UInt32                     // 20
    @usableFromInline var ruleCount: UInt16                  // 24
    @usableFromInline var flags: UInt8                       // 26
    @usableFromInline var defaultQFI: UInt8                  // 27
    /// Stable per-session index (kept across versions, reused after delete + reclaim).
    @usableFromInline var slot: UInt32                       // 28
    /// The UE's IPv6 prefix, masked; indexed by `high`.
    @usableFromInline var ueIPv6: IPAddress                  // 32
    /// Mask of the low 64 bits (0 for a /64).
    @usableFromInline var ueIPv6LowMask: UInt64              // 48
    /// Per-table put counter when this version was written.
    @usableFromInline var generation: UInt32                 // 56
    @usableFromInline var gnbTEID: UInt32                    // 60
    // Cache line 1: pools, tunnel ends.
    @usableFromInline var pools: CompiledPools               // 64
    @usableFromInline var qos: UnsafePointer<CompiledQoS>?   // 80
    @usableFromInline var counters: UnsafePointer<UInt16>?   // 88
    @usableFromInline var n3Address: IPAddress               // 96
    @usableFromInline var gnbAddress: IPAddress              // 112

    @usableFromInline static let hasIPv4: UInt8 = 1
    @usableFromInline static let hasIPv6: UInt8 = 2
    @usableFromInline static let hasGNB: UInt8 = 4
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
    /// The first cache line of the session version's rules (for prefetching); nil when none.
    @inlinable public var rulesAddress: UnsafeRawPointer? { record.pointee.rules.map { UnsafeRawPointer($0) } }

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
        return record.pointee.rules.unsafelyUnwrapped[index]
    }

    /// The first rule, in precedence order, that `flow` matches. `qfi` is the packet's QFI (0 if
    /// none), `source` where it came from. No allocation, no reference counting.
    @inlinable
    public func classify(flow: InnerFlow, qfi: UInt8, source: SourceInterface) -> RuleMatch? {
        let n = Int(record.pointee.ruleCount)
        guard n > 0 else { return nil }
        let rules = record.pointee.rules.unsafelyUnwrapped
        let pools = record.pointee.pools
        let code = source.compiledCode
        var i = 0
        while i < n {
            if rules[i].matches(flow, qfi: qfi, source: code, pools: pools) {
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
