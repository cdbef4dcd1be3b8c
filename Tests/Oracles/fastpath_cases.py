#!/usr/bin/python3
"""Inputs for the fast-path integration tests (Tests/IntegrationTests/FastPathTests.swift).

  fastpath_cases.py CASE OUTDIR     writes the case's files into OUTDIR (created)
  fastpath_cases.py list            prints the case names

Every case writes:
  config.yaml       Configs/replay/fastpath.yaml (fixed MACs; see there), or a variant of it
  policy.yaml       the policy installed before the first packet
  in-<port>.pcap    the frames received on <port> (scapy-built; only ports that receive any)
  expect.yaml       `upf-replay run --expect` expectations, where the case has natural ones
  manifest.json     {"inputs": {port: file}, "frames": [{"port", "tag", "inner", "label",
                     "outcome"}...], plus case-specific fields}

Every user packet carries a tag that survives the data path untouched: the inner IPv4
Identification, or the inner IPv6 flow label. "inner" is the hex of the inner IP packet (what
must leave the UPF byte for byte, decapsulated or re-encapsulated); "outcome" is where it must go
("n3", "core", "engines", "core-n6", ...) or the drop reason it must be counted under.

The frames of BAD_INPUTS.md 1-19 reuse the byte builders of Fuzz/make_seeds.py (stdlib only);
scapy builds everything valid and wraps the bad GTP-U datagrams in Ethernet/IPv4/UDP.
"""
import json
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True   # no __pycache__ left in Fuzz/
sys.path.insert(0, os.path.join(ROOT, "Fuzz"))
import make_seeds as seeds  # noqa: E402  (byte builders for the bad inputs)

from scapy.all import ICMP, IP, TCP, UDP, Ether, IPv6, Raw, fragment  # noqa: E402
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer  # noqa: E402

# --- The topology of Configs/replay/fastpath.yaml --------------------------------------------
N3_MAC, GNB_ROUTER_MAC = "02:00:00:00:01:fe", "02:00:00:00:01:01"
CORE_MAC, CORE_NEXT_HOP_MAC = "02:00:00:00:02:fe", "02:00:00:00:02:01"
ENGINES_MAC = "02:00:00:00:50:fe"
LLM_MAC, LLM_IP = "02:00:00:00:50:10", "192.168.50.10"
N3_IP, CORE_IP, PEER_IP = "192.0.2.1", "203.0.113.2", "203.0.113.1"
GNB_IP, GNB2_IP = "192.0.2.100", "192.0.2.101"
UE1, UE2, UE3 = "10.45.0.1", "10.45.0.2", "10.45.0.3"
UE1_PREFIX, UE1_V6 = "2001:db8:45:1::/64", "2001:db8:45:1::1"

ENGINE_LLM = {"id": "llm", "instances": [{"port": "engines", "address": LLM_IP, "mac": LLM_MAC}], "fallback": "drop"}
N9 = {"type": "n9", "peer": PEER_IP, "teid": 5000}


class Case:
    def __init__(self, outdir):
        self.outdir = outdir
        os.makedirs(outdir, exist_ok=True)
        self.frames = {}          # port -> [scapy packet]
        self.manifest = {"inputs": {}, "frames": []}
        self.clock = 1_700_000_000.0
        self.config = None        # None: Configs/replay/fastpath.yaml as it is
        self.config_extra = ""    # YAML appended to that file (top-level sections it lacks)

    def add(self, port, frame, tag=None, inner=None, outcome=None, label=""):
        """Appends `frame` to `port`'s input; frames of all ports get increasing timestamps in the
        order they are added, so the harness feeds them in this order."""
        self.clock += 0.001
        self.frames.setdefault(port, []).append((self.clock, frame if isinstance(frame, bytes) else bytes(frame)))
        entry = {"port": port, "tag": tag, "outcome": outcome, "label": label}
        if inner is not None:
            entry.update(inner=bytes(inner).hex(), version=inner.version, src=inner.src, dst=inner.dst)
        self.manifest["frames"].append(entry)

    def write(self, policy, expect=None, **extra):
        config_path = os.path.join(self.outdir, "config.yaml")
        if self.config is None:
            shutil.copyfile(os.path.join(ROOT, "Configs/replay/fastpath.yaml"), config_path)
        else:
            dump(self.config, config_path)
        if self.config_extra:
            with open(config_path, "a") as f:
                f.write("\n" + self.config_extra)
        dump(policy, os.path.join(self.outdir, "policy.yaml"))
        for port, frames in self.frames.items():
            name = "in-%s.pcap" % port
            write_pcap(os.path.join(self.outdir, name), frames)
            self.manifest["inputs"][port] = name
        if expect is not None:
            dump(expect, os.path.join(self.outdir, "expect.yaml"))
            self.manifest["expect"] = "expect.yaml"
        self.manifest.update(extra)
        with open(os.path.join(self.outdir, "manifest.json"), "w") as f:
            json.dump(self.manifest, f, indent=1)


def write_pcap(path, frames):
    """A classic Ethernet pcap with microsecond timestamps, as scapy's wrpcap writes it, from
    (time, bytes) pairs: the stress case's thousands of frames are serialised once each kind."""
    import struct
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for time, data in frames:
            seconds = int(time)
            micros = int(round((time - seconds) * 1e6))
            if micros == 1_000_000:
                seconds, micros = seconds + 1, 0
            f.write(struct.pack("<IIII", seconds, micros, len(data), len(data)) + data)


PLAIN = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*|\d+\.\d+\.\d+\.\d+(/\d+)?)$")


def scalar(value):
    """A YAML scalar: numbers and booleans as they are; text plain when it cannot be read as
    anything else, else double-quoted (a JSON string is a YAML double-quoted scalar)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if PLAIN.match(value) and value not in ("true", "false", "null", "yes", "no", "on", "off"):
        return value
    return json.dumps(value)


def flow(value):
    if isinstance(value, dict):
        return "{" + ", ".join("%s: %s" % (k, flow(v)) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return scalar(value)


def block(value, indent=0):
    """Block-style YAML lines; small mappings and lists of scalars in flow style, as
    Configs/policy/edge-example.yaml writes them."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            simple = not isinstance(item, (dict, list)) or not item or \
                all(not isinstance(v, (dict, list)) for v in (item.values() if isinstance(item, dict) else item))
            if simple:
                lines.append("%s%s: %s" % (pad, key, flow(item)))
            else:
                lines.append("%s%s:" % (pad, key))
                lines += block(item, indent + 2)
    else:
        for item in value:
            if isinstance(item, dict) and not all(not isinstance(v, (dict, list)) or
                                                   (isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v))
                                                   for v in item.values()):
                inner = block(item, indent + 2)
                lines.append(pad + "- " + inner[0][indent + 2:])
                lines += inner[1:]
            else:
                lines.append(pad + "- " + flow(item))
    return lines


def dump(document, path):
    with open(path, "w") as f:
        f.write("\n".join(block(document)) + "\n")


# --- Frame builders -----------------------------------------------------------------------------

