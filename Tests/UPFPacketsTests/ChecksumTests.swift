import Testing
import UPFPackets

/// The Internet checksum against RFC 1071/1624 vectors, known headers, and a deliberately naive
/// reference (one big-endian word at a time, written straight from RFC 1071 §1).
@Suite struct ChecksumTests {
    // MARK: RFC 1071

    /// RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (checksum 220d).
    @Test func rfc1071Example() {
        let bytes: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        bytes.withUnsafeBytes { raw in
            var c = InternetChecksum()
            c.add(raw)
            #expect(c.onesComplementSum == 0xDDF2)
            #expect(c.checksum == 0x220D)
            #expect(InternetChecksum.checksum(raw) == 0x220D)
        }
    }

    /// An odd trailing octet is the high half of a word padded with zero (RFC 1071 §4.1).
    @Test func oddLengthPadsWithZero() {
        let bytes: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7, 0x01]
        // ddf2 + 0100 = def2
        bytes.withUnsafeBytes { raw in
            #expect(InternetChecksum.checksum(raw) == ~UInt16(0xDEF2))
        }
    }

    @Test func emptyAndZeroData() {
        #expect(InternetChecksum().checksum == 0xFFFF)
        let zeros = [UInt8](repeating: 0, count: 37)
        zeros.withUnsafeBytes { #expect(InternetChecksum.checksum($0) == 0xFFFF) }
        let ones = [UInt8](repeating: 0xFF, count: 64)
        ones.withUnsafeBytes { #expect(InternetChecksum.checksum($0) == 0x0000) }
    }

    /// Every length 0…300 at every alignment 0…7 matches the naive reference, which exercises the
    /// 32-octet blocks, the 8/4/2/1-octet tails, carries and unaligned loads.
    @Test func matchesReferenceAtAllLengthsAndAlignments() {
        var rng = SeededGenerator(seed: 1071)
        for length in 0...300 {
            let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let expected = ~referenceSum(data)
            for alignment in 0..<8 {
                withMisaligned(data, by: alignment) { raw in
                    #expect(InternetChecksum.checksum(raw) == expected, "length \(length) alignment \(alignment)")
                }
            }
        }
    }

    /// Large all-0xFF buffers force a carry on every 64-bit add.
    @Test func carriesOnLargeBuffers() {
        for length in [8, 32, 64, 1500, 9000, 65535] {
            let data = [UInt8](repeating: 0xFF, count: length)
            data.withUnsafeBytes { #expect(InternetChecksum.checksum($0) == ~referenceSum(data)) }
        }
    }

    /// Adding in pieces — including pieces of odd length, and sums of pieces combined later — gives
    /// the same result as adding the whole buffer at once.
    @Test func incrementalPiecesMatchWhole() {
        var rng = SeededGenerator(seed: 42)
        for _ in 0..<200 {
            let length = Int.random(in: 0...120, using: &rng)
            let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let cut1 = Int.random(in: 0...length, using: &rng)
            let cut2 = Int.random(in: cut1...length, using: &rng)
            data.withUnsafeBytes { raw in
                let whole = InternetChecksum.checksum(raw)
                var pieces = InternetChecksum()
                pieces.add(UnsafeRawBufferPointer(rebasing: raw[0..<cut1]))
                pieces.add(UnsafeRawBufferPointer(rebasing: raw[cut1..<cut2]))
                pieces.add(UnsafeRawBufferPointer(rebasing: raw[cut2...]))
                #expect(pieces.checksum == whole)

                var head = InternetChecksum(), tail = InternetChecksum()
                head.add(UnsafeRawBufferPointer(rebasing: raw[0..<cut1]))
                tail.add(UnsafeRawBufferPointer(rebasing: raw[cut1...]))
                head.add(tail)
                #expect(head.checksum == whole)
            }
        }
    }

    /// Numbers added as fields equal their big-endian bytes added as data, at even and odd offsets.
    @Test func fieldsEqualTheirBytes() {
        let prefixes: [[UInt8]] = [[], [0x5A]]
        for prefix in prefixes {
            var fields = InternetChecksum()
            prefix.withUnsafeBytes { fields.add($0) }
            fields.add(UInt16(0x1234))
            fields.add(UInt32(0xDEAD_BEEF))
            fields.add(UInt64(0x0102_0304_0506_0708))
            fields.add(IPAddress("2001:db8::1")!)
            let bytes = prefix + [0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4, 5, 6, 7, 8,
                                  0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
            #expect(fields.checksum == ~referenceSum(bytes), "prefix \(prefix)")
        }
    }

    // MARK: IPv4 header

    /// The classic example header 4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7.
    static let classicHeader: [UInt8] = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                                         0xB8, 0x61, 0xC0, 0xA8, 0x00, 0x01, 0xC0, 0xA8, 0x00, 0xC7]

    @Test func classicIPv4Header() {
        var header = Self.classicHeader
        header.withUnsafeBytes { raw in
            #expect(InternetChecksum.isValidIPv4Header(raw))
            #expect(InternetChecksum.ipv4Header(raw) == 0xB861)
            var whole = InternetChecksum()
            whole.add(raw)
            #expect(whole.onesComplementSum == 0xFFFF)
        }
        // The computation ignores whatever the field holds; fill writes it back.
        header[10] = 0x12; header[11] = 0x34
        header.withUnsafeBytes { raw in
            #expect(!InternetChecksum.isValidIPv4Header(raw))
            #expect(InternetChecksum.ipv4Header(raw) == 0xB861)
        }
        header.withUnsafeMutableBytes { InternetChecksum.fillIPv4Header($0) }
        #expect(header == Self.classicHeader)
    }

    /// A header with options (IHL 6) covers all 24 octets.
    @Test func ipv4HeaderWithOptions() {
        var header = Self.classicHeader
        header[0] = 0x46
        header += [0x94, 0x04, 0x00, 0x00] // Router Alert
        header[10] = 0; header[11] = 0
        let expected = ~referenceSum(header)
        header.withUnsafeMutableBytes { InternetChecksum.fillIPv4Header($0) }
        #expect(UInt16(header[10]) << 8 | UInt16(header[11]) == expected)
        header.withUnsafeBytes { #expect(InternetChecksum.isValidIPv4Header($0)) }
    }

    // MARK: Transport checksums

    /// UDP over IPv4 by hand: pseudo-header c0a8 0001 c0a8 00c7 0011 000c, header 1234 0035 000c
    /// 0000, data 6869 6a6b.
    @Test func udpIPv4KnownValue() {
        let datagram: [UInt8] = [0x12, 0x34, 0x00, 0x35, 0x00, 0x0C, 0xAB, 0xCD, 0x68, 0x69, 0x6A, 0x6B]
        // c0a8+0001+c0a8+00c7+0011+000c+1234+0035+000c+6869+6a6b = 2677e -> 6780, ~ = 987f
        datagram.withUnsafeBytes { raw in
            let value = InternetChecksum.udpIPv4(source: 0xC0A8_0001, destination: 0xC0A8_00C7, datagram: raw)
            #expect(value == 0x987F)
        }
        var filled = datagram
        filled[6] = 0x98; filled[7] = 0x7F
        filled.withUnsafeBytes { raw in
            #expect(InternetChecksum.isValidUDPIPv4(source: 0xC0A8_0001, destination: 0xC0A8_00C7, datagram: raw))
            #expect(!InternetChecksum.isValidUDPIPv4(source: 0xC0A8_0002, destination: 0xC0A8_00C7, datagram: raw))
        }
        // At any alignment (a UDP header behind an odd-length header, or in an odd buffer).
        for alignment in 1..<4 {
            withMisaligned(filled, by: alignment) { raw in
                #expect(InternetChecksum.isValidUDPIPv4(source: 0xC0A8_0001, destination: 0xC0A8_00C7, datagram: raw))
            }
        }
        // Zero on the wire means "not computed" over IPv4.
        var unchecked = datagram
        unchecked[6] = 0; unchecked[7] = 0
        unchecked.withUnsafeBytes { raw in
            #expect(InternetChecksum.isValidUDPIPv4(source: 0xC0A8_0001, destination: 0xC0A8_00C7, datagram: raw))
        }
    }

    /// A datagram whose checksum computes to zero is sent as 0xFFFF, over IPv6 and IPv4; over IPv6
    /// a zero field is rejected.
    @Test func udpComputedZeroIsSentAsAllOnes() {
        let src6 = IPAddress("2001:db8::1")!, dst6 = IPAddress("2001:db8::2")!
        // Choose the last data word so that the whole sum is 0xFFFF, i.e. the checksum is 0.
        var datagram: [UInt8] = [0x08, 0x68, 0x08, 0x68, 0x00, 0x0C, 0x00, 0x00, 0x12, 0x34, 0x00, 0x00]
        var c = InternetChecksum()
        c.addIPv6PseudoHeader(source: src6, destination: dst6, nextHeader: 17, length: datagram.count)
        datagram.withUnsafeBytes { c.add($0) }
        let fix = ~c.onesComplementSum
        datagram[10] = UInt8(fix >> 8); datagram[11] = UInt8(fix & 0xFF)
        datagram.withUnsafeBytes { raw in
            var check = InternetChecksum()
            check.addIPv6PseudoHeader(source: src6, destination: dst6, nextHeader: 17, length: raw.count)
            check.add(raw)
            #expect(check.checksum == 0) // the computed value really is zero
            #expect(InternetChecksum.udpIPv6(source: src6, destination: dst6, datagram: raw) == 0xFFFF)
            #expect(!InternetChecksum.isValidUDPIPv6(source: src6, destination: dst6, datagram: raw))
        }
        datagram[6] = 0xFF; datagram[7] = 0xFF
        datagram.withUnsafeBytes { raw in
            #expect(InternetChecksum.isValidUDPIPv6(source: src6, destination: dst6, datagram: raw))
        }

        var v4: [UInt8] = [0x08, 0x68, 0x08, 0x68, 0x00, 0x0C, 0x00, 0x00, 0x12, 0x34, 0x00, 0x00]
        var c4 = InternetChecksum()
        c4.addIPv4PseudoHeader(source: 0x0A00_0001, destination: 0x0A00_0002, protocol: 17, length: v4.count)
        v4.withUnsafeBytes { c4.add($0) }
        let fix4 = ~c4.onesComplementSum
        v4[10] = UInt8(fix4 >> 8); v4[11] = UInt8(fix4 & 0xFF)
        v4.withUnsafeBytes { raw in
            #expect(InternetChecksum.udpIPv4(source: 0x0A00_0001, destination: 0x0A00_0002, datagram: raw) == 0xFFFF)
        }
    }

    /// UDP and TCP over both families against the reference with an explicitly built pseudo-header.
    @Test func transportMatchesReference() {
        var rng = SeededGenerator(seed: 768)
        let src6 = IPAddress("fe80::1:2:3:4")!, dst6 = IPAddress("2001:db8:aaaa::ffff")!
        let src4: UInt32 = 0x0A01_0203, dst4: UInt32 = 0xC0A8_FE01
        for length in [8, 9, 20, 21, 57, 1400] {
            var segment = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if length < 20 { segment += [UInt8](repeating: 0, count: 20 - length) }
            let n = segment.count
            var zeroed = segment
            zeroed[6] = 0; zeroed[7] = 0      // UDP field
            var zeroedTCP = segment
            zeroedTCP[16] = 0; zeroedTCP[17] = 0
            let pseudo4 = be32(src4) + be32(dst4) + [0, 17] + be16(UInt16(n))
            let pseudo6 = bytes(src6) + bytes(dst6) + be32(UInt32(n)) + [0, 0, 0, 17]
            let pseudo4t = be32(src4) + be32(dst4) + [0, 6] + be16(UInt16(n))
            let pseudo6t = bytes(src6) + bytes(dst6) + be32(UInt32(n)) + [0, 0, 0, 6]
            func udpValue(_ v: UInt16) -> UInt16 { v == 0 ? 0xFFFF : v }
            segment.withUnsafeBytes { raw in
                #expect(InternetChecksum.udpIPv4(source: src4, destination: dst4, datagram: raw)
                        == udpValue(~referenceSum(pseudo4 + zeroed)))
                #expect(InternetChecksum.udpIPv6(source: src6, destination: dst6, datagram: raw)
                        == udpValue(~referenceSum(pseudo6 + zeroed)))
                #expect(InternetChecksum.tcpIPv4(source: src4, destination: dst4, segment: raw)
                        == ~referenceSum(pseudo4t + zeroedTCP))
                #expect(InternetChecksum.tcpIPv6(source: src6, destination: dst6, segment: raw)
                        == ~referenceSum(pseudo6t + zeroedTCP))
            }
            // Filled in, each verifies, and a flipped bit does not.
            var tcp = segment
            let t = tcp.withUnsafeBytes { InternetChecksum.tcpIPv6(source: src6, destination: dst6, segment: $0) }
            tcp[16] = UInt8(t >> 8); tcp[17] = UInt8(t & 0xFF)
            tcp.withUnsafeBytes { #expect(InternetChecksum.isValidTCPIPv6(source: src6, destination: dst6, segment: $0)) }
            tcp[n - 1] ^= 0x01
            tcp.withUnsafeBytes { #expect(!InternetChecksum.isValidTCPIPv6(source: src6, destination: dst6, segment: $0)) }

            var tcp4 = segment
            let t4 = tcp4.withUnsafeBytes { InternetChecksum.tcpIPv4(source: src4, destination: dst4, segment: $0) }
            tcp4[16] = UInt8(t4 >> 8); tcp4[17] = UInt8(t4 & 0xFF)
            tcp4.withUnsafeBytes { #expect(InternetChecksum.isValidTCPIPv4(source: src4, destination: dst4, segment: $0)) }

            var udp6 = segment
            let u6 = udp6.withUnsafeBytes { InternetChecksum.udpIPv6(source: src6, destination: dst6, datagram: $0) }
            udp6[6] = UInt8(u6 >> 8); udp6[7] = UInt8(u6 & 0xFF)
            udp6.withUnsafeBytes { #expect(InternetChecksum.isValidUDPIPv6(source: src6, destination: dst6, datagram: $0)) }
        }
    }

    // MARK: RFC 1624

    /// RFC 1624 §4 example: HC = dd2f, m = 5555 → m' = 3285 gives HC' = 0000 (not ffff).
    @Test func rfc1624Example() {
        #expect(InternetChecksum.updated(0xDD2F, replacing: UInt16(0x5555), with: UInt16(0x3285)) == 0x0000)
    }

    /// Incremental updates of a TTL/protocol word and of an address equal a full recomputation.
    @Test func incrementalUpdateMatchesRecompute() {
        var rng = SeededGenerator(seed: 1624)
        for _ in 0..<500 {
            var header = Self.classicHeader
            for i in [1, 4, 5, 8] { header[i] = UInt8.random(in: 0...255, using: &rng) }
            header.withUnsafeMutableBytes { InternetChecksum.fillIPv4Header($0) }
            let old = UInt16(header[10]) << 8 | UInt16(header[11])

            // 16-bit word at 8: TTL and protocol.
            var changed = header
            let oldWord = UInt16(changed[8]) << 8 | UInt16(changed[9])
            let newWord = UInt16.random(in: 0...0xFFFF, using: &rng)
            changed[8] = UInt8(newWord >> 8); changed[9] = UInt8(newWord & 0xFF)
            let full = changed.withUnsafeBytes { InternetChecksum.ipv4Header($0) }
            #expect(InternetChecksum.updated(old, replacing: oldWord, with: newWord) == full)

            // 32-bit destination address.
            var moved = header
            let newAddress = UInt32.random(in: 0...UInt32.max, using: &rng)
            let oldAddress = UInt32(moved[16]) << 24 | UInt32(moved[17]) << 16 | UInt32(moved[18]) << 8 | UInt32(moved[19])
            moved.replaceSubrange(16..<20, with: be32(newAddress))
            let fullMoved = moved.withUnsafeBytes { InternetChecksum.ipv4Header($0) }
            #expect(InternetChecksum.updated(old, replacing: oldAddress, with: newAddress) == fullMoved)
        }
    }
}

// MARK: - Helpers (file-private: the test module is shared with the parser's tests)

/// RFC 1071 §1 taken literally: big-endian 16-bit words, odd octet padded, end-around carry.
private func referenceSum(_ bytes: [UInt8]) -> UInt16 {
    var sum: UInt32 = 0
    var i = 0
    while i < bytes.count {
        let high = UInt32(bytes[i]) << 8
        let low = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
        sum += high | low
        sum = (sum & 0xFFFF) + (sum >> 16)
        i += 2
    }
    return UInt16(sum)
}

private func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
private func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
private func bytes(_ a: IPAddress) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: a.high >> (56 - 8 * UInt64($0))) }
        + (0..<8).map { UInt8(truncatingIfNeeded: a.low >> (56 - 8 * UInt64($0))) }
}

/// Runs `body` over a copy of `data` that starts `offset` octets past an 8-aligned address.
private func withMisaligned(_ data: [UInt8], by offset: Int, _ body: (UnsafeRawBufferPointer) -> Void) {
    let storage = UnsafeMutableRawPointer.allocate(byteCount: data.count + 16, alignment: 8)
    defer { storage.deallocate() }
    data.withUnsafeBytes { src in
        if let base = src.baseAddress { (storage + offset).copyMemory(from: base, byteCount: data.count) }
    }
    body(UnsafeRawBufferPointer(start: storage + offset, count: data.count))
}

/// SplitMix64, so that the random cases are the same on every run.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
