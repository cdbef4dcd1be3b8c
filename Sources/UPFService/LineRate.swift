// The replay harness's line-rate mode (`upf-replay run --preload`): the capture is copied into
// mbufs once, and those mbufs circulate — fed to the ring ports' RX side, processed by the real
// workers, taken back from the TX rings, their headers restored, fed again — so the harness does
// no allocation and no full copy per packet and is not the bottleneck of what it measures.
//
// Every preloaded mbuf holds a reference count of 2 while it circulates: when the data path drops
// it (and frees it), the count falls to 1 instead of returning it to the pool, and the harness
// takes it back by looking for that. Each mbuf carries its index and its RX timestamp (TSC) in a
// dynamic field, so the latency from RX ring to TX ring is known per packet.

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
    /// RX-to-TX latency in nanoseconds of the packets transmitted in the measured window.
    public var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    /// Packets still in flight when the replay gave up waiting (should be 0).
    public var stranded = 0

    public var packetsPerSecond: Double { measuredSeconds > 0 ? Double(measuredPackets) / measuredSeconds : 0 }
}

extension Dataplane {
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
            let start = cdpdk_rdtsc()
            let warmupTicks = UInt64(options.warmupSeconds * Double(hz))
            let measureStart = start &+ warmupTicks
            let feedEnd = options.loops > 0 ? UInt64.max : measureStart &+ UInt64(options.durationSeconds * Double(hz))
            let target = options.loops > 0 ? options.loops * frames : Int.max
            var measuring = warmupTicks == 0
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
                    processedAtStart = processed()
                    rateStart = now
                    fedSinceRateStart = 0
                }
                if feeding && (now >= feedEnd || outcome.fed >= target) {
                    feeding = false
                    measureEndTick = now
                    processedAtEnd = processed()
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
                            cdpdk_mbuf_field64(m, fieldOffset)![1] = now
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
                        while case let n = ring.drain(queue: q, into: scratch, capacity: MbufBurst.capacity), n > 0 {
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
                                    _ = outcome.latency.record(UInt64(Double(now &- field[1]) * nsPerTick))
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
