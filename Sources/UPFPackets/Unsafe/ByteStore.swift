/// Big-endian stores into raw packet memory: the one place where the builders write bytes.
///
/// Like `PacketBytes` on the read side, these helpers do not check bounds: a builder checks the
/// whole header against its buffer once, then writes field by field. Stores are unaligned-safe
/// (`storeBytes(of:toByteOffset:as:)` has accepted any alignment since Swift 5.7, SE-0349), which
/// matters because headers behind a 14-byte Ethernet header sit at 2 mod 4.
extension UnsafeMutableRawPointer {
    /// Stores one octet at `offset`.
    @inlinable @inline(__always)
    public func storeByte(_ value: UInt8, toByteOffset offset: Int) {
        storeBytes(of: value, toByteOffset: offset, as: UInt8.self)
    }

    /// Stores `value` in network byte order at `offset` (any alignment).
    @inlinable @inline(__always)
    public func storeBigEndian(_ value: UInt16, toByteOffset offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    /// Stores `value` in network byte order at `offset` (any alignment).
    @inlinable @inline(__always)
    public func storeBigEndian(_ value: UInt32, toByteOffset offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }

    /// Stores `value` in network byte order at `offset` (any alignment). Two of these write an
    /// IPv6 address held as `IPAddress.high`/`low`.
    @inlinable @inline(__always)
    public func storeBigEndian(_ value: UInt64, toByteOffset offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self)
    }

    /// Stores a 16-octet address (`high` then `low`, each big-endian) at `offset`.
    @inlinable @inline(__always)
    public func storeIPv6Address(_ address: IPAddress, toByteOffset offset: Int) {
        storeBigEndian(address.high, toByteOffset: offset)
        storeBigEndian(address.low, toByteOffset: offset + 8)
    }
}
