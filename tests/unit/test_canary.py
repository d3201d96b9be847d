"""The canary's pure parts (plan/judging/canary.py): the settings with --canary overriding them, the
board that merges every host's window, the decision by hand, the record a host keeps while
it runs and what `status` says of it; the split configuration, the watchdog's argv, the
dry run's canary steps, and what an aborted host means for a rollout's exit code."""

from __future__ import annotations

import pytest

from deployctl.config.models import Rollout
from deployctl.errors import ExitCode
from deployctl.plan.lifecycle import docker_commands as dc
from deployctl.plan.lifecycle import rollout as rollout_plan
from deployctl.plan.judging.access_log import LogEntry
from deployctl.plan.judging.canary import ABORT, PROMOTE, WAIT, CanaryRecord, board, canary_spec, parse_decision, render_decision
from deployctl.plan.lifecycle.names import Names, StateLayout
from deployctl.plan.edge.proxy_config import canary_of, live_release, render_proxy_config, upstream_name
from deployctl.plan.lifecycle.release_spec import ProxySpec
from deployctl.plan.lifecycle.switch_plan import canary_config
from tests.unit.test_deploy_plan import R1, SECRET_CONFIG, _spec, host_deploy, switch_rows

NEW, OLD = "20261201-175000-bbbbbbb", "20261201-170000-aaaaaaa"


def entries(release: str, statuses: list[int], at: float = 1000.0, ms: float = 5.0) -> list[LogEntry]:
    return [LogEntry(at + i * 0.01, status, ms / 1000, release) for i, status in enumerate(statuses)]


def test_canary_spec_from_the_rollout_table_and_the_flag() -> None:
    assert canary_spec(Rollout()) is None
    spec = canary_spec(Rollout(canary=10, canary_window=30))
    assert (spec.share, spec.window, spec.min_requests) == (10, 30, 20)
    assert canary_spec(Rollout(canary=10), 25).share == 25  # --canary 25 wins
    assert canary_spec(Rollout(canary=10), 0) is None  # --canary 0: none this time
    assert canary_spec(Rollout(canary_window=8), 20).watchdog_seconds == 18  # window + margin


def test_board_merges_every_hosts_window_and_judges_them_together() -> None:
    spec = canary_spec(Rollout(canary=20))
    # Each host alone has fewer than canary_min_requests canary requests; together 24.
    logs = {"h1": entries(NEW, [200] * 11 + [500]) + entries(OLD, [200] * 48),
            "h2": entries(NEW, [200] * 12) + entries(OLD, [200] * 48),
            "h3": entries(OLD, [200] * 10, at=900.0)}  # before the split: not counted
    together = board(logs, NEW, OLD, since=1000.0)
    assert (together.new.requests, together.new.errors, together.live.requests) == (24, 1, 96)
    assert together.share == pytest.approx(0.2)
    assert together.hosts["h1"][0].requests == 12 and together.hosts["h3"][1].requests == 0
    assert "new 24 req/1 err" in together.describe()
    # 1 of 24 = 4.2% vs live 0%: above the 2% margin, with enough requests: aborted early.
    early = together.verdict(spec, final=False)
    assert early.decision == ABORT and "canary_max_error_rate" in early.reason
    assert early.to_dict()["hosts"]["h2"]["new"]["requests"] == 12
    healthy = board({"h1": entries(NEW, [200] * 30) + entries(OLD, [200] * 100)}, NEW, OLD, since=1000.0)
    assert healthy.verdict(spec, final=False).decision == WAIT
    assert healthy.verdict(spec, final=True).decision == PROMOTE


def test_a_decision_by_hand_is_read_back_and_wins() -> None:
    assert parse_decision(render_decision(PROMOTE, "ann@ci")) == (PROMOTE, "ann@ci")
    assert parse_decision(render_decision(ABORT, "bob")) == (ABORT, "bob")
    assert parse_decision(None) is None and parse_decision(b"maybe x") is None
    with pytest.raises(ValueError):
        render_decision("later", "x")
    verdict = board({"h": entries(NEW, [200] * 3)}, NEW, OLD, since=0).by_hand(PROMOTE, "ann@ci")
    assert verdict.by_hand and verdict.decision == PROMOTE and "ann@ci" in verdict.reason


