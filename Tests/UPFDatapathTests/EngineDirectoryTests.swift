import Synchronization
import Testing
import UPFPackets
@testable import UPFDatapath

@Suite struct EngineDirectoryTests {
    @Test func entriesReadBackAsWritten() {
        let d = EngineDirectory(capacity: 2)
        #expect(d.snapshot(0) == nil)
        #expect(d.view.choose(0, flowHash: 1) == .fallbackCore)      // absent: as if not steered
        #expect(d.view.choose(7, flowHash: 1) == .fallbackCore)      // out of range
        d.set(1, instances: [EngineDirectory.Instance(port: 3, mac: MACAddress(0x0200_0000_5010)),
                             EngineDirectory.Instance(port: 3, mac: nil)], fallbackDrop: true)
        let entry = d.snapshot(1)
        #expect(entry?.fallbackDrop == true)
        // An instance without a MAC is never up (nothing to address it with).
        #expect(entry?.instances == [EngineDirectory.Instance(port: 3, mac: MACAddress(0x0200_0000_5010), up: true),
                                     EngineDirectory.Instance(port: 3, mac: nil, up: false)])
        for h in 0..<64 as Range<UInt64> {
            #expect(d.view.choose(1, flowHash: h &* 0x9E37_79B9_7F4A_7C15) == .instance(port: 3, mac: MACAddress(0x0200_0000_5010), index: 0))
        }
        d.setUp(1, instance: 0, up: false)
        #expect(d.view.choose(1, flowHash: 5) == .fallbackDrop)
        d.setUp(1, instance: 1, up: true)                            // still no MAC: stays down
        #expect(d.view.choose(1, flowHash: 5) == .fallbackDrop)
        d.clear(1)
        #expect(d.snapshot(1) == nil && d.view.choose(1, flowHash: 5) == .fallbackCore)
    }

    /// For every set of up instances (all 255 masks of 8), a flow gets the k-th up instance in
    /// index order with k = ⌊hash32 × up count / 2³²⌋ — the order the writer packs into the
    /// header — and flows spread over every up instance and no other; taking one instance down
    /// and up again (`setUp`) gives the same choices back.
    @Test func choosesTheKthUpInstanceForEveryMask() {
        let d = EngineDirectory(capacity: 1)
        let instances = (0..<8).map { EngineDirectory.Instance(port: 2, mac: MACAddress(0x0200_0000_5000 | UInt64($0))) }
        d.set(0, instances: instances, fallbackDrop: false)
        for mask in 1..<256 {
            for i in 0..<8 { d.setUp(0, instance: i, up: mask >> i & 1 != 0) }
            let upIndices = (0..<8).filter { mask >> $0 & 1 != 0 }
            var seen = Set<Int>()
            for h in 0..<256 as Range<UInt64> {
                let hash = h &* 0x9E37_79B9_7F4A_7C15
                let k = Int((UInt64(UInt32(truncatingIfNeeded: hash ^ hash >> 32)) &* UInt64(upIndices.count)) >> 32)
                let want = upIndices[k]
                guard case .instance(let port, let mac, let index) = d.view.choose(0, flowHash: hash),
                      index == want, port == 2, mac == MACAddress(0x0200_0000_5000 | UInt64(want))
                else {
                    Issue.record("mask \(mask), hash \(hash): \(d.view.choose(0, flowHash: hash)), want instance \(want)")
                    return
                }
                seen.insert(index)
            }
            #expect(seen == Set(upIndices), "mask \(mask)")
        }
        for i in 0..<8 { d.setUp(0, instance: i, up: false) }
        #expect(d.view.choose(0, flowHash: 1) == .fallbackCore)
        d.setUp(0, instance: 5, up: true)
        #expect(d.view.choose(0, flowHash: 1) == .instance(port: 2, mac: MACAddress(0x0200_0000_5005), index: 5))
        #expect(d.snapshot(0)?.instances.map(\.up) == [false, false, false, false, false, true, false, false])
    }

    /// A worker choosing instances while the control thread rewrites the engine never sees a mix
    /// of two versions: every version's instances share one port and carry MACs derived from it.
    @Test func readersNeverSeeATornEntry() {
        let d = EngineDirectory(capacity: 1)
        func version(_ v: UInt16) -> [EngineDirectory.Instance] {
            (0..<Int(v % 8) + 1).map { i in EngineDirectory.Instance(port: v, mac: MACAddress(UInt64(v) << 16 | UInt64(i))) }
        }
        d.set(0, instances: version(1), fallbackDrop: false)
        let done = Atomic<Bool>(false)
        let torn = Atomic<Int>(0)
        let reads = Atomic<Int>(0)
        let view = d.view
        let reader = TestThread {
            var h: UInt64 = 1
            while !done.load(ordering: .acquiring) {
                h = h &* 6364136223846793005 &+ 1442695040888963407
                if case let .instance(port, mac, _) = view.choose(0, flowHash: h), mac.value >> 16 != UInt64(port) {
                    torn.add(1, ordering: .relaxed)
                }
                reads.add(1, ordering: .relaxed)
            }
        }
        for v in 2..<20_000 { d.set(0, instances: version(UInt16(v)), fallbackDrop: false) }
        done.store(true, ordering: .releasing)
        reader.join()
        #expect(torn.load(ordering: .relaxed) == 0)
        #expect(reads.load(ordering: .relaxed) > 0)
    }
}
