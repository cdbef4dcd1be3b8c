#!/usr/bin/env python3
"""Session updates at a fixed rate over upfd's control socket (tools/bench 4f).

usage: updater.py SOCKET --sessions N --rate R --seconds S [--batch B]

Re-puts sessions 0, 1, 2, ... of a tools/gen-traffic policy (same SEID, TEID, UE and rules: the
classification must not change; the gNB TEID and the N9 TEID change with every put, so each put is
a real new version through the RCU tables) in `apply` batches of B, R sessions per second in all.
Prints one JSON object: updates done, errors, batch latency (request written -> answer read) p50,
p99, max in ms, achieved rate.
"""
import argparse
import json
import socket
import sys
import time


def ue4(i):
    v = (10 << 24) + i + 1
    return "%d.%d.%d.%d" % (v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255)


def session(i, version):
    teid = ((i + 1) * 2654435761) % (1 << 32) or 1
    return ('{"seid":%d,"ue_ipv4":"%s","n3":{"teid":%d,"address":"192.0.2.1"},"gnb":{"teid":%d,"address":"192.0.2.100"},'
            '"default_qfi":9,"rules":[{"id":1,"precedence":10,"source":"access","application":"inference","action":1},'
            '{"id":2,"precedence":20,"source":"access","match":{"destination_prefixes":["203.0.113.128/25"],"protocol":17},"action":4},'
            '{"id":3,"precedence":100,"source":"access","action":2},{"id":4,"precedence":100,"source":"core","action":3},'
            '{"id":5,"precedence":100,"source":"engine","action":3}],'
            '"actions":[{"id":1,"type":"steer","engine":"llm"},{"id":2,"type":"n9","peer":"203.0.113.1","teid":%d},'
            '{"id":3,"type":"n3"},{"id":4,"type":"drop"}]}') % (i + 1, ue4(i), teid, (i + 1 + version * 7919) % (1 << 31) + 1,
                                                            (i + 1 + version) % (1 << 31) + 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("--sessions", type=int, required=True)
    ap.add_argument("--rate", type=float, default=10000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--batch", type=int, default=100)
    a = ap.parse_args()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(1200):
        try:
            s.connect(a.socket)
            break
        except OSError:
            time.sleep(0.05)
    else:
        print(json.dumps({"error": "cannot connect"}))
        return 1
    f = s.makefile("rb")
    lat, errors, done, rid, nxt, version = [], 0, 0, 0, 0, 1
    start = time.time()
    while time.time() - start < a.seconds:
        due = int((time.time() - start) * a.rate)
        if done + a.batch > due:
            time.sleep(max(0, (done + a.batch) / a.rate - (time.time() - start)))
            continue
        changes = []
        for _ in range(a.batch):
            changes.append('{"op":"put_session","session":%s}' % session(nxt, version))
            nxt += 1
            if nxt == a.sessions:
                nxt, version = 0, version + 1
        rid += 1
        line = ('{"id":%d,"op":"apply","changes":[%s]}\n' % (rid, ",".join(changes))).encode()
        t = time.time()
        s.sendall(line)
        answer = f.readline()
        lat.append((time.time() - t) * 1000)
        if b'"ok":true' not in answer.replace(b" ", b""):
            errors += 1
            if errors < 3:
                print(answer[:300], file=sys.stderr)
        done += a.batch
    elapsed = time.time() - start
    lat.sort()
    pick = lambda p: lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else 0
    print(json.dumps({"updates": done, "errors": errors, "seconds": round(elapsed, 3), "rate": round(done / elapsed, 1),
                      "batch": a.batch, "batch_latency_ms": {"p50": round(pick(50), 3), "p99": round(pick(99), 3),
                                                             "max": round(lat[-1] if lat else 0, 3)}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