def gpdu(inner, teid=256, qfi=None, pdu_type=1, dst=N3_IP, src=GNB_IP, sport=2152, **gtp_fields):
    """Ethernet/IPv4/UDP 2152/GTP-U G-PDU from the gNB to the n3 port, with an UL PDU Session
    Container carrying `qfi` when given."""
    if qfi is not None:
        gtp = GTP_U_Header(gtp_type=255, teid=teid, E=1, next_ex=0x85, **gtp_fields) / \
            GTPPDUSessionContainer(type=pdu_type, QFI=qfi) / inner
    else:
        gtp = GTP_U_Header(gtp_type=255, teid=teid, **gtp_fields) / inner
    return Ether(src=GNB_ROUTER_MAC, dst=N3_MAC) / IP(src=src, dst=dst) / UDP(sport=sport, dport=2152) / gtp


def raw_gtp(gtp_bytes, dst=N3_IP, sport=2152, dport=2152):
    """Hand-made GTP-U bytes (possibly broken) in a well-formed Ethernet/IPv4/UDP frame to n3."""
    return Ether(src=GNB_ROUTER_MAC, dst=N3_MAC) / IP(src=GNB_IP, dst=dst) / UDP(sport=sport, dport=dport) / Raw(gtp_bytes)


def tcp4(tag, src=UE1, dst="198.51.100.7", sport=None, dport=443, size=40):
    return IP(src=src, dst=dst, id=tag, ttl=63) / TCP(sport=sport or 40000 + tag, dport=dport, flags="PA") / \
        Raw(bytes((tag + k) % 256 for k in range(size)))


def udp4(tag, src=UE1, dst="198.51.100.8", sport=None, dport=8000, size=60, payload=None):
    return IP(src=src, dst=dst, id=tag, ttl=63) / UDP(sport=sport or 40000 + tag, dport=dport) / \
        Raw(payload if payload is not None else bytes((tag * 7 + k) % 256 for k in range(size)))


def udp6(tag, src=UE1_V6, dst="2001:db8:100::7", sport=None, dport=443, size=50):
    return IPv6(src=src, dst=dst, fl=tag, hlim=63) / UDP(sport=sport or 40000 + tag, dport=dport) / \
        Raw(bytes((tag * 3 + k) % 256 for k in range(size)))


def icmp4(tag, src=UE1, dst="198.51.100.9"):
    return IP(src=src, dst=dst, id=tag, ttl=63) / ICMP(id=tag, seq=1) / Raw(b"ping" * 8)


def lookalike():
    """A well-formed G-PDU as the payload of a user's UDP datagram to or from port 2152: user data."""
    return bytes(GTP_U_Header(gtp_type=255, teid=77) / IP(src="192.0.2.200", dst="192.0.2.1", id=0) /
                 UDP(sport=2152, dport=2152) / Raw(b"not ours"))


def plain(inner, src_mac, dst_mac):
    ethertype = 0x86DD if isinstance(inner, IPv6) else 0x0800
    return Ether(src=src_mac, dst=dst_mac, type=ethertype) / inner


def raw_ipv4(payload, proto=17, src="10.45.0.1", dst="198.51.100.8", total=None, ihl=None, version=4,
             bad_checksum=False, ident=1):
    """An IPv4 header with any field wrong (the checksum is computed over what is written,
    like Tests/UPFPacketsTests/TestFrames.swift's, unless `bad_checksum`)."""
    import struct
    a = bytes(int(x) for x in src.split("."))
    b = bytes(int(x) for x in dst.split("."))
    first = (version << 4) | (ihl if ihl is not None else 5)
    tl = total if total is not None else 20 + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", first, 0, tl, ident, 0, 64, proto, 0, a, b)
    c = seeds.csum(h) ^ (0x5A if bad_checksum else 0)
    return h[:10] + struct.pack("!H", c) + h[12:] + payload


# --- Policies -----------------------------------------------------------------------------------

def session1(rules, actions, **more):
    s = {"seid": 1, "ue_ipv4": UE1, "ue_ipv6": UE1_PREFIX, "n3": {"teid": 256, "address": N3_IP},
         "gnb": {"teid": 4096, "address": GNB_IP}, "default_qfi": 9, "rules": rules, "actions": actions}
    s.update(more)
    return s


def access_rule(rule_id=1, action=1, precedence=100, **more):
    r = {"id": rule_id, "precedence": precedence, "source": "access", "action": action}
    r.update(more)
    return r


# --- Cases --------------------------------------------------------------------------------------

def case_steer(c):
    """1. Uplink G-PDUs with and without PSC, steered to engine llm: plain inner IP on the engines
    port to the instance's MAC, from the engines port's MAC."""
    inputs = [
        (1, tcp4(1), dict(qfi=9), "UL PSC QFI 9, TCP"),
        (2, udp4(2), dict(), "no PSC, UDP"),
        (3, icmp4(3), dict(qfi=5), "UL PSC QFI 5, ICMP"),
        (4, udp6(4), dict(), "no PSC, inner IPv6 (tag = flow label)"),
        (5, tcp4(5, size=700), dict(qfi=9, S=1, seq=77, PN=1, npdu=3), "S and PN set with a PSC, 700-byte payload"),
        (6, udp4(6, size=0), dict(S=1, seq=5), "S without E, empty UDP payload"),
    ]
    expected = []
    for tag, inner, fields, label in inputs:
        c.add("n3", gpdu(inner, **fields), tag=tag, inner=inner, outcome="engines", label=label)
        entry = {"kind": "ip", "src_mac": ENGINES_MAC, "dst_mac": LLM_MAC, "inner_src": inner.src, "inner_dst": inner.dst,
                 "length": 14 + len(inner)}
        expected.append(entry)
    policy = {"engines": [ENGINE_LLM],
              "sessions": [session1([access_rule()], [{"id": 1, "type": "steer", "engine": "llm"}])]}
    expect = {"ports": {"engines": {"count": len(inputs), "packets": expected}, "core": {"count": 0}, "n3": {"count": 0}},
              "actions": {"steer": len(inputs), "n9": 0, "n6": 0}}
    c.write(policy, expect)


