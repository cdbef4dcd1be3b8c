import ArgumentParser
import Foundation
import UPFDPDK
import UPFPackets

/// `upf-replay port-check`: does DPDK see the operator's ports, and can it move packets through
/// them without losing, corrupting or leaking any?
///
/// It brings up EAL, one mempool and the ports exactly as upfd does (same wrappers, one RX and one
/// TX queue, the loop on a worker lcore), pushes a known set of frames through, and checks the
/// invariants upfd relies on: every frame sent on a loopback comes back byte for byte, and every
/// mbuf is back in the pool once the ports are closed.
struct PortCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "port-check",
        abstract: "Check that DPDK sees the ports and can move packets through them.",
        discussion: """
            Sends --count frames on --tx-port from a worker lcore: synthetic Ethernet/IPv4/UDP \
            frames of 64 to 128 bytes carrying a sequence number, or the frames read from \
            --source-port (e.g. net_pcap0,rx_pcap=FILE in the EAL arguments). When an RX port is in \
            use, every frame must come back on it in order and byte for byte. Exits 0 when all \
            frames went through and no mbuf leaked, 1 on loss, mismatch or leak, 2 when DPDK or \
            the ports could not be set up.

            --no-pci is added to the EAL arguments unless they name PCI devices with -a/--allow \
            or -b/--block, so the machine's own NICs are never probed by accident.

            Examples:
              upf-replay port-check
              upf-replay port-check --eal "--no-huge -m 512 --no-shconf -l 0-1 \\
                  --vdev=net_pcap0,rx_pcap=in.pcap --vdev=net_pcap1,tx_pcap=out.pcap" \\
                  --source-port net_pcap0 --tx-port net_pcap1
            """
    )

    /// `--in-memory` would be the natural choice, but DPDK 22.11 rejects it together with
    /// `--no-huge` ("--legacy-mem is not compatible with --in-memory": --no-huge implies legacy
    /// memory). `--no-shconf` gives the same property: no runtime files and no multi-process socket,
    /// so concurrent runs do not collide. Telemetry is off for the same reason (a shared socket).
    static let defaultEAL = "--no-pci --no-huge -m 512 --no-shconf --no-telemetry -l 0-1 --vdev=net_ring0"

    @Option(name: .customLong("eal"), parsing: .unconditional,
            help: ArgumentHelp("EAL arguments, split on whitespace.", valueName: "args"))
    var ealArguments: String = PortCheck.defaultEAL

    @Option(help: ArgumentHelp("Device to transmit on.", valueName: "name"))
    var txPort: String = "net_ring0"

    @Option(help: ArgumentHelp("""
        Device to receive the frames back on, or "none". Default: the TX port when it is a \
        net_ring (a ring device without arguments loops its TX rings back to its RX), else none.
        """, valueName: "name"))
    var rxPort: String?

    @Option(help: "Frames to send (with --source-port: at most this many).")
    var count: Int = 32

    @Option(help: ArgumentHelp("Device whose received frames are sent, instead of synthetic ones.", valueName: "name"))
    var sourcePort: String?

    @Option(help: "Seconds the send/receive loop may run before it gives up.")
    var timeout: Double = 2

    @Flag(help: "Print the report as one JSON object.")
    var json = false

    func validate() throws {
        guard count > 0, count <= 10_000_000 else { throw ValidationError("--count must be between 1 and 10000000") }
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be between 0 and 3600 seconds") }
        if splitEAL(ealArguments).isEmpty { throw ValidationError("--eal is empty") }
    }

    func run() throws {
        let arguments = Self.withNoPCI(splitEAL(ealArguments))
        do {
            try EAL.initialize(arguments: arguments, programName: "upf-replay")
        } catch {
            var message = "EAL initialisation failed: \(error.message) (\(error.operation) with: \(arguments.joined(separator: " ")))"
            if arguments.contains("--no-huge") && arguments.contains("--in-memory") {
                message += "\nhint: DPDK 22.11 refuses --in-memory with --no-huge; use --no-shconf instead"
            }
            writeError("port-check: error: \(message)")
            throw ExitCode(2)
        }

        var session = PortSession()
        let outcome: Result<PortCheckReport, PortCheckFailure>
        do {
            outcome = .success(try session.run(self))
        } catch let failure as PortCheckFailure {
            outcome = .failure(failure)
        } catch {
            outcome = .failure(PortCheckFailure(message: "\(error)", code: 2))
        }
        // Whatever happened, give every port and mbuf back before EAL goes away.
        let teardownProblems = session.teardown()

        var exitCode: Int32 = 0
        switch outcome {
        case .success(var report):
            report.mempoolInUseAtExit = session.inUseAtExit
            report.failures += teardownProblems
            if let inUse = session.inUseAtExit, inUse != 0 {
                report.failures.append("mbuf leak: \(inUse) mbufs still in use after all ports were closed")
            }
            report.ok = report.failures.isEmpty
            emit(report)
            if !report.ok {
                for failure in report.failures { writeError("port-check: FAILED: \(failure)") }
                exitCode = 1
            }
        case .failure(let failure):
            for problem in teardownProblems { writeError("port-check: also: \(problem)") }
            writeError("port-check: error: \(failure.message)")
            exitCode = failure.code
        }
        do { try EAL.cleanup() } catch { writeError("port-check: warning: \(error)") }
        if exitCode != 0 { throw ExitCode(exitCode) }
    }

    private func splitEAL(_ text: String) -> [String] {
        text.split(whereSeparator: { $0.isWhitespace }).map(String.init)
    }

    /// Adds `--no-pci` unless the arguments choose PCI devices themselves (`-a`/`--allow` or
    /// `-b`/`--block`, with the value attached or not): probing every NIC on the machine by
    /// default could take the operator's management interface away from the kernel.
    static func withNoPCI(_ arguments: [String]) -> [String] {
        let namesPCI = arguments.contains { argument in
            if argument.hasPrefix("--") {
                return ["--allow", "--block"].contains { argument == $0 || argument.hasPrefix($0 + "=") }
            }
            return argument.hasPrefix("-a") || argument.hasPrefix("-b")
        }
        if namesPCI || arguments.contains("--no-pci") { return arguments }
        return ["--no-pci"] + arguments
    }

    private func emit(_ report: PortCheckReport) {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if let data = try? encoder.encode(report) { print(String(decoding: data, as: UTF8.self)) }
        } else {
            print(report.text)
        }
    }
}

