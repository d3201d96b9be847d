"""Issue 15's error-rate guard on this machine's engine, under continuous traffic through
deployctl's real nginx proxy: a healthy release passes its watch (shown as its own step
with a live count), and a release that starts failing seconds after its switch is switched
back by the guard: recorded `reverted` with the numbers, exit 6 (GuardReverted is a
DeployError), the previous release serving again. Prints the measured revert time."""

from __future__ import annotations

import json
import time

import pytest

from deployctl.config import load_config
from deployctl.events import Message, Recorder, StepDone, StepFailed, StepProgress, StepStarted
from deployctl.errors import ExitCode
from deployctl.services.lifecycle.deploy import DeployOptions, deploy
from deployctl.services.lifecycle.transaction import GuardReverted
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import free_port, probe_config, remove_app, unique_app
from tests.integration.test_release_safety import SECRETS, containers_of, images
from tests.support.net import wait_until
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration
GUARD = {"guard_window": 30, "guard_max_error_rate": 0.05, "guard_min_requests": 20, "warm_window": 0}


def history(tmp_path, app):
    path = tmp_path / "state" / app / "local" / "releases.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_guard_passes_a_healthy_release_and_reverts_one_that_degrades_after_its_switch(tmp_path, probe_images):
    app, port = unique_app(), free_port()
    healthy = load_config(probe_config(tmp_path, app, port=port, rollout={**GUARD, "guard_window": 3}))
    try:
        v1 = deploy(Env.resolve(healthy, "local"), images(probe_images, "1111111aaaa"), SECRETS, Recorder()).release
        with Traffic(f"http://127.0.0.1:{port}/version", workers=4, max_seconds=120) as traffic:
            events = Recorder()
            v2 = deploy(Env.resolve(healthy, "local"), images(probe_images, "2222222bbbb"), SECRETS, events).release
            steps = [(type(e).__name__, e.step) for e in events.events if getattr(e, "step", "") == "guard"]
            assert steps[0] == ("StepStarted", "guard") and steps[-1] == ("StepDone", "guard"), steps
            progress = [e.detail for e in events.of(StepProgress) if e.step == "guard"]
            assert progress and "requests" in progress[-1] and "errors" in progress[-1], progress

            # v3 answers /version with 500 from 10 s after its process started (a few seconds
            # after its switch): its health check and the switch's verify pass first.
            failing = load_config(probe_config(tmp_path, app, port=port, rollout=GUARD, name="failing.toml",
                                               frontend_env={"PROBE_FAIL_AFTER": 10}))
            events = Recorder()
            started = time.time()
            with pytest.raises(GuardReverted) as caught:
                deploy(Env.resolve(failing, "local"), images(probe_images, "3333333cccc"), SECRETS, events)
            returned = time.time()
            time.sleep(1.0)
        assert caught.value.exit_code == ExitCode.DEPLOY_FAILED
        assert "guard_max_error_rate" in caught.value.message

        report = traffic.report
        failed = [s for s in report.failures if s.started >= started]
        assert failed, report.summary()
        first, last = min(s.started for s in failed), max(s.started for s in failed)
        # Every failure came from v3, and once reverted every answer is v2's again.
        assert all(s.status == 500 for s in failed), [s.error for s in failed[:5]]
        after = [s for s in report.samples if s.started > last]
        assert after and all(s.ok and set(s.releases) == {v2} for s in after)
        revert = [e for e in events.of(StepDone) if e.step == "revert"]
        assert revert and v2 in revert[0].detail
        assert [e.step for e in events.of(StepFailed)][:1] == ["guard"]
        print(f"\nguard: v3 failing from {first - started:.2f}s into the deploy; last failed request "
              f"{last - first:.2f}s after the first ({len(failed)} failed of {report.total}, 4 workers); "
              f"deploy returned {returned - last:.2f}s after it")
        assert last - first < 5.0  # the bound: guard tick (1 s) + a proxy switch; loose for CI

        records = history(tmp_path, app)
        v3 = records[-1]["release"]
        assert [r["outcome"] for r in records if r["release"] == v3] == ["succeeded", "reverted"]
        numbers = records[-1]["extra"]["guard"]
        assert numbers["whole"]["errors"] > 0 and numbers["switch_back_seconds"] < 5
        assert (tmp_path / "state" / app / "local" / "current").read_text().strip() == v2
        assert containers_of(app, v3) == {}  # its containers went
        assert set(containers_of(app, v2).values()) == {"running"}
        assert v1 != v2
    finally:
        remove_app(app)