def case_n9(c):
    """2. The default rule re-encapsulates towards the central UPF (N9): TEID 5000, outer
    203.0.113.2 -> 203.0.113.1, an UL PSC with the QFI, nothing of the ingress header inherited."""
    def unknown_then_psc(qfi, inner):
        # GTP-U header: E, S, PN; next type 0x03 (unknown, comprehension not required), then the PSC.
        return seeds.gtp(teid=256, flags=0x37, opt=b"\x12\x34\x05\x03",
                         body=bytes([1, 0xAB, 0xCD, 0x85]) + seeds.ul_psc(qfi) + bytes(inner))

    inputs = [
        (11, tcp4(11), lambda i: gpdu(i, qfi=7), 7, "UL PSC QFI 7"),
        (12, udp4(12), lambda i: gpdu(i), 9, "no PSC: the session's default QFI 9"),
        (13, udp4(13), lambda i: raw_gtp(unknown_then_psc(6, i)), 6,
         "S, PN, unknown skippable extension 0x03 then PSC QFI 6: only the PSC goes out"),
        (14, tcp4(14), lambda i: raw_gtp(seeds.gtp(teid=256, flags=0x34, opt=b"\0\0\0\x03",
                                                   body=bytes([1, 0xAB, 0xCD, 0]) + bytes(i))), 9,
         "only an unknown skippable extension: the PSC with the default QFI replaces it"),
        (15, udp4(15), lambda i: gpdu(i, S=1, seq=4242), 9, "S without E"),
        (16, udp6(16), lambda i: gpdu(i, qfi=3), 3, "inner IPv6, QFI 3"),
        (17, tcp4(17), lambda i: raw_gtp(seeds.gtp(teid=256, flags=0x34, opt=b"\0\0\0\x40",
                                                   body=bytes([1, 0x08, 0x68, 0xC0, 1, 0x00, 0x07, 0x85])
                                                   + seeds.ul_psc(8) + bytes(i))), 8,
         "UDP Port and PDCP PDU Number extensions before PSC QFI 8"),
    ]
    expected, qfis = [], {}
    for tag, inner, build, qfi, label in inputs:
        c.add("n3", build(inner), tag=tag, inner=inner, outcome="core", label=label)
        qfis[str(tag)] = qfi
        expected.append({"kind": "gpdu", "src_mac": CORE_MAC, "dst_mac": CORE_NEXT_HOP_MAC, "outer_src": CORE_IP,
                         "outer_dst": PEER_IP, "teid": 5000, "qfi": qfi, "psc": "ul", "inner_src": inner.src,
                         "inner_dst": inner.dst})
    policy = {"sessions": [session1([access_rule()], [dict(id=1, **N9)])]}
    expect = {"ports": {"core": {"count": len(inputs), "packets": expected}, "engines": {"count": 0}, "n3": {"count": 0}},
              "actions": {"n9": len(inputs)}}
    c.write(policy, expect, qfi=qfis)


def case_n6(c):
    """3. type n6: the inner packet, decapsulated, to the core next hop."""
    inputs = [(21, tcp4(21), dict(qfi=9)), (22, udp4(22, dst="8.8.8.8", dport=53), dict()), (23, udp6(23), dict(qfi=1))]
    expected = []
    for tag, inner, fields in inputs:
        c.add("n3", gpdu(inner, **fields), tag=tag, inner=inner, outcome="core")
        expected.append({"kind": "ip", "src_mac": CORE_MAC, "dst_mac": CORE_NEXT_HOP_MAC, "inner_src": inner.src,
                         "inner_dst": inner.dst, "length": 14 + len(inner)})
    policy = {"sessions": [session1([access_rule()], [{"id": 1, "type": "n6"}])]}
    expect = {"ports": {"core": {"count": len(inputs), "packets": expected}, "engines": {"count": 0}, "n3": {"count": 0}},
              "actions": {"n6": len(inputs)}}
    c.write(policy, expect)


def case_rules(c):
    """4. Precedence, filters, applications, QFI conditions and drop rules of one TEID. The
    default rule is listed first and has the lowest id: only precedence may decide."""
    policy = {
        "engines": [ENGINE_LLM],
        "applications": [{"id": "inference", "destination_prefixes": ["198.51.100.0/24"],
                          "destination_ports": [443, "8000-8080"], "protocol": 6}],
        "sessions": [session1(
            [access_rule(1, action=2, precedence=100),
             access_rule(2, action=1, precedence=10, application="inference"),
             access_rule(3, action=3, precedence=20, match={"destination_prefixes": ["203.0.113.53/32"],
                                                           "protocol": 17, "destination_ports": [53]}),
             access_rule(4, action=4, precedence=30, qfi=3)],
            [{"id": 1, "type": "steer", "engine": "llm"}, dict(id=2, **N9), {"id": 3, "type": "drop"},
             {"id": 4, "type": "n6"}])],
    }
    flows = [
        (31, tcp4(31, dport=443), 9, "engines", "A: inference (443) -> steer"),
        (32, tcp4(32, dport=80), 9, "core", "B: same prefix, port 80 -> default n9"),
        (33, udp4(33, dst="203.0.113.53", dport=53), 9, "rule_drop", "D: DNS to the blocked resolver -> drop"),
        (34, tcp4(34, dst="198.51.100.20", dport=8080), 9, "engines", "A: inference (8080) -> steer"),
        (35, udp4(35, dst="198.51.100.7", dport=443), 9, "core", "B: UDP 443 is not the application -> n9"),
        (36, udp4(36, dst="203.0.113.53", dport=53), 9, "rule_drop", "D again"),
        (37, udp4(37, dst="203.0.113.54", dport=53), 9, "core", "B: another resolver -> n9"),
        (38, udp4(38, dst="8.8.8.8", dport=53), 3, "core-n6", "C: QFI 3 -> n6"),
        (39, tcp4(39, dport=443), 3, "engines", "A with QFI 3: precedence 10 beats the QFI rule's 30"),
        (40, udp4(40, dst="203.0.113.53", dport=54), 9, "core", "B: port 54 is not the drop rule's"),
    ]
    for tag, inner, qfi, outcome, label in flows:
        c.add("n3", gpdu(inner, qfi=qfi), tag=tag, inner=inner, outcome=outcome, label=label)
    expect = {"ports": {"engines": {"count": 3}, "core": {"count": 5}, "n3": {"count": 0}},
              "drops": {"rule_drop": 2}, "actions": {"steer": 3, "n9": 4, "n6": 1}}
    c.write(policy, expect)


