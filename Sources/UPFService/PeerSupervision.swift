import UPFControl
import UPFPackets

/// Path supervision of the configured GTP-U peers (TS 29.281 §7.2.1; `gtpu.echo_peers`): an Echo
/// Request to each every `interval`; `misses` unanswered in a row make the peer down, an answer
/// makes it up again, each change a `peer_state` event. Runs on the control thread (driven by
/// `Dataplane.drainEvents`); the worker only sends what it is asked to and reports what comes
/// back, so no state of it is shared with the fast path.
struct PeerSupervision {
    struct Peer {
        let address: IPAddress
        let text: String
        let port: Int
        let portName: String
        var state = "unknown"
        /// Requests sent since the last answer.
        var unanswered = 0
        var lastSent: ContinuousClock.Instant?
        /// The last request is not answered yet.
        var outstanding = false
        var sent: UInt64 = 0
        var answered: UInt64 = 0
    }

    private(set) var peers: [Peer]
    let interval: Duration
    let misses: Int
    private var sequence: UInt16 = 0

    init(configuration: DataplaneConfiguration) {
        let gtpu = configuration.gtpu
        peers = gtpu.echoPeers.compactMap { peer in
            guard let address = IPAddress(peer.address), let port = configuration.portIndex(named: peer.port) else { return nil }
            return Peer(address: address, text: peer.address, port: port, portName: peer.port)
        }
        interval = .milliseconds(Int((gtpu.echoIntervalSeconds * 1000).rounded()))
        misses = gtpu.echoMisses
    }

    /// Sends the requests that are due through `send(port, peer, sequence)` (false: not sent,
    /// tried again next time) and publishes the peers that went down.
    mutating func tick(now: ContinuousClock.Instant, send: (Int, IPAddress, UInt16) -> Bool,
                       publish: (ControlEvent) -> Void) {
        for i in peers.indices {
            if let last = peers[i].lastSent, now - last < interval { continue }
            if peers[i].outstanding {
                // The previous request went unanswered for a whole interval.
                peers[i].unanswered += 1
                if peers[i].unanswered >= misses && peers[i].state != "down" {
                    peers[i].state = "down"
                    publish(event(peers[i]))
                }
            }
            sequence &+= 1
            guard send(peers[i].port, peers[i].address, sequence) else { continue }
            peers[i].sent += 1
            peers[i].lastSent = now
            peers[i].outstanding = true
        }
    }

    /// An Echo Response from `source`: the peer answers (any sequence number: a late answer
    /// still proves the path).
    mutating func answered(by source: IPAddress, publish: (ControlEvent) -> Void) {
        guard let i = peers.firstIndex(where: { $0.address == source }) else { return }
        peers[i].answered += 1
        peers[i].unanswered = 0
        peers[i].outstanding = false
        if peers[i].state != "up" {
            peers[i].state = "up"
            publish(event(peers[i]))
        }
    }

    private func event(_ peer: Peer) -> ControlEvent {
        ControlEvent.peerState(peer: peer.text, port: peer.portName, state: peer.state, unanswered: peer.unanswered)
    }
}