def test_no_guard_skips_the_watch_for_one_deploy(tmp_path, probe_images):
    app, port = unique_app(), free_port()
    loaded = load_config(probe_config(tmp_path, app, port=port, rollout=GUARD))
    try:
        deploy(Env.resolve(loaded, "local"), images(probe_images, "1111111aaaa"), SECRETS, Recorder())
        events = Recorder()
        started = time.monotonic()
        deploy(Env.resolve(loaded, "local"), images(probe_images, "2222222bbbb"), SECRETS, events,
               options=DeployOptions(no_guard=True))
        assert not [e for e in events.of(StepStarted) if e.step == "guard"]
        assert time.monotonic() - started < 25  # not the 30 s watch
    finally:
        remove_app(app)


def test_the_older_releases_are_retired_during_the_watch_and_the_previous_only_after_it(tmp_path, probe_images):
    """The guard's revert needs only the previous release: everything older is stopped and
    pruned without the deploy waiting for it (by the host, in the background, once the
    deploy recorded which releases stay warm: issue 26), so a guarded deploy never pays
    for it. With no warm window the previous release runs until the watch passed."""
    app, port = unique_app(), free_port()
    watch = 4
    warm = load_config(probe_config(tmp_path, app, port=port, drain=0.5,
                                    rollout={**GUARD, "guard_window": watch, "warm_window": 600}))
    cold = load_config(probe_config(tmp_path, app, port=port, drain=0.5, name="cold.toml",
                                    rollout={**GUARD, "guard_window": watch, "warm_window": 0}))
    try:
        v1 = deploy(Env.resolve(warm, "local"), images(probe_images, "1111111aaaa"), SECRETS, Recorder()).release
        v2 = deploy(Env.resolve(warm, "local"), images(probe_images, "2222222bbbb"), SECRETS, Recorder()).release
        with Traffic(f"http://127.0.0.1:{port}/version", workers=4, max_seconds=120) as traffic:
            events = Recorder()
            v3 = deploy(Env.resolve(warm, "local"), images(probe_images, "3333333cccc"), SECRETS, events).release
            drains = [(e.at, e.detail) for e in events.of(StepStarted) if e.step == "drain"]
            # v1, warm since v2's switch and out of the proxy since: the host stops it, no
            # step of the deploy waits for it; v2, the previous, stays warm.
            assert not any(v1 in d for _, d in drains), drains
            wait_until(lambda: set(containers_of(app, v1).values()) == {"exited"}, 30, f"{v1} stopped by the host")
            assert set(containers_of(app, v2).values()) == {"running"}

            events = Recorder()
            v4 = deploy(Env.resolve(cold, "local"), images(probe_images, "4444444dddd"), SECRETS, events).release
            guard_done = next(e.at for e in events.of(StepDone) if e.step == "guard")
            drains = [(e.at, e.detail) for e in events.of(StepStarted) if e.step == "drain"]
            # v2 (warm, older) never waits for the watch; v3, the previous, is stopped only after
            # it passed: drained then, or (its drain long over after the watch) by the host.
            stops = drains + [(e.at, e.text) for e in events.of(Message) if "in the background" in e.text]
            assert not any(v2 in d and at >= guard_done for at, d in drains), drains
            assert any(v3 in d and at >= guard_done for at, d in stops), stops
            assert not any(v3 in d and at < guard_done for at, d in stops), stops
            for older in (v2, v3):
                wait_until(lambda: set(containers_of(app, older).values()) == {"exited"}, 30, f"{older} stopped")
            assert set(containers_of(app, v4).values()) == {"running"}
        assert traffic.report.failures == [], traffic.report.summary()
        print(f"\nguarded deploys, retirement beside the watch: {traffic.report.total} requests, 0 failed")
    finally:
        remove_app(app)
