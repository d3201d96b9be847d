"""DORA figures from a recorded history with known answers (tests/unit/data/stats_history.jsonl).

Window: the 30 days before 2026-11-30T00:00Z. In it: 4 deploys reached their switch
(3 succeeded, 1 reverted), 1 failed before its switch, 1 skipped, 2 rollbacks; one record
before and one after the window.
"""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest

from deployctl.plan.lifecycle.releases import parse_history
from deployctl.plan.stats import compute, merge, parse_since, parse_when
from deployctl.plan.stats_html import render_html

DATA = Path(__file__).parent / "data" / "stats_history.jsonl"
NOW = calendar.timegm(time.strptime("2026-11-30T00:00:00", "%Y-%m-%dT%H:%M:%S"))
COMMITS = {  # revision -> commit time; dead000 is unknown to git
    "c111111": parse_when("2026-11-02T09:00:00Z"),
    "c333333": parse_when("2026-11-03T08:00:00Z"),
    "c444444": parse_when("2026-11-10T11:00:00Z"),
}


@pytest.fixture
def stats():
    records = parse_history(DATA.read_text())
    return compute(records, now=NOW, window=parse_since("30d"), commit_times=COMMITS)


def test_counts(stats) -> None:
    assert (stats.deploys, stats.succeeded, stats.reverted, stats.failed_before_switch, stats.rollbacks) == (4, 3, 1, 1, 2)


def test_deployment_frequency(stats) -> None:
    assert stats.per_day == pytest.approx(0.1)
    assert stats.per_week == pytest.approx(0.7)


def test_lead_time_skips_unknown_revisions(stats) -> None:
    assert stats.lead_times == [3600.0, 10800.0]
    assert stats.lead_time_median == 7200.0
    assert stats.unknown_revisions == 1


def test_change_failure_rate(stats) -> None:
    # reverted c444444, rolled back from c333333 and dead000: 3 of 4 switched deploys
    assert stats.rolled_back_from == 2
    assert stats.change_failures == 3
    assert stats.change_failure_rate == 0.75


def test_time_to_restore(stats) -> None:
    got = sorted((r.how, r.left, r.seconds) for r in stats.restores)
    assert got == [
        ("reverted", "20261110-115930-c444444", 30.0),
        ("rollback", "20261103-105900-c333333", 60.0),  # from the rollback's recorded start
        ("rollback", "20261110-125900-dead000", 72000.0),  # no start recorded: from the bad release going live
    ]
    assert stats.restore_median == 60.0


def test_days(stats) -> None:
    assert stats.days == {
        "2026-11-02": {"succeeded": 1},
        "2026-11-03": {"failed": 1, "succeeded": 1, "rollback": 1},
        "2026-11-10": {"reverted": 1, "succeeded": 1},
        "2026-11-11": {"rollback": 1},
    }


def test_empty_window() -> None:
    s = compute([], now=NOW, window=86400)
    assert (s.deploys, s.change_failure_rate, s.lead_time_median, s.restore_median) == (0, None, None, None)


def test_merge_counts_a_release_on_many_hosts_once() -> None:
    records = parse_history(DATA.read_text())
    merged = merge([records, records[:5]])
    assert len(merged) == len(records)
    s = compute(merged, now=NOW, window=30 * 86400, commit_times=COMMITS)
    assert s.deploys == 4


@pytest.mark.parametrize("text,seconds", [("30d", 2592000), ("2w", 1209600), ("12h", 43200), ("90", 90)])
def test_parse_since(text, seconds) -> None:
    assert parse_since(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "0d", "-1d"])
def test_parse_since_refuses(text) -> None:
    with pytest.raises(ValueError):
        parse_since(text)


def test_html_is_self_contained(stats) -> None:
    page = render_html(stats, env="production")
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") >= 2 and "<rect" in page
    assert "75.0%" in page and "0.10/day" in page
    for external in ("http://", "https://", "src=", "<link", "<script"):
        assert external not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_timing_is_kept_to_the_millisecond() -> None:
    from deployctl.plan.lifecycle.releases import ReleaseRecord
    from deployctl.plan.stats import timing

    start = parse_when("2026-11-20T10:00:00Z")
    extra = timing(start + 0.25, start + 1.5)
    assert extra == {"started": "2026-11-20T10:00:00.250Z", "live": "2026-11-20T10:00:01.500Z"}
    rollback = ReleaseRecord(release="r1", revision=None, images={}, action="rollback", outcome="succeeded",
                             who="x", when="2026-11-20T10:00:01Z", previous="r2", extra=extra)
    s = compute([rollback], now=start + 60, window=3600)
    assert [r.seconds for r in s.restores] == [1.25]


