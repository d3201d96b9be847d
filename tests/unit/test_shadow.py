"""The shadow window's pure parts (issue 27): the nginx text that mirrors, the settings and
their validation, and the verdict's inputs (the access log's copies and live answers to the
same methods, judged by the canary's verdict with a p95 ratio)."""

from __future__ import annotations

import pytest

from deployctl.config import parse_config
from deployctl.errors import ConfigError, ExitCode
from deployctl.plan.judging.access_log import LogEntry, parse_line
from deployctl.plan.judging.canary import ABORT, PROMOTE, WAIT
from deployctl.plan.edge.proxy_config import Shadow, canary_of, live_release, render_proxy_config, shadow_of, standby_of
from deployctl.plan.lifecycle.release_spec import ProxySpec
from deployctl.plan.judging.shadow import SHADOW_P95_FLOOR_MS, ShadowSpec, shadow_spec

R1, R2 = "20261201-100000-aaaaaaa", "20261201-110000-bbbbbbb"
UPSTREAMS = {R1: f"web-{R1}:5000", R2: f"web-{R2}:5000"}
PROXY = ProxySpec("nginx", False)
CONFIG = """
app = "shop"
[services.web]
context = "web"
routed = true
[environments.prod]
target = "local"
[environments.prod.rollout]
"""


# -- the nginx text -----------------------------------------------------------------------------

def test_the_mirror_config_copies_get_and_head_to_the_new_release_and_the_live_one_answers():
    text = render_proxy_config(PROXY, R1, UPSTREAMS, shadow=Shadow(R2, ("GET", "HEAD")))
    assert text.startswith(f"# Written by deployctl on every switch; do not edit (changes are replaced).\n"
                           f"# live: {R1}\n# shadow: {R2} GET,HEAD\n")
    assert f"""
    # The shadow window: requests of these methods are copied to {R2}.
    map $request_method $deployctl_shadow {{
        default 0;
        GET 1;
        HEAD 1;
    }}
    log_format deployctl_shadow '$remote_addr [$time_iso8601] "$request_method $deployctl_path $server_protocol" $status $body_bytes_sent '
                         'rt=$request_time upstream=$upstream_addr ustatus=$upstream_status '
                         'urt=$upstream_response_time release={R2}';
""" in text
    assert f"""
        location = /.deployctl-shadow {{
            internal;
            if ($deployctl_shadow = 0) {{
                access_log off;
                return 204;
            }}
            log_subrequest on;
            access_log /dev/stdout deployctl_shadow;
            add_header X-Deployctl-Release {R2} always;
            proxy_connect_timeout 1000ms;
            proxy_send_timeout 1000ms;
            proxy_read_timeout 1000ms;
            proxy_pass http://release_20261201_110000_bbbbbbb$request_uri;
        }}
        # HTTPS and ACME challenge answers as this host's certificate state says
        # (plan/edge/tls_config.py); before the first certificate these include nothing.
        include /etc/deployctl/proxy/tls/*.conf;
        include /etc/deployctl/proxy/tls/live/*.conf;
        include /etc/deployctl/proxy.d/server/*.conf;
        location / {{
            if ($deployctl_maintenance) {{
                return 503;
            }}
            error_page 503 @deployctl_maintenance;
            mirror /.deployctl-shadow;
            mirror_request_body off;
            proxy_pass http://release_20261201_100000_aaaaaaa;
        }}
""" in text
    # The live release still routes, and the file says so; the copy's release is no canary or standby.
    assert live_release(text) == R1 and shadow_of(text) == Shadow(R2, ("GET", "HEAD"))
    assert canary_of(text) is None and standby_of(text) is None


