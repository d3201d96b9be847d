"""Issue 15's release safety on this machine's engine: the warm window (a rollback to the
previous release is a proxy switch only: the engine's events show no container start; its
time from the rollback's start to traffic fully on that release, with 4 traffic workers),
a warm release past its window stopped by the next command, and `deployctl stats` end to end
after real deploys and a rollback (table, --json, --html)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from deployctl.config import load_config
from deployctl.events import Recorder, StepStarted
from deployctl.plan.edge.proxy_config import live_release, standby_of
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.lifecycle.rollback import rollback
from deployctl.errors import HealthCheckError
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import (DEPLOYCTL, ROOT, docker, free_port, probe_config,
                                               remove_app, unique_app)
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration
SECRETS = {"PROBE_DB_PASSWORD": Secret("probe-password-value")}



def images(probe, revision, frontend=None):
    return ReleaseImages({"backend": probe.good, "frontend": frontend or probe.good, "proxy": probe.proxy}, revision)


def containers_of(app: str, release: str) -> dict[str, str]:
    """name -> state of the release's service containers."""
    out = docker("ps", "-a", "--filter", f"label=io.deployctl.app={app}", "--filter",
                 f"label=io.deployctl.release={release}", "--filter", "label=io.deployctl.role=service",
                 "--format", "{{.Names}} {{.State}}")
    return dict(line.split() for line in out.splitlines())


def starts_since(since: float, containers) -> list[str]:
    """The engine's own record: every `start` event of these containers since `since`."""
    args = ["events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}", "--filter", "event=start",
            "--format", "{{.Actor.Attributes.name}}"]
    for name in containers:
        args += ["--filter", f"container={name}"]
    return docker(*args).split()


def fully_on(samples, release: str, since: float) -> float:
    """The moment from which every request answered from `release`: the start of the first
    request after the last one that did not."""
    after = sorted((s for s in samples if s.started >= since), key=lambda s: s.started)
    last_other = max((i for i, s in enumerate(after) if not (s.ok and set(s.releases) == {release})), default=-1)
    assert last_other + 1 < len(after), "traffic never settled on the release"
    return after[last_other + 1].started


def test_rollback_inside_the_warm_window_is_a_proxy_switch_only(tmp_path, probe_images):
    app, port = unique_app(), free_port()
    loaded = load_config(probe_config(tmp_path, app, port=port, rollout={"warm_window": 600}))
    try:
        v1 = deploy(Env.resolve(loaded, "local"), images(probe_images, "1111111aaaa"), SECRETS, Recorder()).release
        v2 = deploy(Env.resolve(loaded, "local"), images(probe_images, "2222222bbbb"), SECRETS, Recorder()).release
        warm = containers_of(app, v1)
        assert warm and set(warm.values()) == {"running"}, warm  # out of the proxy, still running
        warm_file = json.loads((tmp_path / "state" / app / "local" / "warm.json").read_text())
        assert [w["release"] for w in warm_file] == [v1]

        proxy_dir = tmp_path / "state" / app / "local" / "proxy"
        assert standby_of((proxy_dir / "nginx.conf").read_bytes()).release == v1  # v2's config names v1
        seen = Recorder()
        with Traffic(f"http://127.0.0.1:{port}/version", workers=4, max_seconds=60) as traffic:
            time.sleep(0.5)
            started = time.time()
            [back] = rollback(Env.resolve(loaded, "local"), seen)
            returned = time.time()
            time.sleep(0.5)
        assert back.release == v1
        # The switch was the standby's flag file, not a reload; then v1's own configuration
        # was written, naming v2 (now warm) as its standby.
        [switch] = [e for e in seen.of(StepStarted) if e.step == "switch"]
        assert "standby flag" in switch.detail, switch
        config = (proxy_dir / "nginx.conf").read_bytes()
        assert live_release(config) == v1 and standby_of(config).release == v2
        assert starts_since(started - 0.01, warm) == []  # no container of v1 started again
        report = traffic.report
        assert report.failures == [], report.summary()
        on_v1 = fully_on(report.samples, v1, started)
        print(f"\nwarm rollback: {returned - started:.3f}s for the rollback call; traffic fully on {v1} "
              f"{on_v1 - started:.3f}s after its start (4 workers, {report.summary()})")
        assert on_v1 - started < 3.0  # the target is 0.3 s; a shared CI machine only bounds it loosely
        assert set(containers_of(app, v2).values()) == {"running"}  # v2 is now the warm one

        # And back to v2 by its flag in v1's configuration: the flags of earlier configurations
        # go, but the one whose workers may still read it.
        [forward] = rollback(Env.resolve(loaded, "local"), Recorder(), to=v2)
        assert forward.release == v2
        flags = sorted(p.name for p in proxy_dir.glob("standby-*"))
        assert flags == [standby_of(config).flag], flags
        assert live_release((proxy_dir / "nginx.conf").read_bytes()) == v2
    finally:
        remove_app(app)


