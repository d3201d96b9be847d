"""Issue 14 on a stand-in EC2 host (the `host` image: its own sshd and dockerd, as the fleet
tests run it, tests/support/fleet.py): the host's Docker engine restarts mid-deploy, and a
registry goes away mid-pull. Traffic goes straight to the host's proxy port at its address.

The host runs dockerd under a supervisor that starts it again when it exits (what systemd's
Restart=always does on a real host); the cell stops it with SIGTERM by its pid file. Without
live-restore, dockerd stops every container when it stops: requests fail until it is back
and has restarted the containers whose restart policy says so. The registry is a private
instance of this module (the session's shared one stays up)."""

from __future__ import annotations

import secrets
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from deployctl.adapters.ssh import SSHConnector
from deployctl.services.lifecycle.release_images import ReleaseImages
from tests.integration.deploy_fixtures import docker, free_port, probe_config, unique_app
from tests.integration.test_deploy_ssh import push
from tests.support.fleet import HOST_RUN_FLAGS, FleetHost, _host_keys, _labels, _network_with_fixed_subnet, \
    _wait_ready, remove_fleet
from tests.support.registry import start_registry

from .cells import Site, attempt, next_revision, run_cell
from .fault_connector import Fault, FaultConnector

pytestmark = pytest.mark.integration

# The stand-in host's own entrypoint, but dockerd supervised: it comes back when it exits.
ENTRYPOINT = r"""#!/bin/bash
set -u
ssh-keygen -A >/dev/null
mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh
printf '%s\n' "$SSH_AUTHORIZED_KEYS" >>/root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys
args=()
for registry in ${DOCKERD_INSECURE_REGISTRIES//,/ }; do args+=(--insecure-registry "$registry"); done
(
    while true; do
        rm -rf /var/run/docker.pid /var/run/docker/containerd/containerd.pid
        dockerd "${args[@]}" >>/var/log/dockerd.log 2>&1
        echo "supervisor: dockerd exited ($?), starting it again" >>/var/log/dockerd.log
        sleep 1
    done
) &
exec /usr/sbin/sshd -D -e
"""


