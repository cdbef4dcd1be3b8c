#!/usr/bin/python3
"""Independent oracle: `upf-replay decode --json` against tshark, frame by frame.

Usage: tshark_oracle.py UPF_REPLAY CAPTURE [CAPTURE ...]

For every frame of every capture, the decoder's {kind, teid, qfi, inner 5-tuple} is compared
with what is derived, by the rules below, from

    tshark -r FILE -o ip.check_checksum:TRUE -o ip.defragment:TRUE -T json

The JSON is read with `object_pairs_hook` so that repeated keys (two "ip" layers, two "udp"
layers, ...) are kept in wire order: the layer list of a frame is exactly tshark's dissection
order, which -T fields (values of all layers merged per field) and --no-duplicate-keys (keys
merged into arrays, order between protocols lost) cannot give.

Derivation rules (tshark -> expected decoder output)
----------------------------------------------------
L1  The outer IP is the first ip/ipv6 layer, and it must sit directly on the link layer
    (eth, vlan, sll, raw): the data path reads no other encapsulation. No such layer -> non_gtp
    (ARP, LLDP, ...). More than 2 VLAN tags -> drop vlan_too_deep.
L2  Outer IPv4 with ip.checksum.status == 0 (bad) -> drop outer_ipv4_bad_checksum.
L3  Outer IPv4 that is a fragment (MF=1 or offset != 0) and not the frame where tshark shows
    the reassembled datagram (no ip.fragments in the layer) -> fragment. The frame carrying
    ip.fragments is judged on the reassembled datagram, as tshark dissects it.
    Outer IPv6 with a Fragment header -> drop outer_ipv6_fragment (the data path does not
    reassemble outer IPv6; tshark does).
L4  GTP-U is only UDP destination port 2152 (TS 29.281 §4.4.2): a user plane receives GTP-U
    on 2152; 2123 is GTP-C, and a packet merely *from* port 2152 is not addressed to the GTP-U
    entity. So tshark's gtp layer on 2123 or on source port 2152 only -> non_gtp, and any
    non-UDP or other-port traffic -> non_gtp. UDP to 2152 that tshark did not dissect as GTP
    cannot be judged: reported as a disagreement (kind tshark=<undissected>).
L5  The GTP-U header is the gtp layer right after that UDP layer (later gtp layers are
    tunnel-in-tunnel look-alikes inside the T-PDU). kind from gtp.message:
    0x01 echo_request, 0x02 echo_response, 0x1a error_indication, 0x1f ext_hdr_notification,
    0xfe end_marker, 0xff gpdu. teid = gtp.teid. qfi = the PDU Session Container's
    gtp.ext_hdr.pdu_ses_con.qos_flow_id when the extension is present.
L6  Documented protocol rules that make the data path drop what tshark decodes:
      version != 1                          -> gtp_version_not_1
      protocol type 0 (GTP')               -> gtp_prime
      message type not in the list of L5    -> gtp_unknown_message_type  (TS 29.281 Table 6.1-1)
      G-PDU with TEID 0                     -> gpdu_teid_zero            (TS 29.281 §5.1)
      Echo Request/Response with S=0        -> echo_without_sequence_number (§7.2.1)
      Echo Response without Recovery IE     -> gtp_missing_mandatory_information_element (§7.2.2)
      Error Indication without TEID Data I
        or GSN Address                      -> gtp_missing_mandatory_information_element (§7.3.1)
      PDU Session Container with QFI 0      -> psc_qfi_zero
      G-PDU with no IPv4/IPv6 layer after
        the gtp layer                       -> inner_ip_version_unknown or gpdu_empty
                                               (only IP PDU sessions are carried)
      inner IPv4 ip.checksum.status == 0    -> inner_ipv4_bad_checksum
L7  The inner packet of a G-PDU is the FIRST ip/ipv6 layer after the GTP-U header (not the
    innermost: ICMP errors quote IP headers, Teredo and GTP-in-GTP carry further IP layers, and
    the data path's SDF filters see the first one). version/src/dst from it; proto is ip.proto,
    or for IPv6 the next header after the extension headers (ipv6.hopopts/routing/dstopts/
    fraghdr subtrees, then an "ah" layer). sport/dport from the tcp/udp/sctp layer that directly
    follows, absent for other protocols and for non-first fragments. IPv6 text is compared in
    RFC 5952 canonical form, computed here from tshark's address value.

Drops that no rule predicts
---------------------------
The parser refuses some malformed packets that tshark still dissects. Such a drop is accepted
only when tshark reports an Error-severity expert item (or a malformed-packet exception) in the
layers the drop reason is about:
    vlan_/frame_/outer_/udp_ reasons   -> link, outer IP and outer UDP layers
    gtp_/psc_/echo_/gpdu_ reasons      -> the GTP-U layer
    inner_ip*/inner_ipv4/6 reasons     -> the inner IP layer
    inner_l4_truncated                 -> the inner IP layer and the layer after it
Each accepted drop is listed (reason, frame, tshark's expert message). Any other drop, and any
non-drop where a rule of L2/L6 predicts one, is a disagreement.

Output: for each file a summary line, then every disagreement as
    FILE frame N: field: ours=... tshark=...
Exit status 1 if any disagreement (or if a tool failed), else 0.
"""

