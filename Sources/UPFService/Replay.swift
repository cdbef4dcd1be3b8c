// The replay harness's engine: captures in through ring ports, the real data path in between,
// captures out. Runs on the main lcore while the workers run on theirs.

import Foundation
import UPFCapture
import UPFDatapath
import UPFDPDK
import UPFPackets

/// Frames of the input captures, held in memory in the order they are fed (timestamp order
/// across captures; capture order within one).
public struct ReplayInput {
    public struct Frame {
        public var port: Int
        public var offset: Int
        public var length: Int
        public var time: Double
    }
    public private(set) var frames: [Frame] = []
    public private(set) var bytes: [UInt8] = []
    /// Per port: packets and bytes.
    public private(set) var perPort: [Int: (packets: Int, bytes: Int)] = [:]

    public init() {}

    /// Reads `path` (pcap or pcapng, Ethernet only) as input of port `port`.
    public mutating func add(path: String, port: Int) throws {
        let reader = try PcapReader(path: path)
        guard reader.dataLinkType == CaptureLinkType.ethernet.rawValue else {
            throw CaptureError("\(path): link type \(reader.dataLinkType) is not Ethernet; ports receive Ethernet frames")
        }
        var added: [Frame] = []
        while let frame = try reader.next() {
            guard frame.bytes.count <= 9600 else {
                throw CaptureError("\(path): frame \(frame.number) has \(frame.bytes.count) bytes (more than one mbuf)")
            }
            added.append(Frame(port: port, offset: bytes.count, length: frame.bytes.count,
                               time: Double(frame.timestampSeconds) + Double(frame.timestampMicroseconds) / 1e6))
            bytes.append(contentsOf: frame.bytes)
            perPort[port, default: (0, 0)].packets += 1
            perPort[port, default: (0, 0)].bytes += frame.bytes.count
        }
        // Stable merge by time: earlier inputs first at equal timestamps.
        frames = (frames + added).enumerated().sorted { a, b in
            a.element.time != b.element.time ? a.element.time < b.element.time : a.offset < b.offset
        }.map(\.element)
    }
}

/// What one replay did.
public struct ReplayOutcome {
    public var fed = 0
    public var outputs: [(packets: Int, bytes: Int)]
    /// Decoded output frames per port (only when asked for, for `--expect`).
    public var decoded: [[OutputFrame]]
    public var elapsedSeconds: Double = 0
}

/// The fields of an output frame that expectations compare (as text, so that expectations can
/// be written as YAML scalars).
public struct OutputFrame: Sendable {
    public var fields: [String: String]

    public init(_ bytes: UnsafeRawBufferPointer) {
        var f: [String: String] = ["length": String(bytes.count)]
        if bytes.count >= 14 {
            func mac(_ at: Int) -> String {
                (0..<6).map { String(format: "%02x", bytes[at + $0]) }.joined(separator: ":")
            }
            f["dst_mac"] = mac(0)
            f["src_mac"] = mac(6)
        }
        var packet = ParsedPacket()
        let raw = PacketBytes(bytes)
        if PacketParser.parse(raw, link: .ethernet, options: ParserOptions(), into: &packet) == nil, packet.kind != .nonGTP,
           packet.kind != .arp {
            f["kind"] = packet.kind.name
            f["outer_src"] = "\(packet.outerSource)"
            f["outer_dst"] = "\(packet.outerDestination)"
            f["teid"] = String(packet.teid)
            f["gtp_flags"] = String(packet.gtpFlags)
            f["extensions"] = String(packet.extensionCount)
            if packet.psc.present {
                f["qfi"] = String(packet.psc.qfi)
                f["psc"] = packet.psc.pduType == GTPU.PDUType.uplink ? "ul" : "dl"
            }
            if packet.kind == .gPDU { OutputFrame.inner(packet.inner, into: &f) }
        } else if PacketParser.parseUserPacket(raw, into: &packet) == nil, packet.inner.version != 0 {
            f["kind"] = "ip"
            OutputFrame.inner(packet.inner, into: &f)
        } else {
            f["kind"] = packet.kind == .arp ? "arp" : "other"
        }
        fields = f
    }

    static func inner(_ flow: InnerFlow, into f: inout [String: String]) {
        f["inner_src"] = "\(flow.source)"
        f["inner_dst"] = "\(flow.destination)"
        f["proto"] = String(flow.proto)
        if flow.hasPorts {
            f["sport"] = String(flow.sourcePort)
            f["dport"] = String(flow.destinationPort)
        }
    }
}

public enum ReplayError: Error, CustomStringConvertible {
    case notRingPorts
    case stalled(fed: Int, processed: UInt64)
    public var description: String {
        switch self {
        case .notRingPorts: "the replay needs a data path on ring ports"
        case let .stalled(fed, processed):
            "the data path stopped taking packets (\(fed) fed, \(processed) processed after 10 s without progress)"
        }
    }
}

