import Testing
import UPFPackets
@testable import UPFDatapath

/// `PacketProcessor`'s burst lookahead (`beginBurst`, `peek`, `lookUpPeeked`): a burst processed
/// with the hints gives exactly what processing each frame alone gives, and a hint is never
/// taken for a frame whose own key differs from the peeked one.
@Suite struct BurstLookaheadTests {
    typealias T = PacketProcessorTests

    /// Frames in mbuf-like buffers (headroom in front, tailroom behind), processed as one burst.
    static func process(_ frames: [[UInt8]], ingress: Int, with f: T.Fixture, lookahead: Bool,
                        peekedAs peeked: [[UInt8]]? = nil) -> [(PacketVerdict, [UInt8])] {
        let buffers = frames.map { bytes -> UnsafeMutableRawPointer in
            let b = UnsafeMutableRawPointer.allocate(byteCount: T.Frame.headroom + bytes.count + 64, alignment: 64)
            b.initializeMemory(as: UInt8.self, repeating: 0, count: T.Frame.headroom + bytes.count + 64)
            bytes.withUnsafeBytes { (b + T.Frame.headroom).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            return b
        }
        defer { buffers.forEach { $0.deallocate() } }
        if lookahead {
            f.processor.beginBurst(ingress: ingress)
            for (i, bytes) in (peeked ?? frames).enumerated() {
                bytes.withUnsafeBytes { f.processor.peek(i, frame: $0.baseAddress!, length: bytes.count, ingress: ingress) }
            }
            f.processor.lookUpPeeked()
        }
        var out: [(PacketVerdict, [UInt8])] = []
        for (i, b) in buffers.enumerated() {
            let v = f.processor.process(frame: b + T.Frame.headroom, length: frames[i].count, headroom: T.Frame.headroom,
                                        tailroom: 64, ingress: ingress, burstIndex: lookahead ? i : -1)
            let start = T.Frame.headroom + Int(v.offset)
            out.append((v, v.isDropped ? [] : Array(UnsafeRawBufferPointer(start: b + start, count: Int(v.length)))))
        }
        if lookahead { f.processor.endBurst() }
        return out
    }

    static func same(_ a: [(PacketVerdict, [UInt8])], _ b: [(PacketVerdict, [UInt8])]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    static func vlanTagged(_ frame: [UInt8]) -> [UInt8] {
        Array(frame[0..<12]) + [0x81, 0x00, 0x00, 0x64] + Array(frame[12...])
    }

    static var uplinkBurst: [[UInt8]] {
        [T.gpdu(teid: 256, qfi: 9, inner: T.ipv4Packet("10.45.0.1", "198.51.100.7")),   // steer
         T.gpdu(teid: 256, qfi: nil, inner: T.ipv4Packet("10.45.0.1", "8.8.8.8", proto: 17, dport: 53)), // N9
         T.gpdu(teid: 257, qfi: 5, inner: T.ipv4Packet("10.45.0.2", "1.1.1.1")),         // N6
         T.gpdu(teid: 999, qfi: 9, inner: T.ipv4Packet("10.45.0.9", "1.1.1.1")),         // unknown TEID
         vlanTagged(T.gpdu(teid: 257, qfi: nil, inner: T.ipv4Packet("10.45.0.2", "1.1.1.1"))),
         Array(T.gpdu(teid: 256, qfi: 9, inner: T.ipv4Packet("10.45.0.1", "198.51.100.7")).prefix(40)), // truncated
         T.ethernet(T.ipv4Packet("192.0.2.100", "192.0.2.1", proto: 17), to: T.n3MAC)]  // UDP, not GTP-U
    }

    @Test func anUplinkBurstGivesWhatFrameByFrameProcessingGives() throws {
        let alone = Self.process(Self.uplinkBurst, ingress: 0, with: try T.Fixture(), lookahead: false)
        let f = try T.Fixture()
        let burst = Self.process(Self.uplinkBurst, ingress: 0, with: f, lookahead: true)
        #expect(Self.same(alone, burst))
        #expect(burst[0].0.egress == 2 && burst[1].0.egress == 1 && burst[2].0.egress == 1)
    }

    @Test func aDownlinkBurstFromTheCoreAndAnEngineGivesWhatFrameByFrameProcessingGives() throws {
        let fromCore = [T.ethernet(T.ipv4Packet("1.1.1.1", "10.45.0.2", proto: 17, sport: 53, dport: 5353), to: T.coreMAC),
                        T.ethernet(T.ipv4Packet("1.1.1.1", "10.45.0.77"), to: T.coreMAC),   // no session
                        T.ethernet(T.ipv4Packet("1.1.1.1", "10.45.0.1", proto: 17, dport: 2152), to: T.coreMAC)]
        let fromEngine = [T.ethernet(T.ipv4Packet("192.168.50.10", "10.45.0.1", sport: 443, dport: 40000), to: T.engineMAC)]
        for (frames, port) in [(fromCore, 1), (fromEngine, 2)] {
            let alone = Self.process(frames, ingress: port, with: try T.Fixture(), lookahead: false)
            let burst = Self.process(frames, ingress: port, with: try T.Fixture(), lookahead: true)
            #expect(Self.same(alone, burst), "port \(port)")
        }
    }

    /// A frame whose peeked key is not the key its own parse finds (here: peeked from another
    /// frame) is looked up alone — the hint of another session is never taken.
    @Test func aHintForAnotherKeyIsNeverTaken() throws {
        let frames = [T.gpdu(teid: 257, qfi: 5, inner: T.ipv4Packet("10.45.0.2", "1.1.1.1")),
                      T.gpdu(teid: 999, qfi: 9, inner: T.ipv4Packet("10.45.0.9", "1.1.1.1"))]
        let peeked = [T.gpdu(teid: 256, qfi: 9, inner: T.ipv4Packet("10.45.0.1", "198.51.100.7")),
                      T.gpdu(teid: 257, qfi: 5, inner: T.ipv4Packet("10.45.0.2", "1.1.1.1"))]
        let alone = Self.process(frames, ingress: 0, with: try T.Fixture(), lookahead: false)
        let burst = Self.process(frames, ingress: 0, with: try T.Fixture(), lookahead: true, peekedAs: peeked)
        #expect(Self.same(alone, burst))
        #expect(burst[0].0.egress == 1, "TEID 257 is N6 to the core, not the peeked session's steer")
    }

    /// Processing outside a burst (`burstIndex` -1, as when buffered packets are released) uses
    /// no hint, even right after a burst was peeked.
    @Test func framesOutsideTheBurstUseNoHint() throws {
        let f = try T.Fixture()
        let peekedFrame = T.gpdu(teid: 256, qfi: 9, inner: T.ipv4Packet("10.45.0.1", "198.51.100.7"))
        f.processor.beginBurst(ingress: 0)
        peekedFrame.withUnsafeBytes { f.processor.peek(0, frame: $0.baseAddress!, length: peekedFrame.count, ingress: 0) }
        f.processor.lookUpPeeked()
        #expect(f.processor.ahead.hint(uplink: true, key: 256) == nil, "no frame of the burst is being processed")
        f.processor.ahead.current = 0
        #expect(f.processor.ahead.hint(uplink: true, key: 256) != nil)
        #expect(f.processor.ahead.hint(uplink: true, key: 257) == nil)
        #expect(f.processor.ahead.hint(uplink: false, key: 256) == nil)
        f.processor.endBurst()
        #expect(f.processor.ahead.hint(uplink: true, key: 256) == nil)
    }
}
