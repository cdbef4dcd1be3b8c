// The running data path: EAL, the mbuf pool, the ports with their roles, the session tables the
// control plane writes, the engine directory, the counters and the pinned workers. upfd and the
// replay harness both run exactly this; they differ only in where the ports come from.

import CDPDK
import Logging
import Synchronization
import UPFControl
import UPFDatapath
import UPFDPDK
import UPFPackets
import UPFPolicy

/// Where a configured port's DPDK device comes from.
public enum PortSource {
    /// The devices named in the configuration (`ports[].device`: PCI or `--vdev`).
    case devices
    /// In-memory ring ports, one per configured port (the replay harness feeds and drains them).
    case rings(size: Int)
}

public enum DataplaneError: Error, CustomStringConvertible {
    case dpdk(DPDKError)
    case port(name: String, message: String)
    case mempoolLeak(inUse: Int)

    public var description: String {
        switch self {
        case .dpdk(let e): "DPDK: \(e)"
        case let .port(name, message): "port '\(name)': \(message)"
        case .mempoolLeak(let n): "\(n) mbufs were not returned to the pool at exit (a leak)"
        }
    }
}

public final class Dataplane: DatapathObserver, @unchecked Sendable {
    public let configuration: DataplaneConfiguration
    public let ports: [EthPort]
    /// Set for `.rings`: the ring of each configured port.
    public let ringPorts: [RingPort]
    public let portTable: PortTable
    public let engines: EngineDirectory
    public let counters: DatapathCounters
    public let meters: MeterTable
    public let tables: SessionTables
    public let sessionTables: DatapathSessionTables
    public let workers: [DatapathWorker]
    /// Next hops resolved by ARP/ND (ports with `next_hop`).
    public let neighbors: NeighborTable
    /// One per worker: received Error Indications and End Markers for the control thread.
    public let eventQueues: [DatapathEventQueue]
    /// Control thread → worker 0: End Markers and Echo Requests to send (one producer: the
    /// control thread).
    let requests: DatapathEventQueue
    /// Echo supervision of `gtpu.echo_peers` (control thread only: `drainEvents`, `statistics`).
    private(set) var peerSupervision: PeerSupervision
    /// The version of each session whose `downlink_data` event went out (read and written only
    /// by `drainEvents`, on the control thread).
    private var reportedDownlinkData: [UInt64: UInt32] = [:]
    /// One per worker (their meters are not shared).
    let errorIndicationLimiters: [ErrorIndicationLimiter]
    public let workerLcores: [UInt32]
    /// RSS hash functions per port (0 = none: queue 0 only).
    public let rss: [UInt64]
    /// Entries of each ring of ring ports (0 for device ports).
    public let ringSize: Int
    /// The pool every port fills from (the replay harness allocates its input from it too).
    public let mempool: Mempool
    private let logger: Logger
    private let state = Mutex(State.configured)
    /// Counter values recorded when their meaning changed under the workers (the data path
    /// keeps counting; reports subtract these): per session slot whose rules were reordered by
    /// a put, per engine index given to a new engine. A slot freed for reuse is zeroed instead
    /// (`DatapathCounters.resetSlot`), which also drops its baseline.
    let baselines = Mutex(Baselines())

    struct Baselines {
        var slots: [Int: [UInt64]] = [:]
        var engines: [Int: [UInt64]] = [:]
    }

    private enum State { case configured, running, stopped }

