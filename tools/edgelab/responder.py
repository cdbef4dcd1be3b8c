#!/usr/bin/env python3
"""The core side of the edge lab (tools/edge-lab, docs/edge-lab.md): stands in for the internet.

* Counts every IPv4 packet that arrives on --iface (a raw AF_PACKET socket, so packets no
  listener would take are counted too), by destination "ADDR:PORT/PROTO".
* Answers HTTP on the TCP --http-ports (any address of the namespace) with
  {"from": "core-responder", "path": ..., "host": ...}, and echoes UDP on --udp-port.

Counters go to --stats FILE (rewritten atomically at most every 50 ms while they change):
  {"packets": N, "by_destination": {...}, "http_requests": N, "udp_echoed": N}
Standard library only (runs on /usr/bin/python3).
"""
import argparse
import json
import os
import signal
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main():
    # Started by whatever started the lab (a test runner may block or ignore SIGTERM, and both
    # survive exec): the lab stops its processes with SIGTERM.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--http-ports", default="80,8080")
    ap.add_argument("--udp-port", type=int, default=9000)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--ready")
    args = ap.parse_args()

    lock = threading.Lock()
    counts = {"packets": 0, "by_destination": {}, "http_requests": 0, "udp_echoed": 0}
    dirty = threading.Event()

    def write_stats():
        with lock:
            text = json.dumps(counts, sort_keys=True)
        tmp = args.stats + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.stats)

    def writer():
        while True:
            dirty.wait()
            dirty.clear()
            write_stats()
            time.sleep(0.05)

    def sniffer(raw):
        while True:
            frame, address = raw.recvfrom(65535)
            if address[2] == PACKET_OUTGOING or len(frame) < 34:
                continue
            ethertype = struct.unpack("!H", frame[12:14])[0]
            if ethertype != 0x0800:
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            proto = ip[9]
            dst = socket.inet_ntoa(ip[16:20])
            name = {6: "tcp", 17: "udp", 1: "icmp"}.get(proto, str(proto))
            key = dst
            if proto in (6, 17) and len(ip) >= ihl + 4:
                key = f"{dst}:{struct.unpack('!H', ip[ihl + 2:ihl + 4])[0]}/{name}"
            else:
                key = f"{dst}/{name}"
            with lock:
                counts["packets"] += 1
                counts["by_destination"][key] = counts["by_destination"].get(key, 0) + 1
            dirty.set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *a):
            pass

        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            with lock:
                counts["http_requests"] += 1
            dirty.set()
            body = (json.dumps({"from": "core-responder", "path": self.path,
                                "host": self.headers.get("Host", "")}) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = answer
        do_POST = answer

    def udp_echo():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", args.udp_port))
        while True:
            data, peer = s.recvfrom(65535)
            s.sendto(data, peer)
            with lock:
                counts["udp_echoed"] += 1
            dirty.set()

    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    raw.bind((args.iface, 0))
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    servers = [ThreadingHTTPServer(("0.0.0.0", int(p)), Handler) for p in args.http_ports.split(",")]
    write_stats()
    threading.Thread(target=writer, daemon=True).start()
    threading.Thread(target=sniffer, args=(raw,), daemon=True).start()
    threading.Thread(target=udp_echo, daemon=True).start()
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    if args.ready:
        open(args.ready, "w").close()
    try:
        servers[0].serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
