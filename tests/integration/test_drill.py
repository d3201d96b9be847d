"""`deployctl drill` on this machine's engine (issue 27 item 3), in one test that walks every
failure kind: the probe app live, light traffic (2 workers of GET /version through deployctl's
proxy), then a drill per kind through the one deploy, with a shadow window configured. Each
must be caught by a net before any user got its answer (health: the health gate; 5xx and
slow: the shadow window; crash: whichever of the two saw it first; 5xx through the command,
`--json`), leave the live release
serving with its drill release's containers gone, and put a `drill` line with the times in the
history. Then a canary drill (the shadow window off, a 20% canary on): the canary catches the
5xx, its share of users got the drill's 500s and nothing else failed. `stats` then counts no
change failure and five drills, with the route their verdicts named, and its HTML plots them.
Prints the times (docs/release-safety.md, "Drills")."""

from __future__ import annotations

import json
import time

import pytest

from deployctl.cli.main import main
from deployctl.config import load_config
from deployctl.events import Recorder
from deployctl.plan.lifecycle.releases import ReleaseRecord
from deployctl.plan.stats import compute, parse_when
from deployctl.plan.stats_html import render_html
from deployctl.services.lifecycle.deploy import DeployOptions, deploy
from deployctl.services.judging.drill import drill
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import free_port, probe_config, remove_app, unique_app
from tests.integration.test_release_safety import SECRETS, containers_of, images
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration
# The shadow window catches what reaches the app's answers. 40 copies before a verdict: the
# crashing wrapper exits 3 s after its start, before 2 workers' copies reach that many on this
# machine, so a crash is judged on copies that failed, never passed before it. The p95 ratio
# stays the default 2x: the slow drill adds 2 s to every answer.
ROLLOUT = {"shadow_window": 30, "shadow_min_requests": 40, "warm_window": 0}
CAUGHT_BY = {"health": {"health"}, "5xx": {"shadow"}, "slow": {"shadow"}, "crash": {"health", "shadow"}}
# The canary drill: no shadow window; a 20% canary judged from 10 of its requests (2 workers
# give it about 10 in 3 s here), 30 s at most.
CANARY = {"shadow_window": 0, "canary": 20, "canary_window": 30, "canary_min_requests": 10, "warm_window": 0}


def history(tmp_path, app) -> list[ReleaseRecord]:
    path = tmp_path / "state" / app / "local" / "releases.jsonl"
    return [ReleaseRecord.from_dict(json.loads(line)) for line in path.read_text().splitlines()]