import ipaddress
import json
import os
import subprocess
import sys

GTPU_PORT = 2152
EXPERT_ERROR = 0x00800000  # _ws.expert.severity of PI_ERROR

MESSAGE_KINDS = {
    0x01: "echo_request",
    0x02: "echo_response",
    0x1A: "error_indication",
    0x1F: "ext_hdr_notification",
    0xFE: "end_marker",
    0xFF: "gpdu",
}
LINK_LAYERS = {"frame", "eth", "ethertype", "vlan", "sll", "raw", "pkt_comment"}
IP_LAYERS = {"ip", "ipv6"}
PORT_LAYERS = {"tcp", "udp", "sctp"}


# ---------------------------------------------------------------------------------------------
# Helpers over tshark's JSON kept as lists of (key, value) pairs


def pairs_get(pairs, key, default=None):
    """The first value of `key` directly in `pairs`."""
    if isinstance(pairs, list):
        for k, v in pairs:
            if k == key:
                return v
    return default


def pairs_find(pairs, key):
    """The first value of `key` anywhere under `pairs` (depth first, in order)."""
    if not isinstance(pairs, list):
        return None
    for item in pairs:
        if not isinstance(item, tuple):
            continue
        k, v = item
        if k == key:
            return v
        found = pairs_find(v, key)
        if found is not None:
            return found
    return None


def is_pairs(value):
    return isinstance(value, list) and all(isinstance(i, tuple) for i in value)


def experts(pairs):
    """(severity, message) of every expert item under `pairs`."""
    out = []
    if not isinstance(pairs, list):
        return out
    for item in pairs:
        if not isinstance(item, tuple):
            continue
        k, v = item
        if k == "_ws.expert" and is_pairs(v):
            try:
                severity = int(pairs_get(v, "_ws.expert.severity", "0"))
            except ValueError:
                severity = 0
            out.append((severity, pairs_get(v, "_ws.expert.message", "?")))
        out.extend(experts(v))
    return out


def layer_errors(layer):
    """Error-severity expert messages of one (name, pairs) layer; a malformed layer counts."""
    name, pairs = layer
    if name in ("_ws.malformed", "_ws.short"):
        msgs = [m for _, m in experts(pairs)] or ["[Malformed Packet]"]
        return msgs
    return [m for sev, m in experts(pairs) if sev >= EXPERT_ERROR]


def as_int(text, default=None):
    if text is None:
        return default
    try:
        return int(text, 0)
    except (TypeError, ValueError):
        return default


