import Foundation
import Testing
import UPFCapture
import UPFPackets

/// scapy builds random valid N3 frames; the project parses them, re-encapsulates each inner packet
/// the way the downlink will (outer header towards the sender, the same TEID and PDU Session
/// Container, no inherited S/PN/extension flags), and tshark decodes the result to the fields
/// scapy built.
@Suite struct RoundTripTests {
    struct Built: Decodable {
        struct Inner: Decodable {
            var version: Int
            var src: String
            var dst: String
            var proto: Int
            var sport: Int?
            var dport: Int?
        }
        var teid: UInt32
        var qfi: Int?
        var pdu_type: Int?
        var outer: Int
        var inner: Inner
    }

    static let script = Paths.packageRoot.appendingPathComponent("Tests/Oracles/gtpu_roundtrip.py")
    static let python = URL(fileURLWithPath: "/usr/bin/python3")

    static var toolsPresent: Bool {
        FileManager.default.isExecutableFile(atPath: python.path)
            && (try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["tshark", "--version"]).status) == 0
            && (try? runProcess(python, ["-c", "import scapy.contrib.gtp"]).status) == 0
    }

    @Test(.enabled(if: toolsPresent || ProcessInfo.processInfo.environment["CI"] != nil,
                   "needs /usr/bin/python3 with scapy and tshark (tools/setup installs them)"),
          arguments: [2026, 7])
    func scapyBuiltFramesSurviveParseAndReencapsulation(seed: Int) throws {
        let dir = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.pcap").path
        let manifestPath = dir.appendingPathComponent("built.json").path
        let output = dir.appendingPathComponent("out.pcap").path
        let generated = try runProcess(Self.python, [Self.script.path, "generate", "\(seed)", "300", input, manifestPath])
        try #require(generated.status == 0, "scapy generator failed: \(generated.stderr)")
        let built = try JSONDecoder().decode([Built].self, from: Data(contentsOf: URL(fileURLWithPath: manifestPath)))

        let reader = try PcapReader(path: input)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 70_000, alignment: 64)
        defer { buffer.deallocate() }
        var index = 0
        do {
            let writer = try PcapWriter(path: output)
            while let frame = try reader.next() {
                defer { index += 1 }
                let expected = built[index]
                let packet: ParsedPacket
                switch PacketParser.parse(frame.bytes) {
                case .success(let p): packet = p
                case .failure(let reason):
                    Issue.record("frame \(frame.number): scapy's valid frame dropped: \(reason)")
                    continue
                }
                // What we parsed is what scapy built.
                #expect(packet.kind == .gPDU && packet.teid == expected.teid, "frame \(frame.number)")
                #expect(packet.psc.present == (expected.qfi != nil), "frame \(frame.number)")
                if let qfi = expected.qfi {
                    #expect(Int(packet.psc.qfi) == qfi && Int(packet.psc.pduType) == expected.pdu_type, "frame \(frame.number)")
                }
                #expect(Int(packet.inner.version) == expected.inner.version, "frame \(frame.number)")
                #expect(packet.inner.source == IPAddress(expected.inner.src), "frame \(frame.number)")
                #expect(packet.inner.destination == IPAddress(expected.inner.dst), "frame \(frame.number)")
                #expect(Int(packet.inner.proto) == expected.inner.proto, "frame \(frame.number)")
                if let sport = expected.inner.sport, let dport = expected.inner.dport {
                    #expect(Int(packet.inner.sourcePort) == sport && Int(packet.inner.destinationPort) == dport,
                            "frame \(frame.number)")
                }

                // Re-encapsulate the T-PDU towards the sender.
                let tpdu = UnsafeRawBufferPointer(rebasing: frame.bytes[Int(packet.payloadOffset)..<Int(packet.payloadEnd)])
                let psc: PDUSessionContainer? = !packet.psc.present ? nil
                    : packet.psc.pduType == GTPU.PDUType.uplink ? .uplink(qfi: packet.psc.qfi)
                    : .downlink(qfi: packet.psc.qfi, rqi: packet.psc.rqi, ppi: packet.psc.ppp ? packet.psc.ppi : nil)
                let outer = try #require(GTPUOuterHeader(source: packet.outerDestination, destination: packet.outerSource))
                let encapsulation = GTPUEncapsulation(outer: outer, teid: packet.teid, pduSessionContainer: psc)
                let ethernet = EthernetHeaderBuilder(destination: MACAddress(0x02, 0, 0, 0, 0, 0x0A),
                                                     source: MACAddress(0x02, 0, 0, 0, 0, 1),
                                                     etherType: outer.isIPv6 ? EtherType.ipv6 : EtherType.ipv4)
                let start = ethernet.length
                let payloadStart = start + encapsulation.headerLength
                UnsafeMutableRawBufferPointer(rebasing: buffer[payloadStart..<(payloadStart + tpdu.count)]).copyMemory(from: tpdu)
                _ = try ethernet.write(into: buffer)
                _ = try encapsulation.write(into: UnsafeMutableRawBufferPointer(rebasing: buffer[start...]), payloadLength: tpdu.count)
                let written = UnsafeRawBufferPointer(rebasing: buffer[0..<(payloadStart + tpdu.count)])
                writer.write(written)

                // Our own parser reads the re-encapsulated frame back to the same fields and bytes.
                guard case .success(let again) = PacketParser.parse(written) else {
                    Issue.record("frame \(frame.number): re-encapsulated frame does not parse"); continue
                }
                #expect(again.teid == packet.teid && again.psc == packet.psc && again.inner == packet.inner)
                #expect(again.gtpFlags & (GTPU.Flag.sequenceNumber | GTPU.Flag.nPDUNumber) == 0)
                #expect(Array(UnsafeRawBufferPointer(rebasing: written[Int(again.payloadOffset)...])) == Array(tpdu))
            }
        }
        #expect(index == built.count)

        let checked = try runProcess(Self.python, [Self.script.path, "check", manifestPath, output])
        #expect(checked.status == 0, "tshark disagrees with what scapy built:\n\(checked.stdout)\(checked.stderr)")
    }
}
