"""Issue 15's canary on this machine's engine, under continuous traffic (4 workers) through
deployctl's real nginx proxy: a healthy canary gets about its share and is promoted at the
end of its window; one whose new release fails 20% of its requests is aborted within the
window (exit 6), the users seeing about share x 20% errors, every one of them from the
canary; SIGKILL of deployctl mid-canary leaves 100% on the live release by the watchdog's
deadline, which `status` and the next deploy report; `deploy --promote` from another
process promotes early. Prints the measured numbers (docs/release-safety.md).

The tests run on one app (`site`, one per module): each starts from the release the one
before left live instead of deploying a new app first (its proxy started: the slowest deploy
there is on a loaded machine); run alone, a test deploys that release itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from deployctl.config import load_config
from deployctl.errors import ExitCode
from deployctl.events import Recorder, StepDone, StepFailed, StepProgress, StepStarted
from deployctl.plan.judging.canary import WATCHDOG_MARGIN
from deployctl.services.judging.canary import CanaryAborted
from deployctl.services.lifecycle.deploy import DeployOptions, deploy
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import (DEPLOYCTL, docker, free_port, probe_config, remove_app, unique_app,
                                               write_probe_artifacts)
from tests.integration.test_release_safety import SECRETS, containers_of, images
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration
CANARY = {"canary_window": 8, "canary_max_error_rate": 0.02, "canary_max_p95_ms": 500, "canary_min_requests": 20,
          "warm_window": 0}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(the directory its deploy.toml and state are in, the app, its proxy port)."""
    app = unique_app()
    yield tmp_path_factory.mktemp("canary"), app, free_port()
    remove_app(app)


def live_release(tmp_path, loaded, probe_images, revision: str) -> str:
    """The release the site serves; deployed (as `revision`) when none is."""
    current = tmp_path / "state" / loaded.config.app / "local" / "current"
    if current.exists() and current.read_text().strip():
        return current.read_text().strip()
    return deploy(Env.resolve(loaded, "local"), images(probe_images, revision), SECRETS, Recorder()).release


def history(tmp_path, app):
    path = tmp_path / "state" / app / "local" / "releases.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def step_times(events, step):
    started = next(e.at for e in events.events if isinstance(e, StepStarted) and e.step == step)
    ended = next(e.at for e in events.events if isinstance(e, (StepDone, StepFailed)) and e.step == step)
    return started, ended


def near(share: float, wanted: float, samples: int) -> bool:
    """Within 3 standard deviations of a per-request draw (and never tighter than 6 points):
    on a loaded machine a window holds as few as a hundred requests."""
    return abs(share - wanted) <= max(0.06, 3 * (wanted * (1 - wanted) / max(1, samples)) ** 0.5)


def by_release(samples):
    out: dict[str, list[int]] = {}
    for s in samples:
        for release in set(s.releases) or {"none"}:
            out.setdefault(release, [0, 0])
            out[release][0] += 1
            out[release][1] += 0 if s.ok else 1
    return out