def case_downlink(c):
    """5. Downlink from an engine and from the core (N6): GTP-U to the session's gNB with a DL PSC
    carrying the QER's QFI or the session's default."""
    s1 = session1([{"id": 1, "precedence": 100, "source": "engine", "action": 1},
                   {"id": 2, "precedence": 100, "source": "core", "action": 1, "qos": 1}],
                  [{"id": 1, "type": "n3"}], qos=[{"id": 1, "qfi": 7}])
    s2 = {"seid": 2, "ue_ipv4": UE2, "n3": {"teid": 257, "address": N3_IP}, "gnb": {"teid": 4097, "address": GNB2_IP},
          "default_qfi": 5, "rules": [{"id": 1, "precedence": 100, "source": "core", "action": 1}],
          "actions": [{"id": 1, "type": "n3"}]}
    s3 = {"seid": 3, "ue_ipv4": UE3, "n3": {"teid": 258, "address": N3_IP},
          "rules": [{"id": 1, "precedence": 100, "source": "core", "action": 1}],
          "actions": [{"id": 1, "type": "buffer", "limit": 64}]}
    policy = {"engines": [ENGINE_LLM], "sessions": [s1, s2, s3]}
    gtp_lookalike = lookalike()
    frames = [
        # (port, tag, inner, outcome, teid, gnb, qfi, label)
        ("engines", 51, udp4(51, src=LLM_IP, dst=UE1, sport=8080, dport=40051), "n3", 4096, GNB_IP, 9,
         "engine answer: no QER -> default QFI 9"),
        ("core", 52, tcp4(52, src="8.8.8.8", dst=UE1, sport=443, dport=40052), "n3", 4096, GNB_IP, 7,
         "N6 downlink: QER QFI 7"),
        ("core", 53, udp4(53, src="198.51.100.9", dst=UE1, sport=40000, dport=2152, payload=gtp_lookalike), "n3",
         4096, GNB_IP, 7, "UDP to port 2152 of a UE is user data"),
        ("core", 54, udp4(54, src="198.51.100.9", dst=UE1, sport=2152, dport=53, size=30), "n3", 4096, GNB_IP, 7,
         "UDP from port 2152 to a UE is user data"),
        ("core", 55, udp4(55, src="8.8.4.4", dst=UE2, sport=53, dport=40055), "n3", 4097, GNB2_IP, 5,
         "second session: its gNB, its default QFI 5"),
        ("core", 56, udp6(56, src="2001:db8::53", dst=UE1_V6, sport=53, dport=40056), "n3", 4096, GNB_IP, 7,
         "inner IPv6 to the UE's /64"),
        ("core", 57, udp4(57, src="8.8.4.4", dst="10.45.0.99"), "no_session_for_ue", None, None, None, "no session"),
        ("core", 58, udp4(58, src="8.8.4.4", dst=UE3), "buffered", None, None, None,
         "buffer action (gNB not known yet): held"),
        ("engines", 59, udp4(59, src=LLM_IP, dst=UE2), "no_matching_rule", None, None, None,
         "session 2 has no engine rule"),
        ("engines", 60, tcp4(60, src=LLM_IP, dst=UE1, sport=8080, dport=40060, size=1200), "n3", 4096, GNB_IP, 9,
         "a 1200-byte answer"),
    ]
    tunnels = {}
    for port, tag, inner, outcome, teid, gnb, qfi, label in frames:
        src_mac, dst_mac = (LLM_MAC, ENGINES_MAC) if port == "engines" else (CORE_NEXT_HOP_MAC, CORE_MAC)
        c.add(port, plain(inner, src_mac, dst_mac), tag=tag, inner=inner, outcome=outcome, label=label)
        if outcome == "n3":
            tunnels[str(tag)] = {"teid": teid, "gnb": gnb, "qfi": qfi}
    expect = {"ports": {"n3": {"count": len(tunnels)}, "core": {"count": 0}, "engines": {"count": 0}},
              "drops": {"no_session_for_ue": 1, "no_matching_rule": 1},
              "actions": {"n3": len(tunnels)}}
    c.write(policy, expect, tunnels=tunnels)


def case_ue_to_ue(c):
    """6. UE to UE. UE A has only the default N9 rule: its packet to UE B goes to the core. UE C
    has an uplink rule `n3` for the UEs' /24: hairpinned to B's gNB tunnel."""
    s_a = session1([access_rule()], [dict(id=1, **N9)])
    s_b = {"seid": 2, "ue_ipv4": UE2, "n3": {"teid": 257, "address": N3_IP}, "gnb": {"teid": 4097, "address": GNB2_IP},
           "default_qfi": 5,
           "rules": [access_rule(), {"id": 2, "precedence": 100, "source": "core", "action": 2}],
           "actions": [{"id": 1, "type": "n9", "peer": PEER_IP, "teid": 5001}, {"id": 2, "type": "n3"}]}
    s_c = {"seid": 3, "ue_ipv4": UE3, "n3": {"teid": 258, "address": N3_IP}, "gnb": {"teid": 4098, "address": GNB_IP},
           "default_qfi": 6,
           "rules": [access_rule(1, action=2, precedence=10, match={"destination_prefixes": ["10.45.0.0/24"]}),
                     access_rule(2, action=1, precedence=100)],
           "actions": [{"id": 1, "type": "n9", "peer": PEER_IP, "teid": 5002}, {"id": 2, "type": "n3"}]}
    policy = {"sessions": [s_a, s_b, s_c]}
    frames = [
        (61, tcp4(61, src=UE1, dst=UE2), 256, "core", "A -> B, default rule only: N9 (TEID 5000), not n3"),
        (62, tcp4(62, src=UE3, dst=UE2), 258, "n3", "C -> B with an uplink n3 rule: hairpin to B's gNB"),
        (63, udp4(63, src=UE3, dst="8.8.8.8"), 258, "core", "C -> internet: N9 (TEID 5002)"),
        (64, udp4(64, src=UE3, dst="10.45.0.77"), 258, "hairpin_no_session", "C -> an address no session has"),
        (65, udp4(65, src=UE3, dst=UE1, dport=5000), 258, "n3", "C -> A: hairpin to A's gNB (TEID 4096)"),
    ]
    for tag, inner, teid, outcome, label in frames:
        c.add("n3", gpdu(inner, teid=teid, qfi=9), tag=tag, inner=inner, outcome=outcome, label=label)
    expect = {
        "ports": {
            "core": {"count": 2, "packets": [{"kind": "gpdu", "teid": 5000, "inner_src": UE1, "inner_dst": UE2},
                                             {"kind": "gpdu", "teid": 5002, "inner_src": UE3, "inner_dst": "8.8.8.8"}]},
            "n3": {"count": 2, "packets": [
                {"kind": "gpdu", "teid": 4097, "outer_src": N3_IP, "outer_dst": GNB2_IP, "psc": "dl", "qfi": 5,
                 "src_mac": N3_MAC, "dst_mac": GNB_ROUTER_MAC, "inner_src": UE3, "inner_dst": UE2},
                {"kind": "gpdu", "teid": 4096, "outer_dst": GNB_IP, "psc": "dl", "qfi": 9, "inner_dst": UE1}]},
            "engines": {"count": 0}},
        "drops": {"hairpin_no_session": 1},
        "actions": {"n9": 2, "hairpin": 2, "n3": 0},
    }
    c.write(policy, expect)


