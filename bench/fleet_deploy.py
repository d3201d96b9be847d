"""Fleet benchmark: deploy wall time to 1, 2, 4 and 8 hosts with rollout.parallel = all
hosts, side by side in one run, and the same 8 hosts one at a time (batch = 1).

The hosts are the test fleet (tests/support/fleet.py): containers with their own sshd and
dockerd on this machine, pulling from a private registry. Every timed deploy ships a
release whose image is new to the hosts (the probe image plus a label: a new digest whose
layers the hosts already have, like a typical code change on a cached base), so each one
pulls, starts, health-checks, switches nginx, verifies, drains (1 s) and stops the old
release, as a real deploy does. Rounds interleave the sizes, so load on this (shared)
machine that comes and goes hits every size alike; each size's median is reported, with
each deploy's pull time (the pulls run on every host before the lock) and how long each
host held its lock (the switch alone). Targets (issue 26): 8 hosts <= 1.3x one host; the
batch of one <= hosts x one host's switch + one pull. Past 8 hosts, bench/fleet_model.py
predicts from these figures (pass it --measured with this bench's --json output).

    .venv/bin/python bench/fleet_deploy.py [--rounds 3] [--hosts 8] [--json FILE]

Needs the Docker engine, the stand-in images and docker-registry (scripts/testenv.sh up).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployctl.config import load_config  # noqa: E402
from deployctl.events import StepDone  # noqa: E402
from deployctl.secrets import Secret  # noqa: E402
from deployctl.services.lifecycle.deploy import HostDeploy, deploy  # noqa: E402
from deployctl.services.hosts import connectors_for  # noqa: E402
from deployctl.services.lifecycle.release_images import ReleaseImages  # noqa: E402
from deployctl.services.env import Env  # noqa: E402
from tests.integration.deploy_fixtures import build_probe_images, docker  # noqa: E402
from tests.integration.fleet.site import ENV, FleetImages, FleetSite, new_site  # noqa: E402
from tests.support.engine import STANDIN_IMAGES  # noqa: E402
from tests.support.fleet import Fleet, start_fleet  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402

SECRETS = {"PROBE_DB_PASSWORD": Secret("bench-password-value")}


def sizes(most: int) -> list[tuple[str, int, dict]]:
    counts = [n for n in (1, 2, 4, 8, 16) if n < most] + [most]
    return [(label(n), n, {}) for n in counts] + [(f"{label(most)}, batch 1", most, {"batch": 1})]


def label(count: int) -> str:
    return f"{count} host{'s' if count != 1 else ''}"


@dataclass
class Sample:
    wall: float
    cpu: float | None  # the host containers' CPU seconds meanwhile
    pull: float  # the slowest host's pull (before the lock)
    held: float  # the longest a host held its lock
    locked_after_pulls: bool  # every lock was taken after every pull ended
    ctl_cpu: float  # deployctl's own CPU seconds (this process, every thread): SSH, planning


def new_variant(fleet: Fleet, base: str) -> str:
    """The probe image with a fresh label, pushed: a digest no host has pulled yet."""
    tag = f"deployctl-bench/probe:{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=f"FROM {base}\nLABEL bench.variant={tag}\n",
                   text=True, check=True, capture_output=True)
    try:
        return fleet.publish(tag, "fleet/probe", tag.rsplit(":", 1)[1])
    finally:
        docker("rmi", tag, check=False)


def host_cpu(fleet: Fleet) -> float | None:
    """CPU seconds the host containers have used (their cgroups; v1 or v2), None if unknown.
    The hosts share this machine's cores, so this is what several hosts compete for."""
    total = 0.0
    for host in fleet.hosts:
        cid = docker("inspect", "--format", "{{.Id}}", host.name)
        v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
        v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat")
        if v1.exists():
            total += int(v1.read_text()) / 1e9
        elif v2.exists():
            total += int(v2.read_text().split("usage_usec ")[1].split()[0]) / 1e6
        else:
            return None
    return total


