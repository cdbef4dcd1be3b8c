#!/usr/bin/env python3
"""Writes the hand-made seed frames of Fuzz/seeds/ (stdlib only; run once, the output is kept).

Each seed is one Ethernet frame (the fuzzer also reads every input as raw IP and Linux SLL).
Most are the GTP-U bad inputs of ../shared/BAD_INPUTS.md wrapped in Ethernet/IPv4/UDP 2152;
a few are well-formed packets so the fuzzer starts from every branch of the parser.
"""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(payload: bytes, ethertype=0x0800, vlans=()) -> bytes:
    h = bytes.fromhex("020000000002") + bytes.fromhex("020000000001")
    for tpid, vid in vlans:
        h += struct.pack("!HH", tpid, vid)
    return h + struct.pack("!H", ethertype) + payload


def ipv4(payload: bytes, proto=17, src="10.0.0.1", dst="10.0.0.2", ident=1, flags_frag=0,
         options=b"", bad_csum=False, total=None) -> bytes:
    ihl = 5 + len(options) // 4
    tl = total if total is not None else 20 + len(options) + len(payload)
    a = bytes(int(x) for x in src.split("."))
    b = bytes(int(x) for x in dst.split("."))
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tl, ident, flags_frag, 64, proto, 0, a, b) + options
    c = csum(h) ^ (0x1234 if bad_csum else 0)
    return h[:10] + struct.pack("!H", c) + h[12:] + payload


def ipv6(payload: bytes, nh=17, src=b"\x20\x01\x0d\xb8" + b"\0" * 11 + b"\x01",
         dst=b"\x20\x01\x0d\xb8" + b"\0" * 11 + b"\x02", plen=None) -> bytes:
    pl = len(payload) if plen is None else plen
    return struct.pack("!IHBB", 0x60000000, pl, nh, 64) + src + dst + payload


def udp(payload: bytes, sport=2152, dport=2152, csum_value=0) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), csum_value) + payload


def tcp(sport=40000, dport=443) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x18, 65535, 0, 0) + b"data"


def gtp(msg_type=0xFF, teid=1, body=b"", flags=0x30, opt=None, length=None) -> bytes:
    rest = (opt if opt is not None else b"") + body
    ln = len(rest) if length is None else length
    return struct.pack("!BBHI", flags, msg_type, ln, teid) + rest


def gtp_frame(g: bytes, sport=2152) -> bytes:
    return eth(ipv4(udp(g, sport=sport)))


def ul_psc(qfi=9) -> bytes:
    # length 1 (4 octets): type/flags, QFI, next = 0
    return bytes([1, 0x10, qfi & 0x3F, 0])


def dl_psc(qfi=7, ppp=False) -> bytes:
    if ppp:
        return bytes([2, 0x00, 0x80 | qfi, 0xA0, 0, 0, 0, 0])
    return bytes([1, 0x00, qfi & 0x3F, 0])


inner4_tcp = ipv4(tcp(), proto=6, src="192.168.1.10", dst="8.8.8.8")
inner4_udp = ipv4(udp(b"hello", sport=5353, dport=53), proto=17, src="192.168.1.10", dst="8.8.4.4")
inner6_udp = ipv6(udp(b"hello", sport=5353, dport=53))

