import UPFPackets

extension CompiledSession {
    /// Compiles a session into its numeric form.
    ///
    /// - `engines`: engine id → index (the datapath's engine table); `.steer` resolves through it.
    /// - `applications`: application id → application; a rule naming one is matched against it in
    ///   addition to its own filter (the intersection of the two: prefix lists and port lists are
    ///   intersected pairwise, protocols must agree). The application describes the remote end:
    ///   for `source: access` (uplink) it constrains the packet's destination address/port, for
    ///   `core` and `engine` (downlink) the packet's source address/port.
    ///
    /// The session is assumed validated by the policy layer. Nothing here traps on bad input:
    /// unparsable text or a dangling reference is noted in `notes` and never widens a match —
    /// an unparsable entry of a list is left out (a list whose entries all fail makes its rule
    /// never match, rather than match anything); a rule whose action, application or engine
    /// cannot be resolved is left out of `rules`; an unknown QoS id means no QoS, an unknown
    /// counter id is skipped; an unparsable UE address gives no downlink key, an unparsable gNB
    /// F-TEID no downlink tunnel.
    public static func compile(_ session: Session, engines: [String: Int],
                               applications: [String: Application]) -> CompiledSession {
        var b = CompiledSessionBuilder(seid: session.seid)
        return b.build(session, engines: engines, applications: applications)
    }
}

/// The state of one compilation.
private struct CompiledSessionBuilder {
    var out: CompiledSession

    init(seid: UInt64) {
        out = CompiledSession(seid: seid, n3: CompiledFTEID(teid: 0, address: .zero))
    }

    mutating func note(_ text: String) {
        out.notes.append(text)
    }

    // MARK: Text

    /// An address without a length.
    static func address(_ text: String) -> IPAddress? {
        IPAddress(text)
    }

    /// A filter prefix, as the policy layer reads it (`IPPrefix`: host bits refused).
    static func prefix(_ text: String) -> CompiledPrefix? {
        guard let p = IPPrefix(text) else { return nil }
        return CompiledPrefix(address: p.address, length: Int(p.length))
    }

