"""How soon the proxy anchor serves by itself after its nginx container is killed, under
traffic, two versions of its script side by side (a git ref's and this tree's), rounds
alternated: for each, an anchor (ANCHOR_SCRIPT of deployctl/plan/lifecycle/docker_commands.py)
on an app network with a published port, an nginx container in its namespace (`listen 80
reuseport`, as deployctl's configuration has it), and 4 threads of requests through the
published port. Each round kills the nginx container at a random moment of the anchor's tick
and times the kill to the anchor's own nginx, with the requests that failed meanwhile.

    .venv/bin/python bench/anchor_takeover.py [REF] [--rounds 5]    # REF: main by default

Needs the Docker engine and the stand-in nginx image (scripts/testenv.sh up).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from anchor_cpu import IMAGE, ROOT, SOURCE, anchor_script

CONF = """events {}
http {
    access_log off;
    server { listen 80 reuseport; location / { return 200 "ok\\n"; } }
}
"""


def docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True)


class Anchor:
    """One anchor with its network, its nginx container and its traffic."""

    def __init__(self, script: str, conf: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name, self.nginx, self.network, self.conf = f"bench-takeover-{tag}", f"bench-takeover-nginx-{tag}", \
            f"bench-takeover-{tag}", conf
        docker("network", "create", self.network)
        started = docker("run", "-d", "--name", self.name, "--network", self.network, "-p", "127.0.0.1::80",
                         "-v", f"{conf}:/c/nginx.conf:ro", IMAGE, "sh", "-c", script, "deployctl-anchor", "80",
                         "/c/nginx.conf", "/tmp/marker")
        assert started.returncode == 0, started.stderr
        self.port = docker("port", self.name, "80").stdout.split(":")[-1].strip()

    def serves_itself(self) -> bool:
        return "nginx: master" in docker("top", self.name).stdout

    def round(self) -> tuple[float, int]:
        """(seconds from the kill to the anchor's own nginx, requests failed meanwhile)."""
        docker("rm", "-f", self.nginx)
        started = docker("run", "-d", "--name", self.nginx, "--network", f"container:{self.name}",
                         "-v", f"{self.conf}:/etc/nginx/nginx.conf:ro", IMAGE)
        assert started.returncode == 0, started.stderr
        waited = time.monotonic()
        while self.serves_itself() and time.monotonic() - waited < 30:  # its own nginx quits first
            time.sleep(0.2)
        stop, failed = threading.Event(), [0]

        def traffic() -> None:
            while not stop.is_set():
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1).read()
                except OSError:
                    failed[0] += 1
                    time.sleep(0.002)

        threads = [threading.Thread(target=traffic) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(4 + random.random() * 3)  # anywhere in the anchor's ticks
            failed[0] = 0
            docker("kill", self.nginx)
            killed = time.monotonic()
            while not self.serves_itself() and time.monotonic() - killed < 30:
                time.sleep(0.1)
            took = time.monotonic() - killed
            time.sleep(1)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        return took, failed[0]

    def remove(self) -> None:
        docker("rm", "-f", self.name, self.nginx)
        docker("network", "rm", self.network)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", nargs="?", default="main")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    scripts = {args.ref: anchor_script(subprocess.run(["git", "-C", str(ROOT), "show", f"{args.ref}:{SOURCE}"],
                                                      capture_output=True, text=True, check=True).stdout),
               "this tree": anchor_script((ROOT / SOURCE).read_text())}
    conf = Path(tempfile.mkdtemp()) / "nginx.conf"
    conf.write_text(CONF)
    anchors = {}
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in scripts}
    try:
        for name, script in scripts.items():
            anchors[name] = Anchor(script, conf)
        for _ in range(args.rounds):
            for name, anchor in anchors.items():
                results[name].append(anchor.round())
    finally:
        for anchor in anchors.values():
            anchor.remove()
    print(f"load average at the end: {open('/proc/loadavg').read().split()[0]}")
    for name, rows in results.items():
        print(f"{name}: kill -> the anchor's own nginx, median {statistics.median(t for t, _ in rows):.1f} s "
              f"(each: {', '.join(f'{t:.1f} s / {f} failed' for t, f in rows)})")


if __name__ == "__main__":
    main()
