"""The guard's and the canary's pure parts: the proxy's access log as per-release numbers
(plan/judging/access_log.py), the decisions (plan/judging/verdict.py, plan/judging/canary.py), the docker argv that reads the log,
the settings, and how history and stats count a guard revert or a canary abort."""

from __future__ import annotations

import calendar
import time

import pytest
from pydantic import ValidationError

from deployctl.config.models import Rollout
from deployctl.plan.lifecycle import docker_commands as dc
from deployctl.plan.judging.access_log import Window, p95, parse_line, parse_lines, window
from deployctl.plan.lifecycle.releases import ABORTED, LIVE, REVERTED, History, ReleaseRecord
from deployctl.plan.stats import compute
from deployctl.plan.judging.canary import ABORT, PROMOTE, WAIT, canary_verdict
from deployctl.plan.judging.verdict import guard_verdict

NEW, OLD = "20261201-175000-bbbbbbb", "20261201-170000-aaaaaaa"


def line(ts: str, status: int, release: str, urt: str = "0.004", upstream: str = "172.18.0.3:8000") -> str:
    return (f'{ts} 172.17.0.1 [2026-12-01T17:50:00+00:00] "GET /version HTTP/1.1" {status} 97 '
            f"rt=0.005 upstream={upstream} ustatus={status} urt={urt} release={release}")


def test_parse_line_reads_time_status_latency_release() -> None:
    entry = parse_line(line("2026-12-01T17:50:01.250000000Z", 200, NEW, "0.012"))
    assert entry is not None
    assert (entry.status, entry.release, entry.seconds) == (200, NEW, 0.012)
    assert entry.at == pytest.approx(calendar.timegm((2026, 12, 1, 17, 50, 1, 0, 0, 0)) + 0.25)
    assert not entry.error


def test_a_clients_own_address_parses_as_the_proxys_did() -> None:
    """Behind a shared proxy over HTTPS, $remote_addr is the client's (its PROXY protocol,
    docs/proxy.md): IPv4 or IPv6, the line parses the same."""
    for client in ("203.0.113.9", "2001:db8::7", "127.0.0.1"):
        entry = parse_line(line("2026-12-01T17:50:01Z", 200, NEW).replace(" 172.17.0.1 ", f" {client} "))
        assert entry is not None and (entry.status, entry.release, entry.path) == (200, NEW, "/version")


def test_upstream_failures_count_as_errors_of_their_release() -> None:
    # nginx's own 502 when the upstream refused: urt "-" falls back to nginx's rt; still stamped.
    entry = parse_line(line("2026-12-01T17:50:01Z", 502, NEW, "0.000", "172.18.0.3:8000") .replace("urt=0.000", "urt=-"))
    assert entry is not None and entry.error and entry.seconds == 0.005
    several = parse_line(line("2026-12-01T17:50:01Z", 200, NEW, "0.001, 0.002"))
    assert several is not None and several.seconds == pytest.approx(0.003)


def test_lines_that_are_not_a_releases_request_are_skipped() -> None:
    assert parse_line(line("2026-12-01T17:50:01Z", 503, "")) is None  # the proxy answered itself
    assert parse_line("2026-12-01T17:50:01Z 2026/12/01 17:50:01 [notice] 1#1: signal process started") is None
    assert parse_line("") is None


def test_window_counts_one_release_since_an_instant_with_p95() -> None:
    lines = [line(f"2026-12-01T17:50:{s:02d}Z", 500 if s % 5 == 0 else 200, NEW, f"0.{s:03d}") for s in range(1, 21)]
    lines += [line("2026-12-01T17:50:10Z", 200, OLD)]
    entries = parse_lines(lines)
    whole = window(entries, NEW)
    assert (whole.requests, whole.errors) == (20, 4) and whole.error_rate == 0.2
    assert whole.p95_ms == pytest.approx(19.0)  # nearest rank: the 19th of 20
    later = window(entries, NEW, since=entries[0].at + 10)
    assert (later.requests, later.errors) == (10, 2)
    assert window(entries, "other").p95_ms is None and p95([]) is None


def entries_at(start: float, statuses: list[int], release: str = NEW, every: float = 0.1):
    from deployctl.plan.judging.access_log import LogEntry

    return [LogEntry(start + i * every, s, 0.004, release) for i, s in enumerate(statuses)]


def test_guard_reverts_above_the_rate_once_enough_requests_were_seen() -> None:
    bad = entries_at(1000.0, [200] * 15 + [500] * 5)  # 25% of 20
    verdict = guard_verdict(bad, NEW, since=1000.0, now=1002.0, max_error_rate=0.05, min_requests=20)
    assert verdict.revert and "25.0%" in verdict.reason and "5 of 20" in verdict.reason
    assert verdict.numbers()["whole"]["errors"] == 5
    few = guard_verdict(bad[-5:], NEW, since=1000.0, now=1002.0, max_error_rate=0.05, min_requests=20)
    assert not few.revert  # 5 of 5 is no evidence yet


