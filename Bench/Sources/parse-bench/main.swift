// parse-bench: the UPFPackets parser against a C reference doing the same work.
//
//   parse-bench [--frames N] [--rounds R] [--round-packets N] [--seed S] [--dump-pcap FILE]
//       Builds the frame mix (Frames.swift), checks that Swift and C give identical results on
//       every frame, then times R rounds of each parser over the same frames (the order
//       alternates) and prints the best ns/packet of each and the ratio Swift/C.
//   parse-bench --only swift|c --packets N [--frames N] [--seed S]
//       Parses N packets with one parser and nothing else (for callgrind: run twice with two
//       values of N and take the difference, so start-up cost cancels).
//   parse-bench --check FILE...
//       Compares the two parsers on files of one frame each (capture frames, fuzz corpus), read
//       as Ethernet, Linux SLL, SLL2 and raw IP, with default and non-default options.
#if canImport(Glibc)
import Glibc
#endif
import CReferenceParser
import UPFPackets

// MARK: - arguments

/// Writes to standard error (stderr itself is shared mutable state to Swift 6).
func warn(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

struct Arguments {
    var only: String?
    var packets = 0
    var frames = 1024
    var rounds = 7
    var roundPackets = 2_000_000
    var seed: UInt64 = 0x5EED_0001
    var dumpPcap: String?
    var checkFiles: [String] = []
}

func usage() -> Never {
    warn("usage: parse-bench [--frames N] [--rounds R] [--round-packets N] [--seed S] [--dump-pcap FILE]\n"
        + "       parse-bench --only swift|c --packets N [--frames N] [--seed S]\n"
        + "       parse-bench --check FILE...\n")
    exit(2)
}

func parseArguments() -> Arguments {
    var a = Arguments()
    var it = CommandLine.arguments.dropFirst().makeIterator()
    func number(_ flag: String) -> Int {
        guard let text = it.next(), let n = Int(text.replacingOccurrences(of: "_", with: "")), n >= 0 else {
            warn("parse-bench: \(flag) needs a number\n"); usage()
        }
        return n
    }
    while let arg = it.next() {
        switch arg {
        case "--only":
            guard let v = it.next(), v == "swift" || v == "c" else { usage() }
            a.only = v
        case "--packets": a.packets = number(arg)
        case "--frames": a.frames = max(1, number(arg))
        case "--rounds": a.rounds = max(1, number(arg))
        case "--round-packets": a.roundPackets = max(1, number(arg))
        case "--seed": a.seed = UInt64(number(arg))
        case "--dump-pcap":
            guard let v = it.next() else { usage() }
            a.dumpPcap = v
        case "--check":
            // Every remaining argument is a file holding one frame.
            while let file = it.next() { a.checkFiles.append(file) }
        case "-h", "--help": usage()
        default: warn("parse-bench: unknown argument \(arg)\n"); usage()
        }
    }
    return a
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

// MARK: - the measured loops (identical but for the parse call)

@inline(never)
func runSwift(_ frames: UnsafePointer<FrameSet.Ref>, frameCount: Int, packets: Int) -> UInt64 {
    let options = ParserOptions()
    var packet = ParsedPacket()
    var sink: UInt64 = 0
    var i = 0
    for _ in 0..<packets {
        let frame = frames[i]
        i += 1
        if i == frameCount { i = 0 }
        if let reason = PacketParser.parse(PacketBytes(base: frame.base, count: frame.count), link: .ethernet,
                                           options: options, into: &packet) {
            sink &+= UInt64(reason.rawValue)
        } else {
            sink &+= UInt64(packet.teid ^ UInt32(packet.inner.destinationPort))
        }
    }
    return sink
}

@inline(never)
func runC(_ frames: UnsafePointer<FrameSet.Ref>, frameCount: Int, packets: Int) -> UInt64 {
    var options = cref_default_options()
    var packet = cref_packet()
    var sink: UInt64 = 0
    var i = 0
    for _ in 0..<packets {
        let frame = frames[i]
        i += 1
        if i == frameCount { i = 0 }
        let reason = cref_parse(frame.base.assumingMemoryBound(to: UInt8.self), frame.count,
                                Int32(CREF_LINK_ETHERNET.rawValue), &options, &packet)
        if reason != 0 {
            sink &+= UInt64(reason)
        } else {
            sink &+= UInt64(packet.teid ^ UInt32(packet.inner.destination_port))
        }
    }
    return sink
}

func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

// MARK: - agreement of the two parsers

func fields(_ p: ParsedPacket) -> [(String, UInt64)] {
    [("kind", UInt64(p.kind.rawValue)), ("etherType", UInt64(p.etherType)), ("vlanCount", UInt64(p.vlanCount)),
     ("outerVLAN", UInt64(p.outerVLAN)), ("l3Offset", UInt64(p.l3Offset)), ("outerVersion", UInt64(p.outerVersion)),
     ("outerProtocol", UInt64(p.outerProtocol)), ("outerSource.high", p.outerSource.high),
     ("outerSource.low", p.outerSource.low), ("outerDestination.high", p.outerDestination.high),
     ("outerDestination.low", p.outerDestination.low), ("outerTrafficClass", UInt64(p.outerTrafficClass)),
     ("l3End", UInt64(p.l3End)), ("l4Offset", UInt64(p.l4Offset)), ("udpSourcePort", UInt64(p.udpSourcePort)),
     ("udpDestinationPort", UInt64(p.udpDestinationPort)), ("fragmentID", UInt64(p.fragmentID)),
     ("fragmentOffset", UInt64(p.fragmentOffset)), ("moreFragments", p.moreFragments ? 1 : 0),
     ("gtpOffset", UInt64(p.gtpOffset)), ("gtpFlags", UInt64(p.gtpFlags)), ("messageType", UInt64(p.messageType)),
     ("teid", UInt64(p.teid)), ("sequenceNumber", UInt64(p.sequenceNumber)), ("nPDUNumber", UInt64(p.nPDUNumber)),
     ("extensionCount", UInt64(p.extensionCount)), ("skippedExtensionCount", UInt64(p.skippedExtensionCount)),
     ("psc.present", p.psc.present ? 1 : 0), ("psc.pduType", UInt64(p.psc.pduType)), ("psc.qfi", UInt64(p.psc.qfi)),
     ("psc.rqi", p.psc.rqi ? 1 : 0), ("psc.ppp", p.psc.ppp ? 1 : 0), ("psc.ppi", UInt64(p.psc.ppi)),
     ("hasUDPPortExtension", p.hasUDPPortExtension ? 1 : 0), ("udpPortExtension", UInt64(p.udpPortExtension)),
     ("hasPDCPNumber", p.hasPDCPNumber ? 1 : 0), ("pdcpNumber", UInt64(p.pdcpNumber)),
     ("payloadOffset", UInt64(p.payloadOffset)), ("payloadEnd", UInt64(p.payloadEnd)),
     ("hasRecovery", p.hasRecovery ? 1 : 0), ("recoveryCounter", UInt64(p.recoveryCounter)),
     ("hasTEIDDataI", p.hasTEIDDataI ? 1 : 0), ("teidDataI", UInt64(p.teidDataI)),
     ("hasGSNAddress", p.hasGSNAddress ? 1 : 0), ("gsnAddress.high", p.gsnAddress.high),
     ("gsnAddress.low", p.gsnAddress.low), ("inner.version", UInt64(p.inner.version)),
     ("inner.source.high", p.inner.source.high), ("inner.source.low", p.inner.source.low),
     ("inner.destination.high", p.inner.destination.high), ("inner.destination.low", p.inner.destination.low),
     ("inner.proto", UInt64(p.inner.proto)), ("inner.sourcePort", UInt64(p.inner.sourcePort)),
     ("inner.destinationPort", UInt64(p.inner.destinationPort)), ("inner.trafficClass", UInt64(p.inner.trafficClass)),
     ("inner.hasPorts", p.inner.hasPorts ? 1 : 0), ("inner.isFragment", p.inner.isFragment ? 1 : 0),
     ("innerL4Offset", UInt64(p.innerL4Offset))]
}

func fields(_ p: cref_packet) -> [(String, UInt64)] {
    [("kind", UInt64(p.kind)), ("etherType", UInt64(p.ether_type)), ("vlanCount", UInt64(p.vlan_count)),
     ("outerVLAN", UInt64(p.outer_vlan)), ("l3Offset", UInt64(p.l3_offset)), ("outerVersion", UInt64(p.outer_version)),
     ("outerProtocol", UInt64(p.outer_protocol)), ("outerSource.high", p.outer_source.high),
     ("outerSource.low", p.outer_source.low), ("outerDestination.high", p.outer_destination.high),
     ("outerDestination.low", p.outer_destination.low), ("outerTrafficClass", UInt64(p.outer_traffic_class)),
     ("l3End", UInt64(p.l3_end)), ("l4Offset", UInt64(p.l4_offset)), ("udpSourcePort", UInt64(p.udp_source_port)),
     ("udpDestinationPort", UInt64(p.udp_destination_port)), ("fragmentID", UInt64(p.fragment_id)),
     ("fragmentOffset", UInt64(p.fragment_offset)), ("moreFragments", p.more_fragments ? 1 : 0),
     ("gtpOffset", UInt64(p.gtp_offset)), ("gtpFlags", UInt64(p.gtp_flags)), ("messageType", UInt64(p.message_type)),
     ("teid", UInt64(p.teid)), ("sequenceNumber", UInt64(p.sequence_number)), ("nPDUNumber", UInt64(p.n_pdu_number)),
     ("extensionCount", UInt64(p.extension_count)), ("skippedExtensionCount", UInt64(p.skipped_extension_count)),
     ("psc.present", p.psc.present ? 1 : 0), ("psc.pduType", UInt64(p.psc.pdu_type)), ("psc.qfi", UInt64(p.psc.qfi)),
     ("psc.rqi", p.psc.rqi ? 1 : 0), ("psc.ppp", p.psc.ppp ? 1 : 0), ("psc.ppi", UInt64(p.psc.ppi)),
     ("hasUDPPortExtension", p.has_udp_port_extension ? 1 : 0), ("udpPortExtension", UInt64(p.udp_port_extension)),
     ("hasPDCPNumber", p.has_pdcp_number ? 1 : 0), ("pdcpNumber", UInt64(p.pdcp_number)),
     ("payloadOffset", UInt64(p.payload_offset)), ("payloadEnd", UInt64(p.payload_end)),
     ("hasRecovery", p.has_recovery ? 1 : 0), ("recoveryCounter", UInt64(p.recovery_counter)),
     ("hasTEIDDataI", p.has_teid_data_i ? 1 : 0), ("teidDataI", UInt64(p.teid_data_i)),
     ("hasGSNAddress", p.has_gsn_address ? 1 : 0), ("gsnAddress.high", p.gsn_address.high),
     ("gsnAddress.low", p.gsn_address.low), ("inner.version", UInt64(p.inner.version)),
     ("inner.source.high", p.inner.source.high), ("inner.source.low", p.inner.source.low),
     ("inner.destination.high", p.inner.destination.high), ("inner.destination.low", p.inner.destination.low),
     ("inner.proto", UInt64(p.inner.proto)), ("inner.sourcePort", UInt64(p.inner.source_port)),
     ("inner.destinationPort", UInt64(p.inner.destination_port)), ("inner.trafficClass", UInt64(p.inner.traffic_class)),
     ("inner.hasPorts", p.inner.has_ports ? 1 : 0), ("inner.isFragment", p.inner.is_fragment ? 1 : 0),
     ("innerL4Offset", UInt64(p.inner_l4_offset))]
}

/// FNV-1a over the values.
func digest(_ values: [(String, UInt64)], into hash: inout UInt64) {
    for (_, v) in values {
        for shift in stride(from: 0, to: 64, by: 8) {
            hash = (hash ^ (v >> UInt64(shift) & 0xFF)) &* 0x100_0000_01B3
        }
    }
}

func hex(_ frame: FrameSet.Ref) -> String {
    let bytes = UnsafeRawBufferPointer(start: frame.base, count: min(frame.count, 96))
    return bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

/// The names behind the raw values must be the same on both sides.
func checkNumbering() -> Bool {
    var ok = true
    for reason in DropReason.allCases {
        let cName = cref_drop_name(Int32(reason.rawValue)).map { String(cString: $0) }
        if cName != reason.name {
            warn("numbering: DropReason \(reason.rawValue) is \(reason.name) in Swift, \(cName ?? "nil") in C\n")
            ok = false
        }
    }
    for raw in UInt8(0)...UInt8(CREF_KIND_COUNT.rawValue - 1) {
        let swiftName = PacketKind(rawValue: raw)?.name
        let cName = cref_kind_name(Int32(raw)).map { String(cString: $0) }
        // Swift reports `arp` as "arp" in `name`; the C table uses the same labels.
        if swiftName != cName {
            warn("numbering: PacketKind \(raw) is \(swiftName ?? "nil") in Swift, \(cName ?? "nil") in C\n")
            ok = false
        }
    }
    return ok
}

/// Parses one frame with both parsers; returns the differing fields (empty when identical).
func compareOne(_ base: UnsafeRawPointer, _ count: Int, link: LinkLayer, cLink: Int32, options: ParserOptions,
                cOptions: cref_options) -> [String] {
    var packet = ParsedPacket()
    let swiftReason = PacketParser.parse(PacketBytes(base: base, count: count), link: link, options: options, into: &packet)
    var cPacket = cref_packet()
    var cOptions = cOptions
    let cReason = cref_parse(base.assumingMemoryBound(to: UInt8.self), count, cLink, &cOptions, &cPacket)
    let s = [("reason", UInt64(swiftReason?.rawValue ?? 0))] + fields(packet)
    let c = [("reason", UInt64(cReason))] + fields(cPacket)
    return zip(s, c).filter { $0.0.1 != $0.1.1 }.map { "\($0.0.0) swift=\($0.0.1) c=\($0.1.1)" }
}

/// Compares the parsers on frames stored one per file, for every link type and two option sets.
func check(files: [String]) -> Bool {
    guard checkNumbering() else { return false }
    let links: [(LinkLayer, Int32, String)] = [
        (.ethernet, Int32(CREF_LINK_ETHERNET.rawValue), "ethernet"), (.linuxSLL, Int32(CREF_LINK_SLL.rawValue), "sll"),
        (.linuxSLL2, Int32(CREF_LINK_SLL2.rawValue), "sll2"), (.rawIP, Int32(CREF_LINK_RAW_IP.rawValue), "raw"),
    ]
    var other = ParserOptions()
    other.direction = .uplink
    other.verifyInnerIPv4Checksum = false
    var cOther = cref_default_options()
    cOther.direction = UInt8(CREF_DIRECTION_UPLINK.rawValue)
    cOther.verify_inner_ipv4_checksum = false
    let optionSets = [(ParserOptions(), cref_default_options()), (other, cOther)]
    var compared = 0, differing = 0
    for path in files {
        guard let file = fopen(path, "rb") else { warn("parse-bench: cannot read \(path)\n"); return false }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        fclose(file)
        // An exact-size heap copy, as the fuzzer does.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        defer { buffer.deallocate() }
        bytes.withUnsafeBytes { if $0.count > 0 { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        for (link, cLink, linkName) in links {
            for (index, (options, cOptions)) in optionSets.enumerated() {
                compared += 1
                let diff = compareOne(UnsafeRawPointer(buffer), bytes.count, link: link, cLink: cLink,
                                      options: options, cOptions: cOptions)
                if !diff.isEmpty {
                    differing += 1
                    if differing <= 10 {
                        warn("MISMATCH \(path) as \(linkName), options \(index): \(diff.joined(separator: ", "))\n")
                    }
                }
            }
        }
    }
    print("check: \(files.count) files, \(compared) parses per parser, \(differing) differ")
    return differing == 0
}

/// Parses every frame with both parsers and compares every field; prints the mix and the digests.
func verify(_ frames: FrameSet) -> Bool {
    guard checkNumbering() else { return false }
    var cOptions = cref_default_options()
    var swiftHash: UInt64 = 0xCBF2_9CE4_8422_2325
    var cHash: UInt64 = 0xCBF2_9CE4_8422_2325
    var mismatches = 0
    var outcomes: [String: Int] = [:]
    for i in 0..<frames.count {
        let frame = frames.refs[i]
        var packet = ParsedPacket()
        let swiftReason = PacketParser.parse(PacketBytes(base: frame.base, count: frame.count), into: &packet)
        var cPacket = cref_packet()
        let cReason = cref_parse(frame.base.assumingMemoryBound(to: UInt8.self), frame.count,
                                 Int32(CREF_LINK_ETHERNET.rawValue), &cOptions, &cPacket)
        let s = [("reason", UInt64(swiftReason?.rawValue ?? 0))] + fields(packet)
        let c = [("reason", UInt64(cReason))] + fields(cPacket)
        digest(s, into: &swiftHash)
        digest(c, into: &cHash)
        let differing = zip(s, c).filter { $0.0.1 != $0.1.1 }
        if !differing.isEmpty {
            mismatches += 1
            if mismatches <= 5 {
                let detail = differing.map { "\($0.0.0) swift=\($0.0.1) c=\($0.1.1)" }.joined(separator: ", ")
                warn("MISMATCH frame \(i) (\(frames.categories[i].name)): \(detail)\n  bytes: \(hex(frame))\n")
            }
        }
        let label = swiftReason.map { "drop \($0.name)" } ?? packet.kind.name
        outcomes[label, default: 0] += 1
    }
    var perCategory = [Int](repeating: 0, count: Category.allCases.count)
    for c in frames.categories { perCategory[c.rawValue] += 1 }
    print("mix: \(frames.count) frames: " + Category.allCases.map { "\(perCategory[$0.rawValue]) \($0.name)" }.joined(separator: ", "))
    print("outcomes: " + outcomes.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    let hexHash = { (h: UInt64) in "0x" + String(h, radix: 16) }
    if mismatches == 0 && swiftHash == cHash {
        print("agreement: all \(frames.count) frames identical (result digest \(hexHash(swiftHash)) in both)")
        return true
    }
    print("agreement: FAILED, \(mismatches) frames differ (digest swift \(hexHash(swiftHash)), c \(hexHash(cHash)))")
    return false
}

// MARK: - main

let args = parseArguments()
if !args.checkFiles.isEmpty {
    exit(check(files: args.checkFiles) ? 0 : 1)
}
let frames = FrameSet(count: args.frames, seed: args.seed)

if let only = args.only {
    let sink = only == "swift"
        ? runSwift(frames.refs, frameCount: frames.count, packets: args.packets)
        : runC(frames.refs, frameCount: frames.count, packets: args.packets)
    print("only=\(only) packets=\(args.packets) sink=\(sink)")
    exit(0)
}

if let path = args.dumpPcap {
    guard frames.writePcap(to: path) else { warn("parse-bench: cannot write \(path)\n"); exit(1) }
    print("wrote \(frames.count) frames to \(path)")
}

guard verify(frames) else { exit(1) }

// Warm up both, then rounds alternating which parser goes first.
var sinks = (runSwift(frames.refs, frameCount: frames.count, packets: args.roundPackets / 4),
             runC(frames.refs, frameCount: frames.count, packets: args.roundPackets / 4))
var bestSwift = Double.infinity, bestC = Double.infinity
var ratios: [Double] = []
var perRound: [String] = []
for round in 0..<args.rounds {
    var swiftNs = 0.0, cNs = 0.0
    for step in 0..<2 {
        let swiftTurn = (round + step) % 2 == 0
        let start = nowNanos()
        if swiftTurn {
            sinks.0 &+= runSwift(frames.refs, frameCount: frames.count, packets: args.roundPackets)
        } else {
            sinks.1 &+= runC(frames.refs, frameCount: frames.count, packets: args.roundPackets)
        }
        let perPacket = Double(nowNanos() - start) / Double(args.roundPackets)
        if swiftTurn { swiftNs = perPacket } else { cNs = perPacket }
    }
    bestSwift = min(bestSwift, swiftNs)
    bestC = min(bestC, cNs)
    ratios.append(swiftNs / cNs)
    perRound.append("\(fmt(swiftNs, 1))/\(fmt(cNs, 1))")
}
guard sinks.0 == sinks.1 else {
    print("sinks differ: swift \(sinks.0), c \(sinks.1)")
    exit(1)
}
ratios.sort()
print("rounds (swift/c ns): " + perRound.joined(separator: " "))
func fmt(_ x: Double, _ digits: Int = 2) -> String {
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let v = (x * p).rounded() / p
    var s = String(v)
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
    }
    return s
}
print("ns/packet (best of \(args.rounds) rounds x \(args.roundPackets) packets): swift \(fmt(bestSwift)) c \(fmt(bestC)) ratio \(fmt(bestSwift / bestC)) (median per-round ratio \(fmt(ratios[ratios.count / 2])))")
