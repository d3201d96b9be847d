"""Issue 14, ssh target: the SSH connection to the host drops at each step of a deploy,
under traffic through the proxy (the repo's sshd in front of this machine's engine).

Two kinds of drop: the paramiko transport is closed under the connector ("drop": between
two calls, or "drop_mid": while a command is in flight), and the host becomes unreachable
for the rest of the deploy (a real `iptables` REJECT with TCP reset on the sshd's port,
which also resets the open connection). The connector reconnects once when a connection
dropped between calls; a command cut in flight is never re-run (it may have run)."""

from __future__ import annotations

import re
import signal
import subprocess

import pytest

from deployctl.adapters.ssh import SSHConnector
from deployctl.services.lifecycle.deploy import DeployOptions
from tests.integration.deploy_fixtures import (free_port, probe_config, remove_app, unique_app,
                                              write_probe_artifacts)
from tests.integration.test_deploy_ssh import push

from .cells import Attempt, Site, attempt, next_revision, run_cell, signalled_at
from .fault_connector import Fault, FaultConnector

pytestmark = pytest.mark.integration


class Unreachable:
    """An iptables rule that resets every TCP packet to the sshd's port: the open connection
    dies at its next packet and no new one can be made, until `off()`. `-w`: wait for the
    xtables lock, which dockerd holds whenever another test (another xdist worker) publishes
    a port, instead of failing at once."""

    def __init__(self, port: int) -> None:
        self.rule = ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "REJECT", "--reject-with", "tcp-reset"]
        self.active = False

    def on(self) -> None:
        subprocess.run(["iptables", "-w", "-I", *self.rule], check=True, capture_output=True)
        self.active = True

    def off(self, tried: str | None = None) -> None:
        if self.active:
            subprocess.run(["iptables", "-w", "-D", *self.rule], check=True, capture_output=True)
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
    def run() -> Attempt:
        # The previous release's own stop: a bare `^docker stop ` also matched the stop of a
        # warm release whose window had passed, before the deploy's networks (a slow CI run
        # reached it: exit 6 at "docker network create", a right answer to another fault).
        previous = ssh_site.state().current()
        return faulty(ssh_site, Fault("run", rf"^docker stop .*-{re.escape(previous)}", effect="drop_mid"))()

    run_cell(ssh_site, "SSH dropped while `docker stop` of the previous release is in flight", "drain", run,
             exit=0, outcome="succeeded", live="new",
             note="live and verified; a warning; the next deploy stops the leftovers")


# -- rollback over SSH: warm (the release left stays running for rollout.warm_window), so the
# rollback is a proxy switch; each cell first deploys a fresh release to roll back from.

def faulty_rollback(site: Site, *faults: Fault):  # type: ignore[no-untyped-def]
    def run() -> Attempt:
        result = attempt(lambda: site.rollback(FaultConnector(site.connector(), *faults)))
        assert all(f.fired for f in faults), f"a fault never fired: {[f for f in faults if not f.fired]}"
        return result
    return run


def test_rollback_flag_write_fails(ssh_site):
    ssh_site.deploy()
    run_cell(ssh_site, "the rollback's standby flag cannot be written (SFTP error)", "switch",
             faulty_rollback(ssh_site, Fault("put_file", r"/proxy/standby-")),
             converge=ssh_site.rollback, action="rollback", exit=6, outcome="reverted", live="previous",
             note="a warm rollback's switch is one file (no reload); it was never there, the flag is "
                  "removed anyway and the proxy answers from the previous release (exit 6)")


# A warm rollback's own configuration: tested beside its verify, then renamed and reloaded in one
# command once verified (services/lifecycle/own_config.py). The cell cuts that command.
OWN_MOVE = r"^sh -c mv -f \S+/nginx\.conf\.next "


def test_rollback_dropped_while_reloading(ssh_site):
    ssh_site.deploy()
    run_cell(ssh_site, "SSH dropped while the rollback's swap (rename, reload; its `nginx -t` ran beside the "
                       "verify) is in flight (after its verify)", "route",
             faulty_rollback(ssh_site, Fault("run", OWN_MOVE, effect="drop_mid")),
             action="rollback", exit=0, outcome="succeeded", live="new",
             note="the target already serves through its standby flag, verified; the rename and reload that make "
                  "its own configuration live are cut (one reconnect), a warning says the next command writes it")


def test_rollback_unreachable_at_verify(ssh_site, unreachable):
    ssh_site.deploy()
    run_cell(ssh_site, "host unreachable (iptables REJECT) after the rollback's switch, before its verify",
             "switch -> verify",
             faulty_rollback(ssh_site, Fault("http_get", rf"^127\.0\.0\.1:{ssh_site.port}/", effect="drop",
                                             action=unreachable.on)),
             exit=7, outcome=None, live="new", after=unreachable.off, lock_left=True,
             converge=lambda: ssh_site.rollback(force_unlock=True), action="rollback",
             note="really unknown: the switch happened, the verify and the switch back could not; the target "
                  "(healthy, unverified) serves; `rollback --force-unlock` converges")


# -- deployctl itself killed while the host pulls: a real `deployctl deploy --env staging`
# subprocess (release by digest from build.json), signalled when its events say "pull" began.

def killed_at_pull(site: Site, registry, sig: signal.Signals):  # type: ignore[no-untyped-def]
    def run() -> Attempt:
        revision = next_revision()
        repositories, digests = {}, {}
        for name, ref in site.pinned.items():
            if "@" in ref:
                repositories[name], digests[name] = ref.split("@", 1)
        repositories["proxy"] = f"{registry.address}/{site.app}/proxy"
        digests["proxy"] = push(site.probe.proxy, repositories["proxy"], revision)
        write_probe_artifacts(site.config, site.app, revision, site.probe.good, site.probe.good, site.probe.proxy,
                              digests=digests, repositories=repositories)
        return signalled_at(site, "deploy", "pull", sig)
    return run


def test_sigterm_while_pulling(ssh_site, registry):
    run_cell(ssh_site, "SIGTERM to `deployctl deploy`", "pull", killed_at_pull(ssh_site, registry, signal.SIGTERM),
             exit=6, outcome=("skipped", "failed"), live="previous",
             note="the pull in flight finishes; nothing was started; recorded, the lock released")


def test_sigkill_while_pulling(ssh_site, registry):
    run_cell(ssh_site, "SIGKILL to `deployctl deploy`", "pull", killed_at_pull(ssh_site, registry, signal.SIGKILL),
             exit=-9, outcome=None, live="previous",
             note="the pull runs before the lock: no lock is left and nothing recorded; the next deploy "
                  "converges as it is")
