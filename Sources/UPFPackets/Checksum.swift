/// The Internet checksum (RFC 1071): the 16-bit ones'-complement of the ones'-complement sum of
/// the data taken as big-endian 16-bit words.
///
/// The value is incremental so that a transport checksum is built the way the RFCs define it:
/// pseudo-header fields first (`add(_:)` on numbers), then the segment's bytes (`add(_:)` on a
/// buffer), possibly in several pieces (a chained mbuf). Pieces of odd length are handled: the sum
/// remembers whether it stopped in the middle of a 16-bit word, and the next piece's sum is
/// byte-swapped (RFC 1071 §2(B), byte-order independence) instead of being re-read.
///
/// Speed: bytes are summed as native-order 64-bit words in parallel lanes, carries are deferred
/// and the sum is folded once per piece (RFC 1071 §2(B)–(D)); only the folded 16-bit result is
/// converted to network order.
/// No allocation, no trap except the documented preconditions.
@frozen
public struct InternetChecksum: Sendable {
    /// The sum so far, in network order, not yet folded. Every add contributes at most 2^32, so
    /// this cannot overflow before 2^32 adds.
    @usableFromInline var sum: UInt64
    /// True when an odd number of octets has been added: the next octet is the low half of a word.
    @usableFromInline var odd: Bool

    @inlinable
    public init() {
        sum = 0
        odd = false
    }

    // MARK: Adding numbers (pseudo-header fields)

    /// Adds a 16-bit field as it appears on the wire (big-endian), at the current position.
    @inlinable @inline(__always)
    public mutating func add(_ field: UInt16) {
        sum &+= UInt64(odd ? field.byteSwapped : field)
    }

    /// Adds a 32-bit field as it appears on the wire (big-endian), at the current position.
    /// 2^16 ≡ 1 modulo 2^16 − 1, so the two halves need not be split before folding.
    @inlinable @inline(__always)
    public mutating func add(_ field: UInt32) {
        sum &+= UInt64(odd ? field.byteSwapped : field)
    }

    /// Adds a 64-bit field as it appears on the wire (big-endian), at the current position.
    @inlinable @inline(__always)
    public mutating func add(_ field: UInt64) {
        add(UInt32(truncatingIfNeeded: field >> 32))
        add(UInt32(truncatingIfNeeded: field))
    }

    /// Adds the 16 octets of an IPv6 address (an IPv6 pseudo-header field).
    @inlinable @inline(__always)
    public mutating func add(_ address: IPAddress) {
        add(address.high)
        add(address.low)
    }

    // MARK: Adding bytes

    /// Adds `count` octets at `bytes`, continuing from the current position.
    @inlinable
    public mutating func add(bytes: UnsafeRawPointer, count: Int) {
        guard count > 0 else { return }
        let piece = UInt16(bigEndian: InternetChecksum.nativeSum(bytes, count))
        sum &+= UInt64(odd ? piece.byteSwapped : piece)
        odd = odd != (count & 1 == 1)
    }

    /// Adds the octets of `buffer`, continuing from the current position.
    @inlinable @inline(__always)
    public mutating func add(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress else { return }
        add(bytes: base, count: buffer.count)
    }

    /// Appends another sum as if its octets followed the ones already added (for data that is
    /// summed in pieces, e.g. one per mbuf segment, and combined afterwards).
    @inlinable
    public mutating func add(_ other: InternetChecksum) {
        let piece = other.onesComplementSum
        sum &+= UInt64(odd ? piece.byteSwapped : piece)
        odd = odd != other.odd
    }

    // MARK: Results

    /// The folded ones'-complement sum. Over data that includes a correct checksum it is 0xFFFF.
    @inlinable
    public var onesComplementSum: UInt16 {
        InternetChecksum.fold(sum)
    }

    /// The checksum to store: the ones'-complement of the sum.
    @inlinable
    public var checksum: UInt16 {
        ~onesComplementSum
    }

    /// The checksum of `buffer` alone.
    @inlinable
    public static func checksum(_ buffer: UnsafeRawBufferPointer) -> UInt16 {
        var c = InternetChecksum()
        c.add(buffer)
        return c.checksum
    }

    // MARK: Kernels

