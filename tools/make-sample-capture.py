#!/usr/bin/python3
"""Writes Configs/captures/n3-sample.pcap: a small, realistic N3 capture for the README's main
command and for tests. Built with scapy so that it is independent of the project's own builders.

Run: /usr/bin/python3 tools/make-sample-capture.py [OUTPUT]
"""
import sys

from scapy.all import ARP, Ether, ICMP, IP, IPv6, TCP, UDP, Raw, fragment, wrpcap
from scapy.contrib.gtp import (GTP_U_Header, GTPEchoRequest, GTPEchoResponse, GTPErrorIndication,
                               GTPPDUSessionContainer, IE_GSNAddress, IE_Recovery, IE_TEIDI)

GNB, UPF = "192.0.2.10", "192.0.2.1"
GNB_MAC, UPF_MAC = "02:00:00:00:00:0a", "02:00:00:00:00:01"
UE4, UE6 = "10.60.0.7", "2001:db8:60::7"
ENGINE, INTERNET = "10.200.0.10", "198.51.100.20"


def n3(gtp, src=GNB, dst=UPF, sport=2152):
    return Ether(src=GNB_MAC, dst=UPF_MAC) / IP(src=src, dst=dst) / UDP(sport=sport, dport=2152) / gtp


def uplink_psc(qfi):
    return GTPPDUSessionContainer(type=1, QFI=qfi)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Configs/captures/n3-sample.pcap"
    frames = [
        # Uplink to a co-located inference engine: TCP with a UL PDU Session Container, QFI 9.
        n3(GTP_U_Header(teid=0x100, E=1, next_ex=0x85) / uplink_psc(9)
           / IP(src=UE4, dst=ENGINE) / TCP(sport=40001, dport=8080, flags="S")),
        # Uplink towards the internet, no extension header.
        n3(GTP_U_Header(teid=0x100) / IP(src=UE4, dst=INTERNET) / UDP(sport=5353, dport=53) / Raw(b"\x12\x34" + b"\x00" * 10)),
        # Uplink ICMP with sequence number set (flags 0x32).
        n3(GTP_U_Header(teid=0x101, S=1, seq=7) / IP(src="10.60.0.8", dst=INTERNET) / ICMP()),
        # Inner IPv6 over IPv4.
        n3(GTP_U_Header(teid=0x102, E=1, next_ex=0x85) / uplink_psc(5)
           / IPv6(src=UE6, dst="2001:db8:200::10") / UDP(sport=40000, dport=443) / Raw(b"quic")),
        # Downlink towards the gNB with a DL PDU Session Container (QFI 9).
        Ether(src=UPF_MAC, dst=GNB_MAC) / IP(src=UPF, dst=GNB) / UDP(sport=2152, dport=2152)
        / GTP_U_Header(teid=0x9100, E=1, next_ex=0x85) / GTPPDUSessionContainer(type=0, QFI=9)
        / IP(src=ENGINE, dst=UE4) / TCP(sport=8080, dport=40001, flags="SA"),
        # Path management and error handling.
        n3(GTP_U_Header(teid=0, S=1, seq=0x2A) / GTPEchoRequest()),
        Ether(src=UPF_MAC, dst=GNB_MAC) / IP(src=UPF, dst=GNB) / UDP(sport=2152, dport=2152)
        / GTP_U_Header(teid=0, S=1, seq=0x2A) / GTPEchoResponse(IE_list=[IE_Recovery(restart_counter=0)]),
        n3(GTP_U_Header(teid=0, S=1) / GTPErrorIndication(IE_list=[IE_TEIDI(TEIDI=0xDEAD), IE_GSNAddress(length=4, ipv4_address=GNB)])),
        n3(GTP_U_Header(teid=0x100, gtp_type=254)),
        # A bad input: an extension header of length 0 (case 1 of the bad-input list).
        n3(Raw(bytes.fromhex("36ff000500000001000000ff00"))),
        # UDP from port 2152 that is not GTP-U (a DNS query).
        Ether(src=GNB_MAC, dst=UPF_MAC) / IP(src=GNB, dst="192.0.2.53") / UDP(sport=2152, dport=53) / Raw(b"\x00\x01\x01\x00\x00\x01" + b"\x00" * 6),
        # ARP for the UPF's N3 address.
        Ether(src=GNB_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=GNB, pdst=UPF, hwsrc=GNB_MAC),
    ]
    # A large uplink G-PDU split by a small transport MTU: two outer IPv4 fragments.
    big = IP(src=GNB, dst=UPF, id=0x4242) / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=0x100) \
        / IP(src=UE4, dst=ENGINE) / TCP(sport=40001, dport=8080, flags="PA") / Raw(b"x" * 1200)
    frames += [Ether(src=GNB_MAC, dst=UPF_MAC) / f for f in fragment(big, fragsize=800)]
    for i, frame in enumerate(frames):
        frame.time = 1_700_000_000 + i * 0.001
    wrpcap(out, frames)
    print(f"wrote {len(frames)} frames to {out}")


if __name__ == "__main__":
    main()