def run_drill(loaded, kind: str, capsys) -> dict:  # type: ignore[no-untyped-def]
    """5xx through the command (`--json`: its result line), the others through the service."""
    if kind != "5xx":
        return drill(Env.resolve(loaded, "local"), kind, SECRETS, Recorder()).to_dict()
    capsys.readouterr()
    code = main(["--json", "--config", str(loaded.path), "drill", "--env", "local", "--fail", kind])
    out = capsys.readouterr().out
    assert code == 0, out[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def shadow_numbers(tmp_path, app) -> list:  # type: ignore[no-untyped-def]
    """What each drill deploy's shadow window judged (for a failure's message)."""
    return [(r.message, r.outcome, r.extra["shadow"].get("reason")) for r in history(tmp_path, app)
            if r.action == "deploy" and "shadow" in r.extra]


def caught_net(result: dict) -> dict:
    return next(n for n in result["nets"] if n["result"] == "caught")


def test_a_drill_of_each_kind_is_caught_by_a_net_with_no_user_exposed_and_recorded_with_its_times(
        tmp_path, probe_images, capsys, monkeypatch):
    app, port = unique_app(), free_port()
    loaded = load_config(probe_config(tmp_path, app, port=port, rollout=ROLLOUT))
    monkeypatch.setenv("PROBE_DB_PASSWORD", SECRETS["PROBE_DB_PASSWORD"].reveal())  # the command's secret source
    began = time.time()
    try:
        v1 = deploy(Env.resolve(loaded, "local"), images(probe_images, "1111111aaaa"), SECRETS, Recorder(),
                    options=DeployOptions(shadow=0)).release
        results = []
        with Traffic(f"http://127.0.0.1:{port}/version", workers=2, max_seconds=150) as traffic:
            time.sleep(0.5)
            for kind in ("health", "5xx", "slow", "crash"):
                result = run_drill(loaded, kind, capsys)
                results.append(result)
                assert result["outcome"] == "caught", (kind, json.dumps(result), shadow_numbers(tmp_path, app))
                assert caught_net(result)["net"] in CAUGHT_BY[kind], (kind, json.dumps(result))
                assert containers_of(app, result["release"]) == {}, kind
                assert (tmp_path / "state" / app / "local" / "current").read_text().strip() == v1
            time.sleep(0.5)
        report = traffic.report
        assert report.total > 50 and report.failures == [], report.summary()
        assert set(report.releases()) == {v1}, report.summary()  # no user got a drill release's answer

        # A canary drill: the shadow window off, a 20% canary on. The canary is the net that
        # catches the 5xx, after its share of users got the drill's errors (that is what a
        # canary costs: about 20% x 20% of the requests while it runs), all of them 500s from
        # the drill release; from its return on every answer is the live release's again.
        canary = load_config(probe_config(tmp_path, app, port=port, rollout=CANARY, name="canary.toml"))
        with Traffic(f"http://127.0.0.1:{port}/version", workers=2, max_seconds=150) as traffic:
            time.sleep(0.5)
            result = drill(Env.resolve(canary, "local"), "5xx", SECRETS, Recorder()).to_dict()
            returned = time.time()
            time.sleep(0.5)
        results.append(result)
        assert result["outcome"] == "caught" and caught_net(result)["net"] == "canary", json.dumps(result)
        assert "shadow" not in [n["net"] for n in result["nets"]]
        assert containers_of(app, result["release"]) == {}
        assert (tmp_path / "state" / app / "local" / "current").read_text().strip() == v1
        exposed = traffic.report
        assert all(s.status == 500 and set(s.releases) == {result["release"]} for s in exposed.failures), \
            [(s.status, s.releases, s.error) for s in exposed.failures[:5]]
        assert exposed.wrong_release_after(returned, v1) == [], exposed.summary()

        records = history(tmp_path, app)
        lines = [r for r in records if r.action == "drill"]
        assert [(r.release, r.extra["fail"], r.outcome, r.previous) for r in lines] == [
            (x["release"], x["fail"], "caught", v1) for x in results]
        for line, result in zip(lines, results):
            caught = line.extra["nets"][-1]
            assert caught == caught_net(result) and caught["detect_s"] > 0 and caught["restore_s"] >= 0
        stats = compute(records, now=time.time() + 1, window=3600)
        assert (stats.deploys, stats.change_failures, stats.failed_before_switch, len(stats.drills)) == (1, 0, 0, 5)
        page = render_html(stats, env="local")
        assert "drills (5)" in page and page.count("<title>drills: ") == 5
        # The shadow window and the canary named the routes of the drills they caught.
        assert [d.routes for d in stats.drills if d.net in ("shadow", "canary") and d.fail == "5xx"] == [
            ["GET /version"], ["GET /version"]], [(d.fail, d.net, d.routes) for d in stats.drills]
        assert stats.drill_routes[0].route == "GET /version" and stats.drill_routes[0].nets.get("canary") == 1
        for x in results:
            c = caught_net(x)
            print(f"\ndrill --fail {x['fail']}: caught by {c['net']}, detected in {c['detect_s']:.2f}s, restored in "
                  f"{c['restore_s']:.2f}s ({x['seconds']:.1f}s in all; nets "
                  f"{[n['net'] + ' ' + n['result'] for n in x['nets']]})")
        for message, outcome, reason in shadow_numbers(tmp_path, app):
            print(f"{message}: {outcome}: {reason}")
        print(f"users: {report.summary()}; during the canary drill: {exposed.summary()} "
              f"({len(exposed.failures) / max(1, exposed.total):.1%} failed: its share of the drill's 500s); "
              f"the test took {time.time() - began:.1f}s")
    finally:
        remove_app(app)
