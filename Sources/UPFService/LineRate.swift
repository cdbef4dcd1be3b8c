// The replay harness's line-rate mode (`upf-replay run --preload`): the capture is copied into
// mbufs once, and those mbufs circulate — fed to the ring ports' RX side, processed by the real
// workers, taken back from the TX rings, their headers restored, fed again — so the harness does
// no allocation and no full copy per packet and is not the bottleneck of what it measures.
//
// Every preloaded mbuf holds a reference count of 2 while it circulates: when the data path drops
// it (and frees it), the count falls to 1 instead of returning it to the pool, and the harness
// takes it back by looking for that. Each mbuf carries its index, its RX timestamp (TSC, written
// by the feeder as it puts the packet on the RX ring) and its TX timestamp (written by the worker
// just before its TX burst: `WorkerTuning.txStampField`) in a dynamic field. upfd's latency is TX
// stamp minus RX stamp, what a NIC on each side would see; the time until the harness collects
// the TX rings (it shares a CPU with other threads) is reported apart, as the harness's latency.

import CDPDK
import Foundation
import Histogram
import UPFDatapath
import UPFDPDK
import UPFPackets

public struct LineRateOptions: Sendable {
    /// Packets per second offered (0: as fast as the data path takes them).
    public var rate: Double = 0
    /// Feed for this many seconds (after the warm-up) when `loops` is 0.
    public var durationSeconds: Double = 5
    /// Feed the capture this many times (0: by duration).
    public var loops = 0
    /// Packets in flight at most (RX ring + workers + TX buffers + TX rings); 0: half a ring.
    public var inFlight = 0
    /// Seconds at the start not counted in the rate or the latency.
    public var warmupSeconds: Double = 0
    /// Mbufs that circulate (0: one per frame, at most 4096). Fewer mbufs than frames: each mbuf
    /// returned takes the next frame of the capture, so a large capture (many sessions) is fed
    /// through a set of mbufs that stays in cache, as a NIC's descriptor ring does.
    public var mbufs = 0
    public init() {}
}

public struct LineRateOutcome {
    /// Circulating mbufs, and the frames of the capture they take in turn.
    public var preloaded = 0
    public var frames = 0
    public var fed = 0
    /// Taken back from TX rings (transmitted by the data path).
    public var transmitted = 0
    /// Taken back after the data path dropped them.
    public var dropped = 0
    /// Mbufs on TX rings that were not preloaded ones (ARP/ND requests): freed.
    public var foreign = 0
    public var outputs: [(packets: Int, bytes: Int)] = []
    /// Seconds of the measured window (warm-up excluded) and the packets the workers processed in it.
    public var measuredSeconds: Double = 0
    public var measuredPackets: UInt64 = 0
    public var measuredBits: Double = 0
    /// RX-ring-to-TX-burst latency (the worker's TX stamp) in nanoseconds of the packets
    /// transmitted in the measured window.
    public var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    /// RX ring to the harness taking the packet off the TX ring: `latency` plus the harness's
    /// own delay in collecting it.
    public var harnessLatency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    /// The worker threads' time waiting for their CPU while runnable (preempted: the kernel ran
    /// something else on it) and their involuntary context switches, in the measured window —
    /// where a latency tail of milliseconds comes from on a CPU that is not isolated.
    public var workerPreemptedSeconds: Double = 0
    public var workerInvoluntarySwitches = 0
    /// Packets still in flight when the replay gave up waiting (should be 0).
    public var stranded = 0

    public var packetsPerSecond: Double { measuredSeconds > 0 ? Double(measuredPackets) / measuredSeconds : 0 }
}

extension Dataplane {
    /// The word of the harness's mbuf field (`cdpdk_replay_field_offset`: tag, RX stamp, TX
    /// stamp) that the workers write their TX stamp into.
    static let replayTXStampWord = 2

