#!/usr/bin/env python3
"""An inference engine instance of the edge lab (tools/edge-lab, docs/edge-lab.md).

At start-up it trains a support vector classifier on scikit-learn's bundled handwritten-digits
data set (8x8 images, 1797 samples) and then answers over HTTP/1.1 (keep-alive):

  POST /predict  {"index": N}            -> the prediction for sample N of the data set
                 {"pixels": [64 numbers]} -> the prediction for that image (values 0..16)
                 answer: {"prediction": D, "label": L (index only), "instance": NAME}
  GET  /health   -> 200 "ok" (upfd's HTTP probe)
  GET  /stats    -> {"instance": NAME, "requests": N, "predictions": N}

Counters also go to --stats FILE (rewritten atomically at most every 50 ms while they change), so
that the lab can read them after the engine has been stopped.

Run with the lab's venv: ~/.cache/upfd-lab/venv/bin/python engine.py --name eng1 --port 8080
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from sklearn.datasets import load_digits
from sklearn.svm import SVC


def main():
    # Started by whatever started the lab (a test runner may block or ignore SIGTERM, and both
    # survive exec): the lab stops its processes with SIGTERM.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--listen", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--ready", help="file created once the model is trained and the socket listens")
    args = ap.parse_args()

    started = time.monotonic()
    digits = load_digits()
    # Train on the first 1500 samples; the rest are held out (accuracy printed at start-up).
    model = SVC(gamma=0.001, C=10.0)
    model.fit(digits.data[:1500], digits.target[:1500])
    held_out = float((model.predict(digits.data[1500:]) == digits.target[1500:]).mean())
    lock = threading.Lock()
    counts = {"instance": args.name, "requests": 0, "predictions": 0, "errors": 0}
    dirty = threading.Event()

    def write_stats():
        tmp = args.stats + ".tmp"
        with lock:
            text = json.dumps(counts)
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.stats)

    def writer():
        while True:
            dirty.wait()
            dirty.clear()
            write_stats()
            time.sleep(0.05)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *a):
            pass

        def reply(self, status, obj, body=None):
            # One write per answer (headers and body in one segment): no Nagle / delayed-ACK stall.
            body = body if body is not None else (json.dumps(obj) + "\n").encode()
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
            content_type = "application/json" if obj is not None else "text/plain"
            self.wfile.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

        def count(self, key):
            with lock:
                counts["requests"] += 1
                if key:
                    counts[key] += 1
            dirty.set()

        def do_GET(self):
            if self.path == "/health":
                self.reply(200, None, b"ok\n")
                return  # probes are not counted as requests
            if self.path == "/stats":
                with lock:
                    snapshot = dict(counts)
                self.reply(200, snapshot)
                return
            self.count("errors")
            self.reply(404, {"error": "not found", "instance": args.name})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path != "/predict":
                self.count("errors")
                self.reply(404, {"error": "not found", "instance": args.name})
                return
            try:
                request = json.loads(raw)
                answer = {"instance": args.name}
                if "index" in request:
                    i = int(request["index"])
                    if not 0 <= i < len(digits.data):
                        raise ValueError(f"index must be 0...{len(digits.data) - 1}")
                    x = digits.data[i]
                    answer["label"] = int(digits.target[i])
                else:
                    x = np.asarray(request["pixels"], dtype=float)
                    if x.shape != (64,) or x.min() < 0 or x.max() > 16:
                        raise ValueError("pixels must be 64 values in 0...16")
                answer["prediction"] = int(model.predict(x.reshape(1, -1))[0])
            except (ValueError, KeyError, TypeError) as e:
                self.count("errors")
                self.reply(400, {"error": str(e), "instance": args.name})
                return
            self.count("predictions")
            self.reply(200, answer)

    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((args.listen, args.port), Handler)
    write_stats()
    threading.Thread(target=writer, daemon=True).start()
    print(f"engine {args.name}: SVC trained in {time.monotonic() - started:.2f} s, held-out accuracy "
          f"{held_out:.3f}, listening on {args.listen}:{args.port}", file=sys.stderr, flush=True)
    if args.ready:
        open(args.ready, "w").close()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