def rfc5952(text):
    """RFC 5952 canonical text of an IPv6 address (lower case, longest run of >= 2 zero
    groups compressed, first run on ties, IPv4-mapped addresses with a dotted tail)."""
    packed = ipaddress.IPv6Address(text).packed
    groups = [int.from_bytes(packed[i:i + 2], "big") for i in range(0, 16, 2)]
    if groups[:5] == [0] * 5 and groups[5] == 0xFFFF:
        return "::ffff:" + str(ipaddress.IPv4Address(packed[12:]))
    best_start, best_len, i = -1, 0, 0
    while i < 8:
        if groups[i] == 0:
            j = i
            while j < 8 and groups[j] == 0:
                j += 1
            if j - i > best_len:
                best_start, best_len = i, j - i
            i = j
        else:
            i += 1
    if best_len < 2:
        return ":".join("%x" % g for g in groups)
    left = ":".join("%x" % g for g in groups[:best_start])
    right = ":".join("%x" % g for g in groups[best_start + best_len:])
    return left + "::" + right


# ---------------------------------------------------------------------------------------------
# Expected decoder output from one tshark frame


class Expected:
    def __init__(self, kind):
        self.kind = kind            # decoder kind, or "drop", or "<...>" when undecidable
        self.reasons = set()        # for kind == "drop": the reasons a rule predicts
        self.rule = ""              # which rule predicted the drop
        self.teid = None
        self.qfi = None
        self.inner = None           # dict like the decoder's "inner", or None
        self.unverified_ports = False
        # Layer index ranges that may justify an unpredicted drop, by reason family.
        self.spans = {"outer": [], "gtp": [], "inner_ip": [], "inner_l4": []}
        self.layers = []

    def drop(self, reasons, rule):
        self.kind = "drop"
        self.reasons = set(reasons)
        self.rule = rule
        return self

    def errors_for(self, reason):
        if reason.startswith(("vlan_", "frame_", "outer_", "udp_", "unsupported_")):
            family = "outer"
        elif reason.startswith(("gtp_", "psc_", "echo_", "gpdu_")):
            family = "gtp"
        elif reason == "inner_l4_truncated":
            family = "inner_l4"
        elif reason.startswith("inner_"):
            family = "inner_ip"
        else:
            return []
        msgs = []
        for index in self.spans[family]:
            msgs.extend(layer_errors(self.layers[index]))
        return msgs


