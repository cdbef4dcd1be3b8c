import Foundation
import Testing
@testable import UPFPolicy

/// Runs `body` and checks that it throws a `PolicyError` with this code and path; returns it.
@discardableResult
func expectPolicyError(_ code: String, at path: String, sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: () throws -> Void) -> PolicyError? {
    do {
        try body()
        Issue.record("expected \(code) at '\(path)', but it succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as PolicyError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(error.path == path, "\(error)", sourceLocation: sourceLocation)
        #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected a PolicyError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

enum Fixtures {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func configPath(_ name: String) -> String {
        repositoryRoot.appendingPathComponent("Configs/policy/\(name)").path
    }

    static let llm = Engine(id: "llm", instances: [EngineInstance(port: "1", address: "192.168.50.10")])
    static let inference = Application(id: "inference", destinationPrefixes: ["198.51.100.0/24"], destinationPorts: [PortRange(443)])

    /// A valid session: uplink to N6, downlink to the gNB. `seid` also picks distinct TEIDs and
    /// UE addresses so that many of them never collide.
    static func session(_ seid: UInt64, engine: String? = nil) -> Session {
        var actions = [Action(id: 1, kind: .forwardN6), Action(id: 2, kind: .forwardN3)]
        var rules = [Rule(id: 1, precedence: 100, source: .access, action: 1),
                     Rule(id: 2, precedence: 100, source: .core, action: 2)]
        if let engine {
            actions.append(Action(id: 3, kind: .steer(engine: engine)))
            rules.append(Rule(id: 3, precedence: 10, source: .access, action: 3))
        }
        let n = UInt32(truncatingIfNeeded: seid)
        return Session(seid: seid, ueIPv4: ipv4(0x0A00_0000 | n), ueIPv6: "2001:db8:\(String(n >> 16, radix: 16)):\(String(n & 0xFFFF, radix: 16))::/64",
                       n3: FTEID(teid: n, address: "192.0.2.1"), gnb: FTEID(teid: 0x10000 + n, address: "192.0.2.100"),
                       rules: rules, actions: actions)
    }

    static func ipv4(_ v: UInt32) -> String { "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)" }

    static func state(sessions: Int = 3, engine: String? = nil) throws -> PolicyState {
        try PolicyState.validated(Policy(engines: [llm], applications: [inference],
                                         sessions: (1...UInt64(sessions)).map { session($0, engine: engine) }))
    }
}
