import UPFPackets

/// The sessions of one receive burst, looked up together before its packets are processed.
///
/// Why: processed one by one, every packet's session lookup is two or three dependent cache
/// misses (index bucket, record, rule lines); at 1M sessions each is a DRAM access and the
/// worker waits for them in series. `TableReader.lookupUplinkBurst` overlaps the misses of a
/// whole burst, but it needs the keys first. So the worker *peeks* each frame's key at the
/// fixed offsets of the common layout — Ethernet (optionally one VLAN tag), IPv4 without
/// options, then on N3 UDP port 2152 and a G-PDU's TEID, on the core and engine ports the IPv4
/// destination — looks the burst up at once, and then processes the packets as usual.
///
/// A peeked session is only a hint: the processor takes it only when the key its own full
/// parse found is the one peeked (`PacketProcessor.uplinkSession`, `downlinkSession`), so a
/// frame of any other layout costs at most one wasted lookup, never a wrong session. The hints
/// are valid for the burst they were made for, inside one poll round: the handles stay readable
/// until the worker's next RCU quiescent point, which comes only after the round.
@frozen @usableFromInline
struct BurstLookahead {
    /// The peeked keys, compacted (frames without a key have none here).
    @usableFromInline let keys: UnsafeMutablePointer<UInt32>
    /// Per frame of the burst: the index of its key in `keys`, or -1.
    @usableFromInline let position: UnsafeMutablePointer<Int16>
    /// Per key: its session, or nil when the table has none.
    @usableFromInline let sessions: UnsafeMutablePointer<SessionHandle?>
    /// Frames peeked in the current burst (0: no hints).
    @usableFromInline var frames = 0
    @usableFromInline var keyCount = 0
    /// The keys are N3 TEIDs (a burst from the N3 port), else UE IPv4 addresses.
    @usableFromInline var uplink = false
    /// The burst index of the frame being processed, or -1 (a frame not from a peeked burst,
    /// such as a buffered packet being released).
    @usableFromInline var current = -1

    @inlinable
    init(storage: BurstLookaheadStorage) {
        keys = storage.keys
        position = storage.position
        sessions = storage.sessions
    }

    /// The hint for the frame being processed when it was peeked with `key` in this direction.
    @inlinable @inline(__always)
    func hint(uplink: Bool, key: UInt32) -> SessionHandle?? {
        guard current >= 0 && current < frames && self.uplink == uplink else { return .none }
        let p = Int(position[current])
        guard p >= 0 && keys[p] == key else { return .none }
        return .some(sessions[p])
    }
}

/// Owns the memory of a processor's `BurstLookahead` (allocated once, at start-up).
public final class BurstLookaheadStorage {
    /// The most frames a burst may have for the lookahead (the worker's burst is at most this).
    public static let capacity = 256
    @usableFromInline let keys: UnsafeMutablePointer<UInt32>
    @usableFromInline let position: UnsafeMutablePointer<Int16>
    @usableFromInline let sessions: UnsafeMutablePointer<SessionHandle?>

    init() {
        let n = BurstLookaheadStorage.capacity
        keys = .allocate(capacity: n)
        keys.initialize(repeating: 0, count: n)
        position = .allocate(capacity: n)
        position.initialize(repeating: -1, count: n)
        sessions = .allocate(capacity: n)
        sessions.initialize(repeating: nil, count: n)
    }

    deinit {
        keys.deallocate()
        position.deallocate()
        sessions.deallocate()
    }
}

extension PacketProcessor {
    /// Starts a burst of frames received on port `ingress` (see `BurstLookahead`): forget the
    /// last burst's hints. Then `peek` each frame, `lookUpPeeked()`, and process frame `i`
    /// with `burstIndex: i`.
    @inlinable
    public mutating func beginBurst(ingress: Int) {
        ahead.frames = 0
        ahead.keyCount = 0
        ahead.uplink = ingress >= 0 && ingress < portCount && ports[ingress].role == .n3
    }

