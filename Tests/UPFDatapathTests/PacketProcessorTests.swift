import Testing
import UPFPackets
import UPFPolicy
@testable import UPFDatapath

/// `PacketProcessor` on frames built by the project's builders and re-read by its parser (the
/// process tests in IntegrationTests check the same paths through DPDK with tshark).
@Suite struct PacketProcessorTests {
    static let policyYAML = """
        engines:
          - id: llm
            instances:
              - { port: engines, address: 192.168.50.10, mac: "02:00:00:00:50:10" }
              - { port: engines, address: 192.168.50.11, mac: "02:00:00:00:50:11" }
            fallback: drop
          - id: vision
            instances: [{ port: engines, address: 192.168.50.20, mac: "02:00:00:00:50:20" }]
            fallback: core
        sessions:
          - seid: 1
            ue_ipv4: 10.45.0.1
            n3: { teid: 256, address: 192.0.2.1 }
            gnb: { teid: 4096, address: 192.0.2.100 }
            default_qfi: 9
            rules:
              - { id: 1, precedence: 10, source: access, match: { destination_prefixes: [198.51.100.0/24], protocol: 6 }, action: 1 }
              - { id: 2, precedence: 20, source: access, match: { destination_prefixes: [203.0.113.99/32] }, action: 4 }
              - { id: 3, precedence: 30, source: access, match: { destination_prefixes: [198.18.0.0/16] }, action: 5 }
              - { id: 4, precedence: 40, source: access, match: { destination_prefixes: [10.45.0.2/32] }, action: 3 }
              - { id: 5, precedence: 100, source: access, action: 2 }
              - { id: 6, precedence: 100, source: engine, action: 3, qos: 1 }
              - { id: 7, precedence: 100, source: core, action: 3 }
            actions:
              - { id: 1, type: steer, engine: llm }
              - { id: 2, type: n9, peer: 203.0.113.1, teid: 5000 }
              - { id: 3, type: n3 }
              - { id: 4, type: drop }
              - { id: 5, type: steer, engine: vision }
            qos:
              - { id: 1, qfi: 6 }
          - seid: 2
            ue_ipv4: 10.45.0.2
            n3: { teid: 257, address: 192.0.2.1 }
            gnb: { teid: 4097, address: 192.0.2.100 }
            default_qfi: 5
            rules:
              - { id: 1, precedence: 100, source: access, action: 1 }
              - { id: 2, precedence: 100, source: core, action: 2 }
            actions:
              - { id: 1, type: n6 }
              - { id: 2, type: n3 }
          - seid: 3
            ue_ipv4: 10.45.0.3
            n3: { teid: 258, address: 192.0.2.1 }
            gnb: { teid: 4098, address: 192.0.2.100 }
            rules:
              - { id: 1, precedence: 100, source: access, action: 1, qos: 1 }
              - { id: 2, precedence: 100, source: core, action: 2, qos: 2 }
            actions:
              - { id: 1, type: n6 }
              - { id: 2, type: n3 }
            qos:
              - { id: 1, gate_uplink: closed }
              - { id: 2, gate_uplink: closed, mbr_downlink_kbps: 8000 }
        """

    static let n3MAC = MACAddress("02:00:00:00:00:03")!
    static let coreMAC = MACAddress("02:00:00:00:00:0c")!
    static let engineMAC = MACAddress("02:00:00:00:00:0e")!
    static let gnbRouter = MACAddress("02:00:00:00:01:01")!
    static let coreRouter = MACAddress("02:00:00:00:02:01")!

    /// The tables, ports, directory and counters a worker uses, with the policy installed.
    final class Fixture {
        let tables = SessionTables(capacity: 16, readers: 1)
        let ports: PortTable
        let engines = EngineDirectory(capacity: 4)
        let counters: DatapathCounters
        let meters: MeterTable
        var processor: PacketProcessor

