#!/usr/bin/env python3
"""Bounded loopback load test for `diorama serve`: is the HTTP loop fast, correct under a burst, and never blocked by
generation, and does every accepted job finish?

    python3 tools/bench/serve_load.py [BINARY] [--clients 16] [--duration 10] [--burst 64] [--drain-timeout 300]
                                      [--json out.json] [--flashworld-only]

BINARY defaults to .build/release/diorama, else .build/debug/diorama (numbers from a debug build are not benchmarks).
The script starts the server itself on 127.0.0.1 with the tiny model, a fresh data folder and --max-queued 32, waits
for GET /health (120 s at most), then runs four phases, each bounded in time and request count:

  a. read load: C clients on keep-alive connections for D seconds, cycling GET /status, /health, /v1/jobs and
     /task/<unknown id> (404 expected): requests/s, p50/p90/p99/max latency, status codes, errors;
  b. submit burst: B simultaneous POST /generate (FlashWorld JSON, resolution [1, 32, 32], two cameras, a text
     prompt): 202 vs 429, latency, and the queue positions returned (each in 1..max_queued; in creation order
     `k - position`, the jobs dequeued so far, never decreases: FIFO with no position handed out twice at once);
  c. the read load again while the queue drains on the CPU: the HTTP loop must not stall behind generation;
  d. waits (bounded) until every accepted job is completed or failed, fetches one PLY, then stops the server
     (SIGTERM, SIGKILL after 10 s).

Prints a table (with latency per route) and, with --json FILE, every number and the machine (CPU model, cores).
Exits 1 on any 5xx, connection error or unexpected status, a position inconsistency, or a lost job (accepted but
never completed or failed). --flashworld-only leaves out /health and /v1 (for a server with only FlashWorld's API)
and waits on /status. The Python client shares the machine with the server, so on a small machine req/s is a floor
for the server, not its ceiling: compare phases a and c on the same machine. Python 3 standard library only.
"""
import argparse
import http.client
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVE_ARGS = ["serve", "--model", "tiny", "--host", "127.0.0.1"]  # plus --port, --data-dir, --max-queued
MAX_QUEUED = 32
MAX_REQUESTS_PER_PHASE = 500_000
REQUEST_TIMEOUT_S = 60
TERMINAL = {"completed", "failed", "cancelled", "expired"}

FOCAL = 0.5 * 32 / math.tan(math.radians(60) / 2)  # 60° vertical field of view at 32x32
CAMERAS = [{"quaternion": [1, 0, 0, 0], "position": [0, 0, z], "fx": FOCAL, "fy": FOCAL, "cx": 16, "cy": 16}
           for z in (0.0, -0.5)]


