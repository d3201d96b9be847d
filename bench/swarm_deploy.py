"""Swarm benchmark (issue 12), side by side in one run on the same three test hosts:

- deployctl on the 3-node Swarm (target = "swarm"): deploy and rollback wall time, and the
  failed requests under traffic through a load balancer in front of the three nodes;
- deployctl on the same 3 hosts over SSH (target = "ssh", the fleet): the same;
- plain Swarm: `docker service update --image` (start-first, one task at a time) and
  `docker service rollback` of the same two services (3 and 2 tasks, updated side by side),
  dnsrr, the first behind nginx on every node that resolves its
  tasks by Docker's DNS (nginx's defaults otherwise: the usual recipe without the routing
  mesh, which these machines lack), under the same traffic: failed requests and how many
  answers came from the old release after the update returned or mixed with the new one;
  and the same work by hand (the release's migration as a replicated job, timed apart
  before the update, then the update), as deployctl's deploy migrates before it switches.

Every timed deploy ships an image new to the hosts (the probe plus a label: a new digest
whose layers are cached). Rounds interleave the three, so load on this shared machine hits
each alike; medians are reported.

Targets (issue 26): the Swarm rollback <= 5 s inside the warm window (the whole command),
the Swarm deploy <= 1.0x the plain update, 0 failed requests in both.

    .venv/bin/python bench/swarm_deploy.py [--rounds 3] [--no-ssh]

Needs the Docker engine, the stand-in images and docker-registry (scripts/testenv.sh up).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fleet_deploy import new_variant  # noqa: E402
from bench.step_profile import profiled  # noqa: E402
from tests.integration.deploy_fixtures import build_probe_images  # noqa: E402
from tests.integration.fleet.site import ENV, FleetImages, new_site  # noqa: E402
from tests.integration.deploy_fixtures import DEPLOYCTL  # noqa: E402
from tests.integration.swarm.site import SECRET_ENV, SwarmImages, SwarmSite  # noqa: E402
from tests.support.engine import STANDIN_IMAGES  # noqa: E402
from tests.support.fleet import start_fleet  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402
from tests.support.swarm import Swarm, make_swarm, wait_for  # noqa: E402
from tests.support.traffic import Traffic  # noqa: E402

PLAIN = "bench-plain"
PLAIN_BACKEND = "bench-plain-backend"  # the second service, as deployctl's site has (backend 2, frontend 3 tasks)
PLAIN_PROXY = "bench-plain-proxy"
PLAIN_NET = "bench-plain-net"
PLAIN_DIR = "/var/lib/bench-plain"
PLAIN_PORT = 8302
PLAIN_NGINX = """events {}
http {
    resolver 127.0.0.11 valid=1s ipv6=off;
    server {
        listen 80;
        location / {
            set $upstream tasks.%s;
            proxy_pass http://$upstream:8000;
        }
    }
}
""" % PLAIN


class Plain:
    """The baseline: Swarm's own rolling update of a dnsrr service behind nginx on every node."""

    def __init__(self, swarm: Swarm, image: str, proxy_image: str) -> None:
        self.swarm, self.version, self.base = swarm, 0, image
        self.paused = 0  # updates or rollbacks Swarm paused (a new task failed)
        self.broken = False
        m = swarm.manager
        for host in swarm.nodes:
            host.exec("sh", "-c", f"mkdir -p {PLAIN_DIR} && cat > {PLAIN_DIR}/nginx.conf <<'EOF'\n{PLAIN_NGINX}EOF")
        m.exec("docker", "network", "create", "--driver", "overlay", "--attachable", PLAIN_NET)
        self._create()
        m.exec("docker", "service", "create", "--detach", "--name", PLAIN_PROXY, "--mode", "global",
               "--endpoint-mode", "dnsrr", "--network", PLAIN_NET, "--publish",
               f"mode=host,target=80,published={PLAIN_PORT}", "--mount",
               f"type=bind,source={PLAIN_DIR},target=/etc/nginx/plain,readonly", "--no-resolve-image",
               "--entrypoint", "nginx", proxy_image, "-c", "/etc/nginx/plain/nginx.conf", "-g", "daemon off;")
        wait_for(lambda: sum(swarm.running_tasks(PLAIN).values()) == 3
                 and sum(swarm.running_tasks(PLAIN_BACKEND).values()) == 2
                 and sum(swarm.running_tasks(PLAIN_PROXY).values()) == 3, 120, "the plain services and their proxies")

    def _create(self) -> None:
        for name, replicas in ((PLAIN, 3), (PLAIN_BACKEND, 2)):
            self.swarm.manager.exec(
                "docker", "service", "create", "--detach", "--name", name, "--replicas", str(replicas),
                "--endpoint-mode", "dnsrr", "--network", PLAIN_NET, "--env", f"DEPLOYCTL_RELEASE=plain-{self.version}",
                "--update-order", "start-first", "--update-parallelism", "1", "--rollback-order", "start-first",
                "--stop-grace-period", "10s", "--no-resolve-image", self.base)

    def update(self, image: str) -> str | None:
        """Both services, side by side (the same services deployctl's site deploys)."""
        self.version += 1
        release = f"plain-{self.version}"
        if not self._both(lambda name: ("docker", "service", "update", "--detach=false", "--quiet", "--image", image,
                                        "--env-add", f"DEPLOYCTL_RELEASE={release}", "--no-resolve-image", name)):
            return None  # paused: some tasks on each release
        return release

    def migrate(self, image: str) -> float:
        """What a Swarm user runs before `service update` when the release migrates (the work
        deployctl's deploy does as its migrate step): the new image's migration as a
        replicated job on the services' network, waited for, then removed. Its seconds."""
        started = time.monotonic()
        name = f"{PLAIN}-migrate-{self.version + 1}"
        self.swarm.manager.exec("docker", "service", "create", "--detach=false", "--quiet", "--name", name,
                                "--mode", "replicated-job", "--restart-condition", "none", "--network", PLAIN_NET,
                                "--no-resolve-image", image, "python", "/probe/server.py", "migrate")
        self.swarm.manager.exec("docker", "service", "rm", name, check=False)
        return time.monotonic() - started

    def rollback(self) -> None:
        if not self.broken and self._both(lambda name: ("docker", "service", "rollback", "--detach=false", "--quiet",
                                                        name)):
            self.version -= 1

    def _both(self, argv) -> bool:  # type: ignore[no-untyped-def]
        with ThreadPoolExecutor(max_workers=2) as pool:
            done = list(pool.map(lambda name: self._run(*argv(name)), (PLAIN, PLAIN_BACKEND)))
        return all(done)

    def _run(self, *argv: str) -> bool:
        """Swarm pauses an update (or rollback) when a new task fails: counted, and the
        service made again from the base image so the next round starts clean."""
        try:
            self.swarm.manager.exec(*argv)
            return True
        except RuntimeError as exc:
            self.paused += 1
            self.broken = True
            print(f"    plain Swarm: {str(exc)[-160:]}", flush=True)
            return False

    def reset(self) -> None:
        """After a paused update, outside the measured traffic: the service made again."""
        if not self.broken:
            return
        self.swarm.manager.exec("docker", "service", "rm", PLAIN, PLAIN_BACKEND, check=False)
        time.sleep(3)
        self.version, self.broken = 0, False
        self._create()
        try:
            wait_for(lambda: sum(self.swarm.running_tasks(PLAIN).values()) == 3
                     and sum(self.swarm.running_tasks(PLAIN_BACKEND).values()) == 2, 120, "the plain services again")
        except TimeoutError as exc:  # the next round measures it as it is, and says so
            print(f"    plain Swarm: {exc}", flush=True)

    def close(self) -> None:
        m = self.swarm.manager
        m.exec("docker", "service", "rm", PLAIN, PLAIN_BACKEND, PLAIN_PROXY, check=False)
        time.sleep(3)
        m.exec("docker", "network", "rm", PLAIN_NET, check=False)


