"""Issue 14, rollback on the local target: `deployctl rollback` (services/lifecycle/rollback.py, the
same HostSwitch as deploy) fails once at each step, under traffic through the proxy.

Cold rollbacks (warm_window = 0): the target's containers are stopped and kept, so the
rollback starts them, waits for their health, switches and verifies. The faults are made
on the host by hand where that is real: the target's stopped frontend gets a server that
answers /healthz 503 (or /version 500) through `docker cp`, or is taken off the app network
so nginx cannot resolve its upstream name. Each cell first deploys a fresh release (the
target is then the one before it); the next run is the same rollback without the fault.

A rollback that failed and left the release live before it serving exits 6, as a failed
deploy does; 7 only where what serves is unknown (README's exit codes); the row's "live
after" says what serves."""

from __future__ import annotations

import os
import signal

import pytest

from deployctl.adapters.local import LocalConnector
from deployctl.plan.lifecycle.names import Names
from deployctl.services.lifecycle.deploy_result import DeployOptions
from deployctl.services.hosts import names_for
from tests.integration.deploy_fixtures import PROBE, docker

from .cells import RELOADS, Attempt, Site, attempt, local_site, run_cell, shown_stale, signalled_at
from .fault_connector import Fault, FaultConnector

pytestmark = pytest.mark.integration

SERVER = (PROBE / "server.py").read_text()
# The probe's own server with one thing broken, copied into a stopped container by hand.
UNHEALTHY = SERVER.replace('os.environ.get("PROBE_HEALTHY", "1")', '"0"')
FAILING = SERVER.replace('FAIL_AFTER = float(os.environ.get("PROBE_FAIL_AFTER", "0") or 0)', "FAIL_AFTER = 1e-9")
assert UNHEALTHY != SERVER and FAILING != SERVER, "the probe's server.py changed: update these edits"


@pytest.fixture(scope="module")
def site(tmp_path_factory, probe_images):
    # warm_window = 0: the release left is stopped at once, so every rollback here is cold
    yield from local_site(tmp_path_factory, probe_images, "rollback-faults", drain=0.2, rollout={"warm_window": 0})


def names(site: Site) -> Names:
    return names_for(site.loaded, site.env)


def target_of(site: Site) -> str:
    """A fresh release goes live first; the rollback's target is the release before it."""
    site.deploy()
    state = site.state()
    target = state.history().previous_good(state.current())
    assert target, "no earlier good release to roll back to"
    status = docker("inspect", "--format", "{{.State.Status}}", names(site).container("frontend", target))
    assert status == "exited", f"a cold rollback needs the target stopped, it is {status}"
    return target


def faulty(site: Site, *faults: Fault):  # type: ignore[no-untyped-def]
    return lambda: attempt(lambda: site.rollback(FaultConnector(LocalConnector(), *faults)))


def copy_server(container: str, text: str, tmp) -> None:  # type: ignore[no-untyped-def]
    path = tmp / "server.py"
    path.write_text(text)
    os.chmod(path, 0o644)
    docker("cp", str(path), f"{container}:/probe/server.py")


def broken_target(site: Site, text: str, tmp):  # type: ignore[no-untyped-def]
    """(before, after): the target's stopped frontend runs `text` as its server from its next
    start; `after` puts the real one back (the failed rollback stopped it again)."""
    frontend = names(site).container("frontend", site.state().history().previous_good(site.state().current()))

    def after(tried: str | None) -> None:
        assert docker("inspect", "--format", "{{.State.Status}}", frontend) == "exited", \
            "the failed rollback left the target's frontend running"
        copy_server(frontend, SERVER, tmp)

    return (lambda: copy_server(frontend, text, tmp)), after


