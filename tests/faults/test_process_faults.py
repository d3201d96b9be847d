"""Issue 14, process faults on the local target: a real `deployctl deploy` subprocess gets
SIGTERM or SIGKILL when its --json events say a step began, under traffic through the proxy.
SIGTERM: the deploy cleans up, records and releases the lock (exit 6). SIGKILL: nothing can
run; the lock stays, names the killed process, is shown STALE (its pid is gone on this
machine), and the next deploy with --force-unlock converges."""

from __future__ import annotations

import calendar
import os
import signal
import time

import pytest

from deployctl.adapters.local import LocalConnector
from deployctl.plan.edge.proxy_config import CONFIG_FILE, STAGED_FILE, live_release
from deployctl.services.lifecycle.deploy import DeployOptions
from deployctl.services.hosts import layout_for

from .cells import Attempt, Site, attempt, killed_at, killed_before, local_site, run_cell, shown_stale

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory, probe_images):
    # warm_window = 0: the previous release is stopped (a drain) at every deploy
    yield from local_site(tmp_path_factory, probe_images, "process-faults", drain=0.5, rollout={"warm_window": 0})


RELOAD = r"docker exec \S+ nginx -t -q -c \S+\.next"  # the file is staged; nginx not yet told


def force_unlock(site: Site):  # type: ignore[no-untyped-def]
    return lambda: site.deploy(options=DeployOptions(force_unlock=True))


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


def test_sigterm_during_migrate(site):
    run_cell(site, "SIGTERM to `deployctl deploy`", "migrate", killed_at(site, "migrate", signal.SIGTERM),
             exit=6, outcome="failed", live="previous",
             note="the migration in flight finishes (it is not cut half-way); the switch is never started, "
                  "the new containers removed, the lock released; \"failed\" (it was \"skipped\", which hid "
                  "that the database changed), with \"the migrations ran here, then the deploy stopped\"")


def test_sigkill_during_migrate(site):
    run_cell(site, "SIGKILL to `deployctl deploy`", "migrate", killed_at(site, "migrate", signal.SIGKILL),
             exit=-9, outcome=None, live="previous", lock_left=True, after=shown_stale(site),
             converge=force_unlock(site),
             note="the lock names the dead pid (STALE); the next deploy with --force-unlock removes the leftovers")


def test_sigterm_between_config_write_and_reload(site):
    run_cell(site, "SIGTERM to `deployctl deploy` (fault point in the process)",
             "switch: config staged, before the swap", killed_before(site, "run", RELOAD, signal.SIGTERM),
             exit=6, outcome="reverted", live="previous",
             note="the reload it was about to make is made; then it switches back at once (no verify)")


def test_sigkill_between_config_write_and_reload(site):
    stale = shown_stale(site)

    def the_live_file_still_names_the_previous_release(tried: str | None) -> None:
        """The new configuration was only staged: nothing that loads nginx.conf later (a
        restarted nginx, the anchor's own nginx after a reboot) can take the unverified
        release. Before the swap (2026-12-02) the file named it until the next deploy."""
        stale(tried)
        layout = layout_for(site.loaded, site.env)
        on_disk = live_release(LocalConnector().read_file(f"{layout.proxy_dir}/{CONFIG_FILE}"))
        assert on_disk == site.state().current() != tried, (on_disk, tried)
        staged = live_release(LocalConnector().read_file(f"{layout.proxy_dir}/{STAGED_FILE}"))
        assert staged == tried, staged

    run_cell(site, "SIGKILL to `deployctl deploy` (fault point in the process)",
             "switch: config staged, before the swap", killed_before(site, "run", RELOAD, signal.SIGKILL),
             exit=-9, outcome=None, live="previous", lock_left=True,
             after=the_live_file_still_names_the_previous_release, converge=force_unlock(site),
             note="nginx runs the previous config and nginx.conf still names it: the new one was only staged "
                  "(nginx.conf.next), renamed into place only by the command that reloads")


def test_sigterm_between_switch_and_verify(site):
    run_cell(site, "SIGTERM to `deployctl deploy` (fault point in the process)", "switch -> verify",
             killed_before(site, "http_get", rf"^127\.0\.0\.1:{site.port}/", signal.SIGTERM),
             exit=6, outcome="reverted", live="previous",
             note="the verify it was in finishes, then it switches back")


def test_sigkill_between_switch_and_verify(site):
    run_cell(site, "SIGKILL to `deployctl deploy` (fault point in the process)", "switch -> verify",
             killed_before(site, "http_get", rf"^127\.0\.0\.1:{site.port}/", signal.SIGKILL),
             exit=-9, outcome=None, live="new", lock_left=True, after=shown_stale(site),
             converge=force_unlock(site),
             note="the new (healthy, unverified) release serves; `current` and the history still name the "
                  "previous one; the lock (STALE) names the new one: `status` shows both")


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
