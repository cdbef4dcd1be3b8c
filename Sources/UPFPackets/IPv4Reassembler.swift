/// Reassembles outer IPv4 datagrams from their fragments (RFC 791), bounded in the number of
/// datagrams held and in time, so GTP-U split by a transport network with a small MTU is read
/// whole and never parsed from a non-first fragment.
///
/// Memory is reserved once at creation (one 64 KiB buffer per slot); adding a fragment
/// allocates nothing. Overlapping fragments drop the whole datagram (RFC 5722's rule, applied to
/// IPv4 too: overlaps are an evasion technique, not something a transport network produces).
public final class IPv4Reassembler {
    public enum Outcome {
        /// Kept; the datagram is not complete yet.
        case held
        /// The whole datagram, starting with its IPv4 header; valid until the next call.
        case complete(UnsafeRawBufferPointer)
        case dropped(DropReason)
    }

    private struct Key: Equatable {
        var source: UInt32
        var destination: UInt32
        var identification: UInt16
        var proto: UInt8
    }

    private struct Slot {
        var inUse = false
        var key = Key(source: 0, destination: 0, identification: 0, proto: 0)
        /// Payload length once the last fragment (MF = 0) is known; -1 before.
        var payloadLength = -1
        var receivedBytes = 0
        var headerLength = 0
        var firstSeenNanos: UInt64 = 0
    }

    /// Room for the largest IPv4 header in front of the payload.
    private static let headerRoom = 60
    private static let maxPayload = 65535 - 20
    private static let blockCount = (maxPayload + 7) / 8
    private static let bitmapWords = (blockCount + 63) / 64

    private var slots: [Slot]
    private let buffers: UnsafeMutableRawPointer
    private let bitmaps: UnsafeMutablePointer<UInt64>
    private let slotBytes = headerRoom + maxPayload
    public let timeoutNanos: UInt64
    /// Datagrams given up on: timed out, or pushed out by newer ones while the table was full.
    public private(set) var evicted: UInt64 = 0

    public init(maxDatagrams: Int = 64, timeoutNanos: UInt64 = 2_000_000_000) {
        precondition(maxDatagrams > 0)
        self.slots = Array(repeating: Slot(), count: maxDatagrams)
        self.buffers = .allocate(byteCount: maxDatagrams * slotBytes, alignment: 64)
        self.bitmaps = .allocate(capacity: maxDatagrams * Self.bitmapWords)
        self.bitmaps.initialize(repeating: 0, count: maxDatagrams * Self.bitmapWords)
        self.timeoutNanos = timeoutNanos
    }

    deinit {
        buffers.deallocate()
        bitmaps.deallocate()
    }

    /// Datagrams currently incomplete.
    public var pending: Int { slots.reduce(0) { $0 + ($1.inUse ? 1 : 0) } }

    /// Adds the fragment that `packet` describes (a `.outerFragment` parse of `bytes`).
    public func add(_ bytes: PacketBytes, packet: ParsedPacket, nowNanos: UInt64) -> Outcome {
        let l3 = Int(packet.l3Offset)
        let headerLength = Int(bytes.u8(l3) & 0x0F) * 4
        let payloadStart = l3 + headerLength
        let payloadLength = Int(packet.l3End) - payloadStart
        let offset = Int(packet.fragmentOffset)
        guard offset + payloadLength <= Self.maxPayload else { return .dropped(.outerFragmentTooLarge) }
        // Every fragment but the last carries a multiple of 8 octets (RFC 791).
        guard !packet.moreFragments || payloadLength % 8 == 0, payloadLength > 0 || !packet.moreFragments else {
            return .dropped(.outerFragmentMisaligned)
        }
        let key = Key(source: packet.outerSource.ipv4, destination: packet.outerDestination.ipv4,
                      identification: packet.fragmentID, proto: packet.outerProtocol)
        let index = slotIndex(for: key, nowNanos: nowNanos)
        let bitmap = bitmaps + index * Self.bitmapWords
        let payloadBase = buffers + index * slotBytes + Self.headerRoom

        // Refuse overlaps before changing anything.
        let firstBlock = offset / 8
        let endBlock = (offset + payloadLength + 7) / 8
        for block in firstBlock..<endBlock where bitmap[block >> 6] & (1 << UInt64(block & 63)) != 0 {
            release(index)
            return .dropped(.outerFragmentOverlap)
        }
        if !packet.moreFragments {
            if slots[index].payloadLength >= 0 && slots[index].payloadLength != offset + payloadLength {
                release(index)
                return .dropped(.outerFragmentOverlap)
            }
            slots[index].payloadLength = offset + payloadLength
        }
        for block in firstBlock..<endBlock { bitmap[block >> 6] |= 1 << UInt64(block & 63) }
        (payloadBase + offset).copyMemory(from: bytes.base + payloadStart, byteCount: payloadLength)
        slots[index].receivedBytes += payloadLength
        if offset == 0 {
            // The first fragment's header (with its options) becomes the datagram's header.
            slots[index].headerLength = headerLength
            (payloadBase - headerLength).copyMemory(from: bytes.base + l3, byteCount: headerLength)
        }
        let slot = slots[index]
        guard slot.payloadLength >= 0, slot.headerLength > 0, slot.receivedBytes == slot.payloadLength else {
            return .held
        }
        let header = payloadBase - slot.headerLength
        let totalLength = slot.headerLength + slot.payloadLength
        header.storeBigEndian(UInt16(totalLength), toByteOffset: 2)
        header.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
        header.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
        let checksum = InternetChecksum.ipv4Header(UnsafeRawBufferPointer(start: header, count: slot.headerLength))
        header.storeBigEndian(checksum, toByteOffset: 10)
        release(index)
        return .complete(UnsafeRawBufferPointer(start: header, count: totalLength))
    }

    /// Gives up on every incomplete datagram (end of a capture, or shutdown).
    public func flush() {
        for index in slots.indices where slots[index].inUse {
            evicted += 1
            release(index)
        }
    }

    private func slotIndex(for key: Key, nowNanos: UInt64) -> Int {
        var free = -1
        var oldest = 0
        for index in slots.indices {
            if slots[index].inUse {
                if slots[index].key == key { return index }
                if nowNanos &- slots[index].firstSeenNanos > timeoutNanos {
                    evicted += 1
                    release(index)
                } else if slots[index].firstSeenNanos < slots[oldest].firstSeenNanos || !slots[oldest].inUse {
                    oldest = index
                }
            }
            if !slots[index].inUse && free < 0 { free = index }
        }
        if free < 0 {
            evicted += 1
            release(oldest)
            free = oldest
        }
        slots[free] = Slot(inUse: true, key: key, payloadLength: -1, receivedBytes: 0, headerLength: 0,
                           firstSeenNanos: nowNanos)
        return free
    }

    private func release(_ index: Int) {
        slots[index].inUse = false
        (bitmaps + index * Self.bitmapWords).update(repeating: 0, count: Self.bitmapWords)
    }
}