def test_a_copy_is_cut_off_at_the_shadow_timeout_so_a_slow_release_delays_users_boundedly():
    """nginx takes a keep-alive connection's next request only once the last one's copy is
    done: the copy's timeouts are what bounds that wait (bench/shadow_proxy.py measures it)."""
    text = render_proxy_config(PROXY, R1, UPSTREAMS, shadow=Shadow(R2, ("GET",), timeout=0.25))
    location = text[text.index("location = /.deployctl-shadow"):text.index("location / {")]
    assert [line.strip() for line in location.splitlines() if "timeout" in line] == [
        "proxy_connect_timeout 250ms;", "proxy_send_timeout 250ms;", "proxy_read_timeout 250ms;"]
    with pytest.raises(ValueError, match="shadow timeout"):
        Shadow(R2, ("GET",), timeout=0)


def test_the_shadow_log_format_is_the_access_logs_with_the_release_as_text():
    """The copies' lines must parse as every other line (plan/judging/access_log.py): the same fields."""
    text = render_proxy_config(PROXY, R1, UPSTREAMS, shadow=Shadow(R2, ("GET",)))
    live_format = text.split("log_format deployctl ")[1].split(";")[0]
    copy_format = text.split("log_format deployctl_shadow ")[1].split(";")[0]
    assert copy_format == live_format.replace("$deployctl_release", R2)


def test_a_listed_method_with_a_body_sends_the_body_with_the_copy():
    text = render_proxy_config(PROXY, R1, UPSTREAMS, shadow=Shadow(R2, ("GET", "POST")))
    assert "            mirror_request_body on;\n" in text and "        POST 1;\n" in text


def test_without_a_shadow_nothing_of_it_is_rendered():
    text = render_proxy_config(PROXY, R1, UPSTREAMS)
    assert "mirror" not in text and "shadow" not in text and shadow_of(text) is None


def test_a_shadow_mirrors_a_plain_live_route_only():
    for kwargs in ({"canary": (R2, 10)}, {"live": None}):
        args = {"proxy": PROXY, "live": R1, "upstreams": UPSTREAMS, "shadow": Shadow(R2, ("GET",)), **kwargs}
        with pytest.raises(ValueError, match="plain live route"):
            render_proxy_config(**args)
    with pytest.raises(ValueError, match="upper-case HTTP methods"):
        Shadow(R2, ("get",))


def test_a_shadow_line_that_is_no_release_of_ours_is_no_shadow():
    assert shadow_of("# live: x\n# shadow: ../../etc GET\n") is None
    assert shadow_of(None) is None


# -- settings -----------------------------------------------------------------------------------

def rollout(lines: str = ""):  # type: ignore[no-untyped-def]
    return parse_config(CONFIG + lines).environments["prod"].rollout


