"""What the proxy benches share: a small upstream on this machine, and clients that GET
through a proxy as fast as they can for a fixed time (bench/shadow_proxy.py,
bench/https_proxy.py)."""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable

from tests.integration.deploy_fixtures import free_port

# The upstream: answers GET with a small body after `delay` seconds (a thread per connection).
UPSTREAM = """
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, delay = int(sys.argv[1]), float(sys.argv[2])
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: with Nagle on, the body waits for nginx's delayed ACK
    # (40 ms), and every request would measure that instead of the proxy.
    disable_nagle_algorithm = True
    def do_GET(self):
        time.sleep(delay)
        body = b'{"ok": true}'
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.handle_error = lambda *args: None  # nginx closing an idle keep-alive connection
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"""

Connect = Callable[[], http.client.HTTPConnection]


def start_upstream(delay: float) -> tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
    """The upstream, once it accepts connections (a connect, not a GET: a hung upstream takes
    `delay` to answer one)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(port), str(delay)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the upstream on {port} did not start")


class Started:
    """What a bench starts (upstream processes, proxy containers), stopped and removed on the
    way out whatever happens, so an interrupted bench leaves nothing running."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []  # type: ignore[type-arg]
        self.containers: list[str] = []

    def upstream(self, delay: float) -> int:
        """start_upstream, remembered; its port."""
        proc, port = start_upstream(delay)
        self.procs.append(proc)
        return port

    def __enter__(self) -> "Started":
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.containers:
            subprocess.run(["docker", "rm", "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for proc in self.procs:
            proc.terminate()


def wait_answering(connect: Connect, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = connect()
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer")


def load(connect: Connect, seconds: float, workers: int, keepalive: bool) -> tuple[list[float], int]:
    """(latencies in ms, failures) of `workers` clients for `seconds`; without `keepalive`
    each request opens its own connection (and, over HTTPS, its own handshake)."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client() -> None:
        conn = None
        mine: list[float] = []
        while time.monotonic() < end:
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = connect()
                conn.request("GET", "/items", headers={} if keepalive else {"Connection": "close"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
                if not keepalive:
                    conn.close()
                    conn = None
            except OSError:
                ok, conn = False, None
            if ok:
                mine.append((time.perf_counter() - started) * 1000)
            else:
                with lock:
                    failures[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures[0]


Rounds = dict[str, list[tuple[float, float, int]]]  # mode -> per round (p95 ms, req/s, failed)


def interleaved(connect: dict[str, Connect], rounds: int, seconds: float, workers: int,
                keepalive: bool) -> tuple[Rounds, list[float]]:
    """Each mode in turn, round after round, so machine noise hits all alike: (per mode and
    round: p95 ms, req/s, failures; the load average before and after each round)."""
    from deployctl.plan.judging.access_log import p95

    results: Rounds = {mode: [] for mode in connect}
    loads = [os.getloadavg()[0]]
    for _ in range(rounds):
        for mode, opener in connect.items():
            latencies, failed = load(opener, seconds, workers, keepalive)
            results[mode].append((p95(latencies) or 0.0, len(latencies) / seconds, failed))
        loads.append(os.getloadavg()[0])
    return results, loads


def print_table(results: Rounds, base: str, heading: str = "") -> None:
    """Medians per mode, and each against `base`'s (the first mode measured)."""
    first = statistics.median(r[0] for r in results[base]), statistics.median(r[1] for r in results[base])
    width = max(len(heading), *(len(mode) for mode in results))
    print(f"{heading:<{width}} {'p95 ms':>8} {'req/s':>8} {'failed':>7} {'p95 vs ' + base:>13} "
          f"{'req/s vs ' + base:>15}")
    for mode, rows in results.items():
        p95_ms, rate = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
        print(f"{mode:<{width}} {p95_ms:8.1f} {rate:8.0f} {sum(r[2] for r in rows):7d} {p95_ms / first[0]:12.2f}x "
              f"{rate / first[1]:14.2f}x")
