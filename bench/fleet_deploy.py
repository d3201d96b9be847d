"""Fleet benchmark: deploy wall time to 1, 2 and 3 hosts with rollout.parallel = all hosts,
side by side in one run, and the same 3 hosts one at a time (batch = 1).

The hosts are the test fleet (tests/support/fleet.py): containers with their own sshd and
dockerd on this machine, pulling from a private registry. Every timed deploy ships a
release whose image is new to the hosts (the probe image plus a label: a new digest whose
layers the hosts already have, like a typical code change on a cached base), so each one
pulls, starts, health-checks, switches nginx, verifies, drains (1 s) and stops the old
release, as a real deploy does. Rounds interleave the sizes, so load on this (shared)
machine that comes and goes hits every size alike; each size's median is reported.

    .venv/bin/python bench/fleet_deploy.py [--rounds 3]

Needs the Docker engine, the stand-in images and docker-registry (scripts/testenv.sh up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployctl.config import load_config  # noqa: E402
from deployctl.events import Recorder  # noqa: E402
from deployctl.secrets import Secret  # noqa: E402
from deployctl.services.deploy import deploy  # noqa: E402
from deployctl.services.release_images import ReleaseImages  # noqa: E402
from tests.integration.deploy_fixtures import build_probe_images, docker  # noqa: E402
from tests.integration.fleet.site import ENV, FleetImages, FleetSite, new_site  # noqa: E402
from tests.support.engine import STANDIN_IMAGES  # noqa: E402
from tests.support.fleet import Fleet, start_fleet  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402

SECRETS = {"PROBE_DB_PASSWORD": Secret("bench-password-value")}
SIZES = [("1 host", 1, {}), ("2 hosts", 2, {}), ("3 hosts", 3, {}), ("3 hosts, batch 1", 3, {"batch": 1})]


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


def timed_deploy(site: FleetSite, image: str, revision: str) -> tuple[float, float | None]:
    """Wall seconds of the deploy, and the CPU seconds the hosts used meanwhile."""
    loaded = load_config(site.config)
    release = ReleaseImages({"backend": image, "frontend": image}, revision)
    cpu = host_cpu(site.fleet)
    started = time.monotonic()
    deploy(loaded, ENV, release, SECRETS, Recorder())
    wall = time.monotonic() - started
    after = host_cpu(site.fleet)
    return wall, (after - cpu if cpu is not None and after is not None else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry")
        fleet = None
        try:
            probe = build_probe_images(STANDIN_IMAGES)
            fleet = start_fleet(work / "fleet", 3, host_image=STANDIN_IMAGES["host"],
                                nginx_image=STANDIN_IMAGES["nginx"], registry_port=registry.port)
            with ThreadPoolExecutor(max_workers=2) as pool:
                good = pool.submit(fleet.publish, probe.good, "fleet/probe", "good")
                # deployctl's built-in proxy runs this nginx on the hosts
                proxy = pool.submit(fleet.publish, STANDIN_IMAGES["nginx"], "fleet/nginx", "standin")
            images = FleetImages(good.result(), proxy.result())
            sites = []
            for index, (label, count, rollout) in enumerate(SIZES):
                (work / label).mkdir()
                site = new_site(fleet, images, work / label, 8101 + index, count)
                site.write_config(health_timeout=20, drain=1.0, **rollout)
                timed_deploy(site, images.probe, "0000000a")  # untimed: first pull of the base
                sites.append((label, site))
            times: dict[str, list[float]] = {label: [] for label, _ in sites}
            cpu: dict[str, list[float]] = {label: [] for label, _ in sites}
            for round_ in range(args.rounds):
                for label, site in sites:
                    image = new_variant(fleet, probe.good)
                    wall, used = timed_deploy(site, image, f"{round_ + 1:07d}b")
                    times[label].append(wall)
                    if used is not None:
                        cpu[label].append(used)
                    # Other work on this shared machine shows here: read the table with it.
                    print(f"round {round_ + 1}: {label}: {wall:.2f}s, hosts' CPU "
                          f"{'-' if used is None else f'{used:.2f}s'} (load average {os.getloadavg()[0]:.1f})",
                          flush=True)
            report(times, cpu)
        finally:
            if fleet is not None:
                fleet.close()
            registry.stop()


def report(times: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    one = statistics.median(times["1 host"])
    cores = os.cpu_count() or 1
    print()
    print(f"{'deploy to':<18} {'median s':>9} {'min s':>7} {'max s':>7} {'vs 1 host':>10} {'hosts CPU s':>12}")
    for label, samples in times.items():
        median = statistics.median(samples)
        used = f"{statistics.median(cpu[label]):.2f}" if cpu[label] else "-"
        print(f"{label:<18} {median:>9.2f} {min(samples):>7.2f} {max(samples):>7.2f} {median / one:>9.2f}x {used:>12}")
    ratio = statistics.median(times["3 hosts"]) / one
    # The same round's 3-host and 1-host deploys ran a minute apart: their ratio is less
    # swayed by load that comes and goes than the ratio of the medians.
    paired = statistics.median(t3 / t1 for t3, t1 in zip(times["3 hosts"], times["1 host"]))
    print()
    print(f"3 hosts / 1 host (parallel = all): {ratio:.2f} (target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'}); "
          f"median of the rounds' own ratios: {paired:.2f}")
    print(f"batch of one, 3 hosts: {statistics.median(times['3 hosts, batch 1']):.2f}s")
    if cpu["3 hosts"]:
        floor = statistics.median(cpu["3 hosts"]) / cores
        print(f"the 3 simulated hosts share this machine's {cores} cores: their "
              f"{statistics.median(cpu['3 hosts']):.1f} CPU-s per deploy take at least {floor:.1f}s here "
              f"(real hosts each have their own)")


if __name__ == "__main__":
    main()