        init() throws {
            ports = try PortTable([
                PortInfo(role: .n3, mac: n3MAC, ipv4: ip("192.0.2.1").ipv4, nextHop: gnbRouter),
                PortInfo(role: .core, mac: coreMAC, ipv4: ip("203.0.113.2").ipv4, nextHop: coreRouter),
                PortInfo(role: .engine, mac: engineMAC, ipv4: ip("192.168.50.1").ipv4),
            ])
            counters = DatapathCounters(layout: CounterLayout(sessionSlots: tables.slotCount, rulesPerSession: 8,
                                                              engines: engines.capacity), workers: 1)
            let state = try PolicyState.validated(try Policy.load(yaml: PacketProcessorTests.policyYAML))
            let indices = ["llm": 0, "vision": 1]
            for (id, index) in indices {
                let engine = state.engines[id]!
                engines.set(index, instances: engine.instances.map {
                    EngineDirectory.Instance(port: 2, mac: MACAddress($0.mac!)!)
                }, fallbackDrop: engine.fallback == .drop)
            }
            meters = MeterTable(slots: tables.slotCount, toleranceNanoseconds: 2_000_000)
            tables.meters = meters
            let tables = self.tables
            try state.forEachSession { session in
                try tables.put(CompiledSession.compile(session, engines: indices, applications: state.applications))
            }
            processor = PacketProcessor(reader: tables.reader(0), ports: ports, engines: engines, counters: counters.block(0),
                                        meters: meters)
        }

        func dropped(_ reason: DatapathDrop) -> UInt64 { counters.total(counters.layout.datapath(reason)) }
        func dropped(_ reason: DropReason) -> UInt64 { counters.total(counters.layout.parser(reason)) }
        func action(_ action: ActionCounter) -> UInt64 { counters.total(counters.layout.action(action)) }
        /// Packets and bytes steered to instance `instance` of engine `engine`.
        func steered(_ engine: Int, _ instance: Int) -> (UInt64, UInt64) {
            let offset = counters.layout.engineInstance(engine, instance)
            return (counters.total(offset), counters.total(offset + 1))
        }
        func fallback(_ engine: Int, drop: Bool) -> UInt64 { counters.total(counters.layout.engineFallback(engine, drop: drop)) }
        /// Packets and bytes of the rule at `position` of the session in `slot`.
        func rule(slot: Int, _ position: Int) -> (UInt64, UInt64) {
            let offset = counters.layout.rule(slot: slot, position: position)
            return (counters.total(offset), counters.total(offset + 1))
        }
    }

    /// A frame in a buffer with mbuf-like headroom; `process` runs on it and returns the egress
    /// frame's bytes.
    struct Frame {
        static let headroom = 128
        var storage: [UInt8]
        var length: Int

        init(_ bytes: [UInt8]) {
            storage = Array(repeating: 0, count: Frame.headroom) + bytes + Array(repeating: 0, count: 64)
            length = bytes.count
        }

        mutating func process(_ processor: inout PacketProcessor, ingress: Int) -> (PacketVerdict, [UInt8]) {
            let length = self.length
            return storage.withUnsafeMutableBytes { raw in
                let verdict = processor.process(frame: raw.baseAddress! + Frame.headroom, length: length,
                                                headroom: Frame.headroom, tailroom: 64, ingress: ingress)
                guard !verdict.isDropped else { return (verdict, []) }
                let start = Frame.headroom + Int(verdict.offset)
                return (verdict, Array(raw[start..<(start + Int(verdict.length))]))
            }
        }
    }

    /// Ethernet + IPv4 + TCP/UDP, checksummed (the parser verifies inner IPv4 checksums).
    static func ipv4Packet(_ source: String, _ destination: String, proto: UInt8 = 6, sport: UInt16 = 40000,
                           dport: UInt16 = 443, payload: Int = 20) -> [UInt8] {
        let l4 = proto == 6 ? 20 : 8
        var p = [UInt8](repeating: 0, count: 20 + l4 + payload)
        p[0] = 0x45
        let total = UInt16(p.count)
        p[2] = UInt8(total >> 8); p[3] = UInt8(total & 0xFF)
        p[8] = 64; p[9] = proto
        let s = ip(source).ipv4, d = ip(destination).ipv4
        for i in 0..<4 {
            p[12 + i] = UInt8(truncatingIfNeeded: s >> (24 - 8 * UInt32(i)))
            p[16 + i] = UInt8(truncatingIfNeeded: d >> (24 - 8 * UInt32(i)))
        }
        var sum: UInt32 = 0
        for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(p[i]) << 8 | UInt32(p[i + 1]) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        p[10] = UInt8(checksum >> 8); p[11] = UInt8(checksum & 0xFF)
        p[20] = UInt8(sport >> 8); p[21] = UInt8(sport & 0xFF); p[22] = UInt8(dport >> 8); p[23] = UInt8(dport & 0xFF)
        if proto == 6 { p[32] = 0x50 } else { p[24] = UInt8((8 + payload) >> 8); p[25] = UInt8((8 + payload) & 0xFF) }
        return p
    }

