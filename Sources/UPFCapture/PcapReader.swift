import CPcap

/// An error from libpcap, with its own message.
public struct CaptureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Link-layer types of captures (the LINKTYPE_ registry), as far as the data path reads them.
public enum CaptureLinkType: Int32, Sendable {
    case ethernet = 1
    case raw = 101
    case linuxSLL = 113
    case ipv4 = 228
    case ipv6 = 229
    case linuxSLL2 = 276
    /// DLT_RAW on some systems (OpenBSD numbering, also written by some tools).
    case rawAlternate = 12
    case rawAlternate14 = 14
}

/// One frame read from a capture: its bytes are valid until the next call to `next()`.
public struct CapturedFrame {
    /// 1-based, as tshark counts frames.
    public var number: Int
    public var bytes: UnsafeRawBufferPointer
    /// Length on the wire; larger than `bytes.count` when the capture cut the frame short.
    public var originalLength: Int
    public var timestampSeconds: Int
    public var timestampMicroseconds: Int
}

/// Reads pcap and pcapng files through libpcap, one frame at a time, without copying frames.
public final class PcapReader {
    private let handle: OpaquePointer
    private var frameNumber = 0
    /// DLT_ value libpcap reports for the file.
    public let dataLinkType: Int32

    public init(path: String) throws {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let handle = pcap_open_offline(path, &errorBuffer) else {
            let message = errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            // libpcap names the file itself in some messages ("FILE: No such file…"), not in others.
            throw CaptureError(message.hasPrefix(path) ? message : "\(path): \(message)")
        }
        self.handle = handle
        self.dataLinkType = pcap_datalink(handle)
    }

    deinit {
        pcap_close(handle)
    }

    /// The next frame, nil at the end of the file; throws on a damaged file.
    public func next() throws -> CapturedFrame? {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        let status = pcap_next_ex(handle, &header, &data)
        switch status {
        case 1:
            guard let header, let data else { throw CaptureError("libpcap returned a frame without data") }
            frameNumber += 1
            let h = header.pointee
            return CapturedFrame(number: frameNumber,
                                 bytes: UnsafeRawBufferPointer(start: data, count: Int(h.caplen)),
                                 originalLength: Int(h.len),
                                 timestampSeconds: Int(h.ts.tv_sec),
                                 timestampMicroseconds: Int(h.ts.tv_usec))
        case PCAP_ERROR_BREAK:
            return nil
        default:
            throw CaptureError("frame \(frameNumber + 1): \(String(cString: pcap_geterr(handle)))")
        }
    }
}

/// Writes Ethernet (or another link type's) frames to a pcap file through libpcap.
public final class PcapWriter {
    private let pcap: OpaquePointer
    private let dumper: OpaquePointer

    public init(path: String, linkType: CaptureLinkType = .ethernet, snapLength: Int32 = 65535) throws {
        guard let pcap = pcap_open_dead(linkType.rawValue, snapLength) else {
            throw CaptureError("pcap_open_dead failed")
        }
        guard let dumper = pcap_dump_open(pcap, path) else {
            let message = String(cString: pcap_geterr(pcap))
            pcap_close(pcap)
            throw CaptureError("\(path): \(message)")
        }
        self.pcap = pcap
        self.dumper = dumper
    }

    public func write(_ bytes: UnsafeRawBufferPointer, seconds: Int = 0, microseconds: Int = 0) {
        var header = pcap_pkthdr()
        header.ts.tv_sec = seconds
        header.ts.tv_usec = microseconds
        header.caplen = UInt32(bytes.count)
        header.len = UInt32(bytes.count)
        guard let base = bytes.baseAddress else { return }
        pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &header,
                  base.assumingMemoryBound(to: UInt8.self))
    }

    /// Writes buffered frames to the file (closing happens when the writer is released).
    public func flush() {
        _ = pcap_dump_flush(dumper)
    }

    deinit {
        pcap_dump_close(dumper)
        pcap_close(pcap)
    }
}
