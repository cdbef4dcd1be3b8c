import Logging
import NIOCore
import NIOPosix
import Synchronization
import UPFDatapath

/// The control plane assembled: the policy owner on a thread of its own, the socket server on
/// another, the event bus between them. `upfd` runs one; tests run it in-process.
public final class ControlService: Sendable {
    public let bus = EventBus()
    public let metrics = ControlMetrics()
    public let core: ControlCore
    public let server: ControlServer
    /// The Prometheus endpoint, when `metrics.listen` is set; served on the I/O loop.
    public let metricsServer: MetricsServer?
    private let ioGroup: MultiThreadedEventLoopGroup
    private let ownerGroup: MultiThreadedEventLoopGroup
    private let logger: Logger
    private let stopped = Mutex(false)

    /// `tables` nil: the data path's `SessionTables`, sized by `limits.max_sessions`.
    /// `access` overrides the configured users (tests).
    /// `exporter`: the registry the metrics endpoint writes (upfd shares it with swift-metrics).
    public init(configuration: ServiceConfiguration, tables: (any DatapathTables)? = nil,
                persist: Bool = true, logger: Logger, access: AccessPolicy? = nil, exporter: PrometheusExporter? = nil) {
        self.logger = logger
        // One thread owns the policy; one thread serves every connection (a control plane's
        // load is a few requests per second, and the data path needs the cores).
        ownerGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        ioGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let owner = ownerGroup.next()
        // No workers read the tables in this build (the data path starts later): readers = 0.
        let datapath = tables ?? DatapathSessionTables(
            tables: SessionTables(capacity: configuration.limits.maxSessions, readers: 0))
        core = ControlCore(configuration: ControlCoreConfiguration(limits: configuration.limits,
                                                                   cpus: configuration.control.cpus),
                           tables: datapath,
                           store: persist ? StateStore(path: configuration.stateFile) : nil,
                           bus: bus, metrics: metrics, loop: owner, logger: logger)
        var serverConfiguration = configuration.serverConfiguration()
        if let access { serverConfiguration.access = access }
        server = ControlServer(configuration: serverConfiguration, handler: core, bus: bus,
                               metrics: metrics, group: ioGroup, logger: logger)
        // Checked when the configuration was read; a configuration built in code is checked here.
        do {
            if let endpoint = try configuration.metricsEndpoint() {
                let core = self.core
                metricsServer = MetricsServer(endpoint: endpoint, exporter: exporter ?? PrometheusExporter(),
                                              snapshot: { core.statsSnapshot() }, group: ioGroup, logger: logger)
            } else {
                metricsServer = nil
            }
        } catch {
            logger.error("metrics endpoint disabled: \(error)")
            metricsServer = nil
        }
    }

    /// Restores the policy (throws `StateFileError` naming the file when it cannot) and opens the
    /// socket (throws `SocketSetupError`).
    public func start() throws {
        try pinThreads()
        try core.load().wait()
        try server.start()
        try metricsServer?.start()
    }

    /// Pins the policy and I/O loops to `control.cpus` (nothing when it is empty); the snapshot
    /// writer pins itself. Throws `ThreadAffinity.Failure`.
    public func pinThreads() throws {
        let cpus = core.configuration.cpus
        guard !cpus.isEmpty else { return }
        for group in [ownerGroup, ioGroup] {
            try group.next().submit { () throws -> Void in try ThreadAffinity.pinCurrentThread(to: cpus) }.wait()
        }
    }

    /// Closes the socket and every connection, writes a final snapshot (unless told not to),
    /// stops the threads.
    public func stop(writeSnapshot: Bool = true) {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        metricsServer?.stop()
        server.stop()
        if writeSnapshot { try? core.shutdown().wait() }
        try? core.release().wait()
        try? ioGroup.syncShutdownGracefully()
        try? ownerGroup.syncShutdownGracefully()
    }
}
