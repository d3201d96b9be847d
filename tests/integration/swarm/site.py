"""One app deployed to the test Swarm: its deploy.toml (target swarm, the first fleet host
as manager, the fleet's SSH key and pinned known_hosts), its artifacts (the probe images by
digest), the CLI run as a subprocess, and what the manager says."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from deployctl.plan.lifecycle.releases import History
from tests.integration.deploy_fixtures import DEPLOYCTL, PROBE, unique_app, write_probe_artifacts
from tests.support.swarm import Swarm
from tests.support.traffic import Traffic

ENV = "production"
SECRET_ENV = {"PROBE_DB_PASSWORD": "swarm-secret-value"}


@dataclass(frozen=True)
class SwarmImages:
    probe: str  # GATEWAY:PORT/fleet/probe@sha256:...
    broken: str  # the probe whose health check never passes
    proxy: str  # the stand-in nginx by digest


@dataclass
class SwarmSite:
    swarm: Swarm
    images: SwarmImages
    workdir: Path
    app: str
    proxy_port: int

    @classmethod
    def new(cls, swarm: Swarm, images: SwarmImages, workdir: Path, port: int) -> "SwarmSite":
        site = cls(swarm, images, workdir, unique_app(), port)
        site.write_config()
        return site

    @property
    def config(self) -> Path:
        return self.workdir / "deploy.toml"

    def write_config(self, frontend_replicas: int = 3, backend_replicas: int = 2, health_timeout: float = 20,
                     checks: str = "docker", guard_window: float = 0, frontend_env: dict | None = None,
                     proxy_image: str | None = None, warm_window: float = 600, drain: float = 1.0,
                     migrate: bool = True, rollout: dict | None = None) -> None:
        """`checks`: "docker" (the image's HEALTHCHECK, run by Swarm in each task) or "http"
        (frontend: GET /healthz, backend: a TCP connect, both run by deployctl itself, the
        way an app we did not write, without curl in its image, is checked). `migrate`: the
        backend's migration (a replicated job, ~5 s a deploy). `rollout`: more keys of the
        environment's [rollout] table (numbers)."""
        fleet = self.swarm.fleet
        frontend_check, backend_check = (('type = "http"\npath = "/healthz"', 'type = "tcp"') if checks == "http"
                                         else ('type = "docker"', 'type = "docker"'))
        self.config.write_text(f"""
app = "{self.app}"
[registry]
server = "{fleet.registry}"
[services.backend]
context = "{PROBE}"
{'migrate = ["python", "/probe/server.py", "migrate"]' if migrate else ""}
secrets = ["PROBE_DB_PASSWORD"]
replicas = {backend_replicas}
[services.backend.healthcheck]
{backend_check}
timeout = {health_timeout}
[services.frontend]
context = "{PROBE}"
routed = true
verify_path = "/version"
replicas = {frontend_replicas}
[services.frontend.healthcheck]
{frontend_check}
timeout = {health_timeout}
[services.frontend.env]
BACKEND_URL = "{{{{ backend.url }}}}"
{"".join(f'{k} = "{v}"{chr(10)}' for k, v in (frontend_env or {}).items())}
[proxy]
image = "{proxy_image or self.images.proxy}"
[environments.{ENV}]
target = "swarm"
manager = "{self.swarm.manager.address}"
proxy_port = {self.proxy_port}
state_dir = "/var/lib/deployctl"
[environments.{ENV}.ssh]
user = "root"
key_file = "{fleet.key_file}"
known_hosts = "{fleet.known_hosts_file}"
connect_timeout = 3
[environments.{ENV}.rollout]
drain = {drain}
keep = 3
guard_window = {guard_window}
warm_window = {warm_window}
guard_max_error_rate = 0.05
guard_min_requests = 20
{"".join(f"{k} = {v}{chr(10)}" for k, v in (rollout or {}).items())}""")

    def artifacts(self, revision: str, frontend: str | None = None) -> None:
        refs = {"backend": self.images.probe, "frontend": frontend or self.images.probe}
        write_probe_artifacts(self.config, self.app, revision, "unused", "unused", "unused",
                              digests={n: r.split("@")[1] for n, r in refs.items()},
                              repositories={n: r.split("@")[0] for n, r in refs.items()})

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([DEPLOYCTL, "--config", str(self.config), *args], capture_output=True, text=True,
                              env={**os.environ, **SECRET_ENV, "TERM": "dumb"}, timeout=timeout)

    def deploy(self, revision: str, *extra: str, frontend: str | None = None) -> subprocess.CompletedProcess:
        self.artifacts(revision, frontend)
        return self.cli("deploy", "--env", ENV, *extra)

    def state_file(self, name: str) -> str:
        return self.swarm.manager.exec("sh", "-c", f"cat /var/lib/deployctl/{self.app}/{ENV}/{name} 2>/dev/null",
                                       check=False)

    def current(self) -> str:
        return self.state_file("current").strip()

    def history(self) -> History:
        return History.parse(self.state_file("releases.jsonl"))

    def service(self, name: str, release: str) -> str:
        return f"{self.app}-{ENV}-{name}-{release}"


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


class Phases:
    """Runs each phase of a test under traffic through the load balancer (4 workers, from
    BEFORE requests seen before the action to AFTER requests sent after it returned) and
    keeps a line per phase for the test's report.

    Counts, not fixed sleeps (1 s before, 1.5 s after until issue 26): at this suite's ~100
    requests a second they take a fraction of a second, and on a slower machine they still
    wait until the traffic was seen flowing past the moment, which a sleep only hopes for.
    AFTER is the sample `wrong_release_after` judges: 10 answers per worker after the return."""

    BEFORE, AFTER = 8, 40

    def __init__(self, balancer) -> None:  # type: ignore[no-untyped-def]
        self.balancer, self.lines = balancer, []

    def __call__(self, name: str, action):  # type: ignore[no-untyped-def]
        """The action's result, the traffic report, and when the action returned."""
        with Traffic(f"{self.balancer.url}/version", workers=4, max_requests=30_000, max_seconds=180) as traffic:
            traffic.wait_for(self.BEFORE, timeout=10)
            started = time.monotonic()
            result = action()
            took = time.monotonic() - started
            returned = time.time()
            traffic.wait_for(self.AFTER, since=returned, timeout=10)
        self.lines.append(f"{name}: {traffic.report.summary()} ({took:.1f}s)"
                          + "".join(f"\n  failed: {f.status} {f.error[:100]} after {f.finished - f.started:.2f}s"
                                    for f in traffic.report.failures[:5]))
        print(self.lines[-1])
        return result, traffic.report, returned

    def summary(self) -> str:
        return "\n".join(self.lines)
