/// Why a builder wrote nothing. Builders check everything before the first store, so on error the
/// buffer is untouched. Typed throws keep this allocation-free: the error is a plain value.
public enum PacketBuildError: Error, Equatable, Sendable {
    /// The buffer holds `available` octets; the packet (or, for an encapsulation, the header plus
    /// the payload it must checksum) needs `required`.
    case bufferTooSmall(required: Int, available: Int)
    /// A length would not fit its field (IPv4 Total Length, IPv6 Payload Length, UDP Length, GTP-U
    /// Length are 16 bits; an IE count is 8 bits), or is negative.
    case lengthOutOfRange(length: Int, maximum: Int)
}