# -- the worst routes of stopped releases (issue 27) ------------------------------------------

def _verdict(decision: str, *routes: tuple[str, str]) -> dict:
    """A shadow window's or canary's verdict as a record keeps it (CanaryVerdict.to_dict)."""
    return {"decision": decision, "reason": "r", "by_hand": False, "new": {}, "live": {}, "hosts": ["h"],
            "routes": [{"route": route, "class": cls, "shift": 0.5, "new": {"requests": 20},
                        "live": {"requests": 20}} for route, cls in routes]}


def _rec(release, action, outcome, when, *, error="", previous=None, extra=None):  # type: ignore[no-untyped-def]
    from deployctl.plan.lifecycle.releases import ReleaseRecord

    return ReleaseRecord(release=release, revision=None, images={}, action=action, outcome=outcome, who="t",
                         when=when, previous=previous, error=error, extra=extra or {})


LIVE1, SHADOWED, CANARIED, PASSED, DRILLED = ("20261201-100000-aaaaaaa", "20261201-110000-bbbbbbb",
                                              "20261201-120000-ccccccc", "20261201-130000-ddddddd",
                                              "20261201-140000-eeeeeee")


def _routes_history() -> list:
    started = {"started": "2026-12-01T11:00:00.000Z", "live": "2026-12-01T11:00:09.000Z"}
    return [
        _rec(LIVE1, "deploy", "succeeded", "2026-12-01T10:00:00Z"),
        # Stopped by the shadow window: GET /items/:id answered 404, /version a few 500s.
        _rec(SHADOWED, "deploy", "aborted", "2026-12-01T11:00:09Z", previous=LIVE1, error="shadow: route GET ...",
             extra={"shadow": _verdict("abort", ("GET /items/:id", "4xx"), ("GET /version", "5xx")), **started}),
        # Aborted by the canary (it served its share): /version worst.
        _rec(CANARIED, "deploy", "aborted", "2026-12-01T12:00:30Z", previous=LIVE1, error="canary: error rate ...",
             extra={"canary": _verdict("abort", ("GET /version", "5xx")),
                    "started": "2026-12-01T12:00:00.000Z", "live": "2026-12-01T12:00:30.000Z"}),
        # Passed: its verdict's routes were no cause of anything.
        _rec(PASSED, "deploy", "succeeded", "2026-12-01T13:00:00Z", previous=LIVE1,
             extra={"shadow": _verdict("promote", ("GET /health", "5xx"))}),
        # A drill caught by the shadow window: its routes are the drills', not the releases'.
        _rec(DRILLED, "deploy", "aborted", "2026-12-01T14:00:05Z", previous=PASSED, error="shadow: error rate ...",
             extra={"shadow": _verdict("abort", ("GET /version", "5xx"), ("HEAD /", "5xx"))}),
        _rec(DRILLED, "drill", "caught", "2026-12-01T14:00:06Z", previous=PASSED,
             extra={"fail": "5xx", "nets": [{"net": "shadow", "result": "caught", "seconds": 3.0, "detect_s": 3.0,
                                             "restore_s": 0.5}]}),
    ]


def test_stats_count_the_routes_that_were_worst_when_a_release_was_stopped() -> None:
    from deployctl.plan.stats import RouteStops

    s = compute(_routes_history(), now=parse_when("2026-12-02T00:00:00Z"), window=86400 * 2)
    assert s.stop_routes == [
        RouteStops("GET /version", stops=2, worst=1, classes={"5xx": 2}, nets={"canary": 1, "shadow": 1}),
        RouteStops("GET /items/:id", stops=1, worst=1, classes={"4xx": 1}, nets={"shadow": 1}),
    ]
    assert s.drill_routes == [RouteStops("GET /version", 1, 1, {"5xx": 1}, {"shadow": 1}),
                              RouteStops("HEAD /", 1, 0, {"5xx": 1}, {"shadow": 1})]
    assert [d.routes for d in s.drills] == [["GET /version", "HEAD /"]]
    data = s.to_dict()  # --json: keys added, the older ones as they were
    assert data["stop_routes"][0] == {"route": "GET /version", "stops": 2, "worst": 1, "classes": {"5xx": 2},
                                      "nets": {"canary": 1, "shadow": 1}}
    assert data["drills"][0]["routes"] == ["GET /version", "HEAD /"] and data["drills"][0]["net"] == "shadow"