    /// Runs `input` at line rate (see the top of this file). The workers must be running.
    public func lineRate(_ input: ReplayInput, options: LineRateOptions,
                         progressInterval: Double = 1, progress: (String) -> Void) throws -> LineRateOutcome {
        guard ringPorts.count == ports.count, !ringPorts.isEmpty else { throw ReplayError.notRingPorts }
        let frames = input.frames.count
        guard frames > 0 else { throw ReplayError.stalled(fed: 0, processed: 0) }
        let count = options.mbufs > 0 ? min(options.mbufs, frames) : min(frames, 4096)
        let fieldOffset = cdpdk_replay_field_offset()
        guard fieldOffset >= 0 else { throw DPDKError(operation: "rte_mbuf_dynfield_register", code: ENOSPC) }
        let magic: UInt64 = 0x5550_4652 << 32    // "UPFR"

        var outcome = LineRateOutcome()
        outcome.outputs = Array(repeating: (0, 0), count: ports.count)
        let mbufs = UnsafeMutablePointer<OpaquePointer>.allocate(capacity: count)
        let headroom = UnsafeMutablePointer<UInt16>.allocate(capacity: count)
        let inFlightFlag = UnsafeMutablePointer<UInt8>.allocate(capacity: count)
        let queue = UnsafeMutablePointer<Int32>.allocate(capacity: count)   // FIFO of available indices
        let frameLength = UnsafeMutablePointer<UInt16>.allocate(capacity: frames)
        let framePort = UnsafeMutablePointer<UInt8>.allocate(capacity: frames)
        let frameOffset = UnsafeMutablePointer<Int>.allocate(capacity: frames)
        let slotFrame = UnsafeMutablePointer<Int>.allocate(capacity: count)
        let scratch = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: MbufBurst.capacity)
        defer {
            mbufs.deallocate(); headroom.deallocate(); inFlightFlag.deallocate(); queue.deallocate()
            frameLength.deallocate(); framePort.deallocate(); frameOffset.deallocate(); scratch.deallocate()
            slotFrame.deallocate()
        }
        var loaded = 0
        func releaseAll() {
            // Everything not in flight goes back to the pool; in-flight ones (only after a stall)
            // are left to the data path's stop, with a count of 1 so that its free returns them.
            for i in 0..<loaded {
                cdpdk_mbuf_refcnt_set(mbufs[i], 1)
                if inFlightFlag[i] == 0 {
                    var one: OpaquePointer? = mbufs[i]
                    cdpdk_mbuf_free_bulk(&one, 1)
                }
            }
        }

        // Preload.
        for (i, frame) in input.frames.enumerated() {
            guard frame.length <= 2048 else {
                throw DPDKError(operation: "preloading frame \(i + 1): \(frame.length) bytes do not fit an mbuf", code: EMSGSIZE)
            }
            frameLength[i] = UInt16(frame.length)
            framePort[i] = UInt8(frame.port)
            frameOffset[i] = frame.offset
        }
        for (i, frame) in input.frames.prefix(count).enumerated() {
            guard let m = Mbuf.allocate(from: mempool) else {
                releaseAll()
                throw DPDKError(operation: "preloading frame \(i + 1) of \(count): the mbuf pool is too small", code: ENOBUFS)
            }
            guard let data = m.append(UInt16(frame.length)) else {
                m.free()
                releaseAll()
                throw DPDKError(operation: "preloading frame \(i + 1): \(frame.length) bytes do not fit an mbuf", code: EMSGSIZE)
            }
            input.bytes.withUnsafeBytes { data.copyMemory(from: $0.baseAddress! + frame.offset, byteCount: frame.length) }
            cdpdk_mbuf_refcnt_set(m.pointer, 2)
            let field = cdpdk_mbuf_field64(m.pointer, fieldOffset)!
            field[0] = magic | UInt64(i)
            field[1] = 0
            field[Dataplane.replayTXStampWord] = 0
            mbufs[i] = m.pointer
            headroom[i] = UInt16(m.headroom)
            inFlightFlag[i] = 0
            queue[i] = Int32(i)
            slotFrame[i] = i
            loaded += 1
        }
        defer { releaseAll() }
        outcome.preloaded = count
        outcome.frames = frames
        var nextFrame = count % frames
        var head = 0, available = count    // queue[head ..< head+available] mod count

        let limit = options.inFlight > 0 ? min(options.inFlight, count) : min(count, max(32, ringSize / 2))
        let hz = cdpdk_tsc_hz()
        let nsPerTick = 1e9 / Double(hz)
        let restoreBytes = 256

        func processed() -> UInt64 { workers.reduce(0) { $0 &+ $1.packetsProcessed } }

