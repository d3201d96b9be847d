"""One app deployed to the test fleet: its deploy.toml (ssh target, the fleet's hosts,
rollout settings), its artifacts (the probe images by digest, as the hosts pull them),
the CLI run as a subprocess (as CI runs it), and what each host says."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deployctl.plan.releases import History
from tests.integration.deploy_fixtures import DEPLOYCTL, PROBE, unique_app, write_probe_artifacts
from tests.support.fleet import Fleet

ENV = "production"
SECRET_ENV = {"PROBE_DB_PASSWORD": "fleet-secret-value"}


@dataclass(frozen=True)
class FleetImages:
    probe: str  # GATEWAY:PORT/fleet/probe@sha256:... (backend and frontend)
    proxy: str


@dataclass
class FleetSite:
    fleet: Fleet
    images: FleetImages
    workdir: Path
    app: str
    proxy_port: int
    hosts: list[str]

    @property
    def config(self) -> Path:
        return self.workdir / "deploy.toml"

    def write_config(self, health_timeout: float = 4, **rollout) -> Path:  # type: ignore[no-untyped-def]
        settings = {"drain": 0.5, "keep": 3, **rollout}
        lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
        self.config.write_text(f"""
app = "{self.app}"
[registry]
server = "{self.fleet.registry}"
[services.backend]
context = "{PROBE}"
migrate = ["python", "/probe/server.py", "migrate"]
secrets = ["PROBE_DB_PASSWORD"]
[services.backend.healthcheck]
timeout = {health_timeout}
[services.frontend]
context = "{PROBE}"
routed = true
[services.frontend.healthcheck]
timeout = {health_timeout}
[services.frontend.env]
BACKEND_URL = "{{{{ backend.url }}}}"
[environments.{ENV}]
target = "ssh"
hosts = {json.dumps(self.hosts)}
proxy_port = {self.proxy_port}
[environments.{ENV}.ssh]
user = "root"
key_file = "{self.fleet.key_file}"
known_hosts = "{self.fleet.known_hosts_file}"
connect_timeout = 3
[environments.{ENV}.rollout]
{lines}""")
        return self.config

    def artifacts(self, revision: str, frontend: str | None = None) -> None:
        """The release's images by digest, as `deployctl push` would have recorded them."""
        refs = {"backend": self.images.probe, "frontend": frontend or self.images.probe, "proxy": self.images.proxy}
        write_probe_artifacts(self.config, self.app, revision, "unused", "unused", "unused",
                              digests={n: r.split("@")[1] for n, r in refs.items()},
                              repositories={n: r.split("@")[0] for n, r in refs.items()})

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([DEPLOYCTL, "--config", str(self.config), *args], capture_output=True, text=True,
                              env={**os.environ, **SECRET_ENV, "TERM": "dumb"}, timeout=timeout)

    def deploy(self, revision: str, *extra: str, frontend: str | None = None) -> subprocess.CompletedProcess:
        self.artifacts(revision, frontend)
        return self.cli("deploy", "--env", ENV, *extra)

    # -- what the hosts say ------------------------------------------------------------------

    def host(self, address: str):  # type: ignore[no-untyped-def]
        return next(h for h in self.fleet.hosts if h.address == address)

    def state_file(self, address: str, name: str) -> str:
        return self.host(address).exec("sh", "-c", f"cat /var/lib/deployctl/{self.app}/{ENV}/{name} 2>/dev/null",
                                       check=False)

    def current(self, address: str) -> str:
        return self.state_file(address, "current").strip()

    def history(self, address: str) -> History:
        return History.parse(self.state_file(address, "releases.jsonl"))

    def locked(self, address: str) -> bool:
        lock = f"/var/lib/deployctl/{self.app}/{ENV}/lock"
        return subprocess.run(["docker", "exec", self.host(address).name, "test", "-e", lock]).returncode == 0


def new_site(fleet: Fleet, images: FleetImages, workdir: Path, proxy_port: int, count: int = 3) -> FleetSite:
    site = FleetSite(fleet, images, workdir, unique_app(), proxy_port, fleet.addresses(count))
    site.write_config()
    return site


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]
