import Foundation
import UPFPolicy
import UPFService

/// What `upf-replay run --expect FILE` checks (YAML or JSON):
///
///     ports:
///       core:
///         count: 2                      # exactly this many frames left the port
///         packets:                      # the first frames, in order; each listed field must match
///           - { kind: gpdu, teid: 5000, qfi: 9, outer_dst: 203.0.113.1 }
///     drops: { unknown_teid: 1 }        # exact counts of drop reasons (absent = not checked)
///     actions: { steer: 1 }             # exact packet counts of actions
///
/// Fields of a frame: kind (gpdu, ip, echo_request, …), src_mac, dst_mac, outer_src, outer_dst,
/// teid, qfi, psc (ul/dl), gtp_flags, extensions, inner_src, inner_dst, proto, sport, dport, length.
struct Expectations: Decodable {
    struct PortExpectation: Decodable {
        var count: Int?
        var packets: [[String: Scalar]]?
    }

    /// A YAML/JSON scalar compared as text.
    struct Scalar: Decodable {
        var text: String
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let i = try? c.decode(Int.self) { text = String(i) }
            else if let b = try? c.decode(Bool.self) { text = String(b) }
            else { text = try c.decode(String.self) }
        }
    }

    var ports: [String: PortExpectation]?
    var drops: [String: Int]?
    var actions: [String: Int]?

    static func load(path: String) throws -> Expectations {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        if path.lowercased().hasSuffix(".json") {
            return try PolicyCoding.decode(Expectations.self, json: data)
        }
        return try PolicyCoding.decode(Expectations.self, yaml: String(decoding: data, as: UTF8.self))
    }

    /// Every difference, as a line a person can act on.
    func check(outcome: ReplayOutcome, statistics: DatapathStatistics, ports names: [String]) -> [String] {
        var problems: [String] = []
        for (name, expected) in (ports ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let p = names.firstIndex(of: name) else {
                problems.append("ports.\(name): no such port (ports: \(names.joined(separator: ", ")))")
                continue
            }
            let frames = outcome.decoded[p]
            if let count = expected.count, count != frames.count {
                problems.append("ports.\(name).count: expected \(count) frames, got \(frames.count)")
            }
            for (i, fields) in (expected.packets ?? []).enumerated() {
                guard i < frames.count else {
                    problems.append("ports.\(name).packets[\(i)]: expected a frame, the port sent only \(frames.count)")
                    break
                }
                for (field, value) in fields.sorted(by: { $0.key < $1.key }) {
                    let actual = frames[i].fields[field]
                    if actual != value.text {
                        problems.append("ports.\(name).packets[\(i)].\(field): expected \(value.text), got \(actual ?? "(absent)")")
                    }
                }
            }
        }
        let drops = Dictionary(uniqueKeysWithValues: statistics.drops.map { ($0.name, Int($0.packets)) })
        for (reason, count) in (self.drops ?? [:]).sorted(by: { $0.key < $1.key }) where drops[reason, default: 0] != count {
            problems.append("drops.\(reason): expected \(count), got \(drops[reason, default: 0])")
        }
        let actions = Dictionary(uniqueKeysWithValues: statistics.actions.map { ($0.name, Int($0.packets)) })
        for (action, count) in (self.actions ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let got = actions[action] {
                if got != count { problems.append("actions.\(action): expected \(count), got \(got)") }
            } else {
                problems.append("actions.\(action): no such action (actions: \(actions.keys.sorted().joined(separator: ", ")))")
            }
        }
        return problems
    }
}
