"""The rollback command as the on-call types it: `deployctl rollback` inside the warm window
(a proxy switch by the standby's flag file), `deployctl status`, and a bare
`python -c pass` beside them, interleaved round after round so machine noise hits all alike.

For each rollback: the whole command's wall time (its Python start-up included), and when
the traffic (4 workers, fresh connections through the proxy) is all on the release rolled
back to, counted from the command's start. The rollbacks alternate between two releases
(`--to`), so every one is a warm rollback. The CPU rows (the command's user + system time,
its `docker` calls included) are what a loaded machine stretches least. Targets (issue 26): rollback ≤ 0.25 s on a quiet
machine, traffic on it ≤ 0.3 s after the command starts, status ≤ 0.5 s.

    .venv/bin/python bench/rollback_command.py [--rounds 10] [--workers 4]

Needs the Docker engine and the stand-in images (scripts/testenv.sh up).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployctl.config import load_config  # noqa: E402
from deployctl.events import Recorder  # noqa: E402
from deployctl.services.lifecycle.deploy import deploy  # noqa: E402
from deployctl.services.lifecycle.release_images import ReleaseImages  # noqa: E402
from deployctl.services.env import Env  # noqa: E402
from tests.integration.deploy_fixtures import (DEPLOYCTL, build_probe_images, docker, free_port, probe_config,  # noqa: E402
                                               remove_app, unique_app)

from deploy_zero_downtime import STANDINS  # noqa: E402
from release_speed import SECRETS, measured, on_target  # noqa: E402

# As a user's shell runs it: with bytecode caches (this machine's sets PYTHONDONTWRITEBYTECODE,
# and an editable install then compiles ~70 modules on every command).
USER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
TARGETS = {"rollback": 0.25, "rollback: traffic on it": 0.3, "status": 0.5}


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children: a command's own cost,
    which a loaded machine stretches far less than its wall time."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(argv: list[str], cpu: list[float] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    started, before = time.perf_counter(), children_cpu()
    done = subprocess.run(argv, capture_output=True, text=True, env=USER_ENV)
    if cpu is not None:
        cpu.append(children_cpu() - before)
    return time.perf_counter() - started, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--record", action="store_true",
                        help="append this run to bench/history.json and redraw docs/benchmarks/*.svg")
    args = parser.parse_args()
    docker("info", "--format", "{{.ServerVersion}}")
    probe = build_probe_images(STANDINS)
    app, port = unique_app(), free_port()
    samples: dict[str, list[float]] = {"python -c pass": [], "rollback": [], "rollback: traffic on it": [],
                                       "status": [], "python -c pass, CPU": [], "rollback, CPU": [],
                                       "status, CPU": []}
    failed = sent = 0
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        config = probe_config(Path(tmp), app, port=port, drain=3.0, health_timeout=30, rollout={"warm_window": 600})
        loaded = load_config(config)
        cli = [DEPLOYCTL, "--config", str(config)]
        try:
            releases = [deploy(Env.resolve(loaded, "local"), ReleaseImages({"backend": probe.good, "frontend": probe.good,
                                                                "proxy": probe.proxy}, f"{n:07x}b"), SECRETS,
                               Recorder()).release for n in (1, 2)]
            for n in range(args.rounds):
                samples["python -c pass"].append(timed([sys.executable, "-c", "pass"], samples["python -c pass, CPU"])[0])
                target = releases[n % 2]

                def rollback() -> str:  # noqa: B023 - called at once
                    _, done = timed([*cli, "--json", "rollback", "--env", "local", "--to", target],
                                    samples["rollback, CPU"])
                    assert done.returncode == 0, done.stderr
                    return json.loads(done.stdout.splitlines()[-1])["hosts"][0]["release"]

                t0, wall, release, report, end = measured(f"http://127.0.0.1:{port}/version", args.workers, rollback)
                assert release == target, (release, target)
                samples["rollback"].append(wall)
                on_it = on_target(report, t0, target, end)
                if on_it is not None:
                    samples["rollback: traffic on it"].append(on_it)
                failed += len(report.failures)
                sent += report.total
                seconds, done = timed([*cli, "status", "--env", "local"], samples["status, CPU"])
                assert done.returncode == 0, done.stderr
                samples["status"].append(seconds)
                loads.append(os.getloadavg()[0])
        finally:
            remove_app(app)
    print(f"{args.rounds} rounds interleaved, {args.workers} traffic workers during each rollback; "
          f"load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    print(f"{'':<28}{'median s':>9}{'min s':>8}{'max s':>8}{'/ python':>10}  target")
    for name, values in samples.items():
        if not values:
            print(f"{name:<28}{'-':>9}")
            continue
        median = statistics.median(values)
        base = statistics.median(samples["python -c pass, CPU" if name.endswith(", CPU") else "python -c pass"])
        target = TARGETS.get(name)
        verdict = "" if target is None else f"{target:g} s: {'met' if median <= target else 'NOT met'}"
        print(f"{name:<28}{median:9.3f}{min(values):8.3f}{max(values):8.3f}{median / base:9.1f}x  {verdict}")
    print(f"failed requests {failed} of {sent}")
    if args.record:
        from history import record

        keys = {"python -c pass": "python_pass", "rollback": "rollback_wall",
                "rollback: traffic on it": "rollback_traffic_on", "status": "status",
                "python -c pass, CPU": "python_pass_cpu", "rollback, CPU": "rollback_cpu", "status, CPU": "status_cpu"}
        record("rollback_command", {keys[k]: statistics.median(v) for k, v in samples.items() if v} | {"failed": failed},
               load_average=f"{min(loads):.1f}-{max(loads):.1f}", note=f"{args.rounds} rounds, {args.workers} workers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