    /// Folds a 64-bit ones'-complement accumulator to 16 bits with end-around carries.
    @inlinable @inline(__always)
    static func fold(_ value: UInt64) -> UInt16 {
        var v = (value >> 32) + (value & 0xFFFF_FFFF) // < 2^33
        v = (v >> 16) + (v & 0xFFFF)                  // < 2^17 + 2^16
        v = (v >> 16) + (v & 0xFFFF)                  // ≤ 0x1_0001
        v = (v >> 16) + (v & 0xFFFF)                  // ≤ 0xFFFF
        return UInt16(truncatingIfNeeded: v)
    }

    /// The folded sum of `count` octets read as native-order words (byte-swapped with respect to
    /// the network-order sum on a little-endian machine; the caller converts the 16-bit result).
    ///
    /// Four independent 64-bit accumulators per 32-octet block keep the adds from waiting on one
    /// another; each overflow is counted and added back at the end (end-around carry).
    @inlinable
    static func nativeSum(_ base: UnsafeRawPointer, _ count: Int) -> UInt16 {
        var a: UInt64 = 0, b: UInt64 = 0, c: UInt64 = 0, d: UInt64 = 0
        var carries: UInt64 = 0
        var i = 0
        @inline(__always) func accumulate(_ acc: inout UInt64, _ word: UInt64, _ carries: inout UInt64) {
            let (s, o) = acc.addingReportingOverflow(word)
            acc = s
            carries &+= o ? 1 : 0
        }
        while count &- i >= 32 {
            accumulate(&a, base.loadUnaligned(fromByteOffset: i, as: UInt64.self), &carries)
            accumulate(&b, base.loadUnaligned(fromByteOffset: i &+ 8, as: UInt64.self), &carries)
            accumulate(&c, base.loadUnaligned(fromByteOffset: i &+ 16, as: UInt64.self), &carries)
            accumulate(&d, base.loadUnaligned(fromByteOffset: i &+ 24, as: UInt64.self), &carries)
            i &+= 32
        }
        while count &- i >= 8 {
            accumulate(&a, base.loadUnaligned(fromByteOffset: i, as: UInt64.self), &carries)
            i &+= 8
        }
        // Combine the lanes; overflow of these adds is counted the same way.
        accumulate(&a, b, &carries)
        accumulate(&a, c, &carries)
        accumulate(&a, d, &carries)
        var tail: UInt64 = 0
        if count &- i >= 4 {
            tail &+= UInt64(base.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            i &+= 4
        }
        if count &- i >= 2 {
            tail &+= UInt64(base.loadUnaligned(fromByteOffset: i, as: UInt16.self))
            i &+= 2
        }
        if count &- i == 1 {
            // The last octet is the high half of a word whose low half is zero (RFC 1071 §4.1).
            let last = UInt16(base.load(fromByteOffset: i, as: UInt8.self)) << 8
            tail &+= UInt64(UInt16(bigEndian: last))
        }
        accumulate(&a, tail, &carries)
        // carries < 2^62 for any addressable buffer, so this add cannot overflow on its own;
        // its own overflow (if any) is one more end-around carry.
        let (s, o) = a.addingReportingOverflow(carries)
        return fold(o ? s &+ 1 : s)
    }
}

// MARK: - IPv4 header (RFC 791 §3.1)

extension InternetChecksum {
    /// The checksum of an IPv4 header, computed as if its checksum field (octets 10–11) were zero,
    /// whatever it holds. `header` is exactly the header: IHL × 4 octets, at least 20.
    @inlinable
    public static func ipv4Header(_ header: UnsafeRawBufferPointer) -> UInt16 {
        precondition(header.count >= 20, "an IPv4 header is at least 20 octets")
        let base = header.baseAddress!
        var c = InternetChecksum()
        c.add(bytes: base, count: 10)
        c.add(bytes: base + 12, count: header.count - 12)
        return c.checksum
    }

    /// Computes the checksum of an IPv4 header and stores it in octets 10–11.
    @inlinable
    public static func fillIPv4Header(_ header: UnsafeMutableRawBufferPointer) {
        let value = ipv4Header(UnsafeRawBufferPointer(header))
        header.baseAddress!.storeBigEndian(value, toByteOffset: 10)
    }