def problems(lines: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(CONFIG + lines)
    assert info.value.exit_code == ExitCode.CONFIG
    return info.value.problems


def test_the_shadow_is_off_by_default_and_copies_get_and_head_when_on():
    assert shadow_spec(rollout()) is None
    spec = shadow_spec(rollout("shadow_window = 30\n"))
    assert spec == ShadowSpec(30.0, 50, ("GET", "HEAD"), 0.02, 2.0, 1.0)
    assert shadow_spec(rollout("shadow_window = 30\nshadow_timeout = 0.25\n")).timeout == 0.25
    assert shadow_spec(rollout("shadow_window = 30\n"), 0) is None  # --shadow 0
    assert shadow_spec(rollout(), 5).window == 5.0  # --shadow 5


def test_methods_are_named_one_by_one_and_a_post_only_when_listed():
    assert rollout('shadow_methods = ["get", "HEAD", "GET", "POST"]\n').shadow_methods == ["GET", "HEAD", "POST"]
    [wild] = problems('shadow_methods = ["GET", "*"]\n')
    assert wild.startswith("deploy.toml: environments.prod.rollout.shadow_methods: ") and "name each method" in wild
    assert "POST" in wild
    [unknown] = problems('shadow_methods = ["FETCH"]\n')
    assert "environments.prod.rollout.shadow_methods" in unknown and "'FETCH' is not an HTTP method" in unknown
    [empty] = problems("shadow_methods = []\n")
    assert "environments.prod.rollout.shadow_methods" in empty


@pytest.mark.parametrize("line,key", [("shadow_window = -1", "shadow_window"),
                                      ("shadow_min_requests = 0", "shadow_min_requests"),
                                      ("shadow_max_p95_ratio = 0.5", "shadow_max_p95_ratio"),
                                      ("shadow_max_error_rate = 2", "shadow_max_error_rate"),
                                      ("shadow_timeout = 0", "shadow_timeout"),
                                      ("shadow_timeout = 61", "shadow_timeout")])
def test_out_of_range_settings_name_their_key(line, key):
    [problem] = problems(line + "\n")
    assert problem.startswith(f"deploy.toml: environments.prod.rollout.{key}: ")


# -- the verdict's inputs -----------------------------------------------------------------------

SPEC = ShadowSpec(30.0, 20, ("GET", "HEAD"), 0.02, 2.0)


def entries(release: str, n: int, *, errors: int = 0, ms: float = 10.0, method: str = "GET",
            at: float = 100.0) -> list[LogEntry]:
    return [LogEntry(at + i * 0.01, 500 if i < errors else 200, ms / 1000, release, method) for i in range(n)]


def test_the_log_line_carries_its_method_and_path():
    line = ('2026-12-01T17:50:00.123456789Z 172.17.0.1 [2026-12-01T17:50:00+00:00] "POST /orders HTTP/1.1" 201 '
            "12 rt=0.003 upstream=172.18.0.3:8000 ustatus=201 urt=0.003 release=" + R1)
    assert parse_line(line) == LogEntry(parse_line(line).at, 201, 0.003, R1, "POST", "/orders")


def test_the_live_side_counts_the_copied_methods_only():
    """The same requests on both sides: the live release's POSTs (never copied) are not compared."""
    logs = {"h1": entries(R2, 30) + entries(R1, 30) + entries(R1, 40, errors=40, method="POST")}
    board = SPEC.board(logs, R2, R1, since=0)
    assert (board.new.requests, board.live.requests, board.live.errors) == (30, 30, 0)


def test_a_fleet_is_one_verdict_over_every_hosts_copies():
    # 4 of 25 (3 of 25 is no longer more than chance at a 2% bar: see the chance tests below).
    logs = {"h1": entries(R2, 10, errors=4) + entries(R1, 10), "h2": entries(R2, 15) + entries(R1, 15)}
    board = SPEC.board(logs, R2, R1, since=0)
    assert (board.new.requests, board.new.errors) == (25, 4) and set(board.hosts) == {"h1", "h2"}
    verdict = SPEC.judge(board, left=20)
    assert verdict.decision == ABORT and "shadow_max_error_rate" in verdict.reason and verdict.hosts["h1"]


def test_a_release_failing_20_percent_is_stopped_as_soon_as_enough_copies_were_answered():
    board = SPEC.board({"h": entries(R2, 20, errors=4) + entries(R1, 20)}, R2, R1, since=0)
    verdict = SPEC.judge(board, left=25)
    assert verdict.decision == ABORT and "20.0% (4 of 20)" in verdict.reason


def test_the_window_ends_once_min_requests_copies_were_answered_within_the_margins():
    assert SPEC.judge(SPEC.board({"h": entries(R2, 19) + entries(R1, 19)}, R2, R1, 0), left=25).decision == WAIT
    verdict = SPEC.judge(SPEC.board({"h": entries(R2, 20) + entries(R1, 20)}, R2, R1, 0), left=25)
    assert verdict.decision == PROMOTE


def test_too_few_copies_by_the_end_of_the_window_stop_the_deploy():
    verdict = SPEC.judge(SPEC.board({"h": entries(R2, 5) + entries(R1, 5)}, R2, R1, 0), left=0)
    assert verdict.decision == ABORT and "shadow_min_requests = 20" in verdict.reason
    assert "--promote" not in verdict.reason  # no decision by hand in a shadow window


def test_a_release_three_times_slower_at_p95_is_stopped():
    slow = SPEC.board({"h": entries(R2, 20, ms=90) + entries(R1, 20, ms=30)}, R2, R1, 0)
    verdict = SPEC.judge(slow, left=25)
    assert verdict.decision == ABORT and "shadow_max_p95_ratio 2x" in verdict.reason


def test_a_ratio_over_a_few_milliseconds_is_noise_and_passes():
    fast = SPEC.board({"h": entries(R2, 20, ms=3 + SHADOW_P95_FLOOR_MS - 4) + entries(R1, 20, ms=3)}, R2, R1, 0)
    assert SPEC.judge(fast, left=25).decision == PROMOTE


def test_the_lock_lasts_the_shadow_window_too():
    from deployctl.plan.lifecycle.lock import lock_timeout

    assert lock_timeout(rollout("shadow_window = 600\n")) - lock_timeout(rollout()) == 600


def test_the_dry_run_prints_the_shadow_window_between_health_and_route():
    """`deploy --dry-run --shadow 30` prints the rows of the deploy's own switch steps (HostDeploy.switch_steps)."""
    from pathlib import Path

    from deployctl.config import LoadedConfig
    from deployctl.services.lifecycle.deploy import DeployOptions, HostDeploy
    from deployctl.services.env import Env
    from deployctl.services.lifecycle.release_images import ReleaseImages

    class Unused:
        host = "127.0.0.1"

    loaded = LoadedConfig(Path("/p/deploy.toml"), parse_config(CONFIG))
    images = ReleaseImages({"web": "sha256:w"}, "abc1234def")
    job = HostDeploy(Env.resolve(loaded, "prod"), Unused(), lambda e: None, R2, images, {}, DeployOptions(shadow=30))
    rows = [row for step in job.switch_steps() for row in step.rows]
    names = [row.step for row in rows]
    assert names.index("health") < names.index("shadow") < names.index("route")
    rows = [row for row in rows if row.step == "shadow"]
    assert "`mirror` copies GET/HEAD requests to " + R2 in rows[0].detail and rows[0].argv
    assert "for 30s or until 50 were answered" in rows[1].detail and "docker" in rows[1].argv[0]
    plain = HostDeploy(Env.resolve(loaded, "prod"), Unused(), lambda e: None, R2, images, {}, DeployOptions())
    assert "shadow" not in [row.step for step in plain.switch_steps() for row in step.rows]


def test_the_progress_line_shows_both_sides_without_a_share():
    board = SPEC.board({"h": entries(R2, 12, errors=2) + entries(R1, 12)}, R2, R1, since=0)
    assert SPEC.summary(board) == "copies 12 req/2 err, live 12 req/0 err"


# -- load alone stops no healthy release (a copy cut off at shadow_timeout, few errors) ----------

def cut_off(release: str, n: int, *, at: float = 100.0, seconds: float = 1.003) -> list[LogEntry]:
    """Copies nginx cut off at SPEC.timeout (1 s): its 504, logged with urt just over the limit."""
    return [LogEntry(at + i * 0.01, 504, seconds, release, "GET") for i in range(n)]


def slow(release: str, n: int, *, at: float = 100.0, seconds: float = 1.4) -> list[LogEntry]:
    """Live answers slower than a copy may be (the live side has no cap): 200s, after 1.4 s."""
    return [LogEntry(at + i * 0.01, 200, seconds, release, "GET") for i in range(n)]


def test_a_live_answer_as_slow_as_a_cut_off_copy_counts_against_the_live_side_too():
    """Both sides by the same bar: under load both releases answer some requests in over 1 s; the
    copies' become 504s, the live ones 200s. Judged so, the release is as good as the live one."""
    logs = {"h": entries(R2, 23) + cut_off(R2, 2) + entries(R1, 23) + slow(R1, 2)}
    board = SPEC.board(logs, R2, R1, since=0)
    assert (board.new.errors, board.new.cut_off, board.live.errors, board.live.cut_off) == (2, 2, 2, 2)
    assert SPEC.judge(board, left=25).decision == PROMOTE
    # The per-route rule sees the same: both sides' /version answers 8% 5xx.
    (route,) = board.routes.routes
    assert (route.new.count("5xx"), route.live.count("5xx")) == (2, 2)
    # The canary has no bar (its split sends users' requests, none cut off): a slow answer is no error.
    from deployctl.plan.judging.canary import board as canary_board
    plain = canary_board(logs, R2, R1, since=0)
    assert (plain.live.errors, plain.live.cut_off, plain.new.cut_off) == (0, 0, 0)


def test_the_bar_is_the_shadow_timeout_as_nginx_logs_it():
    assert [e.over(1.0) for e in cut_off(R2, 1, seconds=1.001) + cut_off(R2, 1, seconds=0.9995)
            + slow(R1, 1, seconds=0.99)] == [True, True, False]
    assert ShadowSpec(30.0, 20, ("GET",), 0.02, 2.0, timeout=5.0).board(
        {"h": slow(R1, 20)}, R2, R1, since=0).live.cut_off == 0  # 1.4 s is within a 5 s bar


def test_two_cut_off_copies_in_25_are_no_proof_and_more_copies_decide():
    """The false stop seen under load 18-35: 2 of 25 copies cut off, none of the live answers.
    8% over a 2% bar, but a release failing 2% shows 2 or more in 25 one time in 11: wait."""
    few = SPEC.board({"h": entries(R2, 23) + cut_off(R2, 2) + entries(R1, 25)}, R2, R1, since=0)
    verdict = SPEC.judge(few, left=25)
    assert verdict.decision == WAIT
    # More copies, none failing: the rate is back within the margin, and the release passes.
    more = SPEC.board({"h": entries(R2, 98) + cut_off(R2, 2, at=200) + entries(R1, 100)}, R2, R1, since=0)
    assert SPEC.judge(more, left=20).decision == PROMOTE
    # The window's time is up with still 2 of 25: stopped, as before, and said why.
    late = SPEC.judge(few, left=0)
    assert late.decision == ABORT and "at the end of the window" in late.reason
    assert "2 copies cut off at shadow_timeout 1s, and 0 live answers as slow" in late.reason


def test_a_hung_release_is_stopped_as_soon_as_min_requests_copies_were_cut_off():
    hung = SPEC.board({"h": cut_off(R2, 20) + entries(R1, 20)}, R2, R1, since=0)
    verdict = SPEC.judge(hung, left=28)
    assert verdict.decision == ABORT and "100.0% (20 of 20)" in verdict.reason
    assert "20 copies cut off at shadow_timeout 1s" in verdict.reason and "more than chance" in verdict.reason
    assert verdict.to_dict()["new"]["cut_off"] == 20 and "cut_off" not in verdict.to_dict()["live"]
    assert SPEC.judge(SPEC.board({"h": cut_off(R2, 19) + entries(R1, 19)}, R2, R1, 0), left=28).decision == WAIT


def test_a_release_failing_20_percent_is_stopped_even_when_the_live_side_is_slow_too():
    """Load makes the live side's answers slow as well (its rate rises by the bar): the failing
    release is still stopped, at most when the window's time is up."""
    logs = {"h": entries(R2, 16, errors=4) + cut_off(R2, 4) + entries(R1, 16) + slow(R1, 4)}
    board = SPEC.board(logs, R2, R1, since=0)
    assert SPEC.judge(board, left=25).decision == WAIT  # 8 of 20 vs 4 of 20: not beyond chance yet
    assert SPEC.judge(board, left=0).decision == ABORT
    many = SPEC.board({"h": entries(R2, 80, errors=16) + cut_off(R2, 20) + entries(R1, 80) + slow(R1, 20)},
                      R2, R1, since=0)
    assert SPEC.judge(many, left=25).decision == ABORT


def test_the_progress_line_counts_the_cut_off_copies_and_the_live_answers_as_slow():
    board = SPEC.board({"h": entries(R2, 8) + cut_off(R2, 2) + entries(R1, 9) + slow(R1, 1)}, R2, R1, since=0)
    assert SPEC.summary(board) == "copies 10 req/2 err (2 cut off at 1s), live 10 req/1 err (1 as slow)"