class Client:
    """One keep-alive connection; reconnects after an error. `request` gives (status or None, body, seconds)."""

    def __init__(self, port):
        self.port, self.conn = port, None

    def request(self, method, path, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        start = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, data, time.perf_counter() - start
        except (OSError, http.client.HTTPException):
            self.close()
            return None, b"", time.perf_counter() - start

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def get_json(port, path):
    client = Client(port)
    status, body, _ = client.request("GET", path)
    client.close()
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, None


def percentiles(seconds):
    ms = sorted(x * 1000 for x in seconds)
    pct = lambda q: round(ms[min(len(ms) - 1, max(0, math.ceil(q * len(ms)) - 1))], 2) if ms else None
    return {"p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": pct(1.0)}


class Stats:
    """Latencies (by route) and status codes of one phase, shared by its threads."""

    def __init__(self):
        self.lock, self.latencies, self.codes, self.unexpected = threading.Lock(), {}, Counter(), Counter()

    def add(self, route, status, seconds, expected):
        with self.lock:
            self.latencies.setdefault(route, []).append(seconds)
            self.codes["conn-error" if status is None else str(status)] += 1
            if status is not None and status < 500 and status not in expected:
                self.unexpected[f"{route} -> {status}"] += 1

    def summary(self, wall):
        every = [x for xs in self.latencies.values() for x in xs]
        errors = sum(n for code, n in self.codes.items() if code == "conn-error" or int(code) >= 500)
        return {"requests": len(every), "seconds": round(wall, 3), "rps": round(len(every) / wall, 1) if wall else None,
                **percentiles(every), "codes": dict(sorted(self.codes.items())), "errors": errors,
                "unexpected": dict(self.unexpected),
                "by_route": {route: {"requests": len(xs), **percentiles(xs)} for route, xs in self.latencies.items()}}


def read_load(port, clients, duration, flashworld_only):
    routes = [("/status", "/status", 200), ("/task/<unknown>", f"/task/{uuid.uuid4()}", 404)]
    if not flashworld_only:
        routes[1:1] = [("/health", "/health", 200), ("/v1/jobs", "/v1/jobs", 200)]
    stats, deadline = Stats(), time.monotonic() + duration
    per_client = MAX_REQUESTS_PER_PHASE // clients

    def worker(offset):
        client = Client(port)
        for i in range(per_client):
            if time.monotonic() >= deadline:
                break
            route, path, expected = routes[(offset + i) % len(routes)]
            status, _, seconds = client.request("GET", path)
            stats.add(route, status, seconds, {expected})
            if status is None:
                time.sleep(0.05)  # a dead server: count the failure, do not spin
        client.close()

    wall = run_threads(worker, clients)
    return stats.summary(wall)


def run_threads(worker, count):
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(count)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def submit_burst(port, count):
    stats, results, barrier = Stats(), [None] * count, threading.Barrier(count)

    def worker(i):
        client = Client(port)
        body = json.dumps({"text_prompt": f"load test scene {i}", "cameras": CAMERAS, "resolution": [1, 32, 32],
                           "image_index": 0, "seed": i}).encode()
        client.request("GET", "/status")  # connect before the barrier, so the burst is only POSTs
        barrier.wait()
        status, data, seconds = client.request("POST", "/generate", body)
        stats.add("/generate", status, seconds, {202, 429})
        try:
            results[i] = (status, json.loads(data) if data else None)
        except ValueError:
            results[i] = (status, None)
        client.close()

    wall = run_threads(worker, count)
    summary = stats.summary(wall)
    accepted = [r for s, r in results if s == 202 and r]
    summary["accepted"], summary["rejected_429"] = len(accepted), sum(1 for s, _ in results if s == 429)
    summary["positions_check"] = check_positions(accepted)
    return summary, [(r["task_id"], r["file_id"]) for r in accepted]


def check_positions(accepted):
    """Each position in 1..MAX_QUEUED and at most queued_count; in creation (file id) order, k - position (the jobs
    dequeued so far) never decreases."""
    ordered = sorted(accepted, key=lambda r: int(r["file_id"]))
    positions = [r["queue"]["position"] for r in ordered]
    problems = [f"position {p} outside 1..{MAX_QUEUED}" for p in positions if not 1 <= p <= MAX_QUEUED]
    problems += [f"position {r['queue']['position']} beyond queued_count {r['queue']['queued_count']}"
                 for r in ordered if r["queue"]["position"] > r["queue"]["queued_count"]]
    dequeued = [k - p for k, p in enumerate(positions, 1)]
    problems += [f"job {k + 2} of the burst: k - position fell from {a} to {b}"
                 for k, (a, b) in enumerate(zip(dequeued, dequeued[1:])) if b < a]
    return {"ok": not problems, "problems": problems[:10], "distinct": len(set(positions)),
            "min": min(positions, default=None), "max": max(positions, default=None),
            "dequeued_during_burst": (dequeued[-1] - dequeued[0]) if dequeued else 0}


def job_states(port, ids, flashworld_only):
    if flashworld_only:
        return {task: (get_json(port, f"/task/{task}")[1] or {}).get("status") for task in ids}
    _, body = get_json(port, "/v1/jobs?limit=500")
    listed = {job["id"]: job["status"] for job in (body or {}).get("jobs", [])}
    return {task: listed.get(task) for task in ids}


def drain(port, jobs, timeout, flashworld_only, alive):
    ids, start = [task for task, _ in jobs], time.monotonic()
    while time.monotonic() - start < timeout and alive():
        if flashworld_only:
            _, body = get_json(port, "/status")
            busy = body and (body["status"]["queued_count"] or body["status"]["running_count"])
            if busy:
                time.sleep(0.5)
                continue
        if all(s in TERMINAL for s in job_states(port, ids, flashworld_only).values()):
            break
        time.sleep(0.5)
    states = job_states(port, ids, flashworld_only)
    counts = Counter(str(s) for s in states.values())
    lost = [task for task in ids if states.get(task) not in ("completed", "failed")]
    result = {"seconds": round(time.monotonic() - start, 2), "states": dict(counts), "lost": len(lost),
              "lost_ids": lost[:10]}
    done = [file_id for task, file_id in jobs if states.get(task) == "completed"]
    if done:
        status, data, _ = Client(port).request("GET", f"/download/{done[0]}")
        result["download_check"] = {"status": status, "bytes": len(data), "ply_magic": data[:4] == b"ply\n"}
    return result


def machine():
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    return {"cpu_model": models[0] if models else platform.processor(), "cpuinfo_processors": len(models),
            "os_cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, data_dir, flashworld_only):
    port = free_port()
    log = open(Path(data_dir) / "serve.log", "wb")
    args = [binary, *SERVE_ARGS, "--port", str(port), "--data-dir", str(Path(data_dir) / "data"),
            "--max-queued", str(MAX_QUEUED)]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    probe, start = ("/status" if flashworld_only else "/health"), time.monotonic()
    while time.monotonic() - start < 120:
        if proc.poll() is not None:
            sys.exit(f"the server exited ({proc.returncode}):\n" + (Path(data_dir) / "serve.log").read_text()[-3000:])
        status, _, _ = Client(port).request("GET", probe)
        if status == 404 and not flashworld_only:
            stop_server(proc)
            sys.exit("GET /health is 404: this server has only FlashWorld's API; pass --flashworld-only")
        if status == 200:
            return proc, port, time.monotonic() - start
        time.sleep(0.2)
    stop_server(proc)
    sys.exit(f"GET {probe} did not answer 200 within 120 s")


def stop_server(proc):
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return {"exit_code": proc.returncode, "seconds": round(time.monotonic() - start, 2)}


def print_table(report):
    print(f"\n{report['binary']} on {report['machine']['cpu_model']} ({report['machine']['os_cpu_count']} cores)")
    print(f"{'phase':<22}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}  codes")
    for name in ("read_load", "submit_burst", "read_during_drain"):
        s = report[name]
        codes = " ".join(f"{c}:{n}" for c, n in s["codes"].items())
        print(f"{name:<22}{s['requests']:>9}{s['rps']:>9}{s['p50_ms']:>9}{s['p90_ms']:>9}{s['p99_ms']:>9}"
              f"{s['max_ms']:>9}  {codes}")
        for route, r in s["by_route"].items() if len(s["by_route"]) > 1 else ():
            cells = "".join(f"{r[k]:>9}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms"))
            print(f"  {route:<20}{r['requests']:>9}{'':>9}{cells}")
    burst, drained = report["submit_burst"], report["drain"]
    print(f"\nburst: {burst['accepted']} accepted (202), {burst['rejected_429']} refused (429); positions "
          f"{burst['positions_check']}")
    print(f"queue at the start of phase c: {report['queue_before_c']}, at its end: {report['queue_after_c']}")
    print(f"drain: {drained['states']} in {drained['seconds']} s, lost {drained['lost']}; "
          f"download {drained.get('download_check')}")
    print(f"server: ready in {report['startup_seconds']} s; stop {report['shutdown']}")
    for problem in report["failures"]:
        print("FAIL:", problem)
    print("PASS" if not report["failures"] else "FAILED")


def queue_counts(port):
    _, body = get_json(port, "/status")
    return {k: body["status"][k] for k in ("queued_count", "running_count")} if body else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary", nargs="?", help="diorama binary (default .build/release, else .build/debug)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each read-load phase")
    parser.add_argument("--burst", type=int, default=64)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--flashworld-only", action="store_true", help="no /health or /v1; wait on /status")
    args = parser.parse_args()
    binary = args.binary or next((str(p) for p in (REPO / ".build/release/diorama", REPO / ".build/debug/diorama")
                                  if p.exists()), None)
    if not binary or not Path(binary).exists():
        sys.exit("no diorama binary: build it (swift build -c release --product diorama) or pass its path")

    with tempfile.TemporaryDirectory(prefix="diorama-load-") as tmp:
        proc, port, startup = start_server(binary, tmp, args.flashworld_only)
        report = {"binary": binary, "machine": machine(), "startup_seconds": round(startup, 2),
                  "settings": {"clients": args.clients, "duration_s": args.duration, "burst": args.burst,
                               "max_queued": MAX_QUEUED, "flashworld_only": args.flashworld_only}}
        try:
            report["read_load"] = read_load(port, args.clients, args.duration, args.flashworld_only)
            report["submit_burst"], jobs = submit_burst(port, args.burst)
            report["queue_before_c"] = queue_counts(port)
            report["read_during_drain"] = read_load(port, args.clients, args.duration, args.flashworld_only)
            report["queue_after_c"] = queue_counts(port)
            report["drain"] = drain(port, jobs, args.drain_timeout, args.flashworld_only,
                                     lambda: proc.poll() is None)
        finally:
            report["shutdown"] = stop_server(proc)
            report["server_log_tail"] = (Path(tmp) / "serve.log").read_text(errors="replace")[-2000:]

    failures = []
    for name in ("read_load", "submit_burst", "read_during_drain"):
        if report[name]["errors"]:
            failures.append(f"{name}: {report[name]['errors']} 5xx or connection errors {report[name]['codes']}")
        if report[name]["unexpected"]:
            failures.append(f"{name}: unexpected statuses {report[name]['unexpected']}")
    if not report["submit_burst"]["positions_check"]["ok"]:
        failures.append(f"queue positions: {report['submit_burst']['positions_check']['problems']}")
    if report["drain"]["lost"]:
        failures.append(f"{report['drain']['lost']} accepted jobs never completed or failed")
    report["failures"] = failures
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
