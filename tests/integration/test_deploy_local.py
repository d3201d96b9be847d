"""Deploy, rollback and a failing deploy on this machine's engine (the `local` target),
under continuous traffic through nginx: zero failed requests, and after each switch no
answer from the wrong release. Plus the lock, a missing secret and SIGTERM mid-deploy."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request

import pytest

from deployctl.adapters.local import LocalConnector
from deployctl.config import load_config
from deployctl.errors import ExitCode, HealthCheckError, LockHeldError
from deployctl.events import Recorder, StepDone
from deployctl.plan.lifecycle.lock import LockRecord
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.host_state import HostState
from deployctl.services.hosts import layout_for
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.lifecycle.rollback import rollback
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import (DEPLOYCTL, docker, free_port, probe_config,
                                               remove_app, unique_app, write_probe_artifacts)
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration
SECRETS = {"PROBE_DB_PASSWORD": Secret("probe-password-value")}



@pytest.fixture
def site(tmp_path, probe_images):
    app, port = unique_app(), free_port()
    config = probe_config(tmp_path, app, port=port)
    yield app, port, load_config(config), probe_images
    remove_app(app)


def images(probe, revision, frontend=None):
    return ReleaseImages({"backend": probe.good, "frontend": frontend or probe.good, "proxy": probe.proxy}, revision)


def switch_time(recorder: Recorder) -> float:
    return next(e.at for e in recorder.of(StepDone) if e.step == "switch")


def test_deploy_rollback_and_failed_deploy_under_traffic_drop_nothing(site):
    app, port, loaded, probe = site
    v1 = deploy(Env.resolve(loaded, "local"), images(probe, "1111111aaaa"), SECRETS, Recorder()).release
    url = f"http://127.0.0.1:{port}/version"
    with Traffic(url, workers=4, max_seconds=120) as traffic:
        time.sleep(0.5)
        rec2 = Recorder()
        v2 = deploy(Env.resolve(loaded, "local"), images(probe, "2222222bbbb"), SECRETS, rec2).release
        time.sleep(0.5)
        rec_back = Recorder()
        [back] = rollback(Env.resolve(loaded, "local"), rec_back)
        time.sleep(0.5)
        with pytest.raises(HealthCheckError):
            deploy(Env.resolve(loaded, "local"), images(probe, "3333333cccc", frontend=probe.broken), SECRETS, Recorder())
        time.sleep(0.5)
    report = traffic.report
    assert report.total > 100, report.summary()
    assert report.failures == [], report.summary()
    assert report.wrong_release_after(switch_time(rec2), v2) == [] or \
        report.wrong_release_after(switch_time(rec_back), v1) == []
    after_v2 = [s for s in report.samples if switch_time(rec2) <= s.started < rec_back.events[0].at]
    assert after_v2 and all(set(s.releases) == {v2} for s in after_v2 if s.ok)
    assert report.wrong_release_after(switch_time(rec_back), v1) == []  # and the failed v3 never served
    # Rollback speed (target: under 3 s on one host) is measured by bench/deploy_zero_downtime.py,
    # not asserted here: on a shared 2-core machine a wall-clock bound in a test only flakes.
    assert back.release == v1, back
    [quiet] = rollback(Env.resolve(loaded, "local"), Recorder(), to=v2)
    assert quiet.release == v2, quiet
    assert json.loads(urllib.request.urlopen(url).read())["frontend"]["release"] == v2

    state = HostState(LocalConnector(), layout_for(loaded, "local"))
    assert state.current() == v2 and not state.locked()
    outcomes = [(r.action, r.outcome) for r in state.history().records]
    assert outcomes == [("deploy", "succeeded"), ("deploy", "succeeded"), ("rollback", "succeeded"),
                        ("deploy", "failed"), ("rollback", "succeeded")]
    # The failed release's containers are gone; v1's still run, out of the proxy: the release
    # v2 replaced stays warm (rollout.warm_window, 600 s by default) for an instant rollback.
    listed = docker("ps", "-a", "--filter", f"label=io.deployctl.app={app}", "--format", "{{.Names}} {{.State}}")
    assert "3333333" not in listed
    assert f"{app}-local-frontend-{v1} running" in listed and f"{app}-local-frontend-{v2} running" in listed


def test_secrets_are_files_never_env_or_argv_or_history(site):
    app, port, loaded, probe = site
    dirty = ReleaseImages({"backend": probe.good, "frontend": probe.good}, "4444444dddd", dirty=True)
    release = deploy(Env.resolve(loaded, "local"), dirty, SECRETS, Recorder()).release
    # A dirty build's record says so (its revision is not all of what runs).
    from deployctl.services.inspect import releases as list_releases
    [row] = next(iter(list_releases(Env.resolve(loaded, "local")).values()))
    assert (row["release"], row["revision"], row["dirty"]) == (release, "4444444dddd", True)
    container = f"{app}-local-backend-{release}"
    inspected = docker("inspect", container)
    assert "probe-password-value" not in inspected
    env = json.loads(inspected)[0]["Config"]["Env"]
    assert "PROBE_DB_PASSWORD_FILE=/run/secrets/PROBE_DB_PASSWORD" in env
    mounts = json.loads(inspected)[0]["Mounts"]
    assert [m["RW"] for m in mounts if m["Destination"] == "/run/secrets/PROBE_DB_PASSWORD"] == [False]
    # Readable by the image's non-root user, and mode 0600 on the host.
    assert docker("exec", container, "python", "-c", "import urllib.request as u;"
                  "print(u.urlopen('http://127.0.0.1:8000/secrets').read().decode())") == \
        '{"PROBE_DB_PASSWORD": 20}'
    host_file = layout_for(loaded, "local").secret_file(release, "backend", "PROBE_DB_PASSWORD")
    assert oct(os.stat(host_file).st_mode & 0o777) == "0o600"
    assert "probe-password-value" not in open(layout_for(loaded, "local").history).read()


def run_cli(config, *args, env=None):
    return subprocess.run([DEPLOYCTL, "--config", str(config), *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=180)


def test_cli_held_lock_exits_8_and_missing_secret_exits_3_before_touching_the_host(site, tmp_path):
    app, port, loaded, probe = site
    write_probe_artifacts(loaded.path, app, "5555555eeee", probe.good, probe.good, probe.proxy)
    missing = run_cli(loaded.path, "deploy", "--env", "local", env={"PROBE_DB_PASSWORD": ""})
    assert missing.returncode == ExitCode.CONFIG, missing.stderr
    assert "PROBE_DB_PASSWORD" in missing.stderr and not (tmp_path / "state").exists()

    state = HostState(LocalConnector(), layout_for(loaded, "local"))
    # Held past its time limit: shown stale, so --force-unlock may break it (a live one it leaves).
    state.acquire(LockRecord(who="alice@laptop", when="2026-11-27T10:00:00Z", action="deploy", message="hotfix",
                             timeout=60.0))
    held = run_cli(loaded.path, "deploy", "--env", "local", env={"PROBE_DB_PASSWORD": "x" * 12})
    assert held.returncode == ExitCode.LOCK_HELD, held.stderr
    assert "alice@laptop" in held.stderr and "hotfix" in held.stderr
    broke = run_cli(loaded.path, "deploy", "--env", "local", "--force-unlock", env={"PROBE_DB_PASSWORD": "x" * 12})
    assert broke.returncode == 0, broke.stderr
    assert not state.locked()
    status = run_cli(loaded.path, "status", "--env", "local", "--json")
    result = json.loads(status.stdout.strip().splitlines()[-1])
    assert result["hosts"][0]["live"] == state.current() and result["hosts"][0]["lock"] is None


def test_sigterm_mid_deploy_keeps_the_old_release_serving_and_releases_the_lock(site):
    app, port, loaded, probe = site
    v1 = deploy(Env.resolve(loaded, "local"), images(probe, "6666666ffff"), SECRETS, Recorder()).release
    # v2's frontend never gets healthy, so the deploy is surely mid-flight when SIGTERM lands.
    write_probe_artifacts(loaded.path, app, "7777777aaaa", probe.good, probe.broken, probe.proxy)
    proc = subprocess.Popen([DEPLOYCTL, "--config", str(loaded.path),
                             "deploy", "--env", "local"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PROBE_DB_PASSWORD": "probe-password-value"})
    for line in proc.stdout:
        if "health ..." in line:
            break
    proc.terminate()
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == ExitCode.DEPLOY_FAILED, output
    assert "SIGTERM" in output
    state = HostState(LocalConnector(), layout_for(loaded, "local"))
    assert not state.locked() and state.current() == v1
    listed = docker("ps", "-a", "--filter", f"label=io.deployctl.app={app}", "--format", "{{.Names}}")
    assert "7777777" not in listed
    body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/version").read())
    assert body["frontend"]["release"] == v1


def test_rollback_puts_back_the_release_as_it_was_deployed_whatever_deploy_toml_says_now(site):
    """The release record holds the release's spec: renaming a service, moving its port and
    changing its health check in deploy.toml after the deploy changes nothing for a rollback."""
    app, port, loaded, probe = site
    v1 = deploy(Env.resolve(loaded, "local"), images(probe, "8888888aaaa"), SECRETS, Recorder()).release
    deploy(Env.resolve(loaded, "local"), images(probe, "9999999bbbb"), SECRETS, Recorder())
    text = loaded.path.read_text()
    renamed = (text.replace("[services.frontend", "[services.web").replace("{{ backend.url }}", "http://backend:8000")
               .replace("[services.web.healthcheck]", "[services.web.healthcheck]\npath = \"/nope\""))
    assert renamed != text
    loaded.path.write_text(renamed)
    [back] = rollback(Env.resolve(load_config(loaded.path), "local"), Recorder())
    assert back.release == v1 and back.outcome == "succeeded", back
    body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/version").read())
    assert body["frontend"]["release"] == body["backend"]["release"] == v1


@pytest.mark.parametrize("backend, frontend", [
    ('type = "command"\ncommand = ["python", "-c", "import urllib.request as u; '
     'u.urlopen(\'http://127.0.0.1:8000/healthz\', timeout=2)"]', 'type = "docker"'),
    ('type = "tcp"', 'type = "tcp"'),
])
def test_every_kind_of_health_check_gates_the_switch(site, backend, frontend):
    """A command in the container, the image's own HEALTHCHECK, a TCP connect: each lets a
    healthy release through and keeps a broken one (/healthz 503) from the proxy."""
    app, port, loaded, probe = site
    text = loaded.path.read_text()
    text = text.replace("[services.backend.healthcheck]\n", f"[services.backend.healthcheck]\n{backend}\n")
    text = text.replace("[services.frontend.healthcheck]\n", f"[services.frontend.healthcheck]\n{frontend}\n")
    loaded.path.write_text(text)
    loaded = load_config(loaded.path)
    # The image's own check needs an image that has one (the probe's *_checked variants).
    good, broken = (probe.good_checked, probe.broken_checked) if "docker" in frontend else (probe.good, probe.broken)
    v1 = deploy(Env.resolve(loaded, "local"), images(probe, "aaaaaaa1111", frontend=good), SECRETS, Recorder()).release
    if "tcp" not in frontend:  # a TCP check cannot tell a 503 from a 200: it only gates "listening"
        with pytest.raises(HealthCheckError):
            deploy(Env.resolve(loaded, "local"), images(probe, "bbbbbbb2222", frontend=broken), SECRETS, Recorder())
    body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/version").read())
    assert body["frontend"]["release"] == v1
