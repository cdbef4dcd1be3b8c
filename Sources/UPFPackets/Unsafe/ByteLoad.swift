/// A read-only view over one packet's bytes: the one place where the parser touches raw memory.
///
/// The accessors do not check bounds themselves, so that the parser can check a whole header once
/// (`offset + headerLength <= count`) instead of once per field; every caller must have done that
/// check. Loads are unaligned because IP headers sit at 2 mod 4 behind Ethernet.
@frozen
public struct PacketBytes {
    public let base: UnsafeRawPointer
    public let count: Int

    @inlinable
    public init(base: UnsafeRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    @inlinable
    public init(_ buffer: UnsafeRawBufferPointer) {
        // An empty buffer may have a nil base; any non-nil pointer is fine since nothing is read.
        self.base = buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 0x10)!
        self.count = buffer.count
    }

    @inlinable @inline(__always)
    public func u8(_ offset: Int) -> UInt8 {
        base.load(fromByteOffset: offset, as: UInt8.self)
    }

    @inlinable @inline(__always)
    public func u16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable @inline(__always)
    public func u32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable @inline(__always)
    public func u64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A 16-octet IPv6 address at `offset`.
    @inlinable @inline(__always)
    public func ipv6Address(_ offset: Int) -> IPAddress {
        IPAddress(high: u64(offset), low: u64(offset + 8))
    }

    /// A 4-octet IPv4 address at `offset`, in the IPv4-mapped form.
    @inlinable @inline(__always)
    public func ipv4Address(_ offset: Int) -> IPAddress {
        IPAddress(ipv4: u32(offset))
    }
}