// MARK: - Setup and teardown

/// A setup problem: printed as an error, exit code 2 (or 1 for a failed check).
struct PortCheckFailure: Error {
    var message: String
    var code: Int32
}

private func fail(_ message: String, code: Int32) -> PortCheckFailure {
    PortCheckFailure(message: message, code: code)
}

private func writeError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// The DPDK objects of one run, so that teardown can release whatever setup got as far as creating,
/// in the order DPDK requires: drain RX queues, stop, close, then check and free the mempool.
private struct PortSession {
    /// 2^13 - 1 mbufs (a ring-backed pool is best at 2^k - 1): room for a 1024-descriptor RX ring
    /// on each of three ports, TX rings, bursts in flight and the per-lcore caches, at ~19 MB.
    static let mempoolSize = 8191
    static let mempoolCache = 256
    static let ringSize = 1024

    var mempool: Mempool?
    /// Ports configured so far (each once, even if it plays several roles), with their RX queues.
    var configured: [(port: EthPort, rxQueues: Int)] = []
    var started: [EthPort] = []
    var inUseAtExit: Int?

    mutating func run(_ options: PortCheck) throws -> PortCheckReport {
        let tx = try lookUp(options.txPort, role: "--tx-port")
        let txInfo = try tx.info()
        guard txInfo.maxTxQueues > 0 else { throw fail("\(tx.name) cannot transmit (driver \(txInfo.driverName) has no TX queue)", code: 2) }
        let source = try options.sourcePort.map { try lookUp($0, role: "--source-port") }
        let rx: EthPort?
        switch options.rxPort {
        case "none"?: rx = nil
        case let name?: rx = try lookUp(name, role: "--rx-port")
        case nil: rx = txInfo.driverName == "net_ring" ? tx : nil
        }
        if let source, source == rx {
            throw fail("--source-port and --rx-port are the same port (\(source.name)); one RX queue cannot feed both", code: 2)
        }

        // One pool on the TX port's socket (else the caller's): mbufs are written where they are sent.
        let socket = tx.socketID ?? EAL.socketID
        let pool = try Mempool.create(name: "port_check", count: Self.mempoolSize, cacheSize: Self.mempoolCache, socket: socket)
        mempool = pool

        var roles: [EthPort] = []
        for port in [source, tx, rx].compactMap({ $0 }) where !roles.contains(port) { roles.append(port) }
        for port in roles {
            let info = try port.info()
            // One RX and one TX queue where the device has them (a tx_pcap-only port still offers a
            // dummy RX queue; a device without one gets none rather than a configure error).
            let rxQueues = min(1, info.maxRxQueues), txQueues = min(1, info.maxTxQueues)
            if (port == rx || port == source) && rxQueues == 0 {
                throw fail("\(port.name) cannot receive (driver \(info.driverName) has no RX queue)", code: 2)
            }
            configured.append((port, rxQueues))
            try port.configure(rxQueues: rxQueues, txQueues: txQueues, ringSize: Self.ringSize, mempool: pool)
        }
        for port in roles {
            try port.start()
            started.append(port)
            try? port.resetStats()
            // Synthetic frames go to the RX port's MAC, but a loop over a switch or a peer that
            // rewrites addresses should not fail for that reason: accept every destination.
            if port == rx { try? port.enablePromiscuous() }
        }

        let txMAC = (try? tx.macAddress()) ?? MACAddress(0x02, 0, 0, 0, 0, 1)
        let dstMAC = rx.flatMap { try? $0.macAddress() } ?? MACAddress.broadcast
        let hz = EAL.tscHz
        let job = UnsafeMutablePointer<TrafficJob>.allocate(capacity: 1)
        job.initialize(to: TrafficJob(
            txPort: tx, rxPort: rx, sourcePort: source, mempool: pool, target: options.count,
            timeoutTicks: UInt64(options.timeout * Double(hz)), sourceIdleTicks: hz / 10,
            sourceMAC: txMAC.octets, destinationMAC: dstMAC.octets))
        defer { job.deinitialize(count: 1); job.deallocate() }

        // The loop runs where upfd's data path runs: on a worker lcore, pinned, with its own
        // mempool cache. With a single lcore (-l 0) it runs on the main lcore instead.
        let entry: LcoreFunction = { argument in
            guard let argument else { return -1 }
            argument.assumingMemoryBound(to: TrafficJob.self).pointee.run()
            return 0
        }
        let worker = Lcores.workers.first
        let loopStart = DispatchTime.now()
        if let worker {
            try Lcores.launch(entry, argument: UnsafeMutableRawPointer(job), on: worker)
            Lcores.wait(worker)
        } else {
            _ = entry(UnsafeMutableRawPointer(job))
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - loopStart.uptimeNanoseconds) / 1e6
        let result = job.pointee

        // Frames that arrived after the loop gave up would otherwise sit in the RX rings
        // (net_ring keeps them across close) and show up as a leak.
        let drained = drainAll()

        var report = PortCheckReport()
        report.lcore = result.lcore
        report.ranOnWorker = worker != nil
        report.txPort = tx.name
        report.rxPort = rx?.name
        report.sourcePort = source?.name
        report.requested = options.count
        report.produced = result.produced
        report.sent = result.sent
        report.unsent = result.unsent
        report.received = result.received
        report.matched = result.matched
        report.mismatched = result.mismatched
        report.unexpected = result.unexpected
        report.verified = rx != nil
        report.timedOut = result.timedOut
        report.sourceExhausted = result.sourceExhausted
        report.drainedAfterLoop = drained
        report.elapsedMilliseconds = (elapsed * 10).rounded() / 10
        report.mempoolSize = pool.size
        for port in roles { report.ports.append(PortCheckReport.Port(port)) }

        if result.allocationFailures > 0 {
            report.failures.append("mempool exhausted \(result.allocationFailures) times while building frames")
        }
        if let source, result.produced == 0 {
            report.failures.append("the source port \(source.name) delivered no frames")
        } else if source == nil && result.produced < options.count {
            report.failures.append("only \(result.produced) of \(options.count) frames could be built")
        }
        if result.unsent > 0 {
            report.failures.append("\(result.unsent) of \(result.produced) frames were not accepted by \(tx.name) before the deadline")
        }
        if let rx {
            if result.received < result.sent {
                report.failures.append("lost \(result.sent - result.received) of \(result.sent) frames (received \(result.received) on \(rx.name))")
            }
            if result.mismatched > 0 {
                report.failures.append("\(result.mismatched) received frames differ from those sent; first: \(result.firstMismatch ?? "?")")
            }
            if result.unexpected > 0 {
                report.failures.append("\(result.unexpected) more frames received than sent")
            }
        }
        if result.timedOut && report.failures.isEmpty {
            report.failures.append("the loop hit its \(options.timeout) s deadline")
        }
        return report
    }

