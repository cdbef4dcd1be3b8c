#!/usr/bin/env python3
"""Formats the edge lab's JSON for people (tools/edge-lab demo). Reads JSON on standard input.

  report.py answer    a client.py predict report: one line per answer; exit 1 unless all right
  report.py http      a client.py http report
  report.py summary   `upfctl --json stats`: ports, actions, drops, engine instances
"""
import json
import sys


def main():
    kind = sys.argv[1]
    data = json.load(sys.stdin)
    if kind == "answer":
        for x in data["answers"]:
            verdict = "right" if x["prediction"] == x["label"] else "WRONG"
            print(f"   answer from {x['from']}: predicted {x['prediction']}, true label {x['label']} ({verdict})")
        for e in data["errors"]:
            print("   error: " + e)
        return 0 if data["correct"] == data["requests"] else 1
    if kind == "http":
        print(f"   answered {data['answered']}/{data['requests']} by {data['by_responder']}")
        for e in data["errors"]:
            print("   error: " + e)
        return 0 if data["answered"] == data["requests"] else 1
    d = data["datapath"]
    print("  ports: " + ", ".join(f"{p['name']} rx {p['rx_packets']} tx {p['tx_packets']}" for p in d["ports"]))
    print("  actions: " + ", ".join(f"{k} {v['packets']}" for k, v in sorted(d["actions"].items()) if v["packets"]))
    print("  drops: " + (", ".join(f"{k} {v}" for k, v in sorted(d["drops"].items()) if v) or "none"))
    for e in d["engines"]:
        print(f"  engine {e['id']}: " + ", ".join(
            f"instance {i['index']} ({i['port']}, {'up' if i['up'] else 'down'}) {i['packets']} packets"
            for i in e["instances"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
