// libFuzzer entry point for the UPFPackets parser.
//
// Every input is parsed as an Ethernet frame, as raw IP, and as Linux SLL v1/v2, with the
// default options and with a second option set chosen by the first byte (direction, checksum
// verification). Outer IPv4 fragments go through one long-lived IPv4Reassembler and complete
// datagrams are parsed again as raw IP. Results are folded into a global sink (and, now and then,
// rendered as text) so the optimiser cannot drop any of the work.
import UPFPackets

/// One reassembler for the whole run, so fragments of different inputs meet (as on a real port).
nonisolated(unsafe) private let reassembler = IPv4Reassembler(maxDatagrams: 8, timeoutNanos: 1_000_000)
nonisolated(unsafe) private var clock: UInt64 = 0
nonisolated(unsafe) private var sink: UInt64 = 0
nonisolated(unsafe) private var iterations: UInt64 = 0

@inline(never)
private func touch(_ packet: ParsedPacket, _ reason: DropReason?) {
    var h = sink
    h = h &* 31 &+ UInt64(packet.kind.rawValue)
    h = h &* 31 &+ UInt64(reason?.rawValue ?? 0)
    h = h &* 31 &+ UInt64(packet.teid) &+ UInt64(packet.messageType) &+ UInt64(packet.gtpFlags)
    h = h &* 31 &+ packet.outerSource.low &+ packet.outerDestination.high
    h = h &* 31 &+ packet.inner.source.low &+ packet.inner.destination.high
    h = h &* 31 &+ UInt64(packet.inner.sourcePort) &+ UInt64(packet.inner.destinationPort)
    h = h &* 31 &+ UInt64(packet.psc.qfi) &+ UInt64(packet.payloadOffset) &+ UInt64(packet.payloadEnd)
    h = h &* 31 &+ UInt64(packet.extensionCount) &+ UInt64(packet.pdcpNumber) &+ UInt64(packet.udpPortExtension)
    h = h &* 31 &+ packet.gsnAddress.low &+ UInt64(packet.teidDataI) &+ UInt64(packet.recoveryCounter)
    sink = h
    // Offsets must stay inside the bytes (checked by the caller) and the text forms must work.
    if reason == nil && (packet.kind == .gPDU || iterations & 63 == 0) {
        let text = packet.inner.source.description + packet.inner.destination.description
            + packet.outerSource.description + packet.gsnAddress.description
        sink &+= UInt64(text.utf8.count)
    }
    if let reason { sink &+= UInt64(reason.name.utf8.count) }
}

/// The parser's offsets must describe bytes that exist.
@inline(never)
private func checkOffsets(_ packet: ParsedPacket, count: Int) {
    precondition(Int(packet.l3Offset) <= count, "l3Offset past the end")
    precondition(Int(packet.l3End) <= count, "l3End past the end")
    if packet.kind != .nonGTP && packet.kind != .arp {
        precondition(Int(packet.l4Offset) <= count, "l4Offset past the end")
    }
    if packet.kind == .gPDU {
        precondition(packet.payloadOffset <= packet.payloadEnd, "payload offset after end")
        precondition(Int(packet.payloadEnd) <= count, "payloadEnd past the end")
        precondition(Int(packet.innerL4Offset) <= Int(packet.payloadEnd), "inner L4 offset past the payload")
    }
}

private func parseOne(_ bytes: PacketBytes, link: LinkLayer, options: ParserOptions, depth: Int) {
    var packet = ParsedPacket()
    let reason = PacketParser.parse(bytes, link: link, options: options, into: &packet)
    touch(packet, reason)
    guard reason == nil else { return }
    checkOffsets(packet, count: bytes.count)
    // The on-demand views read from the parser's offsets.
    if packet.kind == .arp, let arp = ARPPacket.read(bytes, at: Int(packet.l3Offset)) {
        sink &+= UInt64(arp.operation) &+ UInt64(arp.targetIP)
    }
    if packet.kind == .gPDU, packet.inner.proto == IPProtocol.icmp || packet.inner.proto == IPProtocol.icmpv6,
       let icmp = ICMPHeader.read(bytes, at: Int(packet.innerL4Offset), end: Int(packet.payloadEnd)) {
        sink &+= UInt64(icmp.type)
    }
    if packet.kind == .outerFragment && depth == 0 {
        clock &+= 1_000
        switch reassembler.add(bytes, packet: packet, nowNanos: clock) {
        case .held:
            sink &+= 1
        case .dropped(let why):
            sink &+= UInt64(why.rawValue)
        case .complete(let datagram):
            // The whole datagram starts with its IPv4 header: parse it as raw IP.
            parseOne(PacketBytes(datagram), link: .rawIP, options: options, depth: depth + 1)
        }
    }
}

// SwiftPM links every executable with `--defsym main=<Module>_main` (testable executables) and
// the frontend flag `-entry-point-function-name ParserFuzz_main`. With -parse-as-library no such
// symbol is emitted, so the link fails. Define it here and hand over to libFuzzer's own driver
// (exactly what libFuzzer's main() does). Built with plain swiftc, libFuzzer's main() is used and
// this function is simply unused.
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

@_cdecl("ParserFuzz_main")
public func parserFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzz(data, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    iterations &+= 1
    // Copy into an exact-size heap buffer so AddressSanitizer catches any read past the end.
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 1)
    defer { buffer.deallocate() }
    if size > 0 { buffer.baseAddress!.copyMemory(from: data, byteCount: size) }
    let bytes = PacketBytes(UnsafeRawBufferPointer(buffer))

    var other = ParserOptions()
    let selector = size > 0 ? data[0] : 0
    switch selector & 3 {
    case 0: other.direction = .uplink
    case 1: other.direction = .downlink
    case 2: other.verifyOuterIPv4Checksum = false; other.verifyInnerIPv4Checksum = false
    default: other.gtpPort = 2123 &+ UInt16(selector >> 2)
    }
    for link in [LinkLayer.ethernet, .rawIP, .linuxSLL, .linuxSLL2] {
        parseOne(bytes, link: link, options: ParserOptions(), depth: 0)
        parseOne(bytes, link: link, options: other, depth: 0)
    }
    // The Result-returning convenience API too.
    if case .success(let packet) = PacketParser.parse(UnsafeRawBufferPointer(buffer)) {
        sink &+= UInt64(packet.kind.rawValue)
    }
    if iterations % 100_000 == 0 { sink &+= UInt64(reassembler.pending) }
    return sink == 0x5EED_5EED_5EED_5EED ? 1 : 0
}
