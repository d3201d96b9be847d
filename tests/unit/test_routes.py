"""Issue 27, per route: the route key any app's requests fold into, the per-route board of
status classes (capped), and the rule that stops a shadow window / aborts a canary when one
route regresses while the rates over all requests stay within their margins."""

from __future__ import annotations

import json

import pytest

from deployctl.config import parse_config
from deployctl.errors import ConfigError
from deployctl.plan.judging.access_log import LogEntry, parse_line
from deployctl.plan.judging.canary import ABORT, PROMOTE, WAIT, CanarySpec, canary_spec
from deployctl.plan.judging.routes import OTHER, RouteRule, route_board, route_key
from deployctl.plan.judging.shadow import ShadowSpec, shadow_spec
from tests.unit.test_shadow import CONFIG  # one service, environment `prod`, its rollout table last

NEW, LIVE = "20261201-110000-bbbbbbb", "20261201-100000-aaaaaaa"
LINE = ('2026-12-01T17:50:00.123456789Z 172.17.0.1 [2026-12-01T17:50:00+00:00] "{request}" {status} 12 '
        "rt=0.003 upstream=172.18.0.3:8000 ustatus={status} urt=0.003 release=" + LIVE)


# -- the route key ------------------------------------------------------------------------------

@pytest.mark.parametrize("method, target, key", [
    ("GET", "/", "GET /"),
    ("GET", "/users/1234", "GET /users/:id"),
    ("GET", "/users/1234/orders/77", "GET /users/:id/orders/:id"),
    ("DELETE", "/items/3f2b8c1e-9a4d-4e5f-8b6a-0c1d2e3f4a5b", "DELETE /items/:id"),
    ("GET", "/objects/507f1f77bcf86cd799439011", "GET /objects/:id"),  # a 24-hex object id
    ("GET", "/blobs/sha256/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "GET /blobs/sha256/:id"),
    ("GET", "/reset/Xk29fQpL0aZ7mN3bV8cR2tY", "GET /reset/:id"),  # a URL-safe token
    ("GET", "/docs/getting-started-with-the-cli", "GET /docs/getting-started-with-the-cli"),  # a slug stays
    ("GET", "/api/v2/health", "GET /api/v2/health"),
    ("GET", "/search?q=shoes&token=s3cr3t", "GET /search"),
    ("GET", "/a/12?x=1#frag", "GET /a/:id"),
    ("GET", "http://example.com/users/9?t=1", "GET /users/:id"),  # absolute-form request line
    ("", "", OTHER),
    ("OPTIONS", "*", OTHER),
])
def test_the_route_key_folds_what_varies_per_request(method, target, key):
    assert route_key(method, target) == key


def test_a_very_long_path_is_cut():
    key = route_key("GET", "/" + "abc/" * 200)
    assert len(key) == 160 and key.endswith("…")


def test_the_log_line_gives_the_path_without_its_query_string():
    entry = parse_line(LINE.format(request="GET /orders/12?token=s3cr3t&x=1 HTTP/1.1", status=200))
    assert (entry.method, entry.path) == ("GET", "/orders/12") and "s3cr3t" not in repr(entry)
    # A request line nginx could not read is still an entry (its status counts), route `other`.
    bad = parse_line(LINE.format(request="-", status=400))
    assert (bad.method, bad.path, bad.status) == ("", "", 400) and route_key(bad.method, bad.path) == OTHER
    # The older entries (no path) keep parsing as before.
    assert parse_line(LINE.format(request="HEAD / HTTP/1.1", status=200)).path == "/"


# -- the per-route board ------------------------------------------------------------------------

def hits(release: str, path: str, statuses: list[int], method: str = "GET") -> list[LogEntry]:
    return [LogEntry(100.0 + i * 0.01, s, 0.01, release, method, path) for i, s in enumerate(statuses)]


def test_the_board_counts_each_routes_status_classes_on_both_sides():
    entries = (hits(NEW, "/users/1", [200] * 8 + [404] * 2) + hits(NEW, "/users/2", [500] * 5)
               + hits(LIVE, "/users/3", [200] * 15) + hits(LIVE, "/about", [301] * 4)
               + hits("20261130-000000-ccccccc", "/users/1", [500] * 9))  # a third release: not counted
    board = route_board(entries, NEW, LIVE, max_routes=100)
    users = next(r for r in board.routes if r.route == "GET /users/:id")
    assert users.new.to_dict() == {"requests": 15, "2xx": 8, "3xx": 0, "4xx": 2, "5xx": 5}
    assert users.live.to_dict() == {"requests": 15, "2xx": 15, "3xx": 0, "4xx": 0, "5xx": 0}
    assert (users.worst_class, round(users.shift, 3)) == ("5xx", 0.333)
    about = next(r for r in board.routes if r.route == "GET /about")
    assert about.new.requests == 0 and about.shift == 0


def test_a_scanner_cannot_grow_the_board_past_the_cap():
    """2000 random URLs on both sides: the busy routes stay apart, the rest is one `other`."""
    entries = hits(NEW, "/cart", [200] * 50) + hits(LIVE, "/cart", [200] * 50)
    for i in range(1000):
        for release in (NEW, LIVE):
            entries += hits(release, f"/wp-admin/x{i}y.php", [404])
    board = route_board(entries, NEW, LIVE, max_routes=5)
    assert len(board.routes) <= 6 and "GET /cart" in {r.route for r in board.routes}
    other = next(r for r in board.routes if r.route == OTHER)
    assert other.new.requests + other.live.requests >= 2000 - 8
    assert board.worst() == ()  # the same 404s on both sides: nothing worse


# -- the decision -------------------------------------------------------------------------------

SHADOW = ShadowSpec(30.0, 50, ("GET", "HEAD"), 0.02, 2.0, routes=RouteRule(0.2, 20, 100))
CANARY = CanarySpec(10, 60.0, 0.02, 500.0, 20, RouteRule(0.2, 20, 100))


def traffic(broken: list[int], *, broken_requests: int = 25) -> dict:
    """Mostly a healthy /version; one route answered `broken` by the new release, 200 by the live."""
    new = hits(NEW, "/version", [200] * 500) + hits(NEW, "/items/7", broken)
    live = hits(LIVE, "/version", [200] * 500) + hits(LIVE, "/items/7", [200] * len(broken))
    return {"h1": new + live}


def test_a_route_that_now_answers_404_stops_the_shadow_window_while_the_error_rate_is_fine():
    board = SHADOW.board(traffic([404] * 25), NEW, LIVE, since=0)
    assert board.new.error_rate == 0  # a 404 is no error: the rule over all requests passes it
    verdict = SHADOW.judge(board, left=20)
    assert verdict.decision == ABORT, verdict.reason
    assert verdict.reason == ("route GET /items/:id: 4xx 100.0% (25 of 25) vs live 0.0% (0 of 25): +100.0% exceeds "
                              "shadow_route_max_shift 20.0%")
    worst = verdict.to_dict()["routes"]
    assert worst == [{"route": "GET /items/:id", "class": "4xx", "shift": 1.0,
                      "new": {"requests": 25, "2xx": 0, "3xx": 0, "4xx": 25, "5xx": 0},
                      "live": {"requests": 25, "2xx": 25, "3xx": 0, "4xx": 0, "5xx": 0}}]
    assert verdict.with_routes("stopped") == ("stopped; worst routes: GET /items/:id: 4xx 100% vs live 0% (+100%); "
                                              "new 25 (25 4xx), live 25 (25 2xx)")


def test_a_route_failing_5xx_aborts_the_canary_below_the_global_margin():
    """8 of 25 on one route fail: 1.5% over all 525 requests (under 2%), 32% on the route."""
    board = CANARY.board(traffic([500] * 8 + [200] * 17), NEW, LIVE, since=0)
    assert board.new.error_rate - board.live.error_rate < CANARY.max_error_rate
    verdict = CANARY.judge(board, left=30)
    assert verdict.decision == ABORT and "canary_route_max_shift" in verdict.reason
    assert "route GET /items/:id: 5xx 32.0% (8 of 25)" in verdict.reason


def test_a_noisy_route_with_too_few_requests_decides_nothing():
    board = SHADOW.board(traffic([500] * 3 + [404] * 5), NEW, LIVE, since=0)  # 8 requests, all bad
    assert SHADOW.judge(board, left=20).decision == PROMOTE  # 508 copies answered: the window is over
    verdict = CANARY.judge(CANARY.board(traffic([404] * 8), NEW, LIVE, since=0), left=30)
    assert verdict.decision == WAIT
    # It is still named among the worst routes, with its counts, for whoever reads the verdict.
    passed = CANARY.judge(CANARY.board(traffic([404] * 8), NEW, LIVE, since=0), left=0)
    assert passed.decision == PROMOTE and passed.to_dict()["routes"][0]["route"] == "GET /items/:id"


def test_a_shift_within_the_margin_and_the_same_answers_on_both_sides_pass():
    within = traffic([404] * 4 + [200] * 21)  # 16%: under 20%
    assert SHADOW.judge(SHADOW.board(within, NEW, LIVE, since=0), left=20).decision == PROMOTE
    same = {"h1": hits(NEW, "/missing", [404] * 40) + hits(LIVE, "/missing", [404] * 40)}
    verdict = SHADOW.judge(SHADOW.board(same, NEW, LIVE, since=0), left=0)
    assert verdict.decision == ABORT and "route" not in verdict.reason  # too few copies overall, not the route
    assert verdict.to_dict()["routes"] == []


def test_the_worst_three_routes_worst_first():
    entries = []
    for path, bad in (("/a", 5), ("/b", 20), ("/c", 10), ("/d", 15), ("/e", 0)):
        entries += hits(NEW, path, [500] * bad + [200] * (20 - bad)) + hits(LIVE, path, [200] * 20)
    board = route_board(entries, NEW, LIVE, max_routes=100)
    assert [r.route for r in board.worst()] == ["GET /b", "GET /d", "GET /c"]
    assert RouteRule(0.2, 20).judge(board, "shadow").startswith("route GET /b: 5xx 100.0% (20 of 20)")


def test_a_fleet_is_judged_per_route_over_every_hosts_requests():
    """10 bad copies on each of two hosts: under the minimum on each, over it together."""
    logs = {host: hits(NEW, "/items/1", [500] * 10) + hits(LIVE, "/items/1", [200] * 10) for host in ("h1", "h2")}
    verdict = SHADOW.judge(SHADOW.board(logs, NEW, LIVE, since=0), left=20)
    assert verdict.decision == ABORT and "(20 of 20)" in verdict.reason and set(verdict.hosts) == {"h1", "h2"}
    assert json.dumps(verdict.to_dict())  # goes to the history record as is


# -- the settings -------------------------------------------------------------------------------

def test_the_route_settings_come_from_the_rollout_table_with_defaults():
    rollout = parse_config(CONFIG + "shadow_window = 30\ncanary = 10\n").environments["prod"].rollout
    assert shadow_spec(rollout).routes == RouteRule(0.2, 20, 100) == canary_spec(rollout).routes
    rollout = parse_config(CONFIG + "shadow_window = 30\ncanary = 10\nshadow_route_max_shift = 0.5\n"
                           "shadow_route_min_requests = 5\ncanary_route_max_shift = 0.1\n"
                           "canary_route_min_requests = 50\nmax_routes = 20\n").environments["prod"].rollout
    assert shadow_spec(rollout).routes == RouteRule(0.5, 5, 20)
    assert canary_spec(rollout).routes == RouteRule(0.1, 50, 20)


@pytest.mark.parametrize("line, key", [("shadow_route_max_shift = 1.5", "shadow_route_max_shift"),
                                       ("canary_route_min_requests = 0", "canary_route_min_requests"),
                                       ("max_routes = 0", "max_routes")])
def test_a_bad_route_setting_is_named(line, key):
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG + line + "\n")
    assert f"environments.prod.rollout.{key}" in "\n".join(caught.value.lines())
