#!/usr/bin/env python3
"""The edge lab's test scenario (`tools/edge-lab test`, docs/edge-lab.md), on a lab that is up
with fallback `core`. Phases, each checked on upfd's counters (`upfctl --json stats`), the
engines', the core responder's and the gNB simulator's:

  steer        a UE request gets the right prediction; 16 flows are hashed over both instances
  core         HTTP and UDP to the internet go to the core side (n6), never to an engine
  one-down     engine 1 stopped: its instance goes down, every flow goes to instance 2
  fallback-core  both stopped: requests for the engine go on to the core (engine_fallback_core)
  fallback-drop  fallback switched to drop (upfctl engine put): dropped (engine_down_drop),
               nothing reaches the core side
  back         both engines started again: steering resumes over both instances

Prints one JSON object {"ok": bool, "failures": [...], "phases": [{"name", "deltas", "client",
"checks"}...]} on standard output (progress and `upfctl stats` tables on standard error); exit 1
when a check failed. Usage: scenario.py LAB_SCRIPT RUN_DIR
"""
import json
import os
import subprocess
import sys
import time

LAB, RUN = sys.argv[1], sys.argv[2]
BIN = os.environ.get("UPFD_BIN_DIR", "")
SOCKET = os.path.join(RUN, "control.sock")
VIP, PORT, INTERNET = "10.200.0.10", 8080, "198.51.100.10"
failures = []
phases = []


def log(*a):
    print(f"scenario [{time.strftime('%H:%M:%S')}]:", *a, file=sys.stderr, flush=True)


def run(args, check=True, timeout=60):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {p.returncode}: {p.stderr.strip()[-800:]}")
    return p


def upfctl(*args):
    return run([os.path.join(BIN, "upfctl"), "--socket", SOCKET, *args]).stdout


def load(name):
    try:
        with open(os.path.join(RUN, name)) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def snapshot():
    d = json.loads(upfctl("--json", "stats"))["datapath"]
    ports = {p["name"]: p for p in d["ports"]}
    engine = [e for e in d["engines"] if e["id"] == "digits"][0]
    s = {
        "steer": d["actions"]["steer"]["packets"],
        "n6": d["actions"]["n6"]["packets"],
        "n3": d["actions"]["n3"]["packets"],
        "engine_fallback_core": d["actions"]["engine_fallback_core"]["packets"],
        "engine_down_drop": d["drops"].get("engine_down_drop", 0),
        "dropped": d["dropped"],
        "instance1": engine["instances"][0]["packets"],
        "instance2": engine["instances"][1]["packets"],
        "fallback_core": engine["fallback_core"],
        "fallback_drop": engine["fallback_drop"],
        "core_tx": ports["core"]["tx_packets"],
        # upfd answers ARP on every port; an answer on the core port is not user traffic
        "arp_replies": d["local"]["arp_reply_sent"],
        "eng1_tx": ports["eng1"]["tx_packets"],
        "eng2_tx": ports["eng2"]["tx_packets"],
        "n3_rx": ports["n3"]["rx_packets"],
        "n3_tx": ports["n3"]["tx_packets"],
    }
    r = load("responder.json")
    s["responder_packets"] = r.get("packets", 0)
    s["responder_http"] = r.get("http_requests", 0)
    s["responder_udp"] = r.get("udp_echoed", 0)
    s["responder_to_engine_address"] = r.get("by_destination", {}).get(f"{VIP}:{PORT}/tcp", 0)
    s["responder_to_internet_tcp"] = r.get("by_destination", {}).get(f"{INTERNET}:80/tcp", 0)
    for n in (1, 2):
        s[f"eng{n}_predictions"] = load(f"eng{n}.json").get("predictions", 0)
    g = load("gnb-sim.json")
    for k in ("ul_packets", "dl_packets", "dl_ok", "dl_wrong_teid", "dl_no_psc", "dl_wrong_pdu_type", "dl_wrong_qfi",
              "dl_malformed", "dl_tun_errors"):
        s["gnb_" + k] = g.get(k, 0)
    return s


def ue(*args):
    p = run([LAB, "ue", *args], check=False, timeout=120)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"client {' '.join(args)} printed no report (exit {p.returncode}): {p.stderr.strip()[-800:]}")


def instances():
    d = json.loads(upfctl("--json", "stats"))["datapath"]
    return [i["up"] for i in [e for e in d["engines"] if e["id"] == "digits"][0]["instances"]]