def expected_from_tshark(layers):
    names = [n for n, _ in layers]
    exp = Expected("non_gtp")
    exp.layers = layers

    def with_malformed(index):
        """`index` plus a malformed-exception layer right after it, if any."""
        span = [index]
        if index + 1 < len(layers) and names[index + 1] in ("_ws.malformed", "_ws.short"):
            span.append(index + 1)
        return span

    # L1: the outer IP, directly on the link.
    outer_index = next((i for i, n in enumerate(names) if n in IP_LAYERS), None)
    link_span = list(range(0, outer_index if outer_index is not None else len(layers)))
    exp.spans["outer"] = link_span
    if names.count("vlan") > 2:
        return exp.drop({"vlan_too_deep"}, "L1 more than 2 VLAN tags")
    if outer_index is None or any(n not in LINK_LAYERS for n in names[:outer_index]):
        return exp
    outer_name, outer = layers[outer_index]
    exp.spans["outer"] = link_span + with_malformed(outer_index)

    # L2, L3: outer IP checksum and fragments.
    if outer_name == "ip":
        if pairs_get(outer, "ip.checksum.status") == "0":
            return exp.drop({"outer_ipv4_bad_checksum"}, "L2 outer IPv4 bad checksum")
        mf = pairs_find(outer, "ip.flags.mf") == "1"
        offset = as_int(pairs_get(outer, "ip.frag_offset"), 0)
        if (mf or offset) and pairs_get(outer, "ip.fragments") is None:
            exp.kind = "fragment"
            return exp
    elif pairs_get(outer, "ipv6.fraghdr") is not None:
        return exp.drop({"outer_ipv6_fragment"}, "L3 outer IPv6 fragment")

    # L4: UDP to 2152 only.
    udp_index = outer_index + 1
    while udp_index < len(names) and names[udp_index] in ("ipv6.hopopts", "ipv6.routing", "ipv6.dstopts"):
        udp_index += 1
    if udp_index >= len(names) or names[udp_index] != "udp":
        if udp_index < len(names) and names[udp_index] == "_ws.malformed":
            exp.spans["outer"] += [udp_index]
        return exp
    udp = layers[udp_index][1]
    exp.spans["outer"] += with_malformed(udp_index)
    if as_int(pairs_get(udp, "udp.dstport")) != GTPU_PORT:
        return exp
    gtp_index = udp_index + 1
    exp.spans["gtp"] = with_malformed(gtp_index) if gtp_index < len(names) else []
    if gtp_index >= len(names) or names[gtp_index] != "gtp":
        after = names[gtp_index] if gtp_index < len(names) else "nothing"
        exp.kind = "<UDP to 2152 dissected as %s, not gtp>" % after
        return exp

    # L5, L6: the GTP-U header.
    gtp = layers[gtp_index][1]
    version = as_int(pairs_find(gtp, "gtp.flags.version"))
    if version is not None and version != 1:
        return exp.drop({"gtp_version_not_1"}, "L6 GTP version != 1")
    if pairs_find(gtp, "gtp.flags.payload") == "0":
        return exp.drop({"gtp_prime"}, "L6 GTP'")
    message = as_int(pairs_get(gtp, "gtp.message"))
    if message not in MESSAGE_KINDS:
        return exp.drop({"gtp_unknown_message_type"}, "L6 message type %s" % pairs_get(gtp, "gtp.message"))
    exp.kind = MESSAGE_KINDS[message]
    exp.teid = as_int(pairs_get(gtp, "gtp.teid"))
    qfi = pairs_find(gtp, "gtp.ext_hdr.pdu_ses_con.qos_flow_id")
    exp.qfi = as_int(qfi)
    if exp.qfi == 0:
        return exp.drop({"psc_qfi_zero"}, "L6 PSC QFI 0")
    seq_flag = pairs_find(gtp, "gtp.flags.s") == "1"
    if exp.kind in ("echo_request", "echo_response") and not seq_flag:
        return exp.drop({"echo_without_sequence_number"}, "L6 Echo without S flag")
    if exp.kind == "echo_response" and pairs_find(gtp, "gtp.recovery") is None:
        return exp.drop({"gtp_missing_mandatory_information_element"}, "L6 Echo Response without Recovery")
    if exp.kind == "error_indication" and (
            pairs_find(gtp, "gtp.teid_data") is None
            or (pairs_find(gtp, "gtp.gsn_ipv4") is None and pairs_find(gtp, "gtp.gsn_ipv6") is None)):
        return exp.drop({"gtp_missing_mandatory_information_element"},
                        "L6 Error Indication without TEID Data I / GSN Address")
    if exp.kind != "gpdu":
        return exp
    if exp.teid == 0:
        return exp.drop({"gpdu_teid_zero"}, "L6 G-PDU TEID 0")

    # L7: the inner packet is the first IP layer after the GTP-U header.
    inner_index = gtp_index + 1
    if inner_index < len(names) and names[inner_index] == "_ws.malformed":
        inner_index += 1
    if inner_index >= len(names) or names[inner_index] not in IP_LAYERS:
        return exp.drop({"inner_ip_version_unknown", "gpdu_empty"}, "L6 G-PDU without an IP T-PDU")
    inner_name, inner = layers[inner_index]
    exp.spans["inner_ip"] = with_malformed(inner_index)
    later_fragment = False
    if inner_name == "ip":
        if pairs_get(inner, "ip.checksum.status") == "0":
            return exp.drop({"inner_ipv4_bad_checksum"}, "L6 inner IPv4 bad checksum")
        info = {"version": 4, "src": pairs_get(inner, "ip.src"), "dst": pairs_get(inner, "ip.dst"),
                "proto": as_int(pairs_get(inner, "ip.proto"))}
        offset = as_int(pairs_get(inner, "ip.frag_offset"), 0)
        later_fragment = offset != 0
    else:
        proto = as_int(pairs_get(inner, "ipv6.nxt"))
        for key, value in inner:
            if key in ("ipv6.hopopts", "ipv6.routing", "ipv6.dstopts", "ipv6.fraghdr") and is_pairs(value):
                nxt = as_int(pairs_get(value, key + ".nxt"))
                if nxt is not None:
                    proto = nxt
                if key == "ipv6.fraghdr":
                    frag_offset = as_int(pairs_get(value, "ipv6.fraghdr.offset"), 0)
                    later_fragment = frag_offset != 0
                    if later_fragment:
                        break
        l4 = inner_index + 1
        while not later_fragment and proto == 51 and l4 < len(names) and names[l4] == "ah":
            nxt = as_int(pairs_find(layers[l4][1], "ah.next_header"))
            if nxt is None:
                break
            proto = nxt
            l4 += 1
        info = {"version": 6, "src": rfc5952(pairs_get(inner, "ipv6.src")),
                "dst": rfc5952(pairs_get(inner, "ipv6.dst")), "proto": proto}
        inner_index = l4 - 1
    l4_index = inner_index + 1
    if l4_index < len(names):
        exp.spans["inner_l4"] = exp.spans["inner_ip"] + with_malformed(l4_index)
    else:
        exp.spans["inner_l4"] = list(exp.spans["inner_ip"])
    if not later_fragment and info["proto"] in (6, 17, 132):
        l4_name = names[l4_index] if l4_index < len(names) else None
        if l4_name in PORT_LAYERS:
            l4 = layers[l4_index][1]
            info["sport"] = as_int(pairs_get(l4, l4_name + ".srcport"))
            info["dport"] = as_int(pairs_get(l4, l4_name + ".dstport"))
        else:
            # A first fragment (tshark, defragmenting, holds its transport header back) or a
            # transport header tshark could not dissect: the ports cannot be read from tshark,
            # so they are not compared (a note is printed). A drop (inner_l4_truncated) is
            # accepted only with tshark's error on those layers.
            exp.unverified_ports = True
    exp.inner = info
    return exp


