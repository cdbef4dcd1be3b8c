import UPFDatapath

/// The packets one worker holds for sessions whose rule says `buffer` (downlink data for an idle
/// UE while the SMF pages it, TS 23.501 §5.8.3): per session in arrival order, at most the FAR's
/// `limit` packets per session and `packetCapacity` in all, so buffering can never take the
/// mbufs RX needs.
///
/// Everything is allocated at start: a pool of nodes (the mbuf, its arrival time, the next node)
/// in free and per-session linked lists, and a fixed table of buffering sessions. Holding and
/// releasing packets allocates nothing. Only the worker that owns it touches it.
///
/// The worker asks `sweep` about once a millisecond what became of each session: updated (its
/// generation changed) → its packets go back through the fast path in order; deleted → they
/// are discarded; held past the hold time → the oldest are dropped as expired. It also asks at
/// once when it is about to send a packet of a session that may have packets held (`mayHold`):
/// the held ones must leave first.
final class SessionBuffers {
    enum HoldResult {
        /// The first packet held for this session (raise the downlink-data event).
        case first
        case appended
        /// The session's limit, the store's packets or its sessions are exhausted.
        case full
        /// This worker holds nothing (`packetCapacity` 0).
        case unavailable
    }

    private struct Entry {
        var request = BufferRequest()
        var ingress = 0
        var head: Int32 = -1
        var tail: Int32 = -1
        var count: UInt32 = 0
    }

    let packetCapacity: Int
    let sessionCapacity: Int
    /// Packets held now, over every session.
    private(set) var held = 0
    /// Entries in use: `entries[0..<active]` (removal moves the last one into the gap).
    private(set) var active = 0
    private let mbufs: UnsafeMutablePointer<OpaquePointer?>
    private let arrivals: UnsafeMutablePointer<UInt64>
    private let next: UnsafeMutablePointer<Int32>
    private var freeHead: Int32
    private let entries: UnsafeMutablePointer<Entry>
    /// Entries per slot hash (`slot & slotHashMask`): lets the worker ask, per packet it sends,
    /// whether the packet's session may have packets held here, with one load.
    private let entriesBySlotHash: UnsafeMutablePointer<UInt32>
    private static let slotHashMask: UInt32 = 4095

    init(packets: Int, sessions: Int) {
        precondition(packets >= 0 && sessions >= 0 && packets < Int(Int32.max))
        packetCapacity = packets
        sessionCapacity = packets == 0 ? 0 : max(1, sessions)
        mbufs = .allocate(capacity: max(1, packets))
        arrivals = .allocate(capacity: max(1, packets))
        next = .allocate(capacity: max(1, packets))
        mbufs.initialize(repeating: nil, count: max(1, packets))
        arrivals.initialize(repeating: 0, count: max(1, packets))
        for i in 0..<max(1, packets) { (next + i).initialize(to: Int32(i + 1 < packets ? i + 1 : -1)) }
        freeHead = packets > 0 ? 0 : -1
        entries = .allocate(capacity: max(1, sessionCapacity))
        entries.initialize(repeating: Entry(), count: max(1, sessionCapacity))
        entriesBySlotHash = .allocate(capacity: Int(SessionBuffers.slotHashMask) + 1)
        entriesBySlotHash.initialize(repeating: 0, count: Int(SessionBuffers.slotHashMask) + 1)
    }

    /// False when no packet is held for a session in `slot` (true may be another slot's).
    @inline(__always)
    func mayHold(slot: UInt32) -> Bool { entriesBySlotHash[Int(slot & SessionBuffers.slotHashMask)] != 0 }

    deinit {
        precondition(held == 0, "SessionBuffers released while holding mbufs (call discardAll first)")
        mbufs.deallocate(); arrivals.deallocate(); next.deallocate(); entries.deallocate(); entriesBySlotHash.deallocate()
    }

