import ArgumentParser
import Dispatch
import Foundation
import Logging
import UPFCapture
import UPFControl
import UPFDatapath
import UPFPolicy
import UPFService

/// `upf-replay run`: the upfd data path (same code, same DPDK ports and workers) with its ports'
/// traffic coming from captures and going to captures.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay captures through the upfd data path and write what each port sends.",
        discussion: """
            The configuration's ports (name, role, addresses, MACs) become in-memory DPDK ring \
            ports; their devices and the EAL device lists are not used. The policy is installed \
            before the first packet. Frames of all inputs are fed in timestamp order. Every port's \
            output is written to OUTPUT-DIR/<port>.pcap. With --socket the control socket is served \
            during the replay, so upfctl can change the policy while traffic flows.

            Exit status: 0 done (and every mbuf returned to the pool), 1 an error (the message \
            says which input, field or part), 2 an --expect mismatch (a readable diff on stderr).
            """
    )

    @Option(help: ArgumentHelp("upfd configuration (YAML); default: the embedded one.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Policy (YAML or JSON) installed before the first packet.", valueName: "file"))
    var policy: String?

    @Option(name: .customLong("input"), help: ArgumentHelp("PORT=FILE: an Ethernet capture received on port PORT (repeatable).", valueName: "port=file"))
    var inputs: [String] = []

    @Option(help: ArgumentHelp("Directory for <port>.pcap outputs (created; not with --preload).", valueName: "dir"))
    var outputDir: String = ""

    @Flag(help: "Line-rate mode: copy the inputs into mbufs once and circulate them (no output captures); report Mpps and RX-to-TX latency.")
    var preload = false

    @Option(help: "With --preload: seconds to feed (after --warmup) when --loops is 0.")
    var duration: Double = 5

    @Option(help: "With --preload: feed the inputs this many times instead of for --duration.")
    var loops: Int = 0

    @Option(help: "With --preload: target rate in bits per second of offered frames (instead of --rate).")
    var rateBps: Double = 0

    @Option(help: "With --preload: seconds at the start not counted in rate or latency.")
    var warmup: Double = 0

    @Option(help: "With --preload: packets in flight at most (0: half a ring).")
    var inFlight: Int = 0

    @Option(help: "With --preload: mbufs that circulate (0: one per frame up to 4096); with fewer mbufs than frames each returned mbuf takes the next frame.")
    var preloadMbufs: Int = 0

    @Option(help: "Input rate in packets per second (0: as fast as the data path takes them).")
    var rate: Double = 0

    @Option(help: ArgumentHelp("Serve the control socket at this path during the replay.", valueName: "path"))
    var socket: String?

    @Option(help: ArgumentHelp("With --socket: hold the first packet until this many clients subscribe to `events` (`upfctl events`), so that they see every event of the replay; exit 1 if they have not after 60 s.", valueName: "count"))
    var waitForSubscribers: Int = 0

    @Option(help: ArgumentHelp("Expectations (YAML or JSON) the outputs and counters must meet.", valueName: "file"))
    var expect: String?

    @Option(help: "Seconds between progress lines on stderr.")
    var progressInterval: Double = 1

    @Option(help: "Worker lcores, overriding the configuration's eal.lcores (e.g. \"0,1\" or \"0-2\").")
    var lcores: String?

    @Flag(help: "Print the report as one JSON object on stdout.")
    var json = false

    @Option(help: ArgumentHelp("After the replay, keep serving the control socket and the metrics endpoint for this many seconds (SIGTERM or SIGINT ends it sooner), so the final counters can be read.", valueName: "seconds"))
    var linger: Double = 0

    func validate() throws {
        guard linger >= 0, linger.isFinite else { throw ValidationError("--linger must be 0 or more seconds") }
        guard waitForSubscribers >= 0 else { throw ValidationError("--wait-for-subscribers must be 0 or more") }
        guard waitForSubscribers == 0 || socket != nil else { throw ValidationError("--wait-for-subscribers needs --socket") }
        guard preload || !outputDir.isEmpty else { throw ValidationError("--output-dir is needed (unless --preload)") }
        guard !(preload && expect != nil) else { throw ValidationError("--expect needs output captures: not with --preload") }
        guard duration > 0, loops >= 0, rateBps >= 0, warmup >= 0, inFlight >= 0 else {
            throw ValidationError("--duration must be > 0; --loops, --rate-bps, --warmup, --in-flight >= 0")
        }
    }

    func run() throws {
        var settings: ServiceConfiguration
        do {
            settings = try config.map { try ServiceConfiguration.load(path: $0) }
                ?? ServiceConfiguration.parse(yaml: ServiceConfiguration.defaultYAML, source: "embedded default configuration")
        } catch {
            throw fail("configuration error: \(error)")
        }
        // Ring ports only: no device is probed.
        settings.dataplane.eal.vdevs = []
        settings.dataplane.eal.pci = []
        if let lcores { settings.dataplane.eal.lcores = lcores; settings.dataplane.workers.lcores = nil }
        if let socket { settings.control.socket = socket }
        // The replay never persists a policy.
        settings.stateFile = "/nonexistent/upf-replay-state.json"

        var logger = Logger(label: "upf-replay")
        logger.logLevel = settings.logLevel > .notice ? settings.logLevel : .warning

        let expectations = try expect.map { path in
            do { return try Expectations.load(path: path) } catch { throw fail("\(path): \(error)") }
        }
        let loadedPolicy = try policy.map { path in
            do { return try Policy.load(path: path) } catch { throw fail("\(path): \(error)") }
        }
        var input = ReplayInput()
        for spec in inputs {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let port = settings.dataplane.portIndex(named: parts[0]) else {
                let names = settings.dataplane.ports.map(\.name).joined(separator: ", ")
                throw fail("--input \(spec): expected PORT=FILE with PORT one of: \(names)")
            }
            do { try input.add(path: parts[1], port: port) } catch { throw fail("\(error)") }
        }
        if preload {
            // Every frame gets its own mbuf, on top of what the rings and bursts need.
            let circulating = preloadMbufs > 0 ? min(preloadMbufs, input.frames.count) : min(input.frames.count, 4096)
            let needed = circulating + settings.dataplane.mbufs
            settings.dataplane.mbufs = needed
            settings.dataplane.eal.memoryMB = max(settings.dataplane.eal.memoryMB, needed * 2560 / 1_048_576 + 512)
        }
        var writers: [PcapWriter] = []
        if !preload {
            do {
                try FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true)
            } catch {
                throw fail("cannot create \(outputDir): \(error.localizedDescription)")
            }
            do {
                writers = try settings.dataplane.ports.map { try PcapWriter(path: "\(outputDir)/\($0.name).pcap") }
            } catch {
                throw fail("\(error)")
            }
        }

        let dataplane: Dataplane
        do {
            dataplane = try Dataplane(service: settings, source: .rings(size: 4096), logger: logger)
        } catch {
            throw fail("cannot start the data path: \(error)")
        }
        let service = ControlService(configuration: settings, tables: dataplane.sessionTables, persist: false, logger: logger)
        service.core.datapath = dataplane
        var outcome: ReplayOutcome?
        var lineRate: LineRateOutcome?
        var failure: Error?
        let health = EngineHealthMonitor(dataplane: dataplane, core: service.core,
                                         linkIntervalMilliseconds: settings.dataplane.health.linkIntervalMilliseconds,
                                         logger: logger)
        do {
            try service.pinThreads()
            try service.core.load().wait()
            if let loadedPolicy {
                do {
                    _ = try service.core.handle(.policyPut(loadedPolicy, replace: true)).wait()
                } catch {
                    throw fail("\(policy!): \(error)")
                }
            }
            try dataplane.start()
            health.start()
            if socket != nil { try service.server.start() }
            try service.metricsServer?.start()
            try waitForSubscribers(waitForSubscribers, of: service.core)
            if preload {
                var options = LineRateOptions()
                let meanBits = Double(input.bytes.count * 8) / Double(max(1, input.frames.count))
                options.rate = rateBps > 0 ? rateBps / meanBits : rate
                options.durationSeconds = duration
                options.loops = loops
                options.warmupSeconds = warmup
                options.inFlight = inFlight
                options.mbufs = preloadMbufs
                lineRate = try dataplane.lineRate(input, options: options, progressInterval: progressInterval) {
                    printToStandardError("upf-replay: \($0)")
                }
            } else {
                outcome = try dataplane.replay(input, rate: rate, writers: writers, decode: expectations != nil,
                                               progressInterval: progressInterval) { fed, processed in
                    printToStandardError("upf-replay: \(fed)/\(input.frames.count) fed, \(processed) processed")
                }
            }
            if linger > 0 { Self.linger(seconds: linger) }
        } catch {
            failure = error
        }
        health.stop()
        let statistics = DatapathStatistics(dataplane: dataplane)
        service.stop(writeSnapshot: false)
        var stopError: Error?
        do { try dataplane.stop() } catch { stopError = error }
        writers.forEach { $0.flush() }
        if let failure { throw failure is ExitCode ? failure : fail("\(failure)") }
        if let lineRate {
            let report = LineRateReport(input: input, outcome: lineRate, statistics: statistics, ports: settings.dataplane.ports.map(\.name),
                                        workers: dataplane.workers.count)
            if json { print(report.json) } else { print(report.text, terminator: "") }
            if let stopError { throw fail("\(stopError)") }
            if lineRate.stranded > 0 { throw fail("\(lineRate.stranded) packets never came back from the data path") }
            return
        }
        guard let outcome else { throw fail("the replay did not run") }

        let ports = settings.dataplane.ports
        let mismatches = expectations?.check(outcome: outcome, statistics: statistics, ports: ports.map(\.name)) ?? []
        let report = ReplayReport(input: input, outcome: outcome, statistics: statistics, ports: ports.map(\.name),
                                  outputDir: outputDir, mismatches: expectations == nil ? nil : mismatches)
        if json { print(report.json) } else { print(report.text, terminator: "") }
        if let stopError { throw fail("\(stopError)") }
        if !mismatches.isEmpty {
            printToStandardError("upf-replay: \(mismatches.count) expectation(s) not met:")
            mismatches.forEach { printToStandardError("  " + $0) }
            throw ExitCode(2)
        }
    }

    /// Returns once `count` clients subscribe to `events`; throws after 60 s without them.
    private func waitForSubscribers(_ count: Int, of core: ControlCore) throws {
        guard count > 0 else { return }
        let deadline = ContinuousClock.now + .seconds(60)
        while core.eventSubscriberCount < count {
            guard ContinuousClock.now < deadline else {
                throw fail("\(core.eventSubscriberCount) of \(count) event subscribers after 60 s (--wait-for-subscribers)")
            }
            usleep(2_000)
        }
    }

    /// Serves on (the workers idle) until `seconds` passed or SIGTERM/SIGINT arrived.
    static func linger(seconds: Double) {
        printToStandardError("upf-replay: replay complete; serving for \(seconds) s")
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let stop = DispatchSemaphore(value: 0)
        let queue = DispatchQueue(label: "upf-replay.signals")
        let sources = [SIGTERM, SIGINT].map { number -> any DispatchSourceSignal in
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { stop.signal() }
            source.resume()
            return source
        }
        _ = stop.wait(timeout: .now() + seconds)
        sources.forEach { $0.cancel() }
    }

    private func fail(_ message: String) -> ExitCode {
        printToStandardError("upf-replay: \(message)")
        return ExitCode(1)
    }
}

