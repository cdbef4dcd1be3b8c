#!/usr/bin/env python3
"""The UE's applications in the edge lab (tools/edge-lab, docs/edge-lab.md). Runs in the UE's
namespace with the lab's venv python (it reads the digits data set to send real images).

  client.py predict --host 10.200.0.10 --port 8080 --flows N [--first I] [--timeout S]
      N TCP connections (N flows: new source ports), each POSTs the 64 pixels of digit image
      I, I+1, ... and compares the prediction with the image's true label.
  client.py http --host 198.51.100.10 --port 80 --flows N     N GETs, one per connection
  client.py udp --host 198.51.100.10 --port 9000 --count N   N datagrams, echoes awaited
  client.py bench --host 10.200.0.10 --port 8080 --direct-netns /run/netns/el-direct --count N
      two keep-alive connections, one from this namespace (through the UPF) and one opened from
      the direct namespace (no UPF); requests alternate between them; RTT percentiles in µs.

Prints one JSON object; exit status 0 when every request was answered (and correctly).
"""
import argparse
import ctypes
import json
import os
import socket
import sys
import time

CLONE_NEWNET = 0x40000000


def digits():
    from sklearn.datasets import load_digits
    return load_digits()


def http_request(sock, method, path, host, body=b""):
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
    if method == "POST":
        head += "Content-Type: application/json\r\n"
    return (head + "\r\n").encode() + body


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response headers")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed inside the body")
        rest += chunk
    return status, rest[:length]


def connect(host, port, timeout):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def cmd_predict(a):
    d = digits()
    out = {"requests": a.flows, "answered": 0, "correct": 0, "by_instance": {}, "errors": [], "answers": []}
    for k in range(a.flows):
        i = a.first + k
        body = json.dumps({"pixels": [float(v) for v in d.data[i]]}).encode()
        try:
            with connect(a.host, a.port, a.timeout) as s:
                s.sendall(http_request(s, "POST", "/predict", a.host, body))
                status, payload = read_response(s)
            answer = json.loads(payload)
            if status != 200:
                out["errors"].append(f"image {i}: HTTP {status}: {answer}")
                continue
            out["answered"] += 1
            who = answer.get("instance") or answer.get("from") or "?"
            out["by_instance"][who] = out["by_instance"].get(who, 0) + 1
            label = int(d.target[i])
            if answer.get("prediction") == label:
                out["correct"] += 1
            out["answers"].append({"image": i, "label": label, "prediction": answer.get("prediction"), "from": who})
        except (OSError, ValueError) as e:
            out["errors"].append(f"image {i}: {type(e).__name__}: {e}")
    print(json.dumps(out))
    return 0 if out["correct"] == a.flows else 1


def cmd_http(a):
    out = {"requests": a.flows, "answered": 0, "by_responder": {}, "errors": []}
    for k in range(a.flows):
        try:
            with connect(a.host, a.port, a.timeout) as s:
                s.sendall(http_request(s, "GET", f"/flow/{k}", a.host))
                status, payload = read_response(s)
            answer = json.loads(payload)
            if status == 200:
                out["answered"] += 1
                who = answer.get("from") or answer.get("instance") or "?"
                out["by_responder"][who] = out["by_responder"].get(who, 0) + 1
        except (OSError, ValueError) as e:
            out["errors"].append(f"flow {k}: {type(e).__name__}: {e}")
    print(json.dumps(out))
    return 0 if out["answered"] == a.flows else 1


def cmd_udp(a):
    out = {"sent": a.count, "echoed": 0, "errors": []}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    for k in range(a.count):
        payload = f"edge-lab datagram {k}".encode()
        try:
            s.sendto(payload, (a.host, a.port))
            data, _ = s.recvfrom(65535)
            if data == payload:
                out["echoed"] += 1
        except OSError as e:
            out["errors"].append(f"datagram {k}: {e}")
    print(json.dumps(out))
    return 0 if out["echoed"] == a.count else 1


def percentile(sorted_values, p):
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * (len(sorted_values) - 1)))))
    return sorted_values[k]


def cmd_bench(a):
    d = digits()
    body = json.dumps({"pixels": [float(v) for v in d.data[a.image]]}).encode()
    upf = connect(a.host, a.port, a.timeout)            # opened in this (the UE's) namespace
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(a.direct_netns, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns {a.direct_netns}")
    os.close(fd)
    direct = connect(a.host, a.port, a.timeout)         # opened in the direct namespace
    request = http_request(None, "POST", "/predict", a.host, body)
    times = {"upf": [], "direct": []}
    label = int(d.target[a.image])
    wrong = 0
    for k in range(a.warmup + a.count):
        for name, s in (("upf", upf), ("direct", direct)) if k % 2 == 0 else (("direct", direct), ("upf", upf)):
            t0 = time.perf_counter_ns()
            s.sendall(request)
            status, payload = read_response(s)
            t1 = time.perf_counter_ns()
            if status != 200 or json.loads(payload).get("prediction") != label:
                wrong += 1
            if k >= a.warmup:
                times[name].append((t1 - t0) / 1000.0)
    out = {"count": a.count, "wrong_answers": wrong}
    for name, values in times.items():
        values.sort()
        out[name] = {"p50_us": round(percentile(values, 50), 1), "p99_us": round(percentile(values, 99), 1),
                     "min_us": round(values[0], 1), "max_us": round(values[-1], 1)}
    out["added_p50_us"] = round(out["upf"]["p50_us"] - out["direct"]["p50_us"], 1)
    out["added_p99_us"] = round(out["upf"]["p99_us"] - out["direct"]["p99_us"], 1)
    print(json.dumps(out))
    return 0 if wrong == 0 else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("predict")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--flows", type=int, default=1)
    h = sub.add_parser("http")
    h.add_argument("--flows", type=int, default=1)
    u = sub.add_parser("udp")
    u.add_argument("--count", type=int, default=1)
    b = sub.add_parser("bench")
    b.add_argument("--direct-netns", required=True)
    b.add_argument("--count", type=int, default=1000)
    b.add_argument("--warmup", type=int, default=50)
    b.add_argument("--image", type=int, default=0)
    for x in (p, h, u, b):
        x.add_argument("--host", required=True)
        x.add_argument("--port", type=int, required=True)
        x.add_argument("--timeout", type=float, default=2.0)
    a = ap.parse_args()
    return {"predict": cmd_predict, "http": cmd_http, "udp": cmd_udp, "bench": cmd_bench}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