def case_bad_inputs(c):
    """7. BAD_INPUTS.md 1-19 on n3, each between two valid G-PDUs (n6 to the core): every bad one
    is dropped under its reason, the valid ones all arrive."""
    policy = {"sessions": [session1([access_rule()], [{"id": 1, "type": "n6"}])]}
    g = lambda **kw: seeds.gtp(teid=kw.pop("teid", 256), **kw)  # noqa: E731
    inner_tcp = bytes(tcp4(999, size=8))
    bad = [
        ("1 ext length 0, as given", raw_gtp(bytes.fromhex("36ff003400000001000000ff00")), "gtp_length_exceeds_payload"),
        ("1 ext length 0, consistent GTP length", raw_gtp(bytes.fromhex("36ff000500000001000000ff00")),
         "gtp_extension_zero_length"),
        ("2 cut after next-type, as given", raw_gtp(bytes.fromhex("36ff003400000001000000ff")), "gtp_length_exceeds_payload"),
        ("2 cut after next-type, consistent", raw_gtp(bytes.fromhex("36ff000400000001000000ff")), "gtp_extension_truncated"),
        ("3 E set, no extension bytes", raw_gtp(g(flags=0x34, opt=b"\0\0\0\x85")), "gtp_extension_truncated"),
        ("4 40 small extension headers", raw_gtp(g(flags=0x34, opt=b"\0\0\0\x20", body=bytes([1, 0, 0, 0x20]) * 40)),
         "gtp_extension_chain_too_long"),
        ("5 extension length past the end", raw_gtp(g(flags=0x34, opt=b"\0\0\0\x85", body=bytes([9, 0x10, 9, 0]))),
         "gtp_extension_truncated"),
        ("6 GTP length 0x3033", raw_gtp(g(body=inner_tcp, length=0x3033)), "gtp_length_exceeds_payload"),
        ("6 GTP length 2 with S", raw_gtp(g(flags=0x32, opt=b"\0\x01\0\0", body=inner_tcp, length=2)),
         "gtp_length_shorter_than_headers"),
        ("8 version 2", raw_gtp(g(flags=0x50, body=inner_tcp)), "gtp_version_not_1"),
        ("8 PT=0 (GTP')", raw_gtp(g(flags=0x20, body=inner_tcp)), "gtp_prime"),
        ("9 unknown message type 99", raw_gtp(g(msg_type=99, body=b"\0\0")), "gtp_unknown_message_type"),
        ("9 Echo Request without sequence number", raw_gtp(g(msg_type=1, teid=0)), "echo_without_sequence_number"),
        ("9 G-PDU with TEID 0", raw_gtp(g(teid=0, body=inner_tcp)), "gpdu_teid_zero"),
        ("10 unknown TEID", gpdu(tcp4(998), teid=0xDEADBEEF, qfi=9), "unknown_teid"),
        ("11 unknown extension 0xC5, comprehension required",
         raw_gtp(g(flags=0x34, opt=b"\0\0\0\xC5", body=bytes([1, 0, 0, 0]) + inner_tcp)), "gtp_extension_comprehension_required"),
        ("11 unknown extension 0x8A, comprehension required by the endpoint",
         raw_gtp(g(flags=0x34, opt=b"\0\0\0\x8A", body=bytes([1, 0, 0, 0]) + inner_tcp)), "gtp_extension_comprehension_required"),
        ("12 PSC wrong length", raw_gtp(g(flags=0x34, opt=b"\0\0\0\x85", body=bytes([1, 0x18, 9, 0]) + inner_tcp)),
         "psc_bad_length"),
        ("12 PSC wrong PDU type", raw_gtp(g(flags=0x34, opt=b"\0\0\0\x85", body=bytes([1, 0x30, 9, 0]) + inner_tcp)),
         "psc_bad_pdu_type"),
        ("12 PSC QFI 0", raw_gtp(g(flags=0x34, opt=b"\0\0\0\x85", body=seeds.ul_psc(0) + inner_tcp)), "psc_qfi_zero"),
        ("12 DL PSC on N3 (wrong direction)", gpdu(tcp4(997), qfi=9, pdu_type=0), "psc_wrong_direction"),
    ]
    # 13: a flood of Echo Requests mixed with unknown-TEID G-PDUs. Each Echo Request is answered
    # (an Echo Response on n3); Error Indications are switched off for this case (see below), so
    # each unknown TEID is a counted drop — PathManagementTests covers their answers and rates.
    for i in range(8):
        bad.append(("13 Echo Request %d" % i, raw_gtp(g(msg_type=1, teid=0, flags=0x32, opt=bytes([0, i, 0, 0]))),
                    "answered:echo_response_sent"))
        bad.append(("13 unknown TEID %d" % i, gpdu(udp4(900 + i), teid=0x80000000 + i), "unknown_teid"))
    # 14: the outer datagram of a valid G-PDU, in fragments (the later ones start with bytes that
    # look like GTP-U on port 2152): never parsed as GTP-U.
    whole = IP(src=GNB_IP, dst=N3_IP, id=4242) / UDP(sport=2152, dport=2152) / \
        GTP_U_Header(gtp_type=255, teid=256) / tcp4(996, size=300)
    for k, piece in enumerate(fragment(whole, fragsize=128)):
        bad.append(("14 outer fragment %d" % k, Ether(src=GNB_ROUTER_MAC, dst=N3_MAC) / piece, "outer_fragment"))
    bad += [
        ("15 DNS from port 2152 to the N3 address",
         Ether(src=GNB_ROUTER_MAC, dst=N3_MAC) / IP(src=GNB_IP, dst=N3_IP) / UDP(sport=2152, dport=53) /
         Raw(bytes.fromhex("12340100000100000000000003777777076578616d706c6503636f6d0000010001")), "not_gtpu_on_n3"),
        ("16 inner IHL 4", raw_gtp(g(body=raw_ipv4(seeds.udp(b"\1"), ihl=4))), "inner_ipv4_bad_header_length"),
        ("16 inner IHL 15 past the end", raw_gtp(g(body=raw_ipv4(b"\1\2\3\4", ihl=15))), "inner_ipv4_truncated"),
        ("16 inner Total Length 1480, 172 present",
         raw_gtp(g(body=raw_ipv4(seeds.tcp() + bytes(128), proto=6, total=1480))), "inner_ipv4_total_length_exceeds_payload"),
        ("17 inner IPv6 payload length 0, next header UDP", raw_gtp(g(body=seeds.ipv6(seeds.udp(b"x"), plen=0))),
         "inner_ipv6_payload_length_zero"),
        ("17 inner IPv6 jumbo option", raw_gtp(g(body=seeds.ipv6(bytes([17, 0, 0xC2, 4, 0, 1, 0, 0]), nh=0, plen=0))),
         "inner_ipv6_jumbogram"),
        ("17 inner IPv6 extension chain past the end", raw_gtp(g(body=seeds.ipv6(bytes([60, 200, 0, 0, 0, 0, 0, 0]), nh=0))),
         "inner_ipv6_extension_truncated"),
        ("18 inner TCP header cut short", raw_gtp(g(body=raw_ipv4(seeds.tcp()[:12], proto=6))), "inner_l4_truncated"),
        ("18 inner IP version 7", raw_gtp(g(body=raw_ipv4(seeds.udp(b"\1"), version=7))), "inner_ip_version_unknown"),
        ("19 inner IPv4 bad header checksum", raw_gtp(g(body=raw_ipv4(seeds.udp(b"\1\2\3"), bad_checksum=True))),
         "inner_ipv4_bad_checksum"),
        # Not in the list, but on the same path.
        ("G-PDU to an address that is not the UPF's", gpdu(tcp4(995), qfi=9, dst="192.0.2.77"), "not_addressed_to_upf"),
        ("plain IP on N3", plain(udp4(994, src=GNB_IP, dst=N3_IP, dport=9999), GNB_ROUTER_MAC, N3_MAC), "not_gtpu_on_n3"),
    ]
    # The valid ones that BAD_INPUTS.md lists as cases to survive: parsed and forwarded.
    survivors = [
        ("7 S without E (next-type octet 0x85 ignored)",
         lambda i: raw_gtp(g(flags=0x32, opt=b"\0\x09\0\x85", body=bytes(i)))),
        ("7 PN without E", lambda i: raw_gtp(g(flags=0x31, opt=b"\0\0\x07\x85", body=bytes(i)))),
        ("11 unknown extension 0x05, comprehension not required",
         lambda i: raw_gtp(g(flags=0x34, opt=b"\0\0\0\x05", body=bytes([1, 0, 0, 0]) + bytes(i)))),
        ("11 unknown extension 0x41, comprehension not required",
         lambda i: raw_gtp(g(flags=0x34, opt=b"\0\0\0\x41", body=bytes([1, 0, 0, 0]) + bytes(i)))),
        ("15 UDP 2152 -> 2152 inside the tunnel is user data",
         lambda i: gpdu(i, qfi=9)),
    ]
    tag = 100

    def valid(label="valid", builder=None, inner=None):
        nonlocal tag
        tag += 1
        if inner is None:
            inner = tcp4(tag) if tag % 2 else udp4(tag)
        c.add("n3", builder(inner) if builder else gpdu(inner, qfi=9), tag=tag, inner=inner, outcome="core", label=label)

    valid()
    for label, frame, reason in bad:
        c.add("n3", frame, outcome=reason, label=label)
        valid()
    for label, builder in survivors:
        inner = udp4(tag + 1, dport=2152, sport=2152, payload=lookalike()) \
            if label.startswith("15") else None
        valid(label, builder, inner)
        valid()
    drops = {}
    answered = 0
    for _, _, reason in bad:
        if reason.startswith("answered:"):
            answered += 1
            continue
        drops[reason] = drops.get(reason, 0) + 1
    valid_count = sum(1 for f in c.manifest["frames"] if f["outcome"] == "core")
    expect = {"ports": {"core": {"count": valid_count}, "engines": {"count": 0}, "n3": {"count": answered}},
              "drops": drops, "actions": {"n6": valid_count}}
    c.config_extra = "gtpu:\n  error_indications_per_peer: 0   # unknown TEIDs: counted drops only\n"
    c.write(policy, expect, drops=drops, valid=valid_count, bad=len(bad) - answered, answered=answered)