    /// True when the header's stored checksum is correct (the sum over the whole header, checksum
    /// included, is 0xFFFF). `header` is exactly IHL × 4 octets, at least 20.
    @inlinable
    public static func isValidIPv4Header(_ header: UnsafeRawBufferPointer) -> Bool {
        precondition(header.count >= 20, "an IPv4 header is at least 20 octets")
        if header.count == 20 {
            // No options (nearly every packet): 8 + 8 + 4 octets in native order, end-around
            // carries, fold. 0xFFFF reads the same in either byte order.
            let base = header.baseAddress!
            let (s1, o1) = base.loadUnaligned(as: UInt64.self)
                .addingReportingOverflow(base.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            let (s2, o2) = (s1 &+ (o1 ? 1 : 0))
                .addingReportingOverflow(UInt64(base.loadUnaligned(fromByteOffset: 16, as: UInt32.self)))
            return fold(s2 &+ (o2 ? 1 : 0)) == 0xFFFF
        }
        var c = InternetChecksum()
        c.add(header)
        return c.onesComplementSum == 0xFFFF
    }
}

// MARK: - Transport checksums (UDP RFC 768, TCP RFC 9293 §3.1, IPv6 RFC 8200 §8.1)

extension InternetChecksum {
    /// Adds the IPv4 pseudo-header: source, destination, zero, protocol, transport length.
    /// Addresses are host-order numbers (`IPAddress.ipv4`).
    @inlinable
    public mutating func addIPv4PseudoHeader(source: UInt32, destination: UInt32, protocol proto: UInt8,
                                             length: Int) {
        add(source)
        add(destination)
        add(UInt16(proto))
        add(UInt16(truncatingIfNeeded: length))
    }

    /// Adds the IPv6 pseudo-header: source, destination, 32-bit upper-layer length, three zero
    /// octets and the next header (the transport protocol, not an extension header).
    @inlinable
    public mutating func addIPv6PseudoHeader(source: IPAddress, destination: IPAddress, nextHeader: UInt8,
                                             length: Int) {
        add(source)
        add(destination)
        add(UInt32(truncatingIfNeeded: length))
        add(UInt16(nextHeader))
    }

    /// The sum of `segment` with its 16-bit checksum field at `checksumOffset` taken as zero.
    @inlinable @inline(__always)
    mutating func addSkippingChecksumField(_ segment: UnsafeRawBufferPointer, checksumOffset: Int) {
        precondition(segment.count >= checksumOffset + 2, "segment shorter than its header")
        let base = segment.baseAddress!
        add(bytes: base, count: checksumOffset)
        // Zero in place of the field keeps the following bytes at the right parity.
        add(UInt16(0))
        add(bytes: base + checksumOffset + 2, count: segment.count - checksumOffset - 2)
    }

    /// A computed UDP checksum as transmitted: zero becomes 0xFFFF, because zero on the wire
    /// means "no checksum" (RFC 768) and is forbidden over IPv6 (RFC 8200 §8.1).
    @inlinable @inline(__always)
    public static func udpValue(_ computed: UInt16) -> UInt16 {
        computed == 0 ? 0xFFFF : computed
    }

    /// The UDP checksum to transmit for `datagram` (UDP header + payload, exactly the UDP length)
    /// over IPv4. The checksum field's current content is ignored. A computed zero is returned as
    /// 0xFFFF, since zero on the wire means "no checksum" (RFC 768).
    @inlinable
    public static func udpIPv4(source: UInt32, destination: UInt32, datagram: UnsafeRawBufferPointer) -> UInt16 {
        var c = InternetChecksum()
        c.addIPv4PseudoHeader(source: source, destination: destination, protocol: IPProtocol.udp,
                              length: datagram.count)
        c.addSkippingChecksumField(datagram, checksumOffset: 6)
        return udpValue(c.checksum)
    }

    /// The UDP checksum to transmit for `datagram` over IPv6. Never zero: IPv6 has no "no
    /// checksum" value (RFC 8200 §8.1), so a computed zero is sent as 0xFFFF.
    @inlinable
    public static func udpIPv6(source: IPAddress, destination: IPAddress, datagram: UnsafeRawBufferPointer) -> UInt16 {
        var c = InternetChecksum()
        c.addIPv6PseudoHeader(source: source, destination: destination, nextHeader: IPProtocol.udp,
                              length: datagram.count)
        c.addSkippingChecksumField(datagram, checksumOffset: 6)
        return udpValue(c.checksum)
    }

    /// The TCP checksum for `segment` (header + data) over IPv4; the field's content is ignored.
    @inlinable
    public static func tcpIPv4(source: UInt32, destination: UInt32, segment: UnsafeRawBufferPointer) -> UInt16 {
        var c = InternetChecksum()
        c.addIPv4PseudoHeader(source: source, destination: destination, protocol: IPProtocol.tcp,
                              length: segment.count)
        c.addSkippingChecksumField(segment, checksumOffset: 16)
        return c.checksum
    }

