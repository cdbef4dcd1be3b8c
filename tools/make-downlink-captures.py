#!/usr/bin/python3
"""Writes the bundled downlink captures the main job (tools/run) replays beside n3-sample.pcap:
Configs/captures/engine-answers.pcap (an inference engine answering UEs of
Configs/policy/edge-example.yaml) and Configs/captures/core-downlink.pcap (the data network, N6,
sending to UEs). Reproducible: fixed addresses and timestamps."""
import sys
from scapy.all import Ether, IP, IPv6, TCP, UDP, Raw, wrpcap

ENGINE_PORT_MAC = "02:00:00:00:50:01"   # what the engine sends to (any: ring ports are promiscuous)
LLM_MAC = "02:00:00:00:50:10"
CORE_GW_MAC = "02:00:00:00:02:01"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Configs/captures"
    answers = [
        # The LLM engine answers session 1's UE (rule 3: source engine -> N3, QFI 9).
        Ether(src=LLM_MAC, dst=ENGINE_PORT_MAC) / IP(src="10.200.0.10", dst="10.45.0.1")
        / TCP(sport=8080, dport=40001, flags="SA"),
        Ether(src=LLM_MAC, dst=ENGINE_PORT_MAC) / IP(src="10.200.0.10", dst="10.45.0.1")
        / TCP(sport=8080, dport=40001, flags="PA") / Raw(b'{"label": 7}'),
        # To a UE address no session has: dropped, counted as no_session_for_ue.
        Ether(src=LLM_MAC, dst=ENGINE_PORT_MAC) / IP(src="10.200.0.10", dst="10.99.0.1") / TCP(sport=8080, dport=1),
    ]
    downlink = [
        # N6 downlink to session 2 (rule 2: source core -> N3, QFI 5), IPv4 and IPv6.
        Ether(src=CORE_GW_MAC, dst="02:00:00:00:02:02") / IP(src="198.51.100.20", dst="10.45.0.2")
        / UDP(sport=53, dport=5353) / Raw(b"answer"),
        Ether(src=CORE_GW_MAC, dst="02:00:00:00:02:02") / IPv6(src="2001:db8:200::10", dst="2001:db8:45:2::7")
        / UDP(sport=443, dport=40000) / Raw(b"quic"),
        # UDP to port 2152 of a UE is user data, encapsulated like any other packet.
        Ether(src=CORE_GW_MAC, dst="02:00:00:00:02:02") / IP(src="198.51.100.20", dst="10.45.0.2")
        / UDP(sport=2152, dport=2152) / Raw(b"not gtp"),
    ]
    for frames, name, base in ((answers, "engine-answers.pcap", 1_700_000_001), (downlink, "core-downlink.pcap", 1_700_000_002)):
        for i, frame in enumerate(frames):
            frame.time = base + i * 0.001
        wrpcap(f"{out}/{name}", frames)
        print(f"wrote {len(frames)} frames to {out}/{name}")


if __name__ == "__main__":
    main()