    /// Initialises EAL, creates the pool, sets up and starts the ports and builds the workers
    /// (not yet launched). A failure undoes what was done and names the part that failed.
    public init(service: ServiceConfiguration, source: PortSource, logger: Logger) throws(DataplaneError) {
        let configuration = service.dataplane
        self.configuration = configuration
        self.logger = logger
        do {
            _ = try EAL.initialize(arguments: configuration.ealArguments(), programName: "upfd")
        } catch {
            throw .dpdk(error)
        }
        let lcores = configuration.workerLcores.map { UInt32($0) }
        let workerCount = lcores.count
        workerLcores = lcores

        var opened: [EthPort] = []
        var rings: [RingPort] = []
        var pool: Mempool?
        func undo() {
            for port in opened {
                try? port.stop()
                try? port.close()
            }
            rings.forEach { $0.freeRings() }
            pool?.free()
            try? EAL.cleanup()
        }
        do {
            // Resolve every port first, so a typo fails before anything is started.
            switch source {
            case .devices:
                for port in configuration.ports {
                    do {
                        opened.append(try EthPort(named: port.device))
                    } catch {
                        throw DataplaneError.port(name: port.name, message: error.message)
                    }
                }
            case .rings(let size):
                for port in configuration.ports {
                    let ring = try RingPort.create(name: "ring_\(port.name)", txQueues: workerCount, size: size)
                    rings.append(ring)
                    opened.append(ring.port)
                }
            }
            let socket = opened.lazy.compactMap(\.socketID).first
            pool = try Mempool.create(name: "upfd_mbufs", count: configuration.mbufs, socket: socket)
            var rssApplied: [UInt64] = []
            var rxQueues: [Int] = []
            for (i, port) in opened.enumerated() {
                let name = configuration.ports[i].name
                let info = try port.info()
                guard info.maxTxQueues >= workerCount else {
                    throw DataplaneError.port(name: name, message:
                        "\(info.driverName) offers \(info.maxTxQueues) TX queue(s); \(workerCount) workers need one each")
                }
                let rx = max(1, min(workerCount, info.maxRxQueues))
                let applied = try port.configureWithRSS(rxQueues: rx, txQueues: workerCount,
                                                        ringSize: configuration.ports[i].ringSize, mempool: pool!)
                // Without RSS a second queue would receive nothing: poll queue 0 only.
                rxQueues.append(applied == 0 ? 1 : rx)
                rssApplied.append(applied)
                try? port.enablePromiscuous()
                try port.start()
            }
            rss = rssApplied
            if case .rings(let size) = source { ringSize = size } else { ringSize = 0 }
            let macs = try opened.map { port throws(DPDKError) in try port.macAddress() }
            portTable = try PortTable(configuration.portInfos(deviceMAC: { macs[$0] }))
            ports = opened
            ringPorts = rings
            mempool = pool!

            // Queue i of port p goes to worker (running index) mod workers: ports without RSS
            // are spread over the workers instead of all landing on the first.
            var assignment = Array(repeating: [PolledQueue](), count: workerCount)
            var next = 0
            for (p, port) in opened.enumerated() {
                for q in 0..<rxQueues[p] {
                    assignment[next % workerCount].append(PolledQueue(port: port, queue: UInt16(q), portIndex: p))
                    next += 1
                }
            }
            let sessions = SessionTables(capacity: service.limits.maxSessions, readers: workerCount)
            tables = sessions
            let meterTable = MeterTable(slots: sessions.slotCount,
                                        toleranceNanoseconds: UInt64(configuration.qos.burstMilliseconds * 1_000_000))
            sessions.meters = meterTable
            meters = meterTable
            let directory = EngineDirectory(capacity: max(1, service.limits.maxEngines))
            engines = directory
            let layout = CounterLayout(sessionSlots: sessions.slotCount, rulesPerSession: configuration.ruleCountersPerSession,
                                       engines: directory.capacity)
            let allCounters = DatapathCounters(layout: layout, workers: workerCount)
            counters = allCounters
            let table = portTable
            let config = configuration
            sessionTables = DatapathSessionTables(tables: sessions, engines: (directory, { engine in
                Dataplane.entry(for: engine, configuration: config, ports: table)
            }))
            var tuning = WorkerTuning()
            tuning.burst = configuration.workers.burst
            tuning.drainMicroseconds = configuration.workers.txDrainMicroseconds
            tuning.idleRoundsBeforeSleep = configuration.workers.idleRounds
            tuning.idleSleepMicroseconds = configuration.workers.idleSleepMicroseconds
            tuning.bufferPackets = configuration.buffering.packetsPerWorker
            tuning.bufferSessions = configuration.buffering.sessionsPerWorker
            tuning.bufferHoldMicroseconds = configuration.buffering.holdMilliseconds * 1000
            // Ring ports are the replay harness's: the workers stamp each packet's TX time for its
            // latency (see `lineRate`).
            if case .rings = source {
                let field = cdpdk_replay_field_offset()
                if field >= 0 { tuning.txStampField = field + Int32(Dataplane.replayTXStampWord * MemoryLayout<UInt64>.size) }
            }
            let ids = opened.map(\.id)
            let hz = EAL.tscHz
            let n = configuration.neighbors
            let neighborTable = NeighborTable(targets: table.all.map(\.nextHopAddress), timing: .seconds(
                retry: Double(n.retryMilliseconds) / 1000, refresh: n.refreshSeconds, expiry: n.expirySeconds, ticksPerSecond: hz))
            neighbors = neighborTable
            let queues = (0..<workerCount).map { _ in DatapathEventQueue(capacity: 1024) }
            eventQueues = queues
            peerSupervision = PeerSupervision(configuration: configuration)
            let requestQueue = DatapathEventQueue(capacity: 256)
            requests = requestQueue
            let limiters = (0..<workerCount).map { _ in
                ErrorIndicationLimiter(perPeerRate: configuration.gtpu.errorIndicationsPerPeer,
                                       totalRate: configuration.gtpu.errorIndicationsTotal, workers: workerCount, ticksPerSecond: hz)
            }
            errorIndicationLimiters = limiters
            let resolves = table.all.contains { $0.nextHopAddress != nil }
            let mbufPool = pool!
            workers = (0..<workerCount).map { w in
                let processor = PacketProcessor(reader: sessions.reader(w), ports: table, engines: directory,
                                                counters: allCounters.block(w), neighbors: neighborTable,
                                                events: queues[w], errorIndications: limiters[w], meters: meterTable)
                return DatapathWorker(index: w, processor: processor, queues: assignment[w], portIDs: ids,
                                      txQueue: UInt16(w), tuning: tuning,
                                      resolver: resolves && w == 0 ? (neighborTable, mbufPool) : nil,
                                      requests: w == 0 ? (requestQueue, mbufPool) : nil)
            }
            installCounterHooks()
            for (i, port) in configuration.ports.enumerated() where rssApplied[i] == 0 && workerCount > 1 && rxQueues[i] == 1 {
                logger.info("port has no RSS: one worker receives it", metadata: ["port": "\(port.name)"])
            }
        } catch let error as DataplaneError {
            undo()
            throw error
        } catch let error as DPDKError {
            undo()
            throw .dpdk(error)
        } catch let error as PortTable.Problem {
            undo()
            throw .port(name: "ports", message: error.description)
        } catch {
            undo()
            throw .port(name: "?", message: "\(error)")
        }
    }