SEEDS = {
    # --- well-formed -------------------------------------------------------------------------
    "ok_ul_psc_ipv4_tcp": gtp_frame(gtp(flags=0x34, opt=b"\0\0\0\x85", body=ul_psc() + inner4_tcp)),
    "ok_dl_psc_ipv4_udp": gtp_frame(gtp(flags=0x34, opt=b"\0\0\0\x85", body=dl_psc(ppp=True) + inner4_udp)),
    "ok_plain_ipv6_inner": gtp_frame(gtp(body=inner6_udp)),
    "ok_ext_chain_udpport_pdcp": gtp_frame(gtp(flags=0x36, opt=b"\x12\x34\0\x40",
                                               body=bytes([1, 0x08, 0x68, 0xC0, 1, 0x01, 0x02, 0x82,
                                                           2, 0x00, 0x01, 0x02, 0x03, 0, 0, 0x85])
                                               + ul_psc() + inner4_udp)),
    "ok_echo_request": gtp_frame(gtp(msg_type=1, teid=0, flags=0x32, opt=b"\x00\x07\0\0")),
    "ok_echo_response": gtp_frame(gtp(msg_type=2, teid=0, flags=0x32, opt=b"\x00\x07\0\0", body=b"\x0e\x05")),
    "ok_error_indication": gtp_frame(gtp(msg_type=26, teid=0, flags=0x32, opt=b"\0\0\0\0",
                                         body=b"\x10\xa0\xf2\x23\x50" + b"\x85\x00\x04\x0a\x00\x00\x01")),
    "ok_end_marker": gtp_frame(gtp(msg_type=254, teid=5)),
    "ok_outer_ipv6_hbh": eth(ipv6(bytes([17, 0, 1, 4, 0, 0, 0, 0]) + udp(gtp(body=inner4_tcp), csum_value=0xFFFF),
                                 nh=0), ethertype=0x86DD),
    "ok_qinq": eth(ipv4(udp(gtp(body=inner4_udp))), vlans=((0x88A8, 100), (0x8100, 200))),
    "ok_inner_ipv6_frag_ext": gtp_frame(gtp(body=ipv6(bytes([17, 0, 0, 1, 0, 0, 0, 9]) + udp(b"x", 1, 2), nh=44))),
    "ok_outer_fragment_first": eth(ipv4(udp(gtp(body=inner4_tcp))[:48], ident=77, flags_frag=0x2000,
                                        total=20 + 48)),
    "ok_outer_fragment_last": eth(ipv4(udp(gtp(body=inner4_tcp))[48:], ident=77, flags_frag=6)),
    "ok_arp": eth(b"\0\x01\x08\0\x06\x04\0\x01" + b"\0" * 20, ethertype=0x0806),
    "ok_dns_from_2152": eth(ipv4(udp(b"\x12\x34\x01\0\0\x01\0\0\0\0\0\0", sport=2152, dport=53))),
    # --- BAD_INPUTS.md, GTP-U header ---------------------------------------------------------
    "bad01_ext_len_zero": gtp_frame(bytes.fromhex("36ff003400000001000000ff00")),
    "bad02_cut_after_next_type": gtp_frame(bytes.fromhex("36ff003400000001000000ff")),
    "bad03_e_no_ext_bytes": gtp_frame(gtp(flags=0x34, opt=b"\0\0\0\x85", length=4)),
    "bad04_many_small_exts": gtp_frame(gtp(flags=0x34, opt=b"\0\0\0\x20", body=bytes([1, 0, 0, 0x20]) * 40)),
    "bad05_ext_len_past_end": gtp_frame(gtp(flags=0x34, opt=b"\0\0\0\x85", body=bytes([9, 0x10, 9, 0]))),
    "bad06_length_too_big": gtp_frame(gtp(body=inner4_tcp, length=0x3033)),
    "bad06_length_too_small": gtp_frame(gtp(flags=0x34, opt=b"\0\0\0\x85", body=ul_psc() + inner4_tcp, length=2)),
    "bad07_s_without_e": gtp_frame(gtp(flags=0x32, opt=b"\0\x01\0\x85", body=inner4_tcp)),
    "bad08_version2": gtp_frame(gtp(flags=0x50, body=inner4_tcp)),
    "bad08_gtp_prime": gtp_frame(gtp(flags=0x20, body=inner4_tcp)),
    "bad09_unknown_type": gtp_frame(gtp(msg_type=99, body=b"\0\0")),
    "bad09_echo_no_seq": gtp_frame(gtp(msg_type=1, teid=0)),
    "bad09_gpdu_teid0": gtp_frame(gtp(teid=0, body=inner4_tcp)),
    "bad11_comprehension_required": gtp_frame(gtp(flags=0x34, opt=b"\0\0\0\xC5", body=bytes([1, 0, 0, 0]) + inner4_tcp)),
    "bad11_comprehension_not_required": gtp_frame(gtp(flags=0x34, opt=b"\0\0\0\x05", body=bytes([1, 0, 0, 0]) + inner4_tcp)),
    "bad12_psc_bad_length": gtp_frame(gtp(flags=0x34, opt=b"\0\0\0\x85", body=bytes([1, 0x18, 9, 0]) + inner4_tcp)),
    "bad12_psc_bad_type": gtp_frame(gtp(flags=0x34, opt=b"\0\0\0\x85", body=bytes([1, 0x30, 9, 0]) + inner4_tcp)),
    "bad12_psc_qfi0": gtp_frame(gtp(flags=0x34, opt=b"\0\0\0\x85", body=bytes([1, 0x10, 0, 0]) + inner4_tcp)),
    "bad15_udp2152_inside": gtp_frame(gtp(body=ipv4(udp(b"not gtp at all"), proto=17))),
    # --- BAD_INPUTS.md, inner packet -----------------------------------------------------------
    "bad16_inner_ihl4": gtp_frame(gtp(body=b"\x44" + inner4_tcp[1:])),
    "bad16_inner_total_too_big": gtp_frame(gtp(body=ipv4(tcp(), proto=6, total=1480))),
    "bad17_inner_ipv6_plen0": gtp_frame(gtp(body=ipv6(udp(b"x"), plen=0))),
    "bad17_inner_ipv6_jumbo": gtp_frame(gtp(body=ipv6(bytes([17, 0, 0xC2, 4, 0, 1, 0, 0]), nh=0, plen=0))),
    "bad18_inner_tcp_short": gtp_frame(gtp(body=ipv4(tcp()[:12], proto=6))),
    "bad18_inner_version7": gtp_frame(gtp(body=b"\x75" + inner4_tcp[1:])),
    "bad19_inner_bad_checksum": gtp_frame(gtp(body=ipv4(tcp(), proto=6, bad_csum=True))),
    "bad_outer_bad_checksum": eth(ipv4(udp(gtp(body=inner4_tcp)), bad_csum=True)),
    "bad_outer_ipv6_udp_csum0": eth(ipv6(udp(gtp(body=inner4_tcp))), ethertype=0x86DD),
}


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    for name, frame in SEEDS.items():
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(frame)
    print(f"wrote {len(SEEDS)} seeds to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