def test_a_healthy_canary_gets_its_share_and_is_promoted_a_failing_one_is_aborted(site, probe_images):
    tmp_path, app, port = site
    healthy = load_config(probe_config(tmp_path, app, port=port, rollout=CANARY))
    v1 = live_release(tmp_path, healthy, probe_images, "1111111aaaa")
    with Traffic(f"http://127.0.0.1:{port}/version", workers=4, max_seconds=120) as traffic:
        time.sleep(0.5)
        events = Recorder()
        began = time.time()
        v2 = deploy(Env.resolve(healthy, "local"), images(probe_images, "2222222bbbb"), SECRETS, events,
                    options=DeployOptions(canary=20)).release
        promoted = time.time()
        time.sleep(0.5)
    report = traffic.report
    assert report.failures == [], report.summary()
    split_done = next(e.at for e in events.of(StepDone) if e.step == "split")
    canary_started, canary_ended = step_times(events, "canary")
    during = [s for s in report.samples if s.started >= split_done and s.finished <= canary_ended]
    counts = by_release(during)
    share = counts.get(v2, [0])[0] / max(1, len(during))
    assert near(share, 0.20, len(during)), counts  # about 20%, per request
    progress = [e.detail for e in events.of(StepProgress) if e.step == "canary"]
    assert progress and "req" in progress[-1] and "err" in progress[-1], progress
    assert canary_ended - canary_started >= CANARY["canary_window"] - 0.5
    assert report.wrong_release_after(promoted, v2) == [], report.summary()
    record = history(tmp_path, app)[-1]
    assert (record["release"], record["outcome"]) == (v2, "succeeded")
    assert record["extra"]["canary"]["decision"] == "promote" and record["extra"]["canary"]["new"]["requests"] > 20
    assert docker("ps", "-q", "--filter", f"name={app}-local-canary-watchdog") == ""
    print(f"\ncanary healthy: {len(during)} requests during the window, {counts.get(v2, [0])[0]} to the canary "
          f"({share:.1%} for 20%), 0 failed; deploy {promoted - began:.1f}s with a {CANARY['canary_window']}s "
          "window")

    # v3 fails 20% of its /version requests (evenly); its health check passes.
    # A longer window: it is cut short anyway, and a loaded machine still gets the
    # canary_min_requests it needs to judge the error rate before the window ends.
    failing = load_config(probe_config(tmp_path, app, port=port, rollout={**CANARY, "canary_window": 20},
                                       name="failing.toml",
                                       frontend_env={"PROBE_FAIL_SHARE": 0.2}))
    with Traffic(f"http://127.0.0.1:{port}/version", workers=4, max_seconds=120) as traffic:
        time.sleep(0.5)
        events = Recorder()
        with pytest.raises(CanaryAborted) as caught:
            deploy(Env.resolve(failing, "local"), images(probe_images, "3333333cccc"), SECRETS, events,
                   options=DeployOptions(canary=20))
        returned = time.time()
        time.sleep(0.5)
    assert caught.value.exit_code == ExitCode.DEPLOY_FAILED
    assert "canary_max_error_rate" in caught.value.message
    report = traffic.report
    split_done = next(e.at for e in events.of(StepDone) if e.step == "split")
    canary_started, canary_ended = step_times(events, "canary")
    assert canary_ended - canary_started < 20  # cut short
    v3 = history(tmp_path, app)[-1]["release"]
    failed = report.failures
    assert failed and all(set(s.releases) == {v3} and s.status == 500 for s in failed), \
        [(s.status, s.releases, s.error) for s in failed[:5]]
    window = [s for s in report.samples if s.started >= split_done]
    rate = len([s for s in window if not s.ok]) / len(window)
    assert rate <= 0.2 * 0.2 * 2, by_release(window)  # about share x 20%, loose for a small sample
    after = [s for s in report.samples if s.started > returned]
    assert after and all(s.ok and set(s.releases) == {v2} for s in after)
    record = history(tmp_path, app)[-1]
    assert record["outcome"] == "aborted" and record["extra"]["canary"]["new"]["errors"] > 0
    assert containers_of(app, v3) == {}
    assert (tmp_path / "state" / app / "local" / "current").read_text().strip() == v2
    print(f"canary failing 20%: aborted {canary_ended - split_done:.2f}s after the split "
          f"(window 20s); {len(failed)} of {len(window)} requests failed from the split on "
          f"({rate:.1%}; share x 20% = 4%), all from {v3}, by release {by_release(window)}")
    assert v1 != v2