class Host:
    def __init__(self, workdir: Path, image: str, registry_ports: list[int]) -> None:
        self.id = f"faults{secrets.token_hex(4)}"
        self.network = f"deployctl-{self.id}"
        gateway, subnet = _network_with_fixed_subnet(self.network, self.id)
        self.gateway = gateway
        self.key = workdir / "id_ed25519"
        import subprocess

        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        entry = workdir / "entrypoint.sh"
        entry.write_text(ENTRYPOINT)
        entry.chmod(0o755)
        self.host = FleetHost(f"deployctl-{self.id}-host", str(subnet.network_address + 10), f"deployctl-{self.id}-docker")
        docker("volume", "create", *_labels(self.id), self.host.volume)
        docker("run", "--detach", "--name", self.host.name, "--network", self.network, "--ip", self.host.address,
               *_labels(self.id), *HOST_RUN_FLAGS, "-v", f"{self.host.volume}:/var/lib/docker",
               "-v", f"{entry}:/faults-entrypoint.sh:ro", "--entrypoint", "/faults-entrypoint.sh",
               "-e", f"SSH_AUTHORIZED_KEYS={Path(f'{self.key}.pub').read_text().strip()}",
               "-e", "DOCKERD_INSECURE_REGISTRIES=" + ",".join(f"{gateway}:{p}" for p in registry_ports), image)
        _wait_ready(self.host)
        self.known_hosts = workdir / "known_hosts"
        self.known_hosts.write_text(_host_keys(self.host))

    @property
    def address(self) -> str:
        return self.host.address

    def connector(self) -> SSHConnector:
        return SSHConnector(self.address, user="root", key_file=str(self.key), known_hosts=str(self.known_hosts),
                            connect_timeout=3)

    def restart_dockerd(self) -> None:
        """SIGTERM to the inner dockerd (by its pid file); its supervisor starts it again.
        Returns once that dockerd has exited, so every container it ran has stopped: until
        then the proxy may still answer from the engine that is going away."""
        self.host.exec("sh", "-c", "pid=$(cat /var/run/docker.pid) && kill -TERM $pid && "
                                   "while kill -0 $pid 2>/dev/null; do sleep 0.1; done")

    def diagnosis(self) -> str:
        """What the host's engine shows and last logged: for a failure message."""
        listing = self.host.exec("docker", "ps", "-a", "--format", "{{.Names}} {{.Status}}", check=False)
        log = self.host.exec("tail", "-n", "15", "/var/log/dockerd.log", check=False)
        return f"containers:\n{listing}\ndockerd.log:\n{log}"

    def engine_up(self) -> bool:
        return docker("exec", self.host.name, "docker", "info", "--format", "{{.ID}}", check=False) != ""

    def balancer(self, port: int, workdir: Path, nginx_image: str) -> int:
        """nginx on 127.0.0.1:PORT in front of the host's proxy `port` (traffic stays on this
        machine's loopback, as tests/support/traffic.py insists); it never retries a failed
        request, so every request the host drops counts."""
        conf = workdir / f"lb-{port}.conf"
        conf.write_text(f"server {{\n    listen 80;\n    location / {{\n"
                        f"        proxy_pass http://{self.address}:{port};\n        proxy_next_upstream off;\n"
                        f"        proxy_connect_timeout 2s;\n        proxy_read_timeout 10s;\n    }}\n}}\n")
        published = free_port()
        docker("run", "--detach", "--name", f"{self.network}-lb-{port}", "--network", self.network, *_labels(self.id),
               "--publish", f"127.0.0.1:{published}:80", "-v", f"{conf}:/etc/nginx/conf.d/default.conf:ro",
               nginx_image)
        return published

    def close(self) -> None:
        remove_fleet(self.id)


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory):
    server = start_registry(tmp_path_factory.mktemp("private-registry"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def host(tmp_path_factory, standin_images, registry, private_registry):
    started = Host(tmp_path_factory.mktemp("faults-host"), standin_images["host"],
                   [registry.port, private_registry.port])
    yield started
    started.close()


@pytest.fixture(scope="module")
def host_site(tmp_path_factory, host, registry, probe_images, standin_images):
    tmp = tmp_path_factory.mktemp("host-faults")
    app, port = unique_app(), free_port()
    pinned = {}
    for name, image in (("backend", probe_images.good), ("frontend", probe_images.good),
                        ("proxy", standin_images["nginx"])):
        digest = push(image, f"{registry.address}/{app}/{name}", "faults")
        pinned[name] = f"{host.gateway}:{registry.port}/{app}/{name}@{digest}"
    ssh = (f"[environments.staging.ssh]\nuser = \"root\"\nkey_file = \"{host.key}\"\n"
           f"known_hosts = \"{host.known_hosts}\"\nconnect_timeout = 3\n")
    config = probe_config(tmp, app, port=port, env_name="staging", target="ssh", health_timeout=4, drain=0.2,
                          extra_env=f"hosts = [\"{host.address}\"]\n{ssh}", proxy_image=pinned["proxy"],
                          registry=f"[registry]\nserver = \"{host.gateway}:{registry.port}\"\n",
                          state_dir="/var/lib/deployctl")
    site = Site(app, host.balancer(port, tmp, standin_images["nginx"]), config, probe_images, env="staging",
                connector=host.connector, pinned=pinned, remote_state=True)
    site.deploy()
    yield site


def wait_serving(site: Site, host: Host, timeout: float = 90) -> float:
    """Seconds until the proxy answers /version again (after the engine came back)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            urllib.request.urlopen(site.url, timeout=2).read()
            return time.monotonic() - started
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the proxy on the host did not answer again within {timeout:g}s of the engine restart; "
                         f"{host.diagnosis()}")


def test_engine_restarts_between_deploys(host_site, host):
    """No deploy running: the engine stops and comes back. The proxy and the live release
    must serve again by themselves, before any deploy. (They did not, one time in three:
    dockerd restores containers in parallel and never retries one that failed to start, and
    nginx cannot join the namespace of an anchor not yet running; see ANCHOR_SCRIPT.)"""
    waited: list[float] = []

    def restart_and_wait():  # type: ignore[no-untyped-def]
        host.restart_dockerd()
        waited.append(wait_serving(host_site, host))
        assert host_site.serving() == host_site.state().current()
        return attempt(host_site.deploy)

    run_cell(host_site, "the host's dockerd restarts, no deploy running", "between deploys", restart_and_wait,
             exit=0, outcome="succeeded", live="new", max_failed=1_000_000,
             failed_because="the host's engine stops every container while it restarts (no live-restore)",
             note="the live release comes back by its restart policy, before any deploy; the proxy's nginx "
                  "container, restored before its anchor (dockerd's order), fails to start and is never retried, "
                  "so the anchor serves the live configuration itself until the deploy starts a new nginx; the "
                  "failures are the load balancer's fast 502s while the engine is down")
    print(f"served again {waited[0]:.1f}s after the restart")


def test_engine_restarts_during_health(host_site, host):
    """dockerd stops (and with it every container) at the first health probe, and comes back
    a second later: the health wait sees its containers gone; the live release must serve
    again once the engine is back, without a deploy (restart policies)."""
    restarting: list[threading.Thread] = []

    def restart() -> None:
        restarting.append(threading.Thread(target=host.restart_dockerd))
        restarting[-1].start()

    def deploy_then_wait():  # type: ignore[no-untyped-def]
        result = attempt(lambda: host_site.deploy(FaultConnector(host.connector(), Fault(
            "http_get", r"^(?!127\.0\.0\.1:)", effect="pass", action=restart))))
        for thread in restarting:
            thread.join()
        waited.append(wait_serving(host_site, host))  # the engine back, and with it the proxy and the live release
        return result

    waited: list[float] = []
    run_cell(host_site, "the host's dockerd restarts (SIGTERM, its supervisor starts it again)", "health",
             deploy_then_wait, exit=6, outcome=("failed", "reverted"), live="previous", max_failed=1_000_000,
             failed_before_return=False,
             failed_because="the host's engine stops every container while it restarts (no live-restore)",
             note="the new containers come back (restart policy) and pass their health, but the proxy is not yet "
                  "back when the route needs it (\"publishes no port\"): switched back, exit 6 (\"failed\" "
                  "instead when the health wait ends first); the previous release serves again once the engine "
                  "is back, no deploy needed")


@pytest.fixture(scope="module")
def heavy_frontend(tmp_path_factory, probe_images, private_registry, host, host_site):
    """The probe with a 60 MB layer of its own, pushed to the private registry only: the
    host has to fetch it, and the fetch takes long enough to be cut."""
    context = tmp_path_factory.mktemp("heavy")
    (context / "Dockerfile").write_text(f"FROM {probe_images.good}\nUSER root\n"
                                        "RUN head -c 60000000 /dev/urandom > /blob\nUSER probe\n")
    tag = f"deployctl-test/probe-heavy:{secrets.token_hex(4)}"
    docker("build", "-q", "-t", tag, str(context))
    repository = f"{private_registry.address}/{host_site.app}/frontend"
    digest = push(tag, repository, "heavy")
    docker("rmi", tag, check=False)
    return f"{host.gateway}:{private_registry.port}/{host_site.app}/frontend@{digest}"


def test_registry_goes_away_mid_pull(host_site, host, private_registry, heavy_frontend):
    """The release's frontend comes from a private registry that stops as its pull is sent.
    Not half-way through a layer: stopping it 0.3 s later was tried, and on a quiet machine
    the 60 MB pull had finished by then, so the cell passed or failed by the clock."""
    errors: list[str] = []

    def run():  # type: ignore[no-untyped-def]
        images = ReleaseImages({**host_site.pinned, "frontend": heavy_frontend}, next_revision())
        result = attempt(lambda: host_site.deploy(FaultConnector(host.connector(), Fault(
            "run", r"^docker pull .*/frontend@", effect="pass", action=private_registry.stop)), images=images))
        errors.append(result.error)
        return result

    def named(tried: str | None) -> None:
        error = errors[0]
        print(f"registry gone: {error}")
        assert error.startswith(f"{host.address}: ") and "pull" in error, error
        assert f"{host.gateway}:{private_registry.port}" in error, error

    run_cell(host_site, "the registry (a private instance) stops as the host starts pulling the release's "
             "frontend (as the `docker pull` is sent)", "pull",
             run, after=named, exit=6, outcome="failed", live="previous",
             note="the message names the host, the `docker pull` and the registry's address with the engine's "
                  "reason (\"connection refused\"); nothing was started")
