/// A 48-bit IEEE 802 MAC address, held in the low 48 bits of a number so that it copies, compares
/// and stores (one 32-bit and one 16-bit store) without an array.
@frozen
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address in the low 48 bits, first octet most significant.
    public var value: UInt64

    @inlinable
    public init(_ value: UInt64) {
        self.value = value & 0xFFFF_FFFF_FFFF
    }

    @inlinable
    public init(_ o0: UInt8, _ o1: UInt8, _ o2: UInt8, _ o3: UInt8, _ o4: UInt8, _ o5: UInt8) {
        value = UInt64(o0) << 40 | UInt64(o1) << 32 | UInt64(o2) << 24 | UInt64(o3) << 16 | UInt64(o4) << 8 | UInt64(o5)
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), one or two hex digits per octet.
    public init?(_ text: some StringProtocol) {
        var result: UInt64 = 0
        var octets = 0
        for part in text.split(separator: ":", omittingEmptySubsequences: false).flatMap({ $0.split(separator: "-", omittingEmptySubsequences: false) }) {
            guard (1...2).contains(part.count), let octet = UInt8(part, radix: 16) else { return nil }
            result = result << 8 | UInt64(octet)
            octets += 1
        }
        guard octets == 6 else { return nil }
        value = result
    }

    public static let broadcast = MACAddress(0xFFFF_FFFF_FFFF)

    /// The six octets, first on the wire first (for set-up code, not the fast path).
    public var octets: [UInt8] {
        (0..<6).map { UInt8(truncatingIfNeeded: value >> (40 - 8 * UInt64($0))) }
    }

    public var description: String {
        octets.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }
}

/// An Ethernet II header, optionally with one IEEE 802.1Q tag, for frames leaving on a port that
/// is not handled by the NIC's own tag insertion.
@frozen
public struct EthernetHeaderBuilder: Sendable, Equatable {
    /// An 802.1Q tag: priority (PCP, 3 bits), drop eligible (DEI), VLAN ID (12 bits).
    @frozen
    public struct VLANTag: Sendable, Equatable {
        public var priority: UInt8
        public var dropEligible: Bool
        public var vlanID: UInt16
        /// The tag protocol identifier: 0x8100 (802.1Q), or 0x88A8 for an 802.1ad service tag.
        public var tpid: UInt16

        @inlinable
        public init(vlanID: UInt16, priority: UInt8 = 0, dropEligible: Bool = false, tpid: UInt16 = EtherType.vlan) {
            self.vlanID = vlanID
            self.priority = priority
            self.dropEligible = dropEligible
            self.tpid = tpid
        }

        /// The Tag Control Information field; out-of-range values are masked to their widths.
        @inlinable
        public var tci: UInt16 {
            UInt16(priority & 0x07) << 13 | (dropEligible ? 0x1000 : 0) | (vlanID & 0x0FFF)
        }
    }

    public var destination: MACAddress
    public var source: MACAddress
    public var vlan: VLANTag?
    /// The EtherType of what follows (`EtherType.ipv4`, `EtherType.ipv6`, …).
    public var etherType: UInt16

    @inlinable
    public init(destination: MACAddress, source: MACAddress, vlan: VLANTag? = nil, etherType: UInt16) {
        self.destination = destination
        self.source = source
        self.vlan = vlan
        self.etherType = etherType
    }

    /// 14 octets, 18 with a tag.
    @inlinable
    public var length: Int { vlan == nil ? 14 : 18 }

    /// Writes the header at the start of `buffer`.
    /// - Returns: the number of octets written, `length`.
    @inlinable
    public func write(into buffer: UnsafeMutableRawBufferPointer) throws(PacketBuildError) -> Int {
        let length = self.length
        guard let p = buffer.baseAddress, buffer.count >= length else {
            throw .bufferTooSmall(required: length, available: buffer.count)
        }
        p.storeBigEndian(UInt32(truncatingIfNeeded: destination.value >> 16), toByteOffset: 0)
        p.storeBigEndian(UInt16(truncatingIfNeeded: destination.value), toByteOffset: 4)
        p.storeBigEndian(UInt32(truncatingIfNeeded: source.value >> 16), toByteOffset: 6)
        p.storeBigEndian(UInt16(truncatingIfNeeded: source.value), toByteOffset: 10)
        if let vlan {
            p.storeBigEndian(vlan.tpid, toByteOffset: 12)
            p.storeBigEndian(vlan.tci, toByteOffset: 14)
            p.storeBigEndian(etherType, toByteOffset: 16)
        } else {
            p.storeBigEndian(etherType, toByteOffset: 12)
        }
        return length
    }
}
