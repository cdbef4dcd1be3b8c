import Testing
import UPFPackets

@Suite struct ARPAndICMPTests {
    typealias F = TestFrames

    static let arpRequest = F.hex("0001 0800 06 04 0001 02000000000a c000020a 000000000000 c0000201")

    @Test func arpRequestFields() throws {
        let frame = F.ethernet(Self.arpRequest, etherType: 0x0806)
        let packet = try #require(F.parsed(frame))
        #expect(packet.kind == .arp)
        let arp = frame.withUnsafeBytes { ARPPacket.read(PacketBytes($0), at: Int(packet.l3Offset)) }
        #expect(arp == ARPPacket(operation: ARPPacket.request, senderMAC: MACAddress(0x02, 0, 0, 0, 0, 0x0A),
                                 senderIP: 0xC000_020A, targetMAC: MACAddress(0), targetIP: 0xC000_0201))
    }

    @Test func arpCutShortOrNotIPv4IsNil() {
        for length in 0..<ARPPacket.length {
            let frame = F.ethernet(Array(Self.arpRequest[0..<length]), etherType: 0x0806)
            #expect(frame.withUnsafeBytes { ARPPacket.read(PacketBytes($0), at: 14) } == nil)
        }
        var ipv6ARP = Self.arpRequest
        ipv6ARP[2] = 0x86; ipv6ARP[3] = 0xDD
        #expect(F.ethernet(ipv6ARP, etherType: 0x0806).withUnsafeBytes { ARPPacket.read(PacketBytes($0), at: 14) } == nil)
    }

    @Test func icmpHeaderOfAnInnerEchoRequest() throws {
        let frame = F.n3(F.gtp(F.ipv4(proto: 1, F.icmpEcho())))
        let packet = try #require(F.parsed(frame))
        let icmp = frame.withUnsafeBytes {
            ICMPHeader.read(PacketBytes($0), at: Int(packet.innerL4Offset), end: Int(packet.payloadEnd))
        }
        #expect(icmp?.type == ICMPHeader.echoRequestV4 && icmp?.code == 0 && icmp?.checksum == 0xF7FE)
        let short = frame.withUnsafeBytes {
            ICMPHeader.read(PacketBytes($0), at: Int(packet.payloadEnd) - 3, end: Int(packet.payloadEnd))
        }
        #expect(short == nil)
    }
}
