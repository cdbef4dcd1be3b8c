/// The IP and UDP headers in front of a GTP-U header (the GTP-U "path", TS 29.281 §4.4): what the
/// encapsulation and the message builders write before the GTP-U octets.
///
/// A plain value, built once per tunnel (or per peer) on the control path and copied into the
/// per-worker tables; writing it touches no class, array or existential.
@frozen
public struct GTPUOuterHeader: Sendable, Equatable {
    /// The address family and the two addresses. IPv4 addresses are host-order numbers.
    @frozen
    public enum Addresses: Sendable, Equatable {
        case ipv4(source: UInt32, destination: UInt32)
        case ipv6(source: IPAddress, destination: IPAddress)
    }

    public var addresses: Addresses
    /// UDP source port. TS 29.281 §4.4.2 lets the sender choose it (e.g. for ECMP entropy);
    /// 2152 by default. An Echo Response goes back to the request's source port.
    public var sourcePort: UInt16
    /// UDP destination port: 2152 for G-PDUs, Echo Requests, Error Indications and End Markers.
    public var destinationPort: UInt16
    /// IPv4 TTL or IPv6 Hop Limit.
    public var hopLimit: UInt8
    /// The whole IPv4 TOS / IPv6 Traffic Class octet: DSCP in the upper six bits, ECN in the lower two.
    public var trafficClass: UInt8
    /// IPv4 Identification. With `dontFragment` set the datagram is atomic and the value may be
    /// constant (RFC 6864 §4.1); without it the caller must vary it per datagram.
    public var ipv4Identification: UInt16
    /// IPv4 DF bit. Set by default: a fragmented tunnel packet costs the receiving UPF a
    /// reassembly, so MTU is better handled by sizing the inner MTU (TS 23.501, MTU considerations).
    public var dontFragment: Bool
    /// IPv6 flow label (low 20 bits used); 0 by default.
    public var flowLabel: UInt32
    /// Whether a UDP checksum is computed over IPv4. Off by default: zero is allowed over IPv4
    /// (RFC 768) and saves reading every payload octet; the inner packet carries its own
    /// checksums. Ignored over IPv6, where the checksum is always computed (RFC 8200 §8.1).
    public var ipv4UDPChecksum: Bool

    @inlinable
    public init(addresses: Addresses, sourcePort: UInt16 = GTPU.udpPort, destinationPort: UInt16 = GTPU.udpPort,
                hopLimit: UInt8 = 64, trafficClass: UInt8 = 0, ipv4Identification: UInt16 = 0,
                dontFragment: Bool = true, flowLabel: UInt32 = 0, ipv4UDPChecksum: Bool = false) {
        self.addresses = addresses
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.hopLimit = hopLimit
        self.trafficClass = trafficClass
        self.ipv4Identification = ipv4Identification
        self.dontFragment = dontFragment
        self.flowLabel = flowLabel
        self.ipv4UDPChecksum = ipv4UDPChecksum
    }

    /// The family is taken from the addresses (IPv4-mapped means IPv4); nil when they differ,
    /// since one datagram cannot mix families.
    @inlinable
    public init?(source: IPAddress, destination: IPAddress, sourcePort: UInt16 = GTPU.udpPort,
                 destinationPort: UInt16 = GTPU.udpPort, hopLimit: UInt8 = 64, trafficClass: UInt8 = 0,
                 ipv4Identification: UInt16 = 0, dontFragment: Bool = true, flowLabel: UInt32 = 0,
                 ipv4UDPChecksum: Bool = false) {
        let addresses: Addresses
        switch (source.isIPv4, destination.isIPv4) {
        case (true, true): addresses = .ipv4(source: source.ipv4, destination: destination.ipv4)
        case (false, false): addresses = .ipv6(source: source, destination: destination)
        default: return nil
        }
        self.init(addresses: addresses, sourcePort: sourcePort, destinationPort: destinationPort,
                  hopLimit: hopLimit, trafficClass: trafficClass, ipv4Identification: ipv4Identification,
                  dontFragment: dontFragment, flowLabel: flowLabel, ipv4UDPChecksum: ipv4UDPChecksum)
    }

    /// DSCP, the upper six bits of `trafficClass` (RFC 2474); setting it keeps the ECN bits.
    @inlinable
    public var dscp: UInt8 {
        get { trafficClass >> 2 }
        set { trafficClass = (newValue << 2) | (trafficClass & 0x03) }
    }

    @inlinable
    public var isIPv6: Bool {
        if case .ipv6 = addresses { return true }
        return false
    }

    /// IP header plus UDP header: 28 octets over IPv4, 48 over IPv6.
    @inlinable
    public var length: Int { isIPv6 ? 48 : 28 }

