#!/usr/bin/env python3
"""A bounded adversarial run against `diorama serve` on loopback (issue "the service under hostile and careless
clients"): the probes that used to stall or bloat the server, each bounded in count and time, while a watcher measures
GET /health. Prints a table for BENCHMARKS.md: each probe's outcome, /health p50/p99/max during the attack, the
server's RSS before and after, and whether any accepted job was lost.

    python3 tools/bench/serve_attack.py [BINARY]

BINARY defaults to .build/release/diorama, else .build/debug/diorama. The server runs with the tiny model on the CPU,
a fresh data folder, --idle-timeout 5, --header-timeout 3 and --max-connections 512. ROUNDS (default 3) repeats the
whole attack, RSS read after each round: flat memory means no growth after the first. Python 3 standard library only.
"""
import base64
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def request(port, method, path, body=b"", headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data
    except Exception as e:  # a refused or reset connection is an outcome too
        return None, str(e).encode()
    finally:
        conn.close()


def png_declaring(width, height):
    """A small PNG whose header declares width x height (the pixels are a few compressed zero rows)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = zlib.compress(b"\x00" * (width * 3 + 1) * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


class HealthWatch(threading.Thread):
    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.times, self.failures, self.stop = port, [], 0, False

    def run(self):
        while not self.stop:
            started = time.perf_counter()
            status, _ = request(self.port, "GET", "/health", timeout=10)
            self.times.append(time.perf_counter() - started)
            if status is None:
                self.failures += 1
            time.sleep(0.02)

    def summary(self):
        t = sorted(self.times) or [0]
        pick = lambda q: t[min(len(t) - 1, int(q * len(t)))] * 1000
        return f"{len(t)} probes, p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, max {t[-1] * 1000:.1f} ms, {self.failures} failed"


def main():
    binary = Path(sys.argv[1]) if len(sys.argv) > 1 else next(
        (p for p in [REPO / ".build/release/diorama", REPO / ".build/debug/diorama"] if p.exists()), None)
    if binary is None:
        sys.exit("build diorama first (swift build)")
    rounds = int(os.environ.get("ROUNDS", "3"))
    port, data = free_port(), tempfile.mkdtemp(prefix="diorama-attack-")
    server = subprocess.Popen([str(binary), "serve", "--model", "tiny", "--device", "cpu", "--port", str(port), "--data-dir", data,
                               "--idle-timeout", "5", "--header-timeout", "3", "--max-connections", "512", "--no-warm-up"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if request(port, "GET", "/health", timeout=2)[0] == 200:
                break
            time.sleep(0.1)
        rss_before = rss_kib(server.pid)
        watch = HealthWatch(port)
        watch.start()
        rows = []

        def probe(name, fn):
            started = time.perf_counter()
            outcome = fn()
            rows.append((name, outcome, time.perf_counter() - started))

        rss_rounds = []
        jobs = {"accepted": 0, "completed": 0, "lost": 0}
        for _ in range(rounds):
            # 1. Two concurrent multipart bodies of a megabyte of dashes with an 8,000-character boundary.
            def slow_multipart():
                body = b"-" * (1 << 20)
                headers = {"Content-Type": "multipart/form-data; boundary=" + "-" * 8000}
                results = []
                threads = [threading.Thread(target=lambda: results.append(request(port, "POST", "/generate-spz", body, headers)[0])) for _ in range(2)]
                [t.start() for t in threads]
                [t.join() for t in threads]
                return f"statuses {sorted(map(str, results))}"
            probe("2 x 1 MB multipart, 8,000-character boundary", slow_multipart)

            # 2. Six concurrent uploads of a small PNG that declares 8192x8192.
            def big_png():
                png = png_declaring(8192, 8192)
                body = json.dumps({"image_prompt": "data:image/png;base64," + base64.b64encode(png).decode(), "resolution": [1, 32, 32]}).encode()
                results = []
                threads = [threading.Thread(target=lambda: results.append(request(port, "POST", "/v1/jobs", body, {"Content-Type": "application/json"})[0])) for _ in range(6)]
                [t.start() for t in threads]
                [t.join() for t in threads]
                return f"statuses {sorted(map(str, results))} ({len(png)} byte PNG)"
            probe("6 x PNG declaring 8192x8192", big_png)

            # 3. Prompts of 20 MB, and a 30 MB body that is mostly an ignored field, then listings.
            accepted = []
            def huge_prompts():
                statuses = []
                for size in (20 << 20,):
                    body = json.dumps({"text_prompt": "x" * size, "resolution": [1, 32, 32]}).encode()
                    statuses.append(request(port, "POST", "/v1/jobs", body, {"Content-Type": "application/json"})[0])
                status, data = request(port, "POST", "/generate", json.dumps({"text_prompt": "a room", "resolution": [1, 32, 32], "ignored": "y" * (30 << 20)}).encode(),
                                       {"Content-Type": "application/json"})
                statuses.append(status)
                if status in (200, 202):
                    accepted.append(json.loads(data).get("task_id"))
                return f"statuses {statuses}"
            probe("20 MB prompt; 30 MB body of an ignored field", huge_prompts)

            def listings():
                sizes = [len(request(port, "GET", "/v1/jobs?limit=500")[1]) for _ in range(3)]
                sizes += [len(request(port, "GET", f"/v1/jobs/{accepted[0]}")[1])] if accepted else []
                return f"response sizes {sizes} bytes"
            probe("3 x GET /v1/jobs?limit=500 and a status read", listings)

            # 4. 400 idle connections, then 20 slowloris connections trickling a header.
            def idle_connections():
                socks = []
                for _ in range(400):
                    s = socket.socket()
                    s.settimeout(2)
                    try:
                        s.connect(("127.0.0.1", port))
                        socks.append(s)
                    except OSError:
                        break
                time.sleep(7)  # past the idle timeout
                closed = 0
                for s in socks:
                    try:
                        closed += 1 if s.recv(1) == b"" else 0
                    except OSError:
                        closed += 1
                    s.close()
                return f"{len(socks)} opened, {closed} closed by the server after the idle timeout"
            probe("400 idle connections", idle_connections)

            def slowloris():
                socks = []
                for _ in range(20):
                    s = socket.create_connection(("127.0.0.1", port), timeout=2)
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                    socks.append(s)
                closed = set()
                for _ in range(4):  # a header line every 2 s stays under the idle timeout; the header timeout (3 s) is not
                    time.sleep(2)
                    for k, s in enumerate(socks):
                        try:
                            s.sendall(b"X-a: b\r\n")
                            if s.recv(1, socket.MSG_DONTWAIT) == b"":
                                closed.add(k)
                        except BlockingIOError:
                            pass
                        except OSError:
                            closed.add(k)
                for s in socks:
                    s.close()
                return f"20 trickling connections: {len(closed)} closed by the server within 8 s"
            probe("20 slowloris connections", slowloris)

            # 5. Cross-site writes with a form body type.
            def cross_site():
                status, _ = request(port, "POST", "/v1/jobs", b'{"text_prompt": "x"}', {"Content-Type": "text/plain", "Origin": "http://evil.example"})
                return f"text/plain POST: {status}"
            probe("cross-site text/plain POST", cross_site)

            # 6. Jobs accepted meanwhile all finish.
            def jobs_finish():
                ids = list(accepted)
                for _ in range(5):
                    status, data = request(port, "POST", "/v1/jobs", json.dumps({"text_prompt": "a room", "resolution": [1, 32, 32]}).encode(), {"Content-Type": "application/json"})
                    if status == 202:
                        ids.append(json.loads(data)["id"])
                deadline = time.time() + 120
                states = {}
                while time.time() < deadline:
                    states = {i: json.loads(request(port, "GET", f"/v1/jobs/{i}")[1]).get("status") for i in ids}
                    if all(s in ("completed", "failed", "cancelled") for s in states.values()):
                        break
                    time.sleep(0.5)
                lost = [i for i, s in states.items() if s not in ("completed", "failed", "cancelled")]
                jobs["accepted"] += len(ids)
                jobs["completed"] += sum(s == "completed" for s in states.values())
                jobs["lost"] += len(lost)
                return f"{len(ids)} accepted, {sum(s == 'completed' for s in states.values())} completed, {len(lost)} lost"
            probe("jobs accepted during the attack", jobs_finish)
            rss_rounds.append(rss_kib(server.pid))

        watch.stop = True
        watch.join()
        rss_after = rss_kib(server.pid)
        print("| probe | outcome | seconds |")
        print("|---|---|---|")
        # the first round's outcomes (the later rounds repeat them)
        for name, outcome, seconds in rows[:len(rows) // rounds]:
            print(f"| {name} | {outcome} | {seconds:.1f} |")
        print(f"\n/health during the attack ({rounds} rounds): {watch.summary()}")
        print(f"jobs over all rounds: {jobs['accepted']} accepted, {jobs['completed']} completed, {jobs['lost']} lost")
        print(f"server RSS: {rss_before / 1024:.0f} MiB before, after each round "
              + ", ".join(f"{r / 1024:.0f}" for r in rss_rounds) + f" MiB, {rss_after / 1024:.0f} MiB at the end")
        if rounds > 1:
            growth = (rss_rounds[-1] - rss_rounds[0]) / 1024
            print(f"growth from round 1 to round {rounds}: {growth:+.0f} MiB")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
