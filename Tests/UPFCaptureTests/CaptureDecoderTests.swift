import Foundation
import Testing
import UPFCapture
import UPFPackets

/// The capture layer on the bundled sample (made by scapy, tools/make-sample-capture.py) and on
/// files written by PcapWriter.
@Suite struct CaptureDecoderTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let sample = packageRoot.appendingPathComponent("Configs/captures/n3-sample.pcap").path

    func decodeAll(_ path: String) throws -> (frames: [DecodedFrame], decoder: CaptureDecoder) {
        let decoder = try CaptureDecoder(path: path)
        var frames: [DecodedFrame] = []
        while let frame = try decoder.next() { frames.append(frame) }
        return (frames, decoder)
    }

    @Test func bundledSampleDecodesAsBuilt() throws {
        let (frames, decoder) = try decodeAll(Self.sample)
        #expect(frames.map(\.kindName) == [
            "gpdu", "gpdu", "gpdu", "gpdu", "gpdu", "echo_request", "echo_response", "error_indication",
            "end_marker", "drop", "non_gtp", "non_gtp", "fragment", "gpdu",
        ])
        #expect(frames[0].jsonLine == #"{"frame":1,"kind":"gpdu","teid":256,"qfi":9,"inner":{"version":4,"src":"10.60.0.7","dst":"10.200.0.10","proto":6,"sport":40001,"dport":8080}}"#)
        #expect(frames[3].jsonLine == #"{"frame":4,"kind":"gpdu","teid":258,"qfi":5,"inner":{"version":6,"src":"2001:db8:60::7","dst":"2001:db8:200::10","proto":17,"sport":40000,"dport":443}}"#)
        #expect(frames[2].jsonLine == #"{"frame":3,"kind":"gpdu","teid":257,"inner":{"version":4,"src":"10.60.0.8","dst":"198.51.100.20","proto":1}}"#)
        #expect(frames[9].jsonLine == #"{"frame":10,"kind":"drop","reason":"gtp_extension_zero_length"}"#)
        #expect(frames[10].jsonLine == #"{"frame":11,"kind":"non_gtp"}"#)
        #expect(frames[12].jsonLine == #"{"frame":13,"kind":"fragment"}"#)
        // The reassembled datagram is reported on the frame that completes it.
        #expect(frames[13].jsonLine.hasPrefix(#"{"frame":14,"kind":"gpdu","teid":256,"inner""#))
        #expect(decoder.drops[.gtpExtensionZeroLength] == 1 && decoder.drops.total == 1)
        #expect(decoder.frames == 14)
    }

    @Test func writerOutputReadsBackFrameForFrame() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("upfd-writer-\(UUID()).pcap").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let source = try PcapReader(path: Self.sample)
        var originals: [[UInt8]] = []
        do {
            let writer = try PcapWriter(path: path)
            while let frame = try source.next() {
                originals.append(Array(frame.bytes))
                writer.write(frame.bytes, seconds: frame.timestampSeconds, microseconds: frame.timestampMicroseconds)
            }
        }
        let reader = try PcapReader(path: path)
        var copies: [[UInt8]] = []
        while let frame = try reader.next() { copies.append(Array(frame.bytes)) }
        #expect(copies == originals)
        #expect(reader.dataLinkType == CaptureLinkType.ethernet.rawValue)
    }

    @Test func missingAndDamagedFilesGiveClearErrors() throws {
        #expect(throws: CaptureError.self) { try CaptureDecoder(path: "/nonexistent/capture.pcap") }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("upfd-bad-\(UUID()).pcap").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("this is not a capture".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: CaptureError.self) { try CaptureDecoder(path: path) }
        // A valid header followed by a frame record that claims more bytes than the file holds.
        var truncated = Data(try Data(contentsOf: URL(fileURLWithPath: Self.sample)).prefix(24 + 16 + 10))
        truncated.append(contentsOf: [])
        try truncated.write(to: URL(fileURLWithPath: path))
        let decoder = try CaptureDecoder(path: path)
        #expect(throws: CaptureError.self) { while try decoder.next() != nil {} }
    }

    @Test func unsupportedLinkTypeIsNamed() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("upfd-link-\(UUID()).pcap").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        // pcap global header for link type 147 (user-defined).
        var header: [UInt8] = [0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 147, 0, 0, 0]
        header += []
        try Data(header).write(to: URL(fileURLWithPath: path))
        do {
            _ = try CaptureDecoder(path: path)
            Issue.record("expected an error")
        } catch let error as CaptureError {
            #expect(error.description.contains("link type 147"))
        }
    }
}
