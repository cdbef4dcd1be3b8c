#!/usr/bin/python3
"""Round-trip oracle for the GTP-U codec, with scapy building and tshark decoding.

  gtpu_roundtrip.py generate SEED COUNT OUT.pcap MANIFEST.json
      scapy builds COUNT random valid N3 frames (outer IPv4/IPv6, every GTP-U flag combination,
      extension chains of PDU Session Container / UDP Port / PDCP PDU Number / skippable unknown
      headers, inner IPv4/IPv6 with TCP/UDP/ICMP/ICMPv6) and records what it built.
  gtpu_roundtrip.py check MANIFEST.json REENCAPSULATED.pcap
      tshark decodes the project's re-encapsulated output; every frame must carry the same TEID,
      QFI, PDU type and inner 5-tuple as built, valid checksums, and no malformed layer.
Exit status 1 with every disagreement printed.
"""
import json
import random
import subprocess
import sys

def generate(seed, count, out_path, manifest_path):
    from scapy.all import Ether, ICMP, IP, IPv6, TCP, UDP, Raw, wrpcap
    from scapy.layers.inet6 import ICMPv6EchoRequest
    from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer

    rng = random.Random(seed)
    frames, manifest = [], []

    def v4():
        return "10.%d.%d.%d" % (rng.randrange(256), rng.randrange(256), rng.randrange(1, 255))

    def v6():
        return "2001:db8:%x::%x" % (rng.randrange(1, 0xffff), rng.randrange(1, 0xffff))

    for _ in range(count):
        teid = rng.randrange(1, 2**32)
        inner_version = rng.choice([4, 6])
        src, dst = (v4(), v4()) if inner_version == 4 else (v6(), v6())
        inner = IP(src=src, dst=dst, tos=rng.randrange(256)) if inner_version == 4 else IPv6(src=src, dst=dst)
        proto = rng.choice(["tcp", "udp", "icmp"])
        sport, dport = rng.randrange(1, 65536), rng.randrange(1, 65536)
        payload = Raw(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200))))
        if proto == "tcp":
            inner = inner / TCP(sport=sport, dport=dport, flags="PA") / payload
            number = 6
        elif proto == "udp":
            inner = inner / UDP(sport=sport, dport=dport) / payload
            number = 17
        else:
            inner = inner / (ICMP() if inner_version == 4 else ICMPv6EchoRequest()) / payload
            number = 1 if inner_version == 4 else 58
            sport = dport = None

        # Extension chain (each: length 1, two content octets, next type), PDU Session Container last.
        pieces = []
        if rng.random() < 0.25:
            pieces.append((0x03, bytes([0x01, rng.randrange(256), rng.randrange(256)])))  # skippable unknown
        if rng.random() < 0.25:
            pieces.append((0x40, bytes([0x01, 0x08, 0x68])))  # UDP Port 2152
        if rng.random() < 0.25:
            pieces.append((0xC0, bytes([0x01, rng.randrange(256), rng.randrange(256)])))  # PDCP PDU Number
        rng.shuffle(pieces)
        psc = rng.random() < 0.7
        qfi = rng.randrange(1, 64) if psc else None
        pdu_type = rng.choice([0, 1]) if psc else None
        flags = dict(S=int(rng.random() < 0.3), PN=int(rng.random() < 0.2), seq=rng.randrange(65536),
                     npdu=rng.randrange(256))
        if pieces or psc:
            raw_chain = b""
            for index, (_, piece) in enumerate(pieces):
                next_type = pieces[index + 1][0] if index + 1 < len(pieces) else (0x85 if psc else 0)
                raw_chain += piece + bytes([next_type])
            gtp = GTP_U_Header(gtp_type=255, teid=teid, E=1, next_ex=pieces[0][0] if pieces else 0x85, **flags)
            tail = Raw(raw_chain) / GTPPDUSessionContainer(type=pdu_type, QFI=qfi) if psc else Raw(raw_chain)
            gtp = gtp / tail / inner
        else:
            gtp = GTP_U_Header(gtp_type=255, teid=teid, **flags) / inner
        outer_version = rng.choice([4, 4, 6])
        if outer_version == 4:
            outer = IP(src="192.0.2.%d" % rng.randrange(1, 255), dst="192.0.2.1")
        else:
            outer = IPv6(src="2001:db8:ffff::%x" % rng.randrange(1, 0xffff), dst="2001:db8:ffff::1")
        frame = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:01") / outer / UDP(sport=2152, dport=2152) / gtp
        frames.append(frame)
        manifest.append({"teid": teid, "qfi": qfi, "pdu_type": pdu_type, "outer": outer_version,
                         "inner": {"version": inner_version, "src": src, "dst": dst, "proto": number,
                                   "sport": sport, "dport": dport}})
    wrpcap(out_path, frames)
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)


