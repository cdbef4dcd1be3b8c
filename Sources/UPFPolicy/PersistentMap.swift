import UPFPackets

/// A persistent hash map (a hash array mapped trie): updating one key copies only the nodes on its
/// path (at most 13, about log32(n)) and shares every other node with the previous version, so a
/// `PolicyState` can be updated in O(1) while the version before it stays valid and unchanged
/// for whoever still holds it. Nodes referenced by one version only are mutated in place.
struct PersistentMap<Key: Hashable, Value>: Sequence {
    private var root: Node?
    private(set) var count: Int = 0
    /// Nodes allocated by the mutations that made this value (inherited by copies). Tests use it
    /// to check that one update touches a bounded number of nodes whatever the size of the map.
    private(set) var allocations: Int = 0

    init() {}

    var isEmpty: Bool { count == 0 }

    final class Node: @unchecked Sendable {
        // Mutated only while uniquely referenced (see `isKnownUniquelyReferenced` below), so two
        // accesses can never overlap: the runtime's exclusivity check (a thread-local access set,
        // entered and left on every read and write of a class property) is left out. It was
        // about 30 calls per batched session, 5 % of the policy thread's instructions.
        @exclusivity(unchecked) var bitmap: UInt32
        @exclusivity(unchecked) var slots: [Slot]

        init(bitmap: UInt32, slots: [Slot]) {
            self.bitmap = bitmap
            self.slots = slots
        }
    }

    enum Slot {
        case entry(hash: UInt64, key: Key, value: Value)
        case child(Node)
        /// Keys whose 64-bit hashes are all equal.
        case collision(hash: UInt64, entries: [(key: Key, value: Value)])
    }

    /// Integer, address and prefix keys (SEIDs, TEIDs, UE addresses and prefixes: every session
    /// update hashes several) by a fixed 64-bit mixer (murmur3's finaliser, a bijection: two
    /// integer keys never share a hash, so they never meet in a collision node, and a path is at
    /// most 13 levels deep whatever the keys); other keys by `hashValue` (seeded SipHash, ~100
    /// instructions a key, and a different trie shape in every process). The fixed hash also
    /// makes a table's shape, and so what one update copies, the same in every run.
    /// After specialisation the casts fold away.
    @inline(__always)
    private static func hash(_ key: Key) -> UInt64 {
        if let k = key as? UInt64 { return mix(k) }
        if let k = key as? UInt32 { return mix(UInt64(k)) }
        if let k = key as? IPAddress { return mix(k.low ^ mix(k.high)) }
        if let k = key as? IPPrefix { return mix(k.address.low ^ mix(k.address.high ^ UInt64(k.length))) }
        return UInt64(bitPattern: Int64(key.hashValue))
    }

    @inline(__always)
    private static func mix(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x &*= 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        x &*= 0xC4CE_B9FE_1A85_EC53
        x ^= x >> 33
        return x
    }
    private static func bit(_ hash: UInt64, _ shift: UInt64) -> UInt32 { 1 << UInt32((hash >> shift) & 31) }
    private static func index(_ bitmap: UInt32, _ bit: UInt32) -> Int { (bitmap & (bit &- 1)).nonzeroBitCount }

    subscript(key: Key) -> Value? {
        guard let root else { return nil }
        let hash = Self.hash(key)
        // The path is walked at +0: the map holds every node on it for the whole lookup. Taking
        // each node and its slot array as strong references was three atomic increments a
        // level on cold cache lines, the policy thread's largest cost (perf: `swift_retain`
        // called from here, ~8 % of its time).
        return withExtendedLifetime(root) {
            var node = Unmanaged.passUnretained(root)
            var shift: UInt64 = 0
            while true {
                var next: Unmanaged<Node>?
                let found: Value? = node._withUnsafeGuaranteedRef { current in
                    let bit = Self.bit(hash, shift)
                    guard current.bitmap & bit != 0 else { return nil }
                    return current.slots.withUnsafeBufferPointer { slots in
                        switch slots[Self.index(current.bitmap, bit)] {
                        case .entry(let h, let k, let v):
                            return h == hash && k == key ? v : nil
                        case .child(let child):
                            next = Unmanaged.passUnretained(child)
                            return nil
                        case .collision(let h, let entries):
                            guard h == hash else { return nil }
                            return entries.first(where: { $0.key == key })?.value
                        }
                    }
                }
                guard let child = next else { return found }
                node = child
                shift &+= 5
            }
        }
    }

    func contains(_ key: Key) -> Bool { self[key] != nil }

    /// Sets `key` to `value`; returns the previous value.
    @discardableResult
    mutating func updateValue(_ value: Value, forKey key: Key) -> Value? {
        let hash = Self.hash(key)
        guard var node = root else {
            root = Node(bitmap: Self.bit(hash, 0), slots: [.entry(hash: hash, key: key, value: value)])
            allocations += 1
            count = 1
            return nil
        }
        root = nil  // so that `node` is the only reference when this value owns the tree
        let old = Self.insert(&node, hash: hash, shift: 0, key: key, value: value, allocations: &allocations)
        root = node
        if old == nil { count += 1 }
        return old
    }

    /// Removes `key`; returns its value.
    @discardableResult
    mutating func removeValue(forKey key: Key) -> Value? {
        guard var node = root else { return nil }
        let hash = Self.hash(key)
        guard self[key] != nil else { return nil }  // so that a miss copies nothing
        root = nil
        let old = Self.remove(&node, hash: hash, shift: 0, key: key, allocations: &allocations)
        root = node.slots.isEmpty ? nil : node
        if old != nil { count -= 1 }
        return old
    }

