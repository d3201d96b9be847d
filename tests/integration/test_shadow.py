"""Issue 27's shadow window on this machine's engine, under continuous traffic (4 workers of
GET /version, plus a client POSTing) through deployctl's real nginx proxy, in one test that
walks the phases: a release failing 20% of its requests is stopped by the shadow window
before its switch (exit 6) with 0 failed user requests; a healthy release passes it and
switches with 0 failed; the copied POSTs: none ever reaches the new release by default (its
own log says so), while the live release got every one; a release that answers 404 on one
route only (the error rate over all requests let go) is stopped by the per-route rule, which
names that route with both sides' counts in the CLI's `--json` error object, and the query
string's token is in neither the output, the history nor the proxy's access log; a release 3x
slower at p95 than the live one (the probe's PROBE_DELAY_MS: the live release first made to
take DELAY_MS, with no window, since a ratio over a few ms is noise) is stopped by the p95 rule
alone, at the default 2x, with 0 failed. Prints the measured numbers (docs/release-safety.md)."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import threading
import time

import pytest

from deployctl.config import load_config
from deployctl.errors import ExitCode
from deployctl.events import Recorder, StepDone, StepFailed
from deployctl.services.lifecycle.deploy import DeployOptions, deploy
from deployctl.services.judging.shadow import ShadowStopped
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import (DEPLOYCTL, free_port, probe_config, remove_app, unique_app,
                                               write_probe_artifacts)
from tests.integration.test_release_safety import SECRETS, containers_of, images
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration
# The p95 ratio is pinned in tests/unit/test_shadow.py; here it is loose: on this shared
# 2-core machine (load average 55 seen) a fresh release's first copies took 3.6 s at p95
# against a warm live release's 0.9 s, and a healthy release was stopped for it. A long window
# with few copies needed: at load average 213 the 4 workers got 9 copies in 20 s (the window
# ends as soon as 20 were answered, so a quiet machine does not wait it out).
SHADOW = {"shadow_window": 30, "shadow_min_requests": 20, "shadow_max_p95_ratio": 10, "warm_window": 0}
# Phase 3: only the per-route rule may stop it (the error rate over all requests is let go),
# and the window waits for enough copies of the one route (a quarter of the traffic).
ONE_ROUTE = {"shadow_max_error_rate": 0.5, "shadow_min_requests": 200, "shadow_route_min_requests": 8}
TOKEN = "s3cr3t-in-the-query"
# Phase 4: the live release answers in DELAY_MS, the new one in 3x that. The rule is the
# default 2x: a sleep costs no CPU, so both sides carry the same load noise on top, which
# pulls the measured ratio below 3 (live p95 = DELAY_MS + n: stopped while n < DELAY_MS + n'/2).
# The traffic asks /items/<id>, which calls no backend (one hop less to add noise; the live p95
# was still 150-200 ms over its sleep at load average 4-19, and the ratio 2.4-2.55x).
# A copy may take 3 x DELAY_MS and more: its timeout is raised, or slow copies would be upstream
# failures and the error rate, not the p95, would stop it.
DELAY_MS = 400
SLOWER = {"shadow_max_p95_ratio": 2.0, "shadow_timeout": 5}


def history(tmp_path, app):
    path = tmp_path / "state" / app / "local" / "releases.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def window_of(events):
    """When the mirror went live and when the verdict came (this machine's clock)."""
    mirrored = next(e.at for e in events.events if isinstance(e, StepDone) and e.step == "mirror")
    judged = next(e.at for e in events.events if isinstance(e, (StepDone, StepFailed)) and e.step == "shadow")
    return mirrored, judged


class Poster:
    """POSTs /version (with a body) through the proxy, each with its own marker in the query,
    and keeps when each was sent and what answered."""

    def __init__(self, port: int) -> None:
        self.port, self.sent, self._stop = port, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Poster":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            marker, started = f"shadowpost{n}x", time.time()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("POST", f"/version?{marker}", body=b"a=1", headers={"Connection": "close"})
                status = conn.getresponse().status
                conn.close()
            except OSError:
                status = 0
            self.sent.append((marker, started, time.time(), status))
            time.sleep(0.05)


def app_log(container: str) -> str:
    """The requests the probe answered, to stderr (every one with PROBE_LOG_REQUESTS=1, else its errors)."""
    done = subprocess.run(["docker", "logs", container], capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def frontend(app: str, release: str) -> str:
    return next(name for name in containers_of(app, release) if "frontend" in name)


def proxy_5xx_lines(app: str) -> list[str]:
    """The proxy's access-log lines of 5xx answers (the copies' among them), for a failure's message."""
    names = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{app}-local-proxy"], capture_output=True,
                           text=True).stdout.split()
    lines = []
    for name in names:
        done = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
        lines += [line for line in (done.stdout + done.stderr).splitlines() if re.search(r'" 5\d\d ', line)]
    return lines[-20:]


def test_the_shadow_window_stops_a_failing_release_and_passes_a_healthy_one_with_no_user_exposed(tmp_path,
                                                                                                  probe_images):
    app, port = unique_app(), free_port()
    # the healthy releases log every answer: phase 2 reads which requests reached v1 and v3
    healthy = load_config(probe_config(tmp_path, app, port=port, rollout=SHADOW,
                                       frontend_env={"PROBE_LOG_REQUESTS": 1}))
    failing = load_config(probe_config(tmp_path, app, port=port, rollout=SHADOW, name="failing.toml",
                                       frontend_env={"PROBE_FAIL_SHARE": 0.2}))
    try:
        v1 = deploy(Env.resolve(healthy, "local"), images(probe_images, "1111111aaaa"), SECRETS, Recorder()).release

        # Phase 1: v2 fails 20% of its /version requests (evenly); its health check passes.
        events = Recorder()
        with Traffic(f"http://127.0.0.1:{port}/version", workers=4, max_seconds=120) as traffic, Poster(port):
            time.sleep(0.5)
            began = time.time()
            with pytest.raises(ShadowStopped) as caught:
                deploy(Env.resolve(failing, "local"), images(probe_images, "2222222bbbb"), SECRETS, events)
            returned = time.time()
            time.sleep(0.5)
        assert caught.value.exit_code == ExitCode.DEPLOY_FAILED
        assert "shadow_max_error_rate" in caught.value.message, caught.value.message
        report = traffic.report
        assert report.total > 50 and report.failures == [], report.summary()
        assert set(report.releases()) == {v1}, report.summary()  # no user ever got v2's answer
        mirrored, judged = window_of(events)
        record = history(tmp_path, app)[-1]
        v2 = record["release"]
        assert record["outcome"] == "aborted" and record["error"].startswith("shadow:")
        numbers = record["extra"]["shadow"]
        assert numbers["decision"] == "abort" and numbers["new"]["errors"] > 0 and numbers["live"]["errors"] == 0
        assert judged - mirrored < SHADOW["shadow_window"]  # cut short by the error rate
        assert containers_of(app, v2) == {}
        assert (tmp_path / "state" / app / "local" / "current").read_text().strip() == v1
        config = (tmp_path / "state" / app / "local" / "proxy" / "nginx.conf").read_text()
        assert "mirror" not in config and v2 not in config
        print(f"\nshadow, v2 failing 20%: stopped {judged - mirrored:.2f}s after the mirror went live "
              f"(window {SHADOW['shadow_window']}s); copies {numbers['new']['requests']} with "
              f"{numbers['new']['errors']} errors, p95 {numbers['new']['p95_ms']} ms vs live "
              f"{numbers['live']['requests']}/{numbers['live']['errors']}, p95 {numbers['live']['p95_ms']} ms; "
              f"users: {report.total} requests, 0 failed, all from {v1}; deploy returned "
              f"{returned - began:.1f}s after it started")

        # Phase 2: a healthy v3 passes the window and switches; the POSTs sent while it was
        # judged reached v1 only.
        events = Recorder()
        with Traffic(f"http://127.0.0.1:{port}/version", workers=4, max_seconds=120) as traffic, \
                Poster(port) as poster:
            time.sleep(0.5)
            try:
                result = deploy(Env.resolve(healthy, "local"), images(probe_images, "3333333cccc"), SECRETS, events)
            except ShadowStopped as stopped:  # say which answers stopped a healthy release
                pytest.fail(f"{stopped.message}\nthe copies' 5xx lines in the proxy's log:\n"
                            + "\n".join(proxy_5xx_lines(app)))
            v3 = result.release
            switched = time.time()
            time.sleep(0.5)
        report = traffic.report
        assert report.failures == [], report.summary()
        assert report.wrong_release_after(switched, v3) == [], report.summary()
        mirrored, judged = window_of(events)
        record = history(tmp_path, app)[-1]
        assert (record["release"], record["outcome"]) == (v3, "succeeded")
        assert record["extra"]["shadow"]["decision"] == "promote"
        assert result.verdicts["shadow"]["decision"] == "promote"  # what `deploy --json` prints
        assert record["extra"]["shadow"]["new"]["requests"] >= SHADOW["shadow_min_requests"]
        during = [marker for marker, sent, answered, status in poster.sent if sent > mirrored and answered < judged]
        assert during, "no POST was sent while the shadow window ran"
        # The probe serves no POST: v1's own 501 answered each (nginx's 502 would mean a failure).
        assert all(status == 501 for _, sent, _, status in poster.sent if sent < judged)
        new_log, live_log = app_log(frontend(app, v3)), app_log(frontend(app, v1))
        assert "GET /version" in new_log  # the copies reached v3
        leaked = [marker for marker in during if marker in new_log]
        assert leaked == [], leaked
        assert all(marker in live_log for marker in during)
        print(f"shadow, v3 healthy: passed {judged - mirrored:.2f}s after the mirror went live "
              f"({record['extra']['shadow']['reason']}); users: {report.total} requests, 0 failed; "
              f"{len(during)} POSTs during the window: all answered by {v1}, none in {v3}'s log")

        # Phase 3: v4 answers 404 on one route (/items/...) and as v3 everywhere else; the rule
        # over all requests is loosened so that only the per-route rule can stop it. Through
        # the CLI with --json: the error object names the route.
        phase3 = time.time()
        one_route = probe_config(tmp_path, app, port=port, name="one-route.toml", rollout={**SHADOW, **ONE_ROUTE},
                                 frontend_env={"PROBE_NOT_FOUND": "/items/"})
        write_probe_artifacts(one_route, app, "4444444dddd", probe_images.good, probe_images.good, probe_images.proxy)
        with Traffic(f"http://127.0.0.1:{port}/version", workers=3, max_seconds=120) as traffic, \
                Traffic(f"http://127.0.0.1:{port}/items/42?token={TOKEN}", workers=1, max_seconds=120) as items:
            time.sleep(0.5)
            done = subprocess.run([DEPLOYCTL, "--config", str(one_route), "deploy", "--env", "local", "--json"],
                                  capture_output=True, text=True, timeout=180,
                                  env={**os.environ, "PROBE_DB_PASSWORD": "probe-password-value"})
            time.sleep(0.3)
        assert done.returncode == ExitCode.DEPLOY_FAILED, done.stdout + done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        error = lines[-1]
        message = error["problems"][0]
        assert "route GET /items/:id: 4xx" in message and "shadow_route_max_shift" in message, message
        # Not always 100%: at load average 35-47 some of v4's copies were cut off at shadow_timeout
        # (504s, counted as 5xx) while the live answers were not (docs/release-safety.md).
        assert re.search(r"worst routes: GET /items/:id: 4xx \d+% vs live 0%", message), message
        for report in (traffic.report, items.report):
            assert report.failures == [] and set(report.releases()) == {v3}, report.summary()
        mirrored = next(e["at"] for e in lines if e["event"] == "step_done" and e.get("step") == "mirror")
        judged = next(e["at"] for e in lines if e["event"] == "step_failed" and e.get("step") == "shadow")
        record = history(tmp_path, app)[-1]
        assert record["outcome"] == "aborted" and "route GET /items/:id" in record["error"]
        worst = record["extra"]["shadow"]["routes"][0]
        assert worst["route"] == "GET /items/:id" and worst["class"] == "4xx"
        assert worst["new"]["requests"] >= ONE_ROUTE["shadow_route_min_requests"] and worst["new"]["2xx"] == 0
        assert worst["new"]["4xx"] + worst["new"]["5xx"] == worst["new"]["requests"] and worst["new"]["4xx"] > 0
        assert worst["live"]["2xx"] == worst["live"]["requests"] >= ONE_ROUTE["shadow_route_min_requests"]
        assert error["details"]["verdicts"]["shadow"]["routes"][0] == worst
        state = (tmp_path / "state" / app / "local" / "releases.jsonl").read_text()
        assert TOKEN not in state and TOKEN not in done.stdout + done.stderr
        # Nor in the proxy's access log, which Docker keeps: the path is logged, its query is not.
        proxies = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{app}-local-proxy"],
                                 capture_output=True, text=True, check=True).stdout.split()
        logged = "".join(subprocess.run(["docker", "logs", name], capture_output=True, text=True).stdout
                         for name in proxies)
        assert '"GET /items/42 HTTP/1.1"' in logged and TOKEN not in logged, logged[-2000:]
        assert (tmp_path / "state" / app / "local" / "current").read_text().strip() == v3
        print(f"shadow, v4 answering 404 on /items/: stopped {judged - mirrored:.2f}s after the mirror went live by "
              f"the per-route rule: {worst}; users: {traffic.report.total + items.report.total} requests, 0 failed; "
              f"phase 3 took {time.time() - phase3:.1f}s")

        # Phase 4: v5 takes DELAY_MS on every answer (deployed with no window: against v3's
        # few ms, any ratio is noise); v6 takes 3x that and is stopped by the p95 rule alone.
        phase4 = time.time()
        delayed = load_config(probe_config(tmp_path, app, port=port, rollout=SHADOW, name="delayed.toml",
                                           frontend_env={"PROBE_DELAY_MS": DELAY_MS}))
        v5 = deploy(Env.resolve(delayed, "local"), images(probe_images, "5555555eeee"), SECRETS, Recorder(),
                    options=DeployOptions(shadow=0)).release
        slower = load_config(probe_config(tmp_path, app, port=port, rollout={**SHADOW, **SLOWER}, name="slower.toml",
                                          frontend_env={"PROBE_DELAY_MS": 3 * DELAY_MS}))
        events = Recorder()
        with Traffic(f"http://127.0.0.1:{port}/items/7", workers=4, max_seconds=120) as traffic:
            time.sleep(0.5)
            with pytest.raises(ShadowStopped) as caught:
                deploy(Env.resolve(slower, "local"), images(probe_images, "6666666ffff"), SECRETS, events)
            time.sleep(0.3)
        assert caught.value.exit_code == ExitCode.DEPLOY_FAILED
        assert "shadow_max_p95_ratio 2x" in caught.value.message, caught.value.message
        report = traffic.report
        assert report.total > 20 and report.failures == [], report.summary()
        assert set(report.releases()) == {v5}, report.summary()
        mirrored, judged = window_of(events)
        record = history(tmp_path, app)[-1]
        v6, numbers = record["release"], record["extra"]["shadow"]
        assert record["outcome"] == "aborted" and "shadow_max_p95_ratio" in record["error"]
        new, live = numbers["new"], numbers["live"]
        # The p95 rule, not the error rate: every copy answered, and 20 of them at least.
        assert new["errors"] == 0 and live["errors"] == 0 and new["requests"] >= SHADOW["shadow_min_requests"], numbers
        assert new["p95_ms"] >= 3 * DELAY_MS and new["p95_ms"] > 2 * live["p95_ms"] >= 2 * DELAY_MS, numbers
        assert containers_of(app, v6) == {}
        assert (tmp_path / "state" / app / "local" / "current").read_text().strip() == v5
        print(f"shadow, v6 3x slower ({3 * DELAY_MS} ms vs {DELAY_MS} ms an answer): stopped "
              f"{judged - mirrored:.2f}s after the mirror went live: copies p95 {new['p95_ms']} ms vs live "
              f"{live['p95_ms']} ms ({new['p95_ms'] / live['p95_ms']:.2f}x) over {new['requests']} copies; users: "
              f"{report.total} requests, 0 failed, all from {v5}; phase 4 took {time.time() - phase4:.1f}s")
    finally:
        remove_app(app)