extension Dataplane {
    /// Feeds `input` to the ring ports (at `rate` packets per second, 0 = as fast as they take
    /// them), writes what every port transmits to `writers[port]`, and returns once every fed
    /// packet went through the workers and their TX buffers are empty. `progress` is called
    /// about every `progressInterval` seconds.
    /// Packets dropped so far, every reason, every worker.
    public func droppedTotal() -> UInt64 {
        let layout = counters.layout
        var sum: UInt64 = 0
        for reason in DropReason.allCases { sum &+= counters.total(layout.parser(reason)) }
        for reason in DatapathDrop.allCases { sum &+= counters.total(layout.datapath(reason)) }
        return sum
    }

    public func replay(_ input: ReplayInput, rate: Double, writers: [PcapWriter], decode: Bool,
                       progressInterval: Double = 1, progress: (Int, Int) -> Void) throws -> ReplayOutcome {
        guard ringPorts.count == ports.count, !ringPorts.isEmpty else { throw ReplayError.notRingPorts }
        var outcome = ReplayOutcome(outputs: Array(repeating: (0, 0), count: ports.count),
                                    decoded: Array(repeating: [], count: ports.count))
        let scratch = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: MbufBurst.capacity)
        defer { scratch.deallocate() }
        let start = Date()
        var lastProgress = start
        var lastChange = start
        var lastProcessed: UInt64 = 0
        var quietRounds = 0
        let maxInFlight = ringSize / 2

        func drainOutputs() -> Int {
            var total = 0
            let now = Date().timeIntervalSince1970
            let seconds = Int(now), micros = Int((now - Double(seconds)) * 1e6)
            for (p, ring) in ringPorts.enumerated() {
                for q in 0..<ring.txRings.count {
                    while case let n = ring.drain(queue: q, into: scratch, capacity: MbufBurst.capacity), n > 0 {
                        for i in 0..<n {
                            let m = Mbuf(scratch[i]!)
                            let frame = UnsafeRawBufferPointer(start: m.data, count: m.dataLength)
                            writers[p].write(frame, seconds: seconds, microseconds: micros)
                            outcome.outputs[p].packets += 1
                            outcome.outputs[p].bytes += frame.count
                            if decode { outcome.decoded[p].append(OutputFrame(frame)) }
                        }
                        Mbuf.freeBulk(scratch, count: n)
                        total += n
                    }
                }
            }
            return total
        }

        input.bytes.withUnsafeBytes { source in
            var next = 0
            while true {
                // Feed what the rate allows (one burst at most per round).
                var allowed = input.frames.count - next
                // Back-pressure: never more in flight than half a TX ring, so a worker never finds
                // a ring full because this thread has not drained it yet (which would be a drop).
                let settled = outcome.outputs.reduce(0) { $0 + $1.packets } + Int(droppedTotal())
                allowed = min(allowed, max(0, maxInFlight - (next - settled)))
                if rate > 0 {
                    let due = Int(Date().timeIntervalSince(start) * rate) + 1
                    allowed = min(allowed, max(0, due - next))
                }
                var k = 0
                while k < min(allowed, MbufBurst.capacity) {
                    let frame = input.frames[next]
                    guard let m = Mbuf.allocate(from: mempool) else { break }   // pool busy: drain first
                    guard let data = m.append(UInt16(frame.length)) else {
                        m.free()
                        break
                    }
                    data.copyMemory(from: source.baseAddress! + frame.offset, byteCount: frame.length)
                    scratch[0] = m.pointer
                    guard ringPorts[frame.port].feed(scratch, count: 1) == 1 else {
                        m.free()          // ring full: the same frame again next round
                        break
                    }
                    next += 1
                    k += 1
                }
                outcome.fed = next
                let drained = drainOutputs()
                let processed = workers.reduce(0) { $0 + $1.packetsProcessed }
                let now = Date()
                if processed != lastProcessed || drained > 0 || k > 0 {
                    lastChange = now
                    lastProcessed = processed
                }
                if now.timeIntervalSince(lastProgress) >= progressInterval {
                    progress(next, Int(processed))
                    lastProgress = now
                }
                if next == input.frames.count && processed >= UInt64(next) {
                    // Everything went through the workers; their TX buffers empty on the next idle
                    // round. A few empty drains after that, and the replay is complete.
                    quietRounds = drained == 0 ? quietRounds + 1 : 0
                    if quietRounds >= 50 { break }
                    usleep(100)
                    continue
                }
                if now.timeIntervalSince(lastChange) > 10 { break }
                if k == 0 && drained == 0 { usleep(rate > 0 ? 100 : 10) }
            }
        }
        outcome.elapsedSeconds = Date().timeIntervalSince(start)
        let processed = workers.reduce(0) { $0 + $1.packetsProcessed }
        if processed < UInt64(outcome.fed) || outcome.fed < input.frames.count {
            throw ReplayError.stalled(fed: outcome.fed, processed: processed)
        }
        return outcome
    }
}