def case_switch(c):
    """8. One flow at a paced rate; the test changes the session's rule (steer -> n9) through the
    control socket mid-replay. changes.yaml is the upfctl `apply --changes` file."""
    steer = session1([access_rule()], [{"id": 1, "type": "steer", "engine": "llm"}])
    n9 = session1([access_rule()], [dict(id=1, **N9)])
    count = 400
    for tag in range(1, count + 1):
        inner = udp4(tag, dport=443, sport=40000, size=64)
        c.add("n3", gpdu(inner, qfi=9), tag=tag, inner=inner, outcome="engines-then-core")
    dump({"changes": [{"op": "put_session", "session": n9}]}, os.path.join(c.outdir, "changes.yaml"))
    c.write({"engines": [ENGINE_LLM], "sessions": [steer]}, None, count=count, changes="changes.yaml")


def case_stress(c):
    """9. A few thousand frames of every kind, as fast as the rings take them, on three ports:
    the harness must account for every one and return every mbuf (exit status 0)."""
    s1 = session1([access_rule(1, action=1, precedence=10, match={"destination_ports": [443], "protocol": 17}),
                   access_rule(2, action=2, precedence=100),
                   {"id": 3, "precedence": 100, "source": "core", "action": 3},
                   {"id": 4, "precedence": 100, "source": "engine", "action": 3}],
                  [{"id": 1, "type": "steer", "engine": "llm"}, dict(id=2, **N9), {"id": 3, "type": "n3"}])
    policy = {"engines": [ENGINE_LLM], "sessions": [s1]}
    # Built once and copied: scapy is slow, the test is about volume.
    up_steer = gpdu(udp4(1, dport=443, size=200), qfi=9)
    up_n9 = gpdu(tcp4(2, size=1000), qfi=9)
    down_core = plain(tcp4(3, src="8.8.8.8", dst=UE1, sport=443, dport=40000, size=1400), CORE_NEXT_HOP_MAC, CORE_MAC)
    down_engine = plain(udp4(4, src=LLM_IP, dst=UE1, size=100), LLM_MAC, ENGINES_MAC)
    bad = raw_gtp(bytes.fromhex("36ff000500000001000000ff00"))
    unknown = gpdu(udp4(5), teid=999)
    pattern = [("n3", up_steer), ("n3", up_n9), ("core", down_core), ("engines", down_engine), ("n3", bad),
               ("n3", unknown), ("n3", up_n9), ("core", down_core)]
    rounds = 500
    counts = {}
    pattern = [(port, bytes(frame)) for port, frame in pattern]
    for r in range(rounds):
        for port, frame in pattern:
            c.add(port, frame)
    for port, _ in pattern:
        counts[port] = counts.get(port, 0) + rounds
    c.manifest["frames"] = []   # 4000 entries of nothing useful
    c.config_extra = "gtpu:\n  error_indications_per_peer: 0   # unknown TEIDs: counted drops only\n"
    c.write(policy, {"ports": {"engines": {"count": rounds}, "core": {"count": 2 * rounds}, "n3": {"count": 3 * rounds}},
                     "drops": {"gtp_extension_zero_length": rounds, "unknown_teid": rounds},
                     "actions": {"steer": rounds, "n9": 2 * rounds, "n3": 3 * rounds}},
            counts=counts, rounds=rounds)


def case_devices(c):
    """Ports on PCI devices that this machine does not have, and a vdev of a driver that does not
    exist: the harness ignores devices and EAL device lists, and runs the same data path on rings."""
    devices = ["0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2"]
    config = {
        "log_level": "warning",
        "eal": {"lcores": "0,1", "memory_mb": 512, "huge_pages": False, "pci": devices,
                "vdevs": ["net_definitely_not_a_driver0"]},
        "ports": [
            {"name": "n3", "device": devices[0], "role": "n3", "ipv4": N3_IP, "mac": N3_MAC, "next_hop_mac": GNB_ROUTER_MAC},
            {"name": "core", "device": devices[1], "role": "core", "ipv4": CORE_IP, "mac": CORE_MAC,
             "next_hop_mac": CORE_NEXT_HOP_MAC},
            {"name": "engines", "device": devices[2], "role": "engine", "ipv4": "192.168.50.1", "mac": ENGINES_MAC}],
    }
    c.config = config
    inner = tcp4(71)
    c.add("n3", gpdu(inner, qfi=9), tag=71, inner=inner, outcome="core")
    policy = {"sessions": [session1([access_rule()], [{"id": 1, "type": "n6"}])]}
    c.write(policy, {"ports": {"core": {"count": 1, "packets": [{"kind": "ip", "inner_src": UE1, "src_mac": CORE_MAC}]}}})


def case_fallback(c):
    """Engines whose instances cannot be used (no MAC known yet): `fallback: core` forwards the
    packet by the next matching rule that does not steer (counted engine_fallback_core),
    `fallback: drop` drops it (engine_down_drop): sovereign data never leaves the node."""
    policy = {
        "engines": [{"id": "vision", "instances": [{"port": "engines", "address": "192.168.50.20"}], "fallback": "core"},
                    {"id": "sovereign", "instances": [{"port": "engines", "address": "192.168.50.30"}], "fallback": "drop"}],
        "sessions": [session1(
            [access_rule(1, action=1, precedence=10, match={"protocol": 6, "destination_ports": [9000]}),
             access_rule(2, action=2, precedence=20, match={"protocol": 6, "destination_ports": [9001]}),
             access_rule(3, action=3, precedence=100)],
            [{"id": 1, "type": "steer", "engine": "vision"}, {"id": 2, "type": "steer", "engine": "sovereign"},
             dict(id=3, **N9)])],
    }
    flows = [(81, tcp4(81, dport=9000), "core", "vision is down: fallback core -> the default N9 rule"),
             (82, tcp4(82, dport=9001), "engine_down_drop", "sovereign is down: fallback drop"),
             (83, udp4(83, dport=9000), "core", "not the steering rule's protocol: N9")]
    for tag, inner, outcome, label in flows:
        c.add("n3", gpdu(inner, qfi=9), tag=tag, inner=inner, outcome=outcome, label=label)
    expect = {"ports": {"core": {"count": 2}, "engines": {"count": 0}},
              "drops": {"engine_down_drop": 1}, "actions": {"engine_fallback_core": 1, "n9": 2, "steer": 0}}
    c.write(policy, expect)


