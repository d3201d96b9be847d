"""Release speed benchmark: how long a deploy and a rollback take, and when the traffic is
on the new release as the users see it, deployctl vs `docker-compose up -d`.

Same two probe services (tests/integration/probe_app) behind nginx, the same traffic (4
workers, fresh connections, 127.0.0.1 only) on the site being measured, from 0.5 s before
the command until 0.5 s after it. Rounds are interleaved: each round runs every contender's
deploy, then every contender's rollback, so a busy machine slows all of them alike.

  deployctl, default rollout (drain 3 s, warm window 600 s; guard and canary off):
      deploy vN                        -> wall time, and to the verified switch
      rollback inside the warm window  -> a proxy switch only
      rollback with warm_window = 0    -> start, health, switch (the path outside the window)
      `deployctl rollback` as a command -> the warm rollback with the CLI's start-up (what
                                           the on-call types; the rows above call the service)
  docker-compose, same work (the backend's migration with `run --rm`, its secret as a file):
      run --rm backend migrate; up -d --force-recreate with vN -> wall time until it answers from vN
      up -d with the previous images   -> its "rollback"
  deployctl and docker-compose, bare: the same release without the migration and the secret
      (deploy and warm rollback only)

"on new" is when every request sent from then on is answered by the target release (the
traffic generator's view: the first request sent after the last one that failed or came
from another release), counted from the command's start. Medians of --rounds.

    .venv/bin/python bench/release_speed.py [--rounds 3] [--workers 4]

Needs the Docker engine and the stand-in images (scripts/testenv.sh up).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployctl.config import load_config  # noqa: E402
from deployctl.events import Event, Recorder, StepDone  # noqa: E402
from deployctl.secrets import Secret  # noqa: E402
from deployctl.services.lifecycle.deploy import deploy  # noqa: E402
from deployctl.services.lifecycle.release_images import ReleaseImages  # noqa: E402
from deployctl.services.lifecycle.rollback import rollback  # noqa: E402
from deployctl.services.env import Env  # noqa: E402
from tests.integration.deploy_fixtures import (DEPLOYCTL, build_probe_images, docker, free_port, probe_config,  # noqa: E402
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
        self.stuck: dict[str, int] = {}  # rounds whose release never answered (compose: see Compose._release)

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


def measured(url: str, workers: int, action):  # type: ignore[no-untyped-def]
    """Runs `action` under its own traffic (only the site being measured is loaded):
    (command start as time.time(), wall seconds, the action's result, the traffic's report,
    the end of the window)."""
    with Traffic(url, workers=workers, max_requests=10**8, max_seconds=300) as traffic:
        time.sleep(0.5)
        t0, m0 = time.time(), time.monotonic()
        result = action()
        wall = time.monotonic() - m0
        time.sleep(0.5)
    return t0, wall, result, traffic.report, time.time()


class Contender:
    """One side of the comparison: set up once, then `deploy(n)` and `rollback(n)` (back
    to round n's previous release) measured into its Phases, round after round."""

    def __init__(self, phases: Phases, workers: int) -> None:
        self.phases, self.workers, self.sent = phases, workers, 0

    def observe(self, name: str, url: str, action, release_of):  # type: ignore[no-untyped-def]
        """`action` returns None when its release never came (the round's requests and
        failures still count; its times do not, and the round is counted as stuck)."""
        t0, wall, result, report, end = measured(url, self.workers, action)
        self.sent += report.total
        if result is None:
            self.phases.stuck[name] = self.phases.stuck.get(name, 0) + 1
        else:
            self.phases.add(name, wall)
            self.phases.add(f"{name}: on new", on_target(report, t0, release_of(result), end))
        self.phases.count_failures(name, report, t0, end)
        self.phases.failed["all"] = self.phases.failed.get("all", 0) + len(report.failures)
        return result


class Deployctl(Contender):
    """The documented defaults (drain 3 s, warm window 600 s), and an environment with no
    warm window for the rollback outside it."""

    def __init__(self, probe, phases: Phases, workers: int, stack, bare: bool = False) -> None:  # type: ignore[no-untyped-def]
        super().__init__(phases, workers)
        self.probe, self.bare = probe, bare
        self.app, self.port, self.cold_app, self.cold_port = unique_app(), free_port(), unique_app(), free_port()
        tmp, cold_tmp = (Path(stack.enter_context(tempfile.TemporaryDirectory())) for _ in range(2))
        stack.callback(remove_app, self.app)
        stack.callback(remove_app, self.cold_app)
        self.config = probe_config(tmp, self.app, port=self.port, drain=3.0, health_timeout=30,
                                   rollout={"warm_window": 600}, bare=bare)
        self.loaded = load_config(self.config)
        self.cold = load_config(probe_config(cold_tmp, self.cold_app, port=self.cold_port, drain=3.0,
                                             health_timeout=30, rollout={"warm_window": 0}, bare=bare))
        # Two releases first: every measured deploy then retires an older warm release, as
        # every deploy after the second does for a user.
        deploy(Env.resolve(self.loaded, "local"), self.release(1), SECRETS, Recorder())
        deploy(Env.resolve(self.loaded, "local"), self.release(2), SECRETS, Recorder())
        if not bare:  # the rollback outside the window is measured once, on the full release
            deploy(Env.resolve(self.cold, "local"), self.release(1), SECRETS, Recorder())
            deploy(Env.resolve(self.cold, "local"), self.release(2), SECRETS, Recorder())

    def release(self, n: int) -> ReleaseImages:
        return ReleaseImages({"backend": self.probe.good, "frontend": self.probe.good, "proxy": self.probe.proxy},
                             f"{n:07x}a")

    def deploy_round(self, n: int) -> None:
        seen = SwitchSeen()

        def run():  # type: ignore[no-untyped-def]
            started = time.monotonic()
            result = deploy(Env.resolve(self.loaded, "local"), self.release(10 + n), SECRETS, seen)
            self.phases.add("deploy: to the verified switch", (seen.at or time.monotonic()) - started)
            return result

        self.observe("deploy", f"http://127.0.0.1:{self.port}/version", run, lambda r: r.release)
        for step in seen.of(StepDone):  # where the time goes (steps may overlap)
            self.phases.add(f"step {step.step}", step.seconds)

    def rollback_round(self, n: int) -> None:
        self.observe("rollback (warm)", f"http://127.0.0.1:{self.port}/version",
                     lambda: rollback(Env.resolve(self.loaded, "local"), Recorder()), lambda r: r[0].release)
        # forward again, so the next round has a fresh previous release
        deploy(Env.resolve(self.loaded, "local"), self.release(20 + n), SECRETS, Recorder())
        if self.bare:
            return
        # What the on-call types: the same warm rollback as a command, its start-up included.
        self.observe("rollback (warm, CLI)", f"http://127.0.0.1:{self.port}/version", self.cli_rollback,
                     lambda release: release)
        deploy(Env.resolve(self.loaded, "local"), self.release(40 + n), SECRETS, Recorder())
        self.observe("rollback (cold)", f"http://127.0.0.1:{self.cold_port}/version",
                     lambda: rollback(Env.resolve(self.cold, "local"), Recorder()), lambda r: r[0].release)
        deploy(Env.resolve(self.cold, "local"), self.release(30 + n), SECRETS, Recorder())


    def cli_rollback(self) -> str:
        done = subprocess.run([DEPLOYCTL, "--config", str(self.config), "--json", "rollback", "--env", "local"],
                              capture_output=True, text=True, check=True)
        return json.loads(done.stdout.splitlines()[-1])["hosts"][0]["release"]


class Compose(Contender):
    def __init__(self, probe, phases: Phases, workers: int, stack, same_work: bool) -> None:  # type: ignore[no-untyped-def]
        super().__init__(phases, workers)
        self.port, self.up = stack.enter_context(compose_site(probe, same_work=same_work))
        self.up("compose-0")
        wait_for(self.port)

    def _release(self, name: str, release: str, migrate: bool) -> None:
        def run() -> str | None:
            started = time.monotonic()
            self.up(release, migrate=migrate)
            self.phases.add(f"{name}: up -d returned", time.monotonic() - started)
            try:
                wait_for(self.port, release)
            except RuntimeError:
                # compose's own outcome, not the bench's: `up -d --force-recreate` returned, and
                # the site never answered from the release within 60 s (a run on 2026-12-06 lost
                # its whole table to one such round). Counted and printed; the other rounds go on.
                return None
            return release

        self.observe(name, f"http://127.0.0.1:{self.port}/version", run, lambda r: r)

    def deploy_round(self, n: int) -> None:
        self._release("deploy", f"compose-{n + 1}", migrate=True)

    def rollback_round(self, n: int) -> None:
        self._release("rollback", f"compose-{n}", migrate=False)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--record", action="store_true",
                        help="append this run to bench/history.json and redraw docs/benchmarks/*.svg")
    args = parser.parse_args()
    docker("info", "--format", "{{.ServerVersion}}")
    probe = build_probe_images(STANDINS)
    ours, same, ours_bare, bare = Phases(), Phases(), Phases(), Phases()
    loads = []
    with contextlib.ExitStack() as stack:
        contenders = [Deployctl(probe, ours, args.workers, stack),
                      Compose(probe, same, args.workers, stack, same_work=True),
                      Deployctl(probe, ours_bare, args.workers, stack, bare=True),
                      Compose(probe, bare, args.workers, stack, same_work=False)]
        for n in range(args.rounds):  # interleaved: each round sees every contender under the same load
            for contender in contenders:
                contender.deploy_round(n)
            for contender in contenders:
                contender.rollback_round(n)
            loads.append(os.getloadavg()[0])
    print(f"medians of {args.rounds} rounds, {args.workers} traffic workers, rounds interleaved; "
          f"load average {min(loads):.1f}-{max(loads):.1f}")
    print("the release: backend with its migration and secret file, frontend, nginx. compose does the same "
          "work with `run --rm backend migrate` then `up -d`; bare: both sides without the migration and secret")
    rows = [
        ("deploy: wall time", "deploy", "deploy", "deploy"),
        ("deploy: to the verified switch", "deploy: to the verified switch", "deploy: up -d returned",
         "deploy: to the verified switch"),
        ("deploy: traffic on new after", "deploy: on new", "deploy: on new", "deploy: on new"),
        ("rollback, warm: wall time", "rollback (warm)", "rollback", "rollback (warm)"),
        ("rollback, warm: traffic on it after", "rollback (warm): on new", "rollback: on new",
         "rollback (warm): on new"),
    ]
    print(f"{'':<42}{'deployctl':>10}{'compose':>10}{'ratio':>7}   |{'deployctl':>10}{'compose':>10}{'ratio':>7}")
    print(f"{'':<42}{'same work':>27}   |{'bare':>27}")

    def cells(a: float | None, b: float | None) -> str:
        return f"{_fmt(a):>10}{_fmt(b):>10}{(f'{a / b:.2f}x' if a and b else ''):>7}"

    for label, mine, theirs, mine_bare in rows:
        their_bare = theirs.replace("deploy: to the verified switch", "deploy: up -d returned")
        print(f"{label:<42}{cells(ours.median(mine), same.median(theirs))}   |"
              f"{cells(ours_bare.median(mine_bare), bare.median(their_bare))}")
    for label, name in (("rollback, warm, CLI: wall time", "rollback (warm, CLI)"),
                        ("rollback, warm, CLI: traffic on it after", "rollback (warm, CLI): on new"),
                        ("rollback, cold: wall time", "rollback (cold)"),
                        ("rollback, cold: traffic on it after", "rollback (cold): on new")):
        print(f"{label:<42}{_fmt(ours.median(name)):>10}")
    failed = [p.failed.get("all", 0) for p in (ours, same, ours_bare, bare)]
    sent = [c.sent for c in contenders]
    print(f"{'failed requests':<42}{failed[0]:>10}{failed[1]:>10}{'':>7}   |{failed[2]:>10}{failed[3]:>10}")
    print(f"{'requests sent':<42}{sent[0]:>10}{sent[1]:>10}{'':>7}   |{sent[2]:>10}{sent[3]:>10}")
    stuck = [sum(p.stuck.values()) for p in (ours, same, ours_bare, bare)]
    if any(stuck):
        print(f"{'rounds whose release never answered (60 s)':<42}{stuck[0]:>10}{stuck[1]:>10}{'':>7}   |"
              f"{stuck[2]:>10}{stuck[3]:>10}")
    steps = {name[5:]: ours.median(name) for name in ours.rows if name.startswith("step ")}
    print("deployctl deploy, median seconds per step:",
          ", ".join(f"{k} {v:.2f}" for k, v in sorted(steps.items(), key=lambda kv: -(kv[1] or 0)) if v))
    print("compose's failed requests are printed beside ours above; "
          f"load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    if args.record:
        from history import record

        figures = {"deploy": ours.median("deploy"), "compose_deploy": same.median("deploy"),
                   "deploy_bare": ours_bare.median("deploy"), "compose_deploy_bare": bare.median("deploy"),
                   "rollback_warm_traffic_on": ours.median("rollback (warm): on new"),
                   "rollback_warm_wall": ours.median("rollback (warm)"),
                   "rollback_warm_cli_wall": ours.median("rollback (warm, CLI)"),
                   "rollback_cold": ours.median("rollback (cold)"),
                   "rollback_cold_traffic_on": ours.median("rollback (cold): on new"),
                   "failed": failed[0], "compose_failed": failed[1], "compose_stuck_rounds": stuck[1] + stuck[3],
                   **{f"step_{k}": v for k, v in steps.items()}}
        if figures["deploy"] and figures["compose_deploy"]:
            figures["deploy_ratio_same_work"] = figures["deploy"] / figures["compose_deploy"]
        if figures["deploy_bare"] and figures["compose_deploy_bare"]:
            figures["deploy_ratio_bare"] = figures["deploy_bare"] / figures["compose_deploy_bare"]
        record("release_speed", {k: v for k, v in figures.items() if v is not None},
               load_average=f"{min(loads):.1f}-{max(loads):.1f}", note=f"{args.rounds} rounds, {args.workers} workers")


if __name__ == "__main__":
    main()