    static func ethernet(_ payload: [UInt8], to destination: MACAddress, etherType: UInt16 = 0x0800) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 14)
        out.withUnsafeMutableBytes { raw in
            _ = try! EthernetHeaderBuilder(destination: destination, source: MACAddress("02:00:00:00:99:99")!,
                                           etherType: etherType).write(into: raw)
        }
        return out + payload
    }

    /// A G-PDU from the gNB to the n3 address: `inner` under TEID `teid`, with an UL PSC when `qfi`.
    static func gpdu(teid: UInt32, qfi: UInt8?, inner: [UInt8], destination: String = "192.0.2.1") -> [UInt8] {
        let encapsulation = GTPUEncapsulation(outer: GTPUOuterHeader(source: ip("192.0.2.100"), destination: ip(destination))!,
                                              teid: teid, pduSessionContainer: qfi.map { .uplink(qfi: $0) })
        var packet = [UInt8](repeating: 0, count: encapsulation.headerLength) + inner
        packet.withUnsafeMutableBytes { raw in _ = try! encapsulation.write(into: raw, payloadLength: inner.count) }
        return ethernet(packet, to: n3MAC)
    }

    static func parse(_ bytes: [UInt8]) -> ParsedPacket? {
        bytes.withUnsafeBytes { raw in try? PacketParser.parse(raw).get() }
    }

    static func mac(_ bytes: [UInt8], at offset: Int) -> MACAddress {
        MACAddress(bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3], bytes[offset + 4], bytes[offset + 5])
    }

    @Test func uplinkSteerDecapsulatesToTheEngineWithAndWithoutPSC() throws {
        let f = try Fixture()
        let inner = Self.ipv4Packet("10.45.0.1", "198.51.100.7")
        for qfi in [UInt8(9), nil] {
            var frame = Frame(Self.gpdu(teid: 256, qfi: qfi, inner: inner))
            let (verdict, out) = frame.process(&f.processor, ingress: 0)
            #expect(verdict.egress == 2)
            #expect(Array(out.dropFirst(14)) == inner)
            let chosen = Self.mac(out, at: 0)
            #expect(chosen == MACAddress("02:00:00:00:50:10")! || chosen == MACAddress("02:00:00:00:50:11")!)
            #expect(Self.mac(out, at: 6) == Self.engineMAC)
            #expect(out[12] == 0x08 && out[13] == 0x00)
        }
        #expect(f.action(.steer) == 2)
    }

    @Test func uplinkN9ReencapsulatesWithTheRulesTEIDAndAnUplinkContainer() throws {
        let f = try Fixture()
        let inner = Self.ipv4Packet("10.45.0.1", "8.8.8.8", proto: 17, sport: 5353, dport: 53)
        for qfi in [UInt8(7), nil] {
            var frame = Frame(Self.gpdu(teid: 256, qfi: qfi, inner: inner))
            let (verdict, out) = frame.process(&f.processor, ingress: 0)
            #expect(verdict.egress == 1)
            let p = try #require(Self.parse(out))
            #expect(p.kind == .gPDU && p.teid == 5000)
            #expect(p.outerSource == ip("203.0.113.2") && p.outerDestination == ip("203.0.113.1"))
            #expect(p.psc.present && p.psc.pduType == GTPU.PDUType.uplink && p.psc.qfi == (qfi ?? 9))
            #expect(p.extensionCount == 1 && p.gtpFlags == 0x34)
            #expect(Array(out[Int(p.payloadOffset)...]) == inner)
            #expect(Self.mac(out, at: 0) == Self.coreRouter && Self.mac(out, at: 6) == Self.coreMAC)
        }
        #expect(f.action(.forwardN9) == 2)
    }

    @Test func higherPrecedenceFilterWinsAndDropRulesCount() throws {
        let f = try Fixture()
        var steered = Frame(Self.gpdu(teid: 256, qfi: 9, inner: Self.ipv4Packet("10.45.0.1", "198.51.100.7")))
        #expect(steered.process(&f.processor, ingress: 0).0.egress == 2)
        var udpToEngineNet = Frame(Self.gpdu(teid: 256, qfi: 9, inner: Self.ipv4Packet("10.45.0.1", "198.51.100.7", proto: 17)))
        #expect(udpToEngineNet.process(&f.processor, ingress: 0).0.egress == 1)  // rule 1 wants TCP: default N9
        var dropped = Frame(Self.gpdu(teid: 256, qfi: 9, inner: Self.ipv4Packet("10.45.0.1", "203.0.113.99")))
        #expect(dropped.process(&f.processor, ingress: 0).0.isDropped)
        #expect(f.dropped(.ruleDrop) == 1)
    }

    @Test func uplinkN6DecapsulatesToTheCoreNextHop() throws {
        let f = try Fixture()
        let inner = Self.ipv4Packet("10.45.0.2", "1.1.1.1")
        var frame = Frame(Self.gpdu(teid: 257, qfi: 5, inner: inner))
        let (verdict, out) = frame.process(&f.processor, ingress: 0)
        #expect(verdict.egress == 1 && Array(out.dropFirst(14)) == inner)
        #expect(Self.mac(out, at: 0) == Self.coreRouter)
        #expect(f.action(.forwardN6) == 1)
    }

    @Test func downlinkFromEngineAndCoreIsEncapsulatedTowardsTheGNB() throws {
        let f = try Fixture()
        // From the engine: rule 6 with QER QFI 6.
        let answer = Self.ipv4Packet("198.51.100.7", "10.45.0.1", sport: 443, dport: 40000)
        var fromEngine = Frame(Self.ethernet(answer, to: Self.engineMAC))
        let (v1, out1) = fromEngine.process(&f.processor, ingress: 2)
        #expect(v1.egress == 0)
        let p1 = try #require(Self.parse(out1))
        #expect(p1.teid == 4096 && p1.psc.pduType == GTPU.PDUType.downlink && p1.psc.qfi == 6)
        #expect(p1.outerSource == ip("192.0.2.1") && p1.outerDestination == ip("192.0.2.100"))
        #expect(Array(out1[Int(p1.payloadOffset)...]) == answer)
        #expect(Self.mac(out1, at: 0) == Self.gnbRouter && Self.mac(out1, at: 6) == Self.n3MAC)
        // From the core (N6), UDP to port 2152 of a UE: user data, session 2's default QFI.
        let data = Self.ipv4Packet("1.1.1.1", "10.45.0.2", proto: 17, sport: 2152, dport: 2152)
        var fromCore = Frame(Self.ethernet(data, to: Self.coreMAC))
        let (v2, out2) = fromCore.process(&f.processor, ingress: 1)
        #expect(v2.egress == 0)
        let p2 = try #require(Self.parse(out2))
        #expect(p2.teid == 4097 && p2.psc.qfi == 5 && Array(out2[Int(p2.payloadOffset)...]) == data)
        // N9 downlink: GTP-U to the core address with the session's TEID.
        let n9 = GTPUEncapsulation(outer: GTPUOuterHeader(source: ip("203.0.113.1"), destination: ip("203.0.113.2"))!,
                                   teid: 256, pduSessionContainer: .downlink(qfi: 9))
        let inner = Self.ipv4Packet("8.8.8.8", "10.45.0.1", proto: 17)
        var n9Packet = [UInt8](repeating: 0, count: n9.headerLength) + inner
        n9Packet.withUnsafeMutableBytes { raw in _ = try! n9.write(into: raw, payloadLength: inner.count) }
        var fromN9 = Frame(Self.ethernet(n9Packet, to: Self.coreMAC))
        let (v3, out3) = fromN9.process(&f.processor, ingress: 1)
        #expect(v3.egress == 0)
        #expect(Self.parse(out3).map { ($0.teid, $0.psc.qfi) } ?? (0, 0) == (4096, 9))
        #expect(f.action(.forwardN3) == 3)
    }

    @Test func closedGatesDropInTheirDirectionOnly() throws {
        let f = try Fixture()
        var up = Frame(Self.gpdu(teid: 258, qfi: 9, inner: Self.ipv4Packet("10.45.0.3", "198.51.100.7")))
        #expect(up.process(&f.processor, ingress: 0).0.isDropped)
        #expect(f.dropped(.gateClosed) == 1)
        // QER 2 closes the uplink only: downlink passes (and is metered).
        var down = Frame(Self.ethernet(Self.ipv4Packet("1.1.1.1", "10.45.0.3", payload: 960), to: Self.coreMAC))
        f.processor.now = 1_000_000_000_000
        #expect(down.process(&f.processor, ingress: 1).0.egress == 0)
        #expect(f.dropped(.gateClosed) == 1 && DatapathDrop.gateClosed.name == "gate_closed")
    }

    @Test func packetsOverTheMBRAreDroppedAsMBRExceeded() throws {
        let f = try Fixture()
        // 8000 kbit/s = 1 byte per µs: a 1000-byte inner packet takes 1 ms; tolerance 2 ms.
        let packet = Self.ethernet(Self.ipv4Packet("1.1.1.1", "10.45.0.3", payload: 960), to: Self.coreMAC)
        let start: UInt64 = 1_000_000_000_000
        var passed: [Bool] = []
        for _ in 0..<5 {
            var frame = Frame(packet)
            f.processor.now = start
            passed.append(!frame.process(&f.processor, ingress: 1).0.isDropped)
        }
        // At one instant: the first packet, then 2 ms of tolerance (two more).
        #expect(passed == [true, true, true, false, false])
        #expect(f.dropped(.mbrExceeded) == 2 && DatapathDrop.mbrExceeded.name == "mbr_exceeded")
        // 1 ms later one more conforms.
        var later = Frame(packet)
        f.processor.now = start + 1_000_000
        #expect(!later.process(&f.processor, ingress: 1).0.isDropped)
        var again = Frame(packet)
        #expect(again.process(&f.processor, ingress: 1).0.isDropped)
        #expect(f.dropped(.mbrExceeded) == 3)
        // Dropped packets are not counted as forwarded; reasons are only appended (raw values index counters).
        #expect(f.action(.forwardN3) == 4)
        #expect(DatapathDrop.allCases.last == .bufferDiscarded)
    }

    @Test func ueToUEOnlyWhenARuleSaysSo() throws {
        let f = try Fixture()
        // Session 1 has rule 4 (n3 to 10.45.0.2): hairpinned towards session 2's gNB TEID.
        var allowed = Frame(Self.gpdu(teid: 256, qfi: 9, inner: Self.ipv4Packet("10.45.0.1", "10.45.0.2")))
        let (v1, out1) = allowed.process(&f.processor, ingress: 0)
        #expect(v1.egress == 0 && Self.parse(out1)?.teid == 4097)
        #expect(f.action(.hairpin) == 1)
        // Session 2 has no such rule: its N6 default sends UE 1's address to the core.
        var other = Frame(Self.gpdu(teid: 257, qfi: 5, inner: Self.ipv4Packet("10.45.0.2", "10.45.0.1")))
        #expect(other.process(&f.processor, ingress: 0).0.egress == 1)
    }

    @Test func engineFallbacks() throws {
        let f = try Fixture()
        // llm (fallback drop) with no instance up: dropped on the node.
        f.engines.setUp(0, instance: 0, up: false)
        f.engines.setUp(0, instance: 1, up: false)
        var toLLM = Frame(Self.gpdu(teid: 256, qfi: 9, inner: Self.ipv4Packet("10.45.0.1", "198.51.100.7")))
        #expect(toLLM.process(&f.processor, ingress: 0).0.isDropped)
        #expect(f.dropped(.engineDownDrop) == 1)
        // vision (fallback core): the next non-steering rule, the N9 default.
        f.engines.setUp(1, instance: 0, up: false)
        var toVision = Frame(Self.gpdu(teid: 256, qfi: 9, inner: Self.ipv4Packet("10.45.0.1", "198.18.0.1")))
        let (v, out) = toVision.process(&f.processor, ingress: 0)
        #expect(v.egress == 1 && Self.parse(out)?.teid == 5000)
        #expect(f.action(.engineFallbackCore) == 1)
        // Back up: steering resumes.
        f.engines.setUp(1, instance: 0, up: true)
        var again = Frame(Self.gpdu(teid: 256, qfi: 9, inner: Self.ipv4Packet("10.45.0.1", "198.18.0.1")))
        #expect(again.process(&f.processor, ingress: 0).0.egress == 2)
    }

    @Test func steeringIsCountedPerEngineAndInstanceAndFallbacksPerEngine() throws {
        let f = try Fixture()
        let slot = try #require(f.tables.slot(seid: 1))
        var bytes = 0
        // Many flows: both llm instances get some; every packet is counted on exactly one.
        for i in 0..<40 {
            let inner = Self.ipv4Packet("10.45.0.1", "198.51.100.\(i + 1)", sport: UInt16(30000 + i), payload: i)
            bytes += inner.count
            var frame = Frame(Self.gpdu(teid: 256, qfi: 9, inner: inner))
            #expect(frame.process(&f.processor, ingress: 0).0.egress == 2)
        }
        let (p0, b0) = f.steered(0, 0), (p1, b1) = f.steered(0, 1)
        #expect(p0 + p1 == 40 && p0 > 0 && p1 > 0)
        #expect(b0 + b1 == UInt64(bytes))
        #expect(f.action(.steer) == 40)
        // Rule 1 (position 0) counted them too, the inner bytes.
        #expect(f.rule(slot: slot, 0) == (40, UInt64(bytes)))
        // No instance up: llm's fallback drop, vision's fallback core, counted per engine.
        f.engines.setUp(0, instance: 0, up: false)
        f.engines.setUp(0, instance: 1, up: false)
        f.engines.setUp(1, instance: 0, up: false)
        var toLLM = Frame(Self.gpdu(teid: 256, qfi: 9, inner: Self.ipv4Packet("10.45.0.1", "198.51.100.7")))
        #expect(toLLM.process(&f.processor, ingress: 0).0.isDropped)
        var toVision = Frame(Self.gpdu(teid: 256, qfi: 9, inner: Self.ipv4Packet("10.45.0.1", "198.18.0.1")))
        #expect(toVision.process(&f.processor, ingress: 0).0.egress == 1)
        #expect(f.fallback(0, drop: true) == 1 && f.fallback(0, drop: false) == 0)
        #expect(f.fallback(1, drop: false) == 1 && f.fallback(1, drop: true) == 0)
        #expect(f.steered(1, 0).0 == 0)
        #expect(f.steered(0, 0).0 + f.steered(0, 1).0 == 40)
    }

    @Test func aFreedSlotsRuleCountersAreZeroedBeforeAnotherSessionGetsIt() throws {
        let f = try Fixture()
        f.tables.slotReleased = { [counters = f.counters] slot in counters.resetSlot(slot) }
        let slot = try #require(f.tables.slot(seid: 2))
        var frame = Frame(Self.gpdu(teid: 257, qfi: 5, inner: Self.ipv4Packet("10.45.0.2", "8.8.8.8")))
        #expect(frame.process(&f.processor, ingress: 0).0.egress == 1)
        #expect(f.rule(slot: slot, 0).0 == 1)
        try f.tables.delete(seid: 2)
        // Not yet reclaimed: the slot (and its counts) are still the deleted session's.
        #expect(f.rule(slot: slot, 0).0 == 1)
        f.processor.reader.quiescent()
        #expect(f.tables.reclaim() >= 1)
        #expect(f.rule(slot: slot, 0) == (0, 0))
        // A new session that gets the slot starts from zero.
        let session = try PolicyState.validated(try Policy.load(yaml: """
            sessions:
              - seid: 9
                ue_ipv4: 10.45.0.9
                n3: { teid: 999, address: 192.0.2.1 }
                rules: [{ id: 1, precedence: 100, source: access, action: 1 }]
                actions: [{ id: 1, type: n6 }]
            """)).session(seid: 9)!
        try f.tables.put(CompiledSession.compile(session, engines: [:], applications: [:]))
        #expect(f.tables.slot(seid: 9) == slot)
        #expect(f.rule(slot: slot, 0) == (0, 0))
    }

    @Test func oneFlowStaysOnOneInstance() throws {
        let e = EngineDirectory(capacity: 1)
        e.set(0, instances: (0..<4).map { EngineDirectory.Instance(port: UInt16($0), mac: MACAddress(UInt64($0 + 1))) },
              fallbackDrop: true)
        var seen = Set<Int>()
        for i in 0..<200 {
            let h = PacketProcessor.flowHash(flow("10.45.0.1", "198.51.100.\(i % 250)", sport: UInt16(1000 + i)))
            guard case let .instance(port, _, index) = e.view.choose(0, flowHash: h) else { Issue.record("no instance"); return }
            #expect(e.view.choose(0, flowHash: h) == .instance(port: port, mac: MACAddress(UInt64(port + 1)), index: index))
            #expect(index == port)  // instance i is on port i here
            seen.insert(port)
        }
        #expect(seen.count == 4)
    }

    @Test func unknownTEIDsForeignAddressesAndSignallingAreCounted() throws {
        let f = try Fixture()
        let inner = Self.ipv4Packet("10.45.0.1", "8.8.8.8")
        var unknown = Frame(Self.gpdu(teid: 999, qfi: 9, inner: inner))
        #expect(unknown.process(&f.processor, ingress: 0).0.isDropped)
        var foreign = Frame(Self.gpdu(teid: 256, qfi: 9, inner: inner, destination: "192.0.2.77"))
        #expect(foreign.process(&f.processor, ingress: 0).0.isDropped)
        var plain = Frame(Self.ethernet(inner, to: Self.n3MAC))
        #expect(plain.process(&f.processor, ingress: 0).0.isDropped)
        var noSession = Frame(Self.ethernet(Self.ipv4Packet("8.8.8.8", "10.99.0.1"), to: Self.coreMAC))
        #expect(noSession.process(&f.processor, ingress: 1).0.isDropped)
        var bad = Frame(Self.ethernet(Array(Self.gpdu(teid: 256, qfi: 9, inner: inner)[14...]).enumerated().map {
            $0.offset == 40 ? 0 : $0.element   // PSC length octet (IP 20 + UDP 8 + GTP 12) 0: an extension of length zero
        }, to: Self.n3MAC))
        #expect(bad.process(&f.processor, ingress: 0).0.isDropped)
        #expect(f.dropped(.unknownTEID) == 1 && f.dropped(.notAddressedToUPF) == 1 && f.dropped(.notGTPUOnN3) == 1)
        #expect(f.dropped(.noSessionForUE) == 1 && f.dropped(.gtpExtensionZeroLength) == 1)
    }

    @Test func headersThatDoNotFitTheHeadroomAreDropped() throws {
        let f = try Fixture()
        let answer = Self.ipv4Packet("198.51.100.7", "10.45.0.1")
        let bytes = Self.ethernet(answer, to: Self.engineMAC)
        let verdict = bytes.withUnsafeBytes { raw in
            let copy = UnsafeMutableRawPointer.allocate(byteCount: raw.count, alignment: 8)
            defer { copy.deallocate() }
            copy.copyMemory(from: raw.baseAddress!, byteCount: raw.count)
            return f.processor.process(frame: copy, length: raw.count, headroom: 0, ingress: 2)
        }
        #expect(verdict.isDropped && f.dropped(.headroomExhausted) == 1)
    }

    @Test(.enabled(if: MallocCounter.available)) func noAllocationPerPacket() throws {
        let f = try Fixture()
        var frames = [Frame(Self.gpdu(teid: 256, qfi: 9, inner: Self.ipv4Packet("10.45.0.1", "198.51.100.7"))),
                      Frame(Self.gpdu(teid: 256, qfi: 9, inner: Self.ipv4Packet("10.45.0.1", "8.8.8.8"))),
                      Frame(Self.ethernet(Self.ipv4Packet("198.51.100.7", "10.45.0.1"), to: Self.engineMAC))]
        let originals = frames
        var processor = f.processor
        // Warm up once, then count: every iteration restores the frames in place (no allocation).
        for i in frames.indices { _ = frames[i].process(&processor, ingress: i == 2 ? 2 : 0) }
        let allocations = MallocCounter.count {
            for _ in 0..<100 {
                for i in frames.indices {
                    frames[i].storage.withUnsafeMutableBytes { raw in
                        originals[i].storage.withUnsafeBytes { raw.copyMemory(from: $0) }
                        _ = processor.process(frame: raw.baseAddress! + Frame.headroom, length: originals[i].length,
                                              headroom: Frame.headroom, ingress: i == 2 ? 2 : 0)
                    }
                }
            }
        }
        #expect(allocations == 0)
    }
}
