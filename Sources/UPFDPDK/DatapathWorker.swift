import CDPDK
import Synchronization
import UPFDatapath
import UPFPackets
#if canImport(Glibc)
import Glibc
#endif

/// One RX queue a worker polls: the DPDK port, its queue and the port's index in the data
/// path's `PortTable`.
public struct PolledQueue: Sendable, Equatable {
    public var port: EthPort
    public var queue: UInt16
    public var portIndex: Int
    public init(port: EthPort, queue: UInt16, portIndex: Int) {
        self.port = port
        self.queue = queue
        self.portIndex = portIndex
    }
}

/// How a worker polls.
public struct WorkerTuning: Sendable, Equatable {
    /// Packets per RX burst (at most `MbufBurst.capacity`).
    public var burst = 32
    /// While every RX burst comes back full, a TX buffer that is not full is sent at the latest
    /// this long after its first packet; a poll round that leaves no backlog sends them all.
    public var drainMicroseconds = 100
    /// After this many consecutive empty poll rounds the worker naps `idleSleepMicroseconds`
    /// (0 = never: pure busy polling, for dedicated cores).
    public var idleRoundsBeforeSleep = 0
    public var idleSleepMicroseconds = 0
    /// Packets this worker may hold for buffering sessions in all (0: buffer actions drop as
    /// `buffering_unavailable`), sessions it may hold them for, and how long one may wait.
    public var bufferPackets = 1024
    public var bufferSessions = 256
    public var bufferHoldMicroseconds = 5_000_000
    /// When ≥ 0: the offset of a `UInt64` mbuf dynamic field into which the worker writes the
    /// TSC just before each TX burst, for every packet of it. The replay harness measures upfd's
    /// latency as this stamp minus the one it wrote when it put the packet on the RX ring: what
    /// a NIC would see, without the time the harness itself takes to collect the TX rings.
    /// -1 (production): nothing written.
    public var txStampField: Int32 = -1
    public init() {}
}

/// A worker lcore's run-to-completion loop: RX bursts from its queues → `PacketProcessor` →
/// per-port TX buffers (its own TX queue on every port) → TX bursts; dropped mbufs freed in bulk.
/// Every counter it writes is its own (`CounterBlock`); it announces a quiescent state to the
/// session tables after every poll round.
///
/// A final class only so that EAL can hand it to the lcore as one pointer: the loop copies what
/// it needs into locals and touches no reference count per packet.
public final class DatapathWorker: @unchecked Sendable {
    public let index: Int
    private var processor: PacketProcessor
    private let queues: [PolledQueue]
    /// DPDK port id of each `PortTable` index.
    private let portIDs: [UInt16]
    private let txQueue: UInt16
    private let tuning: WorkerTuning
    /// Set on the one worker that resolves next hops by ARP/ND (worker 0): the table to ask
    /// for and the pool its requests come from.
    private let resolver: (table: NeighborTable, pool: OpaquePointer)?
    /// Set on the one worker that sends what the control thread asks for (End Markers, Echo
    /// Requests; worker 0): the queue it consumes and the pool the messages come from.
    private let requests: (queue: DatapathEventQueue, pool: OpaquePointer)?
    private let stopRequested = Atomic<Bool>(false)
    private let running = Atomic<Bool>(false)
    /// Packets handed to `PacketProcessor` so far (for the replay harness to know when all
    /// input went through). Relaxed: a progress figure.
    private let processed = Atomic<UInt64>(0)
    /// The worker thread's timer slack once its loop runs (PR_GET_TIMERSLACK; 0 before).
    private let timerSlack = Atomic<Int>(0)

    public init(index: Int, processor: PacketProcessor, queues: [PolledQueue], portIDs: [UInt16], txQueue: UInt16,
                tuning: WorkerTuning, resolver: (table: NeighborTable, pool: Mempool)? = nil,
                requests: (queue: DatapathEventQueue, pool: Mempool)? = nil) {
        precondition(!portIDs.isEmpty && portIDs.count <= PortTable.maxPorts)
        precondition(tuning.burst >= 1 && tuning.burst <= MbufBurst.capacity)
        self.index = index
        self.processor = processor
        self.queues = queues
        self.portIDs = portIDs
        self.txQueue = txQueue
        self.tuning = tuning
        self.resolver = resolver.map { ($0.table, $0.pool.pointer) }
        self.requests = requests.map { ($0.queue, $0.pool.pointer) }
    }