    /// Appends `mbuf` (which arrived on `ingress` at `now`) to the buffer of the session
    /// `request` names. On `full` / `unavailable` the caller still owns the mbuf.
    func hold(_ mbuf: OpaquePointer, _ request: BufferRequest, ingress: Int, now: UInt64) -> HoldResult {
        guard packetCapacity > 0 else { return .unavailable }
        // By slot and SEID: a later version of the same session joins its queue (the sweep
        // then releases the whole queue, in order, to be judged by that version).
        var e = 0
        while e < active && !(entries[e].request.slot == request.slot && entries[e].request.seid == request.seid) { e &+= 1 }
        let first = e == active
        if first {
            guard active < sessionCapacity else { return .full }
        } else if entries[e].count >= request.limit {
            return .full
        }
        guard request.limit > 0, freeHead >= 0 else { return .full }
        let node = freeHead
        freeHead = next[Int(node)]
        mbufs[Int(node)] = mbuf
        arrivals[Int(node)] = now
        next[Int(node)] = -1
        if first {
            entries[e] = Entry(request: request, ingress: ingress, head: node, tail: node, count: 1)
            entriesBySlotHash[Int(request.slot & SessionBuffers.slotHashMask)] &+= 1
            active &+= 1
        } else {
            next[Int(entries[e].tail)] = node
            entries[e].tail = node
            entries[e].count &+= 1
        }
        held &+= 1
        return first ? .first : .appended
    }

    /// What became of each buffering session. `version` says what its key finds now (nil:
    /// nothing); a session found with another generation is released: `release` gets its
    /// packets in arrival order (their nodes already free, so they may be held again); one not
    /// found, or found in another slot, is discarded; packets older than `holdTicks` expire.
    /// `drop` gets every discarded or expired mbuf with its reason.
    func sweep(now: UInt64, holdTicks: UInt64,
               version: (BufferRequest) -> (slot: UInt32, generation: UInt32)?,
               release: (OpaquePointer, Int) -> Void,
               drop: (OpaquePointer, DatapathDrop) -> Void) {
        var e = 0
        while e < active {
            // Expired first, oldest at the head.
            while entries[e].head >= 0 && now &- arrivals[Int(entries[e].head)] > holdTicks {
                let node = entries[e].head
                entries[e].head = next[Int(node)]
                entries[e].count &-= 1
                drop(take(node), .bufferExpired)
            }
            if entries[e].head < 0 {
                remove(e)
                continue
            }
            let request = entries[e].request
            let current = version(request)
            if let current, current.slot == request.slot, current.generation == request.generation {
                e &+= 1
                continue
            }
            // Detach the queue first: releasing may hold packets again, for a new entry.
            var node = entries[e].head
            let ingress = entries[e].ingress
            remove(e)
            let releasing = current.map { $0.slot == request.slot } ?? false
            while node >= 0 {
                let following = next[Int(node)]
                let mbuf = take(node)
                if releasing { release(mbuf, ingress) } else { drop(mbuf, .bufferDiscarded) }
                node = following
            }
            // `remove` moved the last entry (not yet looked at, or new) into `e`: look at it next.
        }
    }

    /// Every held packet, to `drop` as discarded (the worker is stopping).
    func discardAll(_ drop: (OpaquePointer, DatapathDrop) -> Void) {
        while active > 0 {
            var node = entries[0].head
            remove(0)
            while node >= 0 {
                let following = next[Int(node)]
                drop(take(node), .bufferDiscarded)
                node = following
            }
        }
    }

    /// The node's mbuf; the node goes back to the free list.
    private func take(_ node: Int32) -> OpaquePointer {
        let mbuf = mbufs[Int(node)].unsafelyUnwrapped
        mbufs[Int(node)] = nil
        next[Int(node)] = freeHead
        freeHead = node
        held &-= 1
        return mbuf
    }

    private func remove(_ e: Int) {
        entriesBySlotHash[Int(entries[e].request.slot & SessionBuffers.slotHashMask)] &-= 1
        active &-= 1
        if e != active { entries[e] = entries[active] }
        entries[active] = Entry()
    }
}
