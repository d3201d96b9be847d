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