    public var isRunning: Bool { running.load(ordering: .acquiring) }
    public var packetsProcessed: UInt64 { processed.load(ordering: .relaxed) }
    /// The worker thread's timer slack in nanoseconds: 1000 when it naps (`idleRoundsBeforeSleep`
    /// > 0), the kernel's default (50000) when it busy-polls; 0 before the loop started.
    public var timerSlackNanoseconds: Int { timerSlack.load(ordering: .relaxed) }

    /// The slack a napping worker asks for: a nap of `idleSleepMicroseconds` ends within 1 µs of
    /// its time instead of the default 50 µs (measured in the edge lab: docs/BENCHMARKS.md).
    public static let nappingTimerSlackNanoseconds: UInt = 1000

    /// Asks the loop to stop after its current round; it flushes its TX buffers first.
    public func requestStop() { stopRequested.store(true, ordering: .releasing) }

    /// The function EAL runs on the worker lcore; `argument` is an unretained `DatapathWorker`.
    public static let lcoreEntry: LcoreFunction = { argument in
        Unmanaged<DatapathWorker>.fromOpaque(argument!).takeUnretainedValue().run()
    }

    /// Launches the loop on `lcore`. The worker must stay alive until `Lcores.wait(lcore)`.
    public func launch(on lcore: UInt32) throws(DPDKError) {
        running.store(true, ordering: .releasing)
        do {
            try Lcores.launch(DatapathWorker.lcoreEntry, argument: Unmanaged.passUnretained(self).toOpaque(), on: lcore)
        } catch {
            running.store(false, ordering: .releasing)
            throw error
        }
    }

    /// Writes the TSC into dynamic field `field` of the `count` mbufs at `mbufs` (`WorkerTuning.txStampField`).
    @inline(never)
    static func stampTX(_ mbufs: UnsafeMutablePointer<OpaquePointer?>, count: Int, field: Int32) {
        let now = cdpdk_rdtsc()
        var j = 0
        while j < count {
            cdpdk_mbuf_field64(mbufs[j].unsafelyUnwrapped, field)!.pointee = now
            j &+= 1
        }
    }

