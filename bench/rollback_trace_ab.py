"""Two trees' warm `deployctl rollback` side by side: bench/rollback_trace.py's wrapper (every
subprocess's start and end from the command's start) around each command, tree A and tree B
alternated round after round (ABBA) against one local app with two releases and a warm
window, so the machine's load hits both alike. Per command, from the trace: when the first
docker call starts (the start-up before it is not this bench's subject), when the verify
ended (the retire's containers listing starts then: the last `docker ps --all` of the
command), the exit; and, from a poller beside it (fresh connections through the proxy, every
5 ms), when the traffic is all on the target. The rows that count from the first docker call
leave the start-up's noise out.

    .venv/bin/python bench/rollback_trace_ab.py --a /work/main --b . [--rounds 10]

Each tree is selected by PYTHONPATH for its commands (this script imports the bench's own
tree for the setup). Needs the Docker engine and the stand-in images (scripts/testenv.sh up).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from deployctl.config import load_config  # noqa: E402
from deployctl.events import Recorder  # noqa: E402
from deployctl.services.env import Env  # noqa: E402
from deployctl.services.lifecycle.deploy import deploy  # noqa: E402
from deployctl.services.lifecycle.release_images import ReleaseImages  # noqa: E402
from deploy_zero_downtime import STANDINS  # noqa: E402
from release_speed import SECRETS  # noqa: E402
from tests.integration.deploy_fixtures import build_probe_images, free_port, probe_config, remove_app, unique_app  # noqa: E402

WRAP = re.search(r"WRAP = r'''(.*?)'''", (ROOT / "bench" / "rollback_trace.py").read_text(), re.S).group(1)
LINE = re.compile(r"^\s*([\d.]+)\s+([\d.]+)\s+[\d.]+\s+(.*)$")
ROWS = (("first", "first docker call starts (start-up)"), ("exit", "exit"),
        ("verified", "first docker call -> verify end"), ("traffic", "first docker call -> traffic on target"),
        ("after", "verify end -> exit"), ("tail", "first docker call -> exit"))


def served(port: int) -> str | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/version")
        response = conn.getresponse()
        response.read()
        return response.getheader("X-Deployctl-Release")
    except OSError:
        return None


def one(tree: str, config: Path, cwd: str, port: int, target: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    stop, since = threading.Event(), [None]
    t0 = time.perf_counter()
    env.update(PYTHONPATH=tree, T0=repr(t0))

    def poll() -> None:
        while not stop.is_set():
            on = served(port) == target
            since[0] = (since[0] or time.perf_counter() - t0) if on else None
            time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    done = subprocess.run([sys.executable, "-c", WRAP, "--config", str(config), "rollback", "--env", "local",
                           "--to", target], capture_output=True, text=True, env=env, cwd=cwd)
    time.sleep(0.3)
    stop.set()
    poller.join()
    assert done.returncode == 0, done.stderr[-2000:]
    exit_at = float(re.search(r"exit at ([\d.]+)", done.stderr).group(1))
    calls = [(float(m.group(1)), m.group(3)) for m in map(LINE.match, done.stderr.splitlines()) if m]
    first = min(start for start, _ in calls)
    verified = max(start for start, argv in calls if "docker ps --all" in argv and "io.deployctl.release" in argv)
    traffic = since[0] if since[0] is not None else float("nan")
    return {"first": first, "exit": exit_at, "verified": verified - first, "traffic": traffic - first,
            "after": exit_at - verified, "tail": exit_at - first}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--a", required=True, help="tree A (e.g. /work/main)")
    parser.add_argument("--b", required=True, help="tree B")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    trees = {"A": str(Path(args.a).resolve()), "B": str(Path(args.b).resolve())}
    probe = build_probe_images(STANDINS)
    app, port = unique_app(), free_port()
    results: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        config = probe_config(Path(tmp), app, port=port, drain=3.0, health_timeout=30, rollout={"warm_window": 600})
        loaded = load_config(config)
        try:
            images = {"backend": probe.good, "frontend": probe.good, "proxy": probe.proxy}
            releases = [deploy(Env.resolve(loaded, "local"), ReleaseImages(images, f"{n:07x}e"), SECRETS,
                               Recorder()).release for n in (1, 2)]
            n = 0
            for r in range(args.rounds):
                for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                    loads.append(os.getloadavg()[0])
                    results[name].append(one(trees[name], config, tmp, port, releases[n % 2]))
                    n += 1
        finally:
            remove_app(app)
    print(f"{args.rounds} rounds, A and B alternated (ABBA); load average (1 min) {min(loads):.1f}-{max(loads):.1f} "
          f"on {os.cpu_count()} CPUs\nA = {trees['A']}\nB = {trees['B']}")
    print(f"{'medians, s':40}{'A':>8}{'B':>8}{'B/A':>7}")
    for key, label in ROWS:
        a, b = (statistics.median(row[key] for row in results[name]) for name in ("A", "B"))
        print(f"{label:40}{a:8.3f}{b:8.3f}{b / a:7.2f}")


if __name__ == "__main__":
    main()