def run_cli(config, *args, **kwargs):
    return subprocess.Popen([DEPLOYCTL, "--config", str(config), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PROBE_DB_PASSWORD": "probe-password-value", "NO_COLOR": "1"}, **kwargs)


def wait_for(proc, needle: str, timeout: float = 90) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"never saw {needle!r}:\n" + "".join(lines[-40:]))


def test_sigkill_mid_canary_leaves_the_live_release_at_100_percent_by_the_deadline(site, probe_images):
    tmp_path, app, port = site
    window = 6
    config = probe_config(tmp_path, app, port=port, rollout={**CANARY, "canary_window": window})
    loaded = load_config(config)
    v1 = live_release(tmp_path, loaded, probe_images, "1111111aaaa")
    write_probe_artifacts(config, app, "2222222bbbb", probe_images.good, probe_images.good, probe_images.proxy)
    with Traffic(f"http://127.0.0.1:{port}/version", workers=4, max_seconds=120) as traffic:
        proc = run_cli(config, "--json", "deploy", "--env", "local", "--canary", "30")
        lines = wait_for(proc, '"step": "canary"')
        split = [json.loads(line) for line in lines if '"step": "split"' in line and "step_done" in line][0]
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.time()
        proc.wait()
        deadline = split["at"] + window + WATCHDOG_MARGIN + 1.0  # + the split's own second
        time.sleep(max(0.0, deadline - time.time()) + 1.5)
    report = traffic.report
    assert report.failures == [], report.summary()
    v2 = json.loads((tmp_path / "state" / app / "local" / "canary.json").read_text())["release"]
    assert by_release([s for s in report.samples if s.started < killed]).get(v2), "the canary got no traffic"
    restored = max(s.started for s in report.samples if set(s.releases) != {v1})
    assert restored <= deadline, (restored - deadline)
    late = [s for s in report.samples if s.started > restored]
    assert late and all(set(s.releases) == {v1} for s in late)
    print(f"\nSIGKILL mid-canary: last request to the canary {restored - killed:.1f}s after the kill "
          f"(watchdog deadline {deadline - killed:.1f}s after it); {report.total} requests, 0 failed")

    status = subprocess.run([DEPLOYCTL, "--config", str(config), "status", "--env", "local"],
                            capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert "watchdog put" in status.stdout and v1 in status.stdout, status.stdout
    assert set(containers_of(app, v2).values()) == {"running"}  # left by the killed deploy

    # The next deploy (past the stale lock) reports it, removes the abandoned release, records it.
    events = Recorder()
    deploy(Env.resolve(loaded, "local"), images(probe_images, "3333333cccc"), SECRETS, events,
           options=DeployOptions(force_unlock=True))
    assert any("watchdog put" in e.text for e in events.events if hasattr(e, "text"))
    assert containers_of(app, v2) == {}
    assert [r["outcome"] for r in history(tmp_path, app) if r["release"] == v2] == ["aborted"]
    assert not (tmp_path / "state" / app / "local" / "canary.json").exists()


def test_promote_from_another_process_ends_the_canary_early(site, probe_images):
    tmp_path, app, port = site
    config = probe_config(tmp_path, app, port=port, rollout={**CANARY, "canary_window": 120})
    loaded = load_config(config)
    live_release(tmp_path, loaded, probe_images, "1111111aaaa")
    events = Recorder()
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(
        release=deploy(Env.resolve(loaded, "local"), images(probe_images, "2222222bbbb"), SECRETS, events,
                       options=DeployOptions(canary=10)).release))
    with Traffic(f"http://127.0.0.1:{port}/version", workers=2, max_seconds=120) as traffic:
        worker.start()
        while not any(isinstance(e, StepStarted) and e.step == "canary" for e in events.events):
            assert worker.is_alive(), "the deploy ended before its canary"
            time.sleep(0.1)
        time.sleep(1.0)
        asked = time.time()
        done = subprocess.run([DEPLOYCTL, "--config", str(config), "deploy", "--env", "local", "--promote"],
                              capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        worker.join(60)
        promoted = time.time()
    assert not worker.is_alive() and "release" in result
    assert promoted - asked < 15  # not the 120 s window
    assert traffic.report.failures == [], traffic.report.summary()
    canary = history(tmp_path, app)[-1]["extra"]["canary"]
    assert canary["by_hand"] and canary["decision"] == "promote"
    decided = next(e.at for e in events.events if isinstance(e, StepDone) and e.step == "canary")
    print(f"\n--promote: the watch ended {decided - asked:.2f}s after the command started "
          f"(its own start-up included); deploy returned {promoted - asked:.2f}s after it; 0 failed")
    nothing = subprocess.run([DEPLOYCTL, "--config", str(config), "deploy", "--env", "local", "--abort"],
                             capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}, timeout=60)
    assert nothing.returncode == ExitCode.USAGE and "no canary" in nothing.stdout + nothing.stderr