class LockTimes:
    """When each host's lock was taken and released (HostDeploy.lock/unlock, wrapped here,
    in the bench only): how long the lock is held, and that the pulls came first."""

    def __init__(self) -> None:
        self.taken: dict[str, float] = {}
        self.released: dict[str, float] = {}
        lock, unlock = HostDeploy.lock, HostDeploy.unlock

        def timed_lock(job: HostDeploy) -> None:
            lock(job)
            self.taken[job.host] = time.monotonic()

        def timed_unlock(job: HostDeploy) -> None:
            self.released[job.host] = time.monotonic()
            unlock(job)

        HostDeploy.lock, HostDeploy.unlock = timed_lock, timed_unlock  # type: ignore[method-assign]

    def held(self) -> float:
        return max(self.released[h] - self.taken[h] for h in self.taken)


LOCKS = LockTimes()


def handshake_cpu(site: FleetSite, times: int = 5) -> float:
    """deployctl's CPU seconds for one SSH connection (paramiko's key exchange and auth),
    median of `times`: the controller's cost per host that no parallelism hides."""
    conn = connectors_for(load_config(site.config), ENV)[0]
    costs = []
    for _ in range(times):
        started = time.process_time()
        conn.connect()
        costs.append(time.process_time() - started)
        conn.close()
    return statistics.median(costs)


def timed_deploy(site: FleetSite, image: str, revision: str) -> Sample:
    loaded = load_config(site.config)
    release = ReleaseImages({"backend": image, "frontend": image}, revision)
    pulls: list[tuple[float, float]] = []  # (ended at, seconds) of each image pull

    def emit(event) -> None:  # type: ignore[no-untyped-def]
        if isinstance(event, StepDone) and event.step == "pull" and event.seconds is not None:
            pulls.append((time.monotonic(), event.seconds))

    LOCKS.taken.clear()
    LOCKS.released.clear()
    cpu = host_cpu(site.fleet)
    started, ctl = time.monotonic(), time.process_time()
    deploy(Env.resolve(loaded, ENV), release, SECRETS, emit)
    wall, ctl = time.monotonic() - started, time.process_time() - ctl
    after = host_cpu(site.fleet)
    return Sample(wall, after - cpu if cpu is not None and after is not None else None,
                  max((s for _, s in pulls), default=0.0), LOCKS.held(),
                  all(end <= min(LOCKS.taken.values()) for end, _ in pulls), ctl)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=8, help="the largest fleet (and the batch-of-one's)")
    parser.add_argument("--json", type=Path, help="write every sample here (bench/fleet_model.py --measured)")
    args = parser.parse_args()
    # SIGTERM (a `kill` of the bench) unwinds like Ctrl-C, so the hosts and registry go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = sizes(args.hosts)
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry")
        fleet = None
        try:
            probe = build_probe_images(STANDIN_IMAGES)
            fleet = start_fleet(work / "fleet", args.hosts, host_image=STANDIN_IMAGES["host"],
                                nginx_image=STANDIN_IMAGES["nginx"], registry_port=registry.port)
            with ThreadPoolExecutor(max_workers=2) as pool:
                good = pool.submit(fleet.publish, probe.good, "fleet/probe", "good")
                # deployctl's built-in proxy runs this nginx on the hosts
                proxy = pool.submit(fleet.publish, STANDIN_IMAGES["nginx"], "fleet/nginx", "standin")
            images = FleetImages(good.result(), proxy.result())
            sites = []
            for index, (name, count, rollout) in enumerate(plan):
                (work / name).mkdir()
                site = new_site(fleet, images, work / name, 8101 + index, count)
                site.write_config(health_timeout=30, drain=1.0, **rollout)
                # Eight hosts' dockerd and sshd on this shared machine: SSH answers slowly at
                # times, and a 3 s connect (the tests' setting) failed the run's first deploy.
                site.config.write_text(site.config.read_text().replace("connect_timeout = 3", "connect_timeout = 60"))
                timed_deploy(site, images.probe, "0000000a")  # untimed: first pull of the base
                sites.append((name, count, site))
            samples: dict[str, list[Sample]] = {name: [] for name, _, _ in sites}
            loads: list[float] = []
            for round_ in range(args.rounds):
                for name, _, site in sites:
                    image = new_variant(fleet, probe.good)
                    sample = timed_deploy(site, image, f"{round_ + 1:07d}b")
                    samples[name].append(sample)
                    loads.append(os.getloadavg()[0])
                    # Other work on this shared machine shows here: read the table with it.
                    print(f"round {round_ + 1}: {name}: {sample.wall:.2f}s (pull {sample.pull:.2f}s, lock held "
                          f"{sample.held:.2f}s, pulls before the lock: {sample.locked_after_pulls}), hosts' CPU "
                          f"{'-' if sample.cpu is None else f'{sample.cpu:.2f}s'}, deployctl's CPU {sample.ctl_cpu:.2f}s "
                          f"(load average {loads[-1]:.1f})", flush=True)
            handshake = handshake_cpu(sites[0][2])
            report(plan, samples, loads)
            print(f"deployctl's CPU per SSH connection: {handshake * 1000:.0f} ms (median of 5)")
            if args.json:
                args.json.write_text(json.dumps({
                    "cores": os.cpu_count(), "load": loads, "handshake_cpu": handshake,
                    "sizes": [{"label": name, "hosts": count, "batch": rollout.get("batch"),
                               "samples": [asdict(s) for s in samples[name]]} for name, count, rollout in plan]},
                    indent=1))
        finally:
            if fleet is not None:
                fleet.close()
            registry.stop()