    private static func makeUnique(_ node: inout Node, _ allocations: inout Int) {
        if !isKnownUniquelyReferenced(&node) {
            node = Node(bitmap: node.bitmap, slots: node.slots)
            allocations += 1
        }
    }

    private static func insert(_ node: inout Node, hash: UInt64, shift: UInt64, key: Key, value: Value,
                               allocations: inout Int) -> Value? {
        makeUnique(&node, &allocations)
        let bit = bit(hash, shift)
        let index = index(node.bitmap, bit)
        guard node.bitmap & bit != 0 else {
            node.slots.insert(.entry(hash: hash, key: key, value: value), at: index)
            node.bitmap |= bit
            return nil
        }
        switch node.slots[index] {
        case .entry(let h, let k, let v):
            if h == hash && k == key {
                node.slots[index] = .entry(hash: hash, key: key, value: value)
                return v
            }
            node.slots[index] = split(.entry(hash: h, key: k, value: v), existingHash: h, hash: hash, key: key,
                                      value: value, shift: shift + 5, allocations: &allocations)
            return nil
        case .child(var child):
            node.slots[index] = .collision(hash: 0, entries: [])  // drop the slot's reference to `child`
            let old = insert(&child, hash: hash, shift: shift + 5, key: key, value: value, allocations: &allocations)
            node.slots[index] = .child(child)
            return old
        case .collision(let h, var entries):
            if h == hash {
                if let i = entries.firstIndex(where: { $0.key == key }) {
                    let old = entries[i].value
                    entries[i].value = value
                    node.slots[index] = .collision(hash: h, entries: entries)
                    return old
                }
                entries.append((key, value))
                node.slots[index] = .collision(hash: h, entries: entries)
                return nil
            }
            node.slots[index] = split(.collision(hash: h, entries: entries), existingHash: h, hash: hash, key: key,
                                      value: value, shift: shift + 5, allocations: &allocations)
            return nil
        }
    }

    /// A slot holding both an existing entry (or collision list) and a new entry with another hash.
    private static func split(_ existing: Slot, existingHash: UInt64, hash: UInt64, key: Key, value: Value,
                              shift: UInt64, allocations: inout Int) -> Slot {
        if shift >= 64 {
            // Only reached when all 64 bits are equal.
            var entries: [(key: Key, value: Value)] = []
            switch existing {
            case .entry(_, let k, let v): entries.append((k, v))
            case .collision(_, let list): entries = list
            case .child: preconditionFailure("split of a child")
            }
            entries.append((key, value))
            return .collision(hash: hash, entries: entries)
        }
        allocations += 1
        let b1 = bit(existingHash, shift), b2 = bit(hash, shift)
        if b1 == b2 {
            let inner = split(existing, existingHash: existingHash, hash: hash, key: key, value: value,
                              shift: shift + 5, allocations: &allocations)
            return .child(Node(bitmap: b1, slots: [inner]))
        }
        let new = Slot.entry(hash: hash, key: key, value: value)
        return .child(Node(bitmap: b1 | b2, slots: b1 < b2 ? [existing, new] : [new, existing]))
    }

    private static func remove(_ node: inout Node, hash: UInt64, shift: UInt64, key: Key,
                               allocations: inout Int) -> Value? {
        let bit = bit(hash, shift)
        guard node.bitmap & bit != 0 else { return nil }
        makeUnique(&node, &allocations)
        let index = index(node.bitmap, bit)
        switch node.slots[index] {
        case .entry(let h, let k, let v):
            guard h == hash && k == key else { return nil }
            node.slots.remove(at: index)
            node.bitmap &= ~bit
            return v
        case .child(var child):
            node.slots[index] = .collision(hash: 0, entries: [])
            let old = remove(&child, hash: hash, shift: shift + 5, key: key, allocations: &allocations)
            if child.slots.isEmpty {
                node.slots.remove(at: index)
                node.bitmap &= ~bit
            } else if child.slots.count == 1, case .child = child.slots[0] {
                node.slots[index] = .child(child)
            } else if child.slots.count == 1 {
                node.slots[index] = child.slots[0]  // pull a lone entry (or collision list) up
            } else {
                node.slots[index] = .child(child)
            }
            return old
        case .collision(let h, var entries):
            guard h == hash, let i = entries.firstIndex(where: { $0.key == key }) else { return nil }
            let old = entries.remove(at: i).value
            if entries.count == 1 {
                node.slots[index] = .entry(hash: h, key: entries[0].key, value: entries[0].value)
            } else {
                node.slots[index] = .collision(hash: h, entries: entries)
            }
            return old
        }
    }

    /// Depth-first; the order is the hash order, not the key order.
    struct Iterator: IteratorProtocol {
        var stack: [(Node, Int)] = []
        var pending: [(key: Key, value: Value)] = []

        mutating func next() -> (key: Key, value: Value)? {
            if let entry = pending.popLast() { return entry }
            while let (node, index) = stack.popLast() {
                guard index < node.slots.count else { continue }
                stack.append((node, index + 1))
                switch node.slots[index] {
                case .entry(_, let k, let v): return (k, v)
                case .child(let child): stack.append((child, 0))
                case .collision(_, let entries):
                    pending = Array(entries.dropFirst())
                    return entries[0]
                }
            }
            return nil
        }
    }

    func makeIterator() -> Iterator {
        var it = Iterator()
        if let root { it.stack.append((root, 0)) }
        return it
    }

    var keys: [Key] { map(\.key) }
    var values: [Value] { map(\.value) }
    /// Any one entry, in O(depth).
    var first: (key: Key, value: Value)? { var it = makeIterator(); return it.next() }
}

extension PersistentMap: @unchecked Sendable where Key: Sendable, Value: Sendable {}
