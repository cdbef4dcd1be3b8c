import Testing
import UPFPackets
@testable import UPFPolicy

@Suite struct IPPrefixTests {
    @Test func parsing() throws {
        let v4 = try #require(IPPrefix("10.0.0.0/8"))
        #expect(v4.isIPv4 && v4.familyLength == 8 && v4.length == 104 && v4.description == "10.0.0.0/8")
        #expect(v4.contains(IPAddress("10.255.1.2")!) && !v4.contains(IPAddress("11.0.0.1")!))
        #expect(!v4.contains(IPAddress("::a00:1")!))
        let host = try #require(IPPrefix("192.0.2.1"))
        #expect(host.familyLength == 32 && host == IPPrefix(host: IPAddress("192.0.2.1")!))
        let v6 = try #require(IPPrefix("2001:db8::/32"))
        #expect(!v6.isIPv4 && v6.familyLength == 32 && v6.description == "2001:db8::/32")
        #expect(IPPrefix("0.0.0.0/0")?.contains(IPAddress("1.2.3.4")!) == true)
        #expect(IPPrefix("0.0.0.0/0")?.contains(IPAddress("2001:db8::1")!) == false)
        #expect(IPPrefix("::/0")?.contains(IPAddress("2001:db8::1")!) == true)
        for bad in ["10.0.0.0/33", "10.0.0.1/8", "::1/129", "10.0.0.0/", "x/8", "10.0.0.0/08x", ""] {
            #expect(IPPrefix(bad) == nil, "\(bad)")
        }
        #expect(IPPrefix("2001:db8:1::/48")!.overlaps(IPPrefix("2001:db8:1:2::/64")!))
        #expect(!IPPrefix("2001:db8:1::/48")!.overlaps(IPPrefix("2001:db8:2::/64")!))
    }

    /// The one-pass IPv4 path of `IPPrefix.parse` accepts only what the general parser accepts,
    /// with the same result; everything else falls through to it (and its messages).
    @Test func ipv4FastPathAgreesWithTheGeneralParser() {
        var texts = ["10.0.0.0/8", "10.0.0.1/8", "192.0.2.1", "192.0.2.1/32", "0.0.0.0/0", "1.2.3.4/0", "0.0.0.0/00",
                     "10.0.0.0/008", "10.0.0.0/0008", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0//8", "/8", "10.0.0.0/8/8",
                     "10.0.0.0/8a", "10.0.0.0/-8", "10.0.0.0/+8", "01.0.0.0/8", "256.0.0.0/8", "1.2.3/24",
                     "::ffff:10.0.0.0/104", "2001:db8::/32", "10.0.0.0 /8", "10.0.0.0/ 8", "", "/", "1.2.3.4/255"]
        var generator = SystemRandomNumberGenerator()
        let pieces = ["0", "1", "9", "10", "99", "100", "255", "256", "01", "", ".", "/", ":", "a", "32", "33", "24"]
        for _ in 0..<5000 {
            texts.append((0..<Int.random(in: 1...9, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined())
            let address = UInt32.random(in: .min ... .max, using: &generator)
            let length = Int.random(in: 0...33, using: &generator)
            texts.append("\(IPAddress(ipv4: address))/\(length)")
            texts.append("\(IPAddress(ipv4: address & (length == 0 ? 0 : ~UInt32(0) << (32 - min(length, 32)))))/\(length)")
        }
        for text in texts {
            let general = try? IPPrefix.parseAny(text).get()
            let fast = text.utf8.withContiguousStorageIfAvailable(IPPrefix.parseIPv4Canonical) ?? nil
            if let fast { #expect(fast == general, "\(text)") }
            if let general, general.isIPv4, !text.contains(":") { #expect(fast == general, "fast path missed \(text)") }
            #expect((try? IPPrefix.parse(text).get()) == general, "\(text)")
        }
    }

    /// Dotted quads: four decimal octets, digits only, no leading zeros (also as an IPv6 tail).
    @Test func ipv4Text() {
        #expect(IPAddress("0.0.0.0") == IPAddress(ipv4: 0))
        #expect(IPAddress("255.255.255.255") == IPAddress(ipv4: .max))
        #expect(IPAddress("192.0.2.10") == IPAddress(ipv4: 0xC000_020A))
        #expect(IPAddress("::ffff:192.0.2.10") == IPAddress(ipv4: 0xC000_020A))
        for bad in ["256.0.0.1", "1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "01.2.3.4", "1.2.3.0004", "+1.2.3.4",
                    "-0.1.2.3", "1.2.3.4 ", "1.2.3.a", "１.2.3.4", ""] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }
}
