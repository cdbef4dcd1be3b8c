import Foundation
import Testing
import UPFPackets
import UPFPolicy
@testable import UPFDatapath

/// The GCRA meters (`MeterTable`) on explicit times, under contention, and their resets by the
/// session tables.
@Suite struct MeterTests {
    static let t0: UInt64 = 5_000_000_000_000

    @Test func virtualSchedulingAdmitsTheRatePlusTheTolerance() {
        let table = MeterTable(slots: 4, toleranceNanoseconds: 3_000_000)
        let view = table.view
        // 8000 kbit/s: 1 µs per byte (1e9 fs); 1000 bytes = 1 ms.
        let fs = CompiledQoS.femtosPerByte(kbps: 8000)
        #expect(fs == 1_000_000_000)
        func send(_ at: UInt64, uplink: Bool = true) -> Bool {
            view.conforms(slot: 1, meter: 0, uplink: uplink, bytes: 1000, femtosPerByte: fs, now: at)
        }
        #expect((0..<6).map { _ in send(MeterTests.t0) } == [true, true, true, true, false, false])
        #expect(table.theoreticalArrival(slot: 1, meter: 0, uplink: true) == MeterTests.t0 + 4_000_000)
        // Directions and slots are separate meters.
        #expect(send(MeterTests.t0, uplink: false))
        #expect(view.conforms(slot: 2, meter: 0, uplink: true, bytes: 1000, femtosPerByte: fs, now: MeterTests.t0))
        // Long idle: the schedule restarts at now (no credit beyond the tolerance).
        #expect((0..<6).map { _ in send(MeterTests.t0 + 1_000_000_000) } == [true, true, true, true, false, false])
        // No limit: always conforms, the word is not touched.
        #expect(view.conforms(slot: 3, meter: 1, uplink: true, bytes: 1500, femtosPerByte: 0, now: 1))
        #expect(table.theoreticalArrival(slot: 3, meter: 1, uplink: true) == 0)
        // A reset is a long idle.
        table.reset(slot: 1)
        #expect(table.theoreticalArrival(slot: 1, meter: 0, uplink: true) == 0)
        #expect(send(MeterTests.t0 + 1_000_000_000))
    }

    @Test func steadyRateAtTheLimitPassesAndTwiceTheLimitLosesHalf() {
        let table = MeterTable(slots: 1, toleranceNanoseconds: 1_000_000)
        let fs = CompiledQoS.femtosPerByte(kbps: 8000)   // 1000 bytes per ms
        var passed = 0
        for i in 0..<10_000 {   // one packet per ms: exactly the rate
            if table.view.conforms(slot: 0, meter: 0, uplink: true, bytes: 1000, femtosPerByte: fs,
                                   now: MeterTests.t0 + UInt64(i) * 1_000_000) { passed += 1 }
        }
        #expect(passed == 10_000)
        table.reset(slot: 0)
        passed = 0
        for i in 0..<10_000 {   // one packet per 0.5 ms: twice the rate
            if table.view.conforms(slot: 0, meter: 0, uplink: true, bytes: 1000, femtosPerByte: fs,
                                   now: MeterTests.t0 + UInt64(i) * 500_000) { passed += 1 }
        }
        #expect(abs(passed - 5_000) <= 2, "passed \(passed) of 10000 at 2x")
    }

    @Test func concurrentWorkersShareOneMeterExactly() async {
        // At one instant a meter admits exactly 1 + tolerance / increment packets, however many
        // threads race for it: every admission is one successful CAS.
        let table = MeterTable(slots: 1, toleranceNanoseconds: 100_000_000)
        let view = table.view
        let fs = CompiledQoS.femtosPerByte(kbps: 8000)
        let admitted = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var n = 0
                    for _ in 0..<20_000 where view.conforms(slot: 0, meter: 0, uplink: false, bytes: 1000, femtosPerByte: fs,
                                                             now: MeterTests.t0) { n += 1 }
                    return n
                }
            }
            return await group.reduce(0, +)
        }
        #expect(admitted == 101)
    }

    @Test func clockConvertsCyclesToNanoseconds() {
        let clock = MeterClock(cyclesPerSecond: 2_500_000_000)
        #expect(abs(Int64(clock.nanoseconds(2_500_000_000)) - 1_000_000_000) <= 1)
        // No overflow after years of uptime (the multiplier's rounding: < 1e-9 relative).
        let tenYears: UInt64 = 2_500_000_000 * 86_400 * 365 * 10
        let ns = Double(clock.nanoseconds(tenYears))
        #expect(abs(ns / 1e9 - 86_400 * 365 * 10) < 1)
    }

    static func session(qos: [QoS]) -> CompiledSession {
        let s = Session(seid: 7, ueIPv4: "10.45.0.7", n3: FTEID(teid: 77, address: "192.0.2.1"),
                        rules: [Rule(id: 1, precedence: 1, source: .access, action: 1, qos: qos.first?.id)],
                        actions: [Action(id: 1, kind: .forwardN6)], qos: qos)
        return CompiledSession.compile(s, engines: [:], applications: [:])
    }

    @Test func sessionTablesResetMetersOnANewSlotAndOnAChangedQER() throws {
        let tables = SessionTables(capacity: 4, readers: 0)
        let meters = MeterTable(slots: tables.slotCount, toleranceNanoseconds: 0)
        tables.meters = meters
        let qos = [QoS(id: 1, mbrUplinkKbps: 1000), QoS(id: 2), QoS(id: 3, mbrDownlinkKbps: 500)]
        let compiled = Self.session(qos: qos)
        #expect(compiled.qos.map(\.meter) == [0, CompiledQoS.noMeter, 1])
        try tables.put(compiled)
        let slot = try #require(tables.slot(seid: 7))
        func charge() {
            for m in 0..<2 {
                _ = meters.view.conforms(slot: slot, meter: m, uplink: true, bytes: 100, femtosPerByte: 1_000_000_000,
                                         now: MeterTests.t0)
            }
        }
        func tats() -> [UInt64] { (0..<2).map { meters.theoreticalArrival(slot: slot, meter: $0, uplink: true) } }
        charge()
        #expect(tats().allSatisfy { $0 != 0 })
        // The same QERs again (a gate or QFI change keeps the meters): nothing reset.
        var same = qos
        same[0].qfi = 5
        try tables.put(Self.session(qos: same))
        #expect(tats().allSatisfy { $0 != 0 })
        // QER 3's rate changes: its meter restarts, QER 1's does not.
        var changed = qos
        changed[2].mbrDownlinkKbps = 600
        try tables.put(Self.session(qos: changed))
        let after = tats()
        #expect(after[0] != 0 && after[1] == 0)
        // Deleted and a new session on a (possibly reused) slot: all its meters start at 0.
        charge()
        try tables.delete(seid: 7)
        tables.reclaim()
        try tables.put(Self.session(qos: qos))
        let fresh = try #require(tables.slot(seid: 7))
        #expect((0..<2).allSatisfy { meters.theoreticalArrival(slot: fresh, meter: $0, uplink: true) == 0 })
    }
}