# ---------------------------------------------------------------------------------------------
# Running the tools


def run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def tshark_frames(path):
    code, out, err = run(["tshark", "-r", path, "-n", "-o", "ip.check_checksum:TRUE",
                          "-o", "ip.defragment:TRUE", "-T", "json"])
    if code != 0:
        raise RuntimeError("tshark failed (%d): %s" % (code, err.strip()))
    packets = json.loads(out, object_pairs_hook=lambda pairs: pairs) if out.strip() else []
    frames = {}
    for packet in packets:
        layers = pairs_get(pairs_get(packet, "_source"), "layers")
        number = as_int(pairs_get(pairs_get(layers, "frame"), "frame.number"))
        frames[number] = layers
    return frames


def our_frames(binary, path):
    code, out, err = run([binary, "decode", "--json", path])
    if code != 0:
        raise RuntimeError("upf-replay decode failed (%d): %s" % (code, err.strip()))
    frames = {}
    for line in out.splitlines():
        line = line.strip()
        if line:
            obj = json.loads(line)
            frames[obj["frame"]] = obj
    return frames


def fmt(value):
    if value is None:
        return "absent"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def compare_frame(number, ours, exp, accepted, rule_drops, notes, name):
    """Disagreements of one frame as (field, ours, tshark) triples."""
    problems = []
    if ours["kind"] == "drop":
        reason = ours.get("reason", "?")
        if exp.kind == "drop" and reason in exp.reasons:
            rule_drops.setdefault("%s (%s)" % (reason, exp.rule), []).append(number)
            return problems
        errors = exp.errors_for(reason)
        if errors:
            accepted.setdefault(reason, []).append((number, errors[0]))
            return problems
        if exp.kind == "drop":
            theirs = "drop(%s) [%s]" % ("|".join(sorted(exp.reasons)), exp.rule)
        else:
            theirs = exp.kind + " (no tshark error on the layers %s is about)" % reason
        problems.append(("kind", "drop(%s)" % reason, theirs))
        return problems
    if exp.kind == "drop":
        problems.append(("kind", ours["kind"], "drop(%s) [%s]" % ("|".join(sorted(exp.reasons)), exp.rule)))
        return problems
    if ours["kind"] != exp.kind:
        problems.append(("kind", ours["kind"], exp.kind))
        return problems
    if exp.kind in ("non_gtp", "fragment"):
        for field in ("teid", "qfi", "inner"):
            if field in ours:
                problems.append((field, fmt(ours[field]), "absent (%s)" % exp.kind))
        return problems
    if ours.get("teid") != exp.teid:
        problems.append(("teid", fmt(ours.get("teid")), fmt(exp.teid)))
    if ours.get("qfi") != exp.qfi:
        problems.append(("qfi", fmt(ours.get("qfi")), fmt(exp.qfi)))
    if exp.kind != "gpdu":
        if "inner" in ours:
            problems.append(("inner", fmt(ours["inner"]), "absent (%s)" % exp.kind))
        return problems
    mine = ours.get("inner")
    if mine is None:
        problems.append(("inner", "absent", fmt(exp.inner)))
        return problems
    fields = ["version", "src", "dst", "proto"]
    if exp.unverified_ports:
        notes.append("%s frame %d: inner ports not verifiable from tshark (ours %s:%s)"
                     % (name, number, fmt(mine.get("sport")), fmt(mine.get("dport"))))
    else:
        fields += ["sport", "dport"]
    for field in fields:
        if mine.get(field) != exp.inner.get(field):
            problems.append(("inner." + field, fmt(mine.get(field)), fmt(exp.inner.get(field))))
    return problems