FIELDS = ["frame.number", "gtp.teid", "gtp.ext_hdr.pdu_ses_con.qos_flow_id", "gtp.ext_hdr.pdu_ses_con.pdu_type",
          "gtp.flags.e", "gtp.flags.s", "gtp.flags.pn", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto",
          "ipv6.nxt", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "ip.checksum.status",
          "udp.checksum.status", "_ws.malformed", "_ws.expert.severity"]


def canonical_v6(text):
    import ipaddress
    return str(ipaddress.IPv6Address(text))


def check(manifest_path, pcap_path):
    with open(manifest_path) as f:
        manifest = json.load(f)
    cmd = ["tshark", "-n", "-r", pcap_path, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
           "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in FIELDS:
        cmd += ["-e", field]
    lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
    problems = []
    if len(lines) != len(manifest):
        problems.append("frames: built %d, re-encapsulated %d" % (len(manifest), len(lines)))
    for built, line in zip(manifest, lines):
        got = dict(zip(FIELDS, line.split("|")))
        n = got["frame.number"]

        def expect(what, ours, theirs):
            if str(ours) != str(theirs):
                problems.append("frame %s: %s: built=%s tshark=%s" % (n, what, ours, theirs))

        expect("teid", built["teid"], int(got["gtp.teid"], 0) if got["gtp.teid"] else None)
        if built["qfi"] is not None:
            expect("qfi", built["qfi"], got["gtp.ext_hdr.pdu_ses_con.qos_flow_id"])
            expect("pdu_type", built["pdu_type"], got["gtp.ext_hdr.pdu_ses_con.pdu_type"])
        else:
            expect("qfi", "", got["gtp.ext_hdr.pdu_ses_con.qos_flow_id"])
        # Egress never inherits S or PN; E only with a PSC.
        expect("flag S", "0", got["gtp.flags.s"].split(",")[0] or "0")
        expect("flag PN", "0", got["gtp.flags.pn"].split(",")[0] or "0")
        inner = built["inner"]
        v4s, v4d = [x for x in got["ip.src"].split(",") if x], [x for x in got["ip.dst"].split(",") if x]
        v6s, v6d = [x for x in got["ipv6.src"].split(",") if x], [x for x in got["ipv6.dst"].split(",") if x]
        # The output's outer family is the input's; the inner header is the last of its family
        # after the outer one.
        if inner["version"] == 4:
            expect("inner src", inner["src"], v4s[-1] if v4s else None)
            expect("inner dst", inner["dst"], v4d[-1] if v4d else None)
            expect("inner proto", inner["proto"], got["ip.proto"].split(",")[-1])
        else:
            expect("inner src", canonical_v6(inner["src"]), canonical_v6(v6s[-1]) if v6s else None)
            expect("inner dst", canonical_v6(inner["dst"]), canonical_v6(v6d[-1]) if v6d else None)
            expect("inner proto", inner["proto"], got["ipv6.nxt"].split(",")[-1])
        if inner["sport"] is not None:
            if inner["proto"] == 6:
                expect("inner sport", inner["sport"], got["tcp.srcport"])
                expect("inner dport", inner["dport"], got["tcp.dstport"])
            else:
                ports = got["udp.srcport"].split(","), got["udp.dstport"].split(",")
                expect("inner sport", inner["sport"], ports[0][-1])
                expect("inner dport", inner["dport"], ports[1][-1])
        statuses = [s for s in got["ip.checksum.status"].split(",") if s]
        if any(s != "1" for s in statuses):  # 1 = good
            problems.append("frame %s: ip checksum status %s" % (n, statuses))
        outer_udp = got["udp.checksum.status"].split(",")[0]
        if outer_udp not in ("1", "3"):  # good, or not present (zero over IPv4)
            problems.append("frame %s: outer udp checksum status %s" % (n, outer_udp))
        if built["outer"] == 6 and outer_udp != "1":
            problems.append("frame %s: outer udp checksum over IPv6 must be present and good" % n)
        if got["_ws.malformed"]:
            problems.append("frame %s: tshark says malformed" % n)
    for problem in problems:
        print(problem)
    print("%d frames, %d disagreements" % (len(manifest), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["generate"]:
        generate(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif sys.argv[1:2] == ["check"]:
        sys.exit(check(sys.argv[2], sys.argv[3]))
    else:
        print(__doc__)
        sys.exit(2)