def test_a_release_the_shadow_window_stopped_never_served_so_it_is_no_change_failure_and_no_restore() -> None:
    s = compute(_routes_history(), now=parse_when("2026-12-02T00:00:00Z"), window=86400 * 2)
    # LIVE1 and PASSED succeeded; the canary's abort served its share (a change failure);
    # the shadow window's stop failed before its switch, as a failed health check does.
    assert (s.deploys, s.succeeded, s.reverted, s.failed_before_switch, s.change_failures) == (3, 2, 1, 1, 1)
    assert [(r.left, r.seconds) for r in s.restores] == [(CANARIED, 30.0)]
    assert s.days == {"2026-12-01": {"succeeded": 2, "failed": 1, "aborted": 1}}
    # Every outcome a day counts has its colour in the page's bars (the abort was left out once).
    page = render_html(s, env="production")
    assert "2026-12-01: 1 aborted" in page and "2026-12-01: 2 succeeded" in page


def test_worst_routes_are_capped_and_ranked_by_stops_then_by_times_the_worst_then_by_name() -> None:
    from deployctl.plan.stats import ROUTES_SHOWN, route_stops

    records = [_rec(f"r{i}", "deploy", "aborted", "2026-12-01T11:00:00Z", error="shadow: x",
                    extra={"shadow": _verdict("abort", (f"GET /p{i}", "5xx"), ("GET /common", "4xx"))})
               for i in range(ROUTES_SHOWN + 2)]
    ranked = route_stops(records)
    assert len(ranked) == ROUTES_SHOWN
    assert (ranked[0].route, ranked[0].stops, ranked[0].worst) == ("GET /common", ROUTES_SHOWN + 2, 0)
    assert [r.route for r in ranked[1:3]] == ["GET /p0", "GET /p1"]  # one stop each, the worst: by name
    # A release's second record with the verdict (a host's history not merged) counts once.
    assert route_stops(records[:1] * 2)[0].stops == 1
    # A record with no verdict, or a verdict with no routes, names none.
    assert route_stops([_rec("x", "deploy", "aborted", "2026-12-01T11:00:00Z", extra={"shadow": "junk"}),
                        _rec("y", "deploy", "failed", "2026-12-01T11:00:00Z")]) == []


def test_the_table_and_the_page_show_the_worst_routes(capsys, monkeypatch, tmp_path) -> None:
    from deployctl.cli.main import main
    from deployctl.services import stats as service
    from tests.unit.test_lifecycle_rules import CONFIG

    s = compute(_routes_history(), now=parse_when("2026-12-02T00:00:00Z"), window=86400 * 2)
    monkeypatch.setattr(service, "stats", lambda *a, **k: service.StatsResult(s, ["local"]))
    config = tmp_path / "deploy.toml"
    config.write_text(CONFIG)
    page = tmp_path / "stats.html"
    assert main(["-c", str(config), "stats", "--env", "local", "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "worst routes of the stopped releases" in out and "worst routes of the drills" in out, out
    import re

    assert re.search(r"GET /version\s+2\s+1\s+5xx\s+canary 1, shadow 1", out), out
    assert re.search(r"GET /items/:id\s+1\s+1\s+4xx\s+shadow", out), out
    assert f"drill {DRILLED} --fail 5xx: caught by shadow" in out and "worst routes: GET /version, HEAD /" in out
    html = page.read_text()
    assert "<h2>Worst routes of the stopped releases</h2>" in html
    assert "<td>GET /items/:id</td><td>1</td><td>1</td><td>4xx</td><td>shadow</td>" in html
    assert main(["-c", str(config), "--json", "stats", "--env", "local"]) == 0
    import json

    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["route"] for r in result["stop_routes"]] == ["GET /version", "GET /items/:id"]
    assert result["change_failures"] == 1 and result["drills"][0]["routes"] == ["GET /version", "HEAD /"]