SAME_WORK = "plain Swarm, same work: migration job + update"


def under_traffic(url: str, action):  # type: ignore[no-untyped-def]
    """(wall seconds of action, its result, the traffic report, when it returned)."""
    with Traffic(url, workers=4, max_requests=50_000, max_seconds=300) as traffic:
        time.sleep(1)
        started = time.monotonic()
        result = action()
        wall = time.monotonic() - started
        returned = time.time()
        time.sleep(1)
    return wall, result, traffic.report, returned


def failure_summary(report) -> str:  # type: ignore[no-untyped-def]
    """What failed and when (seconds after the traffic began), for reading a bad round."""
    first = report.samples[0].started if report.samples else 0.0
    kinds: dict[str, list[float]] = {}
    for sample in report.failures:
        key = f"{sample.status} {sample.error[:70]}"
        kinds.setdefault(key, []).append(sample.started - first)
    return "; ".join(f"{len(at)}x [{key}] at {min(at):.1f}-{max(at):.1f}s" for key, at in kinds.items())


def cli_ok(done) -> str:  # type: ignore[no-untyped-def]
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-2000:])
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-ssh", action="store_true", help="leave out deployctl on the 3 hosts over SSH")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a `kill` unwinds: the Swarm and hosts go
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)",
          flush=True)
    loads: list[float] = []
    rows: dict[str, dict[str, list[float]]] = {}
    failed_runs: list[str] = []

    def add(label: str, wall: float, report, old_after: int = 0, started: float = 0.0) -> None:  # type: ignore[no-untyped-def]
        row = rows.setdefault(label, {"wall": [], "failed": [], "total": [], "old_after": []})
        row["wall"].append(wall)
        row["failed"].append(len(report.failures))
        row["total"].append(report.total)
        row["old_after"].append(old_after)
        print(f"  {label}: {wall:.2f}s, {report.summary()}"
              + (f", {old_after} answers from another release after it returned" if old_after else ""), flush=True)
        if report.failures:
            print("    failures: " + failure_summary(report), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry")
        fleet = swarm = plain = None
        try:
            # The probe with its own HEALTHCHECK: the Swarm site checks by it (write_config's
            # default) and the plain services are updated by it, as before the plain probe lost it.
            probe = build_probe_images(STANDIN_IMAGES)
            fleet = start_fleet(work / "fleet", 3, host_image=STANDIN_IMAGES["host"],
                                nginx_image=STANDIN_IMAGES["nginx"], registry_port=registry.port)
            swarm = make_swarm(fleet)
            with ThreadPoolExecutor(max_workers=2) as pool:
                good = pool.submit(fleet.publish, probe.good_checked, "fleet/probe", "good")
                proxy = pool.submit(fleet.publish, STANDIN_IMAGES["nginx"], "fleet/nginx", "standin")
            images = FleetImages(good.result(), proxy.result())
            (work / "fleet-site").mkdir()
            (work / "swarm-site").mkdir()
            fleet_site = new_site(fleet, images, work / "fleet-site", 8101, 3)
            fleet_site.write_config(health_timeout=20, drain=1.0)
            swarm_site = SwarmSite.new(swarm, SwarmImages(images.probe, images.probe, images.proxy),
                                       work / "swarm-site", 8301)
            if not args.no_ssh:
                cli_ok(fleet_site.deploy("0000000a"))  # untimed: the first pull and the proxies
            cli_ok(swarm_site.deploy("0000000a"))
            plain = Plain(swarm, images.probe, images.proxy)
            balancers = {"swarm": swarm.load_balancer(8301), "fleet": fleet.load_balancer(8101),
                         "plain": swarm.load_balancer(PLAIN_PORT)}
            for round_ in range(args.rounds):
                loads.append(os.getloadavg()[0])
                print(f"round {round_ + 1} (load average {loads[-1]:.1f})", flush=True)
                targets = [("deployctl, Swarm (3 nodes)", swarm_site)]
                if not args.no_ssh:
                    targets.append(("deployctl, ssh (3 hosts)", fleet_site))
                for label, site in targets:
                    key = "swarm" if site is swarm_site else "fleet"
                    url = f"{balancers[key].url}/version"
                    image = new_variant(fleet, probe.good_checked)
                    site.artifacts(f"{round_ + 1:07d}b", image)
                    if key == "swarm":  # where its seconds go against the plain update: each step, stamped
                        def deploying():  # type: ignore[no-untyped-def]
                            return profiled([DEPLOYCTL, "--config", str(site.config), "deploy", "--env", ENV,
                                             "--json"], env={**SECRET_ENV, "TERM": "dumb"})
                    else:
                        def deploying():  # type: ignore[no-untyped-def]
                            return site.cli("deploy", "--env", ENV)
                    wall, done, report, returned = under_traffic(url, deploying)
                    if done.returncode != 0:
                        # On this shared machine a health check can time out under load: the deploy
                        # then fails safely (exit 6); counted, and the round's rollback skipped.
                        failed_runs.append(f"{label}: deploy exit {done.returncode}: "
                                           + (done.stdout + done.stderr).strip().splitlines()[-2][:160])
                        print(f"  {failed_runs[-1]}; {report.summary()}", flush=True)
                        continue
                    if key == "swarm":
                        print(done.table(), flush=True)
                    live = site.current() if key == "swarm" else site.current(site.hosts[0])
                    add(f"{label}: deploy", wall, report, len(report.wrong_release_after(returned, live)))
                    if key == "swarm":  # where its seconds go: each step's events, stamped as they arrive
                        def action():  # type: ignore[no-untyped-def]
                            return profiled([DEPLOYCTL, "--config", str(site.config), "rollback", "--env", ENV,
                                             "--json"], env={**SECRET_ENV, "TERM": "dumb"})
                    else:
                        def action():  # type: ignore[no-untyped-def]
                            return site.cli("rollback", "--env", ENV)
                    wall, done, report, returned = under_traffic(url, action)
                    cli_ok(done)
                    if key == "swarm":
                        print(done.table(), flush=True)
                    live = site.current() if key == "swarm" else site.current(site.hosts[0])
                    add(f"{label}: rollback", wall, report, len(report.wrong_release_after(returned, live)))
                url = f"{balancers['plain'].url}/version"
                image = new_variant(fleet, probe.good_checked)
                # The same work as deployctl's deploy: its migration job first (timed apart), then
                # the update; the update's own row is as before, the same-work row is their sum.
                job = plain.migrate(image)
                wall, release, report, returned = under_traffic(url, lambda: plain.update(image))
                add("plain Swarm: service update --image (start-first)", wall, report,
                    len(report.wrong_release_after(returned, release)) if release else 0)
                print(f"  plain Swarm: the migration job before it: {job:.2f}s", flush=True)
                same = rows.setdefault(SAME_WORK, {"wall": [], "failed": [], "total": [], "old_after": []})
                for key, value in (("wall", job + wall), ("failed", len(report.failures)), ("total", report.total),
                                   ("old_after", 0)):
                    same[key].append(value)
                if not plain.broken:
                    wall, _, report, returned = under_traffic(url, plain.rollback)
                    add("plain Swarm: service rollback", wall, report,
                        0 if plain.broken else len(report.wrong_release_after(returned, f"plain-{plain.version}")))
                if round_ + 1 < args.rounds:
                    plain.reset()
            loads.append(os.getloadavg()[0])
            report_table(rows)
            verdicts(rows, loads)
            print(f"deploys that failed (exit 6, previous release kept): {len(failed_runs)}")
            for line in failed_runs:
                print(f"  {line}")
            print(f"plain Swarm updates or rollbacks paused by Swarm (a new task failed): {plain.paused}")
        finally:
            if plain is not None:
                plain.close()
            if swarm is not None:
                swarm.leave()
            if fleet is not None:
                fleet.close()
            registry.stop()


def report_table(rows: dict[str, dict[str, list[float]]]) -> None:
    print()
    print(f"{'':<52} {'median s':>9} {'min s':>7} {'max s':>7} {'failed (sum)':>13} {'requests':>9} "
          f"{'other release after return':>27}")
    for label, row in rows.items():
        print(f"{label:<52} {statistics.median(row['wall']):>9.2f} {min(row['wall']):>7.2f} {max(row['wall']):>7.2f} "
              f"{int(sum(row['failed'])):>13} {int(sum(row['total'])):>9} {int(sum(row['old_after'])):>27}")


def verdicts(rows: dict[str, dict[str, list[float]]], loads: list[float]) -> None:
    """Issue 26's Swarm targets, from this run's medians."""
    def median(label: str) -> float | None:
        return statistics.median(rows[label]["wall"]) if label in rows and rows[label]["wall"] else None

    print(f"load average over the run: median {statistics.median(loads):.1f}, max {max(loads):.1f} "
          f"({os.cpu_count()} cores)")
    deploy, plain = median("deployctl, Swarm (3 nodes): deploy"), median(
        "plain Swarm: service update --image (start-first)")
    if deploy is not None and plain is not None:
        ratio = deploy / plain
        print(f"Swarm deploy / plain `docker service update --image` of the same 2 services: {deploy:.2f} / "
              f"{plain:.2f} s = {ratio:.2f} (target <= 1.0: {'met' if ratio <= 1.0 else f'NOT met, by {ratio - 1:.2f}'})")
    same = median(SAME_WORK)
    if deploy is not None and same is not None:
        print(f"Swarm deploy / the same work by hand (the migration job, then `service update --image`): "
              f"{deploy:.2f} / {same:.2f} s = {deploy / same:.2f}")
    back = median("deployctl, Swarm (3 nodes): rollback")
    if back is not None:
        print(f"Swarm rollback (the whole command, inside the warm window): {back:.2f} s (target <= 5 s: "
              f"{'met' if back <= 5 else f'NOT met, by {back - 5:.2f} s'})")
    failed = {label: int(sum(row["failed"])) for label, row in rows.items() if label.startswith("deployctl, Swarm")}
    print(f"failed requests, deployctl on the Swarm: {failed}")


if __name__ == "__main__":
    main()