    private func lookUp(_ name: String, role: String) throws -> EthPort {
        do { return try EthPort(named: name) } catch {
            throw fail("\(role): \(error.message)", code: 2)
        }
    }

    /// Empties every RX queue; returns how many frames were thrown away. Bounded, so a source that
    /// never runs dry (net_pcap with infinite_rx=1) cannot hold teardown hostage.
    private func drainAll() -> Int {
        var drained = 0
        let burst = MbufBurst()
        defer { burst.deallocate() }
        for (port, rxQueues) in configured where rxQueues > 0 && started.contains(port) {
            for _ in 0..<4096 {
                let n = port.receive(queue: 0, into: burst.slots, capacity: MbufBurst.capacity)
                if n == 0 { break }
                burst.free(0..<n)
                drained += n
            }
        }
        return drained
    }

    /// Stops and closes every port, then reads the mempool's in-use count (the leak check) and
    /// frees it. Returns the problems met; never throws, so EAL cleanup always follows.
    mutating func teardown() -> [String] {
        var problems: [String] = []
        _ = drainAll()
        for port in started {
            do { try port.stop() } catch { problems.append("\(error)") }
        }
        started.removeAll()
        for (port, _) in configured {
            do { try port.close() } catch { problems.append("\(error)") }
        }
        configured.removeAll()
        if let pool = mempool {
            inUseAtExit = pool.inUseCount
            pool.free()
            mempool = nil
        }
        return problems
    }
}

