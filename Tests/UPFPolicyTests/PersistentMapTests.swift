import Testing
@testable import UPFPolicy

@Suite struct PersistentMapTests {
    /// A key whose hash is chosen by the test, to force deep tries and full 64-bit collisions.
    struct Key: Hashable {
        var id: Int
        var hash: Int
        static func == (a: Key, b: Key) -> Bool { a.id == b.id }
        func hash(into hasher: inout Hasher) { hasher.combine(hash) }
    }

    /// Random updates and removals against a Dictionary, keeping every 50th version to check that
    /// later changes never alter an earlier one.
    @Test(arguments: [1 << 40, 7, 1])
    func behavesLikeADictionaryAndKeepsOldVersions(hashBuckets: Int) {
        var generator = SystemRandomNumberGenerator()
        var map = PersistentMap<Key, Int>()
        var reference: [Key: Int] = [:]
        var saved: [(PersistentMap<Key, Int>, [Key: Int])] = []
        for step in 0..<3000 {
            let id = Int.random(in: 0..<400, using: &generator)
            let key = Key(id: id, hash: (id &* 0x5851_F42D_4C95_7F2D) % hashBuckets)
            if Bool.random(using: &generator) {
                #expect(map.updateValue(step, forKey: key) == reference.updateValue(step, forKey: key))
            } else {
                #expect(map.removeValue(forKey: key) == reference.removeValue(forKey: key))
            }
            #expect(map.count == reference.count)
            if step % 50 == 0 { saved.append((map, reference)) }
        }
        for (version, expected) in saved + [(map, reference)] {
            #expect(version.count == expected.count)
            #expect(Dictionary(uniqueKeysWithValues: version.map { ($0.key, $0.value) }) == expected)
            for (key, value) in expected { #expect(version[key] == value) }
        }
    }

    /// UInt64 keys are hashed by the fixed mixer, so the trie, and the bound on the path copied,
    /// is the same in every run (Int keys would be SipHashed with the process's seed: a 1-in-1000
    /// run could put key 1 five levels deep).
    @Test func aMissDoesNotCopy() {
        var map = PersistentMap<UInt64, Int>()
        for i in 0..<1000 { map.updateValue(Int(i), forKey: UInt64(i)) }
        let copy = map
        let before = map.allocations
        #expect(map.removeValue(forKey: 5000) == nil)
        #expect(map.allocations == before)
        map.updateValue(1, forKey: 1)
        #expect(map.allocations - before <= 4)
        #expect(copy[1] == 1)
    }
}