        input.bytes.withUnsafeBytes { source in
            let base = source.baseAddress!
            /// Loads the capture's next frame into slot `i` (its window and first bytes: beyond
            /// `restoreBytes` is payload the data path never writes) and queues it.
            @inline(__always) func restore(_ i: Int) {
                let m = mbufs[i]
                var f = slotFrame[i]
                if count != frames {
                    f = nextFrame
                    nextFrame &+= 1
                    if nextFrame == frames { nextFrame = 0 }
                    slotFrame[i] = f
                }
                let length = frameLength[f]
                cdpdk_mbuf_reset_window(m, headroom[i], length)
                cdpdk_mbuf_data(m).copyMemory(from: base + frameOffset[f], byteCount: min(Int(length), restoreBytes))
                inFlightFlag[i] = 0
                queue[(head &+ available) % count] = Int32(i)
                available &+= 1
            }
            var inFlight = 0
            // A paced feeder naps (`usleep(0)`) between due packets, to leave CPU 0 to the other
            // threads; with the kernel's default 50 µs timer slack each nap lasts ~60 µs and the
            // offered load arrives in clumps of that many microseconds' packets. 1 µs keeps it smooth.
            let previousSlack = cdpdk_get_timer_slack_ns()
            if options.rate > 0 { _ = cdpdk_set_timer_slack_ns(1000) }
            defer { if options.rate > 0 && previousSlack > 0 { _ = cdpdk_set_timer_slack_ns(UInt(previousSlack)) } }
            let start = cdpdk_rdtsc()
            let warmupTicks = UInt64(options.warmupSeconds * Double(hz))
            let measureStart = start &+ warmupTicks
            let feedEnd = options.loops > 0 ? UInt64.max : measureStart &+ UInt64(options.durationSeconds * Double(hz))
            let target = options.loops > 0 ? options.loops * frames : Int.max
            var measuring = warmupTicks == 0
            var scheduleAtStart = measuring ? WorkerThreadSchedule.sample() : WorkerThreadSchedule()
            var processedAtStart: UInt64 = processed()
            var measuredBytes = 0
            var measureEndTick: UInt64 = 0
            var processedAtEnd: UInt64 = 0
            var feeding = true
            var lastProgress = start
            var lastReclaim = start
            var lastChange = start
            let progressTicks = UInt64(progressInterval * Double(hz))
            let reclaimTicks = hz / 1000
            var fedSinceRateStart = 0
            var rateStart = start

            func reclaimDropped() {
                var i = 0
                while i < count {
                    if inFlightFlag[i] != 0 && cdpdk_mbuf_refcnt(mbufs[i]) == 1 {
                        cdpdk_mbuf_refcnt_set(mbufs[i], 2)
                        restore(i)
                        inFlight &-= 1
                        outcome.dropped &+= 1
                    }
                    i &+= 1
                }
            }

            while true {
                var now = cdpdk_rdtsc()
                if !measuring && now >= measureStart {
                    measuring = true
                    scheduleAtStart = WorkerThreadSchedule.sample()
                    // Reading /proc took time: what is fed next is stamped with the time it is fed.
                    now = cdpdk_rdtsc()
                    processedAtStart = processed()
                    rateStart = now
                    fedSinceRateStart = 0
                }
                if feeding && (now >= feedEnd || outcome.fed >= target) {
                    feeding = false
                    measureEndTick = now
                    processedAtEnd = processed()
                    let schedule = WorkerThreadSchedule.sample()
                    outcome.workerPreemptedSeconds = Double(schedule.waitNanoseconds &- scheduleAtStart.waitNanoseconds) / 1e9
                    outcome.workerInvoluntarySwitches = schedule.involuntarySwitches &- scheduleAtStart.involuntarySwitches
                }
                // Feed one burst, all to one port.
                var k = 0
                if feeding {
                    var allowed = min(available, limit &- inFlight, MbufBurst.capacity, target &- outcome.fed)
                    if options.rate > 0 {
                        let due = Int(Double(now &- rateStart) * options.rate / Double(hz)) &+ 1 &- fedSinceRateStart
                        allowed = min(allowed, max(0, due))
                    }
                    if allowed > 0 {
                        let port = Int(framePort[slotFrame[Int(queue[head])]])
                        while k < allowed {
                            let i = Int(queue[(head &+ k) % count])
                            if Int(framePort[slotFrame[i]]) != port { break }
                            let m = mbufs[i]
                            let field = cdpdk_mbuf_field64(m, fieldOffset)!
                            field[1] = now
                            field[Dataplane.replayTXStampWord] = 0
                            scratch[k] = m
                            k &+= 1
                        }
                        let accepted = ringPorts[port].feed(scratch, count: k)
                        for j in 0..<accepted {
                            let i = Int(queue[(head &+ j) % count])
                            inFlightFlag[i] = 1
                            if measuring { measuredBytes &+= Int(frameLength[slotFrame[i]]) }
                        }
                        head = (head &+ accepted) % count
                        available &-= accepted
                        inFlight &+= accepted
                        outcome.fed &+= accepted
                        fedSinceRateStart &+= accepted
                        k = accepted
                    }
                }
                // Take back what the workers transmitted.
                var drained = 0
                now = cdpdk_rdtsc()
                for (p, ring) in ringPorts.enumerated() {
                    for q in 0..<ring.txRings.count {
                        // One burst per ring per round, stamped when taken: draining a ring to empty
                        // while the workers keep filling it would hold up feeding (and clump what
                        // is fed next) and measure against a stale clock.
                        let n = ring.drain(queue: q, into: scratch, capacity: MbufBurst.capacity)
                        if n > 0 {
                            now = cdpdk_rdtsc()
                            drained &+= n
                            for j in 0..<n {
                                let m = scratch[j].unsafelyUnwrapped
                                let field = cdpdk_mbuf_field64(m, fieldOffset)!
                                let tag = field[0]
                                let i = Int(truncatingIfNeeded: tag & 0xFFFF_FFFF)
                                guard tag & 0xFFFF_FFFF_0000_0000 == magic, i < count, mbufs[i] == m, inFlightFlag[i] != 0 else {
                                    var one: OpaquePointer? = m
                                    cdpdk_mbuf_free_bulk(&one, 1)
                                    outcome.foreign &+= 1
                                    continue
                                }
                                outcome.outputs[p].packets &+= 1
                                outcome.outputs[p].bytes &+= Int(cdpdk_mbuf_data_len(m))
                                if measuring && field[1] >= measureStart && (feeding || field[1] < measureEndTick) {
                                    // A packet sent without a stamp (a worker built without one) counts to the harness.
                                    let stamp = field[Dataplane.replayTXStampWord]
                                    let sent = stamp >= field[1] ? stamp : now
                                    _ = outcome.latency.record(UInt64(Double(sent &- field[1]) * nsPerTick))
                                    _ = outcome.harnessLatency.record(UInt64(Double(now &- field[1]) * nsPerTick))
                                }
                                restore(i)
                                inFlight &-= 1
                                outcome.transmitted &+= 1
                            }
                        }
                    }
                }
                if drained > 0 || k > 0 { lastChange = now }
                // Dropped packets come back by their reference count.
                if now &- lastReclaim >= reclaimTicks || (available == 0 && drained == 0) {
                    lastReclaim = now
                    let before = outcome.dropped
                    reclaimDropped()
                    if outcome.dropped != before { lastChange = now }
                }
                if now &- lastProgress >= progressTicks {
                    lastProgress = now
                    progress("\(outcome.fed) fed, \(outcome.transmitted) transmitted, \(outcome.dropped) dropped, \(inFlight) in flight")
                }
                if !feeding {
                    if inFlight == 0 { break }
                    if Double(now &- lastChange) * nsPerTick > 2e9 { break }
                }
                if k == 0 && drained == 0 {
                    if !feeding || options.rate > 0 { usleep(0) }
                }
            }
            outcome.stranded = inFlight
            if measureEndTick == 0 { measureEndTick = cdpdk_rdtsc(); processedAtEnd = processed() }
            let measureFrom = warmupTicks == 0 ? start : max(start, measureStart)
            outcome.measuredSeconds = Double(measureEndTick &- measureFrom) * nsPerTick / 1e9
            outcome.measuredPackets = processedAtEnd &- processedAtStart
            outcome.measuredBits = Double(measuredBytes) * 8
        }
        return outcome
    }
}