def check_file(binary, path):
    name = os.path.basename(path)
    lines = []
    try:
        theirs = tshark_frames(path)
        ours = our_frames(binary, path)
    except (RuntimeError, ValueError) as error:
        return 1, ["%s: ERROR %s" % (name, error)]
    disagreements = []
    accepted = {}
    rule_drops = {}
    notes = []
    kinds = {}
    for number in sorted(set(theirs) | set(ours)):
        if number not in theirs:
            disagreements.append((number, "frame", fmt(ours[number]), "absent"))
            continue
        if number not in ours:
            disagreements.append((number, "frame", "absent", "present"))
            continue
        exp = expected_from_tshark(theirs[number])
        kinds[ours[number]["kind"]] = kinds.get(ours[number]["kind"], 0) + 1
        for field, mine, other in compare_frame(number, ours[number], exp, accepted, rule_drops, notes, name):
            disagreements.append((number, field, mine, other))
    summary = "%s: %d frames (%s), %d disagreement%s" % (
        name, len(theirs), " ".join("%s=%d" % kv for kv in sorted(kinds.items())),
        len(disagreements), "" if len(disagreements) == 1 else "s")
    lines.append(summary)
    for label, frames in sorted(rule_drops.items()):
        lines.append("  drop predicted by rule: %s: frames %s" % (label, ",".join(map(str, frames))))
    for reason, cases in sorted(accepted.items()):
        for number, message in cases:
            lines.append("  drop accepted: %s frame %d (tshark error: %s)" % (reason, number, message))
    for note in notes:
        lines.append("  note: " + note)
    for number, field, mine, other in disagreements:
        lines.append("%s frame %d: %s: ours=%s tshark=%s" % (name, number, field, mine, other))
    return (1 if disagreements else 0), lines


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    binary, captures = argv[1], argv[2:]
    status = 0
    for path in captures:
        code, lines = check_file(binary, path)
        status = max(status, code)
        print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