// MARK: - The send/receive loop

/// Everything the send/receive loop needs and reports, reached through one pointer handed to the
/// worker lcore. The main lcore does not touch it between launch and `Lcores.wait`, so no locking.
private struct TrafficJob {
    let txPort: EthPort
    let rxPort: EthPort?
    let sourcePort: EthPort?
    let mempool: Mempool
    let target: Int
    let timeoutTicks: UInt64
    /// A pcap source returns nothing once its file is read: this long without a frame means done.
    let sourceIdleTicks: UInt64
    let sourceMAC: [UInt8]
    let destinationMAC: [UInt8]

    var lcore: UInt32 = 0
    var produced = 0, sent = 0, unsent = 0
    var received = 0, matched = 0, mismatched = 0, unexpected = 0
    var allocationFailures = 0
    var timedOut = false, sourceExhausted = false
    var firstMismatch: String?

    /// The bytes of every frame produced, back to back, and where each one ends: what received
    /// frames are compared with. Kept only when there is an RX port.
    var reference: [UInt8] = []
    var referenceEnds: [Int] = []

    init(txPort: EthPort, rxPort: EthPort?, sourcePort: EthPort?, mempool: Mempool, target: Int,
         timeoutTicks: UInt64, sourceIdleTicks: UInt64, sourceMAC: [UInt8], destinationMAC: [UInt8]) {
        self.txPort = txPort
        self.rxPort = rxPort
        self.sourcePort = sourcePort
        self.mempool = mempool
        self.target = target
        self.timeoutTicks = timeoutTicks
        self.sourceIdleTicks = sourceIdleTicks
        self.sourceMAC = sourceMAC
        self.destinationMAC = destinationMAC
        if rxPort != nil {
            // Reserved up front so that the loop does not reallocate for synthetic frames.
            // (Capped: a huge --count grows the arrays instead of reserving gigabytes up front.)
            reference.reserveCapacity(min(target, 1 << 16) * 128)
            referenceEnds.reserveCapacity(min(target, 1 << 16))
        }
    }