def test_guard_sees_a_release_that_degrades_late_in_its_window() -> None:
    # 25 s of good traffic (250 requests), then 3 s of failures: 30 of 280 (10.7%) overall,
    # but the last 10 s alone are 30 of 100.
    entries = entries_at(1000.0, [200] * 250) + entries_at(1025.0, [500] * 30)
    verdict = guard_verdict(entries, NEW, since=1000.0, now=1028.0, max_error_rate=0.2, min_requests=20)
    assert verdict.revert and "last 10s" in verdict.reason
    healthy = guard_verdict(entries_at(1000.0, [200] * 300), NEW, since=1000.0, now=1030.0,
                            max_error_rate=0.05, min_requests=20)
    assert not healthy.revert and healthy.whole.requests == 300


def test_canary_aborts_early_promotes_at_the_end_and_names_its_numbers() -> None:
    live = Window(OLD, 900, 0, 5.0)
    failing = Window(NEW, 40, 8, 6.0)
    early = canary_verdict(failing, live, max_error_rate=0.02, max_p95_ms=500, min_requests=20, final=False)
    assert early.decision == ABORT and "20.0%" in early.reason and "8 of 40" in early.reason
    assert early.to_dict()["new"]["errors"] == 8
    healthy = Window(NEW, 100, 0, 7.0)
    assert canary_verdict(healthy, live, max_error_rate=0.02, max_p95_ms=500, min_requests=20,
                          final=False).decision == WAIT
    assert canary_verdict(healthy, live, max_error_rate=0.02, max_p95_ms=500, min_requests=20,
                          final=True).decision == PROMOTE
    slow = canary_verdict(Window(NEW, 100, 0, 900.0), live, max_error_rate=0.02, max_p95_ms=500, min_requests=20,
                          final=True)
    assert slow.decision == ABORT and "canary_max_p95_ms" in slow.reason
    quiet = canary_verdict(Window(NEW, 3, 0, 1.0), live, max_error_rate=0.02, max_p95_ms=500, min_requests=20,
                           final=True)
    assert quiet.decision == ABORT and "canary_min_requests" in quiet.reason
    # Within the margin of a live release that errs too: promoted.
    both = canary_verdict(Window(NEW, 100, 3, 5.0), Window(OLD, 900, 18, 5.0), max_error_rate=0.02,
                          max_p95_ms=500, min_requests=20, final=True)
    assert both.decision == PROMOTE


def test_logs_since_argv() -> None:
    assert dc.logs_since("app-local-proxy-nginx-abc", 1764611400.1234) == [
        "docker", "logs", "--timestamps", "--since", "1764611400.123", "app-local-proxy-nginx-abc"]


def test_settings_defaults_and_bounds() -> None:
    rollout = Rollout()
    assert (rollout.guard_window, rollout.guard_max_error_rate, rollout.guard_min_requests) == (30, 0.05, 20)
    assert (rollout.canary, rollout.canary_window) == (0, 60)
    for bad in ({"guard_window": -1}, {"guard_max_error_rate": 1.5}, {"canary": 100}, {"canary_window": 0}):
        with pytest.raises(ValidationError):
            Rollout(**bad)


def record(release: str, outcome: str, when: str, previous: str | None = None, extra=None) -> ReleaseRecord:
    return ReleaseRecord(release=release, revision=None, images={}, action="deploy", outcome=outcome, who="t",
                         when=when, previous=previous, extra=extra or {})


def test_a_guard_reverted_or_aborted_release_is_no_rollback_target_and_counts_as_a_change_failure() -> None:
    records = [record(OLD, LIVE, "2026-12-01T17:00:00Z"),
               record(NEW, LIVE, "2026-12-01T17:50:00Z", OLD),
               record(NEW, REVERTED, "2026-12-01T17:50:20Z", OLD,
                      {"started": "2026-12-01T17:49:58.000Z", "live": "2026-12-01T17:50:20.000Z"}),
               record("20261201-180000-ccccccc", ABORTED, "2026-12-01T18:00:30Z", OLD)]
    history = History(tuple(records))
    assert history.good() == [OLD]
    assert history.previous_good(OLD) is None
    stats = compute(records, now=calendar.timegm((2026, 12, 1, 19, 0, 0, 0, 0, 0)), window=86400)
    assert (stats.deploys, stats.succeeded, stats.reverted) == (3, 1, 2)
    assert stats.change_failures == 2 and stats.change_failure_rate == pytest.approx(0.6667, abs=1e-4)


