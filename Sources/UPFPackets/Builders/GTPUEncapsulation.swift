/// The PDU Session Container extension header (TS 38.415 §5.5.2, carried as GTP-U extension
/// type 0x85, TS 29.281 §5.2.2) that a UPF adds to G-PDUs on N3/N9.
///
/// Only the fields a UPF sets are offered; the QoS monitoring, sequence number and delay fields
/// (QMP, SNP, MSNP, …) are written as zero. Out-of-range values are masked to their field
/// width (QFI 6 bits, PPI 3 bits) rather than trapping on the fast path; policy validation
/// rejects them earlier.
@frozen
public enum PDUSessionContainer: Sendable, Equatable {
    /// DL PDU SESSION INFORMATION (PDU type 0): QoS Flow Identifier, Reflective QoS Indicator,
    /// and the Paging Policy Indicator when present (which sets PPP).
    case downlink(qfi: UInt8, rqi: Bool = false, ppi: UInt8? = nil)
    /// UL PDU SESSION INFORMATION (PDU type 1): QoS Flow Identifier (for N9 towards a PSA UPF).
    case uplink(qfi: UInt8)

    /// Octets of the whole extension header: length octet, content with padding, next-type octet.
    /// Content plus padding is 4n − 2 octets (TS 38.415, "Padding"), so 4 or 8 here.
    @inlinable
    public var extensionLength: Int {
        if case .downlink(_, _, .some) = self { return 8 }
        return 4
    }

    /// Writes the extension header at `p` with next extension type 0 (no more headers).
    @inlinable
    func writeUnchecked(to p: UnsafeMutableRawPointer) {
        switch self {
        case let .downlink(qfi, rqi, ppi):
            let octet2 = (ppi != nil ? UInt8(0x80) : 0) | (rqi ? UInt8(0x40) : 0) | (qfi & 0x3F)
            if let ppi {
                // 1 length + 3 content + 3 padding + 1 next type = 8 octets = 2 units of 4.
                p.storeByte(2, toByteOffset: 0)
                p.storeByte(GTPU.PDUType.downlink << 4, toByteOffset: 1)
                p.storeByte(octet2, toByteOffset: 2)
                p.storeByte((ppi & 0x07) << 5, toByteOffset: 3)
                p.storeBigEndian(UInt32(GTPU.ExtensionType.noMore), toByteOffset: 4) // padding, next type
            } else {
                p.storeByte(1, toByteOffset: 0)
                p.storeByte(GTPU.PDUType.downlink << 4, toByteOffset: 1)
                p.storeByte(octet2, toByteOffset: 2)
                p.storeByte(GTPU.ExtensionType.noMore, toByteOffset: 3)
            }
        case let .uplink(qfi):
            p.storeByte(1, toByteOffset: 0)
            p.storeByte(GTPU.PDUType.uplink << 4, toByteOffset: 1)
            p.storeByte(qfi & 0x3F, toByteOffset: 2)
            p.storeByte(GTPU.ExtensionType.noMore, toByteOffset: 3)
        }
    }
}

/// How one tunnel's G-PDUs are encapsulated: outer IPv4/IPv6 + UDP + GTP-U header (TS 29.281
/// §5.1), optionally with a PDU Session Container.
///
/// `write(into:payloadLength:)` writes the headers directly in front of the inner packet, which
/// already sits in the same buffer (typically: prepend `headerLength` octets to the mbuf, then
/// write into its data). Egress headers are built from scratch: S and PN are never set and
/// nothing of a received header is inherited. With a container the flags octet is 0x34
/// (version 1, PT, E) followed by sequence 0, N-PDU 0 and next type 0x85; without it, 0x30 and
/// the 8 mandatory octets only.
@frozen
public struct GTPUEncapsulation: Sendable, Equatable {
    public var outer: GTPUOuterHeader
    /// The peer's TEID (the F-TEID it allocated for this tunnel).
    public var teid: UInt32
    public var pduSessionContainer: PDUSessionContainer?

    @inlinable
    public init(outer: GTPUOuterHeader, teid: UInt32, pduSessionContainer: PDUSessionContainer? = nil) {
        self.outer = outer
        self.teid = teid
        self.pduSessionContainer = pduSessionContainer
    }

    /// Octets of GTP-U header: 8 mandatory, plus 4 optional and the container when present.
    @inlinable
    public var gtpuHeaderLength: Int {
        guard let psc = pduSessionContainer else { return GTPU.mandatoryHeaderLength }
        return GTPU.mandatoryHeaderLength + GTPU.optionalFieldsLength + psc.extensionLength
    }

    /// Octets written in front of the inner packet: outer IP + UDP + GTP-U header.
    @inlinable
    public var headerLength: Int { outer.length + gtpuHeaderLength }

    /// The largest inner packet whose encapsulation keeps every length field in range.
    @inlinable
    public var maximumPayloadLength: Int { outer.maximumUDPPayloadLength - gtpuHeaderLength }

    /// Writes the headers into the first `headerLength` octets of `buffer`, in front of an inner
    /// packet of `payloadLength` octets at `buffer[headerLength...]`.
    ///
    /// The buffer must hold `headerLength + payloadLength` octets when the UDP checksum is
    /// computed (always over IPv6) since the checksum covers the payload; otherwise
    /// `headerLength` suffices (a payload in further mbuf segments is not read).
    /// - Returns: the number of octets written, `headerLength`.
    /// - Throws: `.lengthOutOfRange` when the datagram would exceed 65535 octets (or the length is
    ///   negative), `.bufferTooSmall` when the buffer is short. Nothing is written then.
    @inlinable
    public func write(into buffer: UnsafeMutableRawBufferPointer, payloadLength: Int) throws(PacketBuildError) -> Int {
        let gtpuLength = gtpuHeaderLength
        let header = outer.length + gtpuLength
        let maximum = outer.maximumUDPPayloadLength - gtpuLength
        guard payloadLength >= 0, payloadLength <= maximum else {
            throw .lengthOutOfRange(length: payloadLength, maximum: maximum)
        }
        let required = outer.computesUDPChecksum ? header + payloadLength : header
        guard let p = buffer.baseAddress, buffer.count >= required else {
            throw .bufferTooSmall(required: required, available: buffer.count)
        }
        // GTP-U first: the UDP checksum written with the outer header covers it.
        let g = p + outer.length
        // GTP-U Length: everything after the 8 mandatory octets (TS 29.281 §5.1).
        let lengthField = UInt16(truncatingIfNeeded: gtpuLength - GTPU.mandatoryHeaderLength + payloadLength)
        if let psc = pduSessionContainer {
            g.storeByte(GTPU.Flag.version1GTP | GTPU.Flag.extensionHeader, toByteOffset: 0)
            g.storeByte(GTPU.MessageType.gPDU, toByteOffset: 1)
            g.storeBigEndian(lengthField, toByteOffset: 2)
            g.storeBigEndian(teid, toByteOffset: 4)
            // Sequence 0 and N-PDU 0 (S and PN clear, so receivers ignore them), next type.
            g.storeBigEndian(UInt32(GTPU.ExtensionType.pduSessionContainer), toByteOffset: 8)
            psc.writeUnchecked(to: g + 12)
        } else {
            g.storeByte(GTPU.Flag.version1GTP, toByteOffset: 0)
            g.storeByte(GTPU.MessageType.gPDU, toByteOffset: 1)
            g.storeBigEndian(lengthField, toByteOffset: 2)
            g.storeBigEndian(teid, toByteOffset: 4)
        }
        outer.writeUnchecked(to: p, udpPayloadLength: gtpuLength + payloadLength)
        return header
    }
}