def echo_request(seq, sport=40000, dst=N3_IP):
    return Ether(src=GNB_ROUTER_MAC, dst=N3_MAC) / IP(src=GNB_IP, dst=dst) / UDP(sport=sport, dport=2152) / \
        Raw(bytes([0x32, 1, 0, 4, 0, 0, 0, 0, seq >> 8, seq & 0xFF, 0, 0]))


def error_indication(teid, gsn):
    """An Error Indication from the gNB: TEID Data I + GSN Address (TS 29.281 §7.3.1)."""
    a = bytes(int(x) for x in gsn.split("."))
    ies = bytes([16]) + teid.to_bytes(4, "big") + bytes([133, 0, 4]) + a
    gtp = bytes([0x32, 26]) + (4 + len(ies)).to_bytes(2, "big") + bytes(4) + bytes([0, 0, 0, 0]) + ies
    return Ether(src=GNB_ROUTER_MAC, dst=N3_MAC) / IP(src=GNB_IP, dst=N3_IP) / UDP(sport=2152, dport=2152) / Raw(gtp)


def arp_request(target, sender_ip, sender_mac, dst_mac="ff:ff:ff:ff:ff:ff"):
    from scapy.all import ARP
    return Ether(src=sender_mac, dst=dst_mac) / ARP(op=1, hwsrc=sender_mac, psrc=sender_ip, pdst=target)


def case_path_management(c):
    """Path management on n3 at a paced rate (the test passes --rate): an Echo Request (one Echo
    Response), an ARP request for the n3 address (one ARP reply), FLOOD G-PDUs to an unknown TEID
    from one gNB (Error Indications at most at the configured per-peer rate), then an Error
    Indication from the gNB (an `error_indication` event on the control socket)."""
    policy = {"sessions": [session1([access_rule()], [{"id": 1, "type": "n6"}])]}
    flood = 10000
    c.add("n3", echo_request(0x4242), label="echo request", outcome="answered")
    c.add("n3", arp_request(N3_IP, "192.0.2.254", GNB_ROUTER_MAC), label="arp request", outcome="answered")
    unknown = bytes(gpdu(udp4(7, sport=1234), teid=0xBADC0DE, qfi=9, sport=33333))
    for _ in range(flood):
        c.add("n3", unknown, label="unknown teid")
    c.add("n3", error_indication(0x1000, GNB_IP), label="error indication from the gNB", outcome="event")
    c.config_extra = "gtpu:\n  error_indications_per_peer: 5\n  error_indications_total: 1000\n"
    c.write(policy, None, flood=flood, rate_per_peer=5)


def case_next_hop_arp(c):
    """The core next hop given by address: upfd asks for it by ARP on the core port; the router's
    reply (first input frame) teaches its MAC before the first G-PDU goes out by N9.

    The core port is listed first so that the worker polls it first in each round: when a loaded
    machine stalls the paced feeder, the reply and the first G-PDUs reach the rings together, and
    with n3 polled first those G-PDUs met an unresolved next hop (a flaky CI run)."""
    config = {
        "log_level": "warning",
        "eal": {"lcores": "0,1", "memory_mb": 512, "huge_pages": False, "vdevs": []},
        "ports": [
            {"name": "core", "device": "net_null1", "role": "core", "ipv4": CORE_IP, "mac": CORE_MAC, "next_hop": PEER_IP},
            {"name": "n3", "device": "net_null0", "role": "n3", "ipv4": N3_IP, "mac": N3_MAC, "next_hop_mac": GNB_ROUTER_MAC},
            {"name": "engines", "device": "net_null2", "role": "engine", "ipv4": "192.168.50.1", "mac": ENGINES_MAC}],
    }
    c.config = config
    from scapy.all import ARP
    c.add("core", Ether(src=CORE_NEXT_HOP_MAC, dst=CORE_MAC) /
          ARP(op=2, hwsrc=CORE_NEXT_HOP_MAC, psrc=PEER_IP, hwdst=CORE_MAC, pdst=CORE_IP), label="router's ARP reply",
          outcome="absorbed")
    policy = {"sessions": [session1([access_rule()], [dict(id=1, **N9)])]}
    for tag in range(201, 221):
        inner = udp4(tag)
        c.add("n3", gpdu(inner, qfi=9), tag=tag, inner=inner, outcome="core")
    c.write(policy, None, count=20)


MBR_KBPS = 2000            # 250 packets/s of 1000-byte inner packets
MBR_INNER_BYTES = 1000
MBR_SECONDS = 3.0
MBR_BURST_MS = 50


def mbr_case(direction, factor):
    """QoS MBR. One session whose rules all name QERs with an MBR of 2000 kbit/s: qos 1 limits
    the uplink (access -> n6), qos 2 the downlink of both the core rule and the engine rule (one
    meter, keyed by the session's slot, QER and direction). The inner packets are 1000 bytes
    (what the meter counts), so the limit is 250 packets/s; the case offers `factor` x that for
    3 s, at a real rate (`upf-replay run --rate`, in the manifest). Uplink comes on n3 (one
    worker); downlink alternates between core (N6) and engines, two ports that the replay gives
    to two workers when it runs with two: both charge the same meter."""
    def build(c):
        c.config_extra = "qos:\n  burst_ms: %d\n" % MBR_BURST_MS
        session = session1(
            [access_rule(1, action=1, qos=1),
             {"id": 2, "precedence": 100, "source": "core", "action": 2, "qos": 2},
             {"id": 3, "precedence": 100, "source": "engine", "action": 2, "qos": 2}],
            [{"id": 1, "type": "n6"}, {"id": 2, "type": "n3"}],
            qos=[{"id": 1, "mbr_uplink_kbps": MBR_KBPS}, {"id": 2, "mbr_downlink_kbps": MBR_KBPS, "qfi": 7}])
        limit_pps = MBR_KBPS * 1000 / 8 / MBR_INNER_BYTES
        rate = limit_pps * factor
        count = int(round(rate * MBR_SECONDS))
        for tag in range(1, count + 1):
            if direction == "uplink":
                inner = udp4(tag % 65536, dport=443, size=MBR_INNER_BYTES - 28)
                c.add("n3", gpdu(inner, qfi=9), tag=tag, outcome="core-or-mbr_exceeded")
            else:
                port = "core" if tag % 2 else "engines"
                src = "198.51.100.9" if port == "core" else LLM_IP
                inner = udp4(tag % 65536, src=src, dst=UE1, sport=443, dport=40000, size=MBR_INNER_BYTES - 28)
                src_mac, dst_mac = (CORE_NEXT_HOP_MAC, CORE_MAC) if port == "core" else (LLM_MAC, ENGINES_MAC)
                c.add(port, plain(inner, src_mac, dst_mac), tag=tag, outcome="n3-or-mbr_exceeded")
        c.write({"engines": [ENGINE_LLM], "sessions": [session]}, None, count=count, rate=rate, limit_pps=limit_pps,
                burst_ms=MBR_BURST_MS, seconds=MBR_SECONDS)
    return build