/// What the kernel's scheduler says of this process's worker threads (`rte-worker-*`), summed:
/// time runnable but waiting for the CPU (`/proc/self/task/*/schedstat`, second field) and
/// involuntary context switches (`status`). Zero where /proc does not tell.
struct WorkerThreadSchedule {
    var waitNanoseconds: UInt64 = 0
    var involuntarySwitches = 0

    static func sample() -> WorkerThreadSchedule {
        var total = WorkerThreadSchedule()
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return total }
        for task in tasks {
            let dir = "/proc/self/task/\(task)"
            guard let comm = try? String(contentsOfFile: dir + "/comm", encoding: .utf8), comm.hasPrefix("rte-worker") else {
                continue
            }
            if let stat = try? String(contentsOfFile: dir + "/schedstat", encoding: .utf8) {
                let fields = stat.split(separator: " ")
                if fields.count > 1, let wait = UInt64(fields[1]) { total.waitNanoseconds &+= wait }
            }
            if let status = try? String(contentsOfFile: dir + "/status", encoding: .utf8),
               let line = status.split(separator: "\n").first(where: { $0.hasPrefix("nonvoluntary_ctxt_switches:") }),
               let n = Int(line.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)) {
                total.involuntarySwitches &+= n
            }
        }
        return total
    }
}
