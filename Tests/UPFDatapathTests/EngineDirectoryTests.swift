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
