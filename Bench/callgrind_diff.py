#!/usr/bin/env python3
"""Instructions per packet by function, from two callgrind runs that differ only in packet count.

usage: callgrind_diff.py SMALL.out LARGE.out PACKETS [TOP]

Runs callgrind_annotate on both profiles and prints (Ir(large) - Ir(small)) / PACKETS for every
function, so start-up cost cancels. Swift names are shortened (demangled by swift-demangle when
available).
"""
import collections
import re
import shutil
import subprocess
import sys


def load(path):
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", path],
                         capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
        if m and ":" in m.group(2) and "PROGRAM TOTALS" not in line:
            name = m.group(2).rsplit(" [", 1)[0]
            name = name.split(":", 1)[1] if name.startswith("???:") else name
            counts[name] += int(m.group(1).replace(",", ""))
    return counts


def demangle(names):
    tool = shutil.which("swift-demangle")
    if not tool:
        return {n: n for n in names}
    result = subprocess.run([tool, "--simplified", "--compact"], input="\n".join(names),
                            capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, result)) if len(result) == len(names) else {n: n for n in names}


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    small, large, packets = load(argv[0]), load(argv[1]), float(argv[2])
    top = int(argv[3]) if len(argv) > 3 else 12
    per_packet = {k: (large[k] - small.get(k, 0)) / packets for k in large}
    rows = sorted(((v, k) for k, v in per_packet.items() if v >= 0.05), reverse=True)
    names = demangle([k for _, k in rows[:top]])
    for v, k in rows[:top]:
        label = names.get(k, k)
        label = re.sub(r"\s+", " ", label)
        print(f"  {v:8.1f}  {label[:150]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
