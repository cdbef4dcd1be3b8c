/// Numbers of GTP-U (TS 29.281) and of the PDU Session Container (TS 38.415) that the parser and
/// the builders share.
public enum GTPU {
    /// The registered UDP port of GTP-U (TS 29.281 §4.4.2.0).
    public static let udpPort: UInt16 = 2152
    /// The mandatory part of the header: flags, type, length, TEID.
    public static let mandatoryHeaderLength = 8
    /// Sequence number, N-PDU number and next-extension-type, present when any of E, S, PN is set.
    public static let optionalFieldsLength = 4

    /// First-octet flag bits.
    public enum Flag {
        public static let versionShift: UInt8 = 5
        public static let protocolType: UInt8 = 0x10
        public static let extensionHeader: UInt8 = 0x04
        public static let sequenceNumber: UInt8 = 0x02
        public static let nPDUNumber: UInt8 = 0x01
        /// Version 1, PT = 1 (GTP, not GTP'), no optional fields.
        public static let version1GTP: UInt8 = 0x30
    }

    /// Message types carried on GTP-U (TS 29.281 §6.1).
    public enum MessageType {
        public static let echoRequest: UInt8 = 1
        public static let echoResponse: UInt8 = 2
        public static let errorIndication: UInt8 = 26
        public static let supportedExtensionHeadersNotification: UInt8 = 31
        public static let endMarker: UInt8 = 254
        public static let gPDU: UInt8 = 255
    }

    /// Extension header types (TS 29.281 §5.2.1, figure 5.2.1-3).
    public enum ExtensionType {
        public static let noMore: UInt8 = 0x00
        public static let serviceClassIndicator: UInt8 = 0x20
        public static let udpPort: UInt8 = 0x40
        public static let ranContainer: UInt8 = 0x81
        public static let longPDCPPDUNumber: UInt8 = 0x82
        public static let xwRANContainer: UInt8 = 0x83
        public static let nrRANContainer: UInt8 = 0x84
        public static let pduSessionContainer: UInt8 = 0x85
        public static let pdcpPDUNumber: UInt8 = 0xC0
        /// Bit 8 of the type: the receiving endpoint must understand the header (TS 29.281 §5.2.1).
        public static let comprehensionRequiredByEndpoint: UInt8 = 0x80
    }

    /// Information elements of GTP-U messages (TS 29.281 §8).
    public enum InformationElement {
        public static let recovery: UInt8 = 14           // TV, 1 octet of value
        public static let teidDataI: UInt8 = 16          // TV, 4 octets
        public static let gsnAddress: UInt8 = 133        // TLV, 4 or 16 octets
        public static let extensionHeaderTypeList: UInt8 = 141 // TV with a count octet
        public static let privateExtension: UInt8 = 255  // TLV
    }

    /// PDU types of the PDU Session Container (TS 38.415 §5.5.2).
    public enum PDUType {
        public static let downlink: UInt8 = 0
        public static let uplink: UInt8 = 1
    }
}

/// EtherTypes and IP protocol numbers the parser recognises.
public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let vlan: UInt16 = 0x8100
    public static let qinq: UInt16 = 0x88A8
    public static let ipv6: UInt16 = 0x86DD
}

public enum IPProtocol {
    public static let hopByHop: UInt8 = 0
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let ipv6Routing: UInt8 = 43
    public static let ipv6Fragment: UInt8 = 44
    public static let esp: UInt8 = 50
    public static let ah: UInt8 = 51
    public static let icmpv6: UInt8 = 58
    public static let ipv6NoNext: UInt8 = 59
    public static let ipv6DestinationOptions: UInt8 = 60
    public static let sctp: UInt8 = 132
    public static let mobilityHeader: UInt8 = 135
}