def test_a_warm_release_past_its_window_is_stopped_by_the_next_command(tmp_path, probe_images):
    app, port = unique_app(), free_port()
    loaded = load_config(probe_config(tmp_path, app, port=port, health_timeout=2, rollout={"warm_window": 1}))
    try:
        v1 = deploy(Env.resolve(loaded, "local"), images(probe_images, "1111111aaaa"), SECRETS, Recorder()).release
        deploy(Env.resolve(loaded, "local"), images(probe_images, "2222222bbbb"), SECRETS, Recorder())
        assert set(containers_of(app, v1).values()) == {"running"}
        time.sleep(1.2)
        assert set(containers_of(app, v1).values()) == {"running"}  # no host-side timer
        # A deploy that fails before its switch never retires anything: only its start stops v1.
        with pytest.raises(HealthCheckError):
            deploy(Env.resolve(loaded, "local"), images(probe_images, "3333333cccc", frontend=probe_images.broken), SECRETS,
                   Recorder())
        assert set(containers_of(app, v1).values()) == {"exited"}
        assert json.loads((tmp_path / "state" / app / "local" / "warm.json").read_text()) == []
    finally:
        remove_app(app)


def head_revisions(n: int) -> list[str]:
    """Real commits of this repository, so lead time has commit times to read."""
    out = subprocess.run(["git", "-C", str(ROOT), "log", f"-{n}", "--format=%H"], capture_output=True, text=True)
    revs = out.stdout.split()
    if len(revs) < n:
        pytest.skip("needs deployctl's git history (a shallow clone has too few commits)")
    return revs


def run_cli(config, *args, cwd=ROOT):
    return subprocess.run([DEPLOYCTL, "--config", str(config), *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "NO_COLOR": "1"}, timeout=120)


def test_stats_after_two_deploys_and_a_rollback(tmp_path, probe_images):
    app, port = unique_app(), free_port()
    config = probe_config(tmp_path, app, port=port)
    loaded = load_config(config)
    rev1, rev2 = head_revisions(2)
    try:
        v1 = deploy(Env.resolve(loaded, "local"), images(probe_images, rev1), SECRETS, Recorder()).release
        deploy(Env.resolve(loaded, "local"), images(probe_images, rev2), SECRETS, Recorder())
        [back] = rollback(Env.resolve(loaded, "local"), Recorder())
        assert back.release == v1

        html = tmp_path / "stats.html"
        done = run_cli(config, "--json", "stats", "--env", "local", "--since", "1d", "--html", str(html))
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["command"] == "stats" and result["hosts"] == ["localhost"]
        assert (result["deploys"], result["succeeded"], result["rollbacks"]) == (2, 2, 1)
        assert result["change_failures"] == 1 and result["change_failure_rate"] == 0.5  # v2 was rolled back from
        assert len(result["lead_times"]) == 2 and result["unknown_revisions"] == 0
        assert [r["how"] for r in result["restores"]] == ["rollback"]
        assert 0 < result["restores"][0]["seconds"] < 60
        page = html.read_text()
        assert "<svg" in page and "50.0%" in page and "<script" not in page

        table = run_cli(config, "stats", "--env", "local", "--since", "1d", cwd=tmp_path)  # no git here
        assert table.returncode == 0, table.stderr
        assert "change failure rate" in table.stdout and "50.0%" in table.stdout
        assert "2 unknown revisions skipped" in table.stdout
    finally:
        remove_app(app)