def test_dry_run_shows_the_guard_from_the_plan_the_deploy_runs() -> None:
    from deployctl.config.load import parse_config
    from deployctl.plan.lifecycle.containers import release_containers
    from deployctl.plan.lifecycle.names import Names
    from deployctl.plan.lifecycle.switch_plan import deploy_plan, guard_spec
    from tests.unit.test_deploy_plan import CONFIG_TEXT, R1, _spec

    config = parse_config(CONFIG_TEXT)
    env = config.environments["local"]
    assert guard_spec(Rollout(guard_window=0)) is None and guard_spec(Rollout(), no_guard=True) is None
    guard = guard_spec(env.rollout)
    assert guard is not None and guard.window == 30
    containers = release_containers(config, env, "local", R1, "abc", {"backend": "sha256:b", "frontend": "sha256:f"})
    plan = deploy_plan(_spec(config), containers, Names("usersapp", "local"), "/s/proxy", proxy_port=8080, drain=3,
                       guard=guard)
    from tests.unit.test_deploy_plan import host_deploy, switch_rows

    job = host_deploy(config)  # guard_window: 30 s by default
    assert job.plan.guard == guard
    steps = switch_rows(job)
    order = [s.step for s in steps]
    assert order.index("verify") < order.index("record") < order.index("guard") < order.index("drain")
    watch = next(s for s in steps if s.step == "guard")
    assert list(watch.argv) == dc.logs_since(plan.proxy.nginx_name, "<switch time>")
    assert "5.0%" in watch.detail and "20 requests" in watch.detail
    unguarded = deploy_plan(_spec(config), containers, Names("usersapp", "local"), "/s/proxy", proxy_port=8080,
                            drain=3)
    assert unguarded.guard is None and "guard" not in [s.step for s in switch_rows(host_deploy(config, no_guard=True))]


class _LogConn:
    """`docker logs --since` as the engine answers it: every line at or after the instant
    (to the millisecond the argv carries), the edge included."""

    host = "h"

    def __init__(self, lines: list[str], skew: float = 0.0) -> None:
        self.lines, self.reads, self.skew = lines, [], skew  # skew: the host's clock minus ours

    def run(self, argv, timeout=None):  # type: ignore[no-untyped-def]
        if argv == ["date", "+%s.%N"]:
            return type("R", (), {"ok": True, "stdout": f"{time.time() + self.skew:.9f}\n", "stderr": ""})()
        since = float(argv[argv.index("--since") + 1])
        self.reads.append(since)
        out = [ln for ln in self.lines if parse_line(ln) is None or parse_line(ln).at >= since]
        return type("R", (), {"ok": True, "stdout": "\n".join(out), "stderr": ""})()


def test_proxy_log_reads_only_what_is_new_and_never_counts_a_line_twice() -> None:
    from deployctl.services.judging.watch import ProxyLog

    stamps = ["2026-12-01T17:50:01.100000001Z", "2026-12-01T17:50:01.100000002Z", "2026-12-01T17:50:01.100400000Z"]
    conn = _LogConn([line(ts, 200, NEW) for ts in stamps])
    proxy = type("P", (), {"conn": conn, "running_nginx": lambda self: "nginx-1"})()
    log = ProxyLog(proxy)  # type: ignore[arg-type]
    since = calendar.timegm((2026, 12, 1, 17, 50, 0, 0, 0, 0))
    assert len(log.entries(since)) == 3
    conn.lines.append(line("2026-12-01T17:50:01.100400001Z", 500, NEW))  # the same millisecond as the last
    conn.lines.append(line("2026-12-01T17:50:02.000000000Z", 200, NEW))
    second = log.entries(since)
    assert [e.status for e in second] == [200, 200, 200, 500, 200]
    assert round(conn.reads[1], 3) == round(since + 1.1, 3)  # from the newest line's millisecond, not the start
    assert len(log.entries(since)) == 5  # nothing new: nothing added
    assert len(log.entries(since + 1.5)) == 1  # another watch starts over


def test_proxy_log_takes_the_hosts_clock_difference_out() -> None:
    """A host an hour behind: its log's timestamps and `--since` are its own clock. Asked
    `--since <the switch>` in ours, it would answer nothing, and a guard would watch a
    failing release pass; the offset crosses both ways."""
    from deployctl.events import Message, Recorder
    from deployctl.services.judging.watch import ProxyLog

    conn = _LogConn([line("2026-12-01T16:50:01.500000000Z", 500, NEW)], skew=-3600.0)  # host time
    events = Recorder()
    proxy = type("P", (), {"conn": conn, "running_nginx": lambda self: "nginx-1", "emit": events})()
    log = ProxyLog(proxy)  # type: ignore[arg-type]
    since = calendar.timegm((2026, 12, 1, 17, 50, 0, 0, 0, 0))  # the switch, in our clock
    [entry] = log.entries(since)
    assert abs(conn.reads[0] - (since - 3600)) < 0.5  # asked in the host's clock
    assert abs(entry.at - (since + 1.5)) < 0.5  # answered in ours
    [warning] = events.of(Message)
    assert "behind" in warning.text and "3600" in warning.text and warning.host == "h", warning