    mutating func run() {
        lcore = Lcores.current ?? UInt32.max
        let txBurst = MbufBurst(), rxBurst = MbufBurst()
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 65536, alignment: 64)
        defer { txBurst.deallocate(); rxBurst.deallocate(); scratch.deallocate() }

        let start = EAL.rdtsc()
        let deadline = start &+ timeoutTicks
        var lastSourceFrame = start
        // txBurst.slots[pendingStart..<pendingEnd] are produced but not yet accepted by the PMD.
        var pendingStart = 0, pendingEnd = 0

        while true {
            let now = EAL.rdtsc()
            if now >= deadline { timedOut = true; break }

            // 1. Produce the next burst once the previous one is fully sent.
            if pendingStart == pendingEnd && produced < target && !sourceExhausted {
                let want = min(MbufBurst.capacity, target - produced)
                var got = 0
                if let source = sourcePort {
                    got = source.receive(queue: 0, into: txBurst.slots, capacity: want)
                    if got > 0 { lastSourceFrame = now } else if now &- lastSourceFrame > sourceIdleTicks { sourceExhausted = true }
                } else if txBurst.allocate(from: mempool, count: want) {
                    for i in 0..<want { buildFrame(txBurst[i], sequence: produced + i) }
                    got = want
                } else {
                    allocationFailures += 1
                }
                if rxPort != nil { for i in 0..<got { record(txBurst[i]) } }
                produced += got
                pendingStart = 0
                pendingEnd = got
            }

            // 2. Transmit what is pending; the PMD may take only part of it when its ring is full.
            if pendingStart < pendingEnd {
                let n = txPort.transmit(queue: 0, txBurst.slots + pendingStart, count: pendingEnd - pendingStart)
                pendingStart += n
                sent += n
            }

            // 3. Receive and compare, in order.
            if let rx = rxPort {
                let n = rx.receive(queue: 0, into: rxBurst.slots, capacity: MbufBurst.capacity)
                for i in 0..<n { compare(rxBurst[i], scratch: scratch) }
                rxBurst.free(0..<n)
            }

            // 4. Done when everything is produced and sent, and (with an RX port) back.
            let producing = produced < target && !sourceExhausted
            if !producing && pendingStart == pendingEnd && (rxPort == nil || received >= sent) { break }
        }
        // Frames the PMD never took are still ours.
        unsent = pendingEnd - pendingStart
        txBurst.free(pendingStart..<pendingEnd)
    }

    /// A 64- to 128-byte Ethernet/IPv4/UDP frame (198.18.0.1:50000 -> 198.18.0.2:9, the RFC 2544
    /// benchmarking range and the discard port) whose payload starts with "UPFD", the sequence
    /// number and the frame count, so a frame seen in a capture or on a wire says where it came from.
    private func buildFrame(_ mbuf: Mbuf, sequence: Int) {
        let length = 64 + (sequence &* 37) % 65
        guard let frame = mbuf.append(UInt16(length)) else { return }
        let bytes = frame.assumingMemoryBound(to: UInt8.self)
        for i in 0..<6 { bytes[i] = destinationMAC[i]; bytes[6 + i] = sourceMAC[i] }
        store16(bytes + 12, 0x0800)
        // IPv4: version 4, IHL 5, DF, TTL 64, UDP.
        let ip = bytes + 14
        ip[0] = 0x45; ip[1] = 0
        store16(ip + 2, UInt16(length - 14))
        store16(ip + 4, UInt16(truncatingIfNeeded: sequence))
        store16(ip + 6, 0x4000)
        ip[8] = 64; ip[9] = 17
        store16(ip + 10, 0)
        store32(ip + 12, 0xC612_0001)
        store32(ip + 16, 0xC612_0002)
        store16(ip + 10, ipv4Checksum(ip))
        // UDP, checksum 0 (optional over IPv4).
        let udp = ip + 20
        store16(udp, 50000)
        store16(udp + 2, 9)
        store16(udp + 4, UInt16(length - 34))
        store16(udp + 6, 0)
        let payload = udp + 8
        payload[0] = 0x55; payload[1] = 0x50; payload[2] = 0x46; payload[3] = 0x44 // "UPFD"
        store32(payload + 4, UInt32(truncatingIfNeeded: sequence))
        store32(payload + 8, UInt32(truncatingIfNeeded: target))
        for i in 12..<(length - 42) { payload[i] = UInt8(truncatingIfNeeded: sequence &+ i) }
    }

    /// Keeps a copy of a produced frame: once transmitted, the mbuf belongs to the PMD.
    private mutating func record(_ mbuf: Mbuf) {
        let length = mbuf.packetLength
        if mbuf.segmentCount == 1 {
            reference.append(contentsOf: UnsafeRawBufferPointer(start: mbuf.data, count: length))
        } else {
            let offset = reference.count
            reference.append(contentsOf: repeatElement(0, count: length))
            _ = reference.withUnsafeMutableBytes { buffer in
                mbuf.copyBytes(offset: 0, count: length, to: buffer.baseAddress! + offset)
            }
        }
        referenceEnds.append(reference.count)
    }

    private mutating func compare(_ mbuf: Mbuf, scratch: UnsafeMutableRawPointer) {
        let index = received
        received += 1
        guard index < referenceEnds.count else { unexpected += 1; return }
        let start = index == 0 ? 0 : referenceEnds[index - 1]
        let expectedLength = referenceEnds[index] - start
        let length = mbuf.packetLength
        var same = length == expectedLength && length <= 65536
        if same {
            same = mbuf.copyBytes(offset: 0, count: length, to: scratch) && reference.withUnsafeBytes { buffer in
                memcmp(buffer.baseAddress! + start, scratch, length) == 0
            }
        }
        if same {
            matched += 1
        } else {
            mismatched += 1
            if firstMismatch == nil {
                firstMismatch = "frame \(index): \(length) bytes received, \(expectedLength) sent"
                    + (length == expectedLength ? ", contents differ" : "")
            }
        }
    }
}