def test_the_hosts_record_says_what_became_of_a_canary() -> None:
    record = CanaryRecord(NEW, OLD, 20, 1000.0, 1018.0, "shop-local-canary-watchdog")
    assert CanaryRecord.parse(record.to_json()) == record
    assert CanaryRecord.parse(b"{torn") is None and CanaryRecord.parse(None) is None
    assert "running" in record.what_happened(now=1005.0, fired=None) and "in 13s" in record.what_happened(
        now=1005.0, fired=None)
    fired = record.what_happened(now=1030.0, fired="2026-12-01T17:50:18Z")
    assert f"put {OLD} back at 100% at 2026-12-01T17:50:18Z" in fired and "not decided" in fired
    assert "check the proxy" in record.what_happened(now=1030.0, fired=None)


def test_the_split_sends_a_share_per_request_and_keeps_the_stamp() -> None:
    text = render_proxy_config(ProxySpec("nginx", False), OLD, {OLD: "a:1", NEW: "b:2"}, canary=(NEW, 20))
    assert (f'split_clients "${{request_id}}" $deployctl_upstream {{\n        20% {upstream_name(NEW)};\n'
            f"        * {upstream_name(OLD)};\n    }}") in text
    assert "proxy_pass http://$deployctl_upstream;" in text
    assert f"{upstream_name(NEW)} {NEW};" in text and f"{upstream_name(OLD)} {OLD};" in text
    assert live_release(text) == OLD and canary_of(text) == (NEW, 20)
    plain = render_proxy_config(ProxySpec("nginx", False), OLD, {OLD: "a:1"})
    assert canary_of(plain) is None and "split_clients" not in plain


def test_canary_config_routes_the_live_release_and_the_target_by_their_specs() -> None:
    live, target = _spec(), _spec()
    target = type(target).from_dict({**target.to_dict(), "release": NEW})
    text = canary_config(target, live, 10)
    assert canary_of(text) == (NEW, 10) and live_release(text) == R1


def test_watchdog_argv() -> None:
    """Least privilege: only the proxy directory is mounted (not the state root with the
    secrets, the history and the lock), read-only root, two capabilities, no-new-privileges."""
    assert dc.run_canary_watchdog("shop-local-canary-watchdog", "nginx:1", "/srv/state/shop/local/proxy",
                                  "shop-nginx-1", 18, config="nginx.conf", live_copy="nginx.live.conf",
                                  fired="canary-fired", labels={"k": "v"}) == [
        "docker", "run", "--detach", "--rm", "--name", "shop-local-canary-watchdog", "--network", "none",
        "--pid", "container:shop-nginx-1", "--security-opt", "no-new-privileges", "--cap-drop", "ALL",
        "--cap-add", "DAC_OVERRIDE", "--cap-add", "KILL", "--read-only",
        "--label", "k=v", "-v", "/srv/state/shop/local/proxy:/proxy",
        "--entrypoint", "sh", "nginx:1", "-c",
        "sleep 18 && cp /proxy/nginx.live.conf /proxy/nginx.conf.watchdog && "
        "mv -f /proxy/nginx.conf.watchdog /proxy/nginx.conf && kill -HUP 1 && "
        "date -u +%Y-%m-%dT%H:%M:%SZ > /proxy/canary-fired"]
    layout = StateLayout("/srv/state", "shop", "local")
    assert (layout.canary, layout.canary_decision, layout.canary_fired) == (
        "/srv/state/shop/local/canary.json", "/srv/state/shop/local/canary-decision",
        "/srv/state/shop/local/proxy/canary-fired")
    assert Names("shop", "local").canary_watchdog == "shop-local-canary-watchdog"


def test_the_dry_run_shows_the_canary_between_health_and_the_switch() -> None:
    """The rows of the deploy's own switch steps (services/lifecycle/deploy.HostDeploy.switch_steps)."""
    assert "canary" not in [s.step for s in switch_rows(host_deploy(SECRET_CONFIG))]
    rows = switch_rows(host_deploy(SECRET_CONFIG, canary=10))  # canary_window: 60 s by default
    order = [s.step for s in rows]
    assert order.index("health") < order.index("canary") < order.index("route") < order.index("verify")
    text = "\n".join(f"{s.detail} {' '.join(s.argv or ())}" for s in rows)
    assert "10% of requests" in text and "split_clients" in text and "--promote" in text
    assert "sleep 70" in text and "--name shop-local-canary-watchdog" in text and "-v /srv/state/shop/local/proxy:/proxy" in text and "aborted" in text


def test_an_aborted_canary_leaves_the_host_as_before_exit_6() -> None:
    verdict = rollout_plan.verdict({"h1": rollout_plan.ABORTED, "h2": rollout_plan.ABORTED})
    assert verdict.exit_code == ExitCode.DEPLOY_FAILED
    assert not rollout_plan.should_stop({"h1": rollout_plan.ABORTED}, 0)  # judged, not a host failure
