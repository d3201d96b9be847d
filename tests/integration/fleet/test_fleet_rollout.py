"""Rollouts across the test fleet under continuous traffic through its load balancer
(bounded, 127.0.0.1 only): a batch-of-one deploy, a fleet rollback, and a deploy whose
second host fails its health check so the first is reverted. Every request must succeed,
and once a command returns every answer comes from the release it left live.

Both tests run on one app (the module's site, tests/support/fleet_fixtures.py): the
second starts from the release the first rolled back to instead of deploying a new app."""

from __future__ import annotations

import time

import pytest

from deployctl.errors import ExitCode
from tests.integration.fleet.site import ENV, json_lines, live_release
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration
HEALTH_PORT = "8000"  # the probe's port: what deployctl's health checks reach on each host


def deployed(done) -> str:  # type: ignore[no-untyped-def]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    return json_lines(done.stdout)[-1]["release"]


def traffic_to(balancer) -> Traffic:  # type: ignore[no-untyped-def]
    return Traffic(f"{balancer.url}/version", workers=4, max_requests=20_000, max_seconds=240)


def test_batch_of_one_rollout_then_fleet_rollback_drop_no_request(fleet_module_site, fleet_module_balancer):
    site, load_balancer = fleet_module_site, fleet_module_balancer
    v1 = live_release(site, "1111111aaaa")  # all hosts at once; each pulls the images
    assert [site.current(h) for h in site.hosts] == [v1] * 3
    site.write_config(batch=1)
    with traffic_to(load_balancer) as traffic:
        time.sleep(1)
        rollout = site.deploy("2222222bbbb", "--json")
        rolled = time.time()
        time.sleep(1)
        back_started = time.time()
        back = site.cli("rollback", "--env", ENV)  # plain: what a CI log shows
        back_done = time.time()
        time.sleep(1)
    report = traffic.report
    v2 = deployed(rollout)
    assert report.total > 100 and report.failures == [], report.summary()
    between = [s for s in report.samples if s.started >= rolled and s.finished < back_started]
    assert between and all(set(s.releases) == {v2} for s in between), report.summary()
    assert report.wrong_release_after(back_done, v1) == [], report.summary()

    events = json_lines(rollout.stdout)
    assert [(h["host"], h["outcome"], h["previous"]) for h in events[-1]["hosts"]] == \
        [(h, "succeeded", v1) for h in site.hosts]
    # One at a time: a host starts its new containers only after the one before has switched.
    switched = {e["host"]: e["at"] for e in events if e["event"] == "step_done" and e.get("step") == "switch"}
    started = {e["host"]: e["at"] for e in events if e["event"] == "step_started" and e.get("step") == "start"}
    assert all(switched[a] <= started[b] for a, b in zip(site.hosts, site.hosts[1:])), (switched, started)

    assert back.returncode == 0, back.stdout[-3000:] + back.stderr
    for host in site.hosts:
        assert f"[{host}] rollback done" in back.stdout  # one line per host in CI logs
        assert site.current(host) == v1 and not site.locked(host)
        last = site.history(host).records[-1]
        assert (last.action, last.release, last.outcome, last.previous) == ("rollback", v1, "succeeded", v2)


def test_second_host_failing_its_health_check_stops_the_rollout_and_reverts_the_first(fleet_module_site,
                                                                                       fleet_module_balancer):
    site, load_balancer = fleet_module_site, fleet_module_balancer
    v1 = live_release(site, "3333333cccc")  # the release the test before rolled back to
    site.write_config(batch=1)
    first, second, third = site.hosts
    before = {h: len(site.history(h).records) for h in site.hosts}
    # The second host's health checks are refused (a firewall rule on that host only); its
    # old release keeps serving through its nginx, which reaches containers over the bridge.
    rule = ["OUTPUT", "-p", "tcp", "--dport", HEALTH_PORT, "-j", "REJECT"]
    site.host(second).exec("iptables", "-w", "-I", *rule)
    try:
        with traffic_to(load_balancer) as traffic:
            time.sleep(1)
            done = site.deploy("4444444dddd")  # plain output, as in CI
            ended = time.time()
            time.sleep(1)
    finally:
        site.host(second).exec("iptables", "-w", "-D", *rule)
    report = traffic.report
    assert done.returncode == ExitCode.DEPLOY_FAILED, done.stdout[-3000:] + done.stderr
    assert report.total > 100 and report.failures == [], report.summary()
    assert report.wrong_release_after(ended, v1) == [], report.summary()

    v2 = site.history(first).records[-1].release
    # Printed per host: the live failure lines, then the outcome table.
    assert f"[{second}] health FAILED" in done.stdout
    rows = {cells[0]: cells[1] for cells in map(str.split, done.stdout.splitlines()) if cells and cells[0] in site.hosts}
    assert rows == {first: "reverted", second: "failed", third: "skipped"}, done.stdout[-2000:]
    assert "every host still serves the release it served before" in done.stderr

    # Recorded in each host's history; all back on v1, every lock released.
    outcomes = {h: [(r.action, r.release, r.outcome) for r in site.history(h).records[before[h]:]]
                for h in site.hosts}
    assert outcomes == {
        first: [("deploy", v2, "succeeded"), ("rollback", v1, "succeeded"), ("deploy", v2, "reverted")],
        second: [("deploy", v2, "failed")],
        third: [("deploy", v2, "skipped")],
    }
    assert all(site.current(h) == v1 and not site.locked(h) for h in site.hosts)
    # The failed host's new containers are gone; the reverted host keeps v2's, stopped, for rollback.
    listing = {h: site.host(h).exec("docker", "ps", "-a", "--filter", f"label=io.deployctl.app={site.app}",
                                    "--format", "{{.Names}} {{.State}}") for h in (first, second)}
    assert v2 not in listing[second]
    assert f"frontend-{v2} exited" in listing[first] and f"frontend-{v1} running" in listing[first]