@inline(__always)
private func store16(_ p: UnsafeMutablePointer<UInt8>, _ value: UInt16) {
    p[0] = UInt8(value >> 8); p[1] = UInt8(value & 0xff)
}

@inline(__always)
private func store32(_ p: UnsafeMutablePointer<UInt8>, _ value: UInt32) {
    store16(p, UInt16(value >> 16)); store16(p + 2, UInt16(value & 0xffff))
}

/// RFC 1071 checksum of a 20-byte IPv4 header (its checksum field zero).
private func ipv4Checksum(_ header: UnsafeMutablePointer<UInt8>) -> UInt16 {
    var sum: UInt32 = 0
    for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(header[i]) << 8 | UInt32(header[i + 1]) }
    while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
    return ~UInt16(sum)
}

// MARK: - Report

/// What port-check found, as text for an operator or JSON for a test or a script.
struct PortCheckReport: Codable {
    struct Port: Codable {
        var id: UInt16
        var name: String
        var driver: String?
        var socket: Int32?
        var mac: String?
        var linkUp: Bool?
        var speedMbps: UInt32?
        var stats: EthPort.Stats?

        init(_ port: EthPort) {
            id = port.id
            name = port.name
            driver = try? port.info().driverName
            socket = port.socketID
            mac = (try? port.macAddress())?.description
            let link = try? port.link()
            linkUp = link?.isUp
            speedMbps = link?.speedMbps
            stats = try? port.stats()
        }
    }