def wait_instances(expected, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if instances() == expected:
            return True
        time.sleep(0.05)
    return False


def settle():
    # The counters files are rewritten within 50 ms of a change; late packets (FIN/ACK) too.
    time.sleep(0.3)


def phase(name, action, checks):
    log(f"phase {name}")
    before = snapshot()
    client = action()
    settle()
    after = snapshot()
    deltas = {k: after[k] - before[k] for k in after}
    results = []
    for description, ok in checks(deltas, client, after):
        results.append({"check": description, "ok": bool(ok)})
        if not ok:
            failures.append(f"{name}: {description}")
    phases.append({"name": name, "deltas": deltas, "client": client, "checks": results})
    log(f"upfctl stats after {name}:\n" + upfctl("stats"))


def gnb_clean(d):
    return ("downlink G-PDUs all had TEID 4096 and a DL PSC with QFI 9",
            d["gnb_dl_ok"] == d["gnb_dl_packets"] and d["gnb_dl_packets"] > 0
            and d["gnb_dl_wrong_teid"] == d["gnb_dl_wrong_qfi"] == d["gnb_dl_no_psc"] == d["gnb_dl_malformed"] == 0)


workers = []


def main():
    # The worker naps when idle (the lab's default); it must have asked for a 1 µs timer slack.
    workers.extend(json.loads(upfctl("--json", "stats"))["datapath"]["workers"])
    if not workers or any(w.get("timer_slack_ns") != 1000 for w in workers):
        failures.append(f"napping workers must run with a 1000 ns timer slack: {workers}")

    # 1. Steering: the right prediction, flows hashed over both instances.
    def steer_action():
        one = ue("predict", "--host", VIP, "--port", str(PORT), "--first", "42", "--flows", "1")
        many = ue("predict", "--host", VIP, "--port", str(PORT), "--first", "100", "--flows", "16")
        return {"one": one, "many": many}

    phase("steer", steer_action, lambda d, c, a: [
        ("the request for image 42 got the right prediction from an engine",
         c["one"]["correct"] == 1 and c["one"]["answers"][0]["from"] in ("eng1", "eng2")),
        ("16 flows: 16 right predictions", c["many"]["correct"] == 16),
        ("16 flows were hashed over both instances",
         c["many"]["by_instance"].get("eng1", 0) > 0 and c["many"]["by_instance"].get("eng2", 0) > 0),
        ("upfd steered to both instances", d["instance1"] > 0 and d["instance2"] > 0 and d["steer"] == d["instance1"] + d["instance2"]),
        ("the engines counted 17 predictions", d["eng1_predictions"] + d["eng2_predictions"] == 17),
        ("nothing went to the core side (no IPv4 at the responder, the core port sent ARP answers at most)",
         d["core_tx"] <= d["arp_replies"] and d["responder_packets"] == 0 and d["n6"] == 0),
        ("answers came back through N3", d["n3"] > 0 and d["n3_tx"] >= d["n3"]),
        ("no drops", d["dropped"] == 0),
        gnb_clean(d),
    ])

    # 2. A flow that is not steered goes to the core side.
    def core_action():
        return {"http": ue("http", "--host", INTERNET, "--port", "80", "--flows", "4"),
                "udp": ue("udp", "--host", INTERNET, "--port", "9000", "--count", "5")}

    phase("core", core_action, lambda d, c, a: [
        ("4 HTTP flows answered by the core responder",
         c["http"]["answered"] == 4 and c["http"]["by_responder"].get("core-responder") == 4),
        ("5 UDP datagrams echoed", c["udp"]["echoed"] == 5),
        ("the responder counted them", d["responder_http"] == 4 and d["responder_udp"] == 5 and d["responder_to_internet_tcp"] > 0),
        ("upfd forwarded them on N6, the responder saw each", d["n6"] > 0 and d["core_tx"] >= d["n6"] and d["responder_packets"] == d["n6"]),
        ("never to an engine", d["steer"] == 0 and d["eng1_tx"] == 0 and d["eng2_tx"] == 0
         and d["eng1_predictions"] == 0 and d["eng2_predictions"] == 0),
        ("no drops", d["dropped"] == 0),
        gnb_clean(d),
    ])

    # 3. One instance stopped: its flows move to the other.
    run([LAB, "stop-engine", "1"])
    went_down = wait_instances([False, True])

    def one_down_action():
        return ue("predict", "--host", VIP, "--port", str(PORT), "--first", "200", "--flows", "16")

    phase("one-down", one_down_action, lambda d, c, a: [
        ("upfd took instance 1 down (probe) and kept instance 2", went_down),
        ("16 right predictions, all from engine 2", c["correct"] == 16 and c["by_instance"] == {"eng2": 16}),
        ("upfd steered only to instance 2", d["instance1"] == 0 and d["instance2"] > 0 and d["eng1_tx"] == 0),
        ("no fallback, no drops", d["engine_fallback_core"] == 0 and d["dropped"] == 0 and d["core_tx"] <= d["arp_replies"]),
    ])

    # 4. Both stopped, fallback core: the requests go on to the core side.
    run([LAB, "stop-engine", "2"])
    all_down = wait_instances([False, False])

    def fallback_core_action():
        return ue("predict", "--host", VIP, "--port", str(PORT), "--first", "300", "--flows", "4")

    phase("fallback-core", fallback_core_action, lambda d, c, a: [
        ("upfd took both instances down", all_down),
        ("4 requests answered by the core responder", c["answered"] == 4 and c["by_instance"] == {"core-responder": 4}),
        ("counted engine_fallback_core", d["engine_fallback_core"] > 0 and d["fallback_core"] == d["engine_fallback_core"]),
        ("the core side received the engine's traffic", d["responder_to_engine_address"] > 0 and d["core_tx"] > 0),
        ("nothing steered", d["steer"] == 0 and d["eng1_tx"] == 0 and d["eng2_tx"] == 0),
        ("no drops", d["dropped"] == 0),
    ])

    # 5. Fallback drop: nothing reaches the core side.
    with open(os.path.join(RUN, "policy.yaml")) as f:
        policy = f.read()
    engine_file = os.path.join(RUN, "engine-drop.json")
    with open(engine_file, "w") as f:
        json.dump({"id": "digits", "fallback": "drop",
                   "instances": [{"port": "eng1", "address": "10.99.1.2", "mac": "02:00:00:00:51:02"},
                                 {"port": "eng2", "address": "10.99.2.2", "mac": "02:00:00:00:52:02"}],
                   "probe": {"kind": "http", "port": 8080, "path": "/health", "interval_ms": 100, "timeout_ms": 50,
                             "failures_before_down": 2}}, f)
    assert "fallback: core" in policy
    upfctl("engine", "put", engine_file)
    fallback_now = json.loads(upfctl("--json", "policy"))["policy"]["engines"][0]["fallback"]

    def fallback_drop_action():
        return ue("predict", "--host", VIP, "--port", str(PORT), "--first", "400", "--flows", "2", "--timeout", "0.5")

    phase("fallback-drop", fallback_drop_action, lambda d, c, a: [
        ("the engine's fallback is now drop", fallback_now == "drop"),
        ("the requests went unanswered", c["answered"] == 0 and len(c["errors"]) == 2),
        ("counted engine_down_drop", d["engine_down_drop"] > 0 and d["fallback_drop"] == d["engine_down_drop"]),
        ("nothing reached the core side", d["core_tx"] <= d["arp_replies"] and d["responder_packets"] == 0
         and d["n6"] == 0 and d["engine_fallback_core"] == 0),
        ("nothing steered", d["steer"] == 0 and d["eng1_tx"] == 0 and d["eng2_tx"] == 0),
    ])

    # 6. Engines back: steering resumes.
    starting = [subprocess.Popen([LAB, "start-engine", str(n)], stderr=subprocess.PIPE, text=True) for n in (1, 2)]
    for n, p in enumerate(starting, 1):
        _, err = p.communicate(timeout=90)
        if p.returncode != 0:
            raise RuntimeError(f"start-engine {n} exited {p.returncode}: {err.strip()[-800:]}")
    came_back = wait_instances([True, True])

    def back_action():
        return ue("predict", "--host", VIP, "--port", str(PORT), "--first", "500", "--flows", "16")

    phase("back", back_action, lambda d, c, a: [
        ("upfd brought both instances back up", came_back),
        ("16 right predictions from both instances",
         c["correct"] == 16 and c["by_instance"].get("eng1", 0) > 0 and c["by_instance"].get("eng2", 0) > 0),
        ("upfd steered to both again", d["instance1"] > 0 and d["instance2"] > 0),
        ("no fallback, no drops", d["engine_down_drop"] == 0 and d["engine_fallback_core"] == 0 and d["dropped"] == 0),
        ("nothing went to the core side", d["core_tx"] <= d["arp_replies"] and d["responder_packets"] == 0),
        gnb_clean(d),
    ])


try:
    main()
except Exception as e:  # a broken step is a failure with its reason, never a pass
    failures.append(f"scenario aborted: {type(e).__name__}: {e}")
print(json.dumps({"ok": not failures, "failures": failures, "workers": workers, "phases": phases}))
for f in failures:
    log("FAILED " + f)
log("all checks passed" if not failures else f"{len(failures)} check(s) failed")
sys.exit(0 if not failures else 1)
