// Engine health: the link state of each engine instance's port and, when the engine has one, its
// probe (a TCP connect, or an HTTP GET) decide whether the instance is steered to. Runs on a
// thread of its own — never on a worker, never on the policy owner's loop (a probe waits up to
// its timeout) — and reports changes to the policy owner, which alone writes the engine
// directory and publishes `engine_state`.

import Foundation
import Logging
import NIOCore
import Synchronization
import UPFControl
import UPFDatapath
import UPFDPDK
import UPFPolicy
#if canImport(Glibc)
import Glibc
#endif

public final class EngineHealthMonitor: @unchecked Sendable {
    private let dataplane: Dataplane
    private let core: ControlCore
    private let linkInterval: Double
    private let logger: Logger
    private let stopRequested = Mutex(false)
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?

    /// Per instance (engine id, address): the probe's state.
    private struct ProbeState {
        var next: Double = 0
        var failures: UInt32 = 0
        /// The first probe decides; after that an instance goes down once its probe failed
        /// `failures_before_down` times in a row, and up again at the first success.
        var up: Bool?
    }
    private var probes: [String: ProbeState] = [:]
    private var links: [Int: (up: Bool, at: Double)] = [:]
    private var reported: [String: (Engine, [EngineInstanceHealth])] = [:]

    /// How often the loop wakes to see what is due (probes and link reads have their own intervals).
    static let tick = 0.01

    public init(dataplane: Dataplane, core: ControlCore, linkIntervalMilliseconds: Int, logger: Logger) {
        self.dataplane = dataplane
        self.core = core
        linkInterval = Double(linkIntervalMilliseconds) / 1000
        self.logger = logger
    }

    public func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "upfd-health"
        self.thread = thread
        thread.start()
    }

    /// Stops the checks (waits for a probe in progress, at most its timeout).
    public func stop() {
        guard thread != nil else { return }
        stopRequested.withLock { $0 = true }
        finished.wait()
        thread = nil
    }

    private var stopping: Bool { stopRequested.withLock { $0 } }

    private static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    private func run() {
        while !stopping {
            let engines: [Engine]
            do {
                engines = try core.engineHealthTargets().wait()
            } catch {
                return   // the policy owner is gone: shutting down
            }
            var live = Set<String>()
            for engine in engines {
                if stopping { return }
                let instances = engine.instances.map { instance -> EngineInstanceHealth in
                    let key = "\(engine.id)|\(instance.address)"
                    live.insert(key)
                    return check(engine, instance, key: key)
                }
                if reported[engine.id].map({ $0.0 != engine || $0.1 != instances }) ?? true {
                    reported[engine.id] = (engine, instances)
                    core.reportEngineHealth(id: engine.id, engine: engine, instances: instances)
                }
            }
            probes = probes.filter { live.contains($0.key) }
            let ids = Set(engines.map(\.id))
            reported = reported.filter { ids.contains($0.key) }
            usleep(UInt32(EngineHealthMonitor.tick * 1e6))
        }
    }

    private func check(_ engine: Engine, _ instance: EngineInstance, key: String) -> EngineInstanceHealth {
        let configuration = dataplane.configuration
        guard let port = configuration.portIndex(named: instance.port), configuration.ports[port].role == .engine else {
            return EngineInstanceHealth(up: false, link: nil, probe: nil, unusable: "no_engine_port")
        }
        let link = linkUp(port)
        var probeUp: Bool?
        if let probe = engine.probe {
            var state = probes[key] ?? ProbeState()
            let t = EngineHealthMonitor.now()
            if t >= state.next {
                state.next = t + Double(probe.intervalMs) / 1000
                // A probe over a link that is down would only time out: it counts as failed.
                let ok = link && EngineProbeRunner.run(probe, address: instance.address)
                if ok {
                    state.failures = 0
                    state.up = true
                } else {
                    state.failures += 1
                    if state.up == nil || state.failures >= probe.effectiveFailuresBeforeDown { state.up = false }
                }
            }
            probes[key] = state
            probeUp = state.up ?? false
        }
        let unusable = instance.mac == nil ? "no_mac" : nil
        return EngineInstanceHealth(up: unusable == nil && link && (probeUp ?? true), link: link, probe: probeUp,
                                    unusable: unusable)
    }

    /// The port's link (`rte_eth_link_get_nowait`), read at most every `link_interval_ms`
    /// (0: never read, always up).
    private func linkUp(_ port: Int) -> Bool {
        guard linkInterval > 0 else { return true }
        let t = EngineHealthMonitor.now()
        if let last = links[port], t - last.at < linkInterval { return last.up }
        let up = (try? dataplane.ports[port].link().isUp) ?? false
        if let last = links[port], last.up != up {
            logger.notice("engine port link changed", metadata: ["port": "\(dataplane.configuration.ports[port].name)",
                                                                 "link": "\(up ? "up" : "down")"])
        }
        links[port] = (up, t)
        return up
    }
}

/// One probe, blocking for at most its timeout: a TCP connect to the instance's address and the
/// probe's port; for `http`, then a `GET path HTTP/1.0` whose status must be 2xx or 3xx.
enum EngineProbeRunner {
    static func run(_ probe: EngineProbe, address: String) -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(probe.effectiveTimeoutMs) * 1_000_000
        // NIO's SocketAddress parses the literal (v4 or v6) and lays out its sockaddr.
        guard let target = try? SocketAddress(ipAddress: address, port: Int(probe.port)) else { return false }
        let v6 = target.protocol == .inet6
        let fd = socket(target.protocol.rawValue, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
                            | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let result = target.withSockAddr { connect(fd, $0, socklen_t($1)) }
        if result != 0 {
            guard errno == EINPROGRESS, wait(fd, for: Int16(POLLOUT), until: deadline) else { return false }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error == 0 else { return false }
        }
        guard probe.kind == .http else { return true }

        let host = v6 ? "[\(address)]" : address
        let request = Array("GET \(probe.path ?? "/") HTTP/1.0\r\nHost: \(host):\(probe.port)\r\nUser-Agent: upfd-probe\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            guard n < 0, errno == EAGAIN, wait(fd, for: Int16(POLLOUT), until: deadline) else { return false }
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        while answer.count < 12 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { answer += buffer[..<n]; continue }
            if n == 0 { break }
            guard errno == EAGAIN, wait(fd, for: Int16(POLLIN), until: deadline) else { return false }
        }
        // "HTTP/1.x NNN"
        guard answer.count >= 12, answer.starts(with: Array("HTTP/1.".utf8)) else { return false }
        return answer[9] == UInt8(ascii: "2") || answer[9] == UInt8(ascii: "3")
    }

    private static func wait(_ fd: Int32, for events: Int16, until deadline: UInt64) -> Bool {
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { return false }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let r = poll(&p, 1, Int32(max(1, (deadline - now) / 1_000_000)))
            if r > 0 { return p.revents & (events | Int16(POLLERR) | Int16(POLLHUP)) != 0 }
            if r < 0 && errno != EINTR { return false }
        }
    }
}
