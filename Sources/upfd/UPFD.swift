// upfd: the UPF service — the DPDK data path on pinned worker lcores, and the control plane
// (socket, policy, persistence) on the main one.

import ArgumentParser
import Dispatch
import Foundation
import Logging
import Metrics
import Prometheus
import UPFControl
import UPFService

@main
struct UPFD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upfd",
        abstract: "The upfd user-plane service: a 5G UPF fast path with local breakout to inference engines.",
        discussion: """
            upfd initialises DPDK with the configured EAL options, starts the configured ports \
            (roles n3, core, engine) and runs the fast path on the worker lcores; the main lcore \
            serves the control socket (docs/control-protocol.md, `upfctl`) and persists the policy.

            Without --config an embedded default configuration is used (print it with \
            --print-default-config): idle net_null ports, so upfd starts on any machine. SIGTERM or \
            SIGINT stops the workers (they flush what they hold), stops and closes the ports, \
            closes the socket, writes a final snapshot of the policy and exits 0. Exit status 1: \
            the configuration, the state file, DPDK, a port or the socket could not be used (the \
            message names which and why), or mbufs were missing from the pool at exit.
            """,
        version: UPFDVersion.current)

    @Option(name: .long, help: ArgumentHelp("YAML configuration file.", valueName: "file"))
    var config: String?

    @Flag(name: .long, help: "Print the embedded default configuration and exit.")
    var printDefaultConfig = false

    @Flag(name: .long, help: "Check the configuration and the state file, then exit without serving.")
    var check = false

    func run() throws {
        if printDefaultConfig {
            print(ServiceConfiguration.defaultYAML, terminator: "")
            return
        }
        let settings: ServiceConfiguration
        do {
            settings = try config.map { try ServiceConfiguration.load(path: $0) }
                ?? ServiceConfiguration.parse(yaml: ServiceConfiguration.defaultYAML, source: "embedded default configuration")
        } catch {
            fail("configuration error: \(error)")
        }

        let level = settings.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "upfd")
        logger.logLevel = level

        if check {
            // No DPDK here: --check must work on a machine where the ports are in use.
            let service = ControlService(configuration: settings, logger: logger)
            do {
                try service.core.load().wait()
            } catch {
                service.stop(writeSnapshot: false)
                fail("cannot restore the policy: \(error)")
            }
            print("upfd: configuration and state file are valid (policy version \(service.core.currentVersion))")
            service.stop(writeSnapshot: false)
            return
        }

        let started = ContinuousClock.now
        let dataplane: Dataplane
        do {
            dataplane = try Dataplane(service: settings, source: .devices, logger: logger)
        } catch {
            fail("cannot start the data path: \(error)")
        }
        // With the metrics endpoint on, swift-metrics records into the registry it serves, so
        // anything instrumented through the Metrics API is scraped with the data path's counters.
        let exporter = settings.metrics.listen == nil ? nil : PrometheusExporter()
        if let exporter { MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: exporter.registry)) }
        let service = ControlService(configuration: settings, tables: dataplane.sessionTables, logger: logger,
                                     exporter: exporter)
        service.core.datapath = dataplane
        do {
            try service.pinThreads()
        } catch {
            service.stop(writeSnapshot: false)
            try? dataplane.stop()
            fail("\(error) (control.cpus)")
        }
        do {
            try service.core.load().wait()
        } catch {
            service.stop(writeSnapshot: false)
            try? dataplane.stop()
            fail("cannot restore the policy: \(error)")
        }

        // Signals are taken synchronously by a dispatch source, never by an async handler.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        let stopped = DispatchSemaphore(value: 0)
        let signalQueue = DispatchQueue(label: "upfd.signals")
        let sources = [SIGTERM, SIGINT].map { number -> any DispatchSourceSignal in
            let source = DispatchSource.makeSignalSource(signal: number, queue: signalQueue)
            source.setEventHandler {
                logger.notice("signal received; shutting down", metadata: ["signal": "\(number == SIGTERM ? "SIGTERM" : "SIGINT")"])
                stopped.signal()
            }
            source.resume()
            return source
        }

        let health = EngineHealthMonitor(dataplane: dataplane, core: service.core,
                                         linkIntervalMilliseconds: settings.dataplane.health.linkIntervalMilliseconds,
                                         logger: logger)
        do {
            try dataplane.start()
            health.start()
            try service.server.start()
            try service.metricsServer?.start()
        } catch {
            health.stop()
            service.stop()
            try? dataplane.stop()
            fail("\(error)")
        }
        logger.notice("upfd started", metadata: [
            "version": "\(UPFDVersion.current)", "policy_version": "\(service.core.currentVersion)",
            "socket": "\(settings.control.socket)", "state_file": "\(settings.stateFile)",
            "startup": "\(ContinuousClock.now - started)",
        ])
        stopped.wait()
        // Close the socket first (no change can arrive for a stopping data path), then drain.
        health.stop()
        service.stop()
        sources.forEach { $0.cancel() }
        do {
            try dataplane.stop()
        } catch {
            fail("\(error)")
        }
        logger.notice("upfd stopped")
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("upfd: \(message)\n".utf8))
        Foundation.exit(1)
    }
}
