/// Builders of the GTP-U signalling messages a UPF sends (TS 29.281 §7).
///
/// Each writes into the start of a caller-provided buffer either a complete datagram (IPv4/IPv6
/// + UDP + GTP-U, when `outer` is given) or only the GTP-U message (when `outer` is nil, e.g.
/// for a UDP socket), and returns the number of octets written. Nothing is allocated; on error
/// nothing is written.
///
/// Header rules shared by the messages (TS 29.281 §5.1): version 1, PT = 1; Echo Request, Echo
/// Response, Error Indication and Supported Extension Headers Notification carry a sequence
/// number (S = 1) and TEID 0; End Marker carries the tunnel's TEID and no sequence number.
public enum GTPUMessageBuilder {
    /// Echo Request (§7.2.1): S = 1, TEID 0, `sequence`; no IE. 12 octets of GTP-U.
    public static func echoRequest(sequence: UInt16, outer: GTPUOuterHeader?,
                                   into buffer: UnsafeMutableRawBufferPointer) throws(PacketBuildError) -> Int {
        let (p, g) = try reserve(outer: outer, gtpuLength: 12, in: buffer)
        writeHeader(g, flags: GTPU.Flag.sequenceNumber, type: GTPU.MessageType.echoRequest,
                    length: 12, teid: 0, sequence: sequence, nextExtension: GTPU.ExtensionType.noMore)
        return finish(outer: outer, gtpuLength: 12, at: p)
    }

    /// Echo Response (§7.2.2): S = 1, TEID 0, the request's `sequence`, and the Recovery IE
    /// (type 14) whose restart counter is always 0 ("shall be set to zero by the sender").
    /// 14 octets of GTP-U. Send it to the request's source address and UDP source port.
    public static func echoResponse(sequence: UInt16, outer: GTPUOuterHeader?,
                                    into buffer: UnsafeMutableRawBufferPointer) throws(PacketBuildError) -> Int {
        let (p, g) = try reserve(outer: outer, gtpuLength: 14, in: buffer)
        writeHeader(g, flags: GTPU.Flag.sequenceNumber, type: GTPU.MessageType.echoResponse,
                    length: 14, teid: 0, sequence: sequence, nextExtension: GTPU.ExtensionType.noMore)
        g.storeByte(GTPU.InformationElement.recovery, toByteOffset: 12)
        g.storeByte(0, toByteOffset: 13)
        return finish(outer: outer, gtpuLength: 14, at: p)
    }

    /// Error Indication (§7.3.1), answering a G-PDU for an unknown TEID: S = 1, TEID 0, then the
    /// TEID Data I IE (type 16, the TEID of that G-PDU) and the GTP-U Peer Address IE (GSN
    /// Address, type 133, 4 or 16 octets: the address that G-PDU was sent to, i.e. this node),
    /// so the peer can find the tunnel by (TEID, address).
    ///
    /// - Parameter triggeringSourcePort: the UDP source port of that G-PDU. When given, it is
    ///   carried in a UDP Port extension header (type 0x40, §5.2.2.1) and E = 1 (flags 0x36);
    ///   when nil there is no extension (flags 0x32).
    public static func errorIndication(teid: UInt32, peerAddress: IPAddress, triggeringSourcePort: UInt16?,
                                       sequence: UInt16 = 0, outer: GTPUOuterHeader?,
                                       into buffer: UnsafeMutableRawBufferPointer) throws(PacketBuildError) -> Int {
        let addressLength = peerAddress.isIPv4 ? 4 : 16
        let extensionLength = triggeringSourcePort == nil ? 0 : 4
        let gtpuLength = 12 + extensionLength + 5 + 3 + addressLength
        let (p, g) = try reserve(outer: outer, gtpuLength: gtpuLength, in: buffer)
        var flags = GTPU.Flag.sequenceNumber
        var next = GTPU.ExtensionType.noMore
        if triggeringSourcePort != nil {
            flags |= GTPU.Flag.extensionHeader
            next = GTPU.ExtensionType.udpPort
        }
        writeHeader(g, flags: flags, type: GTPU.MessageType.errorIndication, length: gtpuLength,
                    teid: 0, sequence: sequence, nextExtension: next)
        var o = 12
        if let port = triggeringSourcePort {
            g.storeByte(1, toByteOffset: o)                              // length: 1 unit of 4 octets
            g.storeBigEndian(port, toByteOffset: o + 1)
            g.storeByte(GTPU.ExtensionType.noMore, toByteOffset: o + 3)
            o += 4
        }
        g.storeByte(GTPU.InformationElement.teidDataI, toByteOffset: o)  // TV, 4 octets of value
        g.storeBigEndian(teid, toByteOffset: o + 1)
        o += 5
        g.storeByte(GTPU.InformationElement.gsnAddress, toByteOffset: o) // TLV, 2-octet length
        g.storeBigEndian(UInt16(addressLength), toByteOffset: o + 1)
        if peerAddress.isIPv4 {
            g.storeBigEndian(peerAddress.ipv4, toByteOffset: o + 3)
        } else {
            g.storeIPv6Address(peerAddress, toByteOffset: o + 3)
        }
        return finish(outer: outer, gtpuLength: gtpuLength, at: p)
    }

