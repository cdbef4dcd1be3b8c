// upfd: the UPF service. This build runs the control plane (socket, policy, persistence); the
// DPDK data path is started by a later change.

import ArgumentParser
import Dispatch
import Foundation
import Logging
import UPFControl

@main
struct UPFD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upfd",
        abstract: "The upfd user-plane service: a 5G UPF fast path with local breakout to inference engines.",
        discussion: """
            Status: this build runs the CONTROL PLANE only — the control socket (see \
            docs/control-protocol.md and `upfctl`), policy validation, the session tables and the \
            persisted policy. The DPDK data path (packet I/O on N3/N6/N9 and engine ports) is not \
            started yet; it comes with a later change, and `health` reports "datapath":"not_running".

            Without --config an embedded default configuration is used (print it with \
            --print-default-config). SIGTERM or SIGINT closes the socket, writes a final snapshot of \
            the policy and exits 0. Exit status 1: the configuration, the state file or the socket \
            could not be used (the message names which and why).
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

        let service = ControlService(configuration: settings, logger: logger)
        do {
            try service.core.load().wait()
        } catch {
            service.stop(writeSnapshot: false)
            fail("cannot restore the policy: \(error)")
        }
        if check {
            print("upfd: configuration and state file are valid (policy version \(service.core.currentVersion))")
            service.stop(writeSnapshot: false)
            return
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

        do {
            try service.server.start()
        } catch {
            service.stop()
            fail("\(error)")
        }
        logger.notice("upfd started (control plane only; the DPDK data path is not started in this build)", metadata: [
            "version": "\(UPFDVersion.current)", "policy_version": "\(service.core.currentVersion)",
            "socket": "\(settings.control.socket)", "state_file": "\(settings.stateFile)",
        ])
        stopped.wait()
        service.stop()
        sources.forEach { $0.cancel() }
        logger.notice("upfd stopped")
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("upfd: \(message)\n".utf8))
        Foundation.exit(1)
    }
}