/// The replay's report: inputs, outputs, and the data path's own counters.
struct ReplayReport {
    var input: ReplayInput
    var outcome: ReplayOutcome
    var statistics: DatapathStatistics
    var ports: [String]
    var outputDir: String
    var mismatches: [String]?

    var json: String {
        var fields: [(String, JSONValue)] = [
            ("input", .object(ports.enumerated().map { i, name in
                let c = input.perPort[i] ?? (0, 0)
                return (name, .object([("packets", .int(c.packets)), ("bytes", .int(c.bytes))]))
            })),
            ("output", .object(ports.enumerated().map { i, name in
                (name, .object([("packets", .int(outcome.outputs[i].packets)), ("bytes", .int(outcome.outputs[i].bytes)),
                                ("file", .string("\(outputDir)/\(name).pcap"))]))
            })),
            ("datapath", statistics.json),
            ("elapsed_seconds", .number(String(format: "%.3f", outcome.elapsedSeconds))),
        ]
        if let mismatches {
            fields.append(("expect", .object([("ok", .bool(mismatches.isEmpty)), ("mismatches", .array(mismatches.map { .string($0) }))])))
        }
        var text = ""
        JSONValue.object(fields).write(to: &text)
        return text
    }

    var text: String {
        var out = "port            in pkts     in bytes     out pkts    out bytes\n"
        for (i, name) in ports.enumerated() {
            let c = input.perPort[i] ?? (0, 0)
            out += name.padding(toLength: 12, withPad: " ", startingAt: 0)
                + String(format: " %11d %12d %12d %12d\n", c.packets, c.bytes, outcome.outputs[i].packets, outcome.outputs[i].bytes)
        }
        out += "actions:"
        for a in statistics.actions where a.packets > 0 { out += " \(a.name)=\(a.packets)" }
        out += "\ndrops:"
        if statistics.drops.isEmpty { out += " none" }
        for d in statistics.drops { out += " \(d.name)=\(d.packets)" }
        out += String(format: "\nelapsed %.3f s; outputs in %@\n", outcome.elapsedSeconds, outputDir)
        if let mismatches { out += mismatches.isEmpty ? "expectations: all met\n" : "expectations: \(mismatches.count) not met\n" }
        return out
    }
}
