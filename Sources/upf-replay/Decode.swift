import ArgumentParser
import UPFCapture
import UPFPackets

/// `upf-replay decode`: what the data path sees in a capture, one line per frame.
struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print what the data path sees in a pcap or pcapng capture, one line per frame.",
        discussion: """
            Reads Ethernet, Linux SLL/SLL2 and raw-IP captures. Outer IPv4 fragments are reassembled \
            (kind "fragment" marks a frame held until its datagram is whole; the datagram is reported \
            on the frame that completes it). A summary of kinds and drop reasons goes to standard error.
            """
    )

    enum Direction: String, ExpressibleByArgument, CaseIterable {
        case any, uplink, downlink
    }

    @Argument(help: "The capture file (pcap or pcapng).")
    var file: String

    @Flag(help: "One JSON object per line.")
    var json = false

    @Option(help: "PDU Session Container type to accept: any, uplink (N3 ingress) or downlink.")
    var direction: Direction = .any

    @Flag(help: "Skip the outer IPv4 header checksum (captures taken before checksum offload filled it).")
    var noOuterChecksum = false

    func run() throws {
        var options = ParserOptions()
        options.direction = switch direction {
        case .any: .any
        case .uplink: .uplink
        case .downlink: .downlink
        }
        options.verifyOuterIPv4Checksum = !noOuterChecksum
        let decoder: CaptureDecoder
        do {
            decoder = try CaptureDecoder(path: file, options: options)
        } catch let error as CaptureError {
            throw ValidationError(error.description)
        }
        while let frame = try decoder.next() {
            print(json ? frame.jsonLine : frame.textLine)
        }
        var summary = "\(decoder.frames) frames:"
        for (kind, count) in decoder.kinds.sorted(by: { $0.key < $1.key }) { summary += " \(kind)=\(count)" }
        for (reason, count) in decoder.drops.nonZero { summary += "\n  drop \(reason.name)=\(count)" }
        printToStandardError(summary)
    }
}