    /// Peeks the session key of frame `index` of the burst (its data should be in cache or
    /// prefetched). Frames past `BurstLookaheadStorage.capacity`, or not in the common layout,
    /// get no hint and are looked up alone.
    @inlinable
    public mutating func peek(_ index: Int, frame: UnsafeRawPointer, length: Int, ingress: Int) {
        guard index >= 0 && index < BurstLookaheadStorage.capacity else { return }
        while ahead.frames < index { ahead.position[ahead.frames] = -1; ahead.frames &+= 1 }
        ahead.position[index] = -1
        ahead.frames = index &+ 1
        guard let key = PacketProcessor.peekKey(PacketBytes(base: frame, count: length), uplink: ahead.uplink,
                                                 role: ports[ingress].role) else { return }
        ahead.keys[ahead.keyCount] = key
        ahead.position[index] = Int16(truncatingIfNeeded: ahead.keyCount)
        ahead.keyCount &+= 1
    }

    /// Looks up the keys peeked in this burst, all at once (see `BurstLookahead`).
    @inlinable
    public mutating func lookUpPeeked() {
        guard ahead.keyCount > 0 else { return }
        if ahead.uplink {
            reader.lookupUplinkBurst(teids: ahead.keys, count: ahead.keyCount, into: ahead.sessions)
        } else {
            reader.lookupDownlinkBurst(ipv4: ahead.keys, count: ahead.keyCount, into: ahead.sessions)
        }
        // The per-rule counters of each found session are one more random line per packet at
        // scale (the rule words of a session are adjacent; most packets stop at its first rules).
        var k = 0
        while k < ahead.keyCount {
            if let session = ahead.sessions[k] { counters.prefetchRuleCounters(slot: session.slot) }
            k &+= 1
        }
    }

    /// Ends the burst: no frame is processed with its hints any more.
    @inlinable
    public mutating func endBurst() {
        ahead.frames = 0
        ahead.keyCount = 0
        ahead.current = -1
    }

    /// The key a frame of the common layout would be looked up by, read at fixed offsets: on
    /// N3 the TEID of an IPv4 G-PDU (UDP port 2152, message type 255); on core and engine
    /// ports the IPv4 destination — except UDP to port 2152 on the core side, which may be N9
    /// GTP-U (looked up by TEID) and is left to the parser.
    @inlinable @inline(__always)
    static func peekKey(_ b: PacketBytes, uplink: Bool, role: PortRole) -> UInt32? {
        guard b.count >= 34 else { return nil }
        var l3 = 14
        var type = b.u16(12)
        if type == 0x8100 {
            guard b.count >= 38 else { return nil }
            type = b.u16(16)
            l3 = 18
        }
        guard type == 0x0800, b.u8(l3) == 0x45 else { return nil }
        if uplink {
            guard b.count >= l3 &+ 36, b.u8(l3 &+ 9) == IPProtocol.udp, b.u16(l3 &+ 22) == GTPU.udpPort,
                  b.u8(l3 &+ 29) == 0xFF
            else { return nil }
            return b.u32(l3 &+ 32)
        }
        if role == .core && b.u8(l3 &+ 9) == IPProtocol.udp && b.count >= l3 &+ 24 && b.u16(l3 &+ 22) == GTPU.udpPort {
            return nil
        }
        return b.u32(l3 &+ 16)
    }

    /// The session of an uplink G-PDU's TEID: the burst's hint when it was peeked with the
    /// same TEID, else a lookup of its own.
    @inlinable @inline(__always)
    func uplinkSession(teid: UInt32) -> SessionHandle? {
        if case .some(let hinted) = ahead.hint(uplink: true, key: teid) { return hinted }
        return reader.lookupUplink(teid: teid)
    }

    /// The session of a downlink packet's UE address (see `uplinkSession`).
    @inlinable @inline(__always)
    func downlinkSession(_ ue: IPAddress) -> SessionHandle? {
        if ue.isIPv4, case .some(let hinted) = ahead.hint(uplink: false, key: ue.ipv4) { return hinted }
        return reader.lookupDownlink(ue)
    }
}