def case_health(c):
    """Engine health. Engine llm has one instance at 127.0.0.1 whose TCP probe port (the
    PROBE_PORT environment variable: the test picks a free one) nobody listens on at first;
    fallback drop. One uplink flow steered to it at a paced rate for ~10 s: the test watches
    engine.list through the replay's socket, then starts a listener on the port."""
    probe_port = int(os.environ.get("PROBE_PORT", "19999"))
    engine = {"id": "llm", "instances": [{"port": "engines", "address": "127.0.0.1", "mac": LLM_MAC}],
              "fallback": "drop",
              "probe": {"kind": "tcp", "port": probe_port, "interval_ms": 100, "timeout_ms": 50, "failures_before_down": 2}}
    session = session1([access_rule(1, action=1, precedence=10), access_rule(2, action=2, precedence=100)],
                       [{"id": 1, "type": "steer", "engine": "llm"}, dict(id=2, **N9)])
    count = 1000
    for tag in range(1, count + 1):
        inner = udp4(tag, dport=443, sport=40000, size=64)
        c.add("n3", gpdu(inner, qfi=9), tag=tag, outcome="engines-or-engine_down_drop")
    c.write({"engines": [engine], "sessions": [session]}, None, count=count, rate=100, probe_port=probe_port)


BUFFERED_UE1 = 200


def case_buffering(c):
    """Buffering, paced at 100 pps by the test: first 100 downlink packets for session 3 (UE3,
    forwarded: time for the test to subscribe to events), then 20 for session 2 (UE2, buffer
    limit 5), then 200 for session 1 (UE1, buffer limit 128) which the test updates to forward
    (the `release_session` below) once its downlink_data event came: what session 1 held goes
    out first, in order, then the rest as it arrives."""
    def downlink_session(seid, ue, teid, action):
        return {"seid": seid, "ue_ipv4": ue, "n3": {"teid": teid, "address": N3_IP}, "gnb": {"teid": 4096 + seid, "address": GNB_IP},
                "default_qfi": 9, "rules": [{"id": 1, "precedence": 100, "source": "core", "action": 1}],
                "actions": [dict(id=1, **action)]}
    s1 = downlink_session(1, UE1, 256, {"type": "buffer", "limit": 128})
    s2 = downlink_session(2, UE2, 257, {"type": "buffer", "limit": 5})
    s3 = downlink_session(3, UE3, 258, {"type": "n3"})
    for tag in range(301, 401):
        inner = udp4(tag, src="8.8.4.4", dst=UE3, sport=53, dport=40000)
        c.add("core", plain(inner, CORE_NEXT_HOP_MAC, CORE_MAC), tag=tag, inner=inner, outcome="n3")
    for tag in range(201, 221):
        inner = udp4(tag, src="8.8.4.4", dst=UE2, sport=53, dport=40000)
        c.add("core", plain(inner, CORE_NEXT_HOP_MAC, CORE_MAC), tag=tag, inner=inner,
              outcome="buffered" if tag < 206 else "buffer_full")
    for tag in range(1, BUFFERED_UE1 + 1):
        inner = udp4(tag, src="8.8.4.4", dst=UE1, sport=53, dport=40000)
        c.add("core", plain(inner, CORE_NEXT_HOP_MAC, CORE_MAC), tag=tag, inner=inner, outcome="n3")
    c.write({"engines": [], "sessions": [s1, s2, s3]}, None, rate=100,
            release_session=downlink_session(1, UE1, 256, {"type": "n3"}))


def echo_response(seq, src=GNB_IP):
    return (Ether(src=GNB_ROUTER_MAC, dst=N3_MAC) / IP(src=src, dst=N3_IP) / UDP(sport=2152, dport=2152) /
            GTP_U_Header(gtp_type=2, S=1, seq=seq, teid=0) / Raw(bytes([14, 0])))


def case_path_switch(c):
    """End Marker and peer supervision, paced at 100 pps by the test: 200 downlink packets for
    session 1 (gNB 192.0.2.100, TEID 4096) from the core; the test puts the session again with
    gNB 192.0.2.101 / TEID 4097 and end_marker: true once 80 have gone out. Meanwhile upfd
    supervises gNB 192.0.2.100 with Echo Requests every 0.2 s (2 misses = down): the first 100
    n3 frames interleave an Echo Response from it every 10 frames, then it falls silent."""
    s1 = {"seid": 1, "ue_ipv4": UE1, "n3": {"teid": 256, "address": N3_IP}, "gnb": {"teid": 4096, "address": GNB_IP},
          "default_qfi": 9, "rules": [{"id": 1, "precedence": 100, "source": "core", "action": 1}],
          "actions": [{"id": 1, "type": "n3"}]}
    moved = dict(s1, gnb={"teid": 4097, "address": GNB2_IP})
    for tag in range(1, 201):
        inner = udp4(tag, src="8.8.4.4", dst=UE1, sport=53, dport=40000)
        c.add("core", plain(inner, CORE_NEXT_HOP_MAC, CORE_MAC), tag=tag, inner=inner, outcome="n3")
        if tag <= 100 and tag % 10 == 0:
            c.add("n3", echo_response(tag), label="echo response from the gNB", outcome="absorbed")
    c.config_extra = ("gtpu:\n  echo_peers: [{ address: %s, port: n3 }]\n  echo_interval_s: 0.2\n  echo_misses: 2\n"
                      % GNB_IP)
    c.write({"engines": [], "sessions": [s1]}, None, rate=100, release_session=moved)


CASES = {
    "path-switch": case_path_switch,
    "buffering": case_buffering,
    "path-management": case_path_management,
    "next-hop-arp": case_next_hop_arp,
    "health": case_health,
    "mbr-uplink-0.99": mbr_case("uplink", 0.99),
    "mbr-uplink-2": mbr_case("uplink", 2.0),
    "mbr-downlink-0.99": mbr_case("downlink", 0.99),
    "mbr-downlink-2": mbr_case("downlink", 2.0),
    "steer": case_steer,
    "n9": case_n9,
    "n6": case_n6,
    "rules": case_rules,
    "downlink": case_downlink,
    "ue-to-ue": case_ue_to_ue,
    "bad-inputs": case_bad_inputs,
    "switch": case_switch,
    "stress": case_stress,
    "devices": case_devices,
    "fallback": case_fallback,
}


def main(argv):
    if argv[1:2] == ["list"]:
        print("\n".join(CASES))
        return 0
    if len(argv) != 3 or argv[1] not in CASES:
        print(__doc__, file=sys.stderr)
        print("cases: " + ", ".join(CASES), file=sys.stderr)
        return 2
    CASES[argv[1]](Case(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
