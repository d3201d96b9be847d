"""One app deployed to the test fleet: its deploy.toml (ssh target, the fleet's hosts,
rollout settings), its artifacts (the probe images by digest, as the hosts pull them),
the CLI run as a subprocess (as CI runs it), and what each host says."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deployctl.plan.lifecycle.releases import History
from tests.integration.deploy_fixtures import DEPLOYCTL, probe_config, unique_app, write_probe_artifacts
from tests.support.fleet import Fleet

ENV = "production"
SECRET_ENV = {"PROBE_DB_PASSWORD": "fleet-secret-value"}


@dataclass(frozen=True)
class FleetImages:
    probe: str  # GATEWAY:PORT/fleet/probe@sha256:... (backend and frontend)
    proxy: str  # the stand-in nginx by digest: deployctl's built-in proxy on the hosts


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

    def write_config(self, health_timeout: float = 4, frontend_env: dict | None = None,  # type: ignore[no-untyped-def]
                     proxy_jump: str | None = None, **rollout) -> Path:
        """`frontend_env`: the probe's failure knobs (PROBE_FAIL_SHARE ...) for the next deploys.
        `proxy_jump`: ssh.proxy_jump, the jump host every connection goes through."""
        ssh = (f"[environments.{ENV}.ssh]\nuser = \"root\"\nkey_file = \"{self.fleet.key_file}\"\n"
               f"known_hosts = \"{self.fleet.known_hosts_file}\"\nconnect_timeout = 3\n"
               + (f"proxy_jump = \"{proxy_jump}\"\n" if proxy_jump else ""))
        return probe_config(self.workdir, self.app, port=self.proxy_port, env_name=ENV, target="ssh",
                            extra_env=f"hosts = {json.dumps(self.hosts)}\n{ssh}",
                            registry=f"[registry]\nserver = \"{self.fleet.registry}\"\n",
                            health_timeout=health_timeout, proxy_image=self.images.proxy, verify_path="",
                            rollout={"drain": 0.5, **rollout}, state_dir="/var/lib/deployctl",
                            frontend_env=frontend_env)

    def artifacts(self, revision: str, frontend: str | None = None) -> None:
        """The release's images by digest, as `deployctl push` would have recorded them."""
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


def live_release(site: FleetSite, revision: str) -> str:
    """The release every host of `site` serves, deployed (as `revision`) first when none is
    (a module's first test, or a test run alone); with the settings in its deploy.toml."""
    currents = {site.current(host) for host in site.hosts}
    if len(currents) == 1 and "" not in currents:
        return currents.pop()
    done = site.deploy(revision, "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    return json_lines(done.stdout)[-1]["release"]


def new_site(fleet: Fleet, images: FleetImages, workdir: Path, proxy_port: int, count: int = 3) -> FleetSite:
    site = FleetSite(fleet, images, workdir, unique_app(), proxy_port, fleet.addresses(count))
    site.write_config()
    return site


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]
