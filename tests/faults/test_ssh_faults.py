"""Issue 14, ssh target: the SSH connection to the host drops at each step of a deploy,
under traffic through the proxy (the repo's sshd in front of this machine's engine).

Two kinds of drop: the paramiko transport is closed under the connector ("drop": between
two calls, or "drop_mid": while a command is in flight), and the host becomes unreachable
for the rest of the deploy (a real `iptables` REJECT with TCP reset on the sshd's port,
which also resets the open connection). The connector reconnects once when a connection
dropped between calls; a command cut in flight is never re-run (it may have run)."""

from __future__ import annotations

import subprocess

import pytest

from deployctl.adapters.ssh import SSHConnector
from deployctl.services.deploy import DeployOptions
from tests.integration.deploy_fixtures import free_port, probe_config, remove_app, unique_app
from tests.integration.test_deploy_ssh import push

from .cells import Site, attempt, run_cell
from .fault_connector import Fault, FaultConnector

pytestmark = pytest.mark.integration


class Unreachable:
    """An iptables rule that resets every TCP packet to the sshd's port: the open connection
    dies at its next packet and no new one can be made, until `off()`."""

    def __init__(self, port: int) -> None:
        self.rule = ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "REJECT", "--reject-with", "tcp-reset"]
        self.active = False

    def on(self) -> None:
        subprocess.run(["iptables", "-I", *self.rule], check=True, capture_output=True)
        self.active = True

    def off(self, tried: str | None = None) -> None:
        if self.active:
            subprocess.run(["iptables", "-D", *self.rule], check=True, capture_output=True)
            self.active = False


@pytest.fixture(scope="module")
def ssh_site(tmp_path_factory, ssh_host, registry, probe_images):
    tmp = tmp_path_factory.mktemp("ssh-faults")
    app, port = unique_app(), free_port()
    ssh = (f"[environments.staging.ssh]\nuser = \"{ssh_host.user}\"\nport = {ssh_host.port}\n"
           f"key_file = \"{ssh_host.key_file}\"\nknown_hosts = \"{ssh_host.known_hosts_file}\"\n")
    config = probe_config(tmp, app, port=port, env_name="staging", target="ssh", health_timeout=4, drain=0.2,
                          extra_env=f"hosts = [\"{ssh_host.host}\"]\n{ssh}",
                          registry=f"[registry]\nserver = \"{registry.address}\"\nnamespace = \"{app}\"\n")
    pinned = {}
    for name, image in (("backend", probe_images.good), ("frontend", probe_images.good)):
        repository = f"{registry.address}/{app}/{name}"
        pinned[name] = f"{repository}@{push(image, repository, 'faults')}"
    pinned["proxy"] = probe_images.proxy

    def connector() -> SSHConnector:
        return SSHConnector(ssh_host.host, port=ssh_host.port, user=ssh_host.user, key_file=ssh_host.key_file,
                            known_hosts=ssh_host.known_hosts_file, connect_timeout=3)

    site = Site(app, port, config, probe_images, env="staging", connector=connector, pinned=pinned)
    site.deploy()
    yield site
    remove_app(app)


@pytest.fixture
def unreachable(ssh_host):
    gone = Unreachable(ssh_host.port)
    yield gone
    gone.off()


def faulty(site: Site, *faults: Fault):  # type: ignore[no-untyped-def]
    return lambda: attempt(lambda: site.deploy(FaultConnector(site.connector(), *faults)))


def force_unlock(site: Site):  # type: ignore[no-untyped-def]
    return lambda: site.deploy(options=DeployOptions(force_unlock=True))


HEALTH = r"^(?!127\.0\.0\.1:)"  # a health probe: http_get to a container address


def test_unreachable_before_the_lock(ssh_site, unreachable):
    run_cell(ssh_site, "host unreachable (iptables REJECT) from `docker version`", "before the lock",
             faulty(ssh_site, Fault("run", r"^docker version", effect="drop", action=unreachable.on)),
             exit=4, outcome=None, live="previous", after=unreachable.off,
             note="connect error naming the host and step; nothing changed, no lock taken")


def test_dropped_while_pulling(ssh_site):
    run_cell(ssh_site, "SSH dropped while `docker image inspect`/pull is in flight", "pull",
             faulty(ssh_site, Fault("run", r"^docker (image inspect|pull) .*/frontend@", effect="drop_mid")),
             exit=6, outcome="failed", live="previous",
             note="the command in flight is not re-run; the clean-up and record reconnect once")


def test_dropped_during_health_reconnects(ssh_site):
    run_cell(ssh_site, "SSH dropped before a health probe", "health",
             faulty(ssh_site, Fault("http_get", HEALTH, effect="drop")),
             exit=0, outcome="succeeded", live="new", note="the connector reconnected once")


def test_unreachable_during_health(ssh_site, unreachable):
    run_cell(ssh_site, "host unreachable (iptables REJECT) at a health probe", "health",
             faulty(ssh_site, Fault("http_get", HEALTH, effect="drop", action=unreachable.on)),
             exit=6, outcome=None, live="previous", after=unreachable.off, lock_left=True,
             converge=force_unlock(ssh_site),
             note="nothing switched; the history could not be written nor the lock released; the lock names "
                  "this deploy; the next deploy with --force-unlock removes the leftovers")


def test_dropped_between_switch_and_verify_reconnects(ssh_site):
    run_cell(ssh_site, "SSH dropped before the first verify request", "switch -> verify",
             faulty(ssh_site, Fault("http_get", rf"^127\.0\.0\.1:{ssh_site.port}/", effect="drop")),
             exit=0, outcome="succeeded", live="new", note="the connector reconnected once")


def test_unreachable_between_switch_and_verify(ssh_site, unreachable):
    run_cell(ssh_site, "host unreachable (iptables REJECT) after the switch, before the verify",
             "switch -> verify",
             faulty(ssh_site, Fault("http_get", rf"^127\.0\.0\.1:{ssh_site.port}/", effect="drop",
                                    action=unreachable.on)),
             exit=7, outcome=None, live="new", after=unreachable.off, lock_left=True,
             converge=force_unlock(ssh_site),
             note="really unknown from here: the switch happened, the verify and the switch back could not; "
                  "the new (healthy, unverified) release serves")


def test_dropped_during_drain(ssh_site):
    run_cell(ssh_site, "SSH dropped while `docker stop` of the previous release is in flight", "drain",
             faulty(ssh_site, Fault("run", r"^docker stop ", effect="drop_mid")),
             exit=0, outcome="succeeded", live="new",
             note="live and verified; a warning; the next deploy stops the leftovers")