    /// The TCP checksum for `segment` over IPv6; the field's content is ignored.
    @inlinable
    public static func tcpIPv6(source: IPAddress, destination: IPAddress, segment: UnsafeRawBufferPointer) -> UInt16 {
        var c = InternetChecksum()
        c.addIPv6PseudoHeader(source: source, destination: destination, nextHeader: IPProtocol.tcp,
                              length: segment.count)
        c.addSkippingChecksumField(segment, checksumOffset: 16)
        return c.checksum
    }

    /// True when a received UDP datagram over IPv4 is intact. A zero checksum field means the
    /// sender did not compute one (RFC 768), which is accepted.
    @inlinable
    public static func isValidUDPIPv4(source: UInt32, destination: UInt32, datagram: UnsafeRawBufferPointer) -> Bool {
        precondition(datagram.count >= 8, "a UDP datagram is at least 8 octets")
        if datagram.loadUnaligned(fromByteOffset: 6, as: UInt16.self) == 0 { return true }
        var c = InternetChecksum()
        c.addIPv4PseudoHeader(source: source, destination: destination, protocol: IPProtocol.udp,
                              length: datagram.count)
        c.add(datagram)
        return c.onesComplementSum == 0xFFFF
    }

    /// True when a received UDP datagram over IPv6 is intact. A zero checksum field is invalid
    /// (RFC 8200 §8.1; the RFC 6935 tunnel exception is not used by GTP-U).
    @inlinable
    public static func isValidUDPIPv6(source: IPAddress, destination: IPAddress, datagram: UnsafeRawBufferPointer) -> Bool {
        precondition(datagram.count >= 8, "a UDP datagram is at least 8 octets")
        if datagram.loadUnaligned(fromByteOffset: 6, as: UInt16.self) == 0 { return false }
        var c = InternetChecksum()
        c.addIPv6PseudoHeader(source: source, destination: destination, nextHeader: IPProtocol.udp,
                              length: datagram.count)
        c.add(datagram)
        return c.onesComplementSum == 0xFFFF
    }

    /// True when a received TCP segment over IPv4 is intact.
    @inlinable
    public static func isValidTCPIPv4(source: UInt32, destination: UInt32, segment: UnsafeRawBufferPointer) -> Bool {
        var c = InternetChecksum()
        c.addIPv4PseudoHeader(source: source, destination: destination, protocol: IPProtocol.tcp,
                              length: segment.count)
        c.add(segment)
        return c.onesComplementSum == 0xFFFF
    }

    /// True when a received TCP segment over IPv6 is intact.
    @inlinable
    public static func isValidTCPIPv6(source: IPAddress, destination: IPAddress, segment: UnsafeRawBufferPointer) -> Bool {
        var c = InternetChecksum()
        c.addIPv6PseudoHeader(source: source, destination: destination, nextHeader: IPProtocol.tcp,
                              length: segment.count)
        c.add(segment)
        return c.onesComplementSum == 0xFFFF
    }
}

// MARK: - Incremental update (RFC 1624)

extension InternetChecksum {
    /// The checksum after one 16-bit field changed from `old` to `new`, without re-reading the
    /// data: HC' = ~(~HC + ~m + m') (RFC 1624 eqn. 3; the older RFC 1141 form can give 0xFFFF
    /// where a full recomputation gives 0x0000).
    ///
    /// For UDP the caller keeps the two special cases of RFC 768: a stored zero means "no
    /// checksum" and is left alone, and a result of zero is stored as 0xFFFF.
    @inlinable
    public static func updated(_ checksum: UInt16, replacing old: UInt16, with new: UInt16) -> UInt16 {
        var s = UInt32(~checksum) + UInt32(~old) + UInt32(new)
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return ~UInt16(truncatingIfNeeded: s)
    }

    /// The checksum after one 32-bit field (an IPv4 address, a TEID) changed from `old` to `new`.
    @inlinable
    public static func updated(_ checksum: UInt16, replacing old: UInt32, with new: UInt32) -> UInt16 {
        var s = UInt64(~checksum)
            + UInt64(~UInt16(truncatingIfNeeded: old >> 16)) + UInt64(~UInt16(truncatingIfNeeded: old))
            + UInt64(UInt16(truncatingIfNeeded: new >> 16)) + UInt64(UInt16(truncatingIfNeeded: new))
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return ~UInt16(truncatingIfNeeded: s)
    }
}