def test_health_fails_on_the_target(site, tmp_path):
    target_of(site)
    before, after = broken_target(site, UNHEALTHY, tmp_path)
    run_cell(site, "the target's stopped frontend answers /healthz 503 once started (`docker cp` of its server)",
             "health", faulty(site), before=before, after=after, converge=site.rollback, action="rollback",
             exit=6, outcome="failed", live="previous",
             note="nothing was switched: the release live before it serves (exit 6); the target's containers "
                  "stopped again")


def test_nginx_refuses_the_target_upstream(site):
    """Real nginx: the target's frontend is off the app network (where nginx resolves the
    upstream's container name), so `nginx -t` fails with "host not found in upstream"."""
    target = target_of(site)
    frontend, network = names(site).container("frontend", target), names(site).network
    messages: list[str] = []

    def run() -> Attempt:
        result = attempt(site.rollback)
        messages.append(result.error)
        return result

    def after(tried: str | None) -> None:
        error = messages[0]
        assert "nginx -t refused" in error and "host not found in upstream" in error, error
        assert error.startswith(f"rollback to {tried} failed: {LocalConnector().host}: "), error  # the host
        docker("network", "connect", network, frontend)

    run_cell(site, "nginx -t refuses the target's upstream (its frontend taken off the app network: "
             "\"host not found in upstream\")", "switch", run,
             before=lambda: docker("network", "disconnect", network, frontend),
             after=after, converge=site.rollback, action="rollback",
             exit=6, outcome="reverted", live="previous",
             note="real nginx: the refused config is put back, nothing reloaded; the message quotes nginx")


def test_verify_fails_on_the_target(site, tmp_path):
    target_of(site)
    before, after = broken_target(site, FAILING, tmp_path)
    run_cell(site, "the target answers /version 500 through the proxy (`docker cp` of its server)",
             "verify", faulty(site), before=before, after=after, converge=site.rollback, action="rollback",
             exit=6, outcome="reverted", live="previous", max_failed=1_000_000,  # counted; bounded in time
             failed_because="the release switched to answers 500 itself until the verify switches back",
             note="the target's own 500s end the verify after 3 in a row (not its timeout): users get "
                  "them from the switch until the switch back")


def test_switch_reload_fails(site):
    target_of(site)
    run_cell(site, "the swap (`nginx -t` of the staged file, rename, `nginx -s reload`) exits 1", "switch",
             faulty(site, Fault("run", RELOADS)),
             converge=site.rollback, action="rollback",
             exit=6, outcome="reverted", live="previous", note="simulated at the connector")


def killed_rollback(site: Site, step: str, sig: signal.Signals):  # type: ignore[no-untyped-def]
    """A `deployctl rollback` subprocess, sent `sig` as soon as its events say `step` started."""
    return lambda: signalled_at(site, "rollback", step, sig)


def test_sigterm_during_health(site):
    target_of(site)
    run_cell(site, "SIGTERM to `deployctl rollback`", "health", killed_rollback(site, "health", signal.SIGTERM),
             converge=site.rollback, action="rollback", exit=6, outcome="failed", live="previous",
             note="interrupted: the target's containers stopped again, recorded, the lock released")


def test_sigkill_during_health(site):
    target_of(site)
    run_cell(site, "SIGKILL to `deployctl rollback`", "health", killed_rollback(site, "health", signal.SIGKILL),
             exit=-9, outcome=None, live="previous", lock_left=True, after=shown_stale(site),
             converge=lambda: site.rollback(force_unlock=True), action="rollback",
             note="nothing can run: the lock names the dead pid and is shown STALE; `rollback --force-unlock` "
                  "converges (the target's started containers are reused)")


def test_sigkill_after_the_switch(site):
    target_of(site)
    run_cell(site, "SIGKILL to `deployctl rollback`", "drain", killed_rollback(site, "drain", signal.SIGKILL),
             exit=-9, outcome="succeeded", live="new", lock_left=True, after=shown_stale(site),
             converge=lambda: site.deploy(options=DeployOptions(force_unlock=True)), action="rollback",
             note="live and recorded before the drain; the next deploy with --force-unlock stops the leftovers")
