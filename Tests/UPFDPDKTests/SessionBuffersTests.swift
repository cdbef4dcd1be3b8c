import Testing
import UPFDatapath
@testable import UPFDPDK

/// `SessionBuffers` only stores mbuf pointers, so made-up pointers stand in for mbufs here (no
/// EAL, nothing dereferenced); the worker's use of it runs in `BufferingTests` on the binaries.
@Suite struct SessionBuffersTests {
    static func mbuf(_ n: Int) -> OpaquePointer { OpaquePointer(bitPattern: 0x1000 * n)! }

    static func request(slot: UInt32, generation: UInt32, seid: UInt64, limit: UInt32 = 8) -> BufferRequest {
        BufferRequest(slot: slot, generation: generation, seid: seid, limit: limit, byTEID: true, teid: UInt32(seid))
    }

    @Test func mayHoldTracksTheSlotsWithHeldPackets() {
        let buffers = SessionBuffers(packets: 16, sessions: 4)
        #expect(!buffers.mayHold(slot: 5))
        #expect(buffers.hold(Self.mbuf(1), Self.request(slot: 5, generation: 1, seid: 50), ingress: 0, now: 0) == .first)
        #expect(buffers.hold(Self.mbuf(2), Self.request(slot: 5, generation: 1, seid: 50), ingress: 0, now: 0) == .appended)
        #expect(buffers.hold(Self.mbuf(3), Self.request(slot: 7, generation: 1, seid: 70), ingress: 0, now: 0) == .first)
        // 4096 + 5 shares slot 5's hash: a "maybe", never a wrong "no".
        #expect(buffers.mayHold(slot: 5) && buffers.mayHold(slot: 7) && buffers.mayHold(slot: 4096 + 5))
        #expect(!buffers.mayHold(slot: 6))

        // Slot 5's session was updated (generation 2): its packets come back in order; slot 7's
        // did not change and keeps them.
        var released: [OpaquePointer] = []
        buffers.sweep(now: 1, holdTicks: 1000, version: { $0.slot == 5 ? (5, 2) : ($0.slot, $0.generation) },
                      release: { m, _ in released.append(m) }, drop: { _, _ in Issue.record("nothing expires or is discarded") })
        #expect(released == [Self.mbuf(1), Self.mbuf(2)])
        #expect(!buffers.mayHold(slot: 5) && buffers.mayHold(slot: 7))
        #expect(buffers.active == 1 && buffers.held == 1)

        var discarded: [OpaquePointer] = []
        buffers.discardAll { m, reason in
            #expect(reason == .bufferDiscarded)
            discarded.append(m)
        }
        #expect(discarded == [Self.mbuf(3)] && !buffers.mayHold(slot: 7) && buffers.active == 0)
    }

    @Test func packetsHeldAgainWhileReleasedAreCountedForTheirSlot() {
        let buffers = SessionBuffers(packets: 8, sessions: 2)
        _ = buffers.hold(Self.mbuf(1), Self.request(slot: 3, generation: 1, seid: 30), ingress: 0, now: 0)
        _ = buffers.hold(Self.mbuf(2), Self.request(slot: 3, generation: 1, seid: 30), ingress: 0, now: 0)
        // The new version still buffers: each released packet is held again, for generation 2.
        buffers.sweep(now: 1, holdTicks: 1000, version: { _ in (3, 2) },
                      release: { m, ingress in
                          _ = buffers.hold(m, Self.request(slot: 3, generation: 2, seid: 30), ingress: ingress, now: 1)
                      },
                      drop: { _, _ in Issue.record("nothing is dropped") })
        #expect(buffers.mayHold(slot: 3) && buffers.active == 1 && buffers.held == 2)
        buffers.discardAll { _, _ in }
        #expect(!buffers.mayHold(slot: 3) && buffers.held == 0)
    }
}
