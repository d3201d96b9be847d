"""Issue 14, process faults on the local target: a real `deployctl deploy` subprocess gets
SIGTERM or SIGKILL when its --json events say a step began, under traffic through the proxy.
SIGTERM: the deploy cleans up, records and releases the lock (exit 6). SIGKILL: nothing can
run; the lock stays, names the killed process, is shown STALE (its pid is gone on this
machine), and the next deploy with --force-unlock converges."""

from __future__ import annotations

import calendar
import json
import os
import signal
import subprocess
import time

import pytest

from deployctl.services.deploy import DeployOptions
from tests.integration.deploy_fixtures import (DEPLOYCTL, free_port, probe_config, remove_app, unique_app,
                                              write_probe_artifacts)

from .cells import SECRETS, Attempt, Site, attempt, next_revision, run_cell

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory, probe_images):
    tmp = tmp_path_factory.mktemp("process-faults")
    app, port = unique_app(), free_port()
    # warm_window = 0: the previous release is stopped (a drain) at every deploy
    config = probe_config(tmp, app, port=port, health_timeout=4, drain=0.5, rollout={"warm_window": 0})
    site = Site(app, port, config, probe_images)
    site.deploy()
    yield site
    remove_app(app)


def killed_at(site: Site, step: str, sig: signal.Signals):  # type: ignore[no-untyped-def]
    """A deploy subprocess, sent `sig` as soon as its events say `step` started."""
    def run() -> Attempt:
        probe = site.probe
        write_probe_artifacts(site.config, site.app, next_revision(), probe.good, probe.good, probe.proxy)
        env = {**os.environ, "PROBE_DB_PASSWORD": SECRETS["PROBE_DB_PASSWORD"].reveal()}
        proc = subprocess.Popen([DEPLOYCTL, "--config", str(site.config), "deploy", "--env", "local", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        sent = False
        for line in proc.stdout:  # type: ignore[union-attr]
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not sent and event.get("event") == "step_started" and event.get("step") == step:
                proc.send_signal(sig)
                sent = True
        rc = proc.wait(timeout=120)
        assert sent, f"the deploy never reached {step}"
        return Attempt(rc, None, proc.stderr.read().strip()[-300:])  # type: ignore[union-attr]
    return run


def force_unlock(site: Site):  # type: ignore[no-untyped-def]
    return lambda: site.deploy(options=DeployOptions(force_unlock=True))


def shown_stale(site: Site):  # type: ignore[no-untyped-def]
    def check(tried: str | None) -> None:
        text = site.state().holder_text() or ""
        assert "[STALE: its process" in text and "is gone" in text, text
    return check


def test_sigterm_during_health(site):
    run_cell(site, "SIGTERM to `deployctl deploy`", "health", killed_at(site, "health", signal.SIGTERM),
             exit=6, outcome="failed", live="previous",
             note="interrupted: the new containers removed, recorded, the lock released")


def test_sigkill_during_health(site):
    run_cell(site, "SIGKILL to `deployctl deploy`", "health", killed_at(site, "health", signal.SIGKILL),
             exit=-9, outcome=None, live="previous", lock_left=True, after=shown_stale(site),
             converge=force_unlock(site),
             note="nothing can run: the lock names the dead pid and is shown STALE; the next deploy "
                  "with --force-unlock stops the orphaned containers")


def test_sigkill_during_drain(site):
    run_cell(site, "SIGKILL to `deployctl deploy`", "drain", killed_at(site, "drain", signal.SIGKILL),
             exit=-9, outcome="succeeded", live="new", lock_left=True, after=shown_stale(site),
             converge=force_unlock(site),
             note="live and recorded before the drain; the previous release is left running until the next deploy")


def test_clock_behind(site):
    """This machine's clock a day behind the host's newest release id."""
    previous = site.state().current()

    def rollback_goes_to_the_replaced_release(tried: str | None) -> None:
        history = site.state().history()
        assert tried is not None and tried > previous and history.previous_good(tried) == previous, tried

    stamp = calendar.timegm(time.strptime(previous[:15], "%Y%m%d-%H%M%S"))
    run_cell(site, "deployctl's clock 1 day behind the previous release's id", "release id",
             lambda: attempt(lambda: site.deploy(now=stamp - 86400)),
             exit=0, outcome="succeeded", live="new", after=rollback_goes_to_the_replaced_release,
             note="the id takes the newest id's second + 1: rollback and prune order stay right")


def test_two_deploys_in_the_same_second(site):
    """Two deploys started together (two machines in CI, say): the lock's atomic mkdir lets
    one through; the other is refused (exit 8) naming the holder, and changes nothing."""
    import threading

    results: list[Attempt] = []
    go = threading.Barrier(2)

    def one() -> None:
        go.wait()
        results.append(attempt(site.deploy))

    def both() -> Attempt:
        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        refused = [r for r in results if r.exit == 8]
        done = [r for r in results if r.exit == 0]
        assert len(refused) == 1 and len(done) == 1, results
        assert "the deploy lock is held by" in refused[0].error and f"pid {os.getpid()}" in refused[0].error, results
        return done[0]

    run_cell(site, "two deploys started in the same second", "lock", both,
             exit=0, outcome="succeeded", live="new",
             note="one refused (exit 8) naming the holder (who, machine, pid, release); it changed nothing")
