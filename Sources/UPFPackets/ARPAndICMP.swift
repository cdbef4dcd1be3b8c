/// Views read on demand, after `PacketParser` has said what a packet is: the GTP-U path never
/// pays for them. They answer ARP and Neighbour Discovery for the service's own addresses and
/// give ICMP type and code to rules and counters.

/// An Ethernet/IPv4 ARP packet (RFC 826), the only kind a UPF port answers.
@frozen
public struct ARPPacket: Sendable, Equatable {
    public static let request: UInt16 = 1
    public static let reply: UInt16 = 2
    /// Hardware type 1, protocol 0x0800, lengths 6 and 4: 8 octets of header, 20 of addresses.
    public static let length = 28

    public var operation: UInt16
    public var senderMAC: MACAddress
    public var senderIP: UInt32
    public var targetMAC: MACAddress
    public var targetIP: UInt32

    public init(operation: UInt16, senderMAC: MACAddress, senderIP: UInt32, targetMAC: MACAddress, targetIP: UInt32) {
        self.operation = operation
        self.senderMAC = senderMAC
        self.senderIP = senderIP
        self.targetMAC = targetMAC
        self.targetIP = targetIP
    }

    /// Reads the ARP packet at `offset` (a parsed packet's `l3Offset`); nil when it is cut short or
    /// is not Ethernet/IPv4 ARP.
    public static func read(_ bytes: PacketBytes, at offset: Int) -> ARPPacket? {
        guard offset >= 0, bytes.count - offset >= length else { return nil }
        guard bytes.u16(offset) == 1, bytes.u16(offset &+ 2) == EtherType.ipv4,
              bytes.u8(offset &+ 4) == 6, bytes.u8(offset &+ 5) == 4 else { return nil }
        func mac(_ at: Int) -> MACAddress {
            MACAddress(UInt64(bytes.u32(at)) << 16 | UInt64(bytes.u16(at &+ 4)))
        }
        return ARPPacket(operation: bytes.u16(offset &+ 6),
                         senderMAC: mac(offset &+ 8), senderIP: bytes.u32(offset &+ 14),
                         targetMAC: mac(offset &+ 18), targetIP: bytes.u32(offset &+ 24))
    }
}

/// The first four octets of an ICMP (RFC 792) or ICMPv6 (RFC 4443) message.
@frozen
public struct ICMPHeader: Sendable, Equatable {
    public var type: UInt8
    public var code: UInt8
    public var checksum: UInt16

    /// ICMPv6 types of Neighbour Discovery (RFC 4861 §4).
    public static let neighborSolicitation: UInt8 = 135
    public static let neighborAdvertisement: UInt8 = 136
    public static let echoRequestV4: UInt8 = 8
    public static let echoRequestV6: UInt8 = 128

    /// Reads the header at `offset` of a message that ends at `end`; nil when fewer than four
    /// octets are there.
    public static func read(_ bytes: PacketBytes, at offset: Int, end: Int) -> ICMPHeader? {
        guard offset >= 0, end <= bytes.count, end &- offset >= 4 else { return nil }
        return ICMPHeader(type: bytes.u8(offset), code: bytes.u8(offset &+ 1), checksum: bytes.u16(offset &+ 2))
    }
}