    /// Keeps reported counters meaning what they say when the tables reuse what they count by
    /// (all on the control thread: the tables' writer).
    private func installCounterHooks() {
        // Weak: the tables are the data path's own; a strong capture would be a cycle.
        tables.slotReleased = { [weak self] slot in
            guard let self else { return }
            counters.resetSlot(slot)
            baselines.withLock { _ = $0.slots.removeValue(forKey: slot) }
        }
        sessionTables.rulesReordered = { [weak self] slot in
            guard let self else { return }
            let layout = counters.layout
            let first = layout.rule(slot: slot, position: 0)
            let values = (0..<(layout.rulesPerSession * 2)).map { self.counters.total(first + $0) }
            baselines.withLock { $0.slots[slot] = values }
        }
        sessionTables.engineIndexReused = { [weak self] index in
            guard let self, index < counters.layout.engines else { return }
            let first = counters.layout.engineInstance(index, 0)
            let values = (0..<CounterLayout.engineStride).map { self.counters.total(first + $0) }
            baselines.withLock { $0.engines[index] = values }
        }
    }

    /// The rule counters of the session's slot, minus its baseline; nil when it is not in the tables.
    func slotCounters(seid: UInt64, positions: Int) -> [(packets: UInt64, bytes: UInt64)]? {
        guard let slot = tables.slot(seid: seid) else { return nil }
        let layout = counters.layout
        let base = baselines.withLock { $0.slots[slot] }
        return (0..<min(positions, layout.rulesPerSession)).map { position in
            let offset = layout.rule(slot: slot, position: position)
            let packets = counters.total(offset), bytes = counters.total(offset + 1)
            guard let base else { return (packets, bytes) }
            return (packets &- min(packets, base[position * 2]), bytes &- min(bytes, base[position * 2 + 1]))
        }
    }

    /// Word `word` (0..<CounterLayout.engineStride) of engine `index`, minus its baseline.
    func engineCounter(_ index: Int, word: Int, baseline: [UInt64]?) -> UInt64 {
        let value = counters.total(counters.layout.engineInstance(index, 0) + word)
        guard let baseline else { return value }
        return value &- min(value, baseline[word])
    }

    /// The directory entry of a policy engine: its instances' ports resolved against the
    /// configuration (by port name or index; it must be an engine port), MACs as given.
    static func entry(for engine: Engine, configuration: DataplaneConfiguration, ports: PortTable) -> DatapathSessionTables.EngineEntry {
        let instances = engine.instances.map { instance -> EngineDirectory.Instance in
            guard let index = configuration.portIndex(named: instance.port), ports[index].role == .engine else {
                // Not an engine port of this data path: the instance is never chosen.
                return EngineDirectory.Instance(port: 0, mac: nil, up: false)
            }
            return EngineDirectory.Instance(port: UInt16(index), mac: instance.mac.flatMap { MACAddress($0) }, up: true)
        }
        return DatapathSessionTables.EngineEntry(instances: instances, fallbackDrop: engine.fallback == .drop)
    }