    /// End Marker (§7.3.2): the tunnel's `teid`, no sequence number, no IE, no payload. 8 octets
    /// of GTP-U (flags 0x30, length 0). Sent on the old path after the last G-PDU of a path switch.
    public static func endMarker(teid: UInt32, outer: GTPUOuterHeader?,
                                 into buffer: UnsafeMutableRawBufferPointer) throws(PacketBuildError) -> Int {
        let (p, g) = try reserve(outer: outer, gtpuLength: 8, in: buffer)
        g.storeByte(GTPU.Flag.version1GTP, toByteOffset: 0)
        g.storeByte(GTPU.MessageType.endMarker, toByteOffset: 1)
        g.storeBigEndian(UInt16(0), toByteOffset: 2)
        g.storeBigEndian(teid, toByteOffset: 4)
        return finish(outer: outer, gtpuLength: 8, at: p)
    }

    /// Supported Extension Headers Notification (§7.2.3), the answer to a message carrying an
    /// extension header this node must but cannot comprehend: S = 1, TEID 0, and the Extension
    /// Header Type List IE (type 141, §8.5): a one-octet count, then the supported types.
    ///
    /// Generic rather than an existential or array parameter, so a fast-path caller can pass a
    /// buffer pointer or a constant collection without allocating.
    /// - Throws: `.lengthOutOfRange` when more than 255 types are given.
    public static func supportedExtensionHeadersNotification<Types: Collection<UInt8>>(
        extensionTypes: Types, sequence: UInt16 = 0, outer: GTPUOuterHeader?,
        into buffer: UnsafeMutableRawBufferPointer
    ) throws(PacketBuildError) -> Int {
        let count = extensionTypes.count
        guard count <= 255 else { throw .lengthOutOfRange(length: count, maximum: 255) }
        let gtpuLength = 12 + 2 + count
        let (p, g) = try reserve(outer: outer, gtpuLength: gtpuLength, in: buffer)
        writeHeader(g, flags: GTPU.Flag.sequenceNumber, type: GTPU.MessageType.supportedExtensionHeadersNotification,
                    length: gtpuLength, teid: 0, sequence: sequence, nextExtension: GTPU.ExtensionType.noMore)
        g.storeByte(GTPU.InformationElement.extensionHeaderTypeList, toByteOffset: 12)
        g.storeByte(UInt8(count), toByteOffset: 13)
        var o = 14
        // Bounded by `count`, in case a Collection's iteration disagrees with its count.
        for type in extensionTypes.prefix(count) {
            g.storeByte(type, toByteOffset: o)
            o += 1
        }
        return finish(outer: outer, gtpuLength: gtpuLength, at: p)
    }

    // MARK: Shared

    /// Checks that the whole datagram fits and returns where it starts and where its GTP-U part
    /// starts.
    @inline(__always)
    static func reserve(outer: GTPUOuterHeader?, gtpuLength: Int, in buffer: UnsafeMutableRawBufferPointer)
        throws(PacketBuildError) -> (start: UnsafeMutableRawPointer, gtpu: UnsafeMutableRawPointer) {
        let outerLength = outer?.length ?? 0
        let total = outerLength + gtpuLength
        guard let p = buffer.baseAddress, buffer.count >= total else {
            throw .bufferTooSmall(required: total, available: buffer.count)
        }
        return (p, p + outerLength)
    }

    /// Writes the outer headers once the GTP-U message is in place (the UDP checksum covers it)
    /// and returns the datagram's length.
    @inline(__always)
    static func finish(outer: GTPUOuterHeader?, gtpuLength: Int, at p: UnsafeMutableRawPointer) -> Int {
        guard let outer else { return gtpuLength }
        outer.writeUnchecked(to: p, udpPayloadLength: gtpuLength)
        return outer.length + gtpuLength
    }

    /// The 12-octet header of a message with the optional fields: flags (version 1, PT and the
    /// given E/S/PN bits), type, Length (octets after the first 8), TEID, sequence, N-PDU 0 and
    /// the next extension type.
    @inline(__always)
    static func writeHeader(_ g: UnsafeMutableRawPointer, flags: UInt8, type: UInt8, length: Int, teid: UInt32,
                            sequence: UInt16, nextExtension: UInt8) {
        g.storeByte(GTPU.Flag.version1GTP | flags, toByteOffset: 0)
        g.storeByte(type, toByteOffset: 1)
        g.storeBigEndian(UInt16(length - GTPU.mandatoryHeaderLength), toByteOffset: 2)
        g.storeBigEndian(teid, toByteOffset: 4)
        g.storeBigEndian(sequence, toByteOffset: 8)
        g.storeByte(0, toByteOffset: 10)
        g.storeByte(nextExtension, toByteOffset: 11)
    }
}