    /// Whether `write` reads the UDP payload to checksum it.
    @inlinable
    public var computesUDPChecksum: Bool { isIPv6 || ipv4UDPChecksum }

    /// The largest UDP payload (GTP-U octets) that keeps every length field within 16 bits:
    /// IPv4 Total Length covers the IP header, IPv6 Payload Length does not.
    @inlinable
    public var maximumUDPPayloadLength: Int { isIPv6 ? 65535 - 8 : 65535 - 28 }

    /// Writes the IP and UDP headers at `p` for a UDP payload of `udpPayloadLength` octets that
    /// already sits at `p + length`. The IPv4 header checksum is always filled; the UDP checksum
    /// is computed over the payload when `computesUDPChecksum`, otherwise left zero.
    ///
    /// Unchecked: the caller has checked the buffer (and the payload when checksummed) and that
    /// `udpPayloadLength <= maximumUDPPayloadLength`.
    @inlinable
    func writeUnchecked(to p: UnsafeMutableRawPointer, udpPayloadLength: Int) {
        let udpLength = UInt16(truncatingIfNeeded: 8 + udpPayloadLength)
        switch addresses {
        case let .ipv4(source, destination):
            let versionTOS = UInt16(0x4500) | UInt16(trafficClass)  // version 4, IHL 5
            let totalLength = udpLength &+ 20
            let fragment: UInt16 = dontFragment ? 0x4000 : 0
            let ttlProtocol = UInt16(hopLimit) << 8 | UInt16(IPProtocol.udp)
            // The header checksum from the field values in registers rather than re-reading the
            // 20 octets just stored: nine 16-bit words (the checksum word is zero) cannot
            // overflow 32 bits, and two folds bring the sum to 16 bits.
            var sum = UInt32(versionTOS) + UInt32(totalLength) + UInt32(ipv4Identification) + UInt32(fragment)
                + UInt32(ttlProtocol) + (source >> 16) + (source & 0xFFFF) + (destination >> 16) + (destination & 0xFFFF)
            sum = (sum & 0xFFFF) + (sum >> 16)
            sum = (sum & 0xFFFF) + (sum >> 16)
            p.storeBigEndian(versionTOS, toByteOffset: 0)
            p.storeBigEndian(totalLength, toByteOffset: 2)
            p.storeBigEndian(ipv4Identification, toByteOffset: 4)
            p.storeBigEndian(fragment, toByteOffset: 6)
            p.storeBigEndian(ttlProtocol, toByteOffset: 8)
            p.storeBigEndian(~UInt16(truncatingIfNeeded: sum), toByteOffset: 10)
            p.storeBigEndian(source, toByteOffset: 12)
            p.storeBigEndian(destination, toByteOffset: 16)
            writeUDP(to: p + 20, udpLength: udpLength)
            if ipv4UDPChecksum {
                // The field is zero, so the datagram is summed in one pass.
                var c = InternetChecksum()
                c.addIPv4PseudoHeader(source: source, destination: destination, protocol: IPProtocol.udp,
                                      length: Int(udpLength))
                c.add(bytes: UnsafeRawPointer(p + 20), count: Int(udpLength))
                (p + 20).storeBigEndian(InternetChecksum.udpValue(c.checksum), toByteOffset: 6)
            }
        case let .ipv6(source, destination):
            let first = UInt32(6) << 28 | UInt32(trafficClass) << 20 | (flowLabel & 0x000F_FFFF)
            p.storeBigEndian(first, toByteOffset: 0)
            p.storeBigEndian(udpLength, toByteOffset: 4)       // Payload Length: no extension headers
            p.storeByte(IPProtocol.udp, toByteOffset: 6)
            p.storeByte(hopLimit, toByteOffset: 7)
            p.storeIPv6Address(source, toByteOffset: 8)
            p.storeIPv6Address(destination, toByteOffset: 24)
            writeUDP(to: p + 40, udpLength: udpLength)
            var c = InternetChecksum()
            c.addIPv6PseudoHeader(source: source, destination: destination, nextHeader: IPProtocol.udp,
                                  length: Int(udpLength))
            c.add(bytes: UnsafeRawPointer(p + 40), count: Int(udpLength))
            (p + 40).storeBigEndian(InternetChecksum.udpValue(c.checksum), toByteOffset: 6)
        }
    }

    @inlinable @inline(__always)
    func writeUDP(to p: UnsafeMutableRawPointer, udpLength: UInt16) {
        p.storeBigEndian(sourcePort, toByteOffset: 0)
        p.storeBigEndian(destinationPort, toByteOffset: 2)
        p.storeBigEndian(udpLength, toByteOffset: 4)
        p.storeBigEndian(UInt16(0), toByteOffset: 6)
    }
}
