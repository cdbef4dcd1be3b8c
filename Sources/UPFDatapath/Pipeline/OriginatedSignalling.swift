import UPFPackets

/// GTP-U messages the service originates when the control thread asks (through a worker's
/// request queue, never per packet): End Markers on a session's old path, Echo Requests to
/// supervised peers. Each writes a whole frame (Ethernet to the port's next hop) and returns
/// its length; 0 when it cannot be sent (no next-hop MAC, no local address of the peer's family,
/// too little room), counted as `signalling_unsent`.
extension PacketProcessor {
    /// End Marker (TS 29.281 §7.3.2) on tunnel `teid` to `peer`, from `source` when it is of the
    /// peer's family, else from the N3 port's address of that family; sent on the N3 port.
    public func writeEndMarker(teid: UInt32, peer: IPAddress, source: IPAddress, into frame: UnsafeMutableRawPointer,
                               capacity: Int) -> Int {
        let from = source != .zero && source.isIPv4 == peer.isIPv4 ? source : ports[n3].address(towards: peer)
        let length = writeSignalling(port: n3, source: from, peer: peer, into: frame, capacity: capacity) { outer, buffer throws(PacketBuildError) in
            try GTPUMessageBuilder.endMarker(teid: teid, outer: outer, into: buffer)
        }
        if length > 0 { counters.count(LocalCounter.endMarkerSent) }
        return length
    }

    /// Echo Request (§7.2.1) with `sequence` to `peer`, from port `port`'s address of its family.
    public func writeEchoRequest(sequence: UInt16, peer: IPAddress, port: Int, into frame: UnsafeMutableRawPointer,
                                 capacity: Int) -> Int {
        guard port >= 0 && port < portCount else {
            counters.count(LocalCounter.signallingUnsent)
            return 0
        }
        let length = writeSignalling(port: port, source: ports[port].address(towards: peer), peer: peer, into: frame,
                                     capacity: capacity) { outer, buffer throws(PacketBuildError) in
            try GTPUMessageBuilder.echoRequest(sequence: sequence, outer: outer, into: buffer)
        }
        if length > 0 { counters.count(LocalCounter.echoRequestSent) }
        return length
    }

    private func writeSignalling(port: Int, source: IPAddress?, peer: IPAddress, into frame: UnsafeMutableRawPointer,
                                 capacity: Int,
                                 _ build: (GTPUOuterHeader, UnsafeMutableRawBufferPointer) throws(PacketBuildError) -> Int) -> Int {
        guard let mac = nextHop(port), let source, let outer = GTPUOuterHeader(source: source, destination: peer),
              capacity > 14,
              let n = try? build(outer, UnsafeMutableRawBufferPointer(start: frame + 14, count: capacity - 14))
        else {
            counters.count(LocalCounter.signallingUnsent)
            return 0
        }
        PacketProcessor.writeEthernet(at: frame, destination: mac, source: ports[port].mac,
                                      etherType: peer.isIPv4 ? EtherType.ipv4 : EtherType.ipv6)
        return 14 + n
    }
}