    /// Launches the workers on their lcores.
    public func start() throws(DataplaneError) {
        for (worker, lcore) in zip(workers, workerLcores) {
            do {
                try worker.launch(on: lcore)
            } catch {
                stopWorkers()
                throw .dpdk(error)
            }
        }
        state.withLock { $0 = .running }
        logger.notice("data path running", metadata: [
            "workers": "\(workers.count)", "lcores": "\(workerLcores.map(String.init).joined(separator: ","))",
            "ports": "\(configuration.ports.map { "\($0.name)=\($0.device)(\($0.role))" }.joined(separator: " "))",
        ])
    }

    private func stopWorkers() {
        workers.forEach { $0.requestStop() }
        for lcore in workerLcores {
            Lcores.wait(lcore)
        }
    }

    /// Stops the workers (each flushes what it holds), stops and closes the ports, checks that
    /// every mbuf came back, frees the pool and cleans up EAL. Throws `.mempoolLeak` when not.
    public func stop() throws(DataplaneError) {
        let wasRunning = state.withLock { s -> Bool in
            defer { s = .stopped }
            return s == .running
        }
        if wasRunning { stopWorkers() }
        // Whatever a ring port still holds (input not yet received, output not yet drained) is
        // ours to free before the leak check.
        let scratch = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: MbufBurst.capacity)
        defer { scratch.deallocate() }
        for port in ports {
            try? port.stop()
        }
        for ring in ringPorts {
            for q in 0..<ring.txRings.count {
                while case let n = ring.drain(queue: q, into: scratch, capacity: MbufBurst.capacity), n > 0 {
                    Mbuf.freeBulk(scratch, count: n)
                }
            }
            while case let n = ring.takeBackInput(into: scratch, capacity: MbufBurst.capacity), n > 0 {
                Mbuf.freeBulk(scratch, count: n)
            }
        }
        for port in ports {
            try? port.close()
        }
        ringPorts.forEach { $0.freeRings() }
        let inUse = mempool.inUseCount
        mempool.free()
        try? EAL.cleanup()
        if inUse != 0 { throw .mempoolLeak(inUse: inUse) }
    }

    // MARK: DatapathObserver

    public var status: String {
        state.withLock { s in
            switch s {
            case .configured: "starting"
            case .running: workers.allSatisfy(\.isRunning) ? "running" : "worker_stopped"
            case .stopped: "stopped"
            }
        }
    }

    public func statistics() -> JSONValue {
        DatapathStatistics(dataplane: self).json
    }

    public func ruleCounters(seid: UInt64, positions: Int) -> [(packets: UInt64, bytes: UInt64)]? {
        slotCounters(seid: seid, positions: positions)
    }

    public var countedRulesPerSession: Int { counters.layout.rulesPerSession }

    /// Asks worker 0 to send an End Marker on tunnel `teid` to `peer` (from `source`, the
    /// session's N3 address); false when it cannot be asked (addresses unusable, queue full).
    /// Sent after a settling time, so that it follows what the workers still hold of the old path.
    public func sendEndMarker(teid: UInt32, peer: String, source: String) -> Bool {
        guard let peerAddress = IPAddress(peer) else { return false }
        let sourceAddress = IPAddress(source) ?? .zero
        return requests.producer.push(DatapathEvent(kind: .endMarker, port: UInt8(truncatingIfNeeded: portTable.n3), teid: teid,
                                                    peer: peerAddress, source: sourceAddress))
    }

    public func drainEvents(_ publish: (ControlEvent) -> Void) {
        let names = configuration.ports.map(\.name)
        for queue in eventQueues {
            queue.drain { event in
                let port = Int(event.port) < names.count ? names[Int(event.port)] : String(event.port)
                switch event.kind {
                case .errorIndication:
                    publish(.errorIndication(port: port, source: "\(event.source)", teid: event.teid, peer: "\(event.peer)"))
                case .endMarker:
                    publish(.endMarker(port: port, source: "\(event.source)", teid: event.teid))
                case .echoResponse:
                    peerSupervision.answered(by: event.source, publish: publish)
                case .echoRequest:
                    break
                case .downlinkData:
                    // Every worker that buffers for the session reports it; one event per version.
                    guard reportedDownlinkData[event.seid] != event.generation else { return }
                    if reportedDownlinkData.count >= 65_536 { reportedDownlinkData.removeAll(keepingCapacity: true) }
                    reportedDownlinkData[event.seid] = event.generation
                    publish(.downlinkData(seid: event.seid, port: port))
                }
            }
        }
        if !peerSupervision.peers.isEmpty {
            let requests = self.requests
            peerSupervision.tick(now: .now, send: { port, peer, sequence in
                requests.producer.push(DatapathEvent(kind: .echoRequest, port: UInt8(truncatingIfNeeded: port),
                                                     teid: UInt32(sequence), peer: peer, source: .zero))
            }, publish: publish)
        }
    }
}