def report(plan: list[tuple[str, int, dict]], samples: dict[str, list[Sample]], loads: list[float]) -> None:
    def med(name: str, field: str) -> float:
        return statistics.median(getattr(s, field) for s in samples[name])

    one = med("1 host", "wall")
    cores = os.cpu_count() or 1
    print()
    print(f"{'deploy to':<18} {'median s':>9} {'min s':>7} {'max s':>7} {'vs 1 host':>10} {'pull s':>7} "
          f"{'lock held s':>12} {'hosts CPU s':>12}")
    for name, _, _ in plan:
        walls = [s.wall for s in samples[name]]
        cpus = [s.cpu for s in samples[name] if s.cpu is not None]
        used = f"{statistics.median(cpus):.2f}" if cpus else "-"
        print(f"{name:<18} {med(name, 'wall'):>9.2f} {min(walls):>7.2f} {max(walls):>7.2f} "
              f"{med(name, 'wall') / one:>9.2f}x {med(name, 'pull'):>7.2f} {med(name, 'held'):>12.2f} {used:>12}")
    parallel = [(name, count) for name, count, rollout in plan if not rollout]
    batch_name, most, _ = plan[-1]
    big = parallel[-1][0]
    ratio = med(big, "wall") / one
    # The same round's deploys ran a minute apart: their ratio is less swayed by load that
    # comes and goes than the ratio of the medians.
    paired = statistics.median(b.wall / a.wall for b, a in zip(samples[big], samples["1 host"]))
    print()
    print(f"load average over the run: median {statistics.median(loads):.1f}, max {max(loads):.1f} ({cores} cores)")
    print(f"{big} / 1 host (parallel = all): {ratio:.2f} (target <= 1.3: "
          f"{'met' if ratio <= 1.3 else f'NOT met, by {ratio - 1.3:.2f}'}); median of the rounds' own ratios: "
          f"{paired:.2f}")
    switch_one = one - med("1 host", "pull")  # one host's deploy but its pull
    bound = most * switch_one + med(batch_name, "pull")
    batch = med(batch_name, "wall")
    print(f"batch of one, {most} hosts: {batch:.2f}s; bound {most} x {switch_one:.2f}s (one host's deploy "
          f"but its pull) + {med(batch_name, 'pull'):.2f}s (one pull) = {bound:.2f}s: "
          f"{'met' if batch <= bound else 'NOT met'} ({batch / bound:.2f} of the bound)")
    print(f"every lock taken after every pull ended: "
          f"{all(s.locked_after_pulls for name in samples for s in samples[name])}")
    cpus = [s.cpu for s in samples[big] if s.cpu is not None]
    if cpus:
        floor = statistics.median(cpus) / cores
        print(f"the {parallel[-1][1]} simulated hosts share this machine's {cores} cores: their "
              f"{statistics.median(cpus):.1f} CPU-s per deploy take at least {floor:.1f}s here "
              f"(real hosts each have their own)")


if __name__ == "__main__":
    main()
