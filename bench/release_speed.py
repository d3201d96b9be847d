"""Release speed benchmark: how long a deploy and a rollback take, and when the traffic is
on the new release as the users see it, deployctl vs `docker-compose up -d`.

Same two probe services (tests/integration/probe_app) behind nginx, the same continuous
traffic (4 workers, fresh connections, 127.0.0.1 only), in one run, alternating:

  deployctl, default rollout (drain 3 s, warm window 600 s; guard and canary off):
      deploy vN                        -> wall time, and to the verified switch
      rollback inside the warm window  -> a proxy switch only
      rollback with warm_window = 0    -> start, health, switch (the path outside the window)
  docker-compose:
      up -d --force-recreate with vN   -> wall time until it answers from vN
      up -d with the previous images   -> its "rollback"

"on new" is when every request sent from then on is answered by the target release (the
traffic generator's view: the first request sent after the last one that failed or came
from another release), counted from the command's start. Medians of --rounds.

    .venv/bin/python bench/release_speed.py [--rounds 3] [--workers 4]

Needs the Docker engine and the stand-in images (scripts/testenv.sh up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployctl.config import load_config  # noqa: E402
from deployctl.events import Event, Recorder, StepDone  # noqa: E402
from deployctl.secrets import Secret  # noqa: E402
from deployctl.services.deploy import deploy  # noqa: E402
from deployctl.services.release_images import ReleaseImages  # noqa: E402
from deployctl.services.rollback import rollback  # noqa: E402
from tests.integration.deploy_fixtures import (build_probe_images, docker, free_port, probe_config,  # noqa: E402
                                               remove_app, unique_app)
from tests.support.traffic import Traffic, TrafficReport  # noqa: E402

from compose_baseline import compose_site, wait_for  # noqa: E402
from deploy_zero_downtime import STANDINS  # noqa: E402

SECRETS = {"PROBE_DB_PASSWORD": Secret("bench-password-value")}


def on_target(report: TrafficReport, since: float, release: str, until: float) -> float | None:
    """Seconds from `since` until every request sent afterwards (up to `until`) answered
    from `release`; None when the traffic never settled on it."""
    window = sorted((s for s in report.samples if since <= s.started <= until), key=lambda s: s.started)
    wrong = [s for s in window if not s.ok or release not in s.releases]
    if not wrong:
        return (window[0].started - since) if window else None
    after = [s for s in window if s.started > wrong[-1].started]
    return (after[0].started - since) if after else None


class Phases:
    def __init__(self) -> None:
        self.rows: dict[str, list[float]] = {}
        self.failed: dict[str, int] = {}

    def add(self, name: str, value: float | None) -> None:
        if value is not None:
            self.rows.setdefault(name, []).append(value)

    def count_failures(self, name: str, report: TrafficReport, since: float, until: float) -> None:
        self.failed[name] = self.failed.get(name, 0) + sum(1 for s in report.failures if since <= s.started <= until)

    def median(self, name: str) -> float | None:
        values = self.rows.get(name)
        return statistics.median(values) if values else None


class SwitchSeen(Recorder):
    """The moment the deploy reported its verified switch (the "switch" step done)."""

    def __init__(self) -> None:
        super().__init__()
        self.at: float | None = None

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        if isinstance(event, StepDone) and event.step == "switch":
            self.at = time.monotonic()


def bench_deployctl(probe, rounds: int, workers: int, phases: Phases) -> int:
    app, port, cold_app, cold_port = unique_app(), free_port(), unique_app(), free_port()
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as cold_tmp:
        # The documented defaults (drain 3 s, warm window 600 s): what a user gets.
        loaded = load_config(probe_config(Path(tmp), app, port=port, drain=3.0, health_timeout=10,
                                          rollout={"warm_window": 600}))
        cold = load_config(probe_config(Path(cold_tmp), cold_app, port=cold_port, drain=3.0, health_timeout=10,
                                        rollout={"warm_window": 0}))

        def release(n: int) -> ReleaseImages:
            return ReleaseImages({"backend": probe.good, "frontend": probe.good, "proxy": probe.proxy}, f"{n:07x}a")

        total = 0
        try:
            deploy(loaded, "local", release(1), SECRETS, Recorder())
            deploy(cold, "local", release(1), SECRETS, Recorder())
            deploy(cold, "local", release(2), SECRETS, Recorder())
            with Traffic(f"http://127.0.0.1:{port}/version", workers=workers, max_requests=10**8, max_seconds=900) as traffic, \
                    Traffic(f"http://127.0.0.1:{cold_port}/version", workers=workers, max_requests=10**8, max_seconds=900) as cold_traffic:
                time.sleep(1)
                for n in range(rounds):
                    # deploy
                    seen = SwitchSeen()
                    t0, m0 = time.time(), time.monotonic()
                    result = deploy(loaded, "local", release(10 + n), SECRETS, seen)
                    t1, m1 = time.time(), time.monotonic()
                    phases.add("deploy", m1 - m0)
                    phases.add("deploy: to the verified switch", (seen.at or m1) - m0)
                    for step in seen.of(StepDone):  # where the time goes (steps may overlap)
                        phases.add(f"step {step.step}", step.seconds)
                    time.sleep(0.5)
                    phases.add("deploy: on new", on_target(traffic.report, t0, result.release, time.time()))
                    phases.count_failures("deploy", traffic.report, t0, time.time())
                    # warm rollback
                    t0, m0 = time.time(), time.monotonic()
                    back = rollback(loaded, "local", Recorder())
                    phases.add("rollback (warm)", time.monotonic() - m0)
                    time.sleep(0.5)
                    phases.add("rollback (warm): on new", on_target(traffic.report, t0, back[0].release, time.time()))
                    phases.count_failures("rollback (warm)", traffic.report, t0, time.time())
                    # forward again, so the next round has a fresh previous release
                    deploy(loaded, "local", release(20 + n), SECRETS, Recorder())
                    # cold rollback: the environment with no warm window
                    t0, m0 = time.time(), time.monotonic()
                    back = rollback(cold, "local", Recorder())
                    phases.add("rollback (cold)", time.monotonic() - m0)
                    time.sleep(0.5)
                    phases.add("rollback (cold): on new", on_target(cold_traffic.report, t0, back[0].release, time.time()))
                    phases.count_failures("rollback (cold)", cold_traffic.report, t0, time.time())
                    deploy(cold, "local", release(30 + n), SECRETS, Recorder())
                    time.sleep(0.5)
            total = traffic.report.total + cold_traffic.report.total
            phases.failed["all"] = len(traffic.report.failures) + len(cold_traffic.report.failures)
            return total
        finally:
            remove_app(app)
            remove_app(cold_app)


def bench_compose(probe, rounds: int, workers: int, phases: Phases) -> int:
    with compose_site(probe) as (port, up):
        up("compose-0")
        wait_for(port)
        with Traffic(f"http://127.0.0.1:{port}/version", workers=workers, max_requests=10**8, max_seconds=900) as traffic:
            time.sleep(1)
            for n in range(rounds):
                for phase, release in (("deploy", f"compose-{n + 1}"), ("rollback", f"compose-{n}")):
                    t0, m0 = time.time(), time.monotonic()
                    up(release)
                    phases.add(f"{phase}: up -d returned", time.monotonic() - m0)
                    wait_for(port, release)
                    phases.add(phase, time.monotonic() - m0)
                    time.sleep(0.5)
                    phases.add(f"{phase}: on new", on_target(traffic.report, t0, release, time.time()))
                    phases.count_failures(phase, traffic.report, t0, time.time())
        phases.failed["all"] = len(traffic.report.failures)
        return traffic.report.total


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    docker("info", "--format", "{{.ServerVersion}}")
    probe = build_probe_images(STANDINS)
    ours, theirs = Phases(), Phases()
    sent_ours = bench_deployctl(probe, args.rounds, args.workers, ours)
    sent_theirs = bench_compose(probe, args.rounds, args.workers, theirs)
    print(f"medians of {args.rounds} rounds, {args.workers} traffic workers; load average {os.getloadavg()[0]:.1f}")
    rows = [
        ("deploy: wall time", ours.median("deploy"), theirs.median("deploy")),
        ("deploy: to the verified switch", ours.median("deploy: to the verified switch"),
         theirs.median("deploy: up -d returned")),
        ("deploy: traffic on new after", ours.median("deploy: on new"), theirs.median("deploy: on new")),
        ("rollback, warm: wall time", ours.median("rollback (warm)"), theirs.median("rollback")),
        ("rollback, warm: traffic on it after", ours.median("rollback (warm): on new"), theirs.median("rollback: on new")),
        ("rollback, cold: wall time", ours.median("rollback (cold)"), None),
        ("rollback, cold: traffic on it after", ours.median("rollback (cold): on new"), None),
    ]
    print(f"{'':<38}{'deployctl':>12}{'compose up -d':>16}{'ratio':>8}")
    for label, a, b in rows:
        ratio = f"{a / b:.2f}x" if a and b else ""
        print(f"{label:<38}{_fmt(a):>12}{_fmt(b):>16}{ratio:>8}")
    print(f"{'failed requests':<38}{ours.failed.get('all', 0):>12}{theirs.failed.get('all', 0):>16}")
    print(f"{'requests sent':<38}{sent_ours:>12}{sent_theirs:>16}")
    steps = {name[5:]: ours.median(name) for name in ours.rows if name.startswith("step ")}
    print("deployctl deploy, median seconds per step:",
          ", ".join(f"{k} {v:.2f}" for k, v in sorted(steps.items(), key=lambda kv: -(kv[1] or 0)) if v))
    for name in ("deploy", "rollback (warm)", "rollback (cold)", "rollback"):
        if name in ours.failed or name in theirs.failed:
            print(f"  failed during {name}: deployctl {ours.failed.get(name, '-')}, compose {theirs.failed.get(name, '-')}")


if __name__ == "__main__":
    main()