    /// `text` split into an address and its family length (nil = none written).
    static func addressAndLength(_ text: String) -> (IPAddress, Int?)? {
        guard let slash = text.utf8.firstIndex(of: UInt8(ascii: "/")) else {
            return IPAddress(text).map { ($0, nil) }
        }
        guard let a = IPAddress(text[..<slash]) else { return nil }
        let length = text[text.utf8.index(after: slash)...]
        guard length.utf8.count <= 3, !length.isEmpty,
              length.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), let n = Int(length) else { return nil }
        return (a, n)
    }

    // MARK: Session

    mutating func build(_ s: Session, engines: [String: Int], applications: [String: Application]) -> CompiledSession {
        // N3 F-TEID: the TEID is the uplink key whatever the address says.
        out.n3.teid = s.n3.teid
        if let a = Self.address(s.n3.address) {
            out.n3.address = a
        } else {
            note("n3.address '\(s.n3.address)' is not an address: left as ::")
        }
        if s.n3.teid == 0 { note("n3.teid is 0 (not a valid TEID)") }

        if let text = s.ueIPv4 {
            if let (a, n) = Self.addressAndLength(text), a.isIPv4, n == nil || n == 32 {
                out.ueIPv4 = a.ipv4
            } else {
                note("ue_ipv4 '\(text)' is not an IPv4 address (or /32): no IPv4 downlink key")
            }
        }
        if let text = s.ueIPv6 {
            if let (a, n) = Self.addressAndLength(text), !a.isIPv4, (n ?? 128) <= 128 {
                let length = n ?? 128
                if length >= 64 {
                    out.ueIPv6 = CompiledPrefix(address: a, length: length).value
                    out.ueIPv6PrefixLength = UInt8(length)
                } else {
                    note("ue_ipv6 '\(text)' is shorter than /64: no IPv6 downlink key")
                }
            } else {
                note("ue_ipv6 '\(text)' is not an IPv6 address or prefix: no IPv6 downlink key")
            }
        }
        if let g = s.gnb {
            if let a = Self.address(g.address) {
                out.gnb = CompiledFTEID(teid: g.teid, address: a)
            } else {
                note("gnb.address '\(g.address)' is not an address: no downlink tunnel")
            }
        }
        out.defaultQFI = s.defaultQFI

        // QERs and URRs keep their order; rules name them by index.
        var qosIndex: [UInt32: UInt16] = [:]
        var meters = 0
        for q in s.qos {
            guard out.qos.count < Int(CompiledRule.noQoS) else { note("more QoS entries than 65535: rest ignored"); break }
            if qosIndex[q.id] != nil { note("qos id \(q.id) repeated: the first is used") } else { qosIndex[q.id] = UInt16(out.qos.count) }
            // Each QER with an MBR is its own meter (one per direction): meters are numbered in
            // list order over those QERs only.
            var meter = CompiledQoS.noMeter
            if q.mbrUplinkKbps != nil || q.mbrDownlinkKbps != nil {
                if meters < CompiledQoS.maxMetersPerSession {
                    meter = UInt16(meters)
                    meters += 1
                } else {
                    note("qos id \(q.id): more than \(CompiledQoS.maxMetersPerSession) QERs with an MBR: not enforced")
                }
            }
            out.qos.append(CompiledQoS(id: q.id, gateUplinkOpen: q.gateUplink == .open,
                                       gateDownlinkOpen: q.gateDownlink == .open, qfi: q.qfi ?? 0,
                                       mbrUplinkKbps: q.mbrUplinkKbps ?? .max, mbrDownlinkKbps: q.mbrDownlinkKbps ?? .max,
                                       meter: meter))
        }
        var counterIndex: [UInt32: UInt16] = [:]
        for u in s.counters {
            guard out.counterIDs.count < Int(UInt16.max) else { note("more counters than 65535: rest ignored"); break }
            if counterIndex[u.id] != nil { note("counter id \(u.id) repeated: the first is used") } else { counterIndex[u.id] = UInt16(out.counterIDs.count) }
            out.counterIDs.append(u.id)
        }
        var actions: [UInt32: CompiledAction?] = [:]
        actions.reserveCapacity(s.actions.count)
        for a in s.actions where actions[a.id] == nil {
            actions[a.id] = resolve(a, engines: engines)
        }

        // Evaluation order: precedence, then id (the model's tie-break); stable otherwise.
        // The keys first: comparing `s.rules[i]` values copied each whole `Rule` (a retain and a
        // release of every string and list in it) twice per comparison.
        let keys = s.rules.map { (precedence: $0.precedence, id: $0.id) }
        let order = keys.indices.sorted {
            (keys[$0].precedence, keys[$0].id, $0) < (keys[$1].precedence, keys[$1].id, $1)
        }
        out.rules.reserveCapacity(s.rules.count)
        // Room in the pools for what a rule usually has (two prefixes, two port ranges, a
        // counter): appended rule by rule, each pool grew through three or four allocations.
        out.prefixes.reserveCapacity(2 * s.rules.count)
        out.ports.reserveCapacity(2 * s.rules.count)
        out.counters.reserveCapacity(s.rules.count)
        // Each rule handed over by a pointer into the list: as an argument, `s.rules[i]` (even
        // read from the buffer) was a copy of it.
        s.rules.withUnsafeBufferPointer { rules in
            for i in order {
                rule(rules.baseAddress! + i, at: i, actions: actions, qosIndex: qosIndex, counterIndex: counterIndex,
                     applications: applications)
            }
        }
        return out
    }

    mutating func resolve(_ a: Action, engines: [String: Int]) -> CompiledAction? {
        switch a.kind {
        case .steer(let engine):
            guard let index = engines[engine], index >= 0, index <= Int(UInt32.max) else {
                note("action \(a.id): unknown engine '\(engine)'")
                return nil
            }
            return .steer(engine: UInt32(index))
        case .forwardN9(let peer, let teid):
            guard let address = Self.address(peer) else {
                note("action \(a.id): N9 peer '\(peer)' is not an address")
                return nil
            }
            return .forwardN9(peer: address, teid: teid)
        case .forwardN3:
            return .forwardN3
        case .forwardN6:
            return .forwardN6
        case .drop:
            return .drop
        case .buffer(let limit):
            return .buffer(limit: limit)
        }
    }

    // MARK: Rules

    /// A list of prefixes: nil when the list was given but none of it could be used (the rule can
    /// then never match); empty = any.
    mutating func prefixes(_ texts: [String], _ what: @autoclosure () -> String) -> [CompiledPrefix]? {
        var result: [CompiledPrefix] = []
        result.reserveCapacity(texts.count)
        for t in texts {
            if let p = Self.prefix(t) {
                if !result.contains(p) { result.append(p) }
            } else {
                note("\(what()): '\(t)' is not a prefix: left out")
            }
        }
        return texts.isEmpty || !result.isEmpty ? result : nil
    }

    mutating func ports(_ ranges: [PortRange], _ what: @autoclosure () -> String) -> [CompiledPortRange]? {
        var result: [CompiledPortRange] = []
        result.reserveCapacity(ranges.count)
        for r in ranges {
            if r.low <= r.high {
                let c = CompiledPortRange(low: r.low, high: r.high)
                if !result.contains(c) { result.append(c) }
            } else {
                note("\(what()): range \(r.low)-\(r.high) is empty: left out")
            }
        }
        return ranges.isEmpty || !result.isEmpty ? result : nil
    }

    /// Both lists must hold (empty = any): the pairwise intersections; nil = nothing in common.
    static func intersect<T: Equatable>(_ a: [T], _ b: [T], _ meet: (T, T) -> T?) -> [T]? {
        if a.isEmpty { return b }
        if b.isEmpty { return a }
        var result: [T] = []
        for x in a {
            for y in b {
                if let z = meet(x, y), !result.contains(z) { result.append(z) }
            }
        }
        return result.isEmpty ? nil : result
    }

    /// Appends `items` to a pool (the caller has checked the 65535-entry limit).
    static func pool<T>(_ items: [T], into pool: inout [T]) -> CompiledPoolRange {
        let start = UInt16(pool.count)
        pool.append(contentsOf: items)
        return CompiledPoolRange(start: start, count: UInt16(items.count))
    }

    mutating func rule(_ r: UnsafePointer<Rule>, at index: Int, actions: [UInt32: CompiledAction?], qosIndex: [UInt32: UInt16],
                       counterIndex: [UInt32: UInt16], applications: [String: Application]) {
        // Only put together for a note: a session compiles cleanly when it validated. The
        // helpers capture the id, not the rule: capturing a rule copied it (and retained all it
        // holds) into each helper's context.
        let ruleID = r.pointee.id
        func what() -> String { "rules[\(index)] (id \(ruleID))" }
        func skip(_ why: String) -> Void { note("\(what()): \(why): rule left out (never matches)") }
        /// A valid rule that no packet can match (its filter and its application exclude each
        /// other): left out, listed in `neverMatching`, not a note.
        func dead() -> Void { out.neverMatching.append(ruleID) }

        guard let resolved = actions[r.pointee.action] else { return skip("unknown action \(r.pointee.action)") }
        guard let action = resolved else { return skip("action \(r.pointee.action) cannot be resolved") }

        var flags: UInt8 = 0
        if r.pointee.qfi != nil { flags |= CompiledRule.Flags.hasQFI }
        let f = r.pointee.match ?? SDFFilter()
        guard var sourcePrefixes = prefixes(f.sourcePrefixes, "\(what()).match.source_prefixes"),
              var destinationPrefixes = prefixes(f.destinationPrefixes, "\(what()).match.destination_prefixes"),
              var sourcePorts = ports(f.sourcePorts, "\(what()).match.source_ports"),
              var destinationPorts = ports(f.destinationPorts, "\(what()).match.destination_ports") else {
            return skip("a list of its filter has no usable entry")
        }
        var proto = f.protocol
        let tos = f.tos.map { ($0.value, $0.mask) } ?? (0, 0)
        if tos.0 & ~tos.1 != 0 { return skip("tos value \(tos.0) has bits outside mask \(tos.1)") }

        if let name = r.pointee.application {
            guard let app = applications[name] else { return skip("unknown application '\(name)'") }
            guard let appPrefixes = prefixes(app.destinationPrefixes, "application \(name).destination_prefixes"),
                  let appPorts = ports(app.destinationPorts, "application \(name).destination_ports") else {
                return skip("application '\(name)' has no usable prefix or port")
            }
            if let p = app.protocol {
                if let q = proto, q != p { return dead() }
                proto = p
            }
            let remoteIsDestination = r.pointee.source == .access
            let prefixMeet: (CompiledPrefix, CompiledPrefix) -> CompiledPrefix? = { $0.intersection($1) }
            let portMeet: (CompiledPortRange, CompiledPortRange) -> CompiledPortRange? = { $0.intersection($1) }
            if remoteIsDestination {
                guard let p = Self.intersect(destinationPrefixes, appPrefixes, prefixMeet),
                      let q = Self.intersect(destinationPorts, appPorts, portMeet) else { return dead() }
                destinationPrefixes = p
                destinationPorts = q
            } else {
                guard let p = Self.intersect(sourcePrefixes, appPrefixes, prefixMeet),
                      let q = Self.intersect(sourcePorts, appPorts, portMeet) else { return dead() }
                sourcePrefixes = p
                sourcePorts = q
            }
        }
        if proto != nil { flags |= CompiledRule.Flags.hasProtocol }

        var qos = CompiledRule.noQoS
        if let id = r.pointee.qos {
            if let i = qosIndex[id] { qos = i } else { note("\(what()): unknown qos \(id): none applied") }
        }
        var counters: [UInt16] = []
        for id in r.pointee.counters {
            if let i = counterIndex[id] {
                if !counters.contains(i) { counters.append(i) }
            } else {
                note("\(what()): unknown counter \(id): not counted")
            }
        }

        // Pools last, so a rule left out leaves nothing behind.
        guard out.prefixes.count + sourcePrefixes.count + destinationPrefixes.count <= Int(UInt16.max),
              out.ports.count + sourcePorts.count + destinationPorts.count <= Int(UInt16.max),
              out.counters.count + counters.count <= Int(UInt16.max) else {
            return skip("the session's pools are full (65535 entries)")
        }
        let sp = Self.pool(sourcePrefixes, into: &out.prefixes)
        let dp = Self.pool(destinationPrefixes, into: &out.prefixes)
        let sq = Self.pool(sourcePorts, into: &out.ports)
        let dq = Self.pool(destinationPorts, into: &out.ports)
        let cs = Self.pool(counters, into: &out.counters)
        out.rules.append(CompiledRule(
            precedence: r.pointee.precedence, id: r.pointee.id, source: r.pointee.source.compiledCode, flags: flags,
            qfi: r.pointee.qfi ?? 0,
            proto: proto ?? 0, tosValue: tos.0, tosMask: tos.1,
            sourcePrefixes: sp, destinationPrefixes: dp, sourcePorts: sq, destinationPorts: dq,
            counters: cs, qos: qos, action: action))
    }
}