    /// The poll loop. Returns 0 when stopped.
    public func run() -> Int32 {
        defer { running.store(false, ordering: .releasing) }
        if tuning.idleRoundsBeforeSleep > 0 {
            timerSlack.store(cdpdk_set_timer_slack_ns(DatapathWorker.nappingTimerSlackNanoseconds), ordering: .relaxed)
        } else {
            timerSlack.store(cdpdk_get_timer_slack_ns(), ordering: .relaxed)
        }
        let counters = processor.counters
        let layout = counters.layout
        let burst = tuning.burst
        let portCount = portIDs.count
        let rx = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: MbufBurst.capacity)
        let dropped = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: MbufBurst.capacity)
        let tx = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: portCount * MbufBurst.capacity)
        let txCount = UnsafeMutablePointer<Int>.allocate(capacity: portCount)
        let txSince = UnsafeMutablePointer<UInt64>.allocate(capacity: portCount)
        let ids = UnsafeMutablePointer<UInt16>.allocate(capacity: portCount)
        let polled = UnsafeMutablePointer<PolledQueue>.allocate(capacity: max(1, queues.count))
        txCount.initialize(repeating: 0, count: portCount)
        txSince.initialize(repeating: 0, count: portCount)
        ids.initialize(from: portIDs, count: portCount)
        polled.initialize(from: queues, count: queues.count)
        defer {
            rx.deallocate(); dropped.deallocate(); tx.deallocate(); txCount.deallocate(); txSince.deallocate()
            ids.deallocate(); polled.deallocate()
        }
        let queueCount = queues.count
        let txQueue = self.txQueue
        let txStampField = tuning.txStampField
        let drainCycles = UInt64(tuning.drainMicroseconds) &* cdpdk_tsc_hz() / 1_000_000
        let clock = MeterClock(cyclesPerSecond: cdpdk_tsc_hz())
        let reader = processor.reader
        let buffers = SessionBuffers(packets: tuning.bufferPackets, sessions: tuning.bufferSessions)
        let holdTicks = UInt64(tuning.bufferHoldMicroseconds) &* cdpdk_tsc_hz() / 1_000_000
        // Buffering sessions are looked at every millisecond (only while some are held).
        var nextSweep: UInt64 = 0
        // A local copy: a mutating call on a class property would be checked for exclusive access per packet.
        // The nested functions below take it `inout` rather than capturing it: a captured `var` is
        // checked at run time (`swift_beginAccess`, ~30 instructions) on every mutating call in the loop.
        var processor = self.processor
        var idleRounds = 0
        // Next-hop resolution is looked at every millisecond, not every round.
        let resolveCycles = max(1, cdpdk_tsc_hz() / 1000)
        var nextResolve: UInt64 = 0

        /// Sends port `p`'s buffer; what the queue does not take is freed and counted.
        func flush(_ p: Int) {
            let n = txCount[p]
            if n == 0 { return }
            let base = tx + p &* MbufBurst.capacity
            if txStampField >= 0 { DatapathWorker.stampTX(base, count: n, field: txStampField) }
            let sent = Int(cdpdk_tx_burst(ids[p], txQueue, base, UInt16(truncatingIfNeeded: n)))
            if sent < n {
                cdpdk_mbuf_free_bulk(base + sent, UInt32(n &- sent))
                counters.add(layout.port(p, .txDropped), UInt64(n &- sent))
                counters.add(layout.datapath(.txQueueFull), UInt64(n &- sent))
            }
            counters.add(layout.port(p, .txPackets), UInt64(sent))
            txCount[p] = 0
        }

        /// Puts a frame of `length` octets in `m` into port `p`'s TX buffer (an originated frame).
        func enqueueOriginated(_ m: OpaquePointer, length: Int, port p: Int, now: UInt64) {
            cdpdk_mbuf_set_len(m, UInt16(truncatingIfNeeded: length))
            counters.add(layout.port(p, .txBytes), UInt64(length))
            let k = txCount[p]
            if k == 0 { txSince[p] = now }
            tx[p &* MbufBurst.capacity &+ k] = m
            txCount[p] = k &+ 1
            if k &+ 1 == MbufBurst.capacity { flush(p) }
        }

        /// Queues an ARP request / Neighbour Solicitation on every port whose next hop is due.
        func resolveNextHops(_ processor: inout PacketProcessor, _ table: NeighborTable, pool: OpaquePointer, now: UInt64) {
            var due = table.due(now: now)
            while due != 0 {
                let p = due.trailingZeroBitCount
                due &= due &- 1
                guard let m = cdpdk_mbuf_alloc(pool) else { break }   // pool empty: try again next time
                let room = Int(cdpdk_mbuf_tailroom(m))
                let length = processor.writeNeighborRequest(port: p, into: cdpdk_mbuf_data(m), capacity: room)
                if length == 0 {
                    var one: OpaquePointer? = m
                    cdpdk_mbuf_free_bulk(&one, 1)
                    continue
                }
                enqueueOriginated(m, length: length, port: p, now: now)
            }
        }

        /// A packet the processor rewrote: its mbuf's window moved to the new headers, into
        /// the egress port's TX buffer.
        @inline(__always)
        func enqueue(_ m: OpaquePointer, _ verdict: PacketVerdict) {
            // The processor wrote the new headers in place; move the mbuf's window to them.
            if verdict.offset < 0 {
                _ = cdpdk_mbuf_prepend(m, UInt16(truncatingIfNeeded: -verdict.offset))
            } else if verdict.offset > 0 {
                _ = cdpdk_mbuf_adj(m, UInt16(truncatingIfNeeded: verdict.offset))
            }
            cdpdk_mbuf_set_len(m, UInt16(truncatingIfNeeded: verdict.length))
            let p = Int(verdict.egress)
            counters.add(layout.port(p, .txBytes), UInt64(truncatingIfNeeded: verdict.length))
            let k = txCount[p]
            if k == 0 { txSince[p] = cdpdk_rdtsc() }
            tx[p &* MbufBurst.capacity &+ k] = m
            txCount[p] = k &+ 1
            if k &+ 1 == MbufBurst.capacity { flush(p) }
        }

        func freeOne(_ m: OpaquePointer) {
            var one: OpaquePointer? = m
            cdpdk_mbuf_free_bulk(&one, 1)
        }

        /// Holds `m` for the session of the processor's last `buffered` verdict; false when
        /// it cannot be held (counted; the caller frees it).
        func hold(_ processor: inout PacketProcessor, _ m: OpaquePointer, ingress: Int, now: UInt64) -> Bool {
            let request = processor.bufferRequest
            switch buffers.hold(m, request, ingress: ingress, now: now) {
            case .first:
                counters.count(LocalCounter.buffered)
                processor.raiseEvent(DatapathEvent(kind: .downlinkData, port: UInt8(truncatingIfNeeded: ingress),
                                                   teid: request.teid, peer: request.ue, source: .zero,
                                                   seid: request.seid, generation: request.generation))
                return true
            case .appended:
                counters.count(LocalCounter.buffered)
                return true
            case .full:
                counters.count(DatapathDrop.bufferFull)
                return false
            case .unavailable:
                counters.count(DatapathDrop.bufferingUnavailable)
                return false
            }
        }

        /// Sessions updated since they buffered get their packets back, in order, judged by
        /// their new version (held again if it still buffers); see `SessionBuffers.sweep`.
        func sweepBuffers(_ processor: inout PacketProcessor, now: UInt64) {
            processor.now = clock.nanoseconds(now)
            processor.releasing = true
            buffers.sweep(now: now, holdTicks: holdTicks, version: { processor.currentVersion(of: $0) },
                          release: { m, ingress in
                              counters.count(LocalCounter.bufferReleased)
                              let verdict = processor.process(frame: cdpdk_mbuf_data(m), length: Int(cdpdk_mbuf_data_len(m)),
                                                              headroom: Int(cdpdk_mbuf_headroom(m)),
                                                              tailroom: Int(cdpdk_mbuf_tailroom(m)), ingress: ingress)
                              if !verdict.isDropped { enqueue(m, verdict) }
                              else if !verdict.isBuffered || !hold(&processor, m, ingress: ingress, now: now) { freeOne(m) }
                          },
                          drop: { m, reason in
                              counters.count(reason)
                              freeOne(m)
                          })
            processor.releasing = false
        }

        // Requests taken from the control thread's queue, sent once they have waited `settleCycles`:
        // an End Marker must follow the last G-PDU of the old path, which another worker may
        // have looked up just before the put and still hold in a TX buffer for `tx_drain_us`.
        let pendingCapacity = 64
        let pending = UnsafeMutablePointer<(event: DatapathEvent, seen: UInt64)>.allocate(capacity: pendingCapacity)
        defer { pending.deallocate() }
        var pendingCount = 0
        let settleCycles = drainCycles &+ resolveCycles
        var nextRequests: UInt64 = 0

        func serveRequests(_ processor: inout PacketProcessor, _ queue: DatapathEventQueue, pool: OpaquePointer, now: UInt64) {
            queue.drain { event in
                if pendingCount < pendingCapacity {
                    pending[pendingCount] = (event, now)
                    pendingCount &+= 1
                } else {
                    counters.count(LocalCounter.signallingUnsent)
                }
            }
            var kept = 0
            for i in 0..<pendingCount {
                let (event, seen) = pending[i]
                if now &- seen < settleCycles {
                    pending[kept] = pending[i]
                    kept &+= 1
                    continue
                }
                guard let m = cdpdk_mbuf_alloc(pool) else {
                    counters.count(LocalCounter.signallingUnsent)
                    continue
                }
                let room = Int(cdpdk_mbuf_tailroom(m))
                let port: Int
                let length: Int
                switch event.kind {
                case .endMarker:
                    port = processor.n3PortIndex
                    length = processor.writeEndMarker(teid: event.teid, peer: event.peer, source: event.source,
                                                      into: cdpdk_mbuf_data(m), capacity: room)
                case .echoRequest:
                    port = Int(event.port)
                    length = processor.writeEchoRequest(sequence: UInt16(truncatingIfNeeded: event.teid), peer: event.peer,
                                                        port: port, into: cdpdk_mbuf_data(m), capacity: room)
                default:
                    port = 0
                    length = 0
                    counters.count(LocalCounter.signallingUnsent)
                }
                if length == 0 { freeOne(m); continue }
                enqueueOriginated(m, length: length, port: port, now: now)
            }
            pendingCount = kept
        }

        reader.online()
        while !stopRequested.load(ordering: .relaxed) {
            let roundStart = cdpdk_rdtsc()
            processor.ticks = roundStart
            if let resolver, roundStart >= nextResolve {
                nextResolve = roundStart &+ resolveCycles
                resolveNextHops(&processor, resolver.table, pool: resolver.pool, now: roundStart)
            }
            if let requests, roundStart >= nextRequests {
                nextRequests = roundStart &+ resolveCycles
                serveRequests(&processor, requests.queue, pool: requests.pool, now: roundStart)
            }
            if buffers.active > 0 && roundStart >= nextSweep {
                nextSweep = roundStart &+ resolveCycles
                sweepBuffers(&processor, now: roundStart)
            }
            var received = 0
            // Some queue gave a full burst: more is waiting, so TX buffers may keep filling.
            var backlog = false
            var q = 0
            while q < queueCount {
                let source = polled[q]
                let n = Int(cdpdk_rx_burst(source.port.id, source.queue, rx, UInt16(truncatingIfNeeded: burst)))
                q &+= 1
                if n == 0 { continue }
                received &+= n
                if n == burst { backlog = true }
                // The arrival time of this burst, for the MBR meters (real time: the rate a
                // sender offers is measured in it).
                processor.now = clock.nanoseconds(cdpdk_rdtsc())
                var drops = 0
                var rxBytes = 0
                // Look the burst's sessions up together first (see `BurstLookahead`): the data
                // of every frame is prefetched, each frame's key peeked, then one burst lookup
                // overlaps the table misses that one lookup per packet would take in series.
                var i = 0
                while i < n { cdpdk_mbuf_prefetch_data(rx[i].unsafelyUnwrapped); i &+= 1 }
                processor.beginBurst(ingress: source.portIndex)
                i = 0
                while i < n {
                    let m = rx[i].unsafelyUnwrapped
                    processor.peek(i, frame: UnsafeRawPointer(cdpdk_mbuf_data(m)), length: Int(cdpdk_mbuf_data_len(m)),
                                   ingress: source.portIndex)
                    i &+= 1
                }
                processor.lookUpPeeked()
                // Whether this worker holds packets for any session (a local: read per packet below).
                var anyHeld = buffers.active > 0
                i = 0
                while i < n {
                    let m = rx[i].unsafelyUnwrapped
                    let index = i
                    i &+= 1
                    let length = Int(cdpdk_mbuf_data_len(m))
                    rxBytes &+= length
                    if cdpdk_mbuf_nb_segs(m) != 1 {
                        counters.count(DatapathDrop.multiSegment)
                        dropped[drops] = m
                        drops &+= 1
                        continue
                    }
                    let verdict = processor.process(frame: cdpdk_mbuf_data(m), length: length,
                                                    headroom: Int(cdpdk_mbuf_headroom(m)),
                                                    tailroom: Int(cdpdk_mbuf_tailroom(m)), ingress: source.portIndex,
                                                    burstIndex: index)
                    if verdict.isDropped {
                        if verdict.isBuffered && hold(&processor, m, ingress: source.portIndex, now: roundStart) {
                            anyHeld = true
                            continue
                        }
                        dropped[drops] = m
                        drops &+= 1
                        continue
                    }
                    // Leaving, from a session that may have packets held here: if that session
                    // was updated since (this version sends), they leave first, in order; the
                    // timed sweep would release them only after this one.
                    if anyHeld && buffers.mayHold(slot: processor.classifiedSlot) {
                        let burstNow = processor.now
                        sweepBuffers(&processor, now: cdpdk_rdtsc())
                        processor.now = burstNow
                    }
                    enqueue(m, verdict)
                }
                processor.endBurst()
                if drops > 0 { cdpdk_mbuf_free_bulk(dropped, UInt32(drops)) }
                counters.add(layout.port(source.portIndex, .rxPackets), UInt64(n))
                counters.add(layout.port(source.portIndex, .rxBytes), UInt64(rxBytes))
                processed.store(processed.load(ordering: .relaxed) &+ UInt64(n), ordering: .relaxed)
            }
            // Drain: everything at once when no queue had a backlog (the round emptied them all:
            // holding packets for a fuller TX burst would only add latency below saturation),
            // else the buffers past their deadline.
            let now = backlog ? cdpdk_rdtsc() : UInt64.max
            var p = 0
            while p < portCount {
                if txCount[p] > 0 && (now == .max || now &- txSince[p] >= drainCycles) { flush(p) }
                p &+= 1
            }
            reader.quiescent()
            if received == 0 {
                idleRounds &+= 1
                if tuning.idleRoundsBeforeSleep > 0 && idleRounds >= tuning.idleRoundsBeforeSleep {
                    // Offline while asleep, so the control thread never waits for a napping worker.
                    reader.offline()
                    usleep(UInt32(tuning.idleSleepMicroseconds))
                    reader.online()
                }
            } else {
                idleRounds = 0
            }
        }
        for p in 0..<portCount { flush(p) }
        buffers.discardAll { m, reason in
            counters.count(reason)
            freeOne(m)
        }
        reader.offline()
        return 0
    }
}
