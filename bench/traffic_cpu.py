"""What a test's traffic costs the machine, per request: the probe app (backend + routed
frontend behind deployctl's proxy) deployed on this machine's engine, then `Traffic` (the
tests' load loop, tests/support/traffic.py) for a few seconds at a time, with the CPU it
took counted where it goes: the load loop's own process, the app's containers (cgroup
cpuacct: nginx and the two probes), and the engine's processes on the machine (dockerd,
containerd, the shims, docker-proxy). An idle phase of the same length beside each traffic
phase is the baseline (other runs share the engine): per request = (traffic - idle) / requests.

Variants, interleaved round by round: `logged` (the probe logs every answer: PROBE_LOG_REQUESTS=1,
what it did before) and `quiet` (errors only, its default).

    PYTHONPATH=$PWD .venv/bin/python bench/traffic_cpu.py --rounds 3 --seconds 15
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployctl.config import load_config  # noqa: E402
from deployctl.events import Recorder  # noqa: E402
from deployctl.secrets import Secret  # noqa: E402
from deployctl.services.env import Env  # noqa: E402
from deployctl.services.lifecycle.deploy import deploy  # noqa: E402
from deployctl.services.lifecycle.release_images import ReleaseImages  # noqa: E402
from tests.integration.deploy_fixtures import build_probe_images, free_port, probe_config, remove_app, unique_app  # noqa: E402
from tests.support.engine import STANDIN_IMAGES  # noqa: E402
from tests.support.traffic import Traffic  # noqa: E402

ENGINE = ("dockerd", "containerd", "containerd-shim", "docker-proxy")
TICK = os.sysconf("SC_CLK_TCK")


def engine_cpu() -> dict[str, float]:
    """CPU seconds of the machine's own engine processes (not the stand-in hosts' inner ones), by pid."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if not comm.startswith(ENGINE):
                continue
            cgroup = Path(f"/proc/{pid}/cgroup").read_text()
            if "cpuacct:/docker/" in cgroup:  # inside a container: a stand-in host's engine
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, IndexError):
            continue
    return out


def app_cpu(app: str) -> dict[str, float]:
    """CPU seconds of each running container of `app`, by id."""
    ids = subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter", f"label=io.deployctl.app={app}"],
                         capture_output=True, text=True, check=True).stdout.split()
    out = {}
    for cid in ids:
        try:
            out[cid] = int(Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage").read_text()) / 1e9
        except OSError:
            pass
    return out


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sample(app: str) -> dict:
    return {"loop": own_cpu(), "app": app_cpu(app), "engine": engine_cpu()}


def delta(start: dict, end: dict) -> dict[str, float]:
    """The app's: over the containers running at both ends (a retired release's are gone); the
    engine's: every process alive at the end (one started meanwhile counts whole; one gone is
    left out: a shim or a docker-proxy of a container stopped meanwhile, a small part)."""
    both = start["app"].keys() & end["app"].keys()
    engine = sum(cpu - start["engine"].get(pid, 0.0) for pid, cpu in end["engine"].items())
    return {"loop": end["loop"] - start["loop"], "engine": engine,
            "app": sum(end["app"][c] - start["app"][c] for c in both)}


def phase(app: str, port: int, seconds: float, traffic: bool, workers: int) -> tuple[dict, int]:
    start = sample(app)
    if traffic:
        with Traffic(f"http://127.0.0.1:{port}/version", workers=workers, max_seconds=seconds, timeout=5) as load:
            time.sleep(seconds)
        requests, failed = load.report.total, len(load.report.failures)
        assert failed == 0, load.report.summary()
    else:
        time.sleep(seconds)
        requests = 0
    return delta(start, sample(app)), requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the app removed (finally) on a kill too
    probe = build_probe_images(dict(STANDIN_IMAGES))
    tmp = Path(tempfile.mkdtemp(prefix="traffic-cpu-"))
    app, port = unique_app(), free_port()
    configs = {}
    for name, flag in (("logged", 1), ("quiet", 0)):  # both probes' env: the frontend's, then the backend's table
        path = probe_config(tmp, app, port=port, name=f"{name}.toml", frontend_env={"PROBE_LOG_REQUESTS": flag})
        path.write_text(path.read_text() + f'\n[services.backend.env]\nPROBE_LOG_REQUESTS = "{flag}"\n')
        configs[name] = load_config(path)
    secrets = {"PROBE_DB_PASSWORD": Secret("probe-password-value")}
    results: dict[str, list] = {name: [] for name in configs}
    loads = []
    try:
        for round_ in range(args.rounds):
            for name, config in configs.items():
                images = ReleaseImages({"backend": probe.good, "frontend": probe.good, "proxy": probe.proxy},
                                       f"{round_:03d}{'a' if name == 'logged' else 'b'}0000beef")
                deploy(Env.resolve(config, "local"), images, secrets, Recorder())
                time.sleep(5)  # the previous release retired: its containers stopped
                loads.append(open("/proc/loadavg").read().split()[0])
                busy, requests = phase(app, port, args.seconds, True, args.workers)
                idle, _ = phase(app, port, args.seconds, False, args.workers)
                results[name].append((busy, idle, requests))
                print(f"round {round_} {name}: {requests} requests, busy {busy}, idle {idle}", flush=True)
    finally:
        remove_app(app)
    print(f"\nload average at each phase: {' '.join(loads)} (2 CPUs)")
    for name, rows in results.items():
        requests = sum(r for _, _, r in rows)
        per = {k: sum(b[k] - i[k] for b, i, _ in rows) / requests * 1000 for k in rows[0][0]}
        print(f"{name:7s} {requests / (len(rows) * args.seconds):6.1f} req/s; CPU ms per request: "
              + ", ".join(f"{k} {v:.2f}" for k, v in per.items()) + f"; sum {sum(per.values()):.2f}")


if __name__ == "__main__":
    main()