    var ok = false
    var failures: [String] = []
    var lcore: UInt32 = 0
    var ranOnWorker = false
    var txPort = ""
    var rxPort: String?
    var sourcePort: String?
    var requested = 0
    /// Frames built or read from the source port.
    var produced = 0
    var sent = 0
    /// Produced but never accepted by the TX port.
    var unsent = 0
    var received = 0
    var matched = 0
    var mismatched = 0
    var unexpected = 0
    /// Whether received frames were compared with sent ones (there was an RX port).
    var verified = false
    var timedOut = false
    var sourceExhausted = false
    /// Frames still in RX queues after the loop, freed before the ports were stopped (they are
    /// counted in the ports' ipackets, which are read after the drain).
    var drainedAfterLoop = 0
    var elapsedMilliseconds = 0.0
    var mempoolSize = 0
    var mempoolInUseAtExit: Int?
    var ports: [Port] = []

    var text: String {
        var lines = ["port-check: \(ok ? "OK" : "FAILED")"]
        func line(_ label: String, _ value: String) { lines.append("  " + label.padding(toLength: 18, withPad: " ", startingAt: 0) + value) }
        line("lcore", "\(lcore) (\(ranOnWorker ? "worker" : "main"))")
        line("source", sourcePort.map { "\($0) (frames read from it)" } ?? "synthetic Ethernet/IPv4/UDP, 64-128 bytes")
        line("tx port", txPort)
        line("rx port", rxPort ?? "none (transmit only, no comparison)")
        line("sent", "\(sent) of \(sourcePort == nil ? requested : produced)" + (unsent > 0 ? " (\(unsent) not accepted)" : "")
             + (sourceExhausted ? " (source exhausted)" : ""))
        if verified {
            line("received", "\(received)")
            line("matched", "\(matched) byte for byte" + (mismatched > 0 ? ", \(mismatched) differ" : "")
                 + (unexpected > 0 ? ", \(unexpected) unexpected" : ""))
        }
        if drainedAfterLoop > 0 { line("drained", "\(drainedAfterLoop) frames left in RX queues") }
        line("elapsed", "\(elapsedMilliseconds) ms" + (timedOut ? " (deadline hit)" : ""))
        line("mempool in use", mempoolInUseAtExit.map { "\($0) of \(mempoolSize) mbufs at exit" } ?? "unknown")
        for port in ports {
            var head = "\(port.name) (port \(port.id)"
            if let driver = port.driver { head += ", \(driver)" }
            if let socket = port.socket { head += ", socket \(socket)" }
            if let mac = port.mac { head += ", \(mac)" }
            if let up = port.linkUp { head += ", link \(up ? "up" : "down")" + ((port.speedMbps ?? 0) > 0 ? " \(port.speedMbps!) Mb/s" : "") }
            line("port", head + ")")
            if let s = port.stats {
                line("", "ipackets \(s.ipackets) opackets \(s.opackets) ibytes \(s.ibytes) obytes \(s.obytes)")
                line("", "imissed \(s.imissed) ierrors \(s.ierrors) oerrors \(s.oerrors) rx_nombuf \(s.rxNoMbuf)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
